/**
 * The server-task runner: fires schedules, claims runs, executes them and records what
 * happened. It knows nothing of what a task type does (types.ts lists them).
 *
 * Several server instances may share one PostgreSQL database, so every step that must happen
 * once is a compare-and-set in the store: a due schedule is advanced by exactly one instance
 * (the one that advanced it enqueues the run), a pending run is claimed by exactly one, and
 * the claim is a lease (storage/leases.ts) that one LeaseKeeper renews for all the runs this
 * instance executes. A run whose instance died (lease expired) goes back to pending and is
 * resumed by whoever ticks next; a run interrupted by a clean shutdown is handed back at once;
 * a run whose lease this instance lost is aborted here and left to whoever holds it now.
 * Types are therefore written to be safely re-run.
 */
import type { Logger } from 'pino';
import { finalServerTaskRunStates, type ServerTask, type ServerTaskRunState } from '@garrison/protocol';
import { nextScheduledFire, randomizedDelayMs, resolveTimeZone, retryDelayMs } from '@garrison/core';
import { AppError } from '../errors.ts';
import { newId } from '../ids.ts';
import type { Clock } from '../clock.ts';
import { secretRefs } from '../plugins/registry.ts';
import type { EventService } from '../services/event-service.ts';
import type { LiveFeed } from '../services/live-feed.ts';
import type { SecretService } from '../services/secret-service.ts';
import { LeaseKeeper } from '../storage/leases.ts';
import type { ServerTaskStore } from '../storage/server-task-store.ts';
import type { ServerTaskRunsTable } from '../storage/schema.ts';
import { startLoop, type Loop } from '../scheduler/loop.ts';
import type { ServerTaskEnvironment } from './server-task.ts';
import type { ServerTaskTypes } from './types.ts';

/** A fire later than this after its time counts as missed (the server was down). */
const MISSED_GRACE_MS = 5 * 60_000;
const OUTPUT_TAIL_MAX = 16 * 1024;
/** How long a stopped or timed-out run may take to notice its signal before it is recorded as ended anyway. */
const ABORT_GRACE_MS = 30_000;
/**
 * How often a running run's progress is written and a stop asked on another instance is looked
 * for. Independent of the lease: progress should show within a second whatever the lease.
 */
const WATCH_MS = 1000;

type StopReason = 'stop' | 'timeout' | 'shutdown' | 'lease-lost';

/** The zone "local" means for a server task: the server's own. */
export function serverTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/** When the schedule fires next after `after` (null: only on demand or on events, or disabled). */
export function nextRunOf(task: Pick<ServerTask, 'schedule' | 'enabled'>, after: Date): string | null {
  if (!task.enabled) return null;
  // The schedule's time basis decides the zone ("local" is the server's), as on an agent.
  return nextScheduledFire(task.schedule, after, resolveTimeZone(task.schedule, serverTimeZone()))?.at.toISOString() ?? null;
}

export class ServerTaskRunner {
  readonly #store: ServerTaskStore;
  readonly #types: ServerTaskTypes;
  readonly #env: ServerTaskEnvironment;
  readonly #events: EventService;
  readonly #secrets: SecretService;
  readonly #live: LiveFeed;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #instance = newId();
  readonly #leaseMs: number;
  readonly #leases: LeaseKeeper;
  readonly #concurrency: number;
  readonly #tickMs: number;
  readonly #inFlight = new Map<string, { abort(reason: StopReason): void; done: Promise<void> }>();
  #loop: Loop | null = null;
  #closing = false;
  #ticking = false;
  /** A wake-up that came while a tick was past the point of seeing it: tick once more. */
  #again = false;

  constructor(deps: {
    store: ServerTaskStore;
    types: ServerTaskTypes;
    env: ServerTaskEnvironment;
    events: EventService;
    secrets: SecretService;
    live: LiveFeed;
    tickMs?: number;
    leaseMs?: number;
    concurrency?: number;
  }) {
    this.#store = deps.store;
    this.#types = deps.types;
    this.#env = deps.env;
    this.#events = deps.events;
    this.#secrets = deps.secrets;
    this.#live = deps.live;
    this.#clock = deps.env.clock;
    this.#log = deps.env.log;
    this.#tickMs = deps.tickMs ?? 5000;
    this.#leaseMs = deps.leaseMs ?? 60_000;
    this.#concurrency = deps.concurrency ?? 2;
    this.#leases = new LeaseKeeper({
      name: 'server-task-leases',
      owner: this.#instance,
      leaseMs: this.#leaseMs,
      renew: (ids, owner, until) => this.#store.renewLeases(ids, owner, until),
      clock: this.#clock,
      log: this.#log,
      onLost: (ids) => {
        for (const id of ids) this.#inFlight.get(id)?.abort('lease-lost');
      },
    });
  }

  start(): void {
    this.#loop ??= startLoop('server-tasks', this.#tickMs, () => this.tick(), this.#log);
  }
  /** Runs a tick now (after run-now, a stop, or content arriving) instead of at the next interval. */
  wake(): void {
    if (!this.#loop || this.#closing) return;
    if (this.#ticking) this.#again = true;
    else void this.#loop.runNow();
  }
  /** Stops the loop and hands running runs back to pending, so that they resume at the next start. */
  async close(): Promise<void> {
    this.#closing = true;
    await this.#loop?.stop();
    for (const r of this.#inFlight.values()) r.abort('shutdown');
    await Promise.all([...this.#inFlight.values()].map((r) => r.done));
    await this.#leases.stop();
  }

  /** One pass: fire due schedules, take back runs of dead instances, claim and start due runs. */
  async tick(): Promise<void> {
    if (this.#closing) return;
    this.#ticking = true;
    try {
      await this.#tick();
    } finally {
      this.#ticking = false;
    }
    if (this.#again) {
      this.#again = false;
      setImmediate(() => this.wake());
    }
  }
  async #tick(): Promise<void> {
    const now = this.#clock.now();
    for (const task of await this.#store.dueTasks(now.toISOString())) await this.#fire(task, now);
    for (const row of await this.#store.reapExpired(now.toISOString())) {
      this.#events.record({ severity: 'warning', kind: 'server-task.resumed', message: `server task run ${row.id} resumed: the server instance running it stopped renewing its lease`, taskId: row.task_id, data: { runId: row.id } });
    }
    const free = this.#concurrency - this.#inFlight.size;
    if (free <= 0) return;
    const leaseUntil = new Date(now.getTime() + this.#leaseMs).toISOString();
    for (const row of await this.#store.claimRuns(this.#instance, now.toISOString(), leaseUntil, free)) {
      this.#leases.hold(row.id);
      const done = this.#execute(row).catch((err: unknown) => this.#log.error({ err, runId: row.id }, 'server task run could not be recorded'));
      // #execute registers its abort handle synchronously before its first await.
      this.#inFlight.get(row.id)!.done = done.finally(() => {
        this.#leases.forget(row.id);
        this.#inFlight.delete(row.id);
      });
    }
  }

  async #fire(task: ServerTask, now: Date): Promise<void> {
    const due = task.nextRunAt!;
    const next = nextRunOf(task, new Date(Math.max(now.getTime(), Date.parse(due))));
    // Exactly one instance advances the schedule; it alone enqueues the run.
    if (!(await this.#store.advanceNextRun(task.id, due, next))) return;
    const late = now.getTime() - Date.parse(due);
    if (late > MISSED_GRACE_MS) {
      if (!task.schedule.runMissed) {
        this.#events.record({ severity: 'warning', kind: 'server-task.missed', message: `server task "${task.name}" missed its run at ${due} (the server was not running); "run missed runs" is off`, taskId: task.id, data: { due } });
        return;
      }
      await this.enqueue(task, 'missed', { notBefore: new Date(now.getTime() + (task.schedule.missedDelayMinutes ?? 0) * 60_000) });
      return;
    }
    await this.enqueue(task, 'schedule', { notBefore: new Date(Date.parse(due) + randomizedDelayMs(task.schedule, Math.random())) });
  }

  /**
   * Adds a pending run. When the task already has one pending or running, a scheduled fire is
   * recorded as a skipped run (so the history shows it) and a run-now is refused.
   */
  async enqueue(task: ServerTask, cause: string, opts: { notBefore?: Date; createdBy?: string; attempt?: number } = {}): Promise<string> {
    const now = this.#clock.now().toISOString();
    const id = newId();
    if ((opts.attempt ?? 1) === 1 && (await this.#store.hasActiveRun(task.id))) {
      if (cause === 'run-now') throw new AppError('CONFLICT', `server task "${task.name}" is already pending or running; stop it first or wait for it to end`);
      await this.#store.insertRun({ id, task_id: task.id, cause, attempt: 1, created_at: now, not_before: now, created_by: opts.createdBy ?? null, state: 'skipped', summary: 'skipped: the previous run had not ended', ended_at: now });
      this.#events.record({ severity: 'warning', kind: 'server-task.skipped', message: `server task "${task.name}" skipped a run (${cause}): the previous run had not ended`, taskId: task.id, data: { runId: id, cause } });
      return id;
    }
    await this.#store.insertRun({ id, task_id: task.id, cause, attempt: opts.attempt ?? 1, created_at: now, not_before: (opts.notBefore ?? this.#clock.now()).toISOString(), created_by: opts.createdBy ?? null });
    this.#live.publish('server-tasks');
    if (!opts.notBefore || opts.notBefore.getTime() <= this.#clock.now().getTime()) this.wake();
    return id;
  }

  /** Fires the tasks whose schedule has a trigger of this event type (repository content, …). */
  async fireEvent(triggerType: 'repository-content', detail: string): Promise<void> {
    for (const t of await this.#store.listTasks()) {
      if (t.enabled && t.schedule.triggers.some((x) => x.type === triggerType)) {
        await this.enqueue(t, triggerType).catch((err: unknown) => this.#log.error({ err, taskId: t.id }, `firing ${triggerType} (${detail}) failed`));
      }
    }
  }

  /** Aborts a run this instance executes (the store flag reaches runs on other instances at their next lease renewal). */
  abortLocal(runId: string): boolean {
    const r = this.#inFlight.get(runId);
    r?.abort('stop');
    return !!r;
  }

  async #execute(row: ServerTaskRunsTable): Promise<void> {
    const controller = new AbortController();
    let stopReason: StopReason | null = null;
    const abort = (reason: StopReason) => {
      if (controller.signal.aborted) return;
      stopReason = reason;
      controller.abort(
        new Error(reason === 'timeout' ? 'stopped: the run exceeded its time limit' : reason === 'stop' ? 'stopped by an administrator' : reason === 'lease-lost' ? 'interrupted: another server instance took the run over' : 'interrupted: the server is shutting down'),
      );
    };
    this.#inFlight.set(row.id, { abort, done: Promise.resolve() });

    const task = await this.#store.getTask(row.task_id);
    const owner = this.#instance;
    if (!task) {
      this.#leases.forget(row.id);
      await this.#store.finishRun(row.id, owner, { state: 'cancelled', ended_at: this.#clock.now().toISOString(), summary: 'cancelled: the task was deleted', result: null, output_tail: null, percent: null });
      return;
    }
    let percent: number | null = null;
    let message: string | null = row.message;
    let tail = row.output_tail ?? '';
    let dirty = false;
    let secretValues: string[] = [];
    const mask = (text: string) => secretValues.reduce((t, v) => (v.length >= 4 ? t.split(v).join('***') : t), text);
    const flush = async () => {
      if (!dirty) return;
      dirty = false;
      await this.#store.saveProgress(row.id, owner, { percent, message, output_tail: tail });
      this.#live.publish('server-tasks');
    };
    // The lease itself is renewed by this.#leases; this watches the run.
    const watch = setInterval(() => {
      void (async () => {
        if (await this.#store.stopRequested(row.id)) abort('stop');
        await flush();
      })().catch((err: unknown) => this.#log.warn({ err, runId: row.id }, 'watching a server task run failed'));
    }, Math.max(200, Math.min(this.#leaseMs / 3, WATCH_MS)));
    const limitMs = task.schedule.stopAfterMinutes ? task.schedule.stopAfterMinutes * 60_000 : null;
    const timeout = limitMs ? setTimeout(() => abort('timeout'), limitMs) : null;

    const startedMsg = `server task "${task.name}" started (${row.cause}${row.attempt > 1 ? `, attempt ${row.attempt}` : ''})`;
    this.#events.record({ severity: 'info', kind: 'server-task.started', message: startedMsg, taskId: task.id, data: { runId: row.id, type: task.type, cause: row.cause, attempt: row.attempt } });
    this.#live.publish('server-tasks');

    let state: ServerTaskRunState;
    let summary: string;
    let result: Record<string, unknown> | null = null;
    try {
      const type = this.#types.get(task.type);
      const names = [...secretRefs(task.settings)];
      secretValues = names.length ? [...(await this.#secrets.values(names)).values()] : [];
      const settings = await this.#secrets.resolve(task.settings);
      const work = type.run(settings, {
        ...this.#env,
        taskId: task.id,
        taskName: task.name,
        runId: row.id,
        signal: controller.signal,
        progress(p, m) {
          percent = Math.max(0, Math.min(100, Math.round(p)));
          if (m !== undefined) message = mask(m).slice(0, 500);
          dirty = true;
        },
        output(line) {
          tail = (tail + mask(line) + '\n').slice(-OUTPUT_TAIL_MAX);
          dirty = true;
        },
      });
      // A type that ignores its signal cannot hold the run open for ever once it is stopped.
      const aborted = new Promise<never>((_, reject) =>
        controller.signal.addEventListener('abort', () => setTimeout(() => reject(controller.signal.reason as Error), ABORT_GRACE_MS).unref(), { once: true }),
      );
      const r = await Promise.race([work, aborted]);
      const warnings = r.warnings ?? [];
      if (stopReason) throw controller.signal.reason;
      state = warnings.length ? 'succeeded_with_warnings' : 'succeeded';
      summary = mask(r.summary);
      result = JSON.parse(mask(JSON.stringify({ ...(r.data ?? {}), ...(warnings.length ? { warnings } : {}) }))) as Record<string, unknown>;
      for (const w of warnings) tail = (tail + `warning: ${mask(w)}\n`).slice(-OUTPUT_TAIL_MAX);
    } catch (err) {
      const text = mask(err instanceof Error ? err.message : String(err));
      const code = err instanceof AppError ? ` [${err.code}]` : '';
      state = stopReason === 'stop' ? 'cancelled' : stopReason === 'timeout' ? 'timed_out' : 'failed';
      summary = stopReason === 'stop' || stopReason === 'timeout' ? text : `failed${code}: ${text}`;
      if (state === 'failed') this.#log.warn({ err: { message: text, code: err instanceof AppError ? err.code : undefined }, taskId: task.id, runId: row.id }, 'server task failed');
    } finally {
      clearInterval(watch);
      if (timeout) clearTimeout(timeout);
    }
    // Released below (or by whoever took it over): a renewal from now on could only report it lost.
    this.#leases.forget(row.id);
    if (stopReason === 'shutdown') {
      await this.#store.releaseRun(row.id, owner, 'interrupted by a server shutdown; resumes at the next start');
      return;
    }
    if (stopReason === 'lease-lost') return; // another instance took the run over and records it
    const endedAt = this.#clock.now().toISOString();
    const finished = await this.#store.finishRun(row.id, owner, { state, ended_at: endedAt, summary: summary.slice(0, 2000), result: result && JSON.stringify(result), output_tail: tail || null, percent: state === 'succeeded' || state === 'succeeded_with_warnings' ? 100 : percent });
    if (!finished) return;
    const severity = state === 'succeeded' ? 'info' : state === 'succeeded_with_warnings' || state === 'cancelled' ? 'warning' : 'error';
    this.#events.record({ severity, kind: `server-task.${state.replaceAll('_', '-')}`, message: `server task "${task.name}" ${state.replaceAll('_', ' ')}: ${summary}`.slice(0, 2000), taskId: task.id, data: { runId: row.id, type: task.type, cause: row.cause, attempt: row.attempt, ...(result ? { result } : {}) } });
    this.#live.publish('server-tasks');
    await this.#afterEnd(task, row, state);
  }

  /** Retries a failed run per the schedule's retry policy, and fires the tasks set to run after this one. */
  async #afterEnd(task: ServerTask, row: ServerTaskRunsTable, state: ServerTaskRunState): Promise<void> {
    if (state === 'failed' || state === 'timed_out') {
      const delay = retryDelayMs(task.schedule, row.attempt);
      if (delay !== null) await this.enqueue(task, 'retry', { attempt: row.attempt + 1, notBefore: new Date(this.#clock.now().getTime() + delay) });
    }
    if (!finalServerTaskRunStates.includes(state)) return;
    for (const next of await this.#store.listTasks()) {
      const trig = next.enabled ? next.schedule.triggers.find((x) => x.type === 'after-task' && x.taskId === task.id) : undefined;
      if (trig && trig.type === 'after-task' && (!trig.states || trig.states.includes(state))) {
        await this.enqueue(next, 'after-task').catch((err: unknown) => this.#log.error({ err, taskId: next.id }, 'firing an after-task trigger failed'));
      }
    }
  }
}
