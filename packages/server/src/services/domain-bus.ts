/**
 * The domain-event bus (issue 14, ADR 0019): what one part of the server tells the others
 * happened, typed. Services publish; the composition root and the cluster wiring subscribe
 * (the agent hub nudges agents, the live feed tells consoles, the catalog reloads). It
 * replaces the callbacks the composition root used to patch into services after building them.
 *
 * Inside one instance delivery is in memory and synchronous. With a transport (PostgreSQL
 * LISTEN/NOTIFY, storage/pg-bus.ts) every event also reaches the other instances on the same
 * database, whose subscribers see it with `origin: 'remote'`: they reload what the event names
 * before acting, since their in-memory views are older than the change. Events name what
 * changed, never carry data an instance could not read itself, so a remote subscriber always
 * reads the database for the truth and a lost notification costs only time (the periodic
 * reload is the safety net, and a transport that reconnects asks for a full resync).
 */
import type { Logger } from 'pino';
import type { LiveTopic } from './live-feed.ts';

export type DomainEvent =
  /**
   * Tasks were created, changed or deleted. `deviceIds` are the agents whose task lists changed,
   * for this instance: it is not sent, since the others work it out from their catalog (the
   * targets before and after their reload), which costs one notification instead of hundreds.
   */
  | { type: 'tasks.changed'; taskIds: string[]; deviceIds: string[] }
  /** Groups were created, moved, renamed, deleted or their policy changed; `groupIds` include their descendants. */
  | { type: 'groups.changed'; groupIds: string[] }
  /**
   * Policies or their assignments changed (ADR 0020). `groupIds`: the groups whose devices' effective
   * policy may have changed (subtrees included). `deviceIds`, for this instance only, are the
   * connected agents whose policy etag changed; the others compare before and after their reload.
   */
  | { type: 'policies.changed'; policyIds: string[]; groupIds: string[]; deviceIds: string[] }
  /** Devices' facts changed (group, tags, name, products), or they were deleted. */
  | { type: 'devices.changed'; deviceIds: string[] }
  /** An administrator asked these devices to check in now (a bulk action): each instance tells those connected to it. */
  | { type: 'devices.check-in'; deviceIds: string[] }
  /** A device was enrolled. */
  | { type: 'device.enrolled'; deviceId: string; name: string; groupId: string; machineIdentity: string | null; hasPublicKey: boolean }
  /** Deployment assignments, rollouts or repository packages changed; `deviceIds` must check in now. */
  | { type: 'deployments.changed'; deviceIds: string[] }
  /** A duplicate of a device was decided on, or a device's recorded machine identity changed. */
  | { type: 'identity.changed'; deviceIds: string[] }
  /**
   * Runs of a run-now were stored. With `runs` (run id, device id), one chunk of them whose
   * devices are connected to other instances: each instance sends those of its own agents at
   * once, while the originator stores the next chunk. Without: every chunk is stored, and each
   * instance reads the runs still pending for its agents (those the chunks missed: an agent
   * that connected a moment ago, or a chunk notification lost).
   */
  | { type: 'run-now'; taskId: string; requestId: string; runs?: [string, string][] }
  /** A task was stopped: every instance tells its connected targets. */
  | { type: 'task.stopped'; taskId: string }
  /** A device's credential stopped working (revoked, deleted, uninstalled): its connections close everywhere. */
  | { type: 'device.disconnect'; deviceId: string; reason: string }
  /** A device rotated its credential: a connection opened with another secret closes. */
  | { type: 'credential.superseded'; deviceId: string; credentialHash: string }
  /** A quarantined duplicate of a device may check in now. */
  | { type: 'duplicate.nudge'; deviceId: string; machineIdentity: string }
  /** New content in the master repository (a package checked in, pulled or promoted). */
  | { type: 'repository.content'; product: string; version: string }
  /** What the console's live stream should say changed. */
  | { type: 'live'; topics: LiveTopic[]; runs?: [taskId: string, deviceId: string][]; runsMore?: boolean }
  /** An instance wrote presence rows up to `seq`. */
  | { type: 'presence.changed'; instanceId: string; seq: number }
  /** Administrator tokens or sessions were revoked, or grants changed: cached ones are not trusted any more. */
  | { type: 'admin-tokens.changed'; tokenIds: string[]; adminIds: string[]; all: boolean }
  /** An instance stopped cleanly: its agents are offline until they reconnect elsewhere. */
  | { type: 'instance.left'; instanceId: string };

export type DomainEventType = DomainEvent['type'];
export type EventOf<T extends DomainEventType> = Extract<DomainEvent, { type: T }>;
export type Origin = 'local' | 'remote';

/** How events cross to other instances. */
export interface BusTransport {
  /** Sends one serialized event to the other instances (at most `maxPayloadBytes`). */
  send(payload: string): Promise<void>;
  readonly maxPayloadBytes: number;
  /** Starts listening; `onResync` is called after a reconnection, when notifications may have been missed. */
  start(onPayload: (payload: string) => void, onResync: () => void): Promise<void>;
  close(): Promise<void>;
}

/** Fields only for this instance, left out of what is sent. */
const LOCAL_FIELDS: Partial<Record<DomainEventType, string[]>> = { 'tasks.changed': ['deviceIds'], 'policies.changed': ['deviceIds'] };
/** Array fields an event may be split along when it is too large for one notification. */
const SPLITTABLE = ['deviceIds', 'taskIds', 'groupIds', 'topics', 'runs'] as const;

type Handler<T extends DomainEventType> = (event: EventOf<T>, origin: Origin) => void | Promise<void>;

export class DomainBus {
  readonly instanceId: string;
  readonly #log: Logger;
  readonly #handlers = new Map<DomainEventType, Handler<DomainEventType>[]>();
  readonly #resync: (() => void | Promise<void>)[] = [];
  #transport: BusTransport | null = null;

  constructor(opts: { instanceId: string; log: Logger }) {
    this.instanceId = opts.instanceId;
    this.#log = opts.log;
  }

  /** Whether events cross to other instances. */
  get shared(): boolean {
    return this.#transport !== null;
  }

  on<T extends DomainEventType>(type: T, handler: Handler<T>): void {
    const list = this.#handlers.get(type) ?? [];
    list.push(handler as unknown as Handler<DomainEventType>);
    this.#handlers.set(type, list);
  }
  /** Called when notifications from other instances may have been missed (the transport reconnected). */
  onResync(fn: () => void | Promise<void>): void {
    this.#resync.push(fn);
  }

  /**
   * Delivers the event to this instance's subscribers at once, and sends it to the others.
   * Never throws: a failing subscriber is logged, the others still run.
   */
  publish(event: DomainEvent): void {
    this.#deliver(event, 'local');
    if (this.#transport) {
      for (const payload of this.#serialize(event)) {
        this.#transport.send(payload).catch((err: unknown) => this.#log.warn({ err, type: event.type }, 'an event could not be sent to the other instances'));
      }
    }
  }

  async connect(transport: BusTransport): Promise<void> {
    await transport.start(
      (payload) => this.#receive(payload),
      () => {
        for (const fn of this.#resync) void Promise.resolve(fn()).catch((err: unknown) => this.#log.error({ err }, 'resync after a bus reconnection failed'));
      },
    );
    this.#transport = transport;
  }
  async close(): Promise<void> {
    const t = this.#transport;
    this.#transport = null;
    await t?.close();
  }

  #deliver(event: DomainEvent, origin: Origin): void {
    for (const h of this.#handlers.get(event.type) ?? []) {
      try {
        const r = h(event, origin);
        if (r && typeof r.then === 'function') r.then(undefined, (err: unknown) => this.#log.error({ err, type: event.type, origin }, 'a domain-event subscriber failed'));
      } catch (err) {
        this.#log.error({ err, type: event.type, origin }, 'a domain-event subscriber failed');
      }
    }
  }

  /** One or more payloads, each under the transport's limit (large id lists are split). */
  #serialize(full: DomainEvent): string[] {
    let event = full;
    const drop = LOCAL_FIELDS[full.type];
    if (drop) {
      const copy: Record<string, unknown> = { ...full };
      for (const f of drop) copy[f] = [];
      event = copy as unknown as DomainEvent;
    }
    const max = this.#transport!.maxPayloadBytes;
    const text = JSON.stringify({ from: this.instanceId, event });
    if (Buffer.byteLength(text) <= max) return [text];
    const field = SPLITTABLE.find((f) => Array.isArray((event as Record<string, unknown>)[f]));
    const list = field ? ((event as Record<string, unknown>)[field] as unknown[]) : [];
    if (!field || list.length < 2) {
      this.#log.error({ type: event.type, bytes: Buffer.byteLength(text) }, 'an event is too large to send to the other instances; they see it at their next full reload');
      return [];
    }
    const half = Math.ceil(list.length / 2);
    return [...this.#serialize({ ...event, [field]: list.slice(0, half) } as unknown as DomainEvent), ...this.#serialize({ ...event, [field]: list.slice(half) } as unknown as DomainEvent)];
  }

  #receive(payload: string): void {
    let msg: { from?: unknown; event?: { type?: unknown } };
    try {
      msg = JSON.parse(payload) as typeof msg;
    } catch {
      return;
    }
    if (msg.from === this.instanceId || !msg.event || typeof msg.event.type !== 'string' || !this.#handlers.has(msg.event.type as DomainEventType)) return;
    this.#deliver(msg.event as DomainEvent, 'remote');
  }
}
