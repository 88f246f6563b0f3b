import type { EnrolmentTokenView } from '@garrison/protocol';
import type { Db } from './database.ts';
import type { EnrolmentTokensTable } from './schema.ts';

/** A token as stored (never its value); the API adds its group path and state. */
export type EnrolmentToken = Omit<EnrolmentTokenView, 'groupPath' | 'state' | 'token'>;
function toToken(r: EnrolmentTokensTable): EnrolmentToken {
  return {
    id: r.id,
    groupId: r.group_id,
    name: r.name,
    expiresAt: r.expires_at,
    maxUses: r.max_uses,
    uses: r.uses,
    revokedAt: r.revoked_at,
    createdAt: r.created_at,
    createdBy: r.created_by,
  };
}

export class EnrolmentStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async insertToken(t: EnrolmentToken, tokenHash: string): Promise<void> {
    await this.#db.kysely
      .insertInto('enrolment_tokens')
      .values({
        id: t.id,
        group_id: t.groupId,
        name: t.name,
        token_hash: tokenHash,
        expires_at: t.expiresAt,
        max_uses: t.maxUses,
        uses: t.uses,
        revoked_at: t.revokedAt,
        created_at: t.createdAt,
        created_by: t.createdBy,
      })
      .execute();
  }
  async listTokens(): Promise<EnrolmentToken[]> {
    return (await this.#db.kysely.selectFrom('enrolment_tokens').selectAll().orderBy('created_at', 'desc').execute()).map(toToken);
  }
  async getToken(id: string): Promise<EnrolmentToken | undefined> {
    const r = await this.#db.kysely.selectFrom('enrolment_tokens').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toToken(r);
  }
  async findByHash(hash: string): Promise<EnrolmentToken | undefined> {
    const r = await this.#db.kysely.selectFrom('enrolment_tokens').selectAll().where('token_hash', '=', hash).executeTakeFirst();
    return r && toToken(r);
  }
  /**
   * Counts one use, atomically and only while the token is still usable, so that a token
   * with one use left cannot enrol two devices racing each other.
   */
  async consumeUse(id: string, now: string): Promise<boolean> {
    const r = await this.#db.kysely
      .updateTable('enrolment_tokens')
      .set((eb) => ({ uses: eb('uses', '+', 1) }))
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
      .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
  async revoke(id: string, at: string): Promise<boolean> {
    const r = await this.#db.kysely.updateTable('enrolment_tokens').set({ revoked_at: at }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
}
