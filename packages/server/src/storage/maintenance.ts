/**
 * Database maintenance, the part that differs between the dialects: how big the database is,
 * and how to reclaim space and refresh the planner's statistics. Kept here, beside
 * database.ts, so that the maintenance task never branches on a database name itself.
 */
import { sql } from 'kysely';
import type { Db } from './database.ts';

export interface DatabaseSize {
  /** Bytes the database occupies (SQLite: the file's pages; PostgreSQL: our tables with indexes and TOAST). */
  bytes: number;
  /** Bytes in free pages a vacuum could give back (SQLite only; PostgreSQL reuses them itself). */
  freeBytes: number;
}

export async function databaseSize(db: Db): Promise<DatabaseSize> {
  if (db.dialect.name === 'sqlite') {
    const one = async (pragma: string) => Number(Object.values((await sql.raw(`pragma ${pragma}`).execute(db.kysely)).rows[0] as object)[0]);
    const pageSize = await one('page_size');
    return { bytes: (await one('page_count')) * pageSize, freeBytes: (await one('freelist_count')) * pageSize };
  }
  const r = await sql<{ bytes: string | null }>`
    select sum(pg_total_relation_size(c.oid))::bigint as bytes from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = current_schema() and c.relkind = 'r'`.execute(db.kysely);
  return { bytes: Number(r.rows[0]?.bytes ?? 0), freeBytes: 0 };
}

export type VacuumMode = 'auto' | 'always' | 'never';

/**
 * Refreshes statistics and reclaims space. PostgreSQL: a plain VACUUM (ANALYZE) of the tables
 * that purges thin out; it runs beside normal reads and writes (never VACUUM FULL, which
 * locks the tables). SQLite: ANALYZE (via `pragma optimize`) always; free pages are given back
 * by `pragma incremental_vacuum` in steps of 8 MiB with the event loop let through between
 * steps, in databases created with auto_vacuum=INCREMENTAL (every database since issue 6).
 * An older file can only be shrunk by a full VACUUM, which holds the one connection every
 * query waits on while it rewrites the file (seconds per hundred MiB kept): only "always" does
 * that; "auto" leaves the free pages for SQLite to reuse. Returns what was done.
 */
export async function vacuumDatabase(db: Db, mode: VacuumMode, tables: readonly string[], signal?: AbortSignal): Promise<string[]> {
  if (db.dialect.name === 'postgres') {
    if (mode === 'never') {
      await sql.raw(`analyze ${tables.join(', ')}`).execute(db.kysely);
      return ['analyze'];
    }
    await sql.raw(`vacuum (analyze) ${tables.join(', ')}`).execute(db.kysely);
    return ['vacuum (analyze)'];
  }
  const done: string[] = [];
  const pragma = async (text: string) => Number(Object.values(((await sql.raw(`pragma ${text}`).execute(db.kysely)).rows[0] as object | undefined) ?? { v: 0 })[0]);
  await sql`pragma optimize=0x10002`.execute(db.kysely);
  done.push('analyze');
  if (mode !== 'never') {
    if ((await pragma('auto_vacuum')) === 2) {
      const pageSize = await pragma('page_size');
      const step = Math.max(1, Math.floor((8 * 1048576) / pageSize));
      const before = await pragma('freelist_count');
      for (let free = before; free > 0 && !signal?.aborted; free = await pragma('freelist_count')) {
        if (db.execSqlite) db.execSqlite(`pragma incremental_vacuum(${step})`);
        else await sql.raw(`pragma incremental_vacuum(${step})`).execute(db.kysely);
        await new Promise((resolve) => setImmediate(resolve));
      }
      done.push(`incremental vacuum (${before - (await pragma('freelist_count'))} pages)`);
    } else if (mode === 'always') {
      await sql`vacuum`.execute(db.kysely);
      done.push('vacuum');
    } else {
      done.push('no vacuum (an older file without incremental vacuum: free pages are reused; vacuum "always" shrinks it, blocking while it runs)');
    }
  }
  // Folds the write-ahead log back into the file so that the size on disk reflects the result.
  await sql`pragma wal_checkpoint(TRUNCATE)`.execute(db.kysely);
  return done;
}
