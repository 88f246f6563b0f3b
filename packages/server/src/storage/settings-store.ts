import type { ServerSettings } from '@garrison/protocol';
import type { Db } from './database.ts';

export const DEFAULT_SERVER_SETTINGS: ServerSettings = { eventRetentionDays: 90, runRetentionDays: 90 };

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
  /** Retention and other server-wide settings, defaults filled in. */
  async serverSettings(): Promise<ServerSettings> {
    return { ...DEFAULT_SERVER_SETTINGS, ...((await this.get<Partial<ServerSettings>>('server')) ?? {}) };
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
