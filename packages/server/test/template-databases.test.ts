/**
 * The tests' migrated databases (support/template-databases.ts) are copies of one migrated
 * database: each must be what migrating a new database from zero makes, to the row, so that
 * a test on a copy tests what a real server runs on. On every configured database.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { sql } from 'kysely';
import { openDatabase, type Db } from '../src/storage/database.ts';
import { migrateToLatest, migrationNames } from '../src/storage/migrate.ts';
import { schemaFacts, schemaSnapshot } from './support/schema-snapshot.ts';
import { dbKinds, tempDir, type DbKind } from './helpers.ts';

/** Everything a copy must share with a migrated database: the schema, every table's rows (but migration times), sequences and file settings. */
async function contents(db: Db) {
  const snapshot = await schemaSnapshot(db);
  const facts = schemaFacts(snapshot);
  const tables = Object.keys(snapshot.tables);
  const rows: Record<string, string[]> = {};
  for (const table of tables) {
    const all = (await sql<Record<string, unknown>>`select * from ${sql.id(table)}`.execute(db.kysely)).rows;
    // When each migration ran differs between two databases; which ones ran must not.
    rows[table] = all.map((r) => JSON.stringify(Object.entries(r).filter(([c]) => !(table === 'garrison_migrations' && c === 'timestamp')).sort(([a], [b]) => (a < b ? -1 : 1)))).sort();
  }
  const run = async (q: string) => (await sql<Record<string, unknown>>`${sql.raw(q)}`.execute(db.kysely)).rows;
  const extra =
    db.dialect.name === 'sqlite'
      ? {
          sequences: await run('select * from sqlite_sequence order by name'),
          pragmas: Object.fromEntries(await Promise.all(['auto_vacuum', 'journal_mode', 'page_size', 'user_version', 'application_id', 'encoding'].map(async (p) => [p, Object.values((await run(`pragma ${p}`))[0]!)[0]]))),
        }
      : {
          sequences: await run(`select sequencename, data_type::text, start_value::text, min_value::text, max_value::text, increment_by::text, cycle, cache_size::text, last_value::text from pg_sequences where schemaname = current_schema() order by sequencename`),
          objects: await run(`select c.relkind::text as kind, count(*)::int as n from pg_class c where c.relnamespace = (select oid from pg_namespace where nspname = current_schema()) group by 1 order by 1`),
          owned: await run(`select s.relname as seq, t.relname as tbl, a.attname as col, d.deptype::text as dep from pg_depend d join pg_class s on s.oid = d.objid join pg_class t on t.oid = d.refobjid join pg_attribute a on a.attrelid = t.oid and a.attnum = d.refobjsubid where s.relkind = 'S' and s.relnamespace = (select oid from pg_namespace where nspname = current_schema()) order by 1`),
        };
  return { facts, rows, ...extra };
}

async function withDb<T>(kind: DbKind, migrated: boolean, fn: (db: Db) => Promise<T>): Promise<T> {
  const dir = await tempDir('garrison-template-test-');
  const made = await kind.make(dir, { migrated });
  const db = await openDatabase(made.config);
  try {
    return await fn(db);
  } finally {
    await db.close();
    await made.cleanup();
    await rm(dir, { recursive: true, force: true });
  }
}

for (const kind of dbKinds) {
  describe(`template databases (${kind.name})`, () => {
    it('a copy is a database migrated from zero, rows, sequences and settings included, and already at the newest migration', async () => {
      const fresh = await withDb(kind, false, async (db) => {
        assert.deepEqual(await migrateToLatest(db), migrationNames);
        return contents(db);
      });
      assert.deepEqual(fresh.rows.garrison_migrations!.length, migrationNames.length);
      for (let i = 0; i < 2; i++) {
        const copy = await withDb(kind, true, async (db) => {
          const before = await contents(db);
          assert.deepEqual(await migrateToLatest(db), [], 'nothing left to migrate');
          return before;
        });
        assert.deepEqual(copy, fresh);
      }
    });

    it('copies are independent of each other', async () => {
      await withDb(kind, true, async (a) => {
        await withDb(kind, true, async (b) => {
          await sql`insert into server_settings (key, value) values ('probe', 'a')`.execute(a.kysely);
          const inB = (await sql<{ n: number }>`select count(*) as n from server_settings where key = 'probe'`.execute(b.kysely)).rows[0]!;
          assert.equal(Number(inB.n), 0);
        });
      });
      await withDb(kind, true, async (c) => {
        const inC = (await sql<{ n: number }>`select count(*) as n from server_settings where key = 'probe'`.execute(c.kysely)).rows[0]!;
        assert.equal(Number(inC.n), 0);
      });
    });
  });
}
