/**
 * Product deployment: which products a device should have (inherited down the group tree),
 * and the plan that takes it there from what it reports as installed — pure functions of the
 * assignments, the installed products, the repository and the device's platform.
 *
 * Assignments. A group assigns a product with a branch (current, previous, evaluation), an
 * optional pinned version, an action (install or remove) and whether to remove the
 * manifest's conflicting products first. A device's effective assignment of a product is the
 * one of the nearest group on the path from its group up to the root, so a subgroup overrides
 * its ancestors product by product (switching branch, pinning, or removing). Deployment
 * follows the tree as it is: a group's blockInheritance (which stops inherited *tasks*) does
 * not apply here; a subgroup that wants something else assigns it (or a 'remove').
 *
 * Versions. A product's versions are ordered by the version scheme its packages name
 * (manifest.versionScheme, default semver; the repository keeps one scheme per product): the
 * installed version a device reports, pinned versions and a dependency's minVersion too. An
 * installed version that does not parse under that scheme is still ordered (compareVersions
 * is total) and the product's state says so in its detail.
 *
 * Target. A pinned version is installed exactly (whatever its branch, or none); otherwise the
 * newest package (compareVersions) of the assignment's branch built for the device's
 * platform. When several packages tie on version, the most specific platform wins
 * (linux-x64 over linux-* over any), then the package id. No package → 'unavailable'.
 *
 * Compare with installed: missing → install; older → install; equal → compliant; newer →
 * left alone (an evaluation build installed by hand is not downgraded to current), except
 * when the assignment asks for it: branch 'previous' is a rollback, a pinned version is
 * exact, and both downgrade.
 *
 * Dependencies (manifest.dependencies; definitions packages depend implicitly on the product
 * they are content for). A dependency counts as satisfied by the version the device will
 * have after the plan: the version this plan installs, else the installed one (a product
 * assigned for removal satisfies nothing). An unsatisfied dependency that no assignment
 * covers is added from the branch of the product that needs it (reason 'dependency'), if the
 * newest package there meets minVersion. A dependency with its own assignment is never
 * overridden: if that assignment does not give a satisfying version, the dependant is
 * 'unavailable' rather than the administrator's choice being silently changed. Resolution is
 * a depth-first walk over products being installed, so chains resolve and a cycle is found
 * when the walk meets a product still on its stack; the products of the cycle are
 * 'unavailable', as is anything that needs an unavailable product. Dependencies added for a
 * product that then turns out unavailable are dropped from the plan.
 *
 * Order. All uninstalls come before all installs: first conflicts (for assignments with
 * removeConflicts — the competitor removal that runs first in the Sophos sequence), then
 * products assigned for removal. Installs are topological (dependencies first), ties broken
 * by manifest.order (default 100) and then product id, so manifests saying updater 10,
 * management 20, security application 30, optional 40+ give the seed's order.
 *
 * Safety rules: a product is never both installed and uninstalled; conflict removal never
 * uninstalls a product that an install assignment targets, that this plan installs, or
 * whose installed version satisfies a dependency of this plan (it is kept, with a detail).
 * Conflicts are removed also for a product already compliant (a competitor installed later
 * is still removed), which makes that product 'pending' until it is gone.
 *
 * Urgency. The agent holds steps outside the device's maintenance windows unless they are
 * urgent. A step is urgent when the assignment it serves is: an urgent assignment's own
 * install or removal, the dependencies it brings (a dependency needed by an urgent product is
 * urgent, whoever else needs it) and the conflicts its product removes. Steps carry
 * `urgent: true` only then, so plans without urgent assignments are unchanged.
 *
 * Trade-offs. A dependency that several products on different branches need comes from the
 * branch of the first of them by product id (assigned products are walked in product-id
 * order); a later dependant whose minVersion it does not meet is 'unavailable' instead of
 * the plan searching for a version that suits everyone. Uninstalls are ordered by product
 * id, not by reverse dependency, because the device reports installed products without
 * their manifests. Dependencies are checked only for products this plan installs: a
 * compliant product is not re-validated. Duplicate assignments of one product (bad data)
 * are reduced to one deterministically, install before remove. The output does not depend
 * on the order of any input list.
 */
import { DEFAULT_VERSION_SCHEME, platformMatches, type PackageManifest, type VersionScheme } from '@garrison/protocol';
import type { GroupTree } from './effective-tasks.ts';
import { compareVersions, parseVersion, versionSchemeOf } from './version.ts';

export type DeploymentBranch = 'current' | 'previous' | 'evaluation';

/** A product assigned to a group. */
export interface DeploymentAssignment {
  groupId: string;
  product: string;
  branch: DeploymentBranch;
  /** Install exactly this version (it must exist in the repository). */
  pinnedVersion: string | null;
  /** 'remove': uninstall the product from devices of this group (and below). */
  action: 'install' | 'remove';
  /** Uninstall the manifest's conflicting products first. */
  removeConflicts: boolean;
  /** Its steps ignore the device's maintenance windows (absent: false). */
  urgent?: boolean;
}

export interface EffectiveAssignment extends DeploymentAssignment {
  /** The group that set it. */
  inheritedFrom: string;
}

/** A package of the repository, as deployment sees it. */
export interface CandidatePackage {
  id: string;
  product: string;
  version: string;
  branch: DeploymentBranch | null;
  platforms: string[];
  manifest: PackageManifest;
  sha256: string;
  signature: string;
}

/** A product the device reports as installed. */
export interface InstalledProductFact {
  id: string;
  version: string;
}

export type InstallReason = 'missing' | 'older' | 'rollback' | 'pinned' | 'dependency';
export type UninstallReason = 'unassigned' | 'conflict';

export type DeploymentStep =
  | { action: 'install'; product: string; fromVersion: string | null; version: string; reason: InstallReason; package: CandidatePackage; urgent?: true }
  | { action: 'uninstall'; product: string; fromVersion: string; reason: UninstallReason; urgent?: true };

export interface ProductPlanState {
  product: string;
  state: 'compliant' | 'pending' | 'unavailable';
  installedVersion: string | null;
  targetVersion: string | null;
  detail?: string;
}

export interface DeploymentPlan {
  steps: DeploymentStep[];
  products: ProductPlanState[];
}

export const DEFAULT_INSTALL_ORDER = 100;

// ---------------------------------------------------------------------------------------------
// Effective assignments
// ---------------------------------------------------------------------------------------------

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A total order on assignments of one product, used to reduce duplicates deterministically. */
function compareAssignments(a: DeploymentAssignment, b: DeploymentAssignment): number {
  if (a.action !== b.action) return a.action === 'install' ? -1 : 1;
  return (
    compareStrings(a.groupId, b.groupId) ||
    compareStrings(a.branch, b.branch) ||
    compareStrings(a.pinnedVersion ?? '', b.pinnedVersion ?? '') ||
    (a.removeConflicts === b.removeConflicts ? 0 : a.removeConflicts ? -1 : 1) ||
    (!!a.urgent === !!b.urgent ? 0 : a.urgent ? -1 : 1)
  );
}

/**
 * For each product, the assignment of the nearest group on the path from the device's group
 * up to the root (a subgroup overrides its ancestors). Sorted by product; empty for a group
 * not in the tree.
 */
export function effectiveAssignments(groupId: string, tree: GroupTree, assignments: readonly DeploymentAssignment[]): EffectiveAssignment[] {
  const rank = new Map<string, number>();
  tree.ancestors(groupId).forEach((id, i) => rank.set(id, i));
  const best = new Map<string, { a: DeploymentAssignment; rank: number }>();
  for (const a of assignments) {
    const r = rank.get(a.groupId);
    if (r === undefined) continue;
    const current = best.get(a.product);
    if (current === undefined || r < current.rank || (r === current.rank && compareAssignments(a, current.a) < 0)) {
      best.set(a.product, { a, rank: r });
    }
  }
  return [...best.values()]
    .map(({ a }) => ({
      groupId: a.groupId,
      product: a.product,
      branch: a.branch,
      pinnedVersion: a.pinnedVersion,
      action: a.action,
      removeConflicts: a.removeConflicts,
      ...(a.urgent ? { urgent: true } : {}),
      inheritedFrom: a.groupId,
    }))
    .sort((x, y) => compareStrings(x.product, y.product));
}

// ---------------------------------------------------------------------------------------------
// Version schemes
// ---------------------------------------------------------------------------------------------

/**
 * The version scheme of each product, from its packages' manifests. The repository refuses a
 * package whose scheme differs from its product's others; should stored data disagree anyway,
 * the package with the smallest id decides, so the answer does not depend on list order.
 */
export function productVersionSchemes(packages: readonly { id: string; product: string; manifest: Pick<PackageManifest, 'versionScheme'> }[]): Map<string, VersionScheme> {
  const decider = new Map<string, { id: string; scheme: VersionScheme }>();
  for (const p of packages) {
    const seen = decider.get(p.product);
    if (seen === undefined || p.id < seen.id) decider.set(p.product, { id: p.id, scheme: versionSchemeOf(p.manifest) });
  }
  return new Map([...decider].map(([product, d]) => [product, d.scheme]));
}

// ---------------------------------------------------------------------------------------------
// Planning
// ---------------------------------------------------------------------------------------------

interface PlanNode {
  product: string;
  origin: 'assigned' | 'dependency' | 'remove';
  branch: DeploymentBranch;
  removeConflicts: boolean;
  /** From an urgent assignment, or a dependency of one. */
  urgent: boolean;
  installed: string | null;
  target: CandidatePackage | null;
  reason: InstallReason | null;
  state: ProductPlanState['state'];
  details: string[];
  /** 0 not visited, 1 on the walk's stack, 2 done. */
  visit: 0 | 1 | 2;
  /** Products of this plan to install before this one. */
  needs: PlanNode[];
  /** Installed products (not touched by the plan) that satisfy a dependency of this one. */
  reliesOn: string[];
}

interface Dependency {
  product: string;
  minVersion?: string;
}

/** How well a package's platform list fits: exact platform-arch 2, platform-* 1, any 0. */
function platformSpecificity(pkg: CandidatePackage, platform: string, arch: string): number {
  let best = -1;
  for (const p of pkg.platforms) {
    if (p === `${platform}-${arch}`) best = Math.max(best, 2);
    else if (p === `${platform}-*`) best = Math.max(best, 1);
    else if (p === 'any') best = Math.max(best, 0);
  }
  return best;
}

function installOrder(node: PlanNode): number {
  return node.target?.manifest.order ?? DEFAULT_INSTALL_ORDER;
}

/** Declared dependencies plus, for definitions, the product they are content for. Sorted. */
function dependenciesOf(manifest: PackageManifest): Dependency[] {
  const deps: Dependency[] = (manifest.dependencies ?? []).map((d) => (d.minVersion === undefined ? { product: d.product } : { product: d.product, minVersion: d.minVersion }));
  if (manifest.kind === 'definitions' && manifest.contentFor !== undefined && !deps.some((d) => d.product === manifest.contentFor)) {
    deps.push({ product: manifest.contentFor });
  }
  return deps.sort((a, b) => compareStrings(a.product, b.product) || compareStrings(a.minVersion ?? '', b.minVersion ?? ''));
}

/**
 * The plan that brings a device from `installed` to its effective assignments: uninstall
 * steps (conflicts, then removals), then install steps in dependency order, and one state per
 * product. See the module comment for the rules.
 */
export function planDeployment(input: {
  assignments: readonly EffectiveAssignment[];
  installed: readonly InstalledProductFact[];
  packages: readonly CandidatePackage[];
  platform: string;
  arch: string;
}): DeploymentPlan {
  const { platform, arch } = input;
  const platformName = `${platform}-${arch}`;
  const schemes = productVersionSchemes(input.packages);
  const schemeOf = (product: string) => schemes.get(product) ?? DEFAULT_VERSION_SCHEME;
  /** Orders two versions of one product by its scheme. */
  const compare = (product: string, a: string, b: string) => compareVersions(a, b, schemeOf(product));

  // Installed products; a product reported twice counts at its newest version.
  const installed = new Map<string, string>();
  for (const fact of input.installed) {
    const seen = installed.get(fact.id);
    if (seen === undefined || compare(fact.id, fact.version, seen) > 0) installed.set(fact.id, fact.version);
  }

  const packagesOf = new Map<string, CandidatePackage[]>();
  for (const pkg of input.packages) {
    let list = packagesOf.get(pkg.product);
    if (list === undefined) packagesOf.set(pkg.product, (list = []));
    list.push(pkg);
  }
  const fits = (pkg: CandidatePackage) => platformMatches(pkg.platforms, platform, arch);
  /** Newest first, then the most specific platform, then the package id. */
  const byPreference = (a: CandidatePackage, b: CandidatePackage) =>
    compare(a.product, b.version, a.version) || platformSpecificity(b, platform, arch) - platformSpecificity(a, platform, arch) || compareStrings(a.id, b.id);
  const newestInBranch = (product: string, branch: DeploymentBranch): CandidatePackage | undefined =>
    (packagesOf.get(product) ?? []).filter((p) => p.branch === branch && fits(p)).sort(byPreference)[0];

  // One assignment per product.
  const assignmentOf = new Map<string, EffectiveAssignment>();
  for (const a of input.assignments) {
    const current = assignmentOf.get(a.product);
    if (current === undefined || compareAssignments(a, current) < 0) assignmentOf.set(a.product, a);
  }
  const assignments = [...assignmentOf.values()].sort((a, b) => compareStrings(a.product, b.product));

  const nodes = new Map<string, PlanNode>();
  const unavailable = (node: PlanNode, detail: string) => {
    if (node.state === 'unavailable') return;
    node.state = 'unavailable';
    node.reason = null;
    node.details = [detail];
  };

  // 1. Each assignment's target and what it means against the installed version.
  for (const a of assignments) {
    const have = installed.get(a.product) ?? null;
    const node: PlanNode = {
      product: a.product,
      origin: a.action === 'remove' ? 'remove' : 'assigned',
      branch: a.branch,
      removeConflicts: a.removeConflicts,
      urgent: a.urgent === true,
      installed: have,
      target: null,
      reason: null,
      state: 'compliant',
      details: [],
      visit: 0,
      needs: [],
      reliesOn: [],
    };
    nodes.set(a.product, node);
    if (a.action === 'remove') {
      node.state = have === null ? 'compliant' : 'pending';
      continue;
    }
    const pinned = a.pinnedVersion !== null && a.pinnedVersion.trim() !== '' ? a.pinnedVersion : null;
    const all = packagesOf.get(a.product) ?? [];
    if (pinned !== null) {
      const versions = all.filter((p) => compare(a.product, p.version, pinned) === 0);
      const usable = versions.filter(fits);
      if (versions.length === 0) {
        unavailable(node, `pinned version ${pinned} of ${a.product} is not in the repository`);
        continue;
      }
      if (usable.length === 0) {
        unavailable(node, `pinned version ${pinned} of ${a.product} has no package for ${platformName}`);
        continue;
      }
      // Exact spelling first, then the assignment's branch, then the usual preference.
      node.target = usable.sort(
        (x, y) =>
          Number(y.version === pinned) - Number(x.version === pinned) ||
          Number(y.branch === a.branch) - Number(x.branch === a.branch) ||
          byPreference(x, y),
      )[0];
    } else {
      const target = newestInBranch(a.product, a.branch);
      if (target === undefined) {
        const inBranch = all.some((p) => p.branch === a.branch);
        unavailable(node, inBranch ? `no package of ${a.product} in branch ${a.branch} for ${platformName}` : `no package of ${a.product} in branch ${a.branch}`);
        continue;
      }
      node.target = target;
    }
    const targetVersion = node.target.version;
    if (have === null) {
      node.state = 'pending';
      node.reason = 'missing';
    } else {
      const scheme = schemeOf(a.product);
      const parsed = parseVersion(have, scheme);
      if (!parsed.ok) node.details.push(`installed version ${have} is not a valid ${scheme} version (${parsed.error}); ordered by the ${scheme} rules as text`);
      const c = compareVersions(have, targetVersion, scheme);
      if (c < 0) {
        node.state = 'pending';
        node.reason = 'older';
      } else if (c > 0) {
        if (pinned !== null) {
          node.state = 'pending';
          node.reason = 'pinned';
        } else if (a.branch === 'previous') {
          node.state = 'pending';
          node.reason = 'rollback';
        } else {
          node.details.push('newer than the branch');
        }
      }
    }
  }

  // 2. Dependencies: a depth-first walk over the products being installed.
  const stack: PlanNode[] = [];
  const satisfies = (product: string, version: string | null, min: string | undefined) => version !== null && (min === undefined || compare(product, version, min) >= 0);

  const requireDependency = (node: PlanNode, dep: Dependency): string | null => {
    const name = dep.product;
    const need = dep.minVersion === undefined ? name : `${name} >= ${dep.minVersion}`;
    const have = installed.get(name) ?? null;
    let other = nodes.get(name);
    if (other?.origin === 'remove') return `dependency ${name} is assigned for removal`;
    if (other === undefined) {
      if (satisfies(name, have, dep.minVersion)) {
        node.reliesOn.push(name);
        return null;
      }
      const candidate = newestInBranch(name, node.branch);
      if (candidate === undefined) return `dependency ${need} has no package in branch ${node.branch} for ${platformName}`;
      if (!satisfies(name, candidate.version, dep.minVersion)) return `dependency ${need}: branch ${node.branch} has ${candidate.version}`;
      other = {
        product: name,
        origin: 'dependency',
        branch: node.branch,
        removeConflicts: false,
        urgent: false,
        installed: have,
        target: candidate,
        reason: 'dependency',
        state: 'pending',
        details: [],
        visit: 0,
        needs: [],
        reliesOn: [],
      };
      nodes.set(name, other);
    }
    if (other.state === 'pending') {
      if (other.visit === 1) {
        const cycle = stack.slice(stack.indexOf(other));
        const detail = `dependency cycle: ${[...cycle.map((n) => n.product), other.product].join(' → ')}`;
        for (const member of cycle) unavailable(member, detail);
        return detail;
      }
      visit(other);
    }
    if (other.state === 'pending') {
      const version = other.target!.version;
      if (!satisfies(name, version, dep.minVersion)) return `dependency ${need}: this plan installs ${name} ${version}`;
      node.needs.push(other);
      return null;
    }
    // The plan does not install it: what is installed stays.
    if (satisfies(name, have, dep.minVersion)) {
      node.reliesOn.push(name);
      return null;
    }
    if (other.state === 'unavailable') return `dependency ${name} is unavailable (${other.details.join('; ')})`;
    return have === null ? `dependency ${need} is not installed` : `dependency ${need}: ${name} ${have} is installed and assigned`;
  };

  const visit = (node: PlanNode): void => {
    if (node.visit !== 0 || node.state !== 'pending' || node.target === null) return;
    node.visit = 1;
    stack.push(node);
    for (const dep of dependenciesOf(node.target.manifest)) {
      if (node.state !== 'pending') break;
      const failure = requireDependency(node, dep);
      if (failure !== null) {
        unavailable(node, failure);
        break;
      }
    }
    stack.pop();
    node.visit = 2;
  };

  const assigned = [...nodes.values()]; // the assignments only, in product order
  for (const node of assigned) visit(node);

  // 3. Keep what a pending assignment still needs; dependencies inherit its removeConflicts and urgency.
  const kept = new Set<PlanNode>();
  const requiredBy = new Map<PlanNode, Set<string>>();
  for (const root of assigned) {
    if (root.origin !== 'assigned' || root.state !== 'pending') continue;
    kept.add(root);
    const reached = new Set<PlanNode>([root]);
    const todo = [root];
    while (todo.length > 0) {
      const n = todo.pop()!;
      for (const dep of n.needs) {
        if (dep.origin === 'dependency') {
          let by = requiredBy.get(dep);
          if (by === undefined) requiredBy.set(dep, (by = new Set()));
          by.add(n.product);
          if (root.removeConflicts) dep.removeConflicts = true;
          if (root.urgent) dep.urgent = true;
        }
        kept.add(dep);
        if (!reached.has(dep)) {
          reached.add(dep);
          todo.push(dep);
        }
      }
    }
  }
  for (const [product, node] of [...nodes]) if (node.origin === 'dependency' && !kept.has(node)) nodes.delete(product);
  for (const [node, by] of requiredBy) node.details.push(`required by ${[...by].sort().join(', ')}`);

  // 4. Conflicts, for install assignments (pending or compliant) and their dependencies.
  const protectedProducts = new Set<string>();
  for (const node of nodes.values()) if (node.origin === 'assigned' || kept.has(node)) protectedProducts.add(node.product);
  for (const node of kept) for (const p of node.reliesOn) protectedProducts.add(p);
  const conflictRemovals = new Map<string, string>();
  const urgentRemovals = new Set<string>();
  for (const node of [...nodes.values()].sort((a, b) => compareStrings(a.product, b.product))) {
    if (node.origin === 'remove' || node.state === 'unavailable' || node.target === null || !node.removeConflicts) continue;
    const removes: string[] = [];
    const keeps: string[] = [];
    for (const c of [...new Set(node.target.manifest.conflicts ?? [])].sort()) {
      const have = installed.get(c);
      if (c === node.product || have === undefined) continue;
      if (nodes.get(c)?.origin === 'remove') continue; // uninstalled by its own assignment
      if (protectedProducts.has(c)) {
        keeps.push(c);
        continue;
      }
      conflictRemovals.set(c, have);
      if (node.urgent) urgentRemovals.add(c);
      removes.push(c);
    }
    if (removes.length > 0) {
      node.details.push(`removes conflicting ${removes.join(', ')} first`);
      if (node.state === 'compliant') node.state = 'pending';
    }
    if (keeps.length > 0) node.details.push(`conflicting ${keeps.join(', ')} kept: needed by this deployment`);
  }

  // 5. Steps: uninstalls (conflicts, then removals), then installs in dependency order.
  const steps: DeploymentStep[] = [];
  const urgency = (urgent: boolean): { urgent?: true } => (urgent ? { urgent: true } : {});
  for (const product of [...conflictRemovals.keys()].sort()) {
    steps.push({ action: 'uninstall', product, fromVersion: conflictRemovals.get(product)!, reason: 'conflict', ...urgency(urgentRemovals.has(product)) });
  }
  for (const node of assigned) {
    if (node.origin === 'remove' && node.installed !== null) {
      steps.push({ action: 'uninstall', product: node.product, fromVersion: node.installed, reason: 'unassigned', ...urgency(node.urgent) });
    }
  }

  const installs = [...kept].filter((n) => n.state === 'pending' && n.reason !== null && n.target !== null);
  const waiting = new Map<PlanNode, number>();
  const dependants = new Map<PlanNode, PlanNode[]>();
  for (const n of installs) {
    const needs = [...new Set(n.needs)].filter((d) => installs.includes(d));
    waiting.set(n, needs.length);
    for (const d of needs) {
      let list = dependants.get(d);
      if (list === undefined) dependants.set(d, (list = []));
      list.push(n);
    }
  }
  const ready = installs.filter((n) => waiting.get(n) === 0);
  const before = (a: PlanNode, b: PlanNode) => installOrder(a) - installOrder(b) || compareStrings(a.product, b.product);
  while (ready.length > 0) {
    ready.sort(before);
    const n = ready.shift()!;
    steps.push({ action: 'install', product: n.product, fromVersion: n.installed, version: n.target!.version, reason: n.reason!, package: n.target!, ...urgency(n.urgent) });
    for (const d of dependants.get(n) ?? []) {
      const left = waiting.get(d)! - 1;
      waiting.set(d, left);
      if (left === 0) ready.push(d);
    }
  }
  // Cycles were made unavailable above; this only guards against a bug leaving one behind.
  for (const n of installs) if (waiting.get(n)! > 0) unavailable(n, 'dependency cycle');

  // 6. One state per assignment and per added dependency.
  const products: ProductPlanState[] = [...nodes.values()]
    .sort((a, b) => compareStrings(a.product, b.product))
    .map((n) => {
      const state: ProductPlanState = {
        product: n.product,
        state: n.state,
        installedVersion: n.installed,
        targetVersion: n.origin === 'remove' ? null : (n.target?.version ?? null),
      };
      if (n.details.length > 0) state.detail = n.details.join('; ');
      return state;
    });

  return { steps, products };
}
