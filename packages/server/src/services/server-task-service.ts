/**
 * Server tasks as administrators manage them: create, change, enable and disable, run now,
 * stop, copy, export, import, delete, and their history. The runner does the running.
 */
import {
  SERVER_TASK_EXPORT_FORMAT,
  SERVER_TASK_EXPORT_VERSION,
  SERVER_TASK_TRIGGERS,
  ServerTaskExport,
  checker,
  type Page,
  type PageRequest,
  type Schedule,
  type ServerTask,
  type ServerTaskCreate,
  type ServerTaskRun,
  type ServerTaskTypeInfo,
  type ServerTaskUpdate,
} from '@garrison/protocol';
import { scheduleIssues, type GroupTree } from '@garrison/core';
import { AppError, notFound } from '../errors.ts';
import type { Clock } from '../clock.ts';
import { newId } from '../ids.ts';
import { pageOf } from '../paging.ts';
import type { ServerTaskStore } from '../storage/server-task-store.ts';
import type { ServerTaskEnvironment } from '../server-tasks/server-task.ts';
import { nextRunOf, type ServerTaskRunner } from '../server-tasks/server-task-runner.ts';
import type { ServerTaskTypes } from '../server-tasks/types.ts';
import { actorName, authorize, Permission, systemActor, type Actor } from './actor.ts';
import type { EventService } from './event-service.ts';
import type { SecretService } from './secret-service.ts';

const exportChecker = checker(ServerTaskExport);
const allowedTriggers: ReadonlySet<string> = new Set(SERVER_TASK_TRIGGERS);

export class ServerTaskService {
  readonly #store: ServerTaskStore;
  readonly #types: ServerTaskTypes;
  readonly #runner: ServerTaskRunner;
  readonly #secrets: SecretService;
  readonly #events: EventService;
  readonly #clock: Clock;
  readonly #tree: () => GroupTree;
  /** For the types' own checks (they may look up groups, tasks, …): the environment they run in. */
  readonly #env: ServerTaskEnvironment;

  constructor(deps: { store: ServerTaskStore; types: ServerTaskTypes; runner: ServerTaskRunner; secrets: SecretService; events: EventService; clock: Clock; tree: () => GroupTree; env: ServerTaskEnvironment }) {
    this.#tree = deps.tree;
    this.#env = deps.env;
    this.#store = deps.store;
    this.#types = deps.types;
    this.#runner = deps.runner;
    this.#secrets = deps.secrets;
    this.#events = deps.events;
    this.#clock = deps.clock;
  }

  types(actor: Actor): ServerTaskTypeInfo[] {
    authorize(actor, Permission.read, this.#tree());
    return this.#types.list();
  }
  async list(actor: Actor, filter: { type?: string } & PageRequest = {}): Promise<Page<ServerTask>> {
    authorize(actor, Permission.read, this.#tree());
    // Few enough to page in memory (a server has tens of server tasks), by name then id.
    const tasks = (await this.#store.listTasks()).filter((t) => !filter.type || t.type === filter.type);
    return pageOf(tasks, { key: (t) => [t.name, t.id] }, filter);
  }
  async get(actor: Actor, id: string): Promise<ServerTask> {
    authorize(actor, Permission.read, this.#tree());
    const t = await this.#store.getTask(id);
    if (!t) throw notFound('server task', id);
    return t;
  }

  async #validate(t: Pick<ServerTask, 'type' | 'settings' | 'schedule'>, selfId?: string, pendingIds: ReadonlySet<string> = new Set()): Promise<void> {
    this.#types.get(t.type);
    const issues = scheduleIssues(t.schedule);
    for (const [i, trig] of t.schedule.triggers.entries()) {
      if (!allowedTriggers.has(trig.type)) issues.push(`triggers[${i}]: a server task cannot use the "${trig.type}" trigger (allowed: ${SERVER_TASK_TRIGGERS.join(', ')})`);
      if (trig.type === 'after-task' && (trig.taskId === selfId || (!pendingIds.has(trig.taskId) && !(await this.#store.getTask(trig.taskId))))) {
        issues.push(`triggers[${i}]: after-task names ${trig.taskId === selfId ? 'the task itself' : `unknown server task ${trig.taskId}`}`);
      }
    }
    if (issues.length) throw new AppError('SCHEDULE_INVALID', issues.join('; '), { issues });
    await this.#types.validateSettings(t.type, t.settings, this.#env);
    await this.#secrets.assertRefsExist(t.settings);
  }

  async create(actor: Actor, input: ServerTaskCreate, id = newId()): Promise<ServerTask> {
    authorize(actor, Permission.manageServerTasks, this.#tree());
    const now = this.#clock.now();
    const task: ServerTask = {
      id,
      name: input.name,
      description: input.description ?? '',
      type: input.type,
      settings: input.settings,
      schedule: input.schedule,
      enabled: input.enabled ?? true,
      revision: 1,
      nextRunAt: null,
      createdAt: now.toISOString(),
      updatedAt: now.toISOString(),
    };
    await this.#validate(task, id);
    await this.#secrets.assertMayReference(actor, task.settings, undefined, []);
    task.nextRunAt = nextRunOf(task, now);
    await this.#store.insertTask(task);
    await this.#events.audit(actor, 'server-task.created', `server task "${task.name}" (${task.type}) created`, { taskId: id });
    return task;
  }
  async update(actor: Actor, id: string, patch: ServerTaskUpdate, auditKind = 'server-task.updated'): Promise<ServerTask> {
    authorize(actor, Permission.manageServerTasks, this.#tree());
    const cur = await this.get(actor, id);
    if (patch.revision !== undefined && patch.revision !== cur.revision) {
      throw new AppError('CONFLICT', `server task ${id} is at revision ${cur.revision}, not ${patch.revision}; reload and retry`);
    }
    const now = this.#clock.now();
    const next: ServerTask = {
      ...cur,
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.description !== undefined ? { description: patch.description } : {}),
      ...(patch.settings !== undefined ? { settings: patch.settings } : {}),
      ...(patch.schedule !== undefined ? { schedule: patch.schedule } : {}),
      ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
      revision: cur.revision + 1,
      updatedAt: now.toISOString(),
    };
    await this.#validate(next, id);
    await this.#secrets.assertMayReference(actor, next.settings, cur.settings, []);
    // A new schedule or re-enabling starts counting from now; otherwise the pending fire time stays.
    next.nextRunAt = patch.schedule !== undefined || patch.enabled !== undefined ? nextRunOf(next, now) : cur.nextRunAt;
    if (!(await this.#store.replaceTask(next, cur.revision))) throw new AppError('CONFLICT', `server task ${id} changed meanwhile; reload and retry`);
    const fields = Object.keys(patch).filter((k) => k !== 'revision');
    await this.#events.audit(actor, auditKind, `server task "${next.name}" ${auditKind === 'server-task.updated' ? 'changed' : auditKind.slice(12)}`, { taskId: id, data: { fields } });
    return next;
  }
  setEnabled(actor: Actor, id: string, enabled: boolean): Promise<ServerTask> {
    return this.update(actor, id, { enabled }, enabled ? 'server-task.enabled' : 'server-task.disabled');
  }
  async remove(actor: Actor, id: string): Promise<void> {
    authorize(actor, Permission.manageServerTasks, this.#tree());
    const cur = await this.get(actor, id);
    await this.#store.requestStop(id, this.#clock.now().toISOString(), actorName(actor));
    await this.#store.softDeleteTask(id, this.#clock.now().toISOString());
    await this.#events.audit(actor, 'server-task.deleted', `server task "${cur.name}" deleted`, { taskId: id });
  }
  async copy(actor: Actor, id: string, name?: string): Promise<ServerTask> {
    const t = await this.get(actor, id);
    return this.create(actor, { name: name ?? `${t.name} (copy)`, description: t.description, type: t.type, settings: t.settings, schedule: t.schedule, enabled: t.enabled });
  }

  async runNow(actor: Actor, id: string): Promise<ServerTaskRun> {
    authorize(actor, Permission.manageServerTasks, this.#tree());
    const t = await this.get(actor, id);
    const runId = await this.#runner.enqueue(t, 'run-now', { createdBy: actorName(actor) });
    await this.#events.audit(actor, 'server-task.run-now', `server task "${t.name}" run now`, { taskId: id, data: { runId } });
    return (await this.#store.getRun(runId))!;
  }
  async stop(actor: Actor, id: string): Promise<{ cancelled: number; stopping: number }> {
    authorize(actor, Permission.manageServerTasks, this.#tree());
    const t = await this.get(actor, id);
    const r = await this.#store.requestStop(id, this.#clock.now().toISOString(), actorName(actor));
    for (const runId of r.stopping) this.#runner.abortLocal(runId);
    await this.#events.audit(actor, 'server-task.stopped', `server task "${t.name}" stopped (${r.cancelled.length} pending cancelled, ${r.stopping.length} running asked to stop)`, { taskId: id, data: r });
    return { cancelled: r.cancelled.length, stopping: r.stopping.length };
  }
  async runs(actor: Actor, filter: { taskId?: string; state?: string } & PageRequest): Promise<Page<ServerTaskRun>> {
    authorize(actor, Permission.read, this.#tree());
    if (filter.taskId) await this.get(actor, filter.taskId);
    const { cursor, limit, ...where } = filter;
    return this.#store.pageRuns(where, { cursor, limit });
  }
  async run(actor: Actor, runId: string): Promise<ServerTaskRun> {
    authorize(actor, Permission.read, this.#tree());
    const r = await this.#store.getRun(runId);
    if (!r) throw notFound('server task run', runId);
    return r;
  }

  /** A portable document; after-task links name the other task by name. Secrets stay references. */
  async export(actor: Actor, ids?: string[]): Promise<ServerTaskExport> {
    authorize(actor, Permission.read, this.#tree());
    const all = await this.#store.listTasks();
    const tasks = ids ? await Promise.all(ids.map((id) => this.get(actor, id))) : all;
    const nameOf = new Map(all.map((t) => [t.id, t.name]));
    return {
      format: SERVER_TASK_EXPORT_FORMAT,
      version: SERVER_TASK_EXPORT_VERSION,
      exportedAt: this.#clock.now().toISOString(),
      tasks: tasks.map((t) => ({
        name: t.name,
        ...(t.description ? { description: t.description } : {}),
        type: t.type,
        settings: t.settings,
        schedule: { ...t.schedule, triggers: t.schedule.triggers.map((x) => (x.type === 'after-task' ? { ...x, taskId: nameOf.get(x.taskId) ?? x.taskId } : x)) },
        enabled: t.enabled,
      })),
    };
  }
  /** All or nothing: every task is validated before any is created; after-task links re-linked by name. */
  async import(actor: Actor, doc: unknown): Promise<ServerTask[]> {
    authorize(actor, Permission.manageServerTasks, this.#tree());
    if (!exportChecker.check(doc)) throw new AppError('IMPORT_INVALID', 'not a Garrison server task export document (format garrison.server-tasks, version 1)', { issues: exportChecker.issues(doc) });
    const ids = doc.tasks.map(() => newId());
    const byName = new Map((await this.#store.listTasks()).map((t) => [t.name, t.id]));
    doc.tasks.forEach((t, i) => byName.set(t.name, ids[i]!));
    const relink = (s: Schedule): Schedule => ({ ...s, triggers: s.triggers.map((x) => (x.type === 'after-task' ? { ...x, taskId: byName.get(x.taskId) ?? x.taskId } : x)) });
    const inputs = doc.tasks.map((t) => ({ ...t, schedule: relink(t.schedule) }));
    const importedIds = new Set(ids);
    for (const [i, t] of inputs.entries()) {
      try {
        await this.#validate(t, ids[i], importedIds);
      } catch (err) {
        if (err instanceof AppError) throw new AppError('IMPORT_INVALID', `server task ${i + 1} ("${t.name}"): ${err.message}`, { cause: err.code, details: err.details });
        throw err;
      }
    }
    // Created in dependency order so that after-task links always name an existing task.
    const created: ServerTask[] = [];
    const pending = inputs.map((t, i) => ({ t, id: ids[i]! }));
    const exists = new Set((await this.#store.listTasks()).map((t) => t.id));
    while (pending.length) {
      const ready = pending.findIndex((p) => p.t.schedule.triggers.every((x) => x.type !== 'after-task' || exists.has(x.taskId)));
      if (ready < 0) throw new AppError('IMPORT_INVALID', `after-task triggers of "${pending[0]!.t.name}" form a cycle`);
      const [p] = pending.splice(ready, 1);
      created.push(await this.create(actor, p!.t, p!.id));
      exists.add(p!.id);
    }
    return created;
  }

  /**
   * The server tasks a new server starts with, as Kaspersky Security Center does: database
   * maintenance every night. Made once; an administrator who deletes them is not overruled.
   */
  async ensureDefaults(defaults: readonly ServerTaskCreate[], markDone: () => Promise<boolean>): Promise<void> {
    if (!(await markDone())) return;
    for (const d of defaults) if (this.#types.has(d.type)) await this.create(systemActor, d);
  }
}
