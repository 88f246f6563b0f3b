/**
 * An in-memory view of what targeting needs: the group tree, every live task and the facts of
 * every device. Check-ins, run-now and progress read it instead of querying per device, which
 * keeps dispatch free of per-agent database round trips. Services that change groups, tasks or
 * devices update it; a periodic reload picks up changes made by other server instances
 * sharing the same PostgreSQL database.
 */
import { GroupTree, effectiveTasks, targetDevices, type DeviceFacts } from '@garrison/core';
import { DEFAULT_AGENT_POLICY, type AgentIntervals, type Task } from '@garrison/protocol';
import type { Device, DeviceStore } from '../storage/device-store.ts';
import type { Group, GroupStore } from '../storage/group-store.ts';
import type { TaskStore } from '../storage/task-store.ts';

export function deviceFacts(d: Device): DeviceFacts {
  return {
    id: d.id,
    groupId: d.groupId,
    name: d.name,
    hostname: d.hostname,
    osPlatform: d.osPlatform,
    osName: d.osName,
    tags: d.tags,
    products: d.products.map((p) => p.id),
  };
}

export class Catalog {
  readonly #groups: GroupStore;
  readonly #tasks: TaskStore;
  readonly #devices: DeviceStore;
  #tree = new GroupTree([]);
  #groupList: Group[] = [];
  #groupById = new Map<string, Group>();
  #taskList: Task[] = [];
  #taskById = new Map<string, Task>();
  #deviceFacts = new Map<string, DeviceFacts>();
  /** Bumped on every change, so that callers can cache derived values. */
  generation = 0;

  readonly #intervals: (groupId: string) => AgentIntervals;

  /**
   * `intervals`: a group's effective agent intervals, from the policies (services/policy-service.ts);
   * without it (a test's catalog) the defaults.
   */
  constructor(stores: { groups: GroupStore; tasks: TaskStore; devices: DeviceStore; intervals?: (groupId: string) => AgentIntervals }) {
    this.#intervals = stores.intervals ?? (() => ({ checkInIntervalMinutes: DEFAULT_CHECK_IN_MINUTES, policyEnforcementMinutes: DEFAULT_POLICY_ENFORCEMENT_MINUTES }));
    this.#groups = stores.groups;
    this.#tasks = stores.tasks;
    this.#devices = stores.devices;
  }
  async load(): Promise<void> {
    await Promise.all([this.reloadGroups(), this.reloadTasks(), this.reloadDevices()]);
  }
  /** Groups and tasks are small: reloaded often to see other instances' changes. */
  async refresh(): Promise<void> {
    await Promise.all([this.reloadGroups(), this.reloadTasks()]);
  }
  async reloadDevices(): Promise<void> {
    const devices = await this.#devices.listDevices();
    this.#deviceFacts = new Map(devices.map((d) => [d.id, deviceFacts(d)]));
    this.generation++;
  }
  async reloadGroups(): Promise<void> {
    this.#groupList = await this.#groups.listGroups();
    this.#groupById = new Map(this.#groupList.map((g) => [g.id, g]));
    this.#tree = new GroupTree(this.#groupList.map((g) => ({ id: g.id, parentId: g.parentId, name: g.name, blockInheritance: g.blockInheritance })));
    this.generation++;
  }
  async reloadTasks(): Promise<void> {
    this.#taskList = await this.#tasks.listTasks();
    this.#taskById = new Map(this.#taskList.map((t) => [t.id, t]));
    this.generation++;
  }
  get tree(): GroupTree {
    return this.#tree;
  }
  get groups(): readonly Group[] {
    return this.#groupList;
  }
  group(id: string): Group | undefined {
    return this.#groupById.get(id);
  }
  get tasks(): readonly Task[] {
    return this.#taskList;
  }
  task(id: string): Task | undefined {
    return this.#taskById.get(id);
  }
  device(id: string): DeviceFacts | undefined {
    return this.#deviceFacts.get(id);
  }
  deviceIds(): IterableIterator<string> {
    return this.#deviceFacts.keys();
  }
  get deviceCount(): number {
    return this.#deviceFacts.size;
  }
  /** Reads one device from the database into the catalog (or out of it, when it is gone). */
  async loadDevice(id: string): Promise<DeviceFacts | undefined> {
    const d = await this.#devices.getDevice(id);
    if (d) this.putDevice(d);
    else if (this.#deviceFacts.has(id)) this.removeDevice(id);
    return d ? this.#deviceFacts.get(id) : undefined;
  }
  /** Reads these devices again (another instance changed them). */
  async reloadDevicesById(ids: readonly string[]): Promise<void> {
    if (ids.length > 500) return this.reloadDevices();
    for (const id of ids) await this.loadDevice(id);
  }
  putDevice(d: Device): void {
    this.#deviceFacts.set(d.id, deviceFacts(d));
    this.generation++;
  }
  putDeviceFacts(f: DeviceFacts): void {
    this.#deviceFacts.set(f.id, f);
    this.generation++;
  }
  removeDevice(id: string): void {
    this.#deviceFacts.delete(id);
    this.generation++;
  }
  /** Devices whose group is one of `groupIds`. */
  devicesInGroups(groupIds: Iterable<string>): string[] {
    const set = new Set(groupIds);
    const out: string[] = [];
    for (const d of this.#deviceFacts.values()) if (set.has(d.groupId)) out.push(d.id);
    return out;
  }
  effectiveTasksOf(deviceId: string): Task[] {
    const facts = this.#deviceFacts.get(deviceId);
    return facts ? effectiveTasks(facts, this.#taskList, this.#tree) : [];
  }
  targetsOf(task: Pick<Task, 'id' | 'scope'>): DeviceFacts[] {
    return targetDevices(task, [...this.#deviceFacts.values()], this.#tree);
  }
  /**
   * The agent intervals of a device in this group, from its effective "garrison" policy (ADR
   * 0020; the intervals on groups became policies in migration 0013). Per device, profiles can
   * differ: the check-in path asks the policy service with the device's facts.
   */
  policyOf(groupId: string): AgentIntervals {
    return this.#intervals(groupId);
  }
}

export const DEFAULT_CHECK_IN_MINUTES = DEFAULT_AGENT_POLICY.checkInIntervalMinutes;
export const DEFAULT_POLICY_ENFORCEMENT_MINUTES = DEFAULT_AGENT_POLICY.policyEnforcementMinutes;
