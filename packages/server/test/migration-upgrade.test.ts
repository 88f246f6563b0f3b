/**
 * Upgrades (issue 13): a database that an earlier release left at any landed migration, with
 * rows in every table, migrated to the newest has the schema of a freshly migrated one and
 * keeps its rows. On every configured database.
 *
 * A fresh database alone cannot show this. Each database runs a migration once, as the file
 * stood when that database ran it: 0008 shipped without the task_device_state(run_id) index
 * (001f730) and was edited to add it (0d63645), so databases migrated in between never got it,
 * while every test, which starts from an empty database, did. `EDITED_AFTER_LANDING` below
 * recreates each such database as it really was (now that landed files are hashed,
 * `landed-migrations.test.ts`, the list should not grow), and the upgrade from there must
 * reach the same schema too: 0010 is what makes it do so for 0008.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { sql, type Kysely } from 'kysely';
import { openDatabase, type Db } from '../src/storage/database.ts';
import { migrateTo, migrateToLatest, migrationNames } from '../src/storage/migrate.ts';
import { schemaFacts, schemaSnapshot, tableNames, type SchemaSnapshot } from './support/schema-snapshot.ts';
import { dbKinds, tempDir, type DbKind } from './helpers.ts';
import { GroupTree, PolicyIndex } from '@garrison/core';
import { PolicyStore } from '../src/storage/policy-store.ts';
import { PluginRegistry } from '../src/plugins/registry.ts';
import { builtinGarrisonPlugin } from '../src/plugins/builtin-garrison.ts';

interface LandedEdit {
  migration: string;
  /** What the edit added, undone right after the migration ran: the database as the shipped file left it. */
  what: string;
  undo(db: Db): Promise<void>;
}

/** Migrations edited after they had shipped, and how to undo each edit's effect. */
const EDITED_AFTER_LANDING: LandedEdit[] = [
  {
    // 001f730 shipped 0008; 0d63645 added only this index to it (git show 0d63645 -- …/0008-server-tasks.ts).
    migration: '0008-server-tasks',
    what: 'as 001f730 shipped it (without the task_device_state_run index)',
    undo: async (db) => db.kysely.schema.dropIndex('task_device_state_run').execute(),
  },
];

interface Scenario {
  /** The last migration the older release ran. */
  at: string;
  /** The edits of landed migrations that this database ran without. */
  asShipped: LandedEdit[];
}

/**
 * One database at every landed migration but the newest, and, where a migration it ran was
 * edited after landing, a second one that ran it as it first shipped.
 */
function scenarios(): Scenario[] {
  const out: Scenario[] = [];
  for (const at of migrationNames.slice(0, -1)) {
    out.push({ at, asShipped: [] });
    const edits = EDITED_AFTER_LANDING.filter((e) => e.migration <= at);
    if (edits.length > 0) out.push({ at, asShipped: edits });
  }
  return out;
}

const MIGRATION_TABLES = ['garrison_migrations'];

/**
 * Two rows in every table, every column set (nullable ones too, so that a migration which
 * rebuilds a table and forgets a column shows), distinct per row so that unique keys hold.
 */
async function seed(db: Db, snapshot: SchemaSnapshot): Promise<void> {
  const k = db.kysely as unknown as Kysely<Record<string, Record<string, unknown>>>;
  for (const table of tableNames(snapshot, MIGRATION_TABLES)) {
    const rows = [1, 2].map((n) =>
      Object.fromEntries(Object.entries(snapshot.tables[table]!.columns).map(([column, c]) => [column, c.type.includes('int') ? n : `${table}.${column}#${n}`])),
    );
    await k.insertInto(table).values(rows).execute();
  }
}

/** Every row of the given tables, only the given columns, as sorted JSON: comparable before and after. */
async function rowsOf(db: Db, snapshot: SchemaSnapshot): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const table of tableNames(snapshot, MIGRATION_TABLES)) {
    const columns = Object.keys(snapshot.tables[table]!.columns);
    const rows = (await sql<Record<string, unknown>>`select * from ${sql.id(table)}`.execute(db.kysely)).rows;
    out[table] = rows.map((r) => JSON.stringify(columns.map((c) => [c, r[c]]))).sort();
  }
  return out;
}

async function withDatabase<T>(kind: DbKind, fn: (db: Db) => Promise<T>): Promise<T> {
  const dir = await tempDir('garrison-migration-');
  const made = await kind.make(dir);
  const db = await openDatabase(made.config);
  try {
    return await fn(db);
  } finally {
    await db.close();
    await made.cleanup();
    await rm(dir, { recursive: true, force: true });
  }
}

const newest = migrationNames.at(-1)!;

for (const kind of dbKinds) {
  describe(`migration upgrades (${kind.name})`, () => {
    let fresh: string[];
    before(async () => {
      fresh = await withDatabase(kind, async (db) => {
        await migrateToLatest(db);
        return schemaFacts(await schemaSnapshot(db));
      });
    });

    it('a fresh database has what the snapshot reads (the index 0008 added later among them)', () => {
      assert.ok(fresh.includes('table task_device_state: index task_device_state_run (run_id)'), fresh.filter((f) => f.startsWith('table task_device_state')).join('\n'));
      assert.ok(fresh.some((f) => /^table packages: unique constraint (packages_product_version )?\(product, version\)$/.test(f)));
      assert.ok(fresh.some((f) => /^table events: column id integer (not )?null primary key #1 \S/.test(f)));
    });

    for (const s of scenarios()) {
      const from = [s.at, ...s.asShipped.map((e) => `${e.migration} ${e.what}`)].join(', ');
      it(`from ${from} to ${newest}: the fresh schema, and every row kept`, async () => {
        await withDatabase(kind, async (db) => {
          // Migrate in steps only where an edit is undone right after its migration ran.
          const steps = [...new Set([...s.asShipped.map((e) => e.migration), s.at])].sort();
          const ran: string[] = [];
          for (const step of steps) {
            ran.push(...(await migrateTo(db, step)));
            for (const edit of s.asShipped.filter((e) => e.migration === step)) await edit.undo(db);
          }
          const atIndex = migrationNames.indexOf(s.at);
          assert.deepEqual(ran, migrationNames.slice(0, atIndex + 1));

          const old = await schemaSnapshot(db);
          await seed(db, old);
          const rowsBefore = await rowsOf(db, old);

          assert.deepEqual(await migrateToLatest(db), migrationNames.slice(atIndex + 1));
          const upgraded = schemaFacts(await schemaSnapshot(db));
          // What the upgraded database lacks and what it has beyond a fresh one: both empty.
          assert.deepEqual(
            { missing: fresh.filter((f) => !upgraded.includes(f)), extra: upgraded.filter((f) => !fresh.includes(f)) },
            { missing: [], extra: [] },
          );
          assert.deepEqual(await rowsOf(db, old), rowsBefore);
        });
      });
    }
  });
}

for (const kind of dbKinds) {
  describe(`group intervals become policies at 0013 (${kind.name})`, () => {
    it('a database at 0012 with intervals on groups upgrades, and every group keeps its effective intervals', async () => {
      await withDatabase(kind, async (db) => {
        await migrateTo(db, '0012-instances');
        const groups: [string, string | null, string, number | null, number | null][] = [
          ['root', null, 'My Organization', null, null],
          ['a', 'root', 'A', 10, null],
          ['b', 'a', 'B', null, 3],
          ['c', 'b', 'C', 2, 4],
          ['d', 'root', 'D', null, null],
        ];
        for (const [id, parent, name, checkIn, enforcement] of groups) {
          await sql`insert into groups (id, parent_id, name, block_inheritance, check_in_interval_minutes, policy_enforcement_minutes, created_at, updated_at)
            values (${id}, ${parent}, ${name}, ${0}, ${checkIn}, ${enforcement}, ${'2026-01-01T00:00:00.000Z'}, ${'2026-01-01T00:00:00.000Z'})`.execute(db.kysely);
        }
        // What the server read before: the nearest group that set a value, else the default.
        const byId = new Map(groups.map((g) => [g[0], g]));
        const tree = new GroupTree(groups.map(([id, parentId, name]) => ({ id, parentId, name, blockInheritance: false })));
        const old = (id: string) => {
          let checkIn: number | null = null;
          let enforcement: number | null = null;
          for (const a of tree.ancestors(id)) {
            checkIn ??= byId.get(a)![3];
            enforcement ??= byId.get(a)![4];
          }
          return { checkInIntervalMinutes: checkIn ?? 60, policyEnforcementMinutes: enforcement ?? 5 };
        };
        await migrateToLatest(db);
        const store = new PolicyStore(db);
        const plugins = new PluginRegistry();
        plugins.install(builtinGarrisonPlugin);
        const type = plugins.policyType('garrison')!;
        const [policies, assignments] = await Promise.all([store.listPolicies(), store.listAssignments()]);
        assert.deepEqual(policies.map((p) => p.name).sort(), ['My Organization/A – agent policy', 'My Organization/A/B – agent policy', 'My Organization/A/B/C – agent policy']);
        assert.deepEqual(policies.find((p) => p.name.endsWith('B – agent policy'))!.settings, { policyEnforcementMinutes: 3 });
        assert.equal(assignments.length, 3);
        const index = new PolicyIndex([{ product: 'garrison', defaults: type.defaults, lockable: type.lockable }], policies, assignments);
        for (const [id] of groups) {
          const e = index.effective({ id: 'probe', groupId: id, name: '', hostname: '', osPlatform: '', osName: '', tags: [], products: [] }, 'garrison', tree)!;
          assert.deepEqual({ checkInIntervalMinutes: e.settings.checkInIntervalMinutes!.value, policyEnforcementMinutes: e.settings.policyEnforcementMinutes!.value }, old(id), `group ${id}`);
        }
        assert.equal((await store.listRevisions(policies[0]!.id)).length, 1);
      });
    });
  });
}
