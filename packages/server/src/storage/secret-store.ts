import type { SecretMeta } from '@garrison/protocol';
import type { Db } from './database.ts';

export type { SecretMeta };

/** Stores ciphertext only; encryption lives in the secret service, keys never reach the database. */
export class SecretStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  /** Sets a value; an undefined description keeps the stored one (empty for a new secret). */
  async putSecret(name: string, ciphertext: string, description: string | undefined, at: string, groupId: string | null): Promise<void> {
    await this.#db.kysely
      .insertInto('secrets')
      .values({ name, ciphertext, description: description ?? '', created_at: at, updated_at: at, group_id: groupId })
      .onConflict((oc) => oc.column('name').doUpdateSet({ ciphertext, ...(description !== undefined ? { description } : {}), updated_at: at, group_id: groupId }))
      .execute();
  }
  async getMeta(name: string): Promise<SecretMeta | undefined> {
    return this.#db.kysely
      .selectFrom('secrets')
      .select(['name', 'description', 'group_id as groupId', 'created_at as createdAt', 'updated_at as updatedAt'])
      .where('name', '=', name)
      .executeTakeFirst();
  }
  async deleteSecret(name: string): Promise<boolean> {
    const r = await this.#db.kysely.deleteFrom('secrets').where('name', '=', name).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }
  /** One stored ciphertext, if any: enough to tell whether a key opens this database's secrets. */
  async anyCiphertext(): Promise<string | undefined> {
    return (await this.#db.kysely.selectFrom('secrets').select('ciphertext').limit(1).executeTakeFirst())?.ciphertext;
  }
  async listSecrets(): Promise<SecretMeta[]> {
    return this.#db.kysely
      .selectFrom('secrets')
      .select(['name', 'description', 'group_id as groupId', 'created_at as createdAt', 'updated_at as updatedAt'])
      .orderBy('name')
      .execute();
  }
  async getCiphertexts(names: string[]): Promise<Map<string, { ciphertext: string; updatedAt: string; groupId: string | null }>> {
    if (names.length === 0) return new Map();
    const rows = await this.#db.kysely.selectFrom('secrets').select(['name', 'ciphertext', 'updated_at', 'group_id']).where('name', 'in', names).execute();
    return new Map(rows.map((r) => [r.name, { ciphertext: r.ciphertext, updatedAt: r.updated_at, groupId: r.group_id }]));
  }
}
