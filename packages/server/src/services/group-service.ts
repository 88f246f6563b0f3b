import type { GroupView } from '@garrison/protocol';
import { AppError, notFound } from '../errors.ts';
import type { Clock } from '../clock.ts';
import { newId } from '../ids.ts';
import type { Group, GroupStore } from '../storage/group-store.ts';
import { authorize, inReach, notVisible, Permission, reachOf, type Actor } from './actor.ts';
import type { Catalog } from './catalog.ts';
import type { EventService } from './event-service.ts';
import type { DomainBus } from './domain-bus.ts';
import type { PolicyService } from './policy-service.ts';

import type { Page, PageRequest } from '@garrison/protocol';
import { pageOf } from '../paging.ts';

export const ROOT_GROUP_NAME = 'My Organization';

export interface GroupPatch {
  name?: string;
  parentId?: string;
  blockInheritance?: boolean;
  checkInIntervalMinutes?: number | null;
  policyEnforcementMinutes?: number | null;
}

const NAME = /^[^/\u0000-\u001f]{1,100}$/;

export class GroupService {
  readonly #store: GroupStore;
  readonly #catalog: Catalog;
  readonly #clock: Clock;
  readonly #events: EventService;
  readonly #bus: DomainBus;
  readonly #policies: Pick<PolicyService, 'groupOwnIntervals' | 'setGroupIntervals' | 'groupDeleted'>;

  constructor(deps: { store: GroupStore; catalog: Catalog; clock: Clock; events: EventService; bus: DomainBus; policies: Pick<PolicyService, 'groupOwnIntervals' | 'setGroupIntervals' | 'groupDeleted'> }) {
    this.#bus = deps.bus;
    this.#policies = deps.policies;
    this.#store = deps.store;
    this.#catalog = deps.catalog;
    this.#clock = deps.clock;
    this.#events = deps.events;
  }
  /** Creates the root group on first start; safe when two servers start at once (fixed id). */
  async ensureRoot(): Promise<Group> {
    const existing = this.#catalog.groups.find((g) => g.parentId === null);
    if (existing) return existing;
    const at = this.#clock.now().toISOString();
    const root: Group = { id: 'root', parentId: null, name: ROOT_GROUP_NAME, blockInheritance: false, checkInIntervalMinutes: null, policyEnforcementMinutes: null, createdAt: at, updatedAt: at };
    try {
      await this.#store.insertGroup(root);
    } catch {
      // Another server created it first.
    }
    await this.#catalog.reloadGroups();
    return this.#catalog.group('root')!;
  }
  get rootId(): string {
    return this.#catalog.groups.find((g) => g.parentId === null)!.id;
  }
  view(g: Group): GroupView {
    // The intervals are a compatibility view of the group's own "garrison" policy (ADR 0020).
    return { ...g, ...this.#policies.groupOwnIntervals(g.id), path: this.#catalog.tree.path(g.id), effectivePolicy: this.#catalog.policyOf(g.id) };
  }
  /** The groups the caller may see: the subtrees its grants cover (paths stay full, for context). */
  list(actor: Actor): GroupView[] {
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    return this.#catalog.groups.filter((g) => inReach(reach, g.id)).map((g) => this.view(g));
  }
  /** A page of the groups the caller may see, sorted by path (case-insensitive, then id). */
  page(actor: Actor, req: PageRequest): Page<GroupView> {
    return pageOf(this.list(actor), { key: (g) => [g.path.toLowerCase(), g.id] }, req);
  }
  get(actor: Actor, id: string): GroupView {
    const g = this.#catalog.group(id);
    if (!g || !inReach(reachOf(actor, Permission.read, this.#catalog.tree), id)) throw notVisible('group', id);
    return this.view(g);
  }
  resolvePath(path: string): Group | undefined {
    return this.#catalog.tree.findByPath(path) as Group | undefined;
  }
  #checkName(name: string, parentId: string, selfId?: string): void {
    if (!NAME.test(name)) throw new AppError('VALIDATION_FAILED', 'a group name is 1-100 characters without "/"');
    const clash = this.#catalog.groups.find((g) => g.parentId === parentId && g.name.toLowerCase() === name.toLowerCase() && g.id !== selfId);
    if (clash) throw new AppError('CONFLICT', `group "${name}" already exists there`);
  }
  async create(actor: Actor, input: { name: string; parentId?: string } & Omit<GroupPatch, 'name' | 'parentId'>): Promise<GroupView> {
    const parentId = input.parentId ?? this.rootId;
    if (input.parentId !== undefined) this.get(actor, parentId);
    authorize(actor, Permission.manageGroups, this.#catalog.tree, [parentId]);
    this.#checkName(input.name, parentId);
    const at = this.#clock.now().toISOString();
    const g: Group = {
      id: newId(),
      parentId,
      name: input.name,
      blockInheritance: input.blockInheritance ?? false,
      checkInIntervalMinutes: input.checkInIntervalMinutes ?? null,
      policyEnforcementMinutes: input.policyEnforcementMinutes ?? null,
      createdAt: at,
      updatedAt: at,
    };
    await this.#store.insertGroup({ ...g, checkInIntervalMinutes: null, policyEnforcementMinutes: null });
    await this.#catalog.reloadGroups();
    try {
      await this.#policies.setGroupIntervals(actor, g.id, { checkInIntervalMinutes: input.checkInIntervalMinutes, policyEnforcementMinutes: input.policyEnforcementMinutes });
    } catch (err) {
      // The intervals were refused: the call fails whole, leaving no group behind (new, so empty).
      await this.#store.deleteGroupIfEmpty(g.id);
      await this.#catalog.reloadGroups();
      throw err;
    }
    this.#bus.publish({ type: 'groups.changed', groupIds: [g.id] });
    await this.#events.audit(actor, 'group.created', `group "${this.#catalog.tree.path(g.id)}" created`, { groupId: g.id });
    return this.view(g);
  }
  async update(actor: Actor, id: string, patch: GroupPatch): Promise<GroupView> {
    const g = this.#catalog.group(id);
    if (!g) throw notFound('group', id);
    this.get(actor, id);
    if (patch.parentId) this.get(actor, patch.parentId);
    authorize(actor, Permission.manageGroups, this.#catalog.tree, [id, ...(patch.parentId ? [patch.parentId] : [])]);
    const next: Group = { ...g, updatedAt: this.#clock.now().toISOString() };
    if (patch.parentId !== undefined && patch.parentId !== g.parentId) {
      if (g.parentId === null) throw new AppError('ROOT_GROUP_IMMUTABLE', 'the root group cannot be moved');
      if (!this.#catalog.group(patch.parentId)) throw notFound('group', patch.parentId);
      if (this.#catalog.tree.wouldCycle(id, patch.parentId)) throw new AppError('GROUP_CYCLE', 'a group cannot move under itself or one of its subgroups');
      next.parentId = patch.parentId;
    }
    if (patch.name !== undefined) {
      if (g.parentId === null && patch.name !== g.name) this.#checkName(patch.name, '');
      else this.#checkName(patch.name, next.parentId!, id);
      next.name = patch.name;
    } else if (next.parentId !== g.parentId) this.#checkName(g.name, next.parentId!, id);
    if (patch.blockInheritance !== undefined) next.blockInheritance = patch.blockInheritance;
    // The intervals first: refused (authorization, validation, a concurrent change), they leave
    // the group as it was, not renamed or moved with an error.
    await this.#policies.setGroupIntervals(actor, id, { checkInIntervalMinutes: patch.checkInIntervalMinutes, policyEnforcementMinutes: patch.policyEnforcementMinutes });
    await this.#store.updateGroup(next);
    await this.#catalog.reloadGroups();
    await this.#events.audit(actor, 'group.updated', `group "${this.#catalog.tree.path(id)}" changed`, { groupId: id, data: { ...patch } });
    this.#bus.publish({ type: 'groups.changed', groupIds: this.#catalog.tree.descendants(id) });
    return this.view(next);
  }
  async remove(actor: Actor, id: string): Promise<void> {
    const g = this.#catalog.group(id);
    if (!g) throw notFound('group', id);
    this.get(actor, id);
    if (g.parentId === null) throw new AppError('ROOT_GROUP_IMMUTABLE', 'the root group cannot be deleted');
    authorize(actor, Permission.manageGroups, this.#catalog.tree, [id]);
    const path = this.#catalog.tree.path(id);
    if (!(await this.#store.deleteGroupIfEmpty(id))) {
      throw new AppError('GROUP_NOT_EMPTY', `group "${path}" still has devices, subgroups, tasks or active enrolment tokens`);
    }
    await this.#catalog.reloadGroups();
    await this.#policies.groupDeleted(id);
    this.#bus.publish({ type: 'groups.changed', groupIds: [id] });
    await this.#events.audit(actor, 'group.deleted', `group "${path}" deleted`, { groupId: id });
  }
}
