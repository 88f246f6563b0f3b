/**
 * Which agents are online, across every instance on the database (ADR 0019).
 *
 * The agents connected here are in `local` (the hub adds them). With other instances (the
 * bus is shared), each instance also records its agents in `agent_presence`, a batch every
 * few hundred milliseconds, and says so on the bus; the others read what changed since the
 * highest seq they saw of it. Each instance holds a lease on its `server_instances` row and
 * renews it: an instance whose lease ran out (it crashed) counts for nothing, so its agents
 * read offline within the lease, and the instances left remove its rows a while later.
 */
import os from 'node:os';
import type { Logger } from 'pino';
import type { ServerToAgent } from '@garrison/protocol';
import { AgentConnections } from '../agent-hub/connections.ts';
import { BatchWriter } from './batch-writer.ts';
import type { Clock } from '../clock.ts';
import type { DomainBus } from './domain-bus.ts';
import type { Presence } from './presence.ts';
import type { PresenceStore } from '../storage/presence-store.ts';
import { startLoop, type Loop } from '../scheduler/loop.ts';

const WRITE_DELAY_MS = 250;
/** A dead instance's rows are removed this long after its lease ran out. */
const REMOVE_DEAD_AFTER_MS = 60_000;

export class FleetPresence implements Presence {
  readonly local: AgentConnections;
  readonly #bus: DomainBus;
  readonly #store: PresenceStore;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #leaseMs: number;
  /** Agents on other instances: device → instance. */
  readonly #remote = new Map<string, string>();
  /** Per other instance: the highest seq read, and its lease. */
  readonly #instances = new Map<string, { seq: number; leaseUntil: number; reading: Promise<void> | null; again: boolean }>();
  #seq = 0;
  #cameOnline = new Set<string>();
  #wentOffline = new Set<string>();
  #loop: Loop | null = null;
  #url = '';
  readonly #writer: BatchWriter<{ online: string[]; offline: string[] }>;
  /** Called when the online state of agents elsewhere changed (for the console's live view). */
  readonly #onRemoteChange: () => void;

  constructor(deps: { bus: DomainBus; store: PresenceStore; clock: Clock; log: Logger; leaseMs?: number; onRemoteChange?: () => void }) {
    this.#bus = deps.bus;
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#leaseMs = deps.leaseMs ?? 15_000;
    this.#onRemoteChange = deps.onRemoteChange ?? (() => {});
    this.local = new AgentConnections((deviceId, online) => this.#changed(deviceId, online));
    this.#writer = new BatchWriter({
      delayMs: WRITE_DELAY_MS,
      take: () => {
        if (!this.#cameOnline.size && !this.#wentOffline.size) return undefined;
        const batch = { online: [...this.#cameOnline], offline: [...this.#wentOffline] };
        this.#cameOnline = new Set();
        this.#wentOffline = new Set();
        return batch;
      },
      write: async ({ online, offline }) => {
        const seq = ++this.#seq;
        await this.#store.writePresence(this.#bus.instanceId, seq, online, offline, this.#clock.now().toISOString());
        this.#bus.publish({ type: 'presence.changed', instanceId: this.#bus.instanceId, seq });
      },
      onError: (err, batch) => {
        this.#log.error({ err }, 'recording agent presence failed; retrying');
        for (const id of batch.online) if (!this.#wentOffline.has(id)) this.#cameOnline.add(id);
        for (const id of batch.offline) if (!this.#cameOnline.has(id)) this.#wentOffline.add(id);
        setTimeout(() => this.#writer.schedule(), 1000).unref();
      },
    });
    deps.bus.on('presence.changed', (e, origin) => {
      if (origin === 'remote') this.#read(e.instanceId);
    });
    deps.bus.on('instance.left', (e, origin) => {
      if (origin === 'remote') this.#forget(e.instanceId);
    });
    deps.bus.onResync(() => this.#refreshInstances(true));
  }

  #changed(deviceId: string, online: boolean): void {
    if (!this.#bus.shared) return;
    if (online) {
      this.#wentOffline.delete(deviceId);
      this.#cameOnline.add(deviceId);
    } else {
      this.#cameOnline.delete(deviceId);
      this.#wentOffline.add(deviceId);
    }
    this.#writer.schedule();
  }

  /** Registers this instance and reads who is online elsewhere (only when the bus is shared). */
  async start(url: string): Promise<void> {
    if (!this.#bus.shared) return;
    this.#url = url;
    await this.#store.putInstance({ id: this.#bus.instanceId, url, host: os.hostname(), pid: process.pid, startedAt: this.#clock.now().toISOString(), leaseUntil: this.#leaseEnd() });
    await this.#refreshInstances(true);
    this.#loop = startLoop('instance-lease', Math.max(500, Math.floor(this.#leaseMs / 3)), () => this.#refreshInstances(false), this.#log);
  }
  #leaseEnd(): string {
    return new Date(this.#clock.now().getTime() + this.#leaseMs).toISOString();
  }

  /** Renews this instance's lease, learns the others', forgets the dead ones' agents. */
  async #refreshInstances(full: boolean): Promise<void> {
    if (!(await this.#store.renewInstance(this.#bus.instanceId, this.#leaseEnd()))) {
      // Taken for dead (a long pause): come back, and say again who is here.
      await this.#store.putInstance({ id: this.#bus.instanceId, url: this.#url, host: os.hostname(), pid: process.pid, startedAt: this.#clock.now().toISOString(), leaseUntil: this.#leaseEnd() });
      for (const id of this.local.deviceIds()) this.#changed(id, true);
    }
    const now = this.#clock.now().getTime();
    const seen = new Set<string>();
    const dead: string[] = [];
    let changed = false;
    for (const i of await this.#store.listInstances()) {
      if (i.id === this.#bus.instanceId) continue;
      const leaseUntil = Date.parse(i.leaseUntil);
      if (leaseUntil + REMOVE_DEAD_AFTER_MS < now) dead.push(i.id);
      seen.add(i.id);
      const known = this.#instances.get(i.id);
      if (!known) {
        this.#instances.set(i.id, { seq: 0, leaseUntil, reading: null, again: false });
        this.#read(i.id);
      } else {
        if ((known.leaseUntil > now) !== (leaseUntil > now)) changed = true;
        known.leaseUntil = leaseUntil;
        if (full) this.#read(i.id);
      }
    }
    for (const id of this.#instances.keys()) {
      if (!seen.has(id)) {
        this.#forget(id, false);
        changed = true;
      }
    }
    if (dead.length) await this.#store.removeInstances(dead).catch((err: unknown) => this.#log.warn({ err }, 'removing dead instances failed'));
    if (changed) this.#onRemoteChange();
  }

  /** An instance left (or its row is gone): none of its agents is online. */
  #forget(instanceId: string, announce = true): void {
    this.#instances.delete(instanceId);
    for (const [d, inst] of this.#remote) if (inst === instanceId) this.#remote.delete(d);
    if (announce) this.#onRemoteChange();
  }

  /** Reads what an instance changed since the last read; reads of one instance never overlap. */
  #read(instanceId: string): void {
    let st = this.#instances.get(instanceId);
    if (!st) {
      st = { seq: 0, leaseUntil: this.#clock.now().getTime() + this.#leaseMs, reading: null, again: false };
      this.#instances.set(instanceId, st);
    }
    if (st.reading) {
      st.again = true;
      return;
    }
    const s = st;
    s.reading = (async () => {
      do {
        s.again = false;
        const rows = await this.#store.changesOf(instanceId, s.seq);
        for (const r of rows) {
          if (r.online) this.#remote.set(r.deviceId, instanceId);
          else if (this.#remote.get(r.deviceId) === instanceId) this.#remote.delete(r.deviceId);
          if (r.seq > s.seq) s.seq = r.seq;
        }
        if (rows.length) this.#onRemoteChange();
      } while (s.again);
    })()
      .catch((err: unknown) => this.#log.warn({ err, instanceId }, 'reading agent presence failed'))
      .finally(() => {
        s.reading = null;
      });
  }

  #liveInstance(instanceId: string): boolean {
    const st = this.#instances.get(instanceId);
    return !!st && st.leaseUntil > this.#clock.now().getTime();
  }
  /** The instance an agent is connected to, when it is another one that is alive. */
  remoteInstanceOf(deviceId: string): string | undefined {
    const inst = this.#remote.get(deviceId);
    return inst !== undefined && this.#liveInstance(inst) ? inst : undefined;
  }

  isOnline(deviceId: string): boolean {
    return this.local.isOnline(deviceId) || this.remoteInstanceOf(deviceId) !== undefined;
  }
  isOnlineHere(deviceId: string): boolean {
    return this.local.isOnline(deviceId);
  }
  onlineCount(): number {
    let n = this.local.count();
    if (this.#remote.size) {
      const now = this.#clock.now().getTime();
      for (const [deviceId, inst] of this.#remote) if ((this.#instances.get(inst)?.leaseUntil ?? 0) > now && !this.local.isOnline(deviceId)) n++;
    }
    return n;
  }
  /** Sends to the agents connected here (other instances send to theirs when told through the bus). */
  send(deviceIds: Iterable<string>, message: ServerToAgent): number {
    return this.local.send(deviceIds, message);
  }
  sendEach(messages: Iterable<readonly [string, ServerToAgent]>): number {
    return this.local.sendEach(messages);
  }
  /** Closes the device's connections on every instance. */
  disconnect(deviceId: string, reason: string): void {
    this.#bus.publish({ type: 'device.disconnect', deviceId, reason });
  }
  nudgeDuplicate(deviceId: string, machineIdentity: string): void {
    this.#bus.publish({ type: 'duplicate.nudge', deviceId, machineIdentity });
  }

  /** Writes what is queued now (tests and backups wait for it). */
  flush(): Promise<void> {
    return this.#writer.flush();
  }
  /** Leaves cleanly: this instance's rows go, so its agents read offline at once elsewhere. */
  async close(): Promise<void> {
    await this.#loop?.stop();
    if (!this.#bus.shared) return;
    await this.#writer.flush();
    await this.#store.removeInstances([this.#bus.instanceId]).catch((err: unknown) => this.#log.warn({ err }, 'removing this instance from the database failed'));
    this.#bus.publish({ type: 'instance.left', instanceId: this.#bus.instanceId });
  }
}
