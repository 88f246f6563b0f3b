import { DEVICE_BULK_IDS_MAX, type DeviceBulkAction, type DeviceBulkResult, type DeviceFilter, type DeviceListQuery, type DeviceView, type GroupStatus, type GroupStatusQuery, type Page, type PageRequest, type RunNowBody, type RunNowResult, type Task } from '@garrison/protocol';
import type { Static } from 'typebox';
import { AppError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import type { Device, DeviceRow, DeviceStore } from '../storage/device-store.ts';
import { authorize, inReach, notVisible, Permission, reachOf, type Actor } from './actor.ts';
import { pageOf, type CursorKey } from '../paging.ts';
import type { Catalog } from './catalog.ts';
import type { EventService } from './event-service.ts';
import type { Presence } from './presence.ts';
import type { DomainBus } from './domain-bus.ts';

const TAG = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const DAY_MS = 86_400_000;
/** Devices offline for more than this many days make their group Critical, unless the caller says otherwise. */
export const DEFAULT_OFFLINE_DAYS = 7;
/** A bulk action on a filter acts on at most as many devices as one may name. */
const DEVICE_BULK_MAX = DEVICE_BULK_IDS_MAX;
/** Version strings compare by their numbers: 1.10 after 1.9. */
function versionKey(v: string): string {
  return v.replace(/\d+/g, (n) => n.padStart(12, '0'));
}
/** The sort key of each sort of the list, before the id that ends every key. */
const SORT_KEYS: Record<NonNullable<DeviceListQuery['sort']>, (d: DeviceRow & { groupPath: string }) => CursorKey> = {
  name: (d) => [d.name.toLowerCase()],
  lastContact: (d) => [d.lastContactAt],
  osName: (d) => [d.osName.toLowerCase(), d.name.toLowerCase()],
  agentVersion: (d) => [versionKey(d.agentVersion), d.name.toLowerCase()],
  enrolledAt: (d) => [d.enrolledAt],
  group: (d) => [d.groupPath.toLowerCase(), d.name.toLowerCase()],
};

export class DeviceService {
  readonly #store: DeviceStore;
  readonly #catalog: Catalog;
  readonly #clock: Clock;
  readonly #events: EventService;
  readonly presence: Presence;
  readonly #bus: DomainBus;
  /** Called when a device's effective task set may have changed. */

  constructor(deps: { store: DeviceStore; catalog: Catalog; clock: Clock; events: EventService; presence: Presence; bus: DomainBus }) {
    this.#bus = deps.bus;
    this.#store = deps.store;
    this.#catalog = deps.catalog;
    this.#clock = deps.clock;
    this.#events = deps.events;
    this.presence = deps.presence;
  }
  view(d: Device): DeviceView {
    return { ...d, online: this.presence.isOnline(d.id), groupPath: this.#catalog.tree.path(d.groupId) };
  }
  /** Devices in all and connected now, for the dashboard (from memory: no query). */
  counts(actor: Actor): { total: number; online: number; offline: number } {
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    let total = 0;
    let online = 0;
    for (const id of this.#catalog.deviceIds()) {
      if (!reach.all && !reach.groups.has(this.#catalog.device(id)!.groupId)) continue;
      total++;
      if (this.presence.isOnline(id)) online++;
    }
    return { total, online, offline: total - online };
  }
  /** Whether the caller may see the device (its group is within the caller's read reach). */
  canSee(actor: Actor, deviceId: string): boolean {
    const d = this.#catalog.device(deviceId);
    return !!d && inReach(reachOf(actor, Permission.read, this.#catalog.tree), d.groupId);
  }
  /**
   * The devices the caller may see that match the filters, as light rows (what the list sorts
   * and filters on). A group of the filter that the caller cannot see is NOT_FOUND.
   */
  async select(actor: Actor, f: DeviceFilter = {}): Promise<(DeviceRow & { online: boolean; groupPath: string })[]> {
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    let groups: ReadonlySet<string> | null = reach.all ? null : reach.groups;
    if (f.groupId) {
      if (!this.#catalog.group(f.groupId) || !inReach(reach, f.groupId)) throw notVisible('group', f.groupId);
      groups = new Set(f.recursive === false ? [f.groupId] : this.#catalog.tree.descendants(f.groupId));
    }
    const duplicates = f.status === 'duplicate' ? await this.#store.pendingDuplicateDeviceIds() : null;
    const now = this.#clock.now().getTime();
    const notSeenBefore = f.notSeenForDays ? new Date(now - f.notSeenForDays * DAY_MS).toISOString() : null;
    const seenSince = f.seenWithinDays ? new Date(now - f.seenWithinDays * DAY_MS).toISOString() : null;
    const enrolledSince = f.enrolledSince ? new Date(f.enrolledSince).toISOString() : null;
    const enrolledUntil = f.enrolledUntil ? new Date(f.enrolledUntil).toISOString() : null;
    const search = f.search?.toLowerCase();
    const osName = f.osName?.toLowerCase();
    const out: (DeviceRow & { online: boolean; groupPath: string })[] = [];
    const paths = new Map<string, string>();
    for (const d of await this.#store.listDeviceRows()) {
      if (groups && !groups.has(d.groupId)) continue;
      if (search && !d.name.toLowerCase().includes(search) && !d.hostname.toLowerCase().includes(search)) continue;
      if (f.tag && !d.tags.includes(f.tag)) continue;
      if (f.osPlatform && d.osPlatform !== f.osPlatform) continue;
      if (osName && d.osName.toLowerCase() !== osName) continue;
      if (f.agentVersion && d.agentVersion !== f.agentVersion) continue;
      if (notSeenBefore && d.lastContactAt !== null && d.lastContactAt >= notSeenBefore) continue;
      if (seenSince && (d.lastContactAt === null || d.lastContactAt < seenSince)) continue;
      if (enrolledSince && d.enrolledAt < enrolledSince) continue;
      if (enrolledUntil && d.enrolledAt >= enrolledUntil) continue;
      const online = this.presence.isOnline(d.id);
      if (f.online !== undefined && online !== f.online) continue;
      if (f.status === 'revoked' && !d.revoked) continue;
      if (f.status === 'online' && (d.revoked || !online)) continue;
      if (f.status === 'offline' && (d.revoked || online)) continue;
      if (duplicates && !duplicates.has(d.id)) continue;
      let groupPath = paths.get(d.groupId);
      if (groupPath === undefined) paths.set(d.groupId, (groupPath = this.#catalog.tree.path(d.groupId)));
      out.push({ ...d, online, groupPath });
    }
    return out;
  }
  /** A page of the device list, sorted as asked (the cursor follows the sort), with the total that match. */
  async page(actor: Actor, q: DeviceListQuery): Promise<Page<DeviceView>> {
    const { sort = 'name', order = 'asc', cursor, limit, ...filter } = q;
    const rows = await this.select(actor, filter);
    const key = SORT_KEYS[sort];
    const page = pageOf(rows, { key: (d) => [sort, ...key(d), d.id], descending: order === 'desc' }, { cursor, limit } satisfies PageRequest);
    // The full rows of the page only: the inventory JSON of the others is never read.
    const full = new Map((await this.#store.getDevices(page.items.map((d) => d.id))).map((d) => [d.id, d]));
    return { ...page, items: page.items.flatMap((d) => (full.has(d.id) ? [this.view(full.get(d.id)!)] : [])) };
  }
  async get(actor: Actor, id: string): Promise<DeviceView> {
    return this.view(await this.stored(actor, id));
  }
  /** The stored device, if the caller may see it (NOT_FOUND otherwise, as for a device that does not exist). */
  async stored(actor: Actor, id: string): Promise<Device> {
    const d = await this.#store.getDevice(id);
    if (!d || !inReach(reachOf(actor, Permission.read, this.#catalog.tree), d.groupId)) throw notVisible('device', id);
    return d;
  }
  async update(actor: Actor, id: string, patch: { name?: string; groupId?: string; tags?: string[] }): Promise<DeviceView> {
    const d = await this.stored(actor, id);
    if (patch.groupId !== undefined && (!this.#catalog.group(patch.groupId) || !inReach(reachOf(actor, Permission.read, this.#catalog.tree), patch.groupId))) throw notVisible('group', patch.groupId);
    authorize(actor, Permission.manageDevices, this.#catalog.tree, [d.groupId, ...(patch.groupId ? [patch.groupId] : [])]);
    if (patch.name !== undefined && (patch.name.length < 1 || patch.name.length > 200)) throw new AppError('VALIDATION_FAILED', 'a device name is 1-200 characters');
    if (patch.tags !== undefined) {
      const bad = patch.tags.filter((t) => !TAG.test(t));
      if (bad.length) throw new AppError('VALIDATION_FAILED', `invalid tags: ${bad.join(', ')} (letters, digits, ".", "_", ":", "-")`);
      patch.tags = [...new Set(patch.tags)];
    }
    await this.#store.updateDevice(id, patch, this.#clock.now().toISOString());
    const updated = (await this.#store.getDevice(id))!;
    this.#catalog.putDevice(updated);
    if (patch.groupId && patch.groupId !== d.groupId) {
      await this.#events.audit(actor, 'device.moved', `device "${d.name}" moved to "${this.#catalog.tree.path(patch.groupId)}"`, { deviceId: id, groupId: patch.groupId });
    } else await this.#events.audit(actor, 'device.updated', `device "${d.name}" changed`, { deviceId: id, groupId: updated.groupId, data: { ...patch } });
    this.#bus.publish({ type: 'devices.changed', deviceIds: [id] });
    return this.view(updated);
  }
  async remove(actor: Actor, id: string): Promise<void> {
    const d = await this.stored(actor, id);
    authorize(actor, Permission.manageDevices, this.#catalog.tree, [d.groupId]);
    await this.#store.deleteDevice(id);
    this.#catalog.removeDevice(id);
    this.#bus.publish({ type: 'devices.changed', deviceIds: [id] });
    this.presence.disconnect(id, 'device deleted');
    await this.#events.audit(actor, 'device.deleted', `device "${d.name}" deleted`, { deviceId: id, groupId: d.groupId });
  }
  /** The device's effective tasks that the caller may see (tasks of other subtrees or server-wide ones are left out). */
  async effectiveTasks(actor: Actor, id: string, visible: (t: Task) => boolean, req: PageRequest = {}): Promise<Page<Task>> {
    if (!this.canSee(actor, id)) throw notVisible('device', id);
    return pageOf(this.#catalog.effectiveTasksOf(id).filter(visible), { key: (t) => [t.name.toLowerCase(), t.id] }, req);
  }

  /**
   * One action on many devices (POST /devices/bulk): the ids given or everything the filter
   * matches. Each device is authorized as the single-device action would be, on its own group:
   * those the caller may see but not change are refused, counted and left alone; ids the caller
   * cannot see count as not found, as they would one by one. Audited as one event with the
   * count (and the first ids), not one per device: a bulk action on 10,000 devices would
   * otherwise write 10,000 events.
   */
  async bulk(actor: Actor, input: DeviceBulkAction, tasks: { canSee(actor: Actor, task: Task): boolean; runNow(actor: Actor, taskId: string, body: RunNowBody): Promise<RunNowResult> }): Promise<DeviceBulkResult> {
    // Authorized per device below, on its group: a caller without the permission anywhere has every device refused.
    const permission = input.action === 'runTask' ? Permission.runTasks : Permission.manageDevices;
    if ((input.deviceIds === undefined) === (input.filter === undefined)) throw new AppError('VALIDATION_FAILED', 'give either deviceIds or filter', { issues: [{ path: '/deviceIds', message: 'deviceIds or filter, not both nor neither' }] });
    const action = input.action;
    const need = (field: 'tags' | 'groupId' | 'taskId') => {
      if (input[field] === undefined) throw new AppError('VALIDATION_FAILED', `${action} needs ${field}`, { issues: [{ path: `/${field}`, message: `required for ${action}` }] });
    };
    if (action === 'addTags' || action === 'removeTags') {
      need('tags');
      const bad = input.tags!.filter((t) => !TAG.test(t));
      if (bad.length) throw new AppError('VALIDATION_FAILED', `invalid tags: ${bad.join(', ')} (letters, digits, ".", "_", ":", "-")`);
    }
    if (action === 'move') {
      need('groupId');
      if (!this.#catalog.group(input.groupId!) || !inReach(reachOf(actor, Permission.read, this.#catalog.tree), input.groupId)) throw notVisible('group', input.groupId!);
      authorize(actor, Permission.manageDevices, this.#catalog.tree, [input.groupId!]);
    }
    if (action === 'runTask') {
      need('taskId');
      const task = this.#catalog.task(input.taskId!);
      if (!task || !tasks.canSee(actor, task)) throw notVisible('task', input.taskId!);
    }

    // Who is selected: visible devices (by the catalog, in memory), and how many ids were not.
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    let selected: { id: string; groupId: string }[];
    let notFound = 0;
    if (input.deviceIds) {
      selected = [];
      for (const id of new Set(input.deviceIds)) {
        const d = this.#catalog.device(id);
        if (d && inReach(reach, d.groupId)) selected.push({ id, groupId: d.groupId });
        else notFound++;
      }
    } else {
      selected = (await this.select(actor, input.filter)).map((d) => ({ id: d.id, groupId: d.groupId }));
      if (selected.length > DEVICE_BULK_MAX) throw new AppError('VALIDATION_FAILED', `the filter matches ${selected.length} devices; a bulk action takes at most ${DEVICE_BULK_MAX}: narrow the filter`);
    }
    const mayChange = reachOf(actor, permission, this.#catalog.tree);
    const accepted = selected.filter((d) => inReach(mayChange, d.groupId));
    const refusedIds = selected.filter((d) => !inReach(mayChange, d.groupId)).map((d) => d.id);
    const result: DeviceBulkResult = { action, matched: selected.length, done: 0, refused: refusedIds.length, notFound, unchanged: 0, refusedDeviceIds: refusedIds.slice(0, 100) };
    const at = this.#clock.now().toISOString();
    const ids = accepted.map((d) => d.id);
    let changed: string[] = [];

    if (action === 'addTags' || action === 'removeTags') {
      const rows: { id: string; tags: string[] }[] = [];
      for (const id of ids) {
        const facts = this.#catalog.device(id)!;
        const next = action === 'addTags' ? [...new Set([...facts.tags, ...input.tags!])] : facts.tags.filter((t) => !input.tags!.includes(t));
        if (next.length > 100) throw new AppError('VALIDATION_FAILED', `device ${id} would have more than 100 tags`);
        if (next.length === facts.tags.length && next.every((t, i) => t === facts.tags[i])) continue;
        rows.push({ id, tags: next });
      }
      await this.#store.setTagsMany(rows, at);
      for (const r of rows) this.#catalog.putDeviceFacts({ ...this.#catalog.device(r.id)!, tags: r.tags });
      changed = rows.map((r) => r.id);
    } else if (action === 'move') {
      changed = ids.filter((id) => this.#catalog.device(id)!.groupId !== input.groupId);
      await this.#store.moveMany(changed, input.groupId!, at);
      for (const id of changed) this.#catalog.putDeviceFacts({ ...this.#catalog.device(id)!, groupId: input.groupId! });
    } else if (action === 'delete') {
      await this.#store.deleteMany(ids);
      for (const id of ids) {
        this.#catalog.removeDevice(id);
        this.presence.disconnect(id, 'device deleted');
      }
      changed = ids;
    } else if (action === 'checkIn') {
      changed = ids.filter((id) => this.presence.isOnline(id));
      // Every instance tells the agents connected to it (services/instance-sync.ts).
      if (changed.length) this.#bus.publish({ type: 'devices.check-in', deviceIds: changed });
    } else {
      // Run now on the devices that are targets of the task; the run service authorizes the
      // task itself (tasks:run on its scope) as for a run-now from the task's page.
      const task = this.#catalog.task(input.taskId!)!;
      const targets = new Set(this.#catalog.targetsOf(task).map((d) => d.id));
      changed = ids.filter((id) => targets.has(id));
      if (changed.length) result.runRequestId = (await tasks.runNow(actor, task.id, { deviceIds: changed })).requestId;
    }
    result.done = changed.length;
    result.unchanged = ids.length - changed.length;
    if (changed.length && (action === 'addTags' || action === 'removeTags' || action === 'move' || action === 'delete')) this.#bus.publish({ type: 'devices.changed', deviceIds: changed });
    if (action !== 'runTask') {
      const what = { addTags: `tagged ${input.tags?.join(', ')}`, removeTags: `untagged ${input.tags?.join(', ')}`, move: `moved to "${input.groupId ? this.#catalog.tree.path(input.groupId) : ''}"`, delete: 'deleted', checkIn: 'asked to check in now' }[action];
      await this.#events.audit(actor, `device.bulk-${action === 'addTags' ? 'tagged' : action === 'removeTags' ? 'untagged' : action === 'move' ? 'moved' : action === 'delete' ? 'deleted' : 'check-in'}`, `${changed.length} device${changed.length === 1 ? '' : 's'} ${what}${result.refused ? ` (${result.refused} refused)` : ''}`, {
        ...(action === 'move' ? { groupId: input.groupId } : {}),
        data: { count: changed.length, refused: result.refused, deviceIds: changed.slice(0, 1000), ...(input.tags ? { tags: input.tags } : {}) },
      });
    }
    return result;
  }

  /**
   * The group tree's statuses, as KSC shows them: per visible group its device counts and the
   * worst status over the group and its subgroups. Critical: devices offline for more than
   * `offlineDays` (default 7), a failed deployment, a task whose latest run on a device failed
   * in the last 24 hours; Warning: devices offline for more than a day, detections in the last
   * 24 hours. Devices with a revoked credential count, but never as offline.
   */
  async groupStatuses(actor: Actor, q: Static<typeof GroupStatusQuery>): Promise<Page<GroupStatus>> {
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    const tree = this.#catalog.tree;
    const visible = this.#catalog.groups.filter((g) => inReach(reach, g.id));
    const offlineDays = q.offlineDays ?? DEFAULT_OFFLINE_DAYS;
    const now = this.#clock.now().getTime();
    const critical = new Date(now - offlineDays * DAY_MS).toISOString();
    const warning = new Date(now - DAY_MS).toISOString();
    const health = await this.#store.healthSince(new Date(now - DAY_MS).toISOString());
    type Tally = { devices: number; online: number; offlineCritical: number; offlineWarning: number; failedDeployments: number; failedRuns: number; detections: number };
    const zero = (): Tally => ({ devices: 0, online: 0, offlineCritical: 0, offlineWarning: 0, failedDeployments: 0, failedRuns: 0, detections: 0 });
    const own = new Map<string, Tally>();
    const subtree = new Map<string, Tally>();
    for (const g of visible) {
      own.set(g.id, zero());
      subtree.set(g.id, zero());
    }
    for (const d of await this.#store.listDeviceRows()) {
      if (!own.has(d.groupId)) continue;
      const online = this.presence.isOnline(d.id);
      const seen = d.lastContactAt ?? d.enrolledAt;
      const flags = {
        online: online ? 1 : 0,
        offlineCritical: !online && !d.revoked && seen < critical ? 1 : 0,
        offlineWarning: !online && !d.revoked && seen < warning && seen >= critical ? 1 : 0,
        failedDeployments: health.failedDeployments.has(d.id) ? 1 : 0,
        failedRuns: health.failedRuns.has(d.id) ? 1 : 0,
        detections: health.detections.has(d.id) ? 1 : 0,
      };
      const mine = own.get(d.groupId)!;
      mine.devices++;
      mine.online += flags.online;
      // Counted in the group and every ancestor the caller sees (the reach is whole subtrees).
      for (const g of tree.ancestors(d.groupId)) {
        const t = subtree.get(g);
        if (!t) break;
        t.devices++;
        for (const k of ['online', 'offlineCritical', 'offlineWarning', 'failedDeployments', 'failedRuns', 'detections'] as const) t[k] += flags[k];
      }
    }
    const n = (count: number, what: string) => `${count} device${count === 1 ? '' : 's'} ${what}`;
    const statuses = visible.map((g): GroupStatus => {
      const t = subtree.get(g.id)!;
      const crit = [
        t.offlineCritical ? n(t.offlineCritical, `offline for more than ${offlineDays} days`) : '',
        t.failedDeployments ? n(t.failedDeployments, 'with a failed deployment') : '',
        t.failedRuns ? n(t.failedRuns, 'with failed task runs in the last 24 hours') : '',
      ].filter(Boolean);
      const warn = [t.offlineWarning ? n(t.offlineWarning, 'offline for more than a day') : '', t.detections ? n(t.detections, 'with detections in the last 24 hours') : ''].filter(Boolean);
      return {
        groupId: g.id,
        path: tree.path(g.id),
        devices: own.get(g.id)!.devices,
        devicesWithSubgroups: t.devices,
        online: own.get(g.id)!.online,
        onlineWithSubgroups: t.online,
        status: crit.length ? 'critical' : warn.length ? 'warning' : 'ok',
        reason: crit.length || warn.length ? [...crit, ...warn].join('; ') : null,
        counts: { offlineCritical: t.offlineCritical, offlineWarning: t.offlineWarning, failedDeployments: t.failedDeployments, failedRuns: t.failedRuns, detections: t.detections },
      };
    });
    return pageOf(statuses, { key: (s) => [s.path.toLowerCase(), s.groupId] }, q);
  }
}
