import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { AppError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import { hashSecret, newId, newSecret, sameHash } from '../ids.ts';
import type { AdminStore } from '../storage/admin-store.ts';
import type { Actor } from './actor.ts';

/** API tokens look like `gat.<tokenId>.<secret>`; the id finds the row, the secret is compared by hash. */
export const API_TOKEN_PREFIX = 'gat';
/** Console sessions are API tokens that expire (absolute lifetime). */
export const SESSION_HOURS = 12;
export const PASSWORD_MIN_LENGTH = 10;

// scrypt with N=2^15, r=8, p=1: about 30 ms and 32 MiB per check, OWASP's floor for scrypt.
const SCRYPT = { N: 32768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } satisfies ScryptOptions;
function scryptKey(password: string, salt: Buffer, o: { N: number; r: number; p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFKC'), salt, 32, { ...o, maxmem: SCRYPT.maxmem }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptKey(password, salt, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [alg, n, r, p, salt, hash] = stored.split('$');
  if (alg !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64url');
  const key = await scryptKey(password, Buffer.from(salt, 'base64url'), { N: Number(n), r: Number(r), p: Number(p) });
  return key.length === expected.length && timingSafeEqual(key, expected);
}
// A hash to verify against when the name is unknown, so that timing does not tell names apart;
// made at the first such sign-in, not at start-up.
let dummyHash: Promise<string> | null = null;

export class AuthService {
  readonly #store: AdminStore;
  readonly #clock: Clock;
  readonly #cache = new Map<string, { hash: string; actor: Actor; until: number; expires: number | null }>();

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
  async #issue(adminId: string, name: string, session?: { expiresAt: string }): Promise<string> {
    const id = newId();
    const secret = newSecret();
    await this.#store.insertApiToken({
      id,
      adminId,
      name,
      hash: hashSecret(secret),
      at: this.#clock.now().toISOString(),
      ...(session ? { kind: 'session' as const, expiresAt: session.expiresAt } : {}),
    });
    return `${API_TOKEN_PREFIX}.${id}.${secret}`;
  }
  /**
   * Gives the first administrator a random password when no administrator has one yet (a new
   * server, or one from before console sign-in). Returns it, to be written where only the
   * server's owner can read it; null when passwords exist.
   */
  async ensureInitialPassword(): Promise<{ name: string; password: string } | null> {
    if (await this.#store.anyPassword()) return null;
    const admin = await this.#store.firstAdmin();
    if (!admin) return null;
    const password = randomBytes(15).toString('base64url');
    await this.#store.setPassword(admin.id, await hashPassword(password), this.#clock.now().toISOString());
    return { name: admin.name, password };
  }
  /** Console sign-in: name and password give a session token valid SESSION_HOURS hours. */
  async signIn(name: string, password: string): Promise<{ token: string; expiresAt: string; name: string }> {
    const admin = await this.#store.findAdminByName(name);
    const ok = admin?.passwordHash ? await verifyPassword(password, admin.passwordHash) : (await verifyPassword(password, await (dummyHash ??= hashPassword(randomBytes(12).toString('base64url')))), false);
    if (!admin || !ok) throw new AppError('UNAUTHENTICATED', 'the name or the password is wrong');
    const expiresAt = new Date(this.#clock.now().getTime() + SESSION_HOURS * 3600_000).toISOString();
    const token = await this.#issue(admin.id, 'console session', { expiresAt });
    return { token, expiresAt, name: admin.name };
  }
  /** Ends the session the caller signed in with (a no-op for API tokens, which are revoked by id). */
  async signOut(actor: Actor): Promise<void> {
    if (actor.kind !== 'admin' || !actor.sessionId) return;
    await this.#store.revokeApiToken(actor.sessionId, actor.adminId, this.#clock.now().toISOString());
    this.#cache.delete(actor.sessionId);
  }
  /**
   * Sets the caller's password. Through a console session the current password is asked for
   * (a stolen session cannot lock its owner out); with an API token it is not, which is how a
   * forgotten password is reset. Other console sessions end.
   */
  async changePassword(actor: Actor, next: string, current?: string): Promise<void> {
    if (actor.kind !== 'admin') throw new AppError('FORBIDDEN', 'only administrators have passwords');
    if (next.length < PASSWORD_MIN_LENGTH) throw new AppError('VALIDATION_FAILED', `the new password needs at least ${PASSWORD_MIN_LENGTH} characters`);
    const stored = await this.#store.passwordHashOf(actor.adminId);
    if (actor.sessionId && stored && !(current !== undefined && (await verifyPassword(current, stored)))) {
      throw new AppError('FORBIDDEN', 'the current password is wrong');
    }
    const at = this.#clock.now().toISOString();
    await this.#store.setPassword(actor.adminId, await hashPassword(next), at);
    for (const id of await this.#store.revokeSessions(actor.adminId, at, actor.sessionId)) this.#cache.delete(id);
  }
  async purgeExpiredSessions(): Promise<number> {
    return this.#store.purgeExpiredSessions(new Date(this.#clock.now().getTime() - 86400_000).toISOString());
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
    const expired = (until: number | null) => until !== null && until <= this.#clock.now().getTime();
    if (cached && cached.until > now && sameHash(cached.hash, hash) && !expired(cached.expires)) return cached.actor;
    const row = await this.#store.findApiToken(id);
    if (!row || row.revoked || !sameHash(row.hash, hash)) throw fail;
    const expires = row.expiresAt ? Date.parse(row.expiresAt) : null;
    if (expired(expires)) throw new AppError('UNAUTHENTICATED', 'the console session has expired; sign in again');
    const actor: Actor = {
      kind: 'admin',
      adminId: row.admin.id,
      name: row.admin.name,
      role: row.admin.role,
      scopeGroupId: row.admin.scopeGroupId,
      ...(row.kind === 'session' ? { sessionId: id } : {}),
    };
    // A short cache: a revoked token stops working within 10 s on other server instances.
    this.#cache.set(id, { hash: row.hash, actor, until: now + 10_000, expires });
    return actor;
  }
}
