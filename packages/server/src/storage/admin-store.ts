import type { Db } from './database.ts';

export interface Admin {
  id: string;
  name: string;
  role: string;
  scopeGroupId: string | null;
}

function toAdmin(r: { id: string; name: string; role: string; scope_group_id: string | null }): Admin {
  return { id: r.id, name: r.name, role: r.role, scopeGroupId: r.scope_group_id };
}

export class AdminStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async countAdmins(): Promise<number> {
    const r = await this.#db.kysely.selectFrom('admins').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(r.n);
  }
  async insertAdmin(a: Admin, at: string): Promise<void> {
    await this.#db.kysely.insertInto('admins').values({ id: a.id, name: a.name, role: a.role, scope_group_id: a.scopeGroupId, created_at: at, password_hash: null, password_changed_at: null }).execute();
  }
  async insertApiToken(t: { id: string; adminId: string; name: string; hash: string; at: string; kind?: 'api' | 'session'; expiresAt?: string | null }): Promise<void> {
    await this.#db.kysely
      .insertInto('api_tokens')
      .values({ id: t.id, admin_id: t.adminId, name: t.name, token_hash: t.hash, created_at: t.at, last_used_at: null, revoked_at: null, kind: t.kind ?? 'api', expires_at: t.expiresAt ?? null })
      .execute();
  }
  async findApiToken(id: string): Promise<{ hash: string; admin: Admin; revoked: boolean; kind: string; expiresAt: string | null } | undefined> {
    const r = await this.#db.kysely
      .selectFrom('api_tokens')
      .innerJoin('admins', 'admins.id', 'api_tokens.admin_id')
      .select(['api_tokens.token_hash', 'api_tokens.revoked_at', 'api_tokens.kind', 'api_tokens.expires_at', 'admins.id', 'admins.name', 'admins.role', 'admins.scope_group_id'])
      .where('api_tokens.id', '=', id)
      .executeTakeFirst();
    return (
      r && {
        hash: r.token_hash,
        revoked: r.revoked_at !== null,
        kind: r.kind,
        expiresAt: r.expires_at,
        admin: toAdmin(r),
      }
    );
  }
  /** API tokens made by the administrator (console sessions are not listed). */
  async listApiTokens(adminId: string) {
    return this.#db.kysely
      .selectFrom('api_tokens')
      .select(['id', 'name', 'created_at as createdAt', 'last_used_at as lastUsedAt', 'revoked_at as revokedAt'])
      .where('admin_id', '=', adminId)
      .where('kind', '=', 'api')
      .execute();
  }
  async findAdminByName(name: string): Promise<(Admin & { passwordHash: string | null }) | undefined> {
    const r = await this.#db.kysely.selectFrom('admins').select(['id', 'name', 'role', 'scope_group_id', 'password_hash']).where('name', '=', name).executeTakeFirst();
    return r && { ...toAdmin(r), passwordHash: r.password_hash };
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
    const r = await this.#db.kysely.selectFrom('admins').select(['id', 'name', 'role', 'scope_group_id']).orderBy('created_at').orderBy('id').limit(1).executeTakeFirst();
    return r && toAdmin(r);
  }
  async setPassword(adminId: string, hash: string, at: string): Promise<void> {
    await this.#db.kysely.updateTable('admins').set({ password_hash: hash, password_changed_at: at }).where('id', '=', adminId).execute();
  }
  /** Ends every console session of an administrator except one (after a password change). */
  async revokeSessions(adminId: string, at: string, exceptId?: string): Promise<string[]> {
    let q = this.#db.kysely.selectFrom('api_tokens').select('id').where('admin_id', '=', adminId).where('kind', '=', 'session').where('revoked_at', 'is', null);
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
    const r = await this.#db.kysely.updateTable('api_tokens').set({ revoked_at: at }).where('id', '=', id).where('admin_id', '=', adminId).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
}
