import type { Db } from './database.ts';

/** Server-wide settings as JSON values under string keys. */
export class SettingsStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async get<T>(key: string): Promise<T | undefined> {
    const r = await this.#db.kysely.selectFrom('server_settings').select('value').where('key', '=', key).executeTakeFirst();
    return r ? (JSON.parse(r.value) as T) : undefined;
  }
  async set(key: string, value: unknown): Promise<void> {
    const v = JSON.stringify(value);
    await this.#db.kysely
      .insertInto('server_settings')
      .values({ key, value: v })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value: v }))
      .execute();
  }
  /** Sets the value only if the key is absent; returns the value now stored (first writer wins across servers). */
  async setIfAbsent<T>(key: string, value: T): Promise<T> {
    await this.#db.kysely
      .insertInto('server_settings')
      .values({ key, value: JSON.stringify(value) })
      .onConflict((oc) => oc.column('key').doNothing())
      .execute();
    return (await this.get<T>(key)) as T;
  }
}
