import { AppError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import { hashSecret, newId, newSecret, sameHash } from '../ids.ts';
import type { AdminStore } from '../storage/admin-store.ts';
import type { Actor } from './actor.ts';

/** API tokens look like `gat.<tokenId>.<secret>`; the id finds the row, the secret is compared by hash. */
export const API_TOKEN_PREFIX = 'gat';

export class AuthService {
  readonly #store: AdminStore;
  readonly #clock: Clock;
  readonly #cache = new Map<string, { hash: string; actor: Actor; until: number }>();

  constructor(deps: { store: AdminStore; clock: Clock }) {
    this.#store = deps.store;
    this.#clock = deps.clock;
  }
  /** On first start: the administrator and one API token. Returns the token, or null if admins exist. */
  async bootstrap(): Promise<string | null> {
    if ((await this.#store.countAdmins()) > 0) return null;
    const at = this.#clock.now().toISOString();
    const adminId = newId();
    await this.#store.insertAdmin({ id: adminId, name: 'admin', role: 'administrator', scopeGroupId: null }, at);
    return this.#issue(adminId, 'initial administrator token');
  }
  async #issue(adminId: string, name: string): Promise<string> {
    const id = newId();
    const secret = newSecret();
    await this.#store.insertApiToken({ id, adminId, name, hash: hashSecret(secret), at: this.#clock.now().toISOString() });
    return `${API_TOKEN_PREFIX}.${id}.${secret}`;
  }
  async createToken(actor: Actor, name: string): Promise<string> {
    if (actor.kind !== 'admin') throw new AppError('FORBIDDEN', 'only administrators have API tokens');
    return this.#issue(actor.adminId, name);
  }
  async listTokens(actor: Actor) {
    if (actor.kind !== 'admin') throw new AppError('FORBIDDEN', 'only administrators have API tokens');
    return this.#store.listApiTokens(actor.adminId);
  }
  async revokeToken(actor: Actor, id: string): Promise<void> {
    if (actor.kind !== 'admin') throw new AppError('FORBIDDEN', 'only administrators have API tokens');
    if (!(await this.#store.revokeApiToken(id, actor.adminId, this.#clock.now().toISOString()))) throw new AppError('NOT_FOUND', `API token ${id} does not exist`);
    this.#cache.delete(id);
  }
  async authenticate(token: string | undefined): Promise<Actor> {
    const fail = new AppError('UNAUTHENTICATED', 'give a valid API token as "Authorization: Bearer gat.…"');
    if (!token) throw fail;
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== API_TOKEN_PREFIX) throw fail;
    const [, id, secret] = parts as [string, string, string];
    const hash = hashSecret(secret);
    const now = Date.now();
    const cached = this.#cache.get(id);
    if (cached && cached.until > now && sameHash(cached.hash, hash)) return cached.actor;
    const row = await this.#store.findApiToken(id);
    if (!row || row.revoked || !sameHash(row.hash, hash)) throw fail;
    const actor: Actor = { kind: 'admin', adminId: row.admin.id, name: row.admin.name, role: row.admin.role, scopeGroupId: row.admin.scopeGroupId };
    // A short cache: a revoked token stops working within 10 s on other server instances.
    this.#cache.set(id, { hash: row.hash, actor, until: now + 10_000 });
    return actor;
  }
}
