import {
  DEFAULT_RUN_NOW_EXPIRY_MINUTES,
  RESULT_DEVICE_IDS_MAX,
  RUN_NOW_DEVICES_MAX,
  type AgentTask,
  type Page,
  type PageRequest,
  type ResultListQuery,
  type RunListQuery,
  type RunNowBody,
  type Task,
  type TaskListItem,
  type TaskResultPage,
  type Run,
  type RunNowProgress,
  type RunNowResult,
  type TaskProgress,
} from '@garrison/protocol';
import { nextScheduledFire, resolveTimeZone, summarizeProgress, summarizeRunNowProgress } from '@garrison/core';
import { AppError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import { newId } from '../ids.ts';
import type { ResultFilter, RunFilter, RunOfDevice, RunStore } from '../storage/run-store.ts';
import { decodeCursor, encodeCursor, pageLimit } from '../paging.ts';
import { authorize, inReach, notVisible, Permission, actorName, reachList, reachOf, type Actor } from './actor.ts';
import type { Catalog } from './catalog.ts';
import type { EventService } from './event-service.ts';
import type { Presence } from './presence.ts';
import type { DomainBus } from './domain-bus.ts';
import type { TaskService } from './task-service.ts';

export type { RunNowResult };

const DISPATCH_CHUNK = 2000;
/** How long an instance remembers what it delivered of another instance's run-now, at most. */
const REMOTE_REQUEST_MS = 10 * 60_000;

/** What an instance delivers of a run-now stored by another: resolved once per request. */
interface RemoteRequest {
  task: Task;
  expiresAt: string;
  /** The message of each group's devices, resolved as groups are met. */
  agentTasks: Map<string, Promise<AgentTask | null>>;
  /** Runs already sent to agents here (the closing catch-up leaves them out). */
  delivered: Set<string>;
  timer: NodeJS.Timeout;
}

export class RunService {
  readonly #runs: RunStore;
  readonly #catalog: Catalog;
  readonly #tasks: TaskService;
  readonly #clock: Clock;
  readonly #events: EventService;
  readonly #presence: Presence;
  readonly #bus: DomainBus;
  readonly #remoteRequests = new Map<string, Promise<RemoteRequest | null>>();

  constructor(deps: { runs: RunStore; catalog: Catalog; tasks: TaskService; clock: Clock; events: EventService; presence: Presence; bus: DomainBus }) {
    this.#bus = deps.bus;
    // Run-nows and stops given to another instance reach the agents connected here.
    deps.bus.on('run-now', (e, origin) => (origin === 'remote' ? this.#deliverHere(e).then(() => {}) : undefined));
    deps.bus.on('task.stopped', (e, origin) => {
      if (origin === 'remote') this.#stopHere(e.taskId);
    });
    this.#runs = deps.runs;
    this.#catalog = deps.catalog;
    this.#tasks = deps.tasks;
    this.#clock = deps.clock;
    this.#events = deps.events;
    this.#presence = deps.presence;
  }

  /**
   * Run now: one pending run per target in a single batched transaction, then one message per
   * connected target. Offline targets receive the run at their next contact until it expires.
   */
  async runNow(actor: Actor, taskId: string, opts: RunNowBody = {}): Promise<RunNowResult> {
    const task = this.#tasks.get(actor, taskId);
    authorize(actor, Permission.runTasks, this.#catalog.tree, this.#tasks.scopeGroups(task.scope));
    const now = this.#clock.now();
    const expiry = opts.expiryMinutes ?? task.schedule.runNowExpiryMinutes ?? DEFAULT_RUN_NOW_EXPIRY_MINUTES;
    if (!Number.isInteger(expiry) || expiry < 1 || expiry > 525600) throw new AppError('VALIDATION_FAILED', 'expiryMinutes must be 1 to 525600');
    const createdAt = now.toISOString();
    const expiresAt = new Date(now.getTime() + expiry * 60_000).toISOString();
    const requestId = newId();
    const targets = await this.#runNowTargets(actor, task, opts);
    const agentTasks = await this.#agentTasks(task, targets);
    await this.#runs.insertRunRequest({ id: requestId, taskId, createdBy: actorName(actor), createdAt, expiresAt, targetCount: targets.length });
    // In chunks: the first agents start while later chunks are being stored, and the event
    // loop (acks, heartbeats) runs between chunks instead of stalling for the whole fleet.
    let delivered = 0;
    for (let i = 0; i < targets.length; i += DISPATCH_CHUNK) {
      const chunk = targets.slice(i, i + DISPATCH_CHUNK);
      const runs = chunk.map((d) => ({ id: newId(), taskId, deviceId: d.id, requestId, createdAt, expiresAt }));
      await this.#runs.insertPendingRuns(runs);
      delivered += this.#presence.sendEach(
        runs.flatMap((r, k) => {
          const agentTask = agentTasks.get(chunk[k]!.groupId);
          return agentTask ? [[r.deviceId, { type: 'run-now', requests: [{ runId: r.id, requestId, taskId, expiresAt, task: agentTask }] }] as const] : [];
        }),
      );
      // Those connected to other instances: their instances send them now, not after the last chunk.
      const remote: [string, string][] = [];
      for (const [k, d] of chunk.entries()) {
        if (this.#presence.isOnlineHere(d.id) || !this.#presence.isOnline(d.id) || !agentTasks.get(d.groupId)) continue;
        delivered++;
        remote.push([runs[k]!.id, d.id]);
      }
      if (this.#bus.shared && remote.length) this.#bus.publish({ type: 'run-now', taskId, requestId, runs: remote });
      if (i + DISPATCH_CHUNK < targets.length) await new Promise((r) => setImmediate(r));
    }
    // Every chunk is stored: each instance catches up on the pending runs of its own agents.
    if (this.#bus.shared) this.#bus.publish({ type: 'run-now', taskId, requestId });
    await this.#events.audit(actor, 'task.run-now', `task "${task.name}" run now on ${targets.length} device${targets.length === 1 ? '' : 's'} (${delivered} connected)`, {
      taskId,
      data: { requestId, targets: targets.length, delivered, expiresAt },
    });
    return { requestId, taskId, targets: targets.length, delivered, expiresAt };
  }

  /**
   * Who a run-now goes to: every target, or those named (each a current target the caller
   * may reach with runTasks: a device list cannot widen the task's scope nor reach past the
   * caller's groups), and of them only those whose latest run failed when asked.
   */
  async #runNowTargets(actor: Actor, task: Task, opts: RunNowBody): Promise<ReturnType<Catalog['targetsOf']>> {
    let targets = this.#catalog.targetsOf(task);
    if (opts.deviceIds) {
      const ids = new Set(opts.deviceIds);
      if (ids.size > RUN_NOW_DEVICES_MAX) throw new AppError('VALIDATION_FAILED', `at most ${RUN_NOW_DEVICES_MAX} devices`);
      const reach = reachOf(actor, Permission.runTasks, this.#catalog.tree);
      const byId = new Map(targets.map((d) => [d.id, d]));
      const refused = [...ids].filter((id) => {
        const d = byId.get(id);
        return !d || !inReach(reach, d.groupId);
      });
      if (refused.length) {
        throw new AppError('DEVICE_NOT_TARGETED', `${refused.length} of the devices given ${refused.length === 1 ? 'is' : 'are'} not a current target of task "${task.name}" that you may run it on: ${refused.slice(0, 5).join(', ')}${refused.length > 5 ? ', …' : ''}`, {
          deviceIds: refused.slice(0, 100),
        });
      }
      targets = targets.filter((d) => ids.has(d.id));
    }
    if (opts.onlyFailed) {
      const failed = new Set(await this.#runs.devicesWithLatestState(task.id, ['failed', 'timed_out']));
      targets = targets.filter((d) => failed.has(d.id));
    }
    return targets;
  }

  /** Stops a task: connected targets cancel its running runs; undelivered run-nows are cancelled. */
  async stop(actor: Actor, taskId: string): Promise<{ cancelledPending: number; signalled: number }> {
    const task = this.#tasks.get(actor, taskId);
    authorize(actor, Permission.runTasks, this.#catalog.tree, this.#tasks.scopeGroups(task.scope));
    const at = this.#clock.now().toISOString();
    const cancelledPending = await this.#runs.cancelPendingRuns(taskId, `stopped by ${actorName(actor)}`, at);
    const signalled = this.#stopHere(taskId);
    this.#bus.publish({ type: 'task.stopped', taskId });
    await this.#events.audit(actor, 'task.stopped', `task "${task.name}" stopped`, { taskId, data: { cancelledPending, signalled } });
    return { cancelledPending, signalled };
  }

  /**
   * The message each group's devices get: resolved once per group of the targets (a secret is
   * resolved only for devices of its own subtree); a group whose devices may not receive a
   * secret of the task gets none.
   */
  async #agentTasks(task: Task, targets: readonly { groupId: string }[]): Promise<Map<string, AgentTask | null>> {
    const agentTasks = new Map<string, AgentTask | null>();
    for (const d of targets) if (!agentTasks.has(d.groupId)) agentTasks.set(d.groupId, null);
    for (const groupId of agentTasks.keys()) {
      agentTasks.set(
        groupId,
        await this.#tasks.toAgentTask(task, groupId).catch((err: unknown) => {
          if (err instanceof AppError && err.code === 'SECRET_REFERENCE_REFUSED') return null;
          throw err;
        }),
      );
    }
    return agentTasks;
  }
  /**
   * Another instance stored runs of a run-now: those of the agents connected here go out, a
   * chunk at a time as it announces them, then (its closing event) whatever is still pending
   * for agents here that no chunk named.
   */
  async #deliverHere(e: { taskId: string; requestId: string; runs?: [string, string][] }): Promise<number> {
    const req = await this.#remoteRequest(e.taskId, e.requestId);
    if (!req) return 0;
    let runs: { id: string; deviceId: string }[];
    if (e.runs) runs = e.runs.map(([id, deviceId]) => ({ id, deviceId }));
    else {
      // This instance's own presence rows first, so that agents that connected a moment ago are in them.
      await this.#presence.flush();
      runs = await this.#runs.pendingRunsOfRequestOn(e.requestId, this.#bus.instanceId);
      clearTimeout(req.timer);
      this.#remoteRequests.delete(e.requestId);
    }
    const here = runs.flatMap((r) => {
      const d = !req.delivered.has(r.id) && this.#presence.isOnlineHere(r.deviceId) ? this.#catalog.device(r.deviceId) : undefined;
      return d ? [{ ...r, groupId: d.groupId }] : [];
    });
    if (here.length === 0) return 0;
    for (const r of here) {
      req.delivered.add(r.id);
      if (!req.agentTasks.has(r.groupId)) req.agentTasks.set(r.groupId, this.#agentTasks(req.task, [r]).then((m) => m.get(r.groupId) ?? null));
    }
    const agentTasks = new Map(await Promise.all([...new Set(here.map((r) => r.groupId))].map(async (g) => [g, await req.agentTasks.get(g)!] as const)));
    return this.#presence.sendEach(
      here.flatMap((r) => {
        const agentTask = agentTasks.get(r.groupId);
        return agentTask ? [[r.deviceId, { type: 'run-now', requests: [{ runId: r.id, requestId: e.requestId, taskId: e.taskId, expiresAt: req.expiresAt, task: agentTask }] }] as const] : [];
      }),
    );
  }
  /** The task and request of another instance's run-now, read once for all its chunks. */
  #remoteRequest(taskId: string, requestId: string): Promise<RemoteRequest | null> {
    let req = this.#remoteRequests.get(requestId);
    if (!req) {
      req = (async () => {
        const task = this.#catalog.task(taskId) ?? (await this.#catalog.reloadTasks(), this.#catalog.task(taskId));
        const request = task && (await this.#runs.getRunRequest(requestId));
        if (!task || !request) return null;
        // Forgotten even if the closing event never comes (a lost notification).
        const timer = setTimeout(() => this.#remoteRequests.delete(requestId), REMOTE_REQUEST_MS);
        timer.unref();
        return { task, expiresAt: request.expiresAt, agentTasks: new Map(), delivered: new Set<string>(), timer };
      })();
      this.#remoteRequests.set(requestId, req);
      req.then(
        (r) => {
          if (!r) this.#remoteRequests.delete(requestId);
        },
        () => this.#remoteRequests.delete(requestId),
      );
    }
    return req;
  }
  #stopHere(taskId: string): number {
    const task = this.#catalog.task(taskId);
    if (!task) return 0;
    return this.#presence.send(
      this.#catalog.targetsOf(task).map((d) => d.id),
      { type: 'stop', taskId },
    );
  }

  /** Progress over the targets the caller may see (an inherited task shows only the caller's devices). */
  async progress(actor: Actor, taskId: string): Promise<TaskProgress> {
    const task = this.#tasks.get(actor, taskId);
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    const targets = this.#catalog.targetsOf(task).filter((d) => inReach(reach, d.groupId)).map((d) => d.id);
    const latest = await this.#runs.latestStates(taskId);
    return summarizeProgress(taskId, targets, latest);
  }
  /**
   * Progress of one run-now over the devices it was given to (those the caller may see), so a
   * watch ends when they have finished; devices that joined the targets since are apart.
   */
  async runNowProgress(actor: Actor, taskId: string, requestId: string): Promise<RunNowProgress> {
    const task = this.#tasks.get(actor, taskId);
    const request = await this.#runs.getRunRequest(requestId);
    if (!request || request.taskId !== task.id) throw new AppError('NOT_FOUND', `task ${taskId} has no run-now request ${requestId}`);
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    const [given, latest] = await Promise.all([this.#runs.requestRunStates(request, reachList(reach)), this.#runs.latestStates(taskId)]);
    const targetsNow = this.#catalog.targetsOf(task).filter((d) => inReach(reach, d.groupId)).map((d) => d.id);
    return { ...summarizeRunNowProgress(taskId, given, targetsNow, latest), requestId, createdAt: request.createdAt, expiresAt: request.expiresAt };
  }
  /**
   * A page of the task's latest run on each device the caller may see, by device name, with
   * the count of each state over all of them (one grouped count on the (task, device) index).
   */
  async results(actor: Actor, taskId: string, query: ResultListQuery = {}): Promise<TaskResultPage> {
    this.#tasks.get(actor, taskId);
    const groupIds = reachList(reachOf(actor, Permission.read, this.#catalog.tree));
    const limit = pageLimit(query);
    const after = resultCursor(query.cursor);
    const deviceIds = query.deviceIds ? [...new Set(query.deviceIds.split(',').filter(Boolean))] : undefined;
    if (deviceIds && deviceIds.length > RESULT_DEVICE_IDS_MAX) throw new AppError('VALIDATION_FAILED', `deviceIds names at most ${RESULT_DEVICE_IDS_MAX} devices`, { issues: [{ path: '/deviceIds', message: `more than ${RESULT_DEVICE_IDS_MAX} ids` }] });
    const filter: ResultFilter = { state: query.state, search: query.search || undefined, deviceIds, groupIds };
    const [rows, states, total] = await Promise.all([
      this.#runs.pageLatestRuns(taskId, filter, { after, limit: limit + 1, withOutput: query.output !== false }),
      this.#runs.latestStateCounts(taskId, groupIds),
      filter.state || filter.search || filter.deviceIds ? this.#runs.countLatest(taskId, filter) : null,
    ]);
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return {
      items,
      nextCursor: rows.length > limit && last ? encodeCursor([last.deviceName, last.deviceId]) : null,
      total: total ?? Object.values(states).reduce((a, b) => a + b, 0),
      states,
    };
  }
  /** Every result the filter matches, a page at a time (an export of any size in bounded memory). */
  async *eachResult(actor: Actor, taskId: string, query: Pick<ResultListQuery, 'state' | 'search'>): AsyncGenerator<RunOfDevice[]> {
    this.#tasks.get(actor, taskId);
    const filter: ResultFilter = { state: query.state, search: query.search || undefined, groupIds: reachList(reachOf(actor, Permission.read, this.#catalog.tree)) };
    let after: { name: string; deviceId: string } | null = null;
    for (;;) {
      const rows = await this.#runs.pageLatestRuns(taskId, filter, { after, limit: 1000, withOutput: false });
      if (rows.length) yield rows;
      if (rows.length < 1000) return;
      const last = rows[rows.length - 1]!;
      after = { name: last.deviceName, deviceId: last.deviceId };
    }
  }
  /**
   * The dashboard's view of the last `hours`: how many runs ended in each final state and the
   * latest failures, with task and device names.
   */
  async outcomes(actor: Actor, hours = 24, failures = 10): Promise<{ since: string; states: Record<string, number>; failures: (Run & { taskName: string; deviceName: string })[] }> {
    const groups = reachList(reachOf(actor, Permission.read, this.#catalog.tree));
    const since = new Date(this.#clock.now().getTime() - hours * 3600_000).toISOString();
    const [states, failed] = await Promise.all([this.#runs.outcomesSince(since, groups), this.#runs.failuresSince(since, failures, groups)]);
    return {
      since,
      states,
      failures: failed.map((r) => ({ ...r, taskName: this.#catalog.task(r.taskId)?.name ?? r.taskId, deviceName: this.#catalog.device(r.deviceId)?.name ?? r.deviceId })),
    };
  }
  /** Runs newest first, of devices the caller may see. */
  async page(actor: Actor, query: RunListQuery): Promise<Page<Run>> {
    const limit = pageLimit(query);
    const key = decodeCursor(query.cursor, 2);
    if (key && (typeof key[0] !== 'string' || typeof key[1] !== 'string')) throw badCursor();
    const before = key ? { createdAt: key[0] as string, id: key[1] as string } : null;
    const { cursor: _c, limit: _l, ...filter } = query;
    const rows = await this.#runs.pageRuns({ ...filter, groupIds: reachList(reachOf(actor, Permission.read, this.#catalog.tree)) }, { before, limit: limit + 1 });
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeCursor([last.createdAt, last.id]) : null };
  }
  /** A page of tasks with their last run, failures (over the devices the caller may see) and next fire time. */
  async taskListItems(actor: Actor, page: Page<Task>): Promise<Page<TaskListItem>> {
    const summaries = await this.#runs.taskSummaries(
      page.items.map((t) => t.id),
      reachList(reachOf(actor, Permission.read, this.#catalog.tree)),
    );
    const now = this.#clock.now();
    return { ...page, items: page.items.map((t) => ({ ...t, lastRunAt: summaries.get(t.id)?.lastRunAt ?? null, failures: summaries.get(t.id)?.failures ?? 0, nextRunAt: nextRunAt(t, now) })) };
  }
  /** The newest `limit` runs (a device's history). */
  async list(actor: Actor, filter: RunFilter & PageRequest): Promise<Run[]> {
    return (await this.page(actor, { ...filter, limit: filter.limit ?? 100 })).items;
  }
  async get(actor: Actor, id: string): Promise<Run> {
    const r = await this.#runs.getRun(id);
    const device = r && this.#catalog.device(r.deviceId);
    if (!r || !inReach(reachOf(actor, Permission.read, this.#catalog.tree), device?.groupId)) throw notVisible('run', id);
    return r;
  }
  async expireOverdue(): Promise<number> {
    return this.#runs.expirePendingRuns(this.#clock.now().toISOString());
  }
}

function badCursor(): AppError {
  return new AppError('VALIDATION_FAILED', 'cursor is not one this list gave: pass the nextCursor of the previous page unchanged', { issues: [{ path: '/cursor', message: 'not a cursor of this list' }] });
}
/** Where a page of results resumes: after this device name and id. */
function resultCursor(cursor: string | undefined): { name: string; deviceId: string } | null {
  const key = decodeCursor(cursor, 2);
  if (!key) return null;
  if (typeof key[0] !== 'string' || typeof key[1] !== 'string') throw badCursor();
  return { name: key[0], deviceId: key[1] };
}
/** A task's next scheduled fire; a "local" schedule is read in UTC (each device fires at its own wall-clock time). */
function nextRunAt(t: Task, now: Date): string | null {
  if (!t.enabled) return null;
  try {
    return nextScheduledFire(t.schedule, now, resolveTimeZone(t.schedule, 'UTC'))?.at.toISOString() ?? null;
  } catch {
    // A zone this server's ICU does not know: no preview rather than a failed list.
    return null;
  }
}
