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
 * locks the tables). SQLite: ANALYZE (via `pragma optimize`) always; a full VACUUM rewrites
 * the file and holds the one connection every query waits on for its duration, so "auto"
 * does it only when more than a quarter of the file is free pages. Returns what was done.
 */
export async function vacuumDatabase(db: Db, mode: VacuumMode, tables: readonly string[]): Promise<string[]> {
  const done: string[] = [];
  if (db.dialect.name === 'postgres') {
    if (mode === 'never') {
      await sql.raw(`analyze ${tables.join(', ')}`).execute(db.kysely);
      return ['analyze'];
    }
    await sql.raw(`vacuum (analyze) ${tables.join(', ')}`).execute(db.kysely);
    return ['vacuum (analyze)'];
  }
  await sql`pragma optimize=0x10002`.execute(db.kysely);
  done.push('analyze');
  const size = await databaseSize(db);
  if (mode === 'always' || (mode === 'auto' && size.bytes > 0 && size.freeBytes / size.bytes > 0.25)) {
    await sql`vacuum`.execute(db.kysely);
    done.push('vacuum');
  }
  // Folds the write-ahead log back into the file so that the size on disk reflects the result.
  await sql`pragma wal_checkpoint(TRUNCATE)`.execute(db.kysely);
  return done;
}
