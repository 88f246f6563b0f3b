/**
 * What changed, for the console's live updates: services publish topics, the admin stream
 * (GET /api/v1/live) forwards them, coalesced, to each signed-in console, which then reads the
 * API again for what it shows. Only topic names travel, never data, so every read still goes
 * through the API's authorization.
 */
import type { DomainBus } from './domain-bus.ts';

export const LIVE_TOPICS = ['runs', 'presence', 'events', 'config', 'deployments', 'repository', 'push', 'server-tasks'] as const;
export type LiveTopic = (typeof LIVE_TOPICS)[number];

/** Topics for the other instances are gathered this long and sent as one event. */
const SHARE_EVERY_MS = 250;

/**
 * With a shared bus, what changes here also reaches the consoles signed in to the other
 * instances: topics are gathered for a quarter of a second and sent as one event (at most four
 * notifications a second per instance, however fast results arrive).
 */
export class LiveFeed {
  readonly #subscribers = new Set<(topics: ReadonlySet<LiveTopic>) => void>();
  readonly #bus: DomainBus | null;
  #toShare = new Set<LiveTopic>();
  #shareTimer: NodeJS.Timeout | null = null;

  constructor(bus?: DomainBus) {
    this.#bus = bus ?? null;
    bus?.on('live', (e, origin) => {
      if (origin === 'remote') this.#deliver(e.topics);
    });
  }

  get subscribers(): number {
    return this.#subscribers.size;
  }
  publish(...topics: LiveTopic[]): void {
    if (topics.length === 0) return;
    this.#deliver(topics);
    if (!this.#bus?.shared) return;
    for (const t of topics) this.#toShare.add(t);
    this.#shareTimer ??= setTimeout(() => {
      this.#shareTimer = null;
      const shared = [...this.#toShare];
      this.#toShare = new Set();
      this.#bus?.publish({ type: 'live', topics: shared });
    }, SHARE_EVERY_MS);
  }
  /** Tells only the consoles signed in here (what the other instances learn on their own). */
  publishHere(...topics: LiveTopic[]): void {
    this.#deliver(topics);
  }
  #deliver(topics: readonly LiveTopic[]): void {
    if (this.#subscribers.size === 0) return;
    const set = new Set(topics);
    for (const s of this.#subscribers) s(set);
  }
  subscribe(fn: (topics: ReadonlySet<LiveTopic>) => void): () => void {
    this.#subscribers.add(fn);
    return () => this.#subscribers.delete(fn);
  }
}

/** The topics a batch of stored events touches, by their kinds (audit events by what they audit). */
export function topicsOfEvents(kinds: Iterable<string>, builtinProduct: string): LiveTopic[] {
  const out = new Set<LiveTopic>(['events']);
  for (const raw of kinds) {
    const audit = raw.startsWith('audit.');
    const k = audit ? raw.slice(6) : raw;
    if (k.startsWith('agent.') || k.startsWith('device.')) out.add('presence');
    if (k.startsWith('run.') || k.startsWith('task.')) out.add('runs');
    if (k.startsWith('deployment.') || k.startsWith(`${builtinProduct}.`)) out.add('deployments');
    else if (k.startsWith('repository.')) out.add('repository');
    else if (k.startsWith('push.')) out.add('push');
    else if (k.startsWith('server-task.')) out.add('server-tasks');
    else if (audit) out.add('config');
  }
  return [...out];
}
