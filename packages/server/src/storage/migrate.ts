/**
 * Forward-only migrations, shared by both dialects. Kysely's Migrator takes a lock (a
 * PostgreSQL advisory lock, a SQLite write transaction) so that two servers starting at once
 * against one database migrate it exactly once. Migrations are listed here explicitly rather
 * than read from a folder, so that a packaged agentless server has nothing to discover.
 */
import { Migrator, type Migration, type MigrationProvider } from 'kysely/migration';
import type { Db } from './database.ts';
import * as m0001 from './migrations/0001-initial.ts';
import * as m0002 from './migrations/0002-repository.ts';
import * as m0003 from './migrations/0003-deployment.ts';
import * as m0004 from './migrations/0004-rollouts.ts';
import * as m0005 from './migrations/0005-device-identity.ts';
import * as m0006 from './migrations/0006-push-jobs.ts';
import * as m0007 from './migrations/0007-console-sign-in.ts';
import * as m0008 from './migrations/0008-server-tasks.ts';
import * as m0009 from './migrations/0009-trust-boundaries.ts';

interface MigrationModule {
  up(db: import('kysely').Kysely<unknown>, dialect: import('./database.ts').Dialect): Promise<void>;
}
const migrations: Record<string, MigrationModule> = { '0001-initial': m0001, '0002-repository': m0002, '0003-deployment': m0003, '0004-rollouts': m0004, '0005-device-identity': m0005, '0006-push-jobs': m0006, '0007-console-sign-in': m0007, '0008-server-tasks': m0008, '0009-trust-boundaries': m0009 };

export async function migrateToLatest(db: Db): Promise<string[]> {
  const provider: MigrationProvider = {
    async getMigrations() {
      const out: Record<string, Migration> = {};
      for (const [name, mod] of Object.entries(migrations)) out[name] = { up: (k) => mod.up(k, db.dialect) };
      return out;
    },
  };
  const migrator = new Migrator({
    db: db.kysely,
    provider,
    migrationTableName: 'garrison_migrations',
    migrationLockTableName: 'garrison_migrations_lock',
    // Kysely looks for its tables across all schemas unless told which one is ours.
    ...(db.schema ? { migrationTableSchema: db.schema } : {}),
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
