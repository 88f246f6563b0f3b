/**
 * The caller's identity, API tokens and second factor; administrators, roles and permissions:
 * operations of protocol/src/operations/identity.ts. Handlers are thin: they call one service
 * method with the caller's actor and return its result.
 */
import type { FastifyInstance } from 'fastify';
import {
  ALL_PERMISSIONS,
  beginTotp,
  BUILTIN_ROLES,
  confirmTotp,
  createAdmin,
  createApiToken,
  createRole,
  deleteAdmin,
  deleteRole,
  getAdmin,
  getMe,
  listAdmins,
  listApiTokens,
  listPermissions,
  listRoles,
  permissionInfo,
  removeAdminTotp,
  removeTotp,
  resetAdminPassword,
  revokeApiToken,
  SERVER_WIDE_PERMISSIONS,
  updateAdmin,
  updateRole,
  type RoleView,
} from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { accessOf, Permission } from '../services/actor.ts';
import { AppError } from '../errors.ts';
import { pageOf } from '../paging.ts';
import { anyAdmin, needs } from './access.ts';
import { route } from './operation.ts';
import { actor } from './admin-routes.ts';

const read = needs(Permission.read);
const builtinOrder = new Map<string, number>(BUILTIN_ROLES.map((r, i) => [r.id, i]));
/** Built-in roles first in their fixed order, then custom ones by name. */
const roleKey = (r: RoleView) => (r.builtin ? [0, builtinOrder.get(r.id) ?? 0, r.id] : [1, r.name.toLowerCase(), r.id]);

export function registerIdentityRoutes(app: FastifyInstance, s: Pick<Services, 'admins' | 'auth' | 'catalog' | 'events'>): void {
  // Identity and API tokens
  route(app, getMe, anyAdmin, async (req) => {
    const a = actor(req);
    if (a.kind !== 'admin') return { kind: 'system' as const, name: a.name };
    const view = await s.admins.me(a);
    const summary = accessOf(a, s.catalog.tree).summary(ALL_PERMISSIONS);
    return { kind: 'admin' as const, adminId: a.adminId, name: a.name, displayName: view.displayName, grants: view.grants, permissions: summary.anywhere, rootPermissions: summary.root, via: a.via, session: a.sessionId !== undefined, totpEnabled: view.totpEnabled };
  });
  route(app, listApiTokens, anyAdmin, async (req) => pageOf(await s.auth.listTokens(actor(req)), { key: (t) => [t.createdAt, t.id], descending: true }, req.query));
  route(app, createApiToken, anyAdmin, async (req) => {
    const a = actor(req);
    const b = req.body;
    const { token, view } = await s.auth.createToken(a, b.name, b.expiresInDays);
    await s.events.audit(a, 'api-token.created', `API token "${b.name}" created`, { data: { tokenId: view.id, expiresAt: view.expiresAt } });
    return { token, ...view };
  });
  route(app, revokeApiToken, anyAdmin, async (req) => {
    const a = actor(req);
    await s.auth.revokeToken(a, req.params.id);
    await s.events.audit(a, 'api-token.revoked', 'API token revoked', { data: { tokenId: req.params.id } });
  });
  // Second factor (TOTP) for password sign-ins.
  route(app, beginTotp, anyAdmin, async (req) => s.auth.beginTotp(actor(req)));
  route(app, confirmTotp, anyAdmin, async (req) => {
    const a = actor(req);
    await s.auth.confirmTotp(a, req.body.code);
    await s.events.audit(a, 'admin.second-factor-set', `${a.name} set a second factor`, {});
  });
  route(app, removeTotp, anyAdmin, async (req) => {
    const a = actor(req);
    if (a.kind !== 'admin') throw new AppError('FORBIDDEN', 'administrators only');
    await s.auth.removeTotp(a.adminId, req.body.code);
    await s.events.audit(a, 'admin.second-factor-removed', `${a.name} removed their second factor`, {});
  });

  // Administrators and roles (admins:write on the root group to change; read on the root to see)
  route(app, listPermissions, anyAdmin, async () => ALL_PERMISSIONS.map((id) => ({ id, description: permissionInfo[id], serverWide: SERVER_WIDE_PERMISSIONS.includes(id) })));
  route(app, listRoles, anyAdmin, async (req) => pageOf(await s.admins.listRoles(actor(req)), { key: roleKey }, req.query));
  route(app, createRole, needs(Permission.manageAdmins), async (req) => s.admins.createRole(actor(req), req.body));
  route(app, updateRole, needs(Permission.manageAdmins), async (req) => s.admins.updateRole(actor(req), req.params.id, req.body));
  route(app, deleteRole, needs(Permission.manageAdmins), async (req) => {
    await s.admins.deleteRole(actor(req), req.params.id);
  });
  route(app, listAdmins, read, async (req) => pageOf(await s.admins.list(actor(req)), { key: (a) => [a.name.toLowerCase(), a.id] }, req.query));
  route(app, createAdmin, needs(Permission.manageAdmins), async (req) => s.admins.create(actor(req), req.body));
  route(app, getAdmin, read, async (req) => s.admins.get(actor(req), req.params.id));
  route(app, updateAdmin, needs(Permission.manageAdmins), async (req) => s.admins.update(actor(req), req.params.id, req.body));
  route(app, deleteAdmin, needs(Permission.manageAdmins), async (req) => {
    await s.admins.remove(actor(req), req.params.id);
  });
  route(app, resetAdminPassword, needs(Permission.manageAdmins), async (req) => {
    await s.admins.resetPassword(actor(req), req.params.id, req.body.password);
  });
  route(app, removeAdminTotp, needs(Permission.manageAdmins), async (req) => {
    await s.admins.removeSecondFactor(actor(req), req.params.id);
  });
}
