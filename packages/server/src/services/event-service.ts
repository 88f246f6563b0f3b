/**
 * The central event log: run results, agent events, server events and the audit trail of
 * administrators' actions. High-volume events (run results, connections) go through a
 * batching writer that flushes every few milliseconds in one INSERT; audit events are
 * written before the API call returns.
 */
import { BatchWriter } from './batch-writer.ts';
import type { Logger } from 'pino';
import { AppError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import type { EventFilter, EventStore, NewEvent, StoredEvent } from '../storage/event-store.ts';
import { actorName, inReach, Permission, reachList, reachOf, type Actor } from './actor.ts';
import type { Catalog } from './catalog.ts';
import { BUILTIN_PRODUCT, EVENT_EXPORT_MAX, PAGE_LIMIT_MAX, type EventView, type Page, type PageRequest } from '@garrison/protocol';
import { decodeCursor, encodeCursor, pageLimit } from '../paging.ts';
import { topicsOfEvents, type LiveFeed } from './live-feed.ts';

export class EventService {
  readonly #store: EventStore;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #catalog: Catalog;
  #queue: NewEvent[] = [];
  readonly #writer = new BatchWriter<NewEvent[]>({
    delayMs: 20,
    take: () => {
      if (this.#queue.length === 0) return undefined;
      const batch = this.#queue;
      this.#queue = [];
      return batch;
    },
    write: async (batch) => {
      await this.#store.insertEvents(batch);
      this.#stored(batch);
      this.#tellListeners(batch);
    },
    onError: (err, batch) => this.#log.error({ err, count: batch.length }, 'storing events failed'),
  });
  readonly #live: LiveFeed;
  /** Tells the consoles what a stored batch changed (nothing is computed unless one listens, here or elsewhere). */
  #stored(events: readonly Pick<NewEvent, 'kind'>[]): void {
    this.#live.publish(...topicsOfEvents(new Set(events.map((e) => e.kind)), BUILTIN_PRODUCT));
  }

  readonly #listeners: ((events: readonly NewEvent[]) => void)[] = [];
  /** Calls `fn` with every batch of events once stored (the notification rules match them in memory); `fn` must not wait. */
  onStored(fn: (events: readonly NewEvent[]) => void): void {
    this.#listeners.push(fn);
  }
  #tellListeners(events: readonly NewEvent[]): void {
    for (const fn of this.#listeners) {
      try {
        fn(events);
      } catch (err) {
        this.#log.error({ err }, 'an event listener failed');
      }
    }
  }

  constructor(deps: { store: EventStore; clock: Clock; log: Logger; catalog: Catalog; live: LiveFeed }) {
    this.#live = deps.live;
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#catalog = deps.catalog;
  }
  /** Queues an event; it is stored within a few milliseconds, batched with others. */
  record(event: Omit<NewEvent, 'time'> & { time?: string }): void {
    const groupId = event.groupId ?? (event.deviceId ? this.#catalog.device(event.deviceId)?.groupId : undefined) ?? null;
    this.#queue.push({ ...event, groupId, time: event.time ?? this.#clock.now().toISOString() });
    if (this.#queue.length >= 5000) void this.flush();
    else this.#writer.schedule();
  }
  /** An administrator's action: who, through what (console, CLI, API token) and from where. Stored before the call returns. */
  async audit(actor: Actor, kind: string, message: string, refs: Partial<Pick<NewEvent, 'deviceId' | 'groupId' | 'taskId' | 'product' | 'data'>>): Promise<void> {
    const groupId = refs.groupId ?? (refs.deviceId ? this.#catalog.device(refs.deviceId)?.groupId : undefined) ?? (refs.taskId ? this.#taskGroup(refs.taskId) : undefined) ?? null;
    await this.#store.insertEvents([
      {
        time: this.#clock.now().toISOString(),
        severity: 'info',
        kind: `audit.${kind}`,
        message,
        actor: actorName(actor),
        ...refs,
        groupId,
        ...(actor.kind === 'admin' ? { actorId: actor.adminId, via: actor.via, address: actor.address ?? null } : { via: 'system' }),
      },
    ]);
    this.#stored([{ kind: `audit.${kind}` }]);
  }
  /** The group an event about a task belongs to: its group, or its device's for a local task. */
  #taskGroup(taskId: string): string | undefined {
    const t = this.#catalog.task(taskId);
    if (!t) return undefined;
    if (t.scope.type === 'group') return t.scope.groupId;
    if (t.scope.type === 'local') return this.#catalog.device(t.scope.deviceId)?.groupId;
    return undefined;
  }
  flush(): Promise<void> {
    return this.#writer.flush();
  }
  /** Events of the groups the caller reads; those of no group (server-wide, the administrators' own audit) need read on the root. */
  async query(actor: Actor, filter: EventFilter & { groupId?: string; recursive?: boolean }): Promise<StoredEvent[]> {
    await this.flush();
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    const f: EventFilter = { ...filter, visibleGroupIds: reachList(reach) };
    if (filter.groupId) {
      if (!this.#catalog.group(filter.groupId) || !inReach(reach, filter.groupId)) throw new AppError('NOT_FOUND', `group ${filter.groupId} does not exist`);
      f.groupIds = filter.recursive === false ? [filter.groupId] : this.#catalog.tree.descendants(filter.groupId);
    }
    return this.#store.queryEvents(f);
  }
  /**
   * One page of the log, newest first (keyset on the id), each event with the names of its
   * device and task where they still exist. No total: counting a filtered log of millions of
   * events is not cheap.
   */
  async page(actor: Actor, filter: Omit<EventFilter, 'beforeId' | 'limit' | 'groupIds' | 'visibleGroupIds'> & { groupId?: string; recursive?: boolean }, req: PageRequest): Promise<Page<EventView>> {
    const limit = pageLimit(req);
    const after = decodeCursor(req.cursor, 1);
    const beforeId = after ? Number(after[0]) : undefined;
    if (beforeId !== undefined && !Number.isInteger(beforeId)) throw new AppError('VALIDATION_FAILED', 'cursor is not one this list gave', { issues: [{ path: '/cursor', message: 'not a cursor of this list' }] });
    const rows = await this.query(actor, { ...filter, ...(beforeId !== undefined ? { beforeId } : {}), limit: limit + 1 });
    const items = rows.slice(0, limit).map((e) => this.#named(e));
    return { items, nextCursor: rows.length > limit ? encodeCursor([items.at(-1)!.id]) : null };
  }
  /**
   * Every matching event for an export, newest first, read a thousand at a time so that an
   * export of EVENT_EXPORT_MAX events never holds them all; stops at EVENT_EXPORT_MAX.
   */
  async *exportAll(actor: Actor, filter: Omit<EventFilter, 'beforeId' | 'limit' | 'groupIds' | 'visibleGroupIds'> & { groupId?: string; recursive?: boolean }, cursor?: string): AsyncGenerator<EventView> {
    // Authorization and the filters are checked before the first byte is sent: a bad group is a 404, not a broken stream.
    let { items, nextCursor } = await this.page(actor, filter, { ...(cursor ? { cursor } : {}), limit: PAGE_LIMIT_MAX });
    let sent = 0;
    for (;;) {
      for (const e of items) {
        if (sent++ >= EVENT_EXPORT_MAX) return;
        yield e;
      }
      if (!nextCursor) return;
      ({ items, nextCursor } = await this.page(actor, filter, { cursor: nextCursor, limit: PAGE_LIMIT_MAX }));
    }
  }
  #named(e: StoredEvent): EventView {
    const device = e.deviceId ? this.#catalog.device(e.deviceId) : undefined;
    const task = e.taskId ? this.#catalog.task(e.taskId) : undefined;
    return { ...e, ...(device ? { deviceName: device.name } : {}), ...(task ? { taskName: task.name } : {}) };
  }
  /** The kinds of the events the caller may see, in order, a page at a time (for pick lists). */
  async kinds(actor: Actor, req: PageRequest): Promise<Page<string>> {
    await this.flush();
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    const limit = pageLimit(req);
    const after = decodeCursor(req.cursor, 1);
    const list = reachList(reach);
    const kinds = await this.#store.distinctKinds({ ...(after ? { after: String(after[0]) } : {}), limit: limit + 1, ...(list ? { visibleGroupIds: list } : {}) });
    const items = kinds.slice(0, limit);
    return { items, nextCursor: kinds.length > limit ? encodeCursor([items.at(-1)!]) : null };
  }
  async purgeOlderThan(days: number): Promise<number> {
    const cutoff = new Date(this.#clock.now().getTime() - days * 86400_000).toISOString();
    return this.#store.purgeBefore(cutoff);
  }
}
