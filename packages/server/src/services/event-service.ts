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
import { BUILTIN_PRODUCT } from '@garrison/protocol';
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
    },
    onError: (err, batch) => this.#log.error({ err, count: batch.length }, 'storing events failed'),
  });
  readonly #live: LiveFeed;
  /** Tells the consoles what a stored batch changed (nothing is computed unless one listens, here or elsewhere). */
  #stored(events: readonly Pick<NewEvent, 'kind'>[]): void {
    this.#live.publish(...topicsOfEvents(new Set(events.map((e) => e.kind)), BUILTIN_PRODUCT));
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
  async purgeOlderThan(days: number): Promise<number> {
    const cutoff = new Date(this.#clock.now().getTime() - days * 86400_000).toISOString();
    return this.#store.purgeBefore(cutoff);
  }
}
