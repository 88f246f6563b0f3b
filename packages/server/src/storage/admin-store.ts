import type { Permission } from '@garrison/protocol';
import type { Db } from './database.ts';
import type { AdminsTable } from './schema.ts';

export interface Admin {
  id: string;
  name: string;
  displayName: string | null;
  email: string | null;
  disabledAt: string | null;
  hasPassword: boolean;
  totpEnabled: boolean;
  oidcIssuer: string | null;
  oidcSubject: string | null;
  createdAt: string;
  lastSignInAt: string | null;
}
export interface StoredGrant {
  adminId: string;
  roleId: string;
  groupId: string;
}
export interface CustomRole {
  id: string;
  name: string;
  description: string;
  permissions: Permission[];
  createdAt: string;
  updatedAt: string;
}

type AdminRow = Pick<
  AdminsTable,
  'id' | 'name' | 'display_name' | 'email' | 'disabled_at' | 'password_hash' | 'totp_enabled_at' | 'oidc_issuer' | 'oidc_subject' | 'created_at' | 'last_sign_in_at'
>;
const ADMIN_COLUMNS = ['id', 'name', 'display_name', 'email', 'disabled_at', 'password_hash', 'totp_enabled_at', 'oidc_issuer', 'oidc_subject', 'created_at', 'last_sign_in_at'] as const;

function toAdmin(r: AdminRow): Admin {
  return {
    id: r.id,
    name: r.name,
    displayName: r.display_name,
    email: r.email,
    disabledAt: r.disabled_at,
    hasPassword: r.password_hash !== null,
    totpEnabled: r.totp_enabled_at !== null,
    oidcIssuer: r.oidc_issuer,
    oidcSubject: r.oidc_subject,
    createdAt: r.created_at,
    lastSignInAt: r.last_sign_in_at,
  };
}

/** Administrators, their grants, custom roles and API tokens (console sessions are API tokens of kind "session"). */
export class AdminStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async countAdmins(): Promise<number> {
    const r = await this.#db.kysely.selectFrom('admins').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(r.n);
  }
  /** Creates an administrator with its grants in one transaction. */
  async insertAdmin(a: { id: string; name: string; displayName?: string | null; email?: string | null; passwordHash?: string | null; oidcIssuer?: string | null; oidcSubject?: string | null }, grants: readonly Omit<StoredGrant, 'adminId'>[], at: string): Promise<void> {
    await this.#db.kysely.transaction().execute(async (trx) => {
      await trx
        .insertInto('admins')
        .values({
          id: a.id,
          name: a.name,
          // Legacy columns of migration 0001, no longer read (grants replace them).
          role: 'grants',
          scope_group_id: null,
          created_at: at,
          password_hash: a.passwordHash ?? null,
          password_changed_at: a.passwordHash ? at : null,
          display_name: a.displayName ?? null,
          email: a.email ?? null,
          disabled_at: null,
          totp_secret: null,
          totp_enabled_at: null,
          oidc_issuer: a.oidcIssuer ?? null,
          oidc_subject: a.oidcSubject ?? null,
          last_sign_in_at: null,
        })
        .execute();
      if (grants.length) await trx.insertInto('admin_grants').values(grants.map((g) => ({ admin_id: a.id, role_id: g.roleId, group_id: g.groupId, created_at: at }))).execute();
    });
  }
  async listAdmins(): Promise<Admin[]> {
    return (await this.#db.kysely.selectFrom('admins').select(ADMIN_COLUMNS).orderBy('name').execute()).map(toAdmin);
  }
  async getAdmin(id: string): Promise<Admin | undefined> {
    const r = await this.#db.kysely.selectFrom('admins').select(ADMIN_COLUMNS).where('id', '=', id).executeTakeFirst();
    return r && toAdmin(r);
  }
  async findAdminByName(name: string): Promise<(Admin & { passwordHash: string | null; totpSecret: string | null }) | undefined> {
    const r = await this.#db.kysely.selectFrom('admins').select([...ADMIN_COLUMNS, 'totp_secret']).where('name', '=', name).executeTakeFirst();
    return r && { ...toAdmin(r), passwordHash: r.password_hash, totpSecret: r.totp_secret };
  }
  async findAdminByOidc(issuer: string, subject: string): Promise<Admin | undefined> {
    const r = await this.#db.kysely.selectFrom('admins').select(ADMIN_COLUMNS).where('oidc_issuer', '=', issuer).where('oidc_subject', '=', subject).executeTakeFirst();
    return r && toAdmin(r);
  }
  async updateAdmin(id: string, patch: { displayName?: string | null; email?: string | null; disabledAt?: string | null; lastSignInAt?: string; oidcIssuer?: string | null; oidcSubject?: string | null }): Promise<void> {
    const set: Partial<AdminsTable> = {};
    if (patch.displayName !== undefined) set.display_name = patch.displayName;
    if (patch.email !== undefined) set.email = patch.email;
    if (patch.disabledAt !== undefined) set.disabled_at = patch.disabledAt;
    if (patch.lastSignInAt !== undefined) set.last_sign_in_at = patch.lastSignInAt;
    if (patch.oidcIssuer !== undefined) set.oidc_issuer = patch.oidcIssuer;
    if (patch.oidcSubject !== undefined) set.oidc_subject = patch.oidcSubject;
    if (Object.keys(set).length) await this.#db.kysely.updateTable('admins').set(set).where('id', '=', id).execute();
  }
  /** Deletes an administrator, its grants and its tokens. The audit trail keeps its name. */
  async deleteAdmin(id: string): Promise<boolean> {
    return this.#db.kysely.transaction().execute(async (trx) => {
      await trx.deleteFrom('admin_grants').where('admin_id', '=', id).execute();
      await trx.deleteFrom('api_tokens').where('admin_id', '=', id).execute();
      await trx.deleteFrom('saved_selections').where('admin_id', '=', id).execute();
      const r = await trx.deleteFrom('admins').where('id', '=', id).executeTakeFirst();
      return Number(r.numDeletedRows) === 1;
    });
  }

  // Grants
  async grantsOf(adminId: string): Promise<StoredGrant[]> {
    const rows = await this.#db.kysely.selectFrom('admin_grants').select(['admin_id', 'role_id', 'group_id']).where('admin_id', '=', adminId).orderBy('created_at').orderBy('role_id').execute();
    return rows.map((r) => ({ adminId: r.admin_id, roleId: r.role_id, groupId: r.group_id }));
  }
  async allGrants(): Promise<StoredGrant[]> {
    const rows = await this.#db.kysely.selectFrom('admin_grants').select(['admin_id', 'role_id', 'group_id']).execute();
    return rows.map((r) => ({ adminId: r.admin_id, roleId: r.role_id, groupId: r.group_id }));
  }
  async replaceGrants(adminId: string, grants: readonly Omit<StoredGrant, 'adminId'>[], at: string): Promise<void> {
    await this.#db.kysely.transaction().execute(async (trx) => {
      await trx.deleteFrom('admin_grants').where('admin_id', '=', adminId).execute();
      if (grants.length) await trx.insertInto('admin_grants').values(grants.map((g) => ({ admin_id: adminId, role_id: g.roleId, group_id: g.groupId, created_at: at }))).execute();
    });
  }
  async countGrantsOfRole(roleId: string): Promise<number> {
    const r = await this.#db.kysely.selectFrom('admin_grants').select((eb) => eb.fn.countAll<number>().as('n')).where('role_id', '=', roleId).executeTakeFirstOrThrow();
    return Number(r.n);
  }

  // Custom roles
  async listRoles(): Promise<CustomRole[]> {
    const rows = await this.#db.kysely.selectFrom('roles').selectAll().orderBy('name').execute();
    return rows.map((r) => ({ id: r.id, name: r.name, description: r.description, permissions: JSON.parse(r.permissions) as Permission[], createdAt: r.created_at, updatedAt: r.updated_at }));
  }
  async insertRole(r: CustomRole): Promise<void> {
    await this.#db.kysely.insertInto('roles').values({ id: r.id, name: r.name, description: r.description, permissions: JSON.stringify(r.permissions), created_at: r.createdAt, updated_at: r.updatedAt }).execute();
  }
  async updateRole(r: CustomRole): Promise<void> {
    await this.#db.kysely.updateTable('roles').set({ name: r.name, description: r.description, permissions: JSON.stringify(r.permissions), updated_at: r.updatedAt }).where('id', '=', r.id).execute();
  }
  async deleteRole(id: string): Promise<boolean> {
    const r = await this.#db.kysely.deleteFrom('roles').where('id', '=', id).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }

  // Second factor
  /**
   * Takes a second-factor code's time step: true only when it is later than the last one taken
   * for the administrator, in one compare-and-set, so a code works once whichever instance sees it.
   */
  async takeTotpStep(adminId: string, step: number): Promise<boolean> {
    const r = await this.#db.kysely
      .updateTable('admins')
      .set({ totp_last_step: step })
      .where('id', '=', adminId)
      .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', step)]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
  async totpSecretOf(adminId: string): Promise<{ secret: string | null; enabled: boolean }> {
    const r = await this.#db.kysely.selectFrom('admins').select(['totp_secret', 'totp_enabled_at']).where('id', '=', adminId).executeTakeFirst();
    return { secret: r?.totp_secret ?? null, enabled: !!r?.totp_enabled_at };
  }
  async setTotp(adminId: string, secret: string | null, enabledAt: string | null): Promise<void> {
    await this.#db.kysely.updateTable('admins').set({ totp_secret: secret, totp_enabled_at: enabledAt }).where('id', '=', adminId).execute();
  }

  // API tokens and sessions
  async insertApiToken(t: { id: string; adminId: string; name: string; hash: string; at: string; kind?: 'api' | 'session'; expiresAt?: string | null }): Promise<void> {
    await this.#db.kysely
      .insertInto('api_tokens')
      .values({ id: t.id, admin_id: t.adminId, name: t.name, token_hash: t.hash, created_at: t.at, last_used_at: null, revoked_at: null, kind: t.kind ?? 'api', expires_at: t.expiresAt ?? null })
      .execute();
  }
  async findApiToken(id: string): Promise<{ hash: string; adminId: string; name: string; revoked: boolean; kind: string; expiresAt: string | null; adminName: string; adminDisabled: boolean } | undefined> {
    const r = await this.#db.kysely
      .selectFrom('api_tokens')
      .innerJoin('admins', 'admins.id', 'api_tokens.admin_id')
      .select(['api_tokens.token_hash', 'api_tokens.revoked_at', 'api_tokens.kind', 'api_tokens.expires_at', 'api_tokens.name as token_name', 'admins.id', 'admins.name', 'admins.disabled_at'])
      .where('api_tokens.id', '=', id)
      .executeTakeFirst();
    return (
      r && {
        hash: r.token_hash,
        adminId: r.id,
        name: r.token_name,
        revoked: r.revoked_at !== null,
        kind: r.kind,
        expiresAt: r.expires_at,
        adminName: r.name,
        adminDisabled: r.disabled_at !== null,
      }
    );
  }
  /** Records when tokens were last used (the authenticator batches these). */
  async touchApiTokens(ids: readonly string[], at: string): Promise<void> {
    if (ids.length) await this.#db.kysely.updateTable('api_tokens').set({ last_used_at: at }).where('id', 'in', [...ids]).execute();
  }
  /** API tokens made by the administrator (console sessions are not listed). */
  async listApiTokens(adminId: string) {
    return this.#db.kysely
      .selectFrom('api_tokens')
      .select(['id', 'name', 'created_at as createdAt', 'last_used_at as lastUsedAt', 'expires_at as expiresAt', 'revoked_at as revokedAt'])
      .where('admin_id', '=', adminId)
      .where('kind', '=', 'api')
      .orderBy('created_at')
      .execute();
  }
  async passwordHashOf(adminId: string): Promise<string | null> {
    const r = await this.#db.kysely.selectFrom('admins').select('password_hash').where('id', '=', adminId).executeTakeFirst();
    return r?.password_hash ?? null;
  }
  async anyPassword(): Promise<boolean> {
    const r = await this.#db.kysely.selectFrom('admins').select('id').where('password_hash', 'is not', null).limit(1).executeTakeFirst();
    return r !== undefined;
  }
  async firstAdmin(): Promise<Admin | undefined> {
    const r = await this.#db.kysely.selectFrom('admins').select(ADMIN_COLUMNS).orderBy('created_at').orderBy('id').limit(1).executeTakeFirst();
    return r && toAdmin(r);
  }
  async setPassword(adminId: string, hash: string | null, at: string): Promise<void> {
    await this.#db.kysely.updateTable('admins').set({ password_hash: hash, password_changed_at: at }).where('id', '=', adminId).execute();
  }
  /** Ends every console session of an administrator except one (after a password change). */
  async revokeSessions(adminId: string, at: string, exceptId?: string): Promise<string[]> {
    return this.#revokeWhere(adminId, at, 'session', exceptId);
  }
  /** Revokes every token and session of an administrator (disabled, or deleted). */
  async revokeAllTokens(adminId: string, at: string): Promise<string[]> {
    return this.#revokeWhere(adminId, at, null);
  }
  async #revokeWhere(adminId: string, at: string, kind: 'session' | null, exceptId?: string): Promise<string[]> {
    let q = this.#db.kysely.selectFrom('api_tokens').select('id').where('admin_id', '=', adminId).where('revoked_at', 'is', null);
    if (kind) q = q.where('kind', '=', kind);
    if (exceptId) q = q.where('id', '!=', exceptId);
    const ids = (await q.execute()).map((r) => r.id);
    if (ids.length) await this.#db.kysely.updateTable('api_tokens').set({ revoked_at: at }).where('id', 'in', ids).execute();
    return ids;
  }
  /** Removes console sessions that expired more than a day ago. */
  async purgeExpiredSessions(before: string): Promise<number> {
    const r = await this.#db.kysely.deleteFrom('api_tokens').where('kind', '=', 'session').where('expires_at', '<', before).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
  async revokeApiToken(id: string, adminId: string, at: string): Promise<boolean> {
    const r = await this.#db.kysely.updateTable('api_tokens').set({ revoked_at: at }).where('id', '=', id).where('admin_id', '=', adminId).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
}
