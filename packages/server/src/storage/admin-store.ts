import type { Db } from './database.ts';

export interface Admin {
  id: string;
  name: string;
  role: string;
  scopeGroupId: string | null;
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
    await this.#db.kysely.insertInto('admins').values({ id: a.id, name: a.name, role: a.role, scope_group_id: a.scopeGroupId, created_at: at }).execute();
  }
  async insertApiToken(t: { id: string; adminId: string; name: string; hash: string; at: string }): Promise<void> {
    await this.#db.kysely
      .insertInto('api_tokens')
      .values({ id: t.id, admin_id: t.adminId, name: t.name, token_hash: t.hash, created_at: t.at, last_used_at: null, revoked_at: null })
      .execute();
  }
  async findApiToken(id: string): Promise<{ hash: string; admin: Admin; revoked: boolean } | undefined> {
    const r = await this.#db.kysely
      .selectFrom('api_tokens')
      .innerJoin('admins', 'admins.id', 'api_tokens.admin_id')
      .select(['api_tokens.token_hash', 'api_tokens.revoked_at', 'admins.id', 'admins.name', 'admins.role', 'admins.scope_group_id'])
      .where('api_tokens.id', '=', id)
      .executeTakeFirst();
    return r && { hash: r.token_hash, revoked: r.revoked_at !== null, admin: { id: r.id, name: r.name, role: r.role, scopeGroupId: r.scope_group_id } };
  }
  async listApiTokens(adminId: string) {
    return this.#db.kysely
      .selectFrom('api_tokens')
      .select(['id', 'name', 'created_at as createdAt', 'last_used_at as lastUsedAt', 'revoked_at as revokedAt'])
      .where('admin_id', '=', adminId)
      .execute();
  }
  async revokeApiToken(id: string, adminId: string, at: string): Promise<boolean> {
    const r = await this.#db.kysely.updateTable('api_tokens').set({ revoked_at: at }).where('id', '=', id).where('admin_id', '=', adminId).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
}
