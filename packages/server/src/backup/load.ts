/**
 * Loading a backup's database into the restore target. Which way depends on the dump and the
 * target:
 *
 *   dump \ target     SQLite file                     PostgreSQL
 *   sqlite-backup     the file itself                 rows copied from the file (logical load)
 *   pg_dump           refused (needs PostgreSQL)      pg_restore
 *   logical           rows from the JSON lines        rows from the JSON lines
 *
 * A logical load migrates the empty target with this version's migrations, then inserts every
 * row in one transaction (all or nothing), which is why it demands the very migrations the
 * dump was taken at: it copies rows, not schema changes.
 */
import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { CompiledQuery, sql, type Kysely } from 'kysely';
import { openDatabase, type Db } from '../storage/database.ts';
import { migrateToLatest } from '../storage/migrate.ts';
import { RestoreError, type BackupManifest } from './manifest.ts';
import { pgConnection, runTool, toolMajorVersion, toolOutput, majorOf } from './pg-tools.ts';
import { BYTES_KEY } from './dump.ts';

export type RestoreTarget = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string; schema: string };

interface Batch {
  table: string;
  columns: string[];
  rows: unknown[][];
}
const BATCH_ROWS = 1000;
type AnyDb = Kysely<Record<string, Record<string, unknown>>>;

/** The migrations this version of Garrison has: those applied to a scratch in-memory database. */
export async function codeMigrations(): Promise<string[]> {
  const scratch = await openDatabase({ kind: 'sqlite', file: ':memory:' });
  try {
    return (await migrateToLatest(scratch)).sort();
  } finally {
    await scratch.close();
  }
}

export function openTarget(target: RestoreTarget): Promise<Db> {
  return openDatabase(target.kind === 'sqlite' ? target : { kind: 'postgres', url: target.url, schema: target.schema });
}

/** Tables (besides Kysely's migration tables) in a PostgreSQL schema; 0 when it does not exist. */
export async function pgSchemaTables(url: string, schema: string): Promise<{ exists: boolean; tables: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const exists = (await client.query('select 1 from information_schema.schemata where schema_name = $1', [schema])).rowCount! > 0;
    const tables = Number((await client.query("select count(*) as c from information_schema.tables where table_schema = $1", [schema])).rows[0].c);
    return { exists, tables };
  } finally {
    await client.end();
  }
}

async function pgExec(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

const quoteId = (name: string) => `"${name.replaceAll('"', '""')}"`;

export async function loadDatabase(manifest: BackupManifest, databaseDir: string, workDir: string, target: RestoreTarget, note: (line: string) => void): Promise<void> {
  const method = manifest.database.method;
  if (method === 'pg_dump') {
    if (target.kind !== 'postgres') throw new RestoreError('this backup holds a pg_dump of PostgreSQL: restore it into PostgreSQL with --database-url');
    return pgRestore(manifest, path.join(databaseDir, 'garrison.pgdump'), workDir, target, note);
  }
  if (method === 'sqlite-backup' && target.kind === 'sqlite') return; // the file is moved into place by the caller
  const batches = method === 'logical' ? jsonLinesBatches(databaseDir, manifest) : sqliteBatches(path.join(databaseDir, 'garrison.db'), Object.keys(manifest.database.tables));
  const db = await openTarget(target);
  try {
    await migrateToLatest(db);
    await loadRows(db, Object.keys(manifest.database.tables), batches);
  } finally {
    await db.close();
  }
}

async function* jsonLinesBatches(dir: string, manifest: BackupManifest): AsyncGenerator<Batch> {
  for (const [table, columns] of Object.entries(manifest.database.columns ?? {})) {
    let rows: unknown[][] = [];
    const lines = createInterface({ input: createReadStream(path.join(dir, `${table}.jsonl`)), crlfDelay: Infinity });
    for await (const line of lines) {
      if (!line) continue;
      const values = JSON.parse(line) as unknown;
      if (!Array.isArray(values) || values.length !== columns.length) throw new Error(`${table}.jsonl: a line does not hold ${columns.length} values`);
      for (let i = 0; i < values.length; i++) {
        const v: unknown = values[i];
        if (v !== null && typeof v === 'object') {
          const b64 = (v as Record<string, unknown>)[BYTES_KEY];
          if (typeof b64 !== 'string') throw new Error(`${table}.jsonl: ${columns[i]} holds an object that is not bytes`);
          values[i] = Buffer.from(b64, 'base64');
        }
      }
      rows.push(values);
      if (rows.length >= BATCH_ROWS) {
        yield { table, columns, rows };
        rows = [];
      }
    }
    if (rows.length) yield { table, columns, rows };
  }
}

async function* sqliteBatches(file: string, tables: string[]): AsyncGenerator<Batch> {
  const src = new SQLite(file, { readonly: true, fileMustExist: true });
  try {
    for (const table of tables) {
      const columns = (src.pragma(`table_info(${quoteId(table)})`) as { name: string }[]).map((c) => c.name);
      let rows: unknown[][] = [];
      for (const row of src.prepare(`select ${columns.map(quoteId).join(', ')} from ${quoteId(table)}`).raw(true).iterate() as Iterable<unknown[]>) {
        rows.push(row);
        if (rows.length >= BATCH_ROWS) {
          yield { table, columns, rows };
          rows = [];
        }
      }
      if (rows.length) yield { table, columns, rows };
    }
  } finally {
    src.close();
  }
}

/**
 * The INSERT of `count` rows, written out rather than built with Kysely's query builder: for
 * hundreds of thousands of rows building the query costs more than running it, and full
 * batches share one text, which the SQLite statement cache then prepares once.
 */
function insertText(dialect: 'sqlite' | 'postgres', table: string, columns: string[], count: number): string {
  let n = 0;
  const row = () => `(${columns.map(() => (dialect === 'sqlite' ? '?' : `$${++n}`)).join(', ')})`;
  return `insert into ${quoteId(table)} (${columns.map(quoteId).join(', ')}) values ${Array.from({ length: count }, row).join(', ')}`;
}

/**
 * Every row in one transaction: tables emptied first (a fresh migration creates none today,
 * but a later one might seed rows), batches bound under the dialect's parameter limit, and
 * PostgreSQL's identity sequences moved past the largest id restored.
 */
async function loadRows(db: Db, tables: string[], batches: AsyncIterable<Batch>): Promise<void> {
  await db.kysely.transaction().execute(async (trx) => {
    const k = trx as unknown as AnyDb;
    for (const t of tables) await k.deleteFrom(t).execute();
    for await (const b of batches) {
      if (!tables.includes(b.table)) throw new Error(`rows of table ${b.table}, which the manifest does not list`);
      const per = Math.max(1, Math.min(b.rows.length, Math.floor(db.dialect.maxParameters / b.columns.length)));
      for (let i = 0; i < b.rows.length; i += per) {
        const rows = b.rows.slice(i, i + per);
        await trx.executeQuery(CompiledQuery.raw(insertText(db.dialect.name, b.table, b.columns, rows.length), rows.flat()));
      }
    }
    if (db.dialect.name === 'postgres') {
      const ids = await sql<{ t: string; c: string }>`select table_name as t, column_name as c from information_schema.columns where table_schema = current_schema() and is_identity = 'YES'`.execute(trx);
      for (const { t, c } of ids.rows) {
        await sql.raw(`select setval(pg_get_serial_sequence('${quoteId(t).replaceAll("'", "''")}', '${c.replaceAll("'", "''")}'), coalesce(max(${quoteId(c)}), 0) + 1, false) from ${quoteId(t)}`).execute(trx);
      }
    }
  });
}

/**
 * pg_restore into the target schema. pg_dump's archive names its schema in every object, and
 * its "CREATE SCHEMA" fails where the schema exists (always so for "public"), so the restore
 * leaves that entry out and creates the schema itself; a different target schema is reached
 * by restoring under the source name and renaming it, which needs that name free in the
 * target database.
 */
async function pgRestore(manifest: BackupManifest, file: string, workDir: string, target: { url: string; schema: string }, note: (line: string) => void): Promise<void> {
  const source = manifest.database.schema ?? 'public';
  const tool = await toolMajorVersion('pg_restore');
  if (!tool) throw new RestoreError('pg_restore is not on PATH: install the PostgreSQL client tools (the version of the pg_dump that made the backup, or newer)');
  const dumpMajor = majorOf(manifest.database.tool ?? '');
  if (dumpMajor !== null && tool.major < dumpMajor) throw new RestoreError(`pg_restore ${tool.major} cannot read a pg_dump ${dumpMajor} archive: install PostgreSQL ${dumpMajor} client tools or newer`);
  const { dbname, env } = pgConnection(target.url);
  const toc = await toolOutput('pg_restore', ['--list', file], env);
  const listFile = path.join(workDir, 'restore.list');
  await writeFile(listFile, toc.split('\n').filter((l) => !/^\d+;\s+\d+\s+\d+\s+(SCHEMA - |COMMENT - SCHEMA )/.test(l)).join('\n'), { mode: 0o600 });
  const rename = source !== target.schema;
  if (rename && (await pgSchemaTables(target.url, source)).exists) throw new RestoreError(`the backup's schema "${source}" exists in the target database: restore into a database without it, or into schema "${source}"`);
  await pgExec(target.url, `create schema if not exists ${quoteId(source)}`);
  try {
    await runTool('pg_restore', ['--no-owner', '--no-privileges', '--exit-on-error', '--single-transaction', `--use-list=${listFile}`, `--dbname=${dbname}`, file], env);
    if (rename) {
      // The target schema is empty (checked before): drop it so that the restored one can take its name.
      await pgExec(target.url, `drop schema if exists ${quoteId(target.schema)}; alter schema ${quoteId(source)} rename to ${quoteId(target.schema)}`);
      note(`restored schema "${source}" as "${target.schema}"`);
    }
  } catch (err) {
    if (rename) await pgExec(target.url, `drop schema if exists ${quoteId(source)} cascade`).catch(() => {});
    throw err;
  }
}
