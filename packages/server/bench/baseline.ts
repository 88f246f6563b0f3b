/**
 * The bare ingest baseline: what SQLite alone does with the same rows, so that the server's
 * ingest can be shown as a ratio to it. The table has the shape of `runs` (the same 17
 * columns, primary key and the three indexes of the migration), the database the same
 * settings as the server's (WAL, synchronous=NORMAL), and the rows go in through one prepared
 * INSERT executed in transactions of `batch` rows: no SQL building, no upsert, no JSON, no
 * sockets.
 */
import { randomUUID } from 'node:crypto';
import SQLite from 'better-sqlite3';
import { now } from './shared.ts';

export interface BaselineResult {
  rows: number;
  batch: number;
  transactions: number;
  ms: number;
  rowsPerSecond: number;
}

const COLUMNS = [
  'id',
  'task_id',
  'device_id',
  'request_id',
  'state',
  'percent',
  'attempt',
  'seq',
  'cause',
  'created_at',
  'started_at',
  'ended_at',
  'exit_code',
  'reason',
  'output_tail',
  'expires_at',
  'updated_at',
] as const;

export function runBaseline(file: string, rows: number, batch = 5000): BaselineResult {
  const db = new SQLite(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(`create table runs (
      id text primary key, task_id text not null, device_id text not null, request_id text, state text not null,
      percent integer, attempt integer not null, seq integer not null, cause text not null, created_at text not null,
      started_at text, ended_at text, exit_code integer, reason text, output_tail text, expires_at text, updated_at text not null)`);
    db.exec('create index runs_task_device on runs (task_id, device_id, created_at)');
    db.exec('create index runs_device_state on runs (device_id, state)');
    db.exec('create index runs_updated on runs (updated_at)');
    // The rows are made before the clock starts: the baseline times the database only.
    const taskId = randomUUID();
    const requestId = randomUUID();
    const t = new Date().toISOString();
    const data: unknown[][] = [];
    for (let i = 0; i < rows; i++) {
      const final = i % 2 === 1;
      data.push([randomUUID(), taskId, randomUUID(), requestId, final ? 'succeeded' : 'running', final ? 100 : 0, 1, final ? 2 : 1, 'run-now', t, t, final ? t : null, final ? 0 : null, null, final ? '' : null, null, t]);
    }
    const insert = db.prepare(`insert into runs (${COLUMNS.join(', ')}) values (${COLUMNS.map(() => '?').join(', ')})`);
    const insertBatch = db.transaction((part: unknown[][]) => {
      for (const r of part) insert.run(r);
    });
    let transactions = 0;
    const start = now();
    for (let i = 0; i < data.length; i += batch) {
      insertBatch(data.slice(i, i + batch));
      transactions++;
    }
    const ms = now() - start;
    return { rows, batch, transactions, ms, rowsPerSecond: (rows / ms) * 1000 };
  } finally {
    db.close();
  }
}
