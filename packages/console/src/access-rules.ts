/**
 * The rule behind useAccess (access.tsx), pure so that it is tested without a browser: what
 * /me, the roles and the visible group tree say an administrator may do. See access.tsx.
 */
import { SERVER_WIDE_PERMISSIONS, type GroupView, type Me, type Permission } from '@garrison/protocol';

export interface Access {
  me: Me | undefined;
  can(p: Permission): boolean;
  canOnRoot(p: Permission): boolean;
  canIn(p: Permission, groups: string | readonly string[] | null | undefined): boolean;
}

/** The answer for a given /me, role list and (visible) group tree; pure, for the provider. */
export function accessOf(me: Me | undefined, roles: readonly { id: string; permissions: readonly Permission[] }[], groups: readonly GroupView[] | undefined): Access {
  const anywhere = me?.permissions ? new Set<Permission>(me.permissions) : null;
  const root = me?.rootPermissions ? new Set<Permission>(me.rootPermissions) : null;
  const can = (p: Permission) => !anywhere || anywhere.has(p);
  const canOnRoot = (p: Permission) => !root || root.has(p);
  const rolePerms = new Map(roles.map((r) => [r.id, r.permissions]));
  const byId = new Map((groups ?? []).map((g) => [g.id, g]));
  const grants = me?.grants;
  /** true or false when the grants and the tree decide; undefined when they cannot (a role or an ancestor not known here). */
  const inGroup = (p: Permission, groupId: string): boolean | undefined => {
    if (!grants || !groups) return undefined;
    let unknown = false;
    const on = new Map<string, Permission[]>();
    for (const g of grants) {
      const perms = rolePerms.get(g.roleId);
      if (!perms) unknown = true;
      else on.set(g.groupId, [...(on.get(g.groupId) ?? []), ...perms]);
    }
    // Up from the group to the top of what this administrator sees.
    let id: string | null = groupId;
    for (let guard = 0; id && guard < 1000; guard++) {
      if (on.get(id)?.includes(p)) return true;
      const g = byId.get(id);
      if (!g) return undefined;
      id = g.parentId;
    }
    return unknown ? undefined : false;
  };
  const canIn = (p: Permission, target: string | readonly string[] | null | undefined): boolean => {
    if (SERVER_WIDE_PERMISSIONS.includes(p)) return canOnRoot(p);
    if (!anywhere) return true;
    if (target === null || target === undefined) return can(p);
    const ids = typeof target === 'string' ? [target] : target;
    if (ids.length === 0) return canOnRoot(p);
    if (!can(p)) return false;
    return ids.every((id) => inGroup(p, id) ?? can(p));
  };
  return { me, can, canOnRoot, canIn };
}

