/**
 * The durable outbox of device events: events that are not a run's (a real-time detection of a
 * plug-in's watcher, a locked setting put back by policy enforcement), emitted through
 * PolicyContext.emit.
 *
 * Like the run spool (run-spool.ts), an event must reach the central event log even when the
 * agent is offline for days or restarts right after emitting it. Each event is one file,
 * `<dir>/<eventId>.json`, written atomically (writeJsonAtomic) before emit() resolves; it is
 * removed when the server's acknowledgement lists its eventId (the server stores each event
 * once however often it is resent, so a crash between send and ack costs a duplicate send,
 * never a duplicate event), or when the server refuses it (dropped with a local log line by
 * the caller: resending a refused event forever would block nothing but waste the link).
 *
 * The spool is bounded (`maxEvents`): a watcher that floods it while the server is away must
 * not fill the disk, so past the limit the oldest events are dropped and the caller logs how
 * many. Event ids sort by creation time (a base-36 millisecond time, then a counter and random
 * part), so "oldest" is the file name order and pending() is oldest first.
 *
 * Event ids become file names, so ids read back are checked against the protocol's pattern
 * (no separators, no ".."); unreadable files are moved aside as `*.corrupt`, never fatal.
 */
import { mkdir, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { DeviceEvent } from '@garrison/protocol';
import { isTempFileName, readJson, writeJsonAtomic } from './state-file.ts';

export const EVENT_ID_PATTERN = /^[A-Za-z0-9_-]{8,80}$/;
export const DEFAULT_MAX_DEVICE_EVENTS = 10_000;

let counter = 0;
/** A new event id: creation time first (base 36, fixed width), so ids sort oldest first. */
export function newEventId(now = Date.now()): string {
  counter = (counter + 1) % 1_679_616; // 36^4
  return `${now.toString(36).padStart(9, '0')}-${counter.toString(36).padStart(4, '0')}-${randomBytes(9).toString('base64url')}`;
}

export interface DeviceEventSpoolOptions {
  /** At most this many events are kept; past it the oldest are dropped. */
  maxEvents?: number;
  /** Called with the events dropped for room (the caller writes a local log line). */
  onDropped?(events: DeviceEvent[]): void;
  onCorrupt?(file: string, error: Error): void;
}

export class DeviceEventSpool {
  readonly dir: string;
  readonly #o: DeviceEventSpoolOptions;
  /** eventId → event, kept in id (creation) order. */
  #events = new Map<string, DeviceEvent>();
  #queue: Promise<void> = Promise.resolve();
  #initialised = false;

  constructor(dir: string, options: DeviceEventSpoolOptions = {}) {
    this.dir = dir;
    this.#o = options;
  }

  get maxEvents(): number {
    return this.#o.maxEvents ?? DEFAULT_MAX_DEVICE_EVENTS;
  }

  async init(): Promise<void> {
    if (this.#initialised) return;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const loaded: DeviceEvent[] = [];
    for (const name of (await readdir(this.dir)).sort()) {
      const file = join(this.dir, name);
      if (isTempFileName(name)) {
        await unlink(file).catch(() => {});
        continue;
      }
      if (!name.endsWith('.json')) continue;
      const id = name.slice(0, -'.json'.length);
      try {
        if (!EVENT_ID_PATTERN.test(id)) throw new Error(`not a valid event id: ${id}`);
        const e = await readJson<DeviceEvent>(file);
        if (!e || typeof e !== 'object' || e.eventId !== id) throw new Error('the file does not hold this event');
        loaded.push(e);
      } catch (err) {
        await rename(file, `${file}.corrupt`).catch(() => {});
        this.#o.onCorrupt?.(file, err instanceof Error ? err : new Error(String(err)));
      }
    }
    for (const e of loaded) this.#events.set(e.eventId, e);
    this.#initialised = true;
    await this.#enqueue(() => this.#trim());
  }

  get size(): number {
    return this.#events.size;
  }

  /** Oldest first, at most `limit`. */
  pending(limit = Infinity): DeviceEvent[] {
    this.#assertInitialised();
    const out: DeviceEvent[] = [];
    for (const e of this.#events.values()) {
      if (out.length >= limit) break;
      out.push(e);
    }
    return out;
  }

  /** Stores the event durably; resolves once it is on disk. */
  add(event: DeviceEvent): Promise<void> {
    this.#assertInitialised();
    if (!EVENT_ID_PATTERN.test(event.eventId)) return Promise.reject(new TypeError(`invalid event id ${JSON.stringify(event.eventId)}`));
    const copy = structuredClone(event);
    return this.#enqueue(async () => {
      await writeJsonAtomic(this.#file(copy.eventId), copy);
      this.#events.set(copy.eventId, copy);
      await this.#trim();
    });
  }

  /** The server stored these (or refused them): forget them. */
  remove(eventIds: readonly string[]): Promise<void> {
    this.#assertInitialised();
    return this.#enqueue(async () => {
      for (const id of eventIds) {
        if (!this.#events.has(id)) continue;
        await unlink(this.#file(id)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
        this.#events.delete(id);
      }
    });
  }

  /** Drops the oldest past the limit (a Map iterates in insertion order; ids are added in time order). */
  async #trim(): Promise<void> {
    const over = this.#events.size - this.maxEvents;
    if (over <= 0) return;
    const ids = [...this.#events.keys()].sort().slice(0, over);
    const dropped: DeviceEvent[] = [];
    for (const id of ids) {
      await unlink(this.#file(id)).catch(() => {});
      dropped.push(this.#events.get(id)!);
      this.#events.delete(id);
    }
    this.#o.onDropped?.(dropped);
  }

  #file(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  #enqueue(job: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(job);
    this.#queue = run.catch(() => {});
    return run;
  }

  #assertInitialised(): void {
    if (!this.#initialised) throw new Error('DeviceEventSpool.init() must be awaited before use');
  }
}
