/**
 * A consistent dump of the server's database, taken while the server runs:
 * - SQLite: the online backup API on a second connection, in a worker (sqlite-snapshot-worker.ts);
 * - PostgreSQL: pg_dump's custom format when a pg_dump at least as new as the server is on
 *   PATH; otherwise a logical dump (every table as JSON lines), which also restores into SQLite.
 * Both PostgreSQL paths read one REPEATABLE READ snapshot: pg_dump imports the snapshot of our
 * own transaction (`--snapshot`), so the row counts in the manifest are those of the dump.
 */
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { Worker } from 'node:worker_threads';
import { sql, type Kysely } from 'kysely';
import type { Db } from '../storage/database.ts';
import { RUNTIME_TABLES, type Database } from '../storage/schema.ts';
import { BackupMethod } from './manifest.ts';
import { pgConnection, runTool, toolMajorVersion } from './pg-tools.ts';

export interface DatabaseDump {
  dialect: 'sqlite' | 'postgres';
  method: BackupMethod;
  schema?: string;
  tool?: string;
  migrations: string[];
  tables: Record<string, number>;
  columns?: Record<string, string[]>;
  /** One ciphertext of the secret store, to check the key in the archive opens it (null: no secrets). */
  secretSample: string | null;
  /** Files written under the dump folder, relative to it. */
  files: string[];
}

export interface DumpOptions {
  signal: AbortSignal;
  /** PostgreSQL: the pg_dump binary ("pg_dump" on PATH by default); false forces the logical dump. */
  pgDump?: string | false;
  /** Why pg_dump was not used, for the run's output. */
  note?(line: string): void;
}

export const SQLITE_DUMP_FILE = 'garrison.db';
export const PG_DUMP_FILE = 'garrison.pgdump';
const FETCH_ROWS = 2000;

export async function dumpDatabase(db: Db, dir: string, opts: DumpOptions): Promise<DatabaseDump> {
  if (db.dialect.name === 'sqlite') return dumpSqlite(db, dir, opts.signal);
  return dumpPostgres(db, dir, opts);
}

async function dumpSqlite(db: Db, dir: string, signal: AbortSignal): Promise<DatabaseDump> {
  if (!db.file || db.file === ':memory:') throw new Error('this SQLite database has no file to back up (an in-memory database)');
  const target = path.join(dir, SQLITE_DUMP_FILE);
  const worker = new Worker(new URL('./sqlite-snapshot-worker.ts', import.meta.url), { workerData: { source: db.file, target } });
  const abort = () => void worker.terminate();
  signal.addEventListener('abort', abort, { once: true });
  try {
    const [info] = (await Promise.race([
      once(worker, 'message'),
      once(worker, 'exit').then(([code]) => {
        throw signal.aborted ? signal.reason : new Error(`the SQLite snapshot worker exited (${code}) before finishing`);
      }),
    ])) as [{ tables: Record<string, number>; migrations: string[]; secretSample: string | null }];
    return { dialect: 'sqlite', method: BackupMethod.sqliteBackup, ...info, files: [SQLITE_DUMP_FILE] };
  } finally {
    signal.removeEventListener('abort', abort);
    await worker.terminate();
  }
}

const quoteId = (name: string) => `"${name.replaceAll('"', '""')}"`;

async function dumpPostgres(db: Db, dir: string, opts: DumpOptions): Promise<DatabaseDump> {
  return db.kysely.connection().execute(async (conn) => {
    // Read-only and repeatable read: one snapshot for every table, and no lock beyond pg_dump's share locks.
    await sql`begin isolation level repeatable read read only`.execute(conn);
    try {
      const schema = (await sql<{ s: string }>`select current_schema() as s`.execute(conn)).rows[0]!.s;
      const names = (await sql<{ n: string }>`select table_name as n from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE' order by table_name`.execute(conn)).rows.map((r) => r.n);
      const tables = names.filter((n) => !n.startsWith('garrison_migrations'));
      const migrations = names.includes('garrison_migrations') ? (await sql<{ name: string }>`select name from garrison_migrations order by name`.execute(conn)).rows.map((r) => r.name) : [];
      const secretSample = tables.includes('secrets') ? ((await sql<{ c: string }>`select ciphertext as c from secrets limit 1`.execute(conn)).rows[0]?.c ?? null) : null;
      const base = { dialect: 'postgres' as const, schema, migrations, secretSample };
      const tool = opts.pgDump === false ? null : await usablePgDump(conn, opts.pgDump ?? 'pg_dump', opts.note);
      if (tool) {
        if (!db.url) throw new Error('the database connection has no URL for pg_dump');
        const snapshot = (await sql<{ s: string }>`select pg_export_snapshot() as s`.execute(conn)).rows[0]!.s;
        const { dbname, env } = pgConnection(db.url);
        const file = path.join(dir, PG_DUMP_FILE);
        const runtime = RUNTIME_TABLES.filter((t) => tables.includes(t)).map((t) => `--exclude-table-data=${schema}.${t}`);
        await runTool(tool.binary, ['--format=custom', `--schema=${schema}`, `--snapshot=${snapshot}`, '--no-owner', '--no-privileges', ...runtime, `--file=${file}`, `--dbname=${dbname}`], env, opts.signal);
        const counts: Record<string, number> = {};
        for (const t of tables) counts[t] = RUNTIME_TABLES.includes(t) ? 0 : Number((await sql<{ c: string }>`select count(*) as c from ${sql.id(t)}`.execute(conn)).rows[0]!.c);
        return { ...base, method: BackupMethod.pgDump, tool: tool.version, tables: counts, files: [PG_DUMP_FILE] };
      }
      const counts: Record<string, number> = {};
      const columns: Record<string, string[]> = {};
      for (const t of tables) {
        if (opts.signal.aborted) throw opts.signal.reason;
        columns[t] = (await sql<{ c: string }>`select column_name as c from information_schema.columns where table_schema = current_schema() and table_name = ${t} order by ordinal_position`.execute(conn)).rows.map((r) => r.c);
        counts[t] = await dumpTable(conn, RUNTIME_TABLES.includes(t) ? null : t, columns[t]!, path.join(dir, `${t}.jsonl`));
      }
      return { ...base, method: BackupMethod.logical, tables: counts, columns, files: tables.map((t) => `${t}.jsonl`) };
    } finally {
      await sql`rollback`.execute(conn);
    }
  });
}

/** pg_dump when it runs and is at least as new as the server (an older one refuses a newer server). */
async function usablePgDump(conn: Kysely<Database>, binary: string, note?: (line: string) => void): Promise<{ binary: string; version: string } | null> {
  const tool = await toolMajorVersion(binary);
  if (!tool) {
    note?.(`no pg_dump found (${binary}): logical dump instead`);
    return null;
  }
  const serverMajor = Math.floor(Number((await sql<{ v: string }>`show server_version_num`.execute(conn)).rows[0]!.v) / 10000);
  if (tool.major < serverMajor) {
    note?.(`pg_dump ${tool.major} is older than the PostgreSQL ${serverMajor} server: logical dump instead`);
    return null;
  }
  return { binary, version: tool.version };
}

/** How a logical dump writes a byte value: `{ "$bytes": base64 }`. */
export const BYTES_KEY = '$bytes';

/** One table as JSON lines through a cursor, so a large table never sits in memory at once. */
async function dumpTable(conn: Kysely<Database>, table: string | null, columns: string[], file: string): Promise<number> {
  const out = createWriteStream(file, { mode: 0o600 });
  // A runtime table (RUNTIME_TABLES) is written empty.
  if (table === null) {
    out.end();
    await finished(out);
    return 0;
  }
  let failure: Error | null = null;
  out.on('error', (err) => (failure ??= err));
  let count = 0;
  try {
    await sql.raw(`declare backup_rows no scroll cursor for select ${columns.map(quoteId).join(', ')} from ${quoteId(table)}`).execute(conn);
    for (;;) {
      const { rows } = await sql<Record<string, unknown>>`fetch ${sql.raw(String(FETCH_ROWS))} from backup_rows`.execute(conn);
      if (rows.length === 0) break;
      let text = '';
      for (const row of rows) {
        const values = columns.map((c) => row[c]);
        for (let i = 0; i < values.length; i++) {
          const v = values[i];
          // Bytes (repository archives, migration 0012) travel as base64, marked so the load gives them back as bytes.
          if (Buffer.isBuffer(v)) values[i] = { [BYTES_KEY]: v.toString('base64') };
          // Otherwise the schema stores text, numbers and 0/1 integers only (ADR 0003); anything else would not round-trip.
          else if (v !== null && typeof v !== 'string' && typeof v !== 'number') throw new Error(`${table}.${columns[i]} holds a ${typeof v} value, which a logical dump cannot carry`);
        }
        text += JSON.stringify(values) + '\n';
      }
      count += rows.length;
      if (!out.write(text)) await once(out, 'drain');
    }
    await sql`close backup_rows`.execute(conn);
  } finally {
    out.end();
    await finished(out).catch(() => {});
  }
  if (failure) throw failure;
  return count;
}
