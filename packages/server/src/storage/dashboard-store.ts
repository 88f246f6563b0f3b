/**
 * The dashboard's reads (issue 16): each administrator's layout (migration 0018, the table
 * declared here with Kysely's `withTables`: only this store uses it), and the counts of the
 * monitors and trends, each one aggregate query that the database answers without sending
 * rows back:
 *
 * - devices: counts over `devices` (by agent version, by OS name, not seen since a time,
 *   enrolled per day). Without a group filter they read the table once each (it has no index
 *   on those columns; a count over every device has to read them all anyway); confined to
 *   groups they read only those groups' rows through `devices_group`.
 * - detections: events of the kinds ending in `.detection`, found first by a loose index scan
 *   of `events_kind` (one seek per distinct kind), then counted with `kind in (...)`, read
 *   through `events_kind` (only detection rows are visited, never the rest of the log).
 * - run outcomes per day: runs that ended since the period began, by `runs_updated` (the range
 *   of the period only), in a final state.
 *
 * Days are UTC: the first ten characters of the stored ISO time.
 */
import { sql, type Kysely } from 'kysely';
import type { Db } from './database.ts';
import { EventStore } from './event-store.ts';
import type { Database } from './schema.ts';

export interface DashboardLayoutsTable {
  admin_id: string;
  monitors: string;
  updated_at: string;
}
interface DashboardDatabase extends Database {
  dashboard_layouts: DashboardLayoutsTable;
}

export interface StoredLayout {
  monitors: string[];
  updatedAt: string;
}

const DETECTION_SUFFIX = '.detection';
/** The run states the trend counts as succeeded and as failed. */
export const SUCCEEDED_STATES = ['succeeded', 'succeeded_with_warnings'] as const;
export const FAILED_STATES = ['failed', 'timed_out'] as const;

/** Group ids for an `in` filter; an empty reach matches nothing. */
const inList = (groupIds: readonly string[]) => (groupIds.length ? [...groupIds] : ['']);

export class DashboardStore {
  readonly #db: Db;
  readonly #k: Kysely<DashboardDatabase>;
  readonly #events: EventStore;
  constructor(db: Db) {
    this.#db = db;
    this.#k = db.kysely.withTables<{ dashboard_layouts: DashboardLayoutsTable }>() as unknown as Kysely<DashboardDatabase>;
    this.#events = new EventStore(db);
  }

  // --- Layouts -------------------------------------------------------------------------------

  async layout(adminId: string): Promise<StoredLayout | undefined> {
    const r = await this.#k.selectFrom('dashboard_layouts').select(['monitors', 'updated_at']).where('admin_id', '=', adminId).executeTakeFirst();
    return r ? { monitors: JSON.parse(r.monitors) as string[], updatedAt: r.updated_at } : undefined;
  }
  async putLayout(adminId: string, monitors: readonly string[], at: string): Promise<void> {
    const value = JSON.stringify(monitors);
    await this.#k.transaction().execute(async (trx) => {
      await trx
        .insertInto('dashboard_layouts')
        .values({ admin_id: adminId, monitors: value, updated_at: at })
        .onConflict((oc) => oc.column('admin_id').doUpdateSet({ monitors: value, updated_at: at }))
        .execute();
      // Layouts of administrators deleted since: the table holds one small row per administrator.
      await trx.deleteFrom('dashboard_layouts').where('admin_id', 'not in', (eb) => eb.selectFrom('admins').select('admins.id')).execute();
    });
  }
  async deleteLayout(adminId: string): Promise<void> {
    await this.#k.deleteFrom('dashboard_layouts').where('admin_id', '=', adminId).execute();
  }

  // --- Devices -------------------------------------------------------------------------------

  /** Devices in all, and those whose last contact is before each of `cutoffs` (or who never made contact). */
  async notSeen(cutoffs: readonly string[], groupIds?: readonly string[]): Promise<{ total: number; notSeen: number[] }> {
    let q = this.#k.selectFrom('devices').select((eb) => [
      eb.fn.countAll<number>().as('total'),
      ...cutoffs.map((c, i) => sql<number>`sum(case when last_contact_at is null or last_contact_at < ${c} then 1 else 0 end)`.as(`c${i}`)),
    ]);
    if (groupIds) q = q.where('group_id', 'in', inList(groupIds));
    const r = (await q.executeTakeFirst()) as Record<string, unknown> | undefined;
    return { total: Number(r?.total ?? 0), notSeen: cutoffs.map((_, i) => Number(r?.[`c${i}`] ?? 0)) };
  }
  /** Devices per value of a column, most first. */
  async countsBy(column: 'agent_version' | 'os_name', groupIds?: readonly string[]): Promise<{ value: string; count: number }[]> {
    let q = this.#k.selectFrom('devices').select([`${column} as value` as 'agent_version', (eb) => eb.fn.countAll<number>().as('n')]);
    if (groupIds) q = q.where('group_id', 'in', inList(groupIds));
    const rows = (await q.groupBy(column).execute()) as unknown as { value: string; n: number | string }[];
    return rows.map((r) => ({ value: r.value, count: Number(r.n) })).sort((a, b) => b.count - a.count || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
  }
  /** Devices enrolled per UTC day from `since` until `until` (excluded; none: now), of those that still exist. */
  async enrolledPerDay(since: string, groupIds?: readonly string[], until?: string): Promise<Map<string, number>> {
    const day = sql<string>`substr(enrolled_at, 1, 10)`;
    let q = this.#k.selectFrom('devices').select([day.as('day'), (eb) => eb.fn.countAll<number>().as('n')]).where('enrolled_at', '>=', since);
    if (until) q = q.where('enrolled_at', '<', until);
    if (groupIds) q = q.where('group_id', 'in', inList(groupIds));
    const rows = await q.groupBy(day).execute();
    return new Map(rows.map((r) => [r.day, Number(r.n)]));
  }

  // --- Detections ----------------------------------------------------------------------------

  /** The detection kinds (`<product>.detection`) in the log, by a loose index scan of events_kind. */
  async detectionKinds(): Promise<string[]> {
    const kinds = await this.#events.distinctKinds({ limit: 10_000 });
    return kinds.filter((k) => k.endsWith(DETECTION_SUFFIX));
  }
  /** Detection events at or after each of `since` (the earliest first bounds the read). */
  async detectionsSince(kinds: readonly string[], since: readonly string[], groupIds?: readonly string[]): Promise<number[]> {
    if (!kinds.length || !since.length) return since.map(() => 0);
    const earliest = [...since].sort()[0]!;
    let q = this.#k
      .selectFrom('events')
      .select(since.map((s, i) => sql<number>`sum(case when time >= ${s} then 1 else 0 end)`.as(`c${i}`)))
      .where('kind', 'in', [...kinds])
      .where('time', '>=', earliest);
    if (groupIds) q = q.where('group_id', 'in', inList(groupIds));
    const r = (await q.executeTakeFirst()) as Record<string, unknown> | undefined;
    return since.map((_, i) => Number(r?.[`c${i}`] ?? 0));
  }
  /** Detection events per UTC day from `since` until `until` (excluded; none: now). */
  async detectionsPerDay(kinds: readonly string[], since: string, groupIds?: readonly string[], until?: string): Promise<Map<string, number>> {
    if (!kinds.length) return new Map();
    const day = sql<string>`substr(time, 1, 10)`;
    let q = this.#k.selectFrom('events').select([day.as('day'), (eb) => eb.fn.countAll<number>().as('n')]).where('kind', 'in', [...kinds]).where('time', '>=', since);
    if (until) q = q.where('time', '<', until);
    if (groupIds) q = q.where('group_id', 'in', inList(groupIds));
    const rows = await q.groupBy(day).execute();
    return new Map(rows.map((r) => [r.day, Number(r.n)]));
  }

  // --- Runs ----------------------------------------------------------------------------------

  /**
   * Runs that ended from `since` until `until` (excluded; none: now) per UTC day, succeeded and
   * failed: runs_updated reads the range of the period only (confined to groups, runs_device_state
   * per device of those groups).
   */
  async runOutcomesPerDay(since: string, groupIds?: readonly string[], until?: string): Promise<Map<string, { succeeded: number; failed: number }>> {
    const day = sql<string>`substr(updated_at, 1, 10)`;
    let q = this.#k
      .selectFrom('runs')
      .select([day.as('day'), 'state', (eb) => eb.fn.countAll<number>().as('n')])
      .where('updated_at', '>=', since)
      .where('state', 'in', [...SUCCEEDED_STATES, ...FAILED_STATES]);
    if (until) q = q.where('updated_at', '<', until);
    if (groupIds) q = q.where('device_id', 'in', (eb) => eb.selectFrom('devices').select('devices.id').where('devices.group_id', 'in', inList(groupIds)));
    const rows = await q.groupBy([day, 'state']).execute();
    const out = new Map<string, { succeeded: number; failed: number }>();
    for (const r of rows) {
      const d = out.get(r.day) ?? { succeeded: 0, failed: 0 };
      if ((SUCCEEDED_STATES as readonly string[]).includes(r.state)) d.succeeded += Number(r.n);
      else d.failed += Number(r.n);
      out.set(r.day, d);
    }
    return out;
  }
}
