import { Access, type GroupReach, type GroupTree } from '@garrison/core';
import { Permission, type ActorVia } from '@garrison/protocol';
import { AppError } from '../errors.ts';

export { Permission };

/** One role's permissions on one group subtree, as the administrator holds it. */
export interface Grant {
  roleId: string;
  groupId: string;
  permissions: readonly Permission[];
}

/**
 * Who is calling. Every service method takes the actor first and authorizes before anything
 * else (ADR 0013): writes with `authorize`, reads by filtering on `reachOf`. `system` is the
 * server itself (loops, defaults, what a device's own local change is applied as once the
 * agent boundary has checked it).
 */
export type Actor =
  | {
      kind: 'admin';
      adminId: string;
      name: string;
      grants: readonly Grant[];
      /** How the request was authenticated, and from which address (the audit trail's "through what" and "from where"). */
      via: ActorVia;
      address?: string;
      /** Set when signed in through the console (a session token). */
      sessionId?: string;
      /** The API token or session used. */
      tokenId?: string;
    }
  | { kind: 'system'; name: string };

export const systemActor: Actor = { kind: 'system', name: 'system' };

export function actorName(actor: Actor): string {
  return actor.name;
}

// One Access per grant list and tree: the auth cache hands out the same grants array for a
// token's requests, and the catalog makes a new tree on every group change.
const accessMemo = new WeakMap<readonly Grant[], { tree: GroupTree; access: Access }>();
export function accessOf(actor: Extract<Actor, { kind: 'admin' }>, tree: GroupTree): Access {
  const m = accessMemo.get(actor.grants);
  if (m && m.tree === tree) return m.access;
  const access = new Access(actor.grants, tree);
  accessMemo.set(actor.grants, { tree, access });
  return access;
}

/**
 * Throws FORBIDDEN unless the actor may do `permission` on every group of `groupIds`. With no
 * groups the object belongs to no group (the repository, server settings, a global task): the
 * permission must then be held on the root group.
 */
export function authorize(actor: Actor, permission: Permission, tree: GroupTree, groupIds: readonly string[] = []): void {
  if (actor.kind === 'system') return;
  if (accessOf(actor, tree).canAll(permission, groupIds)) return;
  if (groupIds.length === 0) throw new AppError('FORBIDDEN', `${permission} is needed on the root group for this`, { permission });
  throw new AppError('FORBIDDEN', `${permission} is not granted on ${groupIds.length === 1 ? 'this group' : 'all these groups'}`, { permission, groupIds: [...new Set(groupIds)] });
}

/** Whether the actor may do `permission` on every group of `groupIds` (no groups: server-wide). */
export function allowed(actor: Actor, permission: Permission, tree: GroupTree, groupIds: readonly string[] = []): boolean {
  return actor.kind === 'system' || accessOf(actor, tree).canAll(permission, groupIds);
}

const everywhere: GroupReach = { all: true };
/** The groups the actor may do `permission` on: what a list, count or export is filtered to. */
export function reachOf(actor: Actor, permission: Permission, tree: GroupTree): GroupReach {
  return actor.kind === 'system' ? everywhere : accessOf(actor, tree).reach(permission);
}
export function inReach(reach: GroupReach, groupId: string | null | undefined): boolean {
  return reach.all || (groupId != null && reach.groups.has(groupId));
}
/** The reach as a list for a storage query: undefined means no filter. */
export function reachList(reach: GroupReach): string[] | undefined {
  return reach.all ? undefined : [...reach.groups];
}

/** For a route: refuses an actor that holds the permission on no group at all (a service then decides per object). */
export function holdsAnywhere(actor: Actor, permission: Permission, tree: GroupTree): boolean {
  return actor.kind === 'system' || accessOf(actor, tree).holdsAnywhere(permission);
}

/** Throws FORBIDDEN unless the actor holds `permission` on some group (for catalogues every reader may see, such as the repository). */
export function authorizeAnywhere(actor: Actor, permission: Permission, tree: GroupTree): void {
  if (!holdsAnywhere(actor, permission, tree)) throw new AppError('FORBIDDEN', `${permission} is not granted to you on any group`, { permission });
}

/**
 * Not found rather than forbidden for an object the caller may not even see, so that ids of
 * other subtrees cannot be probed.
 */
export function notVisible(what: string, id: string): AppError {
  return new AppError('NOT_FOUND', `${what} ${id} does not exist`);
}
