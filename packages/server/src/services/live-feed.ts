/**
 * What changed, for the console's live updates: services publish topics, the admin stream
 * (GET /api/v1/live) forwards them, coalesced, to each signed-in console, which then reads the
 * API again for what it shows. Topics travel, and for `runs` the (task, device) pairs whose
 * runs changed, so that a task's page reads only those rows; never the data itself, so every
 * read still goes through the API's authorization (and the stream drops the pairs a console
 * may not see).
 */
import type { DomainBus } from './domain-bus.ts';

export const LIVE_TOPICS = ['runs', 'presence', 'events', 'config', 'deployments', 'repository', 'push', 'server-tasks'] as const;
export type LiveTopic = (typeof LIVE_TOPICS)[number];

/** A run of this task on this device changed (stored, progressed, ended). */
export interface RunChange {
  taskId: string;
  deviceId: string;
}
/** The run changes of a `runs` topic: `more` when runs changed that are not among `pairs` (a stop, a run-now). */
export interface RunChanges {
  pairs: readonly RunChange[];
  more: boolean;
}
export type LiveSubscriber = (topics: ReadonlySet<LiveTopic>, runs?: RunChanges) => void;

/** Topics for the other instances are gathered this long and sent as one event. */
const SHARE_EVERY_MS = 250;
/** Run changes sent to the other instances in one event at most (a notification is 8 kB); past it, "more". */
const SHARE_RUNS_MAX = 50;

/**
 * With a shared bus, what changes here also reaches the consoles signed in to the other
 * instances: topics are gathered for a quarter of a second and sent as one event (at most four
 * notifications a second per instance, however fast results arrive).
 */
export class LiveFeed {
  readonly #subscribers = new Set<LiveSubscriber>();
  readonly #bus: DomainBus | null;
  #toShare = new Set<LiveTopic>();
  #shareRuns = new Map<string, RunChange>();
  #shareRunsMore = false;
  #shareTimer: NodeJS.Timeout | null = null;

  constructor(bus?: DomainBus) {
    this.#bus = bus ?? null;
    bus?.on('live', (e, origin) => {
      if (origin !== 'remote') return;
      const runs = e.runs || e.runsMore ? { pairs: (e.runs ?? []).map(([taskId, deviceId]) => ({ taskId, deviceId })), more: e.runsMore === true } : undefined;
      this.#deliver(e.topics, runs);
    });
  }

  get subscribers(): number {
    return this.#subscribers.size;
  }
  /** Topics that changed; a `runs` topic published this way says only that some runs changed. */
  publish(...topics: LiveTopic[]): void {
    if (topics.length === 0) return;
    this.#deliver(topics);
    if (topics.includes('runs')) this.#shareRunsMore = true;
    this.#share(topics);
  }
  /** Runs of these (task, device) pairs changed. */
  publishRuns(changes: readonly RunChange[]): void {
    if (changes.length === 0) return;
    this.#deliver(['runs'], { pairs: changes, more: false });
    if (!this.#bus?.shared) return;
    for (const c of changes) {
      if (this.#shareRuns.size >= SHARE_RUNS_MAX) {
        this.#shareRunsMore = true;
        break;
      }
      this.#shareRuns.set(`${c.taskId}\n${c.deviceId}`, c);
    }
    this.#share(['runs']);
  }
  #share(topics: readonly LiveTopic[]): void {
    if (!this.#bus?.shared) return;
    for (const t of topics) this.#toShare.add(t);
    this.#shareTimer ??= setTimeout(() => {
      this.#shareTimer = null;
      const shared = [...this.#toShare];
      const runs = [...this.#shareRuns.values()].map((c): [string, string] => [c.taskId, c.deviceId]);
      const runsMore = this.#shareRunsMore;
      this.#toShare = new Set();
      this.#shareRuns = new Map();
      this.#shareRunsMore = false;
      this.#bus?.publish({ type: 'live', topics: shared, ...(runs.length ? { runs } : {}), ...(runsMore ? { runsMore } : {}) });
    }, SHARE_EVERY_MS);
  }
  /** Tells only the consoles signed in here (what the other instances learn on their own). */
  publishHere(...topics: LiveTopic[]): void {
    this.#deliver(topics);
  }
  #deliver(topics: readonly LiveTopic[], runs?: RunChanges): void {
    if (this.#subscribers.size === 0) return;
    const set = new Set(topics);
    for (const s of this.#subscribers) s(set, runs);
  }
  subscribe(fn: LiveSubscriber): () => void {
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
    // A run.* event comes from a stored report, which publishes its run change with its task and device itself.
    if (k.startsWith('task.')) out.add('runs');
    if (k.startsWith('deployment.') || k.startsWith(`${builtinProduct}.`)) out.add('deployments');
    else if (k.startsWith('repository.')) out.add('repository');
    else if (k.startsWith('push.')) out.add('push');
    else if (k.startsWith('server-task.')) out.add('server-tasks');
    else if (audit) out.add('config');
  }
  return [...out];
}
