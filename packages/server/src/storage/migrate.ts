/**
 * Forward-only migrations, shared by both dialects. Kysely's Migrator takes a lock (a
 * PostgreSQL advisory lock, a SQLite write transaction) so that two servers starting at once
 * against one database migrate it exactly once. Migrations are listed here explicitly rather
 * than read from a folder, so that a packaged agentless server has nothing to discover.
 *
 * A migration that has landed is never edited, not even to add an index: databases that ran
 * it never run it again (0008 was, and 0010 had to repair it). Each landed file's hash is
 * recorded (`migrations/landed.sha256` for 0001-0011, then `<migration>.ts.sha256` beside each
 * one), and a test fails when one changes; a new migration is added here and with its hash file.
 */
import { Migrator, type Migration, type MigrationProvider, type MigrationResultSet } from 'kysely/migration';
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
import * as m0010 from './migrations/0010-task-device-state-run-index.ts';
import * as m0011 from './migrations/0011-product-version-schemes.ts';
import * as m0012 from './migrations/0012-instances.ts';
import * as m0013 from './migrations/0013-policies.ts';
import * as m0014 from './migrations/0014-device-events.ts';
import * as m0015 from './migrations/0015-deployment-urgent.ts';
import * as m0016 from './migrations/0016-saved-selections.ts';
import * as m0017 from './migrations/0017-notifications.ts';
import * as m0018 from './migrations/0018-dashboard-layouts.ts';

interface MigrationModule {
  up(db: import('kysely').Kysely<unknown>, dialect: import('./database.ts').Dialect): Promise<void>;
}
const migrations: Record<string, MigrationModule> = { '0001-initial': m0001, '0002-repository': m0002, '0003-deployment': m0003, '0004-rollouts': m0004, '0005-device-identity': m0005, '0006-push-jobs': m0006, '0007-console-sign-in': m0007, '0008-server-tasks': m0008, '0009-trust-boundaries': m0009, '0010-task-device-state-run-index': m0010, '0011-product-version-schemes': m0011, '0012-instances': m0012, '0013-policies': m0013, '0014-device-events': m0014, '0015-deployment-urgent': m0015, '0016-saved-selections': m0016, '0017-notifications': m0017, '0018-dashboard-layouts': m0018 };

/** Every migration's name, in the order they run (Kysely orders them by name). */
export const migrationNames: readonly string[] = Object.keys(migrations).sort();

export async function migrateToLatest(db: Db): Promise<string[]> {
  return succeeded(await migratorFor(db).migrateToLatest());
}

/**
 * Migrates up to and including `name`: how the upgrade test makes a database as an older
 * release left it. Never down: no migration has a `down`, so asking for an earlier one than
 * the database is at changes nothing (Kysely skips a migration without one).
 */
export async function migrateTo(db: Db, name: string): Promise<string[]> {
  return succeeded(await migratorFor(db).migrateTo(name));
}

function migratorFor(db: Db): Migrator {
  const provider: MigrationProvider = {
    async getMigrations() {
      const out: Record<string, Migration> = {};
      for (const [name, mod] of Object.entries(migrations)) out[name] = { up: (k) => mod.up(k, db.dialect) };
      return out;
    },
  };
  return new Migrator({
    db: db.kysely,
    provider,
    migrationTableName: 'garrison_migrations',
    migrationLockTableName: 'garrison_migrations_lock',
    // Kysely looks for its tables across all schemas unless told which one is ours.
    ...(db.schema ? { migrationTableSchema: db.schema } : {}),
  });
}

function succeeded({ error, results }: MigrationResultSet): string[] {
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
