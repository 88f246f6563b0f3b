/**
 * Product policies (ADR 0020): the policies administrators write, their assignments to
 * groups, and every device's effective policy, computed from an in-memory index.
 *
 * The index (PolicyIndex, @garrison/core) holds every policy and assignment, which are few,
 * over the policy types of the installed plug-ins; a device's effective policy is a pure
 * function of it, the group tree and the device's facts, so check-ins read it without a
 * database round trip. It is rebuilt from the database after every change here, and when
 * another instance says through the bus that it changed something ('policies.changed'), so
 * that every instance serves the new policy within a moment; the periodic catalog refresh
 * reloads it too, the safety net under a lost notification.
 *
 * Authorization (default deny, first thing in every method): reading needs `read` (policies
 * belong to no group and every reader may see them, for a subtree's inheritance comes from
 * above it; devices and compliance are filtered to the caller's reach); creating needs
 * `policies:write` on some group; changing or deleting a policy needs it on every group the
 * policy is assigned to; assigning needs it on the target group.
 */
import { PolicyIndex, agentPolicy, canonicalJson, nextMaintenanceWindow, policiesEtag, policyChanges, policyShapeProblems, type DeviceFacts, type GroupTree, type PolicyTypeFacts } from '@garrison/core';
import {
  BUILTIN_PRODUCT,
  DEFAULT_AGENT_POLICY,
  POLICY_EXPORT_FORMAT,
  POLICY_EXPORT_VERSION,
  PolicyExport,
  checker,
  type AgentIntervals,
  type AgentPolicySettings,
  type AgentProductPolicy,
  type DevicePolicyView,
  type EffectiveProductPolicy,
  type GroupPolicyAssignmentView,
  type Policy,
  type PolicyAssignment,
  type PolicyAssignmentInput,
  type PolicyCompliance,
  type PolicyComplianceCounts,
  type PolicyComplianceItem,
  type PolicyCompliancePage,
  type PolicyComplianceQuery,
  type PolicyInput,
  type PolicyListItem,
  type PolicyListQuery,
  type PolicyPatch,
  type PolicyPreview,
  type PolicyPreviewInput,
  type PolicyProfile,
  type PolicyRevisionView,
  type PolicyTypeView,
  type PolicyView,
} from '@garrison/protocol';
import { AppError, notFound } from '../errors.ts';
import { decodeCursor, encodeCursor, pageLimit, pageOf } from '../paging.ts';
import type { Page, PageRequest } from '@garrison/protocol';
import type { Clock } from '../clock.ts';
import { newId } from '../ids.ts';
import type { PolicyStore, StoredPolicy } from '../storage/policy-store.ts';
import type { DeviceStore } from '../storage/device-store.ts';
import type { InstalledPolicyType, PluginRegistry } from '../plugins/registry.ts';
import { actorName, authorize, authorizeAnywhere, inReach, notVisible, Permission, reachOf, type Actor } from './actor.ts';
import type { Catalog } from './catalog.ts';
import type { EventService } from './event-service.ts';
import type { DomainBus } from './domain-bus.ts';

const exportChecker = checker(PolicyExport);

/** What the agent's policy is read as when the "garrison" product has no policy type (it always has: the built-in plug-in declares it). */
const AGENT_DEFAULTS: AgentPolicySettings = DEFAULT_AGENT_POLICY;

/** A facts-less stand-in for "a device in this group": what a group's own view shows (profiles with a condition match no such device). */
function groupProbe(groupId: string): DeviceFacts {
  return { id: '', groupId, name: '', hostname: '', osPlatform: '', osName: '', tags: [], products: [] };
}

interface Cached {
  index: PolicyIndex;
  tree: GroupTree;
  effective: EffectiveProductPolicy[];
  agent?: { etag: string; products: AgentProductPolicy[] };
}

export interface PolicyChangeOptions {
  /** The groups whose devices' effective policy may have changed (their subtrees are added). */
  groupIds: readonly string[];
}

export class PolicyService {
  readonly #store: PolicyStore;
  readonly #catalog: Catalog;
  readonly #plugins: PluginRegistry;
  readonly #clock: Clock;
  readonly #events: EventService;
  readonly #bus: DomainBus;
  readonly #devices: Pick<DeviceStore, 'getDevice'> | undefined;
  #policies: StoredPolicy[] = [];
  #policyById = new Map<string, StoredPolicy>();
  #assignments: PolicyAssignment[] = [];
  #index: PolicyIndex;
  #loadSeq = 0;
  /** Per device facts object (the catalog replaces it when the device changes): its last evaluation. */
  #cache = new WeakMap<DeviceFacts, Cached>();

  /** `devices`: for a device's time zone (its maintenance windows in "local" time). */
  constructor(deps: { store: PolicyStore; catalog: Catalog; plugins: PluginRegistry; clock: Clock; events: EventService; bus: DomainBus; devices?: Pick<DeviceStore, 'getDevice'> }) {
    this.#devices = deps.devices;
    this.#store = deps.store;
    this.#catalog = deps.catalog;
    this.#plugins = deps.plugins;
    this.#clock = deps.clock;
    this.#events = deps.events;
    this.#bus = deps.bus;
    this.#index = this.#build(this.#policies, this.#assignments);
  }

  #types(): PolicyTypeFacts[] {
    return this.#plugins.policyTypes().map((t) => ({ product: t.product, defaults: t.defaults, lockable: t.lockable }));
  }
  #build(policies: readonly StoredPolicy[], assignments: readonly PolicyAssignment[]): PolicyIndex {
    return new PolicyIndex(this.#types(), policies, assignments);
  }

  /** Reads every policy and assignment and rebuilds the index (a later load always wins over an earlier one still running). */
  async load(): Promise<void> {
    const seq = ++this.#loadSeq;
    const [policies, assignments] = await Promise.all([this.#store.listPolicies(), this.#store.listAssignments()]);
    if (seq !== this.#loadSeq) return;
    this.#policies = policies;
    this.#policyById = new Map(policies.map((p) => [p.id, p]));
    this.#assignments = assignments;
    this.#index = this.#build(policies, assignments);
  }

  // --- What a device gets (the check-in path, the device page) --------------------------------

  #evaluate(device: DeviceFacts): Cached {
    const tree = this.#catalog.tree;
    const known = this.#cache.get(device);
    if (known && known.index === this.#index && known.tree === tree) return known;
    const fresh: Cached = { index: this.#index, tree, effective: this.#index.effectiveAll(device, tree) };
    this.#cache.set(device, fresh);
    return fresh;
  }

  /** The device's effective policy of every product with a policy type, with origins, sorted by product. */
  effective(device: DeviceFacts): EffectiveProductPolicy[] {
    return this.#evaluate(device).effective;
  }

  /** What the agent receives at check-in: its effective policies without origins, and their etag. */
  agentPolicies(device: DeviceFacts): { etag: string; products: AgentProductPolicy[] } {
    const c = this.#evaluate(device);
    if (!c.agent) {
      const products = c.effective.map(agentPolicy);
      c.agent = { etag: policiesEtag(products), products };
    }
    return c.agent;
  }

  /** The etag alone (what deciding whether an agent must be told costs). */
  agentEtag(device: DeviceFacts): string {
    return this.agentPolicies(device).etag;
  }

  /** The agent's own effective settings (product "garrison"). */
  agentSettings(device: DeviceFacts): AgentPolicySettings {
    const e = this.effective(device).find((p) => p.product === BUILTIN_PRODUCT);
    if (!e) return { ...AGENT_DEFAULTS };
    const out: Record<string, unknown> = {};
    for (const [k, s] of Object.entries(e.settings)) out[k] = s.value;
    return { ...AGENT_DEFAULTS, ...out } as AgentPolicySettings;
  }

  /** The two intervals every check-in result carries (for agents that predate policies), from the garrison policy. */
  intervals(device: DeviceFacts): AgentIntervals {
    const s = this.agentSettings(device);
    return { checkInIntervalMinutes: s.checkInIntervalMinutes, policyEnforcementMinutes: s.policyEnforcementMinutes };
  }

  /** The intervals of a device in this group without facts (enrolment, the group view). */
  groupIntervals(groupId: string): AgentIntervals {
    const e = this.#index.effective(groupProbe(groupId), BUILTIN_PRODUCT, this.#catalog.tree);
    const value = (k: keyof AgentIntervals) => (e?.settings[k]?.value as number | undefined) ?? AGENT_DEFAULTS[k];
    return { checkInIntervalMinutes: value('checkInIntervalMinutes'), policyEnforcementMinutes: value('policyEnforcementMinutes') };
  }

  // --- Telling agents ------------------------------------------------------------------------

  /** The connected agents (here) in these groups' subtrees, with their policy etag now. */
  etagsHere(groupIds: readonly string[], isHere: (deviceId: string) => boolean): Map<string, string> {
    const tree = this.#catalog.tree;
    const groups = new Set<string>();
    for (const g of groupIds) for (const d of tree.descendants(g)) groups.add(d);
    const out = new Map<string, string>();
    for (const id of this.#catalog.devicesInGroups(groups)) {
      if (!isHere(id)) continue;
      const facts = this.#catalog.device(id);
      if (facts) out.set(id, this.agentEtag(facts));
    }
    return out;
  }
  /** Which of `before`'s devices have another etag now. */
  changedSince(before: ReadonlyMap<string, string>): string[] {
    const out: string[] = [];
    for (const [id, etag] of before) {
      const facts = this.#catalog.device(id);
      if (facts && this.agentEtag(facts) !== etag) out.push(id);
    }
    return out;
  }

  #isHere: (deviceId: string) => boolean = () => true;
  /** The composition root says which agents are connected here (the hub's connections). */
  connectedHere(fn: (deviceId: string) => boolean): void {
    this.#isHere = fn;
  }

  /** Reloads after a change made here and tells every instance; `deviceIds` are this instance's agents to sync. */
  async #changed(policyIds: string[], groupIds: string[]): Promise<void> {
    const before = this.etagsHere(groupIds, this.#isHere);
    await this.load();
    const deviceIds = this.changedSince(before);
    const tree = this.#catalog.tree;
    const all = new Set<string>();
    for (const g of groupIds) for (const d of tree.descendants(g)) all.add(d);
    this.#bus.publish({ type: 'policies.changed', policyIds, groupIds: [...all], deviceIds });
  }

  // --- The group API's compatibility view ----------------------------------------------------

  /** The group's own assigned garrison policy, if any. */
  #ownAgentPolicy(groupId: string): StoredPolicy | undefined {
    const a = this.#index.assignment(groupId, BUILTIN_PRODUCT);
    return a?.policyId ? this.#policyById.get(a.policyId) : undefined;
  }
  /** What the group itself sets: the values of its own garrison policy (null: not set there). */
  groupOwnIntervals(groupId: string): { checkInIntervalMinutes: number | null; policyEnforcementMinutes: number | null } {
    const p = this.#ownAgentPolicy(groupId);
    const v = (k: string) => (typeof p?.settings[k] === 'number' ? (p.settings[k] as number) : null);
    return { checkInIntervalMinutes: v('checkInIntervalMinutes'), policyEnforcementMinutes: v('policyEnforcementMinutes') };
  }

  /**
   * Writing the group's intervals (the compatibility view): sets, or with null removes, those
   * settings in the group's own garrison policy, making "<path> – agent policy" when it has
   * none. The group service has checked groups:write on the group; a policy shared with other
   * groups also needs policies:write on them, since changing it changes them.
   */
  async setGroupIntervals(actor: Actor, groupId: string, patch: { checkInIntervalMinutes?: number | null; policyEnforcementMinutes?: number | null }): Promise<void> {
    const keys = (['checkInIntervalMinutes', 'policyEnforcementMinutes'] as const).filter((k) => patch[k] !== undefined);
    if (keys.length === 0) return;
    const cur = this.#ownAgentPolicy(groupId);
    const tree = this.#catalog.tree;
    if (cur) {
      const others = this.#index.groupsOf(cur.id).filter((g) => g !== groupId);
      if (others.length) authorize(actor, Permission.managePolicies, tree, others);
      const settings: Record<string, unknown> = { ...cur.settings };
      for (const k of keys) {
        if (patch[k] === null) delete settings[k];
        else settings[k] = patch[k];
      }
      if (canonicalJson(settings) === canonicalJson(cur.settings)) return;
      await this.#write(actor, cur, { settings }, cur.revision);
      return;
    }
    const settings: Record<string, unknown> = {};
    for (const k of keys) if (patch[k] !== null) settings[k] = patch[k];
    if (Object.keys(settings).length === 0) return;
    const p = await this.#insert(actor, { name: `${tree.path(groupId)} – agent policy`, product: BUILTIN_PRODUCT, settings, description: `The agent policy of group ${tree.path(groupId)}.` });
    const block = this.#index.assignment(groupId, BUILTIN_PRODUCT)?.blockInheritance ?? false;
    await this.#putAssignment(actor, { groupId, product: BUILTIN_PRODUCT, policyId: p.id, blockInheritance: block });
  }

  /** A deleted group's assignments go with it. */
  async groupDeleted(groupId: string): Promise<void> {
    if ((await this.#store.deleteAssignmentsOfGroup(groupId)) > 0) await this.#changed([], []);
  }

  // --- Validation ----------------------------------------------------------------------------

  #type(product: string): InstalledPolicyType {
    const t = this.#plugins.policyType(product);
    if (!t) throw new AppError('POLICY_TYPE_UNKNOWN', `no installed plug-in declares a policy type for product "${product}"`, { product });
    return t;
  }
  /** Every problem of a policy for its type, as sentences (empty: valid). */
  problems(product: string, p: { settings: Record<string, unknown>; locked: readonly string[]; profiles: readonly PolicyProfile[] }): string[] {
    const t = this.#type(product);
    const problems = policyShapeProblems({ product, defaults: t.defaults, lockable: t.lockable }, p);
    const checkValues = (where: string, settings: Record<string, unknown>) => {
      for (const [k, v] of Object.entries(settings)) {
        const c = t.settingCheckers.get(k);
        if (c && !c.check(v)) for (const i of c.issues(v, 5)) problems.push(`${where}: "${k}"${i.path === '/' ? '' : i.path}: ${i.message}`);
      }
    };
    checkValues('policy', p.settings);
    for (const prof of p.profiles) checkValues(`profile "${prof.name}"`, prof.settings);
    if (problems.length === 0 && t.definition.validate) {
      const base = { ...structuredClone(t.defaults), ...p.settings };
      for (const m of t.definition.validate(base)) problems.push(`policy: ${m}`);
      for (const prof of p.profiles) for (const m of t.definition.validate({ ...base, ...prof.settings })) problems.push(`profile "${prof.name}": ${m}`);
    }
    return problems;
  }
  #assertValid(product: string, p: { settings: Record<string, unknown>; locked: readonly string[]; profiles: readonly PolicyProfile[] }): void {
    const problems = this.problems(product, p);
    if (problems.length) throw new AppError('POLICY_INVALID', problems.slice(0, 5).join('; '), { problems });
  }

  // --- Policies ------------------------------------------------------------------------------

  #doc(p: Pick<Policy, 'name' | 'description' | 'product' | 'settings' | 'locked' | 'profiles'>): PolicyExport {
    return { format: POLICY_EXPORT_FORMAT, formatVersion: POLICY_EXPORT_VERSION, policy: { name: p.name, description: p.description, product: p.product, settings: p.settings, locked: [...p.locked], profiles: [...p.profiles] } };
  }
  #view(p: StoredPolicy): Policy {
    const { createdBy: _c, updatedBy: _u, ...rest } = p;
    return rest;
  }
  #visible(actor: Actor, id: string): StoredPolicy {
    authorizeAnywhere(actor, Permission.read, this.#catalog.tree);
    const p = this.#policyById.get(id);
    if (!p) throw notFound('policy', id);
    return p;
  }

  types(actor: Actor): PolicyTypeView[] {
    authorizeAnywhere(actor, Permission.read, this.#catalog.tree);
    return this.#plugins.policyTypes().map((t) => ({ product: t.product, productName: t.productName, settingsSchema: t.definition.settingsSchema, defaults: structuredClone(t.defaults) as Record<string, unknown>, lockable: [...t.lockable] }));
  }
  /** Policies by name (then id), filtered; with their groups, and their compliance counts when asked (one read of reports per policy of the page). */
  async list(actor: Actor, q: PolicyListQuery = {}): Promise<Page<PolicyListItem>> {
    authorizeAnywhere(actor, Permission.read, this.#catalog.tree);
    const search = q.search?.toLowerCase();
    const all = this.#policies.filter((p) => (!q.product || p.product === q.product) && (!search || p.name.toLowerCase().includes(search)));
    const page = pageOf(all, { key: (p) => [p.name.toLowerCase(), p.id] }, q, (p): PolicyListItem => this.#withGroups(actor, p));
    if (q.compliance) for (const item of page.items) item.compliance = (await this.#complianceRows(actor, this.#policyById.get(item.id)!)).counts;
    return page;
  }
  #withGroups(actor: Actor, p: StoredPolicy): PolicyView {
    const tree = this.#catalog.tree;
    // Groups outside what the caller may read are counted, never named (as elsewhere in the API).
    const reach = reachOf(actor, Permission.read, tree);
    const groups = this.#index.groupsOf(p.id);
    const seen = groups.filter((g) => inReach(reach, g));
    return { ...this.#view(p), assignedTo: seen.map((groupId) => ({ groupId, path: tree.path(groupId) })), assignedElsewhere: groups.length - seen.length };
  }
  get(actor: Actor, id: string): PolicyView {
    return this.#withGroups(actor, this.#visible(actor, id));
  }

  async #insert(actor: Actor, input: PolicyInput): Promise<StoredPolicy> {
    const settings = input.settings ?? {};
    const locked = input.locked ?? [];
    const profiles = input.profiles ?? [];
    this.#assertValid(input.product, { settings, locked, profiles });
    const at = this.#clock.now().toISOString();
    const p: StoredPolicy = { id: newId(), name: input.name, description: input.description ?? '', product: input.product, revision: 1, settings, locked, profiles, createdAt: at, updatedAt: at, createdBy: actorName(actor), updatedBy: actorName(actor) };
    await this.#store.insertPolicy(p, this.#doc(p));
    // Assigned nowhere yet: no agent changes, but the other instances must know it (an assign
    // through another instance follows at once behind a load balancer).
    await this.#changed([p.id], []);
    await this.#events.audit(actor, 'policy.created', `policy "${p.name}" (${p.product}) created`, { product: p.product, data: { policyId: p.id } });
    return p;
  }
  async create(actor: Actor, input: PolicyInput): Promise<Policy> {
    authorizeAnywhere(actor, Permission.managePolicies, this.#catalog.tree);
    return this.#view(await this.#insert(actor, input));
  }

  async #write(actor: Actor, cur: StoredPolicy, patch: Omit<PolicyPatch, 'revision'>, revision: number): Promise<StoredPolicy> {
    if (revision !== cur.revision) throw new AppError('POLICY_REVISION_CONFLICT', `policy ${cur.id} is at revision ${cur.revision}, not ${revision}; reload it and apply the change again`, { revision: cur.revision });
    const next: StoredPolicy = {
      ...cur,
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.description !== undefined ? { description: patch.description } : {}),
      ...(patch.settings !== undefined ? { settings: patch.settings } : {}),
      ...(patch.locked !== undefined ? { locked: patch.locked } : {}),
      ...(patch.profiles !== undefined ? { profiles: patch.profiles } : {}),
      revision: cur.revision + 1,
      updatedAt: this.#clock.now().toISOString(),
      updatedBy: actorName(actor),
    };
    this.#assertValid(next.product, next);
    if (!(await this.#store.replacePolicy(next, cur.revision, this.#doc(next)))) {
      await this.load();
      throw new AppError('POLICY_REVISION_CONFLICT', `policy ${cur.id} changed meanwhile; reload it and apply the change again`);
    }
    const groups = this.#index.groupsOf(cur.id);
    await this.#changed([cur.id], groups);
    await this.#events.audit(actor, 'policy.updated', `policy "${next.name}" changed (revision ${next.revision})`, { product: next.product, groupId: groups[0] ?? null, data: { policyId: next.id, revision: next.revision, fields: Object.keys(patch) } });
    return next;
  }
  /**
   * Changing or deleting a policy needs policies:write on every group it is assigned to. One
   * assigned nowhere belongs to no subtree yet: it needs the permission on the root group, so
   * that a subtree administrator cannot rewrite another administrator's draft before it is
   * assigned (they assign their own draft to their group first, then change it there).
   */
  #authorizeChange(actor: Actor, id: string): void {
    const groups = this.#index.groupsOf(id);
    const tree = this.#catalog.tree;
    authorize(actor, Permission.managePolicies, tree, groups.length ? groups : tree.roots().map((g) => g.id));
  }
  async update(actor: Actor, id: string, patch: PolicyPatch): Promise<Policy> {
    const cur = this.#visible(actor, id);
    this.#authorizeChange(actor, id);
    const { revision, ...rest } = patch;
    return this.#view(await this.#write(actor, cur, rest, revision));
  }
  async remove(actor: Actor, id: string): Promise<void> {
    const cur = this.#visible(actor, id);
    this.#authorizeChange(actor, id);
    if (!(await this.#store.deletePolicyIfUnassigned(id))) {
      await this.load();
      throw new AppError('POLICY_IN_USE', `policy "${cur.name}" is assigned to groups; unassign it first`, { groupIds: this.#index.groupsOf(id) });
    }
    await this.#changed([id], []);
    await this.#events.audit(actor, 'policy.deleted', `policy "${cur.name}" deleted`, { product: cur.product, data: { policyId: id } });
  }
  async copy(actor: Actor, id: string, name: string): Promise<Policy> {
    const cur = this.#visible(actor, id);
    authorizeAnywhere(actor, Permission.managePolicies, this.#catalog.tree);
    return this.#view(await this.#insert(actor, { name, description: cur.description, product: cur.product, settings: cur.settings, locked: [...cur.locked], profiles: [...cur.profiles] }));
  }
  /** Revisions newest first, a page at a time (keyset on the revision number, read by the database). */
  async revisions(actor: Actor, id: string, q: PageRequest = {}): Promise<Page<PolicyRevisionView>> {
    this.#visible(actor, id);
    const before = decodeCursor(q.cursor, 1)?.[0];
    if (before !== undefined && !Number.isInteger(before)) {
      throw new AppError('VALIDATION_FAILED', 'cursor is not one this list gave: pass the nextCursor of the previous page unchanged', { issues: [{ path: '/cursor', message: 'not a cursor of this list' }] });
    }
    const limit = pageLimit(q);
    const { rows, total } = await this.#store.pageRevisions(id, { before: before as number | undefined, limit: limit + 1 });
    const items = rows.slice(0, limit) as PolicyRevisionView[];
    return { items, nextCursor: rows.length > limit ? encodeCursor([items[items.length - 1]!.revision]) : null, total };
  }
  export(actor: Actor, id: string): PolicyExport {
    return this.#doc(this.#visible(actor, id));
  }
  async import(actor: Actor, doc: unknown): Promise<Policy> {
    authorizeAnywhere(actor, Permission.managePolicies, this.#catalog.tree);
    if (!exportChecker.check(doc)) throw new AppError('POLICY_IMPORT_INVALID', `not a Garrison policy export document (format ${POLICY_EXPORT_FORMAT}, formatVersion ${POLICY_EXPORT_VERSION})`, { issues: exportChecker.issues(doc) });
    const p = doc.policy;
    try {
      this.#assertValid(p.product, p);
    } catch (err) {
      if (err instanceof AppError) throw new AppError('POLICY_IMPORT_INVALID', `the policy in the document is not valid: ${err.message}`, { cause: err.code, details: err.details });
      throw err;
    }
    return this.#view(await this.#insert(actor, { name: doc.name ?? p.name, description: p.description, product: p.product, settings: p.settings, locked: p.locked, profiles: p.profiles }));
  }

  // --- Assignments ---------------------------------------------------------------------------

  #group(actor: Actor, groupId: string): void {
    if (!this.#catalog.group(groupId) || !inReach(reachOf(actor, Permission.read, this.#catalog.tree), groupId)) throw notVisible('group', groupId);
  }
  groupAssignments(actor: Actor, groupId: string): { items: GroupPolicyAssignmentView[] } {
    this.#group(actor, groupId);
    return { items: this.#assignments.filter((a) => a.groupId === groupId).map((a) => ({ ...a, policyName: a.policyId ? (this.#policyById.get(a.policyId)?.name ?? null) : null })) };
  }
  #checkAssignment(product: string, input: PolicyAssignmentInput): void {
    this.#type(product);
    if (input.policyId !== null) {
      const p = this.#policyById.get(input.policyId);
      if (!p) throw notFound('policy', input.policyId);
      if (p.product !== product) throw new AppError('VALIDATION_FAILED', `policy "${p.name}" is a policy of ${p.product}, not ${product}`);
    }
  }
  async #putAssignment(actor: Actor, a: PolicyAssignment): Promise<void> {
    if (!(await this.#store.putAssignment(a))) throw notFound('policy', a.policyId ?? '');
    await this.#changed(a.policyId ? [a.policyId] : [], [a.groupId]);
    await this.#events.audit(actor, 'policy.assigned', `${a.policyId ? `policy "${this.#policyById.get(a.policyId)?.name ?? a.policyId}"` : 'no policy'} assigned to group "${this.#catalog.tree.path(a.groupId)}" for ${a.product}${a.blockInheritance ? ', blocking inheritance' : ''}`, { groupId: a.groupId, product: a.product, data: { ...a } });
  }
  async assign(actor: Actor, groupId: string, product: string, input: PolicyAssignmentInput): Promise<PolicyAssignment> {
    this.#group(actor, groupId);
    authorize(actor, Permission.managePolicies, this.#catalog.tree, [groupId]);
    this.#checkAssignment(product, input);
    const a: PolicyAssignment = { groupId, product, policyId: input.policyId, blockInheritance: input.blockInheritance };
    await this.#putAssignment(actor, a);
    return a;
  }
  async unassign(actor: Actor, groupId: string, product: string): Promise<void> {
    this.#group(actor, groupId);
    authorize(actor, Permission.managePolicies, this.#catalog.tree, [groupId]);
    const was = this.#index.assignment(groupId, product);
    const name = was?.policyId ? this.#policyById.get(was.policyId)?.name : undefined;
    if (!(await this.#store.deleteAssignment(groupId, product))) throw notFound('policy assignment', `${groupId}/${product}`);
    await this.#changed(was?.policyId ? [was.policyId] : [], [groupId]);
    await this.#events.audit(actor, 'policy.unassigned', `the ${product} policy assignment of group "${this.#catalog.tree.path(groupId)}" removed${name ? ` (policy "${name}")` : ''}`, { groupId, product, data: { policyId: was?.policyId ?? null } });
  }

  // --- Previews ------------------------------------------------------------------------------

  #preview(actor: Actor, product: string, groupIds: readonly string[], after: PolicyIndex, limit: number): PolicyPreview {
    const tree = this.#catalog.tree;
    const reach = reachOf(actor, Permission.read, tree);
    const groups = new Set<string>();
    for (const g of groupIds) for (const d of tree.descendants(g)) if (inReach(reach, d)) groups.add(d);
    const devices: PolicyPreview['devices'] = [];
    let reached = 0;
    let changed = 0;
    for (const id of this.#catalog.devicesInGroups(groups)) {
      const facts = this.#catalog.device(id);
      if (!facts) continue;
      reached++;
      const changes = policyChanges(this.#index.effective(facts, product, tree), after.effective(facts, product, tree));
      if (changes.length === 0) continue;
      changed++;
      if (devices.length < limit) devices.push({ deviceId: id, deviceName: facts.name, groupId: facts.groupId, changes });
    }
    return { devices, reached, changed, truncated: changed > devices.length };
  }
  previewPolicy(actor: Actor, id: string, change: PolicyPreviewInput, limit = 200): PolicyPreview {
    const cur = this.#visible(actor, id);
    if (change.revision !== undefined && change.revision !== cur.revision) throw new AppError('POLICY_REVISION_CONFLICT', `policy ${id} is at revision ${cur.revision}, not ${change.revision}`, { revision: cur.revision });
    const next: StoredPolicy = { ...cur, settings: change.settings ?? cur.settings, locked: change.locked ?? cur.locked, profiles: change.profiles ?? cur.profiles, name: change.name ?? cur.name, revision: cur.revision + 1 };
    this.#assertValid(cur.product, next);
    const after = this.#build(this.#policies.map((p) => (p.id === id ? next : p)), this.#assignments);
    return this.#preview(actor, cur.product, this.#index.groupsOf(id), after, limit);
  }
  previewAssignment(actor: Actor, groupId: string, product: string, input: PolicyAssignmentInput, limit = 200): PolicyPreview {
    this.#group(actor, groupId);
    this.#checkAssignment(product, input);
    const rest = this.#assignments.filter((a) => !(a.groupId === groupId && a.product === product));
    const after = this.#build(this.#policies, [...rest, { groupId, product, policyId: input.policyId, blockInheritance: input.blockInheritance }]);
    return this.#preview(actor, product, [groupId], after, limit);
  }

  // --- Compliance ----------------------------------------------------------------------------

  #compliance(deviceId: string, e: EffectiveProductPolicy | null, product: string, row: { appliedRevision: string | null; state: string; drift: PolicyCompliance['drift']; reason: string | null; reportedAt: string } | undefined): PolicyCompliance {
    const expected = e?.revision ?? null;
    const pending = !row || row.appliedRevision !== expected;
    return {
      deviceId,
      product,
      expectedRevision: expected,
      appliedRevision: row?.appliedRevision ?? null,
      state: pending ? 'pending' : (row.state as PolicyCompliance['state']),
      drift: row?.drift ?? [],
      reason: row?.reason ?? null,
      reportedAt: row?.reportedAt ?? null,
    };
  }
  /** Every device the policy reaches that the caller may read, with its state, and the count of each state. */
  async #complianceRows(actor: Actor, p: StoredPolicy): Promise<{ rows: PolicyComplianceItem[]; counts: PolicyComplianceCounts }> {
    const tree = this.#catalog.tree;
    const reach = reachOf(actor, Permission.read, tree);
    const groups = new Set<string>();
    for (const g of this.#index.groupsOf(p.id)) for (const d of tree.descendants(g)) if (inReach(reach, d)) groups.add(d);
    const ids = this.#catalog.devicesInGroups(groups);
    const reports = new Map((await this.#store.statusOf(p.product, ids)).map((r) => [r.deviceId, r]));
    const counts: PolicyComplianceCounts = { compliant: 0, drifted: 0, failed: 0, pending: 0 };
    const rows: PolicyComplianceItem[] = [];
    for (const deviceId of ids) {
      const facts = this.#catalog.device(deviceId);
      if (!facts) continue;
      // The device's cached evaluation (what its check-ins read too): a page of policies over a large fleet evaluates each device once.
      const effective = this.effective(facts).find((e) => e.product === p.product) ?? null;
      const c = this.#compliance(deviceId, effective, p.product, reports.get(deviceId));
      counts[c.state]++;
      rows.push({ ...c, deviceName: facts.name, groupId: facts.groupId });
    }
    return { rows, counts };
  }
  /**
   * A page of the devices the policy reaches (by name, then id), filtered by state and name;
   * `states` counts every device the caller may see, whatever the filter, and `total` the
   * filtered ones. The states are computed here (a report is pending until it names the
   * revision the device should have now), so the page is cut in memory, after one read of the
   * reports of the reached devices.
   */
  async compliance(actor: Actor, id: string, q: PolicyComplianceQuery = {}): Promise<PolicyCompliancePage> {
    const p = this.#visible(actor, id);
    const { rows, counts } = await this.#complianceRows(actor, p);
    const search = q.search?.toLowerCase();
    const matching = rows.filter((r) => (!q.state || r.state === q.state) && (!search || r.deviceName.toLowerCase().includes(search)));
    return { ...pageOf(matching, { key: (r) => [r.deviceName.toLowerCase(), r.deviceId] }, q), states: counts };
  }

  /** GET /devices/:id/policy: effective policies with origins, compliance, and the maintenance window in force or next (in the device's own zone for "local"). */
  async devicePolicy(actor: Actor, deviceId: string): Promise<DevicePolicyView> {
    const facts = this.#catalog.device(deviceId);
    if (!facts || !inReach(reachOf(actor, Permission.read, this.#catalog.tree), facts.groupId)) throw notVisible('device', deviceId);
    const products = this.effective(facts);
    const rows = new Map((await this.#store.statusOfDevice(deviceId).catch(() => [])).map((r) => [r.product, r]));
    const compliance = products.map((e) => this.#compliance(deviceId, e, e.product, rows.get(e.product)));
    const zone = (await this.#devices?.getDevice(deviceId))?.timeZone || 'UTC';
    let w: { start: Date; end: Date } | null = null;
    try {
      w = nextMaintenanceWindow(this.agentSettings(facts).maintenanceWindows, this.#clock.now(), zone);
    } catch {
      w = nextMaintenanceWindow(this.agentSettings(facts).maintenanceWindows, this.#clock.now(), 'UTC');
    }
    return { products, compliance, nextMaintenanceWindow: w && { start: w.start.toISOString(), end: w.end.toISOString() } };
  }
}
