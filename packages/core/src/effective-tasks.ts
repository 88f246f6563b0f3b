/**
 * Which tasks apply to which devices: the scope rules, as pure functions of the group tree,
 * the device's facts and the task's scope.
 *
 * Membership is never stored: a group task applies to whatever devices are in its groups when
 * it is evaluated, and a global selection is re-evaluated against current device facts. So a
 * device moved into a group, or one that starts reporting a tag, gets the task on the next
 * evaluation — there is nothing to copy or to forget to update.
 *
 * Rules:
 * - local: the one device named by the scope;
 * - group: devices of the task's group and, unless includeSubgroups is false, of its
 *   subgroups — except below a subgroup that blocks inheritance. A blocking group stops the
 *   tasks of its ancestors; its own tasks (and its descendants') still flow down from it, as
 *   in ePO's "break inheritance";
 * - global: devices listed by id, or matching the selection (either one suffices when both are
 *   given). A selection needs every criterion it gives; a scope (or selection) with nothing in
 *   it matches no device: an empty filter meaning "everything" would be a dangerous default
 *   for a tool that installs and runs software.
 *
 * Trade-offs: the two directions have different shapes. effectiveTasks (one device, many
 * tasks) computes the device's ancestor chain once and checks each task against it.
 * targetDevices (one task, up to 100,000 devices) first computes the set of groups the task
 * covers (one walk down the tree, pruned at blocking groups) and then filters devices by set
 * membership, so no per-device tree walks. The tree is trusted to be acyclic (wouldCycle is
 * there to keep it so); the walks still guard against cycles so bad data cannot hang them.
 */
import type { Scope, Selection } from '@garrison/protocol';

export interface GroupNode {
  id: string;
  parentId: string | null;
  name: string;
  /** This group does not inherit tasks assigned to its ancestors. */
  blockInheritance: boolean;
}

export const PATH_SEPARATOR = '/';

/** An immutable, indexed view of the group tree. */
export class GroupTree {
  readonly #nodes: Map<string, GroupNode>;
  readonly #children: Map<string, GroupNode[]>;
  readonly #roots: GroupNode[];

  constructor(nodes: readonly GroupNode[]) {
    this.#nodes = new Map();
    this.#children = new Map();
    this.#roots = [];
    for (const node of nodes) this.#nodes.set(node.id, node);
    for (const node of this.#nodes.values()) {
      if (node.parentId === null || !this.#nodes.has(node.parentId)) {
        this.#roots.push(node);
      } else {
        let list = this.#children.get(node.parentId);
        if (list === undefined) this.#children.set(node.parentId, (list = []));
        list.push(node);
      }
    }
  }

  get size(): number {
    return this.#nodes.size;
  }

  get(id: string): GroupNode | undefined {
    return this.#nodes.get(id);
  }

  /** Groups without a parent (normally exactly one: "My Organization"). */
  roots(): GroupNode[] {
    return [...this.#roots];
  }

  children(id: string): GroupNode[] {
    return [...(this.#children.get(id) ?? [])];
  }

  /** The group itself first, then its parent, … up to the root. Empty for an unknown id. */
  ancestors(id: string): string[] {
    const chain: string[] = [];
    const seen = new Set<string>();
    let node = this.#nodes.get(id);
    while (node !== undefined && !seen.has(node.id)) {
      seen.add(node.id);
      chain.push(node.id);
      node = node.parentId === null ? undefined : this.#nodes.get(node.parentId);
    }
    return chain;
  }

  /** Names from the root down, joined by "/": "My Organization/Servers/Web". "" if unknown. */
  path(id: string): string {
    return this.ancestors(id)
      .reverse()
      .map((g) => this.#nodes.get(g)!.name)
      .join(PATH_SEPARATOR);
  }

  /** The group at a path of names from the root (exact names; surrounding slashes ignored). */
  findByPath(path: string): GroupNode | undefined {
    const names = path.split(PATH_SEPARATOR);
    while (names.length > 0 && names[0] === '') names.shift();
    while (names.length > 0 && names[names.length - 1] === '') names.pop();
    if (names.length === 0) return undefined;
    let level: readonly GroupNode[] = this.#roots;
    let found: GroupNode | undefined;
    for (const name of names) {
      found = level.find((g) => g.name === name);
      if (found === undefined) return undefined;
      level = this.#children.get(found.id) ?? [];
    }
    return found;
  }

  /** The group itself and every group below it. Empty for an unknown id. */
  descendants(id: string): string[] {
    return this.#walkDown(id, () => true);
  }

  /** True when `ancestorId` is `id` or one of its ancestors. */
  isAncestorOrSelf(ancestorId: string, id: string): boolean {
    return this.ancestors(id).includes(ancestorId);
  }

  /** Would making `newParentId` the parent of `groupId` create a cycle? */
  wouldCycle(groupId: string, newParentId: string | null): boolean {
    if (newParentId === null) return false;
    return this.isAncestorOrSelf(groupId, newParentId);
  }

  /**
   * The groups a group task covers: its own group, plus (with subgroups) every group below it
   * reached without passing through a group that blocks inheritance.
   */
  coveredGroups(groupId: string, includeSubgroups = true): Set<string> {
    if (!this.#nodes.has(groupId)) return new Set();
    if (!includeSubgroups) return new Set([groupId]);
    return new Set(this.#walkDown(groupId, (child) => !child.blockInheritance));
  }

  /** Pre-order walk from `id`, descending into a child only when `enter(child)` says so. */
  #walkDown(id: string, enter: (child: GroupNode) => boolean): string[] {
    if (!this.#nodes.has(id)) return [];
    const out: string[] = [];
    const seen = new Set<string>();
    const stack = [id];
    while (stack.length > 0) {
      const current = stack.pop()!;
      if (seen.has(current)) continue;
      seen.add(current);
      out.push(current);
      const kids = this.#children.get(current);
      if (kids === undefined) continue;
      for (let i = kids.length - 1; i >= 0; i--) if (enter(kids[i])) stack.push(kids[i].id);
    }
    return out;
  }
}

export interface DeviceFacts {
  id: string;
  groupId: string;
  name: string;
  hostname: string;
  osPlatform: string;
  osName: string;
  tags: readonly string[];
  products: readonly string[];
}

export interface TaskFacts {
  id: string;
  scope: Scope;
}

// ---------------------------------------------------------------------------------------------
// Glob and selection matching
// ---------------------------------------------------------------------------------------------

/**
 * Case-insensitive glob: `*` any run of characters (also none), `?` exactly one character,
 * everything else literal. Linear-time two-pointer matcher (no regular expression, so no
 * pathological backtracking on hostile patterns).
 */
export function globMatch(pattern: string, text: string): boolean {
  return globMatchChars(Array.from(pattern.toLowerCase()), Array.from(text.toLowerCase()));
}

function globMatchChars(p: readonly string[], t: readonly string[]): boolean {
  let pi = 0;
  let ti = 0;
  let starP = -1;
  let starT = 0;
  while (ti < t.length) {
    if (pi < p.length && (p[pi] === '?' || (p[pi] !== '*' && p[pi] === t[ti]))) {
      pi++;
      ti++;
    } else if (pi < p.length && p[pi] === '*') {
      starP = pi++;
      starT = ti;
    } else if (starP !== -1) {
      pi = starP + 1;
      ti = ++starT;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
}

export type DeviceMatcher = (device: DeviceFacts) => boolean;

const NEVER: DeviceMatcher = () => false;

/** Compiles a selection once (lower-casing, splitting the glob) for use on many devices. */
export function compileSelection(selection: Selection | undefined): DeviceMatcher {
  if (selection === undefined) return NEVER;
  const checks: DeviceMatcher[] = [];
  if (selection.tags !== undefined && selection.tags.length > 0) {
    const wanted = selection.tags.map((t) => t.toLowerCase());
    checks.push((d) => {
      const have = new Set(d.tags.map((t) => t.toLowerCase()));
      return wanted.every((t) => have.has(t));
    });
  }
  if (selection.os !== undefined && selection.os.length > 0) {
    const oses = new Set(selection.os.map((o) => o.toLowerCase()));
    checks.push((d) => oses.has(d.osPlatform.toLowerCase()) || oses.has(d.osName.toLowerCase()));
  }
  if (selection.namePattern !== undefined && selection.namePattern !== '') {
    const pattern = Array.from(selection.namePattern.toLowerCase());
    checks.push(
      (d) => globMatchChars(pattern, Array.from(d.name.toLowerCase())) || globMatchChars(pattern, Array.from(d.hostname.toLowerCase())),
    );
  }
  if (selection.product !== undefined && selection.product !== '') {
    const product = selection.product;
    checks.push((d) => d.products.includes(product));
  }
  if (checks.length === 0) return NEVER;
  return (d) => checks.every((check) => check(d));
}

/** True when the device matches every criterion the selection gives (an empty one: never). */
export function selectionMatches(selection: Selection, device: DeviceFacts): boolean {
  return compileSelection(selection)(device);
}

// ---------------------------------------------------------------------------------------------
// Scope evaluation
// ---------------------------------------------------------------------------------------------

/**
 * Does a group task assigned to `taskGroupId` reach a device whose group's ancestor chain
 * (self first) is `chain`?
 */
function groupReaches(taskGroupId: string, includeSubgroups: boolean, chain: readonly string[], tree: GroupTree): boolean {
  const index = chain.indexOf(taskGroupId);
  if (index < 0) return false;
  if (index === 0) return true;
  if (!includeSubgroups) return false;
  // Groups strictly below the task's group, down to and including the device's group.
  for (let i = 0; i < index; i++) if (tree.get(chain[i])?.blockInheritance) return false;
  return true;
}

function scopeApplies(scope: Scope, device: DeviceFacts, chain: readonly string[], tree: GroupTree): boolean {
  switch (scope.type) {
    case 'local':
      return scope.deviceId === device.id;
    case 'group':
      return groupReaches(scope.groupId, scope.includeSubgroups !== false, chain, tree);
    case 'global':
      if (scope.deviceIds?.includes(device.id)) return true;
      return compileSelection(scope.selection)(device);
    default:
      return false;
  }
}

/** Does the task's scope include the device? */
export function taskAppliesTo(task: TaskFacts, device: DeviceFacts, tree: GroupTree): boolean {
  const chain = task.scope.type === 'group' ? tree.ancestors(device.groupId) : [];
  return scopeApplies(task.scope, device, chain, tree);
}

/** The tasks that apply to a device, in the order given. */
export function effectiveTasks<T extends TaskFacts>(device: DeviceFacts, tasks: readonly T[], tree: GroupTree): T[] {
  const chain = tree.ancestors(device.groupId);
  return tasks.filter((task) => scopeApplies(task.scope, device, chain, tree));
}

/** A reusable predicate for one task over many devices (sets and matchers built once). */
export function compileTaskScope(task: TaskFacts, tree: GroupTree): (device: DeviceFacts) => boolean {
  const scope = task.scope;
  switch (scope.type) {
    case 'local': {
      const id = scope.deviceId;
      return (d) => d.id === id;
    }
    case 'group': {
      const groups = tree.coveredGroups(scope.groupId, scope.includeSubgroups !== false);
      return (d) => groups.has(d.groupId);
    }
    case 'global': {
      const ids = new Set(scope.deviceIds ?? []);
      const selection = compileSelection(scope.selection);
      return (d) => ids.has(d.id) || selection(d);
    }
    default:
      return NEVER;
  }
}

/** The devices a task applies to, in the order given. Linear in the number of devices. */
export function targetDevices<D extends DeviceFacts>(task: TaskFacts, devices: readonly D[], tree: GroupTree): D[] {
  const applies = compileTaskScope(task, tree);
  return devices.filter(applies);
}
