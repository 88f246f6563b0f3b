/**
 * The effective policy of a device, with the origin of every value (PRODUCT.md "Policy",
 * ADR 0020). Pure: the group tree, the policies, the assignments and the device's facts
 * come in; nothing is read or stored.
 *
 * Rules, for one product, along the device's chain of groups from the root down:
 * - Start from the policy type's defaults (origin "default").
 * - At each group with a policy assigned for the product, the policy's settings replace the
 *   values so far, then each of its profiles active on the device (its condition matches;
 *   ascending priority, ties by id) replaces them in turn. A policy sets only some settings;
 *   the others stay as inherited.
 * - A group that blocks inheritance for the product starts again from the defaults: the
 *   policies above it no longer give values, except their locked settings.
 * - A setting locked at a group (by its policy or by one of its active profiles) is frozen
 *   for everything below that group: a child policy or profile that sets it is recorded in
 *   `overridden` and not used, and a blocking group cannot escape it. Within the group that
 *   locks it, a later layer (a profile) may still change its value: the lock applies below.
 * - Above a blocking group, a group's locked settings come down with the values that group
 *   gives them (its policy and active profiles together).
 * - A lock is honoured only on a lockable setting; a setting the type does not know is
 *   ignored; a lock must come with a value from the same policy (the server refuses all three
 *   when a policy is saved: policyShapeProblems).
 *
 * The revision is a digest of the effective values and locks, so an agent and the server
 * agree whether a device has what it should, whatever the policies' own revisions.
 */
import type { AgentProductPolicy, EffectiveProductPolicy, EffectiveSetting, PolicyProfile, SettingOrigin } from '@garrison/protocol';
import { compileSelection, type DeviceFacts, type DeviceMatcher, type GroupTree } from './effective-tasks.ts';

export interface PolicyTypeFacts {
  product: string;
  /** Complete: every setting the type has, with its default. */
  defaults: Readonly<Record<string, unknown>>;
  /** The settings that may be locked; null: all of them. */
  lockable: readonly string[] | null;
}

export interface PolicyFacts {
  id: string;
  name: string;
  product: string;
  revision: number;
  settings: Readonly<Record<string, unknown>>;
  locked: readonly string[];
  profiles: readonly PolicyProfile[];
}

export interface PolicyAssignmentFacts {
  groupId: string;
  product: string;
  policyId: string | null;
  blockInheritance: boolean;
}

interface Layer {
  origin: SettingOrigin;
  settings: Readonly<Record<string, unknown>>;
  locked: readonly string[];
  /** null: always active (the policy itself). */
  matches: DeviceMatcher | null;
}

interface CompiledPolicy {
  policy: PolicyFacts;
  /** The base layer first, then the enabled profiles by ascending priority. */
  layers: Layer[];
}

const DEFAULT_ORIGIN: SettingOrigin = { kind: 'default' };

/**
 * The policies and assignments of every product, indexed once for evaluating many devices
 * (a preview over the whole fleet, the check-ins of an instance).
 */
export class PolicyIndex {
  readonly #types = new Map<string, PolicyTypeFacts>();
  readonly #lockable = new Map<string, Set<string> | null>();
  readonly #policies = new Map<string, PolicyFacts>();
  /** product → groupId → assignment */
  readonly #assignments = new Map<string, Map<string, PolicyAssignmentFacts>>();
  /** `${groupId}\u0000${policyId}` → compiled layers (the origin names the group). */
  readonly #compiled = new Map<string, CompiledPolicy>();

  constructor(types: readonly PolicyTypeFacts[], policies: readonly PolicyFacts[], assignments: readonly PolicyAssignmentFacts[]) {
    for (const t of types) {
      this.#types.set(t.product, t);
      this.#lockable.set(t.product, t.lockable === null ? null : new Set(t.lockable));
    }
    for (const p of policies) this.#policies.set(p.id, p);
    for (const a of assignments) {
      let byGroup = this.#assignments.get(a.product);
      if (byGroup === undefined) this.#assignments.set(a.product, (byGroup = new Map()));
      byGroup.set(a.groupId, a);
    }
  }

  /** The products that have a policy type, sorted. */
  products(): string[] {
    return [...this.#types.keys()].sort();
  }

  policy(id: string): PolicyFacts | undefined {
    return this.#policies.get(id);
  }

  assignment(groupId: string, product: string): PolicyAssignmentFacts | undefined {
    return this.#assignments.get(product)?.get(groupId);
  }

  /** The groups a policy is assigned to. */
  groupsOf(policyId: string): string[] {
    const out: string[] = [];
    for (const byGroup of this.#assignments.values()) for (const a of byGroup.values()) if (a.policyId === policyId) out.push(a.groupId);
    return out;
  }

  #compile(groupId: string, policy: PolicyFacts): CompiledPolicy {
    const key = `${groupId}\u0000${policy.id}`;
    const known = this.#compiled.get(key);
    if (known !== undefined && known.policy === policy) return known;
    const base: SettingOrigin = { kind: 'policy', policyId: policy.id, policyName: policy.name, revision: policy.revision, groupId };
    const layers: Layer[] = [{ origin: base, settings: policy.settings, locked: policy.locked, matches: null }];
    const profiles = policy.profiles.filter((p) => p.enabled).sort((a, b) => a.priority - b.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const p of profiles) {
      layers.push({
        origin: { kind: 'profile', policyId: policy.id, policyName: policy.name, revision: policy.revision, groupId, profileId: p.id, profileName: p.name },
        settings: p.settings,
        locked: p.locked,
        matches: compileSelection(p.condition),
      });
    }
    const compiled = { policy, layers };
    this.#compiled.set(key, compiled);
    return compiled;
  }

  /** The device's effective policy for one product; null when the product has no policy type. */
  effective(device: DeviceFacts, product: string, tree: GroupTree): EffectiveProductPolicy | null {
    const type = this.#types.get(product);
    if (type === undefined) return null;
    const lockable = this.#lockable.get(product) ?? null;
    const byGroup = this.#assignments.get(product);
    const chain = tree.ancestors(device.groupId).reverse(); // root first
    if (chain.length === 0) chain.push(device.groupId);
    // The nearest group (to the device) that blocks inheritance: above it, only locks count.
    let blockAt = 0;
    for (let i = chain.length - 1; i > 0; i--) {
      if (byGroup?.get(chain[i]!)?.blockInheritance) {
        blockAt = i;
        break;
      }
    }
    const settings: Record<string, EffectiveSetting & { lockLevel: number }> = {};
    for (const [key, value] of Object.entries(type.defaults)) settings[key] = { value: structuredClone(value), origin: DEFAULT_ORIGIN, lockedBy: null, overridden: [], lockLevel: -1 };
    const active: EffectiveProductPolicy['profiles'] = [];

    for (let level = 0; level < chain.length; level++) {
      const assignment = byGroup?.get(chain[level]!);
      if (assignment?.policyId == null) continue;
      const policy = this.#policies.get(assignment.policyId);
      if (policy === undefined || policy.product !== product) continue;
      const inherited = level >= blockAt;
      const layers = this.#compile(assignment.groupId, policy).layers.filter((layer) => layer.matches === null || layer.matches(device));
      const locksOf = (layer: Layer) => layer.locked.filter((k) => Object.hasOwn(settings, k) && (lockable === null || lockable.has(k)));
      // What this group locks, by its policy and its active profiles together: above a blocking
      // group these settings still come down, with the values this group gives them.
      const levelLocks = new Set(layers.flatMap(locksOf));
      for (const layer of layers) {
        if (layer.origin.kind === 'profile') active.push({ policyId: policy.id, profileId: layer.origin.profileId, profileName: layer.origin.profileName });
        for (const [key, value] of Object.entries(layer.settings)) {
          const s = settings[key];
          if (s === undefined) continue; // not a setting of this type
          // Above a blocking group only locked settings come down.
          if (!inherited && !levelLocks.has(key)) continue;
          if (s.lockedBy !== null && s.lockLevel < level) {
            s.overridden.push({ origin: layer.origin, value: structuredClone(value) });
            continue;
          }
          s.value = structuredClone(value);
          s.origin = layer.origin;
        }
        for (const key of locksOf(layer)) {
          const s = settings[key]!;
          if (s.lockedBy !== null && s.lockLevel < level) continue; // an ancestor's lock stands
          s.lockedBy = layer.origin;
          s.lockLevel = level;
        }
      }
    }
    const out: Record<string, EffectiveSetting> = {};
    for (const key of Object.keys(settings).sort()) {
      const { lockLevel: _, ...s } = settings[key]!;
      out[key] = s;
    }
    return { product, revision: policyRevision(out), settings: out, profiles: active };
  }

  /** Every product's effective policy for the device, sorted by product. */
  effectiveAll(device: DeviceFacts, tree: GroupTree): EffectiveProductPolicy[] {
    const out: EffectiveProductPolicy[] = [];
    for (const product of this.products()) {
      const e = this.effective(device, product, tree);
      if (e !== null) out.push(e);
    }
    return out;
  }
}

/** The form the agent receives: values and the names of the locked settings. */
export function agentPolicy(e: EffectiveProductPolicy): AgentProductPolicy {
  const settings: Record<string, unknown> = {};
  const locked: string[] = [];
  for (const [key, s] of Object.entries(e.settings)) {
    settings[key] = s.value;
    if (s.lockedBy !== null) locked.push(key);
  }
  return { product: e.product, revision: e.revision, settings, locked };
}

/** An etag over a device's policies of every product (what a check-in compares). */
export function policiesEtag(policies: readonly { product: string; revision: string }[]): string {
  return digest(policies.map((p) => `${p.product}=${p.revision}`).join('\n'));
}

export interface SettingChange {
  setting: string;
  before: unknown;
  after: unknown;
  lockedBefore: boolean;
  lockedAfter: boolean;
}

/** What differs between two effective policies of the same product, by setting. */
export function policyChanges(before: EffectiveProductPolicy | null, after: EffectiveProductPolicy | null): SettingChange[] {
  const keys = new Set([...Object.keys(before?.settings ?? {}), ...Object.keys(after?.settings ?? {})]);
  const out: SettingChange[] = [];
  for (const key of [...keys].sort()) {
    const b = before?.settings[key];
    const a = after?.settings[key];
    const lockedBefore = b?.lockedBy != null;
    const lockedAfter = a?.lockedBy != null;
    if (canonicalJson(b?.value) !== canonicalJson(a?.value) || lockedBefore !== lockedAfter) out.push({ setting: key, before: b?.value, after: a?.value, lockedBefore, lockedAfter });
  }
  return out;
}

/**
 * What is wrong with a policy's shape for its type, beyond each value's schema: settings the
 * type does not have, locks on settings that cannot be locked or are unknown, duplicate
 * profile ids. As sentences; empty when it is fine.
 */
export function policyShapeProblems(type: PolicyTypeFacts, policy: { settings: Readonly<Record<string, unknown>>; locked: readonly string[]; profiles: readonly PolicyProfile[] }): string[] {
  const problems: string[] = [];
  const known = new Set(Object.keys(type.defaults));
  const lockable = type.lockable === null ? known : new Set(type.lockable);
  // A lock freezes a value this policy gives (in the layer itself, or for a profile in its
  // policy): locking an inherited value would lock whatever a blocking group below starts from.
  const check = (where: string, settings: Readonly<Record<string, unknown>>, locked: readonly string[], base?: Readonly<Record<string, unknown>>) => {
    for (const key of Object.keys(settings)) if (!known.has(key)) problems.push(`${where}: "${key}" is not a setting of ${type.product}`);
    for (const key of locked) {
      if (!known.has(key)) problems.push(`${where}: cannot lock "${key}": it is not a setting of ${type.product}`);
      else if (!lockable.has(key)) problems.push(`${where}: "${key}" cannot be locked`);
      else if (!Object.hasOwn(settings, key) && !(base !== undefined && Object.hasOwn(base, key))) problems.push(`${where}: cannot lock "${key}" without setting it`);
    }
    if (new Set(locked).size !== locked.length) problems.push(`${where}: a setting is locked twice`);
  };
  check('policy', policy.settings, policy.locked);
  const ids = new Set<string>();
  for (const p of policy.profiles) {
    if (ids.has(p.id)) problems.push(`profile "${p.id}" appears twice`);
    ids.add(p.id);
    check(`profile "${p.name}"`, p.settings, p.locked, policy.settings);
  }
  return problems;
}

/** JSON with object keys sorted, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  if (value === undefined) return 'undefined';
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

function policyRevision(settings: Record<string, EffectiveSetting>): string {
  const parts: string[] = [];
  for (const [key, s] of Object.entries(settings)) parts.push(`${key}${s.lockedBy === null ? '=' : '!='}${canonicalJson(s.value)}`);
  return digest(parts.join('\n'));
}

/**
 * A 64-bit digest (two FNV-1a 32-bit hashes with different offsets) as 16 hex digits: for
 * telling policies apart, not for security (core has no I/O and runs in the browser too).
 */
function digest(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x01000193) >>> 0;
    b = (b ^ (b >>> 13)) >>> 0;
  }
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}

export interface PolicyDriftItem {
  setting: string;
  expected: unknown;
  found: unknown;
  action: 'restored' | 'kept-local';
  /** Found changed at this application (false: a local change that already stood). */
  fresh: boolean;
}

/**
 * On the device: what to put in force, given the product's configuration as `found` now.
 * `previous` is the last successful application: the administrator's values then
 * (`policy`) and what the agent put on the device (`applied`, with the local changes that
 * stood); null the first time, when the policy is simply applied.
 * - A setting found equal to the policy is left.
 * - Locked, and found different: put back (`restored`).
 * - Changed by the administrator since (policy value differs from previous.policy): the new
 *   value is applied; if the local user had changed it too, that is `restored` drift.
 * - Otherwise, found different from the policy: a local change to an unlocked setting, which
 *   stands (`kept-local`), until the administrator changes that setting.
 * A setting the product does not report (absent from `found`) is applied.
 * `drifted` is true when something was found changed since the last application.
 */
export function reconcilePolicy(
  policy: { settings: Readonly<Record<string, unknown>>; locked: readonly string[] },
  previous: { policy: Readonly<Record<string, unknown>>; applied: Readonly<Record<string, unknown>> } | null,
  found: Readonly<Record<string, unknown>>,
): { target: Record<string, unknown>; drift: PolicyDriftItem[]; drifted: boolean } {
  const locked = new Set(policy.locked);
  const target: Record<string, unknown> = {};
  const drift: PolicyDriftItem[] = [];
  const same = (a: unknown, b: unknown) => canonicalJson(a) === canonicalJson(b);
  for (const [key, wanted] of Object.entries(policy.settings)) {
    target[key] = structuredClone(wanted);
    if (!Object.hasOwn(found, key) || same(found[key], wanted) || previous === null) continue;
    const have = found[key];
    const fresh = !Object.hasOwn(previous.applied, key) || !same(have, previous.applied[key]);
    const adminChanged = !Object.hasOwn(previous.policy, key) || !same(wanted, previous.policy[key]);
    if (locked.has(key) || adminChanged) {
      // Put back, or replaced by the administrator's new value. Drift when the user had changed
      // it since, or when a new lock ends a local change that stood (the administrator's value unchanged).
      if (fresh || !adminChanged) drift.push({ setting: key, expected: wanted, found: have, action: 'restored', fresh });
      continue;
    }
    target[key] = structuredClone(have);
    drift.push({ setting: key, expected: wanted, found: have, action: 'kept-local', fresh });
  }
  return { target, drift, drifted: drift.some((d) => d.fresh) };
}
