/**
 * The caller's identity, API tokens and second factor; permissions, roles and administrators
 * (ADR 0013, ADR 0021 for the shape of an operation).
 */
import { Type, type Static } from 'typebox';
import { AdminCreate, AdminUpdate, AdminView, ApiTokenCreate, ApiTokenCreated, ApiTokenView, PermissionInfo, RoleCreate, RoleUpdate, RoleView, TotpSetup } from '../access.ts';
import { Me } from '../api.ts';
import { operation, Page, PageQuery } from '../contract.ts';
import { IdParams } from './common.ts';

/** The shortest console password the server accepts. */
export const PASSWORD_MIN_LENGTH = 10;

export const TotpCode = Type.Object({ code: Type.String({ pattern: '^[0-9]{6}$' }) }, { additionalProperties: false });
export type TotpCode = Static<typeof TotpCode>;
export const PasswordReset = Type.Object({ password: Type.String({ minLength: PASSWORD_MIN_LENGTH, maxLength: 1024 }) }, { additionalProperties: false });
export type PasswordReset = Static<typeof PasswordReset>;
export const ApiTokenListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });
export const RoleListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });
export const AdminListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });

// Identity, API tokens, second factor
export const getMe = operation({
  id: 'getMe',
  method: 'GET',
  path: '/me',
  tag: 'auth',
  summary: 'The calling administrator: grants, the permissions they give, and how this request was authenticated',
  response: Me,
});
export const listApiTokens = operation({
  id: 'listApiTokens',
  method: 'GET',
  path: '/api-tokens',
  tag: 'auth',
  summary: "The caller's API tokens (never their values), with when each was last used; newest first",
  query: ApiTokenListQuery,
  response: Page(ApiTokenView),
});
export const createApiToken = operation({
  id: 'createApiToken',
  method: 'POST',
  path: '/api-tokens',
  tag: 'auth',
  summary: 'Create an API token (optionally expiring); its value is shown once',
  body: ApiTokenCreate,
  status: 201,
  response: ApiTokenCreated,
});
export const revokeApiToken = operation({ id: 'revokeApiToken', method: 'DELETE', path: '/api-tokens/{id}', tag: 'auth', summary: 'Revoke an API token', params: IdParams, status: 204, response: null });
export const beginTotp = operation({
  id: 'beginTotp',
  method: 'POST',
  path: '/me/totp',
  tag: 'auth',
  summary: 'Start setting a second factor: a TOTP secret and its otpauth:// URI for an authenticator app; confirm with a code',
  status: 201,
  response: TotpSetup,
});
export const confirmTotp = operation({
  id: 'confirmTotp',
  method: 'POST',
  path: '/me/totp/confirm',
  tag: 'auth',
  summary: 'Put the second factor in force with a current code',
  body: TotpCode,
  status: 204,
  response: null,
});
export const removeTotp = operation({
  id: 'removeTotp',
  method: 'DELETE',
  path: '/me/totp',
  tag: 'auth',
  summary: 'Remove your second factor (with a current code)',
  body: TotpCode,
  status: 204,
  response: null,
});

// Permissions, roles, administrators (admins:write on the root group to change; read on the root to see administrators)
export const listPermissions = operation({
  id: 'listPermissions',
  method: 'GET',
  path: '/permissions',
  tag: 'admins',
  summary: 'Every permission with what it allows, and which only take effect on the root group (a fixed list)',
  response: Type.Array(PermissionInfo),
});
export const listRoles = operation({
  id: 'listRoles',
  method: 'GET',
  path: '/roles',
  tag: 'admins',
  summary: 'Roles with their permissions: the built-in ones first, then custom ones by name',
  query: RoleListQuery,
  response: Page(RoleView),
});
export const createRole = operation({ id: 'createRole', method: 'POST', path: '/roles', tag: 'admins', summary: 'Create a custom role', body: RoleCreate, status: 201, response: RoleView });
export const updateRole = operation({
  id: 'updateRole',
  method: 'PATCH',
  path: '/roles/{id}',
  tag: 'admins',
  summary: "Change a custom role's name, description or permissions (takes effect at once)",
  params: IdParams,
  body: RoleUpdate,
  response: RoleView,
});
export const deleteRole = operation({ id: 'deleteRole', method: 'DELETE', path: '/roles/{id}', tag: 'admins', summary: 'Delete a custom role that nobody holds', params: IdParams, status: 204, response: null });
export const listAdmins = operation({
  id: 'listAdmins',
  method: 'GET',
  path: '/admins',
  tag: 'admins',
  summary: 'Administrators with their grants, by name',
  query: AdminListQuery,
  response: Page(AdminView),
});
export const createAdmin = operation({
  id: 'createAdmin',
  method: 'POST',
  path: '/admins',
  tag: 'admins',
  summary: 'Create an administrator with grants (a role on a group subtree each) and optionally a password',
  body: AdminCreate,
  status: 201,
  response: AdminView,
});
export const getAdmin = operation({ id: 'getAdmin', method: 'GET', path: '/admins/{id}', tag: 'admins', summary: 'One administrator', params: IdParams, response: AdminView });
export const updateAdmin = operation({
  id: 'updateAdmin',
  method: 'PATCH',
  path: '/admins/{id}',
  tag: 'admins',
  summary: 'Change grants, disable (its tokens and sessions are revoked) or enable, name details',
  params: IdParams,
  body: AdminUpdate,
  response: AdminView,
});
export const deleteAdmin = operation({
  id: 'deleteAdmin',
  method: 'DELETE',
  path: '/admins/{id}',
  tag: 'admins',
  summary: 'Delete an administrator, its grants, tokens and saved selections (the audit trail keeps its name)',
  params: IdParams,
  status: 204,
  response: null,
});
export const resetAdminPassword = operation({
  id: 'resetAdminPassword',
  method: 'POST',
  path: '/admins/{id}/password',
  tag: 'admins',
  summary: "Reset an administrator's password; their console sessions end",
  params: IdParams,
  body: PasswordReset,
  status: 204,
  response: null,
});
export const removeAdminTotp = operation({
  id: 'removeAdminTotp',
  method: 'DELETE',
  path: '/admins/{id}/totp',
  tag: 'admins',
  summary: "Remove an administrator's second factor (a lost phone)",
  params: IdParams,
  status: 204,
  response: null,
});
