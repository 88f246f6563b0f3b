/**
 * Administrators and roles (ADR 0013): several administrators, each holding grants (a role on
 * a group subtree); built-in roles (protocol BUILTIN_ROLES) and custom ones. Managing them needs
 * admins:write, which only a grant on the root group gives. The server always keeps at least
 * one enabled administrator who can manage administrators, so that nobody locks everyone out.
 */
import {
  ALL_PERMISSIONS,
  BUILTIN_ROLES,
  Permission,
  type AdminCreate,
  type AdminUpdate,
  type AdminView,
  type GrantInput,
  type RoleCreate,
  type RoleUpdate,
  type RoleView,
} from '@garrison/protocol';
import { Access } from '@garrison/core';
import { AppError, notFound } from '../errors.ts';
import type { Clock } from '../clock.ts';
import { newId } from '../ids.ts';
import type { Admin, AdminStore, StoredGrant } from '../storage/admin-store.ts';
import { authorize, type Actor } from './actor.ts';
import type { AuthService } from './auth-service.ts';
import { hashPassword } from './auth-service.ts';
import type { Catalog } from './catalog.ts';
import type { EventService } from './event-service.ts';


export class AdminService {
  readonly #store: AdminStore;
  readonly #auth: AuthService;
  readonly #catalog: Catalog;
  readonly #clock: Clock;
  readonly #events: EventService;

  constructor(deps: { store: AdminStore; auth: AuthService; catalog: Catalog; clock: Clock; events: EventService }) {
    this.#store = deps.store;
    this.#auth = deps.auth;
    this.#catalog = deps.catalog;
    this.#clock = deps.clock;
    this.#events = deps.events;
  }

  // Roles
  async listRoles(actor: Actor): Promise<RoleView[]> {
    if (actor.kind !== 'admin' && actor.kind !== 'system') throw new AppError('FORBIDDEN', 'administrators only');
    const builtin: RoleView[] = BUILTIN_ROLES.map((r) => ({ id: r.id, name: r.name, description: r.description, permissions: [...r.permissions], builtin: true, createdAt: '', updatedAt: '' }));
    const custom = (await this.#store.listRoles()).map((r) => ({ ...r, builtin: false }));
    return [...builtin, ...custom];
  }
  async #role(id: string): Promise<RoleView> {
    const r = (await this.listRoles({ kind: 'system', name: 'system' })).find((x) => x.id === id);
    if (!r) throw notFound('role', id);
    return r;
  }
  #checkRoleName(name: string, roles: RoleView[], selfId?: string): void {
    if (roles.some((r) => r.id !== selfId && r.name.toLowerCase() === name.toLowerCase())) throw new AppError('CONFLICT', `a role named "${name}" exists`);
  }
  async createRole(actor: Actor, input: RoleCreate): Promise<RoleView> {
    authorize(actor, Permission.manageAdmins, this.#catalog.tree);
    this.#checkRoleName(input.name, await this.listRoles(actor));
    const at = this.#clock.now().toISOString();
    const role = { id: newId(), name: input.name, description: input.description ?? '', permissions: ALL_PERMISSIONS.filter((p) => input.permissions.includes(p)), createdAt: at, updatedAt: at };
    await this.#store.insertRole(role);
    await this.#events.audit(actor, 'role.created', `role "${role.name}" created`, { data: { roleId: role.id, permissions: role.permissions } });
    return { ...role, builtin: false };
  }
  async updateRole(actor: Actor, id: string, patch: RoleUpdate): Promise<RoleView> {
    authorize(actor, Permission.manageAdmins, this.#catalog.tree);
    const cur = await this.#role(id);
    if (cur.builtin) throw new AppError('CONFLICT', 'built-in roles cannot be changed; copy one into a custom role');
    if (patch.name !== undefined) this.#checkRoleName(patch.name, await this.listRoles(actor), id);
    const next = {
      ...cur,
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.description !== undefined ? { description: patch.description } : {}),
      ...(patch.permissions !== undefined ? { permissions: ALL_PERMISSIONS.filter((p) => patch.permissions!.includes(p)) } : {}),
      updatedAt: this.#clock.now().toISOString(),
    };
    await this.#store.updateRole(next);
    await this.#assertManagerRemains(async () => {
      await this.#store.updateRole(cur);
    });
    this.#auth.forgetAll();
    await this.#events.audit(actor, 'role.updated', `role "${next.name}" changed`, { data: { roleId: id, permissions: next.permissions } });
    return next;
  }
  async deleteRole(actor: Actor, id: string): Promise<void> {
    authorize(actor, Permission.manageAdmins, this.#catalog.tree);
    const cur = await this.#role(id);
    if (cur.builtin) throw new AppError('CONFLICT', 'built-in roles cannot be deleted');
    const n = await this.#store.countGrantsOfRole(id);
    if (n > 0) throw new AppError('CONFLICT', `role "${cur.name}" is granted ${n} time${n === 1 ? '' : 's'}; take those grants away first`);
    await this.#store.deleteRole(id);
    await this.#events.audit(actor, 'role.deleted', `role "${cur.name}" deleted`, { data: { roleId: id } });
  }

  // Administrators
  async #view(a: Admin, grants: readonly StoredGrant[], roles: readonly RoleView[]): Promise<AdminView> {
    const roleName = new Map(roles.map((r) => [r.id, r.name]));
    return {
      id: a.id,
      name: a.name,
      displayName: a.displayName,
      email: a.email,
      grants: grants.map((g) => ({ roleId: g.roleId, roleName: roleName.get(g.roleId) ?? g.roleId, groupId: g.groupId, groupPath: this.#catalog.tree.path(g.groupId) || '(deleted group)' })),
      disabled: a.disabledAt !== null,
      hasPassword: a.hasPassword,
      totpEnabled: a.totpEnabled,
      oidcSubject: a.oidcSubject,
      createdAt: a.createdAt,
      lastSignInAt: a.lastSignInAt,
    };
  }
  /** Administrators are server-wide objects: reading them needs read on the root group. */
  async list(actor: Actor): Promise<AdminView[]> {
    authorize(actor, Permission.read, this.#catalog.tree);
    const [admins, grants, roles] = await Promise.all([this.#store.listAdmins(), this.#store.allGrants(), this.listRoles(actor)]);
    return Promise.all(admins.map((a) => this.#view(a, grants.filter((g) => g.adminId === a.id), roles)));
  }
  /** The caller's own record (no permission needed to see oneself). */
  async me(actor: Extract<Actor, { kind: 'admin' }>): Promise<AdminView> {
    return this.#viewOf(actor.adminId);
  }
  async get(actor: Actor, id: string): Promise<AdminView> {
    authorize(actor, Permission.read, this.#catalog.tree);
    return this.#viewOf(id);
  }
  async #viewOf(id: string): Promise<AdminView> {
    const a = await this.#store.getAdmin(id);
    if (!a) throw notFound('administrator', id);
    return this.#view(a, await this.#store.grantsOf(id), await this.listRoles({ kind: 'system', name: 'system' }));
  }
  async #checkGrants(grants: readonly GrantInput[]): Promise<GrantInput[]> {
    const roles = new Set((await this.listRoles({ kind: 'system', name: 'system' })).map((r) => r.id));
    const out = new Map<string, GrantInput>();
    for (const g of grants) {
      if (!roles.has(g.roleId)) throw new AppError('VALIDATION_FAILED', `no role ${g.roleId}`, { roleId: g.roleId });
      if (!this.#catalog.group(g.groupId)) throw new AppError('VALIDATION_FAILED', `no group ${g.groupId}`, { groupId: g.groupId });
      out.set(`${g.roleId}\n${g.groupId}`, { roleId: g.roleId, groupId: g.groupId });
    }
    return [...out.values()];
  }
  async create(actor: Actor, input: AdminCreate): Promise<AdminView> {
    authorize(actor, Permission.manageAdmins, this.#catalog.tree);
    if (await this.#store.findAdminByName(input.name)) throw new AppError('CONFLICT', `an administrator named "${input.name}" exists`);
    const grants = await this.#checkGrants(input.grants);
    const id = newId();
    await this.#store.insertAdmin(
      { id, name: input.name, displayName: input.displayName ?? null, email: input.email ?? null, passwordHash: input.password ? await hashPassword(input.password) : null },
      grants,
      this.#clock.now().toISOString(),
    );
    await this.#events.audit(actor, 'admin.created', `administrator "${input.name}" created`, { data: { adminId: id, grants } });
    return this.#viewOf(id);
  }
  async update(actor: Actor, id: string, patch: AdminUpdate): Promise<AdminView> {
    authorize(actor, Permission.manageAdmins, this.#catalog.tree);
    const cur = await this.#store.getAdmin(id);
    if (!cur) throw notFound('administrator', id);
    const oldGrants = await this.#store.grantsOf(id);
    const at = this.#clock.now().toISOString();
    if (patch.grants !== undefined) await this.#store.replaceGrants(id, await this.#checkGrants(patch.grants), at);
    if (patch.disabled !== undefined || patch.displayName !== undefined || patch.email !== undefined) {
      await this.#store.updateAdmin(id, {
        ...(patch.disabled !== undefined ? { disabledAt: patch.disabled ? (cur.disabledAt ?? at) : null } : {}),
        ...(patch.displayName !== undefined ? { displayName: patch.displayName } : {}),
        ...(patch.email !== undefined ? { email: patch.email } : {}),
      });
    }
    await this.#assertManagerRemains(async () => {
      await this.#store.replaceGrants(id, oldGrants, at);
      await this.#store.updateAdmin(id, { disabledAt: cur.disabledAt });
    });
    if (patch.disabled) await this.#store.revokeAllTokens(id, at);
    this.#auth.forgetAdmin(id);
    const fields = Object.keys(patch);
    await this.#events.audit(actor, patch.disabled === true ? 'admin.disabled' : patch.disabled === false ? 'admin.enabled' : 'admin.updated', `administrator "${cur.name}" ${patch.disabled === true ? 'disabled; their tokens and sessions were revoked' : patch.disabled === false ? 'enabled' : `changed (${fields.join(', ')})`}`, {
      data: { adminId: id, ...(patch.grants ? { grants: patch.grants } : {}) },
    });
    return this.#viewOf(id);
  }
  async remove(actor: Actor, id: string): Promise<void> {
    authorize(actor, Permission.manageAdmins, this.#catalog.tree);
    const cur = await this.#store.getAdmin(id);
    if (!cur) throw notFound('administrator', id);
    await this.#assertManagerRemains(async () => {}, id);
    await this.#store.deleteAdmin(id);
    this.#auth.forgetAdmin(id);
    await this.#events.audit(actor, 'admin.deleted', `administrator "${cur.name}" deleted`, { data: { adminId: id } });
  }
  async resetPassword(actor: Actor, id: string, password: string): Promise<void> {
    authorize(actor, Permission.manageAdmins, this.#catalog.tree);
    const cur = await this.#store.getAdmin(id);
    if (!cur) throw notFound('administrator', id);
    await this.#auth.setPassword(id, password);
    await this.#events.audit(actor, 'admin.password-reset', `password of administrator "${cur.name}" reset; their console sessions ended`, { data: { adminId: id } });
  }
  async removeSecondFactor(actor: Actor, id: string): Promise<void> {
    authorize(actor, Permission.manageAdmins, this.#catalog.tree);
    const cur = await this.#store.getAdmin(id);
    if (!cur) throw notFound('administrator', id);
    await this.#auth.removeTotp(id);
    await this.#events.audit(actor, 'admin.second-factor-removed', `second factor of administrator "${cur.name}" removed`, { data: { adminId: id } });
  }

  /**
   * Refuses a change that would leave no enabled administrator able to manage administrators
   * (admins:write on the root group); `undo` puts back what was already written.
   */
  async #assertManagerRemains(undo: () => Promise<void>, deletingId?: string): Promise<void> {
    const [admins, grants, roles] = await Promise.all([this.#store.listAdmins(), this.#store.allGrants(), this.listRoles({ kind: 'system', name: 'system' })]);
    const perms = new Map(roles.map((r) => [r.id, r.permissions]));
    const tree = this.#catalog.tree;
    const ok = admins.some((a) => {
      if (a.disabledAt || a.id === deletingId) return false;
      const mine = grants.filter((g) => g.adminId === a.id).map((g) => ({ groupId: g.groupId, permissions: perms.get(g.roleId) ?? [] }));
      return new Access(mine, tree).canServerWide(Permission.manageAdmins);
    });
    if (ok) return;
    await undo();
    throw new AppError('CONFLICT', 'this would leave no enabled administrator who can manage administrators (admins:write on the root group)');
  }
}
