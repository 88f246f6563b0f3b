/**
 * What the signed-in administrator may do, for hiding what they cannot (ADR 0013). GET /me
 * says which permissions are held on at least one group (`permissions`) and which on the root
 * group (`rootPermissions`, what server-wide objects need). The pages ask here, in one place:
 *
 * - `can(p)`: p is held somewhere, so the action is possible on something;
 * - `canOnRoot(p)`: p is held on the root group (repository, server tasks, settings,
 *   administrators, and anything spanning the whole tree);
 * - `canIn(p, groups)`: p is held on each of these groups (through a grant on it or one of its
 *   ancestors), for an action on one object whose group is known; an empty list means
 *   server-wide, as the server decides; `null` (group unknown) falls back to `can(p)`.
 *
 * This only shapes the console: the server decides every request and answers FORBIDDEN, which
 * the pages show. Unknown answers (an older server, a system token, /me not read yet) allow.
 */
import { createContext, useContext, useMemo, type ReactNode } from 'react';
import { useQuery } from '@tanstack/react-query';
import { BUILTIN_ROLES, getMe, listRoles, PAGE_LIMIT_MAX, type Me, type RoleView, type Scope } from '@garrison/protocol';
import { allPages, useOp } from './api.ts';
import { useGroups } from './ui.tsx';
import { accessOf, type Access } from './access-rules.ts';

export { Permission } from '@garrison/protocol';
export type { Access } from './access-rules.ts';

const AccessContext = createContext<Access>(accessOf(undefined, [], undefined));

/** The signed-in administrator's access, for the pages (see the module comment). */
export const useAccess = () => useContext(AccessContext);

/** The signed-in administrator (GET /me; the live feed's config topic reads it again). */
export function useMe() {
  return useOp(getMe, {}, { staleTime: 60_000 });
}

/** Provides the access of `me`; the roles its grants name are built in or read from /roles. */
export function AccessProvider({ me, children }: { me: Me | undefined; children: ReactNode }) {
  // The tree is what the administrator may read; without read anywhere there is none to ask for.
  const groups = useGroups({ enabled: me !== undefined && (!me.permissions || me.permissions.includes('read')) });
  const custom = me?.grants?.some((g) => !BUILTIN_ROLES.some((r) => r.id === g.roleId)) ?? false;
  const roles = useQuery<RoleView[], Error, RoleView[], string[]>({ queryKey: [listRoles.path], queryFn: ({ signal }) => allPages(listRoles, { query: { limit: PAGE_LIMIT_MAX } }, { signal }), enabled: custom, staleTime: 60_000 });
  const value = useMemo(() => accessOf(me, [...BUILTIN_ROLES, ...(roles.data ?? [])], groups.data), [me, roles.data, groups.data]);
  return <AccessContext.Provider value={value}>{children}</AccessContext.Provider>;
}

/** The task's groups for authorization, as the server counts them: a group task's group, a local task's device's group (when known), none for a global task. */
export function taskGroups(scope: Scope, deviceGroupId?: string | null): string[] | null {
  if (scope.type === 'group') return [scope.groupId];
  if (scope.type === 'local') return deviceGroupId ? [deviceGroupId] : null;
  return [];
}
