import { AppError } from '../errors.ts';
import type { GroupTree } from '@garrison/core';

/**
 * Who is calling. Every service method takes the actor first and authorizes before anything
 * else. One role exists now ("administrator"); an administrator may be scoped to a group, and
 * the checks below already honour that scope so that group-scoped roles can follow.
 */
export type Actor =
  | { kind: 'admin'; adminId: string; name: string; role: string; scopeGroupId: string | null; /** Set when signed in through the console (a session token). */ sessionId?: string }
  | { kind: 'system'; name: string };

export const systemActor: Actor = { kind: 'system', name: 'system' };

export const Permission = {
  read: 'read',
  manageGroups: 'groups:write',
  manageDevices: 'devices:write',
  manageTasks: 'tasks:write',
  runTasks: 'tasks:run',
  manageSecrets: 'secrets:write',
  manageTokens: 'tokens:write',
  manageServer: 'server:write',
} as const;
export type Permission = (typeof Permission)[keyof typeof Permission];

export function actorName(actor: Actor): string {
  return actor.kind === 'admin' ? actor.name : actor.name;
}

/** Throws FORBIDDEN unless the actor may do `permission` on every group in `groupIds` (none: server-wide). */
export function authorize(actor: Actor, permission: Permission, tree?: GroupTree, groupIds: readonly string[] = []): void {
  if (actor.kind === 'system') return;
  if (actor.role !== 'administrator') throw new AppError('FORBIDDEN', `role ${actor.role} may not ${permission}`);
  if (actor.scopeGroupId === null) return;
  if (groupIds.length === 0 && permission !== Permission.read) {
    throw new AppError('FORBIDDEN', `an administrator scoped to a group may not ${permission} server-wide`);
  }
  for (const g of groupIds) {
    if (!tree || !tree.isAncestorOrSelf(actor.scopeGroupId, g)) throw new AppError('FORBIDDEN', `group ${g} is outside this administrator's scope`);
  }
}
