/**
 * Worker thread: a consistent copy of the server's SQLite file while the server keeps writing.
 *
 * Why a worker, with its own connection: the server's Kysely connection is the single one every
 * query waits on, so VACUUM INTO there would stall every agent for the whole copy. A second
 * connection reads under WAL without blocking the writer. SQLite's online backup restarts
 * whenever another connection writes between two of its steps, so under steady load a
 * stepwise copy might never finish; copying every page in one step holds one read
 * transaction instead (a consistent snapshot, the writer carries on into the WAL) and, being in
 * a worker, does not block the server's event loop either. The cost: the WAL cannot be
 * checkpointed past that reader until the copy ends, so it grows for that long.
 */
import { parentPort, workerData } from 'node:worker_threads';
import SQLite from 'better-sqlite3';
import { RUNTIME_TABLES } from '../storage/schema.ts';

const { source, target } = workerData as { source: string; target: string };

const src = new SQLite(source, { readonly: true, fileMustExist: true });
src.pragma('busy_timeout = 5000');
try {
  // The first step copies 100 pages; returning a large count makes the next step copy the rest.
  await src.backup(target, { progress: () => 0x7fffffff });
} finally {
  src.close();
}

const copy = new SQLite(target);
try {
  // A self-contained file: no -wal beside it to lose on the way into the archive.
  copy.pragma('journal_mode = DELETE');
  const check = copy.pragma('quick_check', { simple: true });
  if (check !== 'ok') throw new Error(`the copied database fails SQLite's quick_check: ${String(check)}`);
  const names = (copy.prepare("select name from sqlite_master where type = 'table' and name not like 'sqlite\\_%' escape '\\' order by name").pluck().all() as string[]).filter((n) => !n.startsWith('garrison_migrations'));
  // Rows about the processes running now are not data (RUNTIME_TABLES).
  for (const n of names) if (RUNTIME_TABLES.includes(n)) copy.prepare(`delete from "${n}"`).run();
  const tables: Record<string, number> = {};
  for (const n of names) tables[n] = copy.prepare(`select count(*) from "${n.replaceAll('"', '""')}"`).pluck().get() as number;
  const hasMigrations = copy.prepare("select 1 from sqlite_master where type = 'table' and name = 'garrison_migrations'").get();
  const migrations = hasMigrations ? (copy.prepare('select name from garrison_migrations order by name').pluck().all() as string[]) : [];
  const secretSample = names.includes('secrets') ? ((copy.prepare('select ciphertext from secrets limit 1').pluck().get() as string | undefined) ?? null) : null;
  parentPort!.postMessage({ tables, migrations, secretSample });
} finally {
  copy.close();
}
