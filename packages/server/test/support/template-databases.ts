/**
 * Test support: migrated databases without migrating each one from zero. Migrating takes
 * ~30 ms on a new SQLite file and ~170-200 ms on a new PostgreSQL schema, and the suite makes
 * a database for most of its tests; copying one migrated database is much cheaper.
 *
 * - SQLite: one file per test process is migrated (in a temporary folder, removed at exit),
 *   checkpointed and closed, so that the file alone holds the whole database; each test gets a
 *   copy of it.
 * - PostgreSQL: a schema is migrated once and dumped with `pg_dump` (its DDL and its rows: the
 *   migrations' bookkeeping, which makes migrateToLatest see the copy as up to date); each
 *   test's schema is made by running that script, with the schema renamed, as one multi-statement
 *   query (one round trip, one transaction). The script is kept in the temporary folder under
 *   a hash of everything that shapes it (the migrations, migrate.ts, database.ts and the
 *   server's version), so that the test processes of one run (and later runs) share it rather
 *   than each migrating and dumping its own. The next test's schema is made ahead, while the
 *   current test runs, and left uncommitted until it is asked for (see Spare). Without a usable
 *   pg_dump, each test's schema is migrated from zero, as before.
 *
 * A copy is the same as a freshly migrated database, rows included (template-databases.test.ts
 * compares them). Tests of the migrations themselves ask for an empty database instead.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { constants, existsSync, rmSync, statSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import pg from 'pg';
import { openDatabase } from '../../src/storage/database.ts';
import { migrateToLatest } from '../../src/storage/migrate.ts';
import { pgConnection } from '../../src/backup/pg-tools.ts';

const STORAGE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/storage');

let sqliteTemplate: Promise<string> | undefined;

/** The migrated SQLite file of this process (made at the first call). */
function sqliteTemplateFile(): Promise<string> {
  sqliteTemplate ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'garrison-template-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'garrison.db');
    const db = await openDatabase({ kind: 'sqlite', file });
    try {
      await migrateToLatest(db);
      // Everything into the main file (closing the last connection checkpoints too).
      db.execSqlite!('pragma wal_checkpoint(TRUNCATE)');
    } finally {
      await db.close();
    }
    for (const extra of ['-wal', '-journal']) {
      if (existsSync(file + extra) && statSync(file + extra).size > 0) throw new Error(`the template database left a non-empty ${extra} file: copying the main file alone would lose it`);
    }
    return file;
  })();
  sqliteTemplate.catch(() => (sqliteTemplate = undefined));
  return sqliteTemplate;
}

/** Copies the migrated SQLite database to `file` (which must not exist yet). */
export async function copyMigratedSqlite(file: string): Promise<void> {
  await copyFile(await sqliteTemplateFile(), file, constants.COPYFILE_EXCL);
}

/** Stands for the schema's name in the cached script. */
const SCHEMA_TOKEN = 'garrison_template_schema_0f3c9a';
let pgTemplate: Promise<string | null> | undefined;

/** The script that makes a migrated schema named SCHEMA_TOKEN, or null when pg_dump cannot be used. */
function pgTemplateScript(url: string): Promise<string | null> {
  pgTemplate ??= (async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const version = await client
      .query<{ server_version_num: string }>('show server_version_num')
      .then((r) => r.rows[0]!.server_version_num)
      .finally(() => client.end());
    const hash = createHash('sha256').update(`server ${version}\n`);
    const migrations = path.join(STORAGE, 'migrations');
    for (const f of [...(await readdir(migrations)).map((n) => path.join(migrations, n)).sort(), path.join(STORAGE, 'migrate.ts'), path.join(STORAGE, 'database.ts'), fileURLToPath(import.meta.url)]) {
      hash.update(`${path.basename(f)}\n`).update(await readFile(f));
    }
    const dir = path.join(os.tmpdir(), 'garrison-test-templates');
    const cached = path.join(dir, `pg-${hash.digest('hex').slice(0, 32)}.sql`);
    try {
      return await readFile(cached, 'utf8');
    } catch {
      /* not made yet */
    }
    const script = await dumpMigratedSchema(url);
    if (script === null) return null;
    await mkdir(dir, { recursive: true });
    // Written whole under another name first: a process that reads it never sees half of it.
    const partial = `${cached}.${process.pid}.${randomBytes(4).toString('hex')}`;
    await writeFile(partial, script);
    await rename(partial, cached);
    return script;
  })();
  pgTemplate.catch(() => (pgTemplate = undefined));
  return pgTemplate;
}

/** Migrates a new schema, dumps it (DDL and rows) with its name replaced by SCHEMA_TOKEN, and drops it. */
async function dumpMigratedSchema(url: string): Promise<string | null> {
  const schema = `garrison_template_${randomBytes(6).toString('hex')}`;
  const db = await openDatabase({ kind: 'postgres', url, schema, poolSize: 1 });
  try {
    await migrateToLatest(db);
    const { dbname, env } = pgConnection(url);
    const dump = await new Promise<string | null>((resolve, reject) => {
      execFile('pg_dump', ['--schema', schema, '--no-owner', '--no-privileges', '--no-comments', '--inserts', '--dbname', dbname], { env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (!err) resolve(stdout);
        // No pg_dump (ENOENT), or one older than the server, which refuses it.
        else if ((err as NodeJS.ErrnoException).code === 'ENOENT' || /server version mismatch|aborting because of server version/i.test(String(stderr))) resolve(null);
        else reject(new Error(`pg_dump of the template schema failed: ${String(stderr).trim() || err.message}`));
      });
    });
    if (dump === null) return null;
    const script = dump
      .split('\n')
      // psql's meta-commands (\restrict, \unrestrict), comments and blank lines: not SQL the server runs.
      .filter((line) => !line.startsWith('\\') && !line.startsWith('--') && line.trim() !== '')
      .join('\n')
      .replaceAll(schema, SCHEMA_TOKEN);
    if (!script.includes(`CREATE SCHEMA ${SCHEMA_TOKEN};`) || !script.includes(`INSERT INTO ${SCHEMA_TOKEN}.garrison_migrations `)) {
      throw new Error(`unexpected pg_dump output for the template schema:\n${script.slice(0, 2000)}`);
    }
    return script;
  } finally {
    await db.close();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`drop schema if exists ${schema} cascade`).finally(() => client.end());
  }
}

const newSchemaName = () => `t_${randomBytes(6).toString('hex')}`;

/**
 * The next test's schema, made ahead while the current test runs: the script inside a
 * transaction left open, which the next make commits (one round trip). Its connection does not
 * keep the process alive: when the process ends with a spare not taken, the connection closes
 * and PostgreSQL rolls the transaction back, leaving nothing behind.
 */
interface Spare {
  schema: string;
  client: pg.Client;
  /** Its connection, unreferenced until taken. */
  socket: net.Socket;
  /** Settles when the schema is made, uncommitted (rejects when it could not be). */
  made: Promise<void>;
}
let spare: Spare | undefined;

function prepareSpare(url: string, script: string): Spare {
  const schema = newSchemaName();
  const socket = new net.Socket();
  socket.unref();
  const client = new pg.Client({ connectionString: url, stream: () => socket });
  client.on('error', () => {});
  const made = (async () => {
    await client.connect();
    await client.query(`begin;\n${script.replaceAll(SCHEMA_TOKEN, schema)}`);
  })();
  made.catch(() => {});
  return { schema, client, socket, made };
}

/**
 * Makes a new schema as migrateToLatest makes one, rows included, and returns its name (a
 * committed schema, visible to every connection).
 */
export async function makeMigratedSchema(url: string): Promise<string> {
  const script = await pgTemplateScript(url);
  if (script === null) {
    const schema = newSchemaName();
    const db = await openDatabase({ kind: 'postgres', url, schema, poolSize: 1 });
    try {
      await migrateToLatest(db);
    } finally {
      await db.close();
    }
    return schema;
  }
  let schema: string | undefined;
  const taken = spare;
  spare = undefined;
  if (taken) {
    // Awaited by a test now: the test runner must not see the event loop empty meanwhile.
    taken.socket.ref();
    try {
      await taken.made;
      await taken.client.query('commit');
      schema = taken.schema;
    } catch {
      /* made again below */
    } finally {
      await taken.client.end().catch(() => {});
    }
  }
  if (!schema) {
    schema = newSchemaName();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      // One multi-statement query runs as one transaction. The script's SETs (search_path '' among them) end with this connection.
      await client.query(script.replaceAll(SCHEMA_TOKEN, schema));
    } finally {
      await client.end();
    }
  }
  spare ??= prepareSpare(url, script);
  return schema;
}
