/**
 * Authorization rules, pure (ADR 0013). An administrator holds grants, each a set of
 * permissions on one group subtree. `Access` answers the two questions every service asks:
 * may the caller do P on these groups (writes), and which groups may it do P on at all
 * (the filter every list, count and export applies, as Fleet's team filter does).
 *
 * Decisions are made against the group tree as it is now: a grant on a group follows the
 * group when it moves, and a group created under a granted one is covered at once.
 */
import type { Permission } from '@garrison/protocol';
import { SERVER_WIDE_PERMISSIONS } from '@garrison/protocol';
import type { GroupTree } from './effective-tasks.ts';

export interface AccessGrant {
  groupId: string;
  permissions: readonly Permission[];
}

/** The groups a permission reaches: every group, or exactly this set. */
export type GroupReach = { all: true } | { all: false; groups: ReadonlySet<string> };

export class Access {
  readonly #grants: readonly AccessGrant[];
  readonly #tree: GroupTree;
  readonly #reach = new Map<Permission, GroupReach>();

  constructor(grants: readonly AccessGrant[], tree: GroupTree) {
    this.#grants = grants;
    this.#tree = tree;
  }

  #isRoot(groupId: string): boolean {
    const g = this.#tree.get(groupId);
    return g !== undefined && (g.parentId === null || this.#tree.get(g.parentId) === undefined);
  }

  /** True when `p` is held on a root group: server-wide objects and the whole tree. */
  canServerWide(p: Permission): boolean {
    return this.#grants.some((g) => g.permissions.includes(p) && this.#isRoot(g.groupId));
  }

  /** True when `p` is held on at least one group (what a route needs before a service decides). */
  holdsAnywhere(p: Permission): boolean {
    if (SERVER_WIDE_PERMISSIONS.includes(p)) return this.canServerWide(p);
    return this.#grants.some((g) => g.permissions.includes(p) && this.#tree.get(g.groupId) !== undefined);
  }

  /** True when `p` is held on `groupId` through a grant on it or one of its ancestors. */
  can(p: Permission, groupId: string): boolean {
    if (SERVER_WIDE_PERMISSIONS.includes(p)) return this.canServerWide(p);
    const chain = this.#tree.ancestors(groupId);
    if (chain.length === 0) return false;
    return this.#grants.some((g) => g.permissions.includes(p) && chain.includes(g.groupId));
  }

  /** True when `p` is held on every group of `groupIds`; with none, it means server-wide. */
  canAll(p: Permission, groupIds: readonly string[]): boolean {
    if (groupIds.length === 0) return this.canServerWide(p);
    return groupIds.every((id) => this.can(p, id));
  }

  /** The groups `p` reaches. Computed once per Access (an Access lives as long as its tree). */
  reach(p: Permission): GroupReach {
    let r = this.#reach.get(p);
    if (r) return r;
    if (this.canServerWide(p)) r = { all: true };
    else if (SERVER_WIDE_PERMISSIONS.includes(p)) r = { all: false, groups: new Set() };
    else {
      const groups = new Set<string>();
      for (const g of this.#grants) if (g.permissions.includes(p)) for (const id of this.#tree.descendants(g.groupId)) groups.add(id);
      r = { all: false, groups };
    }
    this.#reach.set(p, r);
    return r;
  }

  /** True when the group is within what `p` reaches (same answer as can(), from the cached reach). */
  reaches(p: Permission, groupId: string): boolean {
    const r = this.reach(p);
    return r.all || r.groups.has(groupId);
  }

  /** Every permission held anywhere, and those held on the root (for the console's menus). */
  summary(all: readonly Permission[]): { anywhere: Permission[]; root: Permission[] } {
    return { anywhere: all.filter((p) => this.holdsAnywhere(p)), root: all.filter((p) => this.canServerWide(p)) };
  }
}
