/**
 * The central event log's table: inserts in batches (the event service's write-behind, and
 * device events stored once per event id), queries with the API's filters, and purges by age.
 */
import type { EventView } from '@garrison/protocol';
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
export type NewEvent = Omit<EventView, 'id'>;
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
  kind?: string;
  /** Minimum severity. */
  severity?: Severity;
  since?: string;
  until?: string;
  /** Cursor: only events with a smaller id (older). */
  beforeId?: number;
  limit?: number;
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
    if (f.deviceId) q = q.where('device_id', '=', f.deviceId);
    if (f.groupIds) q = q.where('group_id', 'in', f.groupIds.length ? f.groupIds : ['']);
    if (f.visibleGroupIds) q = q.where('group_id', 'in', f.visibleGroupIds.length ? f.visibleGroupIds : ['']);
    if (f.taskId) q = q.where('task_id', '=', f.taskId);
    if (f.runId) q = q.where('run_id', '=', f.runId);
    if (f.product) q = q.where('product', '=', f.product);
    if (f.kind) q = q.where('kind', '=', f.kind);
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
