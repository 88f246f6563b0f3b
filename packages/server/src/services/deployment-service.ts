/**
 * Product deployment: products (with a branch, optionally a pinned version) assigned to
 * groups and inherited down the tree; at every check-in the device's plan is computed from
 * what it reports as installed, the newest packages of its branches and the dependencies
 * between them (core's planDeployment), handed to its built-in deployment task, and the
 * device's state per product recorded. Install results come back as run events of that task.
 * An urgent assignment's steps (and those of the dependencies and conflicts it brings) are
 * marked urgent: the agent carries them out outside its maintenance windows too.
 * A rollout may cap how many devices governed by its assignment install at the same time:
 * a check-in whose plan installs or updates such a product first takes one of the slots (a
 * serialized compare-and-set in the store); without one, those steps wait for a later
 * check-in, and a device finishing its install nudges the waiting ones.
 */
import { BatchWriter } from './batch-writer.ts';
import type { Logger } from 'pino';
import {
  DEPLOYMENT_TASK_NAME,
  DEPLOYMENT_TASK_TYPE,
  BUILTIN_PRODUCT,
  type DeploymentAssign,
  type ComplianceSummary,
  type DeploymentComplianceItem,
  type DeploymentCompliancePage,
  type DeploymentComplianceQuery,
  type DeploymentListQuery,
  type Page,
  type DeploymentAssignmentView,
  type EffectiveDeployment,
  type DeploymentInstruction,
  type Inventory,
  type RolloutState,
  type RunEvent,
} from '@garrison/protocol';
import {
  compareVersions,
  decideRollout,
  effectiveAssignments,
  eligibleInPhase,
  planDeployment,
  productVersionSchemes,
  rolloutPhases,
  type CandidatePackage,
  type DeploymentAssignment,
} from '@garrison/core';
import { AppError, notFound } from '../errors.ts';
import { decodeCursor, encodeCursor, pageLimit, pageOf } from '../paging.ts';
import type { Clock } from '../clock.ts';
import type { DeploymentStore, Assignment, DeviceProductUpdate } from '../storage/deployment-store.ts';
import type { DeviceStore } from '../storage/device-store.ts';
import type { PackageStore } from '../storage/package-store.ts';
import { authorize, inReach, notVisible, Permission, reachList, reachOf, type Actor } from './actor.ts';
import type { Catalog } from './catalog.ts';
import type { EventService } from './event-service.ts';
import type { TaskService } from './task-service.ts';
import type { DomainBus } from './domain-bus.ts';

const STATE_FLUSH_MS = 500;
/** A device given capped install steps stops counting as installing after this long without news. */
export const INSTALL_SLOT_TIMEOUT_MS = 30 * 60_000;
/** How many waiting devices one finished install nudges, per free slot. */
const NUDGE_PER_SLOT = 4;

export class DeploymentService {
  readonly #store: DeploymentStore;
  readonly #packages: PackageStore;
  readonly #catalog: Catalog;
  readonly #clock: Clock;
  readonly #events: EventService;
  readonly #log: Logger;
  #assignments: Assignment[] = [];
  #candidates: CandidatePackage[] = [];
  /**
   * Rollout state by "group\nproduct", as this instance last read or wrote it. Every change
   * is a compare-and-set in the store (startRollout, advanceRollout): other instances change
   * rollouts too, and the one that loses a race reads them all again instead of writing.
   */
  #rollouts = new Map<string, Omit<RolloutState, 'phases'>>();
  #pending = new Map<string, DeviceProductUpdate>();
  #stale = new Map<string, string[]>();
  /** The products each device's last plan had steps for, to show them "installing" while its deployment task runs. */
  #planned = new Map<string, { product: string; installedVersion: string | null; targetVersion: string | null }[]>();
  /** The products of each device's last plan, so that stale states are deleted only when that set changes. */
  #lastProducts = new Map<string, string>();
  readonly #stateWriter = new BatchWriter<{ updates: DeviceProductUpdate[]; stale: [string, string[]][] }>({
    delayMs: STATE_FLUSH_MS,
    take: () => {
      if (!this.#pending.size && !this.#stale.size) return undefined;
      const batch = { updates: [...this.#pending.values()], stale: [...this.#stale.entries()] };
      this.#pending.clear();
      this.#stale.clear();
      return batch;
    },
    write: async ({ updates, stale }) => {
      const at = this.#clock.now().toISOString();
      // Results (compliant/failed from the agent) overwrite; a plan's "pending" keeps a failure visible.
      await this.#store.putStates(updates.filter((u) => u.state !== 'pending'), at, false);
      await this.#store.putStates(updates.filter((u) => u.state === 'pending'), at, true);
      // One statement per set of products kept (after a failover, thousands of devices keep the same ones).
      const byKept = new Map<string, { keep: string[]; deviceIds: string[] }>();
      for (const [deviceId, keep] of stale) {
        const key = [...keep].sort().join('\n');
        const same = byKept.get(key);
        if (same) same.deviceIds.push(deviceId);
        else byKept.set(key, { keep, deviceIds: [deviceId] });
      }
      for (const { keep, deviceIds } of byKept.values()) await this.#store.deleteStates(deviceIds, keep);
    },
    onError: (err) => this.#log.error({ err }, 'storing deployment states failed'),
  });

  /** Package ids each device may download: those its latest plans named and those it reported installed. */
  readonly #offered = new Map<string, { current: Set<string>; previous: Set<string> }>();
  readonly #devices: Pick<DeviceStore, 'getDevice'>;

  readonly #bus: DomainBus;

  constructor(deps: { store: DeploymentStore; packages: PackageStore; devices: Pick<DeviceStore, 'getDevice'>; catalog: Catalog; clock: Clock; events: EventService; log: Logger; bus: DomainBus }) {
    this.#bus = deps.bus;
    this.#store = deps.store;
    this.#packages = deps.packages;
    this.#devices = deps.devices;
    this.#catalog = deps.catalog;
    this.#clock = deps.clock;
    this.#events = deps.events;
    this.#log = deps.log;
  }
  /** Devices whose plan changed check in now, on every instance (which reloads assignments and rollouts first). */
  #changed(deviceIds: string[]): void {
    this.#bus.publish({ type: 'deployments.changed', deviceIds });
  }
  async load(): Promise<void> {
    this.#assignments = await this.#store.listAssignments();
    await this.#reloadRollouts();
    await this.reloadPackages();
  }
  async #reloadRollouts(): Promise<void> {
    this.#rollouts = new Map((await this.#store.listRollouts()).map((r) => [`${r.groupId}\n${r.product}`, r.state]));
  }
  /** Rollout starts still being stored (flush() waits for them, so an evaluation sees them). */
  readonly #starting = new Set<Promise<void>>();
  /**
   * Stores the start of a rollout this instance's plan met first. The plan is computed
   * synchronously at check-in, so the start is written in the background; the in-memory state
   * holds devices at once. Only the instance whose write wins announces the start (event, and
   * `deployments.changed` so that the others read it); a loser reads the winner's rollout
   * (its startedAt) instead.
   */
  #startRollout(a: Assignment & { rollout: NonNullable<Assignment['rollout']> }, r: Omit<RolloutState, 'phases'>): void {
    const p = (async () => {
      if (await this.#store.startRollout(a.groupId, a.product, r)) {
        this.#events.record({ severity: 'info', kind: 'deployment.rollout-started', message: `rollout of ${a.product} ${r.targetVersion} started on "${this.#catalog.tree.path(a.groupId)}" (phases ${rolloutPhases(a.rollout).join(', ')})`, groupId: a.groupId, product: a.product });
        this.#changed([]);
      } else {
        await this.#reloadRollouts();
      }
    })()
      .catch((err: unknown) => this.#log.error({ err, groupId: a.groupId, product: a.product }, 'storing the start of a rollout failed'))
      .finally(() => this.#starting.delete(p));
    this.#starting.add(p);
  }
  #reloading: Promise<void> = Promise.resolve();
  /** Reloads the packages; reloads run one after another, so an older read never overwrites a newer one. */
  reloadPackages(): Promise<void> {
    this.#reloading = this.#reloading.catch(() => {}).then(() => this.#loadPackages());
    return this.#reloading;
  }
  async #loadPackages(): Promise<void> {
    this.#candidates = (await this.#packages.list()).map((p) => ({
      id: p.id,
      product: p.product,
      version: p.version,
      branch: p.branch,
      platforms: p.platforms,
      manifest: p.manifest,
      sha256: p.sha256,
      signature: p.signature,
    }));
  }

  /** The built-in "Initial deployment / update" task on the root group, created once. */
  async ensureDeploymentTask(tasks: TaskService, actor: Actor, rootId: string): Promise<void> {
    if (this.#catalog.tasks.some((t) => t.product === BUILTIN_PRODUCT && t.type === DEPLOYMENT_TASK_TYPE)) return;
    await tasks.create(actor, {
      name: DEPLOYMENT_TASK_NAME,
      description: 'Installs and updates the products assigned to the device’s group, at enrolment and at every check-in.',
      product: BUILTIN_PRODUCT,
      type: DEPLOYMENT_TASK_TYPE,
      settings: {},
      schedule: { triggers: [{ type: 'enrolment' }, { type: 'check-in' }] },
      scope: { type: 'group', groupId: rootId, includeSubgroups: true },
    });
  }

  #view(a: Assignment): DeploymentAssignmentView {
    const r = this.#rollouts.get(`${a.groupId}\n${a.product}`);
    return { ...a, groupPath: this.#catalog.tree.path(a.groupId), rolloutState: a.rollout && r ? { ...r, phases: rolloutPhases(a.rollout) } : null };
  }
  /** Assignments set on groups the caller reads. */
  list(actor: Actor, groupId?: string): DeploymentAssignmentView[] {
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    return this.#assignments.filter((a) => inReach(reach, a.groupId) && (!groupId || a.groupId === groupId)).map((a) => this.#view(a));
  }
  /** The same, a page at a time, by group path and product. */
  page(actor: Actor, q: DeploymentListQuery = {}): Page<DeploymentAssignmentView> {
    const tree = this.#catalog.tree;
    return pageOf(this.list(actor, q.groupId), { key: (a) => [tree.path(a.groupId), a.product, a.groupId] }, q);
  }
  #visibleGroup(actor: Actor, groupId: string): void {
    if (!this.#catalog.group(groupId) || !inReach(reachOf(actor, Permission.read, this.#catalog.tree), groupId)) throw notVisible('group', groupId);
  }
  /** What applies to a group: its own assignments and those inherited from its ancestors. */
  effective(actor: Actor, groupId: string): EffectiveDeployment[] {
    this.#visibleGroup(actor, groupId);
    return effectiveAssignments(groupId, this.#catalog.tree, this.#assignments).map((a) => ({
      ...this.#view(this.#assignments.find((x) => x.groupId === a.inheritedFrom && x.product === a.product)!),
      inheritedFrom: a.inheritedFrom,
    }));
  }
  async assign(actor: Actor, groupId: string, input: DeploymentAssign): Promise<DeploymentAssignmentView> {
    this.#visibleGroup(actor, groupId);
    authorize(actor, Permission.manageDeployments, this.#catalog.tree, [groupId]);
    if (input.pinnedVersion && !this.#candidates.some((p) => p.product === input.product && p.version === input.pinnedVersion)) {
      throw new AppError('VALIDATION_FAILED', `${input.product} ${input.pinnedVersion} is not in the repository`);
    }
    if ((input.action ?? 'install') === 'install' && !this.#candidates.some((p) => p.product === input.product)) {
      throw new AppError('NOT_FOUND', `the repository has no package of product "${input.product}"`);
    }
    if (input.rollout?.pilotGroupId && !this.#catalog.group(input.rollout.pilotGroupId)) throw notFound('pilot group', input.rollout.pilotGroupId);
    const now = this.#clock.now().toISOString();
    const existing = this.#assignments.find((a) => a.groupId === groupId && a.product === input.product);
    const a: Assignment = {
      groupId,
      product: input.product,
      branch: input.branch ?? existing?.branch ?? 'current',
      pinnedVersion: input.pinnedVersion === undefined ? (existing?.pinnedVersion ?? null) : input.pinnedVersion,
      action: input.action ?? existing?.action ?? 'install',
      removeConflicts: input.removeConflicts ?? existing?.removeConflicts ?? false,
      rollout: input.rollout === undefined ? (existing?.rollout ?? null) : input.rollout,
      urgent: input.urgent ?? existing?.urgent ?? false,
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    };
    await this.#store.putAssignment(a);
    // A changed rollout (or branch) starts over with the next version the branch brings.
    if (JSON.stringify(a.rollout) !== JSON.stringify(existing?.rollout ?? null) || a.branch !== existing?.branch || a.pinnedVersion !== existing?.pinnedVersion) {
      this.#rollouts.delete(`${groupId}\n${a.product}`);
      await this.#store.deleteRollout(groupId, a.product);
    }
    this.#assignments = await this.#store.listAssignments();
    await this.#events.audit(actor, 'deployment.assigned', `${a.product} (${a.action}, ${a.pinnedVersion ? `pinned ${a.pinnedVersion}` : `branch ${a.branch}`}${a.urgent ? ', urgent' : ''}) assigned to "${this.#catalog.tree.path(groupId)}"`, {
      groupId,
      product: a.product,
      data: { ...a },
    });
    this.#changed(this.#catalog.devicesInGroups(this.#catalog.tree.descendants(groupId)));
    return this.#view(a);
  }
  async unassign(actor: Actor, groupId: string, product: string): Promise<void> {
    this.#visibleGroup(actor, groupId);
    authorize(actor, Permission.manageDeployments, this.#catalog.tree, [groupId]);
    if (!(await this.#store.deleteAssignment(groupId, product))) throw new AppError('NOT_FOUND', `${product} is not assigned to group ${groupId}`);
    this.#assignments = await this.#store.listAssignments();
    await this.#events.audit(actor, 'deployment.unassigned', `${product} unassigned from "${this.#catalog.tree.path(groupId)}"`, { groupId, product });
    this.#changed(this.#catalog.devicesInGroups(this.#catalog.tree.descendants(groupId)));
  }
  /** After the repository changed: devices whose assignments name the product check in now. */
  async repositoryChanged(product: string): Promise<void> {
    await this.reloadPackages();
    const groups = new Set<string>();
    for (const a of this.#assignments) if (a.product === product || this.#candidates.some((c) => c.product === product && c.manifest.contentFor === a.product)) for (const g of this.#catalog.tree.descendants(a.groupId)) groups.add(g);
    if (groups.size) this.#changed(this.#catalog.devicesInGroups(groups));
  }

  /**
   * The packages matching what the inventory says is installed, of products assigned to the
   * device's group (a device may fetch those again, to repair). The inventory is the device's
   * own word, so it only ever opens packages of the device's own deployments.
   */
  #installedPackages(inventory: Inventory, assigned: readonly { product: string }[]): string[] {
    const products = new Set(assigned.map((a) => a.product));
    const have = new Set(inventory.products.filter((p) => products.has(p.id)).map((p) => `${p.id}\n${p.version}`));
    return this.#candidates.filter((c) => have.has(`${c.product}\n${c.version}`)).map((c) => c.id);
  }
  #offer(deviceId: string, ids: Iterable<string>): void {
    const prev = this.#offered.get(deviceId);
    this.#offered.set(deviceId, { current: new Set(ids), previous: prev?.current ?? new Set() });
  }
  /**
   * A device downloads only packages its deployment plan names or that it has installed (of
   * its own deployments). The
   * plans of this instance are remembered; a device planned by another instance is planned
   * again here from its stored inventory.
   */
  async assertMayDownload(deviceId: string, packageId: string): Promise<void> {
    const o = this.#offered.get(deviceId);
    if (o && (o.current.has(packageId) || o.previous.has(packageId))) return;
    const d = await this.#devices.getDevice(deviceId);
    if (d) {
      const inventory = { hostname: d.hostname, osPlatform: d.osPlatform, osName: d.osName, osVersion: d.osVersion, arch: d.arch, addresses: d.addresses, agentVersion: d.agentVersion, timeZone: d.timeZone, products: d.products };
      const effective = effectiveAssignments(d.groupId, this.#catalog.tree, this.#assignments);
      const plan = effective.length ? planDeployment({ assignments: effective, installed: d.products.map((p) => ({ id: p.id, version: p.version })), packages: this.#candidates, platform: d.osPlatform, arch: d.arch }) : null;
      const ids = [...(plan?.steps ?? []).flatMap((st) => (st.action === 'install' ? [st.package.id] : [])), ...this.#installedPackages(inventory, effective)];
      if (ids.includes(packageId)) return;
    }
    throw new AppError('NOT_ASSIGNED', `package ${packageId} is not in this device's deployment plan`);
  }

  /**
   * The device's deployment steps now; records its per-product state (batched). Synchronous
   * unless a step installs a product whose assignment caps concurrent installs: then the
   * answer is a promise, settled once the slots are taken or refused in the store.
   */
  planFor(deviceId: string, groupId: string, inventory: Inventory): DeploymentInstruction[] | undefined | Promise<DeploymentInstruction[] | undefined> {
    const assignments: DeploymentAssignment[] = this.#assignments;
    const effective = effectiveAssignments(groupId, this.#catalog.tree, assignments);
    if (effective.length === 0) {
      this.#offer(deviceId, []);
      this.#forget(deviceId, []);
      return undefined;
    }
    const plan = planDeployment({
      assignments: effective,
      installed: inventory.products.map((p) => ({ id: p.id, version: p.version })),
      packages: this.#candidates,
      platform: inventory.osPlatform,
      arch: inventory.arch,
    });
    const held = this.#holdForRollout(deviceId, groupId, effective, plan);
    const capped = this.#cappedSteps(effective, plan, held);
    if (capped.size === 0) return this.#finishPlan(deviceId, inventory, effective, plan, held, new Set());
    return this.#takeSlots(deviceId, capped, plan, held).then((slotted) => this.#finishPlan(deviceId, inventory, effective, plan, held, slotted));
  }

  /** The install steps (not held by a rollout) of products whose assignment caps concurrent installs, with that assignment. */
  #cappedSteps(effective: ReturnType<typeof effectiveAssignments>, plan: ReturnType<typeof planDeployment>, held: Map<string, string>): Map<string, Assignment & { cap: number }> {
    const out = new Map<string, Assignment & { cap: number }>();
    for (const step of plan.steps) {
      if (step.action !== 'install' || held.has(step.product)) continue;
      const own = this.#ownAssignment(effective, step.product);
      const cap = own?.rollout?.maxConcurrentInstalls;
      if (own && cap) out.set(step.product, { ...own, cap });
    }
    return out;
  }
  #ownAssignment(effective: ReturnType<typeof effectiveAssignments>, product: string): Assignment | undefined {
    const a = effective.find((x) => x.product === product);
    return a && this.#assignments.find((x) => x.groupId === a.inheritedFrom && x.product === a.product);
  }

  /** Devices governed by an assignment (it is their effective one for the product), cached per catalog generation. */
  readonly #governedCache = new Map<string, { generation: number; assignments: Assignment[]; ids: string[] }>();
  #governed(a: Pick<Assignment, 'groupId' | 'product'>): string[] {
    const key = `${a.groupId}\n${a.product}`;
    const hit = this.#governedCache.get(key);
    if (hit && hit.generation === this.#catalog.generation && hit.assignments === this.#assignments) return hit.ids;
    const ids = this.#catalog
      .devicesInGroups(this.#catalog.tree.descendants(a.groupId))
      .filter((id) => effectiveAssignments(this.#catalog.device(id)!.groupId, this.#catalog.tree, this.#assignments).find((x) => x.product === a.product)?.inheritedFrom === a.groupId);
    this.#governedCache.set(key, { generation: this.#catalog.generation, assignments: this.#assignments, ids });
    return ids;
  }

  /**
   * Takes an install slot per capped product for the device; a product without a free slot
   * is held (the device stays pending and asks again at a later check-in). The states still
   * queued are written first, so that no older "pending" of this device lands over the slot.
   */
  async #takeSlots(deviceId: string, capped: Map<string, Assignment & { cap: number }>, plan: ReturnType<typeof planDeployment>, held: Map<string, string>): Promise<Set<string>> {
    for (const product of capped.keys()) this.#pending.delete(`${deviceId}\n${product}`);
    await this.#stateWriter.flush();
    const now = this.#clock.now();
    const slotted = new Set<string>();
    for (const [product, a] of capped) {
      const p = plan.products.find((x) => x.product === product);
      try {
        const r = await this.#store.takeInstallSlot({
          lockKey: `${a.groupId}\n${product}`,
          deviceIds: this.#governed(a),
          cap: a.cap,
          since: new Date(now.getTime() - INSTALL_SLOT_TIMEOUT_MS).toISOString(),
          at: now.toISOString(),
          state: { deviceId, product, state: 'installing', installedVersion: p?.installedVersion ?? null, targetVersion: p?.targetVersion ?? null },
        });
        if (r.taken) slotted.add(product);
        else held.set(product, `waiting: ${r.installing} device${r.installing === 1 ? '' : 's'} of the group ${r.installing === 1 ? 'is' : 'are'} installing (at most ${a.cap} at once)`);
      } catch (err) {
        this.#log.error({ err, deviceId, product }, 'taking an install slot failed');
        held.set(product, 'waiting: the install slots could not be counted');
      }
    }
    // A step that needs a held product (a dependency) waits with it.
    for (const step of plan.steps) {
      if (step.action !== 'install' || held.has(step.product)) continue;
      const dep = step.package.manifest.dependencies?.find((d) => held.has(d.product) && capped.has(d.product));
      if (dep) held.set(step.product, `waiting for ${dep.product} (${held.get(dep.product)})`);
    }
    return slotted;
  }

  /** Records what the plan (less the held steps) means for the device and turns it into instructions. */
  #finishPlan(deviceId: string, inventory: Inventory, effective: ReturnType<typeof effectiveAssignments>, plan: ReturnType<typeof planDeployment>, held: Map<string, string>, slotted: Set<string>): DeploymentInstruction[] {
    this.#offer(deviceId, [...plan.steps.flatMap((st) => (st.action === 'install' && !held.has(st.product) ? [st.package.id] : [])), ...this.#installedPackages(inventory, effective)]);
    const stepped = new Set(plan.steps.filter((x) => !(x.action === 'install' && held.has(x.product))).map((x) => x.product));
    this.#planned.set(
      deviceId,
      plan.products.filter((p) => stepped.has(p.product)).map((p) => ({ product: p.product, installedVersion: p.installedVersion, targetVersion: p.targetVersion })),
    );
    for (const p of plan.products) {
      // A slot taken is already stored as "installing".
      if (slotted.has(p.product)) continue;
      const why = held.get(p.product);
      if (why) Object.assign(p, { state: 'pending', detail: why });
      this.#pending.set(`${deviceId}\n${p.product}`, {
        deviceId,
        product: p.product,
        state: p.state,
        installedVersion: p.installedVersion,
        targetVersion: p.targetVersion,
        detail: p.detail ?? null,
      });
    }
    this.#forget(deviceId, plan.products.map((p) => p.product));
    this.#arm();
    return plan.steps.filter((s) => !(s.action === 'install' && held.has(s.product))).map((s) =>
      s.action === 'install'
        ? {
            action: 'install',
            product: s.product,
            version: s.version,
            fromVersion: s.fromVersion,
            reason: s.reason,
            package: { id: s.package.id, product: s.package.product, version: s.package.version, sha256: s.package.sha256, signature: s.package.signature, manifest: s.package.manifest },
            ...(s.urgent ? { urgent: true } : {}),
          }
        : { action: 'uninstall', product: s.product, version: null, fromVersion: s.fromVersion, reason: s.reason, ...(s.urgent ? { urgent: true } : {}) },
    );
  }

  /**
   * Staged rollout: an update to the version a rollout is spreading waits until the device's
   * phase opens (or is held while the rollout is halted). New installs are not held: a device
   * without the product gets the branch's version as before.
   */
  #holdForRollout(deviceId: string, groupId: string, effective: ReturnType<typeof effectiveAssignments>, plan: ReturnType<typeof planDeployment>): Map<string, string> {
    const held = new Map<string, string>();
    for (const step of plan.steps) {
      if (step.action !== 'install' || step.reason !== 'older') continue;
      const a = effective.find((x) => x.product === step.product);
      const own = a && this.#assignments.find((x) => x.groupId === a.inheritedFrom && x.product === a.product);
      if (!own?.rollout) continue;
      const key = `${own.groupId}\n${own.product}`;
      let r = this.#rollouts.get(key);
      if (!r || r.targetVersion !== step.version) {
        const now = this.#clock.now().toISOString();
        r = { targetVersion: step.version, phase: 0, state: 'active', reason: null, startedAt: now, updatedAt: now };
        this.#rollouts.set(key, r);
        this.#startRollout({ ...own, rollout: own.rollout }, r);
      }
      if (r.state === 'completed') continue;
      const inPilot = !!own.rollout.pilotGroupId && this.#catalog.tree.isAncestorOrSelf(own.rollout.pilotGroupId, groupId);
      if (r.state === 'halted') held.set(step.product, `rollout of ${step.version} halted: ${r.reason ?? ''}`.trim());
      else if (!eligibleInPhase(own.rollout, r.phase, { id: deviceId, inPilot })) held.set(step.product, `waiting for the rollout of ${step.version} (phase ${rolloutPhases(own.rollout)[r.phase]})`);
    }
    return held;
  }

  /**
   * Moves rollouts on: counts, among the devices the assignment governs, who runs the new
   * version and whose install failed; then waits, opens the next phase, completes, or halts
   * past the failure threshold. Runs in a background loop.
   */
  async evaluateRollouts(): Promise<void> {
    await this.flush();
    const schemes = productVersionSchemes(this.#candidates);
    for (const a of this.#assignments) {
      if (!a.rollout || a.action !== 'install') continue;
      const key = `${a.groupId}\n${a.product}`;
      const r = this.#rollouts.get(key);
      if (!r || r.state !== 'active') continue;
      const scheme = schemes.get(a.product);
      const devices = this.#governed(a).map((id) => this.#catalog.device(id)!);
      const states = new Map((await this.#store.listStates({ deviceIds: devices.map((d) => d.id), product: a.product })).map((s) => [s.deviceId, s]));
      let eligible = 0;
      let eligibleDone = 0;
      let succeeded = 0;
      let failed = 0;
      for (const d of devices) {
        const st = states.get(d.id);
        const done = !!st && st.installedVersion !== null && compareVersions(st.installedVersion, r.targetVersion, scheme) === 0;
        const fail = !!st && st.state === 'failed' && st.targetVersion === r.targetVersion;
        if (done) succeeded++;
        if (fail) failed++;
        const inPilot = !!a.rollout.pilotGroupId && this.#catalog.tree.isAncestorOrSelf(a.rollout.pilotGroupId, d.groupId);
        if (eligibleInPhase(a.rollout, r.phase, { id: d.id, inPilot })) {
          eligible++;
          if (done) eligibleDone++;
        }
      }
      const decision = decideRollout(a.rollout, r.phase, { eligible, eligibleDone, succeeded, failed });
      if (decision.action === 'wait') continue;
      const now = this.#clock.now().toISOString();
      const phases = rolloutPhases(a.rollout);
      const next: Omit<RolloutState, 'phases'> =
        decision.action === 'halt'
          ? { ...r, state: 'halted', reason: decision.reason, updatedAt: now }
          : decision.action === 'complete'
            ? { ...r, state: 'completed', updatedAt: now }
            : { ...r, phase: r.phase + 1, updatedAt: now };
      if (!(await this.#store.advanceRollout(a.groupId, a.product, r, next))) {
        // Another instance moved this rollout on (or restarted it) since this one read it: take
        // its state and leave the announcement to it; the next round evaluates from there.
        await this.#reloadRollouts();
        continue;
      }
      this.#rollouts.set(key, next);
      const where = `"${this.#catalog.tree.path(a.groupId)}"`;
      this.#events.record(
        decision.action === 'halt'
          ? { severity: 'error', kind: 'deployment.rollout-halted', message: `rollout of ${a.product} ${r.targetVersion} on ${where} halted: ${decision.reason}`, groupId: a.groupId, product: a.product }
          : decision.action === 'complete'
            ? { severity: 'info', kind: 'deployment.rollout-completed', message: `rollout of ${a.product} ${r.targetVersion} on ${where} completed`, groupId: a.groupId, product: a.product }
            : { severity: 'info', kind: 'deployment.rollout-advanced', message: `rollout of ${a.product} ${r.targetVersion} on ${where} moved to phase ${phases[next.phase]}`, groupId: a.groupId, product: a.product },
      );
      // A halt holds devices that are waiting anyway: the other instances only need to read it.
      this.#changed(decision.action === 'halt' ? [] : devices.map((d) => d.id));
    }
  }

  /** Resumes a halted rollout (after a fixed package is checked in, or the failures understood). */
  async resumeRollout(actor: Actor, groupId: string, product: string): Promise<DeploymentAssignmentView> {
    this.#visibleGroup(actor, groupId);
    authorize(actor, Permission.manageDeployments, this.#catalog.tree, [groupId]);
    const a = this.#assignments.find((x) => x.groupId === groupId && x.product === product);
    const key = `${groupId}\n${product}`;
    const r = this.#rollouts.get(key);
    if (!a || !r) throw new AppError('NOT_FOUND', `no rollout of ${product} on group ${groupId}`);
    if (r.state !== 'halted') throw new AppError('CONFLICT', `the rollout is ${r.state}, not halted`);
    const next = { ...r, state: 'active' as const, reason: null, updatedAt: this.#clock.now().toISOString() };
    if (!(await this.#store.advanceRollout(groupId, product, r, next))) {
      // Resumed through another instance meanwhile, or restarted with a new version: say so.
      await this.#reloadRollouts();
      const now = this.#rollouts.get(key);
      throw new AppError('CONFLICT', now ? `the rollout changed meanwhile: it is ${now.state} (${now.targetVersion})` : 'the rollout changed meanwhile: it is gone');
    }
    this.#rollouts.set(key, next);
    await this.#events.audit(actor, 'deployment.rollout-resumed', `rollout of ${product} ${r.targetVersion} on "${this.#catalog.tree.path(groupId)}" resumed`, { groupId, product });
    this.#changed(this.#catalog.devicesInGroups(this.#catalog.tree.descendants(groupId)));
    return this.#view(a);
  }

  #forget(deviceId: string, products: string[]): void {
    const key = [...products].sort().join('\n');
    if (this.#lastProducts.get(deviceId) === key) return;
    this.#lastProducts.set(deviceId, key);
    this.#stale.set(deviceId, products);
    this.#arm();
  }

  /** The device's deployment task started: the products of its plan are now installing. */
  markInstalling(deviceId: string): void {
    for (const p of this.#planned.get(deviceId) ?? []) {
      this.#pending.set(`${deviceId}\n${p.product}`, { deviceId, product: p.product, state: 'installing', installedVersion: p.installedVersion, targetVersion: p.targetVersion });
    }
    this.#arm();
  }

  /** Results of the deployment task's steps, from its run events. */
  recordResults(deviceId: string, events: readonly RunEvent[]): void {
    const finished = new Set<string>();
    for (const e of events) {
      const d = (e.data ?? {}) as { product?: unknown; version?: unknown; exitCode?: unknown; outputTail?: unknown };
      if (typeof d.product !== 'string') continue;
      const version = typeof d.version === 'string' ? d.version : null;
      const exitCode = typeof d.exitCode === 'number' ? d.exitCode : null;
      const outputTail = typeof d.outputTail === 'string' ? d.outputTail.slice(-4096) : null;
      if (e.kind === 'deployment.installed' || e.kind === 'deployment.failed' || e.kind === 'deployment.refused') finished.add(d.product);
      if (e.kind === 'deployment.installed') this.#pending.set(`${deviceId}\n${d.product}`, { deviceId, product: d.product, state: 'compliant', installedVersion: version, targetVersion: version });
      else if (e.kind === 'deployment.uninstalled') this.#pending.set(`${deviceId}\n${d.product}`, { deviceId, product: d.product, state: 'compliant', installedVersion: null, targetVersion: null });
      else if (e.kind === 'deployment.failed' || e.kind === 'deployment.refused') {
        this.#pending.set(`${deviceId}\n${d.product}`, { deviceId, product: d.product, state: 'failed', installedVersion: null, targetVersion: version, exitCode, detail: e.message, outputTail });
      }
    }
    this.#arm();
    if (finished.size) this.#nudgeWaiting(deviceId, finished);
  }

  /**
   * A device finished installing capped products: once its result is stored (the slot free),
   * the devices of the assignment still waiting for a slot are told to check in, on every
   * instance, instead of waiting for their next interval. A few per slot, not all: each of
   * them takes a slot or waits again.
   */
  #nudgeWaiting(deviceId: string, products: Set<string>): void {
    const groupId = this.#catalog.device(deviceId)?.groupId;
    if (!groupId) return;
    const effective = effectiveAssignments(groupId, this.#catalog.tree, this.#assignments);
    const capped = [...products].flatMap((product) => {
      const own = this.#ownAssignment(effective, product);
      return own?.rollout?.maxConcurrentInstalls ? [{ ...own, cap: own.rollout.maxConcurrentInstalls }] : [];
    });
    if (!capped.length) return;
    void (async () => {
      await this.flush();
      const ids = new Set<string>();
      for (const a of capped) {
        const waiting = await this.#store.listStates({ deviceIds: this.#governed(a).filter((id) => id !== deviceId), product: a.product, state: 'pending' });
        for (const st of waiting.filter((x) => x.detail?.startsWith('waiting')).slice(0, a.cap * NUDGE_PER_SLOT)) ids.add(st.deviceId);
      }
      if (ids.size) this.#changed([...ids]);
    })().catch((err: unknown) => this.#log.error({ err, deviceId }, 'nudging the devices waiting for an install slot failed'));
  }

  #arm(): void {
    this.#stateWriter.schedule();
  }
  async flush(): Promise<void> {
    await Promise.all([...this.#starting]);
    await this.#stateWriter.flush();
  }

  /** The per-product summary of compliance over all devices, counted by the database (no device rows). */
  /** The per-product summary of compliance over the devices the caller reads, counted by the database (no device rows). */
  async complianceSummary(actor: Actor): Promise<ComplianceSummary[]> {
    await this.flush();
    return summarize(await this.#store.countStates(reachList(reachOf(actor, Permission.read, this.#catalog.tree))));
  }
  /**
   * A page of device-product rows (by product, then device id; keyset, read by the database) of
   * the devices the caller reads, in a group's subtree when given, and the per-product summary
   * over every row of the group and product filter (not the state filter: it counts each state).
   */
  async compliance(actor: Actor, q: DeploymentComplianceQuery = {}): Promise<DeploymentCompliancePage> {
    await this.flush();
    const tree = this.#catalog.tree;
    const reach = reachOf(actor, Permission.read, tree);
    let groupIds = reachList(reach);
    if (q.groupId) {
      this.#visibleGroup(actor, q.groupId);
      groupIds = tree.descendants(q.groupId).filter((g) => inReach(reach, g));
    }
    const after = decodeCursor(q.cursor, 2);
    if (after && !after.every((k) => typeof k === 'string')) {
      throw new AppError('VALIDATION_FAILED', 'cursor is not one this list gave: pass the nextCursor of the previous page unchanged', { issues: [{ path: '/cursor', message: 'not a cursor of this list' }] });
    }
    const limit = pageLimit(q);
    const [{ rows, total }, counts] = await Promise.all([
      this.#store.pageStates({
        ...(groupIds ? { groupIds } : {}),
        ...(q.product ? { product: q.product } : {}),
        ...(q.state ? { state: q.state } : {}),
        ...(q.search ? { search: q.search } : {}),
        ...(after ? { after: after as [string, string] } : {}),
        limit: limit + 1,
      }),
      this.#store.countStates(groupIds, q.product),
    ]);
    const items: DeploymentComplianceItem[] = rows.slice(0, limit).map((s) => ({ ...s, deviceName: this.#catalog.device(s.deviceId)?.name ?? s.deviceId }));
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeCursor([last.product, last.deviceId]) : null, total, summary: summarize(counts) };
  }

}

/** Adds up device-product states (each counting `n` devices, 1 when absent) per product. */
function summarize(rows: Iterable<{ product: string; state: string; installedVersion: string | null; n?: number }>): ComplianceSummary[] {
  const byProduct = new Map<string, ComplianceSummary>();
  for (const r of rows) {
    const n = r.n ?? 1;
    const sum = byProduct.get(r.product) ?? { product: r.product, states: {}, versions: {} };
    sum.states[r.state] = (sum.states[r.state] ?? 0) + n;
    const v = r.installedVersion ?? 'not installed';
    sum.versions[v] = (sum.versions[v] ?? 0) + n;
    byProduct.set(r.product, sum);
  }
  return [...byProduct.values()];
}
