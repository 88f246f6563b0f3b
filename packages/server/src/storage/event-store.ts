/**
 * The central event log's table: inserts in batches (the event service's write-behind, and
 * device events stored once per event id), queries with the API's filters, and purges by age.
 */
import type { EventView } from '@garrison/protocol';
import { sql } from 'kysely';
import { deleteInBatches, insertChunks, type ColumnTypes, type Db } from './database.ts';
import type { EventsTable } from './schema.ts';

const EVENT_COLUMNS: ColumnTypes<Omit<EventsTable, 'id'>> = {
  time: 'text',
  severity: 'text',
  kind: 'text',
  message: 'text',
  actor: 'text',
  device_id: 'text',
  group_id: 'text',
  task_id: 'text',
  run_id: 'text',
  product: 'text',
  data: 'text',
  actor_id: 'text',
  actor_via: 'text',
  actor_address: 'text',
  event_id: 'text',
};

export const Severity = { info: 'info', warning: 'warning', error: 'error' } as const;
export type Severity = (typeof Severity)[keyof typeof Severity];
const severityRank: Record<string, number> = { info: 0, warning: 1, error: 2 };

/** An event to store: the API's shape without the id the database gives it. */
export type NewEvent = Omit<EventView, 'id' | 'deviceName' | 'taskName'>;
/** A stored event as the API returns it. */
export type StoredEvent = EventView;
export interface EventFilter {
  deviceId?: string;
  groupIds?: string[];
  /** The caller's read reach: events of other groups, and those of no group (server-wide), are left out. */
  visibleGroupIds?: string[];
  taskId?: string;
  runId?: string;
  product?: string;
  /** Kinds, comma-separated; `*` matches any characters. */
  kind?: string;
  /** Minimum severity. */
  severity?: Severity;
  since?: string;
  until?: string;
  /** Keyset paging, newest first: only events with a smaller id (older). */
  beforeId?: number;
  limit?: number;
}

/** A `kind` filter's patterns: exact kinds, and LIKE patterns for those with `*`. */
export function kindPatterns(kind: string): { exact: string[]; like: string[] } {
  const exact: string[] = [];
  const like: string[] = [];
  for (const k of kind.split(',').map((x) => x.trim()).filter(Boolean)) {
    if (k.includes('*')) like.push(k.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*+/g, '%'));
    else exact.push(k);
  }
  return { exact, like };
}

function toEvent(r: EventsTable & { id: number }): StoredEvent {
  return {
    id: Number(r.id),
    time: r.time,
    severity: r.severity as Severity,
    kind: r.kind,
    message: r.message,
    actor: r.actor,
    deviceId: r.device_id,
    groupId: r.group_id,
    taskId: r.task_id,
    runId: r.run_id,
    product: r.product,
    data: r.data ? (JSON.parse(r.data) as Record<string, unknown>) : null,
    actorId: r.actor_id,
    via: r.actor_via,
    address: r.actor_address,
  };
}

function eventRow(e: NewEvent, eventId: string | null): Omit<EventsTable, 'id'> {
  return {
    time: e.time,
    severity: e.severity,
    kind: e.kind,
    message: e.message,
    actor: e.actor ?? null,
    device_id: e.deviceId ?? null,
    group_id: e.groupId ?? null,
    task_id: e.taskId ?? null,
    run_id: e.runId ?? null,
    product: e.product ?? null,
    data: e.data ? JSON.stringify(e.data) : null,
    actor_id: e.actorId ?? null,
    actor_via: e.via ?? null,
    actor_address: e.address ?? null,
    event_id: eventId,
  };
}

export class EventStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async insertEvents(events: readonly NewEvent[]): Promise<void> {
    const rows = events.map((e) => eventRow(e, null));
    for (const into of insertChunks(this.#db.dialect, rows, EVENT_COLUMNS)) await into(this.#db.kysely.insertInto('events')).execute();
  }
  /**
   * Device events (ADR 0020), each stored once per device and event id however often the
   * agent resends it: one transaction for the batch, rows already there skipped by the unique
   * index (device_id, event_id). Resolves once they are committed (the agent is acknowledged after).
   */
  async insertDeviceEvents(events: readonly (NewEvent & { deviceId: string; eventId: string })[]): Promise<void> {
    if (events.length === 0) return;
    const rows = events.map((e) => eventRow(e, e.eventId));
    await this.#db.kysely.transaction().execute(async (trx) => {
      for (const into of insertChunks(this.#db.dialect, rows, EVENT_COLUMNS)) {
        await into(trx.insertInto('events'))
          .onConflict((oc) => oc.columns(['device_id', 'event_id']).where('event_id', 'is not', null).doNothing())
          .execute();
      }
    });
  }
  async queryEvents(f: EventFilter): Promise<StoredEvent[]> {
    let q = this.#db.kysely.selectFrom('events').selectAll();
    if (f.kind) {
      const { exact, like } = kindPatterns(f.kind);
      q = q.where((eb) => eb.or([...(exact.length ? [eb('kind', 'in', exact)] : []), ...like.map((pattern) => eb('kind', 'like', sql<string>`${pattern} escape '\\'`))]));
    }
    if (f.deviceId) q = q.where('device_id', '=', f.deviceId);
    if (f.groupIds) q = q.where('group_id', 'in', f.groupIds.length ? f.groupIds : ['']);
    if (f.visibleGroupIds) q = q.where('group_id', 'in', f.visibleGroupIds.length ? f.visibleGroupIds : ['']);
    if (f.taskId) q = q.where('task_id', '=', f.taskId);
    if (f.runId) q = q.where('run_id', '=', f.runId);
    if (f.product) q = q.where('product', '=', f.product);
    if (f.severity) {
      const allowed = Object.keys(severityRank).filter((s) => severityRank[s]! >= severityRank[f.severity!]!);
      q = q.where('severity', 'in', allowed);
    }
    if (f.since) q = q.where('time', '>=', f.since);
    if (f.until) q = q.where('time', '<', f.until);
    if (f.beforeId !== undefined) q = q.where('id', '<', f.beforeId);
    const rows = await q.orderBy('id', 'desc').limit(Math.min(f.limit ?? 100, 10000)).execute();
    return rows.map((r) => toEvent(r as EventsTable & { id: number }));
  }
  /**
   * The distinct kinds after `after`, in order, at most `limit`: one index seek per kind (a
   * loose index scan on events_kind), not a scan of the log. With `visibleGroupIds` only kinds
   * of events in those groups count.
   */
  async distinctKinds(opts: { after?: string; limit: number; visibleGroupIds?: string[] }): Promise<string[]> {
    const k = this.#db.kysely;
    const visible = opts.visibleGroupIds ? (opts.visibleGroupIds.length ? opts.visibleGroupIds : ['']) : null;
    const out: string[] = [];
    let after = opts.after ?? null;
    while (out.length < opts.limit) {
      let q = k.selectFrom('events').select((eb) => eb.fn.min('kind').as('kind'));
      if (after !== null) q = q.where('kind', '>', after);
      if (visible) q = q.where('group_id', 'in', visible);
      const row = await q.executeTakeFirst();
      const next = (row?.kind as string | null | undefined) ?? null;
      if (next === null) break;
      out.push(next);
      after = next;
    }
    return out;
  }
  /** Deletes events older than `time`, in batches. */
  async purgeBefore(time: string, batchSize = 5000): Promise<number> {
    const k = this.#db.kysely;
    return deleteInBatches(
      async (limit) => (await k.selectFrom('events').select('id').where('time', '<', time).orderBy('id').limit(limit).execute()).map((r) => r.id),
      (ids) => k.deleteFrom('events').where('id', 'in', ids).execute(),
      batchSize,
    );
  }
}
