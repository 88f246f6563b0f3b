/**
 * The agent's scheduler and run engine. It holds the device's tasks and fires them on their
 * triggers (time schedules, agent events, after other tasks, continuously, run-now), offline
 * too: nothing here needs the server. Every state change of a run is written to the spool
 * (the durable outbox) before anything else, and the run itself to `active/` while it is in
 * flight, so that a killed agent resumes its interrupted runs as a new attempt on restart and
 * no result is ever lost. The processes an attempt starts are recorded too (processes/, see
 * process-ledger.ts): before a run is resumed, what its earlier attempt left running is ended
 * (leftover-processes.ts), so that its work never happens twice side by side, and the run's
 * next report carries `run.interrupted` and `run.resumed` events to the central log.
 *
 * Schedule arithmetic (next fire times, DST, retries, back-off) comes from @garrison/core, the
 * same pure functions the server uses; see docs/adr/0002-agent-uses-core-schedules.md.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import {
  continuousRestartDelayMs,
  isWithinWindow,
  inMaintenanceWindow,
  maintenanceStart,
  lastMissedFire,
  nextScheduledFire,
  randomizedDelayMs,
  resolveTimeZone,
  retryDelayMs,
} from '@garrison/core';
import { AGENT_RUN_EVENT, START_TASK_TYPE, STOP_TASK_TYPE, isAgentRunEventKind, isFinalRunState, type RunEvent, type AgentTask, type RunReport, type RunRequest, type RunState, type Trigger, type MaintenanceWindow } from '@garrison/protocol';
import type { LocalEventLog } from './event-log.ts';
import type { AgentPluginRegistry } from './plugins.ts';
import type { RunSpool } from './run-spool.ts';
import { readJson, writeJsonAtomic } from './state-file.ts';
import { ProcessLedger, type ProcessRecord } from './process-ledger.ts';
import { describeLeftover, endLeftover, type LeftoverResult } from './leftover-processes.ts';

const MAX_TIMER_MS = 2 ** 31 - 1;
const SHUTDOWN_REASON = 'the agent is stopping';
const QUICK_EXIT_MS = 60_000;
const PROGRESS_REPORT_MS = 1000;
const APP_CHECK_MS = 5000;

interface ActiveRun {
  runId: string;
  task: AgentTask;
  requestId: string | null;
  cause: string;
  attempt: number;
  seq: number;
  createdAt: string;
  startedAt: string | null;
  /** A run-now's expiry: a run limited to maintenance windows that cannot start before it is skipped. */
  expiresAt?: string;
}
interface Running {
  run: ActiveRun;
  abort: AbortController;
  abortReason: string | null;
}
interface SchedulerState {
  lastAliveAt: string | null;
  lastFireAt: Record<string, string>;
  /** Set by stopAll(), cleared at init(): false at a start means the agent ended without stopping (kill -9, crash, power loss). */
  cleanStop?: boolean;
}
/** An interrupted run about to be resumed: what its earlier attempt left running, to be ended first. */
interface Resume {
  previousAttempt: number;
  records: ProcessRecord[];
  cleanStop: boolean;
}

export interface TaskRunnerOptions {
  dir: string;
  spool: RunSpool;
  plugins: AgentPluginRegistry;
  events: LocalEventLog;
  /** Called after a report was spooled, so that the agent sends it. */
  /** A report was spooled: the agent sends it (a final one at once, others after a short wait). */
  onReport: (report: RunReport) => void;
  timeZone?: string;
  now?: () => Date;
  random?: () => number;
  /** Where the processes runs start are recorded (default `<dir>/processes`). */
  processes?: ProcessLedger;
  /** Before resuming a run: how long its earlier attempt's processes get between SIGTERM and SIGKILL. */
  leftoverGraceMs?: number;
  /**
   * The device's maintenance windows (the agent's policy) and its zone for "local" windows:
   * a task whose schedule says maintenanceWindowsOnly waits for the next window. Absent: no
   * restriction.
   */
  maintenanceWindows?: () => { windows: readonly MaintenanceWindow[]; localZone: string };
}

export class TaskRunner {
  readonly #o: Required<Omit<TaskRunnerOptions, 'timeZone' | 'maintenanceWindows'>> & { timeZone: string; maintenanceWindows?: TaskRunnerOptions['maintenanceWindows'] };
  /** Runs waiting (state `scheduled`) for a maintenance window, by task id. */
  #waiting = new Map<string, { run: ActiveRun; timer: NodeJS.Timeout }>();
  /** Interrupted runs to resume, by run id: their earlier attempt's processes are ended before the executor runs. */
  #resumes = new Map<string, Resume>();
  /** Events to send with a run's next report (a resume's interruption and resumption). */
  #carry = new Map<string, RunEvent[]>();
  #tasks = new Map<string, AgentTask>();
  #timers = new Map<string, NodeJS.Timeout>();
  #retryTimers = new Map<string, NodeJS.Timeout>();
  /** Runs waiting for their retry, by task id, so that stop() can end them. */
  #retryRuns = new Map<string, ActiveRun>();
  #running = new Map<string, Running>();
  #continuousExits = new Map<string, number>();
  #refire = new Map<string, string>();
  #seenRuns = new Set<string>();
  #state: SchedulerState = { lastAliveAt: null, lastFireAt: {} };
  #aliveTimer: NodeJS.Timeout | null = null;
  #stopped = false;
  #inFlight = new Set<Promise<void>>();

  constructor(o: TaskRunnerOptions) {
    this.#o = {
      ...o,
      timeZone: o.timeZone ?? (Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'),
      now: o.now ?? (() => new Date()),
      random: o.random ?? Math.random,
      processes: o.processes ?? new ProcessLedger(path.join(o.dir, 'processes')),
      leftoverGraceMs: o.leftoverGraceMs ?? 5000,
    };
  }
  get #activeDir(): string {
    return path.join(this.#o.dir, 'active');
  }
  get #stateFile(): string {
    return path.join(this.#o.dir, 'scheduler.json');
  }

  /** Loads scheduler state, resumes interrupted runs, and schedules runs missed while the agent was off. */
  async init(tasks: AgentTask[]): Promise<void> {
    await mkdir(this.#activeDir, { recursive: true, mode: 0o700 });
    await this.#o.processes.init();
    this.#state = (await readJson<SchedulerState>(this.#stateFile).catch(() => undefined)) ?? { lastAliveAt: null, lastFireAt: {} };
    const cleanStop = this.#state.cleanStop === true;
    this.#state.cleanStop = false;
    const now = this.#o.now();
    const lastAlive = this.#state.lastAliveAt ? new Date(this.#state.lastAliveAt) : null;
    // Interrupted runs are launched before setTasks(), which starts continuous tasks that are not
    // running: the other way round, a continuous task interrupted by the stop was started afresh
    // AND resumed, two executions of which only the second was tracked (stop() and stopAll()
    // could never end the first). The launches and setTasks() run with no await in between, so
    // a resumed run always finds the task list set when it ends.
    const wanted = new Map(tasks.map((t) => [t.id, t]));
    const resumed: ActiveRun[] = [];
    const active = new Set<string>();
    for (const name of await readdir(this.#activeDir)) {
      if (!name.endsWith('.json')) continue;
      const run = await readJson<ActiveRun>(path.join(this.#activeDir, name)).catch(() => undefined);
      if (!run) continue;
      active.add(run.runId);
      const records = await this.#o.processes.list(run.runId);
      const task = wanted.get(run.task.id) ?? (run.requestId ? run.task : undefined);
      // A run that is not resumed must not go on either: what its attempt left running is ended.
      const cancel = !task ? 'the task was removed while the agent was stopped' : !task.enabled && !run.requestId ? 'the task was disabled while the agent was stopped' : null;
      if (cancel) {
        const results = await this.#endLeftovers(records);
        await this.#o.processes.forget(run.runId);
        const left = results.filter((r) => r.outcome !== 'already-gone').map(describeLeftover);
        await this.#finish(run, { state: 'cancelled', reason: `${cancel}${left.length ? `; ${left.join('; ')}` : ''}`, exitCode: null, outputTail: '' });
        continue;
      }
      this.#seenRuns.add(run.runId);
      this.#resumes.set(run.runId, { previousAttempt: run.attempt, records, cleanStop });
      resumed.push({ ...run, task: task!, attempt: run.attempt + 1, cause: run.cause, startedAt: null });
    }
    // Records of runs no longer active: their attempt ended (the record's removal was cut short). Not ours to end.
    for (const rec of await this.#o.processes.list()) if (!active.has(rec.runId)) await this.#o.processes.forget(rec.runId);
    for (const run of resumed) this.#launch(run);
    this.setTasks(tasks);
    if (lastAlive) {
      for (const t of this.#tasks.values()) {
        if (!t.enabled || !t.schedule.runMissed) continue;
        const missed = lastMissedFire(t.schedule, lastAlive, now, this.#tz(t));
        const lastFire = this.#state.lastFireAt[t.id];
        if (missed && (!lastFire || new Date(lastFire) < missed)) {
          const delay = (t.schedule.missedDelayMinutes ?? 0) * 60_000;
          const timer = setTimeout(() => this.fire(t.id, 'missed'), delay);
          this.#retryTimers.set(`missed:${t.id}`, timer);
        }
      }
    }
    await this.#saveState();
    this.#aliveTimer = setInterval(() => void this.#saveState(), 60_000);
    this.#aliveTimer.unref();
  }
  async #saveState(): Promise<void> {
    this.#state.lastAliveAt = this.#o.now().toISOString();
    await writeJsonAtomic(this.#stateFile, this.#state).catch(() => {});
  }
  #tz(t: AgentTask): string {
    try {
      return resolveTimeZone(t.schedule, this.#o.timeZone);
    } catch {
      return 'UTC';
    }
  }

  tasks(): AgentTask[] {
    return [...this.#tasks.values()];
  }
  task(id: string): AgentTask | undefined {
    return this.#tasks.get(id);
  }
  runningTaskIds(): string[] {
    return [...this.#running.keys()];
  }

  /** Replaces the task list: removed tasks stop, changed ones are rescheduled, new continuous ones start. */
  setTasks(list: AgentTask[]): void {
    const next = new Map(list.map((t) => [t.id, t]));
    for (const [id, old] of this.#tasks) {
      const now = next.get(id);
      if (!now) {
        this.#clearTimers(id);
        this.stop(id, undefined, 'the task was removed from this device');
      } else if (now.revision !== old.revision || now.enabled !== old.enabled) {
        this.#clearTimers(id);
        if (!now.enabled) this.stop(id, undefined, 'the task was disabled');
      }
    }
    const previous = this.#tasks;
    this.#tasks = next;
    for (const t of next.values()) {
      const old = previous.get(t.id);
      if (old && old.revision === t.revision && old.enabled === t.enabled) continue;
      this.#schedule(t);
      if (t.enabled && t.schedule.triggers.some((x) => x.type === 'continuous') && !this.#running.has(t.id)) this.fire(t.id, 'continuous');
    }
  }
  #clearTimers(id: string): void {
    const t = this.#timers.get(id);
    if (t) clearTimeout(t);
    this.#timers.delete(id);
  }
  /** Arms one timer per task for its next time-triggered fire. */
  #schedule(t: AgentTask): void {
    this.#clearTimers(t.id);
    if (!t.enabled || this.#stopped) return;
    const now = this.#o.now();
    let next: { at: Date; trigger: Trigger } | null;
    try {
      next = nextScheduledFire(t.schedule, now, this.#tz(t));
    } catch {
      next = null;
    }
    if (!next) return;
    const target = next.at.getTime() + randomizedDelayMs(t.schedule, this.#o.random());
    const arm = () => {
      const wait = target - this.#o.now().getTime();
      const timer = setTimeout(() => {
        if (this.#o.now().getTime() < target) return arm();
        this.#timers.delete(t.id);
        this.#state.lastFireAt[t.id] = next!.at.toISOString();
        void this.#saveState();
        this.fire(t.id, next!.trigger.type);
        const cur = this.#tasks.get(t.id);
        if (cur) this.#schedule(cur);
      }, Math.min(Math.max(wait, 0), MAX_TIMER_MS));
      this.#timers.set(t.id, timer);
    };
    arm();
  }

  /** New content for these products was installed: their tasks triggered by repository content fire. */
  onNewContent(products: readonly string[]): void {
    for (const t of this.#tasks.values()) {
      if (t.enabled && products.includes(t.product) && t.schedule.triggers.some((x) => x.type === 'repository-content')) this.fire(t.id, 'repository-content');
    }
  }

  /** Agent events: check-in, policy enforcement, agent start, enrolment. */
  onEvent(type: 'check-in' | 'policy-enforcement' | 'agent-start' | 'enrolment'): void {
    for (const t of this.#tasks.values()) {
      if (t.enabled && t.schedule.triggers.some((x) => x.type === type)) this.fire(t.id, type);
    }
  }

  /** Fires a task from a trigger: skipped silently if it is already running or outside its window. */
  fire(taskId: string, cause: string): void {
    const t = this.#tasks.get(taskId);
    if (!t || !t.enabled || this.#stopped) return;
    const executor = this.#o.plugins.executor(t.product, t.type);
    if (this.#waiting.has(taskId)) return;
    if (this.#running.has(taskId)) {
      // A task that decides for itself whether there is work (the deployment) is fired again
      // when its run ends: the work may have changed while it ran. Others skip this fire.
      if (executor?.shouldRun) this.#refire.set(taskId, cause);
      return;
    }
    if (!isWithinWindow(t.schedule, this.#o.now())) return;
    if (executor?.shouldRun && !executor.shouldRun(t)) return;
    const now = this.#o.now().toISOString();
    this.#launch({ runId: randomUUID(), task: t, requestId: null, cause, attempt: 1, seq: 0, createdAt: now, startedAt: null });
  }

  /** A run the administrator asked for now; duplicates (push and check-in both delivering) are ignored. */
  runNow(req: RunRequest): void {
    if (this.#seenRuns.has(req.runId) || this.#stopped) return;
    this.#seenRuns.add(req.runId);
    if (this.#seenRuns.size > 10_000) this.#seenRuns.delete(this.#seenRuns.values().next().value!);
    const now = this.#o.now();
    const run: ActiveRun = { runId: req.runId, task: req.task, requestId: req.requestId, cause: 'run-now', attempt: 1, seq: 0, createdAt: now.toISOString(), startedAt: null, expiresAt: req.expiresAt };
    if (new Date(req.expiresAt) <= now) {
      void this.#finish(run, { state: 'skipped', reason: 'the run-now request had expired when it arrived', exitCode: null, outputTail: '' });
      return;
    }
    if (this.#running.has(req.taskId) || this.#waiting.has(req.taskId)) {
      void this.#finish(run, { state: 'skipped', reason: 'the task was already running on this device', exitCode: null, outputTail: '' });
      return;
    }
    this.#launch(run);
  }

  /** Stops the task's running run (cancelled), a run waiting for a maintenance window, and its pending retries. */
  stop(taskId: string, runIds?: string[], reason = 'stopped by the administrator'): void {
    const waitingWindow = this.#waiting.get(taskId);
    if (waitingWindow && (!runIds || runIds.includes(waitingWindow.run.runId))) {
      clearTimeout(waitingWindow.timer);
      this.#waiting.delete(taskId);
      void this.#finish(waitingWindow.run, { state: 'cancelled', reason, exitCode: null, outputTail: '' }).catch(() => {});
    }
    const r = this.#running.get(taskId);
    if (r && (!runIds || runIds.includes(r.run.runId))) {
      r.abortReason = reason;
      r.abort.abort();
    }
    // A run waiting for its retry is stopped too, and must be reported cancelled: only clearing
    // its timer left it "scheduled" for ever, with its active/ record resuming it (as attempt+1)
    // at the next agent start although it was stopped, disabled or removed.
    const waiting = this.#retryRuns.get(taskId);
    if (waiting && runIds && !runIds.includes(waiting.runId)) return;
    const retry = this.#retryTimers.get(taskId);
    if (retry) {
      clearTimeout(retry);
      this.#retryTimers.delete(taskId);
    }
    if (waiting) {
      this.#retryRuns.delete(taskId);
      void this.#finish(waiting, { state: 'cancelled', reason, exitCode: null, outputTail: '' }).catch(() => {});
    }
  }

  #launch(run: ActiveRun): void {
    if (this.#holdForWindow(run)) return;
    const running: Running = { run, abort: new AbortController(), abortReason: null };
    this.#running.set(run.task.id, running);
    const p = this.#execute(running).finally(() => this.#inFlight.delete(p));
    this.#inFlight.add(p);
  }

  /**
   * A run of a task limited to maintenance windows that comes due outside one: reported
   * `scheduled` and started at the next window (the windows are read again then: the policy
   * may have changed), or `skipped` when its expiry (a run-now's, or the schedule's end)
   * comes first. Returns true when the run is held or skipped.
   */
  #holdForWindow(run: ActiveRun): boolean {
    const source = this.#o.maintenanceWindows;
    if (!run.task.schedule.maintenanceWindowsOnly || !source) return false;
    const { windows, localZone } = source();
    const now = this.#o.now();
    if (inMaintenanceWindow(windows, now, localZone)) return false;
    const start = maintenanceStart(windows, now, localZone);
    const expiries = [run.expiresAt, run.task.schedule.endAt].filter((x): x is string => typeof x === 'string').map((x) => new Date(x).getTime());
    const expiry = expiries.length > 0 ? Math.min(...expiries) : null;
    if (start === null || (expiry !== null && start.getTime() >= expiry)) {
      void this.#finish(run, { state: 'skipped', reason: 'outside maintenance windows: no window opens before the run expires', exitCode: null, outputTail: '' }).catch(() => {});
      return true;
    }
    const delay = Math.min(Math.max(0, start.getTime() - now.getTime()), 2 ** 31 - 1);
    const timer = setTimeout(() => {
      if (this.#waiting.get(run.task.id)?.run !== run) return;
      this.#waiting.delete(run.task.id);
      if (this.#stopped) return;
      // The task may have changed or gone while it waited: run what the agent holds now.
      const current = this.#tasks.get(run.task.id);
      if (run.requestId === null && (!current || !current.enabled)) {
        void this.#finish(run, { state: 'cancelled', reason: 'the task was removed or disabled while it waited for a maintenance window', exitCode: null, outputTail: '' }).catch(() => {});
        return;
      }
      if (current) run.task = current;
      this.#launch(run);
    }, delay);
    timer.unref?.();
    this.#waiting.set(run.task.id, { run, timer });
    void this.#report(run, { state: 'scheduled', reason: `waiting for the next maintenance window (${start.toISOString()})` }).catch(() => {});
    return true;
  }

  async #report(run: ActiveRun, r: Partial<RunReport> & { state: RunState }): Promise<void> {
    const carried = this.#carry.get(run.runId);
    if (carried) {
      this.#carry.delete(run.runId);
      r = { ...r, events: [...carried, ...(r.events ?? [])].slice(0, 100) };
    }
    run.seq++;
    const report: RunReport = {
      runId: run.runId,
      taskId: run.task.id,
      requestId: run.requestId,
      attempt: run.attempt,
      seq: run.seq,
      cause: run.cause,
      createdAt: run.createdAt,
      startedAt: run.startedAt,
      ...r,
    };
    await this.#o.spool.put(report);
    if (!isFinalRunState(r.state)) await writeJsonAtomic(path.join(this.#activeDir, `${run.runId}.json`), run);
    this.#o.onReport(report);
  }

  async #finish(run: ActiveRun, outcome: { state: RunState; reason: string | null; exitCode: number | null; outputTail: string; events?: RunEvent[] }): Promise<void> {
    const endedAt = this.#o.now().toISOString();
    await this.#report(run, {
      state: outcome.state,
      reason: outcome.reason,
      exitCode: outcome.exitCode,
      outputTail: outcome.outputTail,
      endedAt,
      percent: outcome.state === 'succeeded' ? 100 : undefined,
      // The run lifecycle kinds are the agent's own: an executor cannot report them.
      ...(outcome.events?.length ? { events: outcome.events.filter((e) => !isAgentRunEventKind(e.kind)).slice(0, 100) } : {}),
    });
    await rm(path.join(this.#activeDir, `${run.runId}.json`), { force: true });
    const severity = outcome.state === 'succeeded' ? 'info' : outcome.state === 'failed' || outcome.state === 'timed_out' ? 'error' : 'warning';
    await this.#o.events.write({
      time: endedAt,
      severity,
      kind: `run.${outcome.state}`,
      message: `task "${run.task.name}" ${outcome.state.replaceAll('_', ' ')}${outcome.exitCode !== null ? ` (exit code ${outcome.exitCode})` : outcome.reason ? ` (${outcome.reason})` : ''}`,
      taskId: run.task.id,
      runId: run.runId,
      data: { attempt: run.attempt, cause: run.cause },
    });
  }

  async #execute(running: Running): Promise<void> {
    const { run } = running;
    const t = run.task;
    const startedMs = Date.now();
    let state: RunState = 'failed';
    // Whether the run ended in a final state, so that after-task triggers fire and a continuous
    // task restarts. Decided in `finally`: the early returns below (no executor, application not
    // running → skipped) used to skip #afterFinal, so an after-task trigger on "skipped" (or on
    // all states) never fired, and a continuous task whose application was not running at a
    // restart was never tried again.
    let final = true;
    try {
      const resume = this.#resumes.get(run.runId);
      if (resume) {
        this.#resumes.delete(run.runId);
        if (!(await this.#prepareResume(run, resume))) return;
      }
      const executor = this.#o.plugins.executor(t.product, t.type);
      if (!executor) {
        await this.#finish(run, { state: 'failed', reason: `this agent has no executor for ${t.product}/${t.type}`, exitCode: null, outputTail: '' });
        return;
      }
      // Starting and stopping the application are the two tasks the execution condition does not govern.
      const lifecycle = t.type === START_TASK_TYPE || t.type === STOP_TASK_TYPE;
      if (!lifecycle && !(await this.#o.plugins.isRunning(t.product))) {
        state = 'skipped';
        await this.#finish(run, { state: 'skipped', reason: `the application of product "${t.product}" is not running`, exitCode: null, outputTail: '' });
        return;
      }
      run.startedAt = this.#o.now().toISOString();
      await this.#report(run, { state: 'running', percent: 0 });
      let lastProgress = 0;
      let lastPercent = 0;
      let progressReport: Promise<void> = Promise.resolve();
      // The execution condition holds for the whole run: if the application stops, so does the task.
      const appWatch = setInterval(() => {
        if (lifecycle) return;
        void this.#o.plugins.isRunning(t.product).then((up) => {
          if (!up && !running.abort.signal.aborted) {
            running.abortReason = `the application of product "${t.product}" stopped`;
            running.abort.abort();
          }
        });
      }, APP_CHECK_MS);
      let outcome;
      try {
        outcome = await executor.run(t, {
          signal: running.abort.signal,
          ...(t.schedule.stopAfterMinutes ? { timeoutMs: t.schedule.stopAfterMinutes * 60_000 } : {}),
          tempDir: path.join(this.#o.dir, 'tmp'),
          ...this.#o.plugins.context(t.product),
          run: { runId: run.runId, attempt: run.attempt, taskId: t.id },
          onProcessStarted: (p) => {
            this.#o.processes.recordStarted({ runId: run.runId, attempt: run.attempt, taskId: t.id }, p);
          },
          onProgress: (percent) => {
            const nowMs = Date.now();
            if (percent === lastPercent || nowMs - lastProgress < PROGRESS_REPORT_MS) return;
            lastProgress = nowMs;
            lastPercent = percent;
            progressReport = this.#report(run, { state: 'running', percent }).catch(() => {});
          },
        });
      } finally {
        clearInterval(appWatch);
        // The attempt is over: what it started is no longer the run's to end. Kept when the agent
        // is stopping in the middle of it, so the next start makes sure nothing of it is left.
        if (running.abortReason !== SHUTDOWN_REASON) await this.#o.processes.forget(run.runId).catch(() => {});
      }
      // A progress report still being written rewrites active/<runId>.json after its spool put;
      // landing after #finish's rm, it left the finished run in active/, to be run again at the
      // next start. Let it land before anything else is reported.
      await progressReport;
      // Stopped by an agent shutdown: keep the active record, so the next start resumes the run.
      if (running.abortReason === SHUTDOWN_REASON) {
        final = false;
        return;
      }
      state = outcome.state;
      const reason = outcome.state === 'cancelled' ? (running.abortReason ?? outcome.reason) : outcome.reason;
      const delay = (state === 'failed' || state === 'timed_out') && !this.#stopped ? retryDelayMs(t.schedule, run.attempt) : null;
      if (delay !== null) {
        await this.#report(run, { state: 'scheduled', reason: `attempt ${run.attempt} ${state.replace('_', ' ')}${reason ? `: ${reason}` : ''}; retry in ${Math.round(delay / 1000)} s`, exitCode: outcome.exitCode, outputTail: outcome.outputTail });
        this.#running.delete(t.id);
        const timer = setTimeout(() => {
          this.#retryTimers.delete(t.id);
          this.#retryRuns.delete(t.id);
          if (!this.#running.has(t.id)) this.#launch({ ...run, attempt: run.attempt + 1, cause: run.cause, startedAt: null });
        }, delay);
        this.#retryTimers.set(t.id, timer);
        this.#retryRuns.set(t.id, run);
        final = false;
        return;
      }
      await this.#finish(run, { state: outcome.state, reason, exitCode: outcome.exitCode, outputTail: outcome.outputTail, events: outcome.events });
    } catch (err) {
      await this.#finish(run, { state: 'failed', reason: `agent error: ${(err as Error).message}`, exitCode: null, outputTail: '' }).catch(() => {});
    } finally {
      if (this.#running.get(t.id)?.run === run) this.#running.delete(t.id);
      if (final && !this.#stopped) this.#afterFinal(t, state, Date.now() - startedMs);
    }
  }

  /** Ends every recorded process at once (each waits for its own group): the bound is one grace time, not one per process. */
  #endLeftovers(records: ProcessRecord[]): Promise<LeftoverResult[]> {
    return Promise.all(records.map((r) => endLeftover(r, { graceMs: this.#o.leftoverGraceMs })));
  }

  /**
   * Before an interrupted run's next attempt: ends what the earlier attempt left running (its
   * process groups), and tells the central event log about the interruption and the resume
   * (events carried by the run's next report). False when something could not be ended: the
   * run then fails rather than doing its work a second time beside the first.
   */
  async #prepareResume(run: ActiveRun, resume: Resume): Promise<boolean> {
    const t = run.task;
    const results = await this.#endLeftovers(resume.records);
    const time = this.#o.now().toISOString();
    const how = resume.cleanStop ? 'the agent was stopped during it' : 'the agent ended without stopping (killed, crashed or lost power)';
    const left = results.map(describeLeftover);
    const leftovers = results.map((r) => ({ pid: r.record.pid, group: r.record.group, command: r.record.command, outcome: r.outcome }));
    const survived = results.filter((r) => r.outcome === 'survived');
    const interrupted: RunEvent = {
      severity: survived.length ? 'error' : 'warning',
      kind: AGENT_RUN_EVENT.interrupted,
      message: `attempt ${resume.previousAttempt} of task "${t.name}" was interrupted: ${how}${left.length ? `; ${left.join('; ')}` : '; it had started no process'}`.slice(0, 2000),
      time,
      data: { attempt: resume.previousAttempt, cleanStop: resume.cleanStop, leftovers },
    };
    await this.#o.events.write({ time, severity: interrupted.severity, kind: interrupted.kind, message: interrupted.message, taskId: t.id, runId: run.runId, data: interrupted.data! });
    await this.#o.processes.forget(run.runId);
    if (survived.length) {
      this.#carry.set(run.runId, [interrupted]);
      await this.#finish(run, { state: 'failed', reason: `not resumed: ${survived.map(describeLeftover).join('; ')}; ending it by hand and running the task again is safe`, exitCode: null, outputTail: '' });
      return false;
    }
    const resumed: RunEvent = {
      severity: 'info',
      kind: AGENT_RUN_EVENT.resumed,
      message: `task "${t.name}" resumed as attempt ${run.attempt}`,
      time,
      data: { attempt: run.attempt, previousAttempt: resume.previousAttempt },
    };
    await this.#o.events.write({ time, severity: 'info', kind: resumed.kind, message: resumed.message, taskId: t.id, runId: run.runId, data: resumed.data! });
    this.#carry.set(run.runId, [interrupted, resumed]);
    return true;
  }

  /** Continuous tasks restart with back-off; after-task triggers fire. */
  #afterFinal(t: AgentTask, state: RunState, ranMs: number): void {
    const again = this.#refire.get(t.id);
    if (again !== undefined) {
      this.#refire.delete(t.id);
      this.fire(t.id, again);
    }
    const cur = this.#tasks.get(t.id);
    const continuous = cur?.enabled ? cur.schedule.triggers.find((x) => x.type === 'continuous') : undefined;
    if (cur && continuous && continuous.type === 'continuous' && state !== 'cancelled') {
      const quick = ranMs < QUICK_EXIT_MS ? (this.#continuousExits.get(t.id) ?? 0) + 1 : 0;
      this.#continuousExits.set(t.id, quick);
      const delay = continuousRestartDelayMs(continuous, quick > 0 ? quick - 1 : 0);
      const timer = setTimeout(() => {
        this.#retryTimers.delete(t.id);
        this.fire(t.id, 'continuous');
      }, delay);
      this.#retryTimers.set(t.id, timer);
    }
    for (const other of this.#tasks.values()) {
      for (const trig of other.schedule.triggers) {
        if (trig.type === 'after-task' && trig.taskId === t.id && (!trig.states || trig.states.includes(state))) this.fire(other.id, `after-task`);
      }
    }
  }

  /**
   * Stops scheduling. With `interruptRunning`, running processes are killed and their runs kept
   * in `active/`, to be resumed as a new attempt at the next start (a service restart).
   */
  async stopAll(opts: { interruptRunning: boolean } = { interruptRunning: true }): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    for (const t of this.#retryTimers.values()) clearTimeout(t);
    for (const w of this.#waiting.values()) clearTimeout(w.timer);
    if (this.#aliveTimer) clearInterval(this.#aliveTimer);
    if (opts.interruptRunning) {
      for (const r of this.#running.values()) {
        r.abortReason = SHUTDOWN_REASON;
        r.abort.abort();
      }
      await Promise.allSettled([...this.#inFlight]);
    }
    this.#state.cleanStop = true;
    await this.#saveState();
  }
}
