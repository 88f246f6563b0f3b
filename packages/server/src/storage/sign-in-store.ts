/**
 * Sign-ins in progress (migration 0012): what the OpenID Connect browser leg must remember
 * between its steps, in the database so that any instance behind the load balancer can take
 * the next step. Each entry is taken once (deleted as it is read, so two instances cannot both
 * use it) and is sealed by the caller: it holds PKCE verifiers and session grants.
 */
import type { Db } from './database.ts';

export class SignInStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  /** Stores an entry, after removing expired ones and, past `max`, the oldest. */
  async put(key: string, kind: string, sealed: string, expiresAt: string, now: string, max: number): Promise<void> {
    const k = this.#db.kysely;
    await k.deleteFrom('sign_in_pending').where('expires_at', '<=', now).execute();
    const { n } = await k.selectFrom('sign_in_pending').select((eb) => eb.fn.countAll<number>().as('n')).where('kind', '=', kind).executeTakeFirstOrThrow();
    if (Number(n) >= max) {
      const oldest = k.selectFrom('sign_in_pending').select('key').where('kind', '=', kind).orderBy('expires_at').limit(Number(n) - max + 1);
      await k.deleteFrom('sign_in_pending').where('key', 'in', oldest).execute();
    }
    await k.insertInto('sign_in_pending').values({ key, kind, sealed, expires_at: expiresAt }).execute();
  }
  /** Takes an entry: it is gone for every instance once read. Undefined when unknown, of another kind or expired. */
  async take(key: string, kind: string, now: string): Promise<string | undefined> {
    const row = await this.#db.kysely.deleteFrom('sign_in_pending').where('key', '=', key).returning(['kind', 'sealed', 'expires_at']).executeTakeFirst();
    return row && row.kind === kind && row.expires_at > now ? row.sealed : undefined;
  }
}
