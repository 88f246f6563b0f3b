import type { DeviceView, Task } from '@garrison/protocol';
import { AppError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import type { Device, DeviceStore } from '../storage/device-store.ts';
import { authorize, inReach, notVisible, Permission, reachList, reachOf, type Actor } from './actor.ts';
import type { Catalog } from './catalog.ts';
import type { EventService } from './event-service.ts';
import type { Presence } from './presence.ts';
import type { DomainBus } from './domain-bus.ts';

export interface DeviceQuery {
  groupId?: string;
  recursive?: boolean;
  search?: string;
  tag?: string;
  online?: boolean;
  limit?: number;
  offset?: number;
}
const TAG = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

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
  async list(actor: Actor, q: DeviceQuery = {}): Promise<DeviceView[]> {
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    let groupIds = reachList(reach);
    if (q.groupId) {
      if (!this.#catalog.group(q.groupId) || !inReach(reach, q.groupId)) throw notVisible('group', q.groupId);
      groupIds = q.recursive === false ? [q.groupId] : this.#catalog.tree.descendants(q.groupId);
    }
    const online = q.online;
    const rows = await this.#store.listDevices({ groupIds, search: q.search, tag: q.tag, limit: online === undefined ? q.limit : undefined, offset: q.offset });
    const views = rows.map((d) => this.view(d));
    const filtered = online === undefined ? views : views.filter((d) => d.online === online);
    return online === undefined ? filtered : filtered.slice(q.offset ?? 0, (q.offset ?? 0) + (q.limit ?? filtered.length));
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
  async effectiveTasks(actor: Actor, id: string, visible: (t: Task) => boolean): Promise<Task[]> {
    if (!this.canSee(actor, id)) throw notVisible('device', id);
    return this.#catalog.effectiveTasksOf(id).filter(visible);
  }
}
