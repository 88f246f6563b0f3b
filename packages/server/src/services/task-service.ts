import {
  BUILTIN_PRODUCT,
  TASK_EXPORT_FORMAT,
  TASK_EXPORT_VERSION,
  checker,
  TaskExport,
  secretPlacements,
  type AgentTask,
  type ExportedTask,
  type Scope,
  type Task,
  type TaskCreate,
  type TaskUpdate,
  type Page,
  type SchedulePreview,
  type SchedulePreviewBody,
  type TaskListQuery,
} from '@garrison/protocol';
import { nextScheduledFire, resolveTimeZone, scheduleIssues } from '@garrison/core';
import { pageOf } from '../paging.ts';
import { AppError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import { newId } from '../ids.ts';
import type { TaskStore } from '../storage/task-store.ts';
import type { PluginRegistry } from '../plugins/registry.ts';
import { authorize, authorizeAnywhere, inReach, notVisible, Permission, reachOf, type Actor } from './actor.ts';
import type { Catalog } from './catalog.ts';
import type { EventService } from './event-service.ts';
import type { SecretService } from './secret-service.ts';
import type { DeviceStore } from '../storage/device-store.ts';
import type { DomainBus } from './domain-bus.ts';

const exportChecker = checker(TaskExport);

/** Stored scopes are explicit: a group task covers subgroups unless it says otherwise. */
function normalizeScope(scope: Scope): Scope {
  return scope.type === 'group' ? { ...scope, includeSubgroups: scope.includeSubgroups ?? true } : scope;
}

export class TaskService {
  readonly #store: TaskStore;
  readonly #devices: DeviceStore;
  readonly #catalog: Catalog;
  readonly #plugins: PluginRegistry;
  readonly #secrets: SecretService;
  readonly #clock: Clock;
  readonly #events: EventService;
  readonly #bus: DomainBus;

  constructor(deps: { store: TaskStore; devices: DeviceStore; catalog: Catalog; plugins: PluginRegistry; secrets: SecretService; clock: Clock; events: EventService; bus: DomainBus }) {
    this.#bus = deps.bus;
    this.#store = deps.store;
    this.#devices = deps.devices;
    this.#catalog = deps.catalog;
    this.#plugins = deps.plugins;
    this.#secrets = deps.secrets;
    this.#clock = deps.clock;
    this.#events = deps.events;
  }

  /** The groups a scope touches, for authorization. */
  scopeGroups(scope: Scope): string[] {
    if (scope.type === 'group') return [scope.groupId];
    if (scope.type === 'local') {
      const d = this.#catalog.device(scope.deviceId);
      return d ? [d.groupId] : [];
    }
    return [];
  }
  #checkScope(scope: Scope): void {
    if (scope.type === 'group' && !this.#catalog.group(scope.groupId)) throw new AppError('SCOPE_INVALID', `group ${scope.groupId} does not exist`);
    if (scope.type === 'local' && !this.#catalog.device(scope.deviceId)) throw new AppError('SCOPE_INVALID', `device ${scope.deviceId} does not exist`);
    if (scope.type === 'global') {
      if (!scope.deviceIds?.length && !scope.selection) throw new AppError('SCOPE_INVALID', 'a global task needs a device list or a selection');
      if (scope.selection && Object.keys(scope.selection).length === 0) throw new AppError('SCOPE_INVALID', 'a selection needs at least one criterion');
      const unknown = (scope.deviceIds ?? []).filter((id) => !this.#catalog.device(id));
      if (unknown.length) throw new AppError('SCOPE_INVALID', `unknown devices: ${unknown.slice(0, 10).join(', ')}`);
    }
  }
  /**
   * Whether the caller may see a task: a group task of a group it reads, or one inherited by
   * such a group (read-only there: changing or running it needs the task's own group); a local
   * task of a device it reads; a global task only from the root.
   */
  canSee(actor: Actor, t: Pick<Task, 'scope'>): boolean {
    if (actor.kind === 'system') return true;
    const tree = this.#catalog.tree;
    const reach = reachOf(actor, Permission.read, tree);
    if (reach.all) return true;
    if (t.scope.type === 'local') return inReach(reach, this.#catalog.device(t.scope.deviceId)?.groupId);
    if (t.scope.type === 'global') return false;
    const groupId = t.scope.groupId;
    if (reach.groups.has(groupId)) return true;
    if (t.scope.includeSubgroups === false) return false;
    // Inherited from above: the task's group is an ancestor of a group the caller reads.
    return actor.grants.some((g) => g.permissions.includes(Permission.read) && tree.get(g.groupId) !== undefined && tree.isAncestorOrSelf(groupId, g.groupId));
  }
  /** The devices a scope targets now, for the console's scope picker (before the task is saved). */
  previewScope(actor: Actor, scope: Scope, limit = 200): { total: number; devices: { id: string; groupId: string; name: string; hostname: string }[] } {
    this.#checkScope(scope);
    authorize(actor, Permission.read, this.#catalog.tree, this.scopeGroups(scope));
    const targets = this.#catalog.targetsOf({ id: 'preview', scope });
    return { total: targets.length, devices: targets.slice(0, limit).map((d) => ({ id: d.id, groupId: d.groupId, name: d.name, hostname: d.hostname })) };
  }
  /**
   * Every check a task definition passes before it is stored, at creation, change and import.
   * With an actor, the secret references the settings introduce (compared with `before`) must
   * be the actor's to use and stay within the secret's group.
   */
  async validateDefinition(t: Pick<Task, 'product' | 'type' | 'settings' | 'schedule' | 'scope'>, selfId?: string, actor?: Actor, before?: Task['settings']): Promise<void> {
    this.#plugins.validateSettings(t.product, t.type, t.settings);
    const issues = scheduleIssues(t.schedule);
    if (issues.length) throw new AppError('SCHEDULE_INVALID', issues.join('; '), { issues });
    for (const trig of t.schedule.triggers) {
      if (trig.type === 'after-task' && (trig.taskId === selfId || !this.#catalog.task(trig.taskId))) {
        throw new AppError('SCHEDULE_INVALID', `after-task trigger names ${trig.taskId === selfId ? 'the task itself' : `unknown task ${trig.taskId}`}`);
      }
    }
    this.#checkScope(t.scope);
    await this.#secrets.assertRefsExist(t.settings);
    if (actor) await this.#secrets.assertMayReference(actor, t.settings, before, this.scopeGroups(t.scope));
  }
  #affected(...tasks: (Task | undefined)[]): string[] {
    const ids = new Set<string>();
    for (const t of tasks) if (t) for (const d of this.#catalog.targetsOf(t)) ids.add(d.id);
    return [...ids];
  }

  list(actor: Actor, filter: { product?: string; scopeType?: string; groupId?: string; deviceId?: string; search?: string } = {}): Task[] {
    const needle = filter.search?.trim().toLowerCase();
    return this.#catalog.tasks.filter(
      (t) =>
        this.canSee(actor, t) &&
        (!filter.product || t.product === filter.product) &&
        (!filter.scopeType || t.scope.type === filter.scopeType) &&
        (!filter.groupId || (t.scope.type === 'group' && t.scope.groupId === filter.groupId)) &&
        (!filter.deviceId || (t.scope.type === 'local' && t.scope.deviceId === filter.deviceId)) &&
        (!needle || t.name.toLowerCase().includes(needle)),
    );
  }
  /** One page of the tasks the caller may see, by name (the catalog holds them all in memory). */
  page(actor: Actor, query: TaskListQuery): Page<Task> {
    const { cursor, limit, ...filter } = query;
    return pageOf(this.list(actor, filter), { key: (t) => [t.name, t.id] }, { cursor, limit });
  }
  /**
   * The next fire times of a schedule, for the task form before saving: wall-clock fields of
   * a "local" schedule are read in the zone given (the administrator's), the others in theirs.
   */
  previewSchedule(actor: Actor, body: SchedulePreviewBody): SchedulePreview {
    authorizeAnywhere(actor, Permission.read, this.#catalog.tree);
    const issues = scheduleIssues(body.schedule);
    let timeZone = resolveTimeZone(body.schedule, body.timeZone ?? 'UTC');
    if (!isValidTimeZone(timeZone)) {
      issues.push(`unknown time zone "${timeZone}"`);
      timeZone = 'UTC';
    }
    const fires: string[] = [];
    if (issues.length === 0) {
      let after = this.#clock.now();
      for (let i = 0; i < (body.count ?? 5); i++) {
        const next = nextScheduledFire(body.schedule, after, timeZone);
        if (!next) break;
        fires.push(next.at.toISOString());
        after = next.at;
      }
    }
    return { fires, timeZone, issues };
  }
  get(actor: Actor, id: string): Task {
    const t = this.#catalog.task(id);
    if (!t || !this.canSee(actor, t)) throw notVisible('task', id);
    return t;
  }
  async create(actor: Actor, input: TaskCreate, origin: Task['origin'] = 'admin', id = newId()): Promise<Task> {
    this.#checkScope(input.scope);
    authorize(actor, Permission.manageTasks, this.#catalog.tree, this.scopeGroups(input.scope));
    const at = this.#clock.now().toISOString();
    const task: Task = {
      id,
      name: input.name,
      description: input.description ?? '',
      product: input.product ?? BUILTIN_PRODUCT,
      type: input.type,
      settings: input.settings,
      schedule: input.schedule,
      scope: normalizeScope(input.scope),
      enabled: input.enabled ?? true,
      revision: 1,
      origin,
      createdAt: at,
      updatedAt: at,
    };
    await this.validateDefinition(task, undefined, actor);
    await this.#store.insertTask(task);
    await this.#catalog.reloadTasks();
    await this.#events.audit(actor, 'task.created', `task "${task.name}" created`, { taskId: task.id, groupId: task.scope.type === 'group' ? task.scope.groupId : null });
    this.#bus.publish({ type: 'tasks.changed', taskIds: [task.id], deviceIds: this.#affected(task) });
    return task;
  }
  async update(actor: Actor, id: string, patch: TaskUpdate, audit = true): Promise<Task> {
    const cur = this.get(actor, id);
    if (patch.scope) this.#checkScope(patch.scope);
    authorize(actor, Permission.manageTasks, this.#catalog.tree, [...this.scopeGroups(cur.scope), ...(patch.scope ? this.scopeGroups(patch.scope) : [])]);
    if (patch.revision !== undefined && patch.revision !== cur.revision) {
      throw new AppError('CONFLICT', `task ${id} is at revision ${cur.revision}, not ${patch.revision}; reload and retry`);
    }
    const next: Task = {
      ...cur,
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.description !== undefined ? { description: patch.description } : {}),
      ...(patch.settings !== undefined ? { settings: patch.settings } : {}),
      ...(patch.schedule !== undefined ? { schedule: patch.schedule } : {}),
      ...(patch.scope !== undefined ? { scope: normalizeScope(patch.scope) } : {}),
      ...(patch.enabled !== undefined ? { enabled: patch.enabled } : {}),
      revision: cur.revision + 1,
      updatedAt: this.#clock.now().toISOString(),
    };
    // A new scope takes every reference to new devices: all are checked again then.
    await this.validateDefinition(next, id, actor, patch.scope ? undefined : cur.settings);
    if (!(await this.#store.replaceTask(next, cur.revision))) throw new AppError('CONFLICT', `task ${id} changed meanwhile; reload and retry`);
    await this.#catalog.reloadTasks();
    if (audit) await this.#events.audit(actor, 'task.updated', `task "${next.name}" changed`, { taskId: id, data: { fields: Object.keys(patch).filter((k) => k !== 'revision') } });
    this.#bus.publish({ type: 'tasks.changed', taskIds: [id], deviceIds: this.#affected(cur, next) });
    return next;
  }
  async setEnabled(actor: Actor, id: string, enabled: boolean): Promise<Task> {
    const t = await this.update(actor, id, { enabled }, false);
    await this.#events.audit(actor, enabled ? 'task.enabled' : 'task.disabled', `task "${t.name}" ${enabled ? 'enabled' : 'disabled'}`, { taskId: id });
    return t;
  }
  async remove(actor: Actor, id: string): Promise<void> {
    const cur = this.get(actor, id);
    authorize(actor, Permission.manageTasks, this.#catalog.tree, this.scopeGroups(cur.scope));
    const affected = this.#affected(cur);
    await this.#store.softDeleteTask(id, this.#clock.now().toISOString());
    await this.#catalog.reloadTasks();
    await this.#events.audit(actor, 'task.deleted', `task "${cur.name}" deleted`, { taskId: id });
    this.#bus.publish({ type: 'tasks.changed', taskIds: [id], deviceIds: affected });
  }
  async copy(actor: Actor, id: string, name?: string): Promise<Task> {
    const t = this.get(actor, id);
    return this.create(actor, {
      name: name ?? `${t.name} (copy)`,
      description: t.description,
      product: t.product,
      type: t.type,
      settings: t.settings,
      schedule: t.schedule,
      scope: t.scope,
      enabled: t.enabled,
    });
  }
  /** A portable document: groups by path, devices by name, secrets as references only. */
  async export(actor: Actor, ids?: string[]): Promise<TaskExport> {
    const tasks = ids ? ids.map((id) => this.get(actor, id)) : this.list(actor);
    const deviceName = async (id: string) => (await this.#devices.getDevice(id))?.name ?? id;
    const out: ExportedTask[] = [];
    for (const t of tasks) {
      let scope: ExportedTask['scope'];
      if (t.scope.type === 'group') scope = { type: 'group', groupPath: this.#catalog.tree.path(t.scope.groupId), includeSubgroups: t.scope.includeSubgroups ?? true };
      else if (t.scope.type === 'local') scope = { type: 'local', deviceName: await deviceName(t.scope.deviceId) };
      else
        scope = {
          type: 'global',
          ...(t.scope.deviceIds ? { deviceNames: await Promise.all(t.scope.deviceIds.map(deviceName)) } : {}),
          ...(t.scope.selection ? { selection: t.scope.selection } : {}),
        };
      const afterTask = t.schedule.triggers.some((x) => x.type === 'after-task');
      out.push({
        name: t.name,
        ...(t.description ? { description: t.description } : {}),
        product: t.product,
        type: t.type,
        settings: t.settings,
        // After-task links name task ids of this server; they are kept and re-linked by name on import.
        schedule: afterTask
          ? { ...t.schedule, triggers: t.schedule.triggers.map((x) => (x.type === 'after-task' ? { ...x, taskId: this.#catalog.task(x.taskId)?.name ?? x.taskId } : x)) }
          : t.schedule,
        enabled: t.enabled,
        scope,
      });
    }
    return { format: TASK_EXPORT_FORMAT, version: TASK_EXPORT_VERSION, exportedAt: this.#clock.now().toISOString(), tasks: out };
  }
  /**
   * Imports a document: validated as a whole first (every task, every group path, every
   * device name), then created; nothing is created if anything is invalid.
   */
  async import(actor: Actor, doc: unknown): Promise<Task[]> {
    if (!exportChecker.check(doc)) throw new AppError('IMPORT_INVALID', 'not a Garrison task export document (format garrison.tasks, version 1)', { issues: exportChecker.issues(doc) });
    const devices = await this.#devices.listDevices();
    const byName = new Map<string, string[]>();
    for (const d of devices) byName.set(d.name, [...(byName.get(d.name) ?? []), d.id]);
    const deviceId = (name: string, where: string) => {
      const ids = byName.get(name) ?? [];
      if (ids.length !== 1) throw new AppError('IMPORT_INVALID', `${where}: ${ids.length ? 'several devices are' : 'no device is'} named "${name}"`);
      return ids[0]!;
    };
    const inputs: TaskCreate[] = doc.tasks.map((t, i) => {
      const where = `task ${i + 1} ("${t.name}")`;
      let scope: Scope;
      if (t.scope.type === 'group') {
        const g = this.#catalog.tree.findByPath(t.scope.groupPath);
        if (!g || !inReach(reachOf(actor, Permission.read, this.#catalog.tree), g.id)) throw new AppError('IMPORT_INVALID', `${where}: no group at path "${t.scope.groupPath}"`);
        scope = { type: 'group', groupId: g.id, includeSubgroups: t.scope.includeSubgroups ?? true };
      } else if (t.scope.type === 'local') scope = { type: 'local', deviceId: deviceId(t.scope.deviceName, where) };
      else
        scope = {
          type: 'global',
          ...(t.scope.deviceNames ? { deviceIds: t.scope.deviceNames.map((n) => deviceId(n, where)) } : {}),
          ...(t.scope.selection ? { selection: t.scope.selection as never } : {}),
        };
      return { name: t.name, description: t.description, product: t.product, type: t.type, settings: t.settings, schedule: t.schedule, scope, enabled: t.enabled };
    });
    // Re-link after-task triggers by task name: first among the imported tasks, then existing ones.
    const ids = inputs.map(() => newId());
    const nameToId = new Map<string, string>(this.#catalog.tasks.map((t) => [t.name, t.id]));
    inputs.forEach((t, i) => nameToId.set(t.name, ids[i]!));
    for (const t of inputs) {
      t.schedule = { ...t.schedule, triggers: t.schedule.triggers.map((x) => (x.type === 'after-task' ? { ...x, taskId: nameToId.get(x.taskId) ?? x.taskId } : x)) };
    }
    for (const [i, t] of inputs.entries()) {
      const probe = { ...t, product: t.product ?? BUILTIN_PRODUCT };
      try {
        this.#plugins.validateSettings(probe.product, probe.type, probe.settings);
        const issues = scheduleIssues(probe.schedule);
        if (issues.length) throw new AppError('SCHEDULE_INVALID', issues.join('; '));
        this.#checkScope(probe.scope);
        authorize(actor, Permission.manageTasks, this.#catalog.tree, this.scopeGroups(probe.scope));
        await this.#secrets.assertRefsExist(probe.settings);
        await this.#secrets.assertMayReference(actor, probe.settings, undefined, this.scopeGroups(probe.scope));
      } catch (err) {
        if (err instanceof AppError && (err.code === 'FORBIDDEN' || err.code === 'SECRET_REFERENCE_REFUSED')) throw err;
        if (err instanceof AppError) throw new AppError('IMPORT_INVALID', `task ${i + 1} ("${t.name}"): ${err.message}`, { cause: err.code, details: err.details });
        throw err;
      }
    }
    // After-task links to other imported tasks need them to exist first: create in dependency order.
    const created: Task[] = [];
    const pending = inputs.map((t, i) => ({ t, id: ids[i]! }));
    while (pending.length) {
      const ready = pending.findIndex((p) => p.t.schedule.triggers.every((x) => x.type !== 'after-task' || this.#catalog.task(x.taskId)));
      if (ready < 0) throw new AppError('IMPORT_INVALID', `after-task triggers of "${pending[0]!.t.name}" form a cycle or name unknown tasks`);
      const [p] = pending.splice(ready, 1);
      created.push(await this.create(actor, p!.t, 'admin', p!.id));
    }
    return created;
  }

  /**
   * What the agent of a device in `groupId` receives: settings with secret references
   * resolved to values (only secrets of the device's own subtree), and where they were, so
   * that the agent can show and send back the references instead.
   */
  async toAgentTask(t: Task, groupId: string): Promise<AgentTask> {
    const placements = secretPlacements(t.settings);
    return {
      id: t.id,
      name: t.name,
      product: t.product,
      type: t.type,
      settings: placements.length ? await this.#secrets.resolve(t.settings, groupId) : t.settings,
      schedule: t.schedule,
      enabled: t.enabled,
      revision: t.revision,
      local: t.scope.type === 'local',
      ...(placements.length ? { secretPlacements: placements } : {}),
    };
  }
}

function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
