/**
 * Product policies (issue 15, ADR 0020).
 *
 * - `policies`: a named, revisioned policy of one product: the settings it sets, those it
 *   locks and its profiles (JSON text, as settings are everywhere else). `revision` grows by
 *   one with every change, written with compare-and-set.
 * - `policy_revisions`: every revision as its export document, for the history and for
 *   comparing what changed.
 * - `policy_assignments`: what a group says about a product's policy: the policy assigned to
 *   it (null: none of its own) and whether it blocks its ancestors' policies. One row per
 *   group and product. A deleted group's rows are deleted with it (by the group store: SQLite
 *   runs without foreign keys here, so no cascade is relied on).
 *
 * Today's intervals on groups become policies: each group with a check-in interval or a
 * policy enforcement interval of its own gets one "garrison" policy setting exactly those,
 * assigned to it, so every device's effective intervals stay what they were (the nearest
 * group that set a value wins, as before: a policy sets only what it names). The columns stay
 * (forward only) and are no longer read.
 */
import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('policies')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('product', 'text', (c) => c.notNull())
    .addColumn('revision', 'integer', (c) => c.notNull())
    .addColumn('settings', 'text', (c) => c.notNull())
    .addColumn('locked', 'text', (c) => c.notNull())
    .addColumn('profiles', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('updated_by', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('policies_product').on('policies').columns(['product', 'name']).execute();
  await db.schema
    .createTable('policy_revisions')
    .addColumn('policy_id', 'text', (c) => c.notNull())
    .addColumn('revision', 'integer', (c) => c.notNull())
    .addColumn('document', 'text', (c) => c.notNull())
    .addColumn('changed_at', 'text', (c) => c.notNull())
    .addColumn('changed_by', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('policy_revisions_pk', ['policy_id', 'revision'])
    .execute();
  await db.schema
    .createTable('policy_assignments')
    .addColumn('group_id', 'text', (c) => c.notNull())
    .addColumn('product', 'text', (c) => c.notNull())
    .addColumn('policy_id', 'text')
    .addColumn('block_inheritance', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('policy_assignments_pk', ['group_id', 'product'])
    .execute();
  await db.schema.createIndex('policy_assignments_policy').on('policy_assignments').column('policy_id').execute();

  // The group intervals, as one agent policy per group that set one.
  const groups = await sql<{ id: string; parent_id: string | null; name: string; check_in_interval_minutes: number | null; policy_enforcement_minutes: number | null }>`
    select id, parent_id, name, check_in_interval_minutes, policy_enforcement_minutes from groups`.execute(db);
  const byId = new Map(groups.rows.map((g) => [g.id, g]));
  const pathOf = (id: string): string => {
    const names: string[] = [];
    const seen = new Set<string>();
    for (let g = byId.get(id); g && !seen.has(g.id); g = g.parent_id === null ? undefined : byId.get(g.parent_id)) {
      seen.add(g.id);
      names.unshift(g.name);
    }
    return names.join('/');
  };
  const at = new Date().toISOString();
  for (const g of groups.rows) {
    const settings: Record<string, number> = {};
    if (g.check_in_interval_minutes !== null) settings.checkInIntervalMinutes = Number(g.check_in_interval_minutes);
    if (g.policy_enforcement_minutes !== null) settings.policyEnforcementMinutes = Number(g.policy_enforcement_minutes);
    if (Object.keys(settings).length === 0) continue;
    const id = randomUUID();
    const name = `${pathOf(g.id)} – agent policy`;
    const description = 'Made from the intervals set on the group before policies (migration 0013).';
    const document = JSON.stringify({ format: 'garrison-policy', formatVersion: 1, policy: { name, description, product: 'garrison', settings, locked: [], profiles: [] } });
    await sql`insert into policies (id, name, description, product, revision, settings, locked, profiles, created_at, created_by, updated_at, updated_by)
      values (${id}, ${name}, ${description}, ${'garrison'}, ${1}, ${JSON.stringify(settings)}, ${'[]'}, ${'[]'}, ${at}, ${'system'}, ${at}, ${'system'})`.execute(db);
    await sql`insert into policy_revisions (policy_id, revision, document, changed_at, changed_by) values (${id}, ${1}, ${document}, ${at}, ${'system'})`.execute(db);
    await sql`insert into policy_assignments (group_id, product, policy_id, block_inheritance) values (${g.id}, ${'garrison'}, ${id}, ${0})`.execute(db);
  }
}
