/**
 * Authentication of administrators: API tokens, console sessions (password, optional TOTP
 * second factor, or the organisation's OpenID provider through oidc-service.ts), and the
 * actor each request runs as, with its grants resolved to permissions (ADR 0013).
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { Secret, TOTP } from 'otpauth';
import { BUILTIN_ROLES, BuiltinRole, PASSWORD_MIN_LENGTH, type ActorVia, type ApiTokenView, type Permission } from '@garrison/protocol';
import { AppError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import { hashSecret, newId, newSecret, sameHash } from '../ids.ts';
import type { DomainBus } from './domain-bus.ts';
import type { AdminStore } from '../storage/admin-store.ts';
import type { Actor, Grant } from './actor.ts';

/** API tokens look like `gat.<tokenId>.<secret>`; the id finds the row, the secret is compared by hash. */
export const API_TOKEN_PREFIX = 'gat';
/** Console sessions are API tokens that expire (absolute lifetime). */
export const SESSION_HOURS = 12;
// The protocol's, so that the request schemas and this check agree.
export { PASSWORD_MIN_LENGTH };
/** How long a verified token is trusted without reading the database again (other instances see a revocation within this). */
const AUTH_CACHE_MS = 10_000;
/** last_used_at is written at most this often per token. */
const TOUCH_EVERY_MS = 60_000;
const TOTP_ISSUER = 'Garrison';

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

/** Encrypts what the server keeps of second factors (the secret store's key). */
export interface SealBox {
  encrypt(plain: string): string;
  decrypt(sealed: string): string;
}

/** How a request reached the server, for the actor it runs as. */
export interface RequestContext {
  address?: string;
  /** True when the client says it is the `garrison` CLI (its User-Agent). */
  cli?: boolean;
}

interface CachedToken {
  hash: string;
  adminId: string;
  name: string;
  grants: readonly Grant[];
  session: boolean;
  until: number;
  expires: number | null;
}

export class AuthService {
  readonly #store: AdminStore;
  readonly #clock: Clock;
  readonly #seal: SealBox;
  readonly #cache = new Map<string, CachedToken>();
  readonly #touched = new Map<string, number>();
  readonly #bus: DomainBus;

  constructor(deps: { store: AdminStore; clock: Clock; seal: SealBox; bus: DomainBus }) {
    this.#bus = deps.bus;
    // Tokens revoked, sessions ended or grants changed through another instance are not trusted
    // here from its cache either (it would for up to AUTH_CACHE_MS).
    deps.bus.on('admin-tokens.changed', (e, origin) => {
      if (origin === 'local') return;
      if (e.all) this.#cache.clear();
      for (const id of e.tokenIds) this.#cache.delete(id);
      if (e.adminIds.length) for (const [id, c] of this.#cache) if (e.adminIds.includes(c.adminId)) this.#cache.delete(id);
    });
    this.#store = deps.store;
    this.#clock = deps.clock;
    this.#seal = deps.seal;
  }

  /** The permissions of a role id (built-in or custom), undefined when it does not exist. */
  async #rolePermissions(): Promise<Map<string, readonly Permission[]>> {
    const m = new Map<string, readonly Permission[]>(BUILTIN_ROLES.map((r) => [r.id, r.permissions]));
    for (const r of await this.#store.listRoles()) m.set(r.id, r.permissions);
    return m;
  }
  async grantsOf(adminId: string): Promise<Grant[]> {
    const [stored, roles] = await Promise.all([this.#store.grantsOf(adminId), this.#rolePermissions()]);
    return stored.flatMap((g) => {
      const permissions = roles.get(g.roleId);
      return permissions ? [{ roleId: g.roleId, groupId: g.groupId, permissions }] : [];
    });
  }

  /** On first start: the main administrator and one API token. Returns the token, or null if administrators exist. */
  async bootstrap(rootGroupId: string): Promise<string | null> {
    if ((await this.#store.countAdmins()) > 0) return null;
    const at = this.#clock.now().toISOString();
    const adminId = newId();
    await this.#store.insertAdmin({ id: adminId, name: 'admin' }, [{ roleId: BuiltinRole.mainAdministrator, groupId: rootGroupId }], at);
    return this.#issue(adminId, 'initial administrator token');
  }
  async #issue(adminId: string, name: string, opts: { session?: boolean; expiresAt?: string | null } = {}): Promise<string> {
    const id = newId();
    const secret = newSecret();
    await this.#store.insertApiToken({
      id,
      adminId,
      name,
      hash: hashSecret(secret),
      at: this.#clock.now().toISOString(),
      kind: opts.session ? 'session' : 'api',
      expiresAt: opts.expiresAt ?? null,
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

  /**
   * Console sign-in with a name and password, and the current TOTP code when the
   * administrator has a second factor: a session token valid SESSION_HOURS hours.
   */
  async signIn(name: string, password: string, otp?: string): Promise<{ token: string; expiresAt: string; name: string }> {
    const admin = await this.#store.findAdminByName(name);
    const ok = admin?.passwordHash ? await verifyPassword(password, admin.passwordHash) : (await verifyPassword(password, await (dummyHash ??= hashPassword(randomBytes(12).toString('base64url')))), false);
    if (!admin || !ok) throw new AppError('UNAUTHENTICATED', 'the name or the password is wrong');
    if (admin.disabledAt) throw new AppError('UNAUTHENTICATED', 'this administrator is disabled');
    if (admin.totpEnabled) {
      if (!otp) throw new AppError('SECOND_FACTOR_REQUIRED', 'give the 6-digit code of your authenticator app as "otp"');
      if (!admin.totpSecret || !(await this.#checkTotp(admin.id, this.#seal.decrypt(admin.totpSecret), otp))) throw new AppError('UNAUTHENTICATED', 'the second-factor code is wrong or was used already');
    }
    return this.startSession(admin.id, admin.name, 'console session');
  }
  /** A console session for an administrator whose identity another mechanism proved (OpenID Connect). */
  async startSession(adminId: string, name: string, label: string): Promise<{ token: string; expiresAt: string; name: string }> {
    const now = this.#clock.now();
    const expiresAt = new Date(now.getTime() + SESSION_HOURS * 3600_000).toISOString();
    const token = await this.#issue(adminId, label, { session: true, expiresAt });
    await this.#store.updateAdmin(adminId, { lastSignInAt: now.toISOString() });
    return { token, expiresAt, name };
  }
  /** Ends the session the caller signed in with (a no-op for API tokens, which are revoked by id). */
  async signOut(actor: Actor): Promise<void> {
    if (actor.kind !== 'admin' || !actor.sessionId) return;
    await this.#store.revokeApiToken(actor.sessionId, actor.adminId, this.#clock.now().toISOString());
    this.#forgetTokens([actor.sessionId]);
  }
  /**
   * Sets the caller's password. Through a console session the current password is asked for
   * (a stolen session cannot lock its owner out); with an API token it is not, which is how a
   * forgotten password is reset. Other console sessions end.
   */
  async changePassword(actor: Actor, next: string, current?: string): Promise<void> {
    if (actor.kind !== 'admin') throw new AppError('FORBIDDEN', 'only administrators have passwords');
    const stored = await this.#store.passwordHashOf(actor.adminId);
    if (actor.sessionId && stored && !(current !== undefined && (await verifyPassword(current, stored)))) {
      throw new AppError('FORBIDDEN', 'the current password is wrong');
    }
    await this.setPassword(actor.adminId, next, actor.sessionId);
  }
  /** Sets an administrator's password and ends their other console sessions. */
  async setPassword(adminId: string, next: string, keepSessionId?: string): Promise<void> {
    if (next.length < PASSWORD_MIN_LENGTH) throw new AppError('VALIDATION_FAILED', `the new password needs at least ${PASSWORD_MIN_LENGTH} characters`);
    const at = this.#clock.now().toISOString();
    await this.#store.setPassword(adminId, await hashPassword(next), at);
    this.#forgetTokens(await this.#store.revokeSessions(adminId, at, keepSessionId));
  }
  /** Forgets cached tokens, here and on the other instances. */
  #forgetTokens(ids: string[]): void {
    for (const id of ids) this.#cache.delete(id);
    this.#bus.publish({ type: 'admin-tokens.changed', tokenIds: ids, adminIds: [], all: false });
  }
  /** Forgets what is cached of an administrator's tokens (grants changed, disabled, deleted), on every instance. */
  forgetAdmin(adminId: string): void {
    for (const [id, c] of this.#cache) if (c.adminId === adminId) this.#cache.delete(id);
    this.#bus.publish({ type: 'admin-tokens.changed', tokenIds: [], adminIds: [adminId], all: false });
  }
  /** Forgets every cached token (a role's permissions changed), on every instance. */
  forgetAll(): void {
    this.#cache.clear();
    this.#bus.publish({ type: 'admin-tokens.changed', tokenIds: [], adminIds: [], all: true });
  }
  async purgeExpiredSessions(): Promise<number> {
    return this.#store.purgeExpiredSessions(new Date(this.#clock.now().getTime() - 86400_000).toISOString());
  }

  // API tokens: named, optionally expiring, revocable, with the time they were last used.
  async createToken(actor: Actor, name: string, expiresInDays?: number): Promise<{ token: string; view: ApiTokenView }> {
    if (actor.kind !== 'admin') throw new AppError('FORBIDDEN', 'only administrators have API tokens');
    const expiresAt = expiresInDays ? new Date(this.#clock.now().getTime() + expiresInDays * 86400_000).toISOString() : null;
    const token = await this.#issue(actor.adminId, name, { expiresAt });
    const id = token.split('.')[1]!;
    return { token, view: (await this.#store.listApiTokens(actor.adminId)).find((t) => t.id === id)! };
  }
  async listTokens(actor: Actor): Promise<ApiTokenView[]> {
    if (actor.kind !== 'admin') throw new AppError('FORBIDDEN', 'only administrators have API tokens');
    return this.#store.listApiTokens(actor.adminId);
  }
  async revokeToken(actor: Actor, id: string): Promise<void> {
    if (actor.kind !== 'admin') throw new AppError('FORBIDDEN', 'only administrators have API tokens');
    if (!(await this.#store.revokeApiToken(id, actor.adminId, this.#clock.now().toISOString()))) throw new AppError('NOT_FOUND', `API token ${id} does not exist`);
    this.#forgetTokens([id]);
  }

  async authenticate(token: string | undefined, ctx: RequestContext = {}): Promise<Extract<Actor, { kind: 'admin' }>> {
    const fail = () => new AppError('UNAUTHENTICATED', 'give a valid API token as "Authorization: Bearer gat.…"');
    if (!token) throw fail();
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== API_TOKEN_PREFIX || !parts[1] || !parts[2]) throw fail();
    const [, id, secret] = parts as [string, string, string];
    const hash = hashSecret(secret);
    const now = this.#clock.now().getTime();
    const expired = (until: number | null) => until !== null && until <= now;
    let c = this.#cache.get(id);
    if (!c || c.until <= Date.now() || !sameHash(c.hash, hash)) {
      const row = await this.#store.findApiToken(id);
      if (!row || row.revoked || !sameHash(row.hash, hash)) throw fail();
      if (row.adminDisabled) throw new AppError('UNAUTHENTICATED', 'this administrator is disabled');
      c = {
        hash: row.hash,
        adminId: row.adminId,
        name: row.adminName,
        grants: await this.grantsOf(row.adminId),
        session: row.kind === 'session',
        until: Date.now() + AUTH_CACHE_MS,
        expires: row.expiresAt ? Date.parse(row.expiresAt) : null,
      };
      this.#cache.set(id, c);
    }
    if (expired(c.expires)) throw new AppError('UNAUTHENTICATED', c.session ? 'the console session has expired; sign in again' : 'this API token has expired');
    this.#touch(id, now);
    const via: ActorVia = c.session ? 'console' : ctx.cli ? 'cli' : 'api-token';
    return {
      kind: 'admin',
      adminId: c.adminId,
      name: c.name,
      grants: c.grants,
      via,
      tokenId: id,
      ...(ctx.address ? { address: ctx.address } : {}),
      ...(c.session ? { sessionId: id } : {}),
    };
  }
  #touch(id: string, now: number): void {
    const last = this.#touched.get(id);
    if (last !== undefined && now - last < TOUCH_EVERY_MS) return;
    this.#touched.set(id, now);
    void this.#store.touchApiTokens([id], new Date(now).toISOString()).catch(() => this.#touched.delete(id));
  }

  // Second factor: TOTP (RFC 6238, 30 s steps, 6 digits), one window of clock drift either way.
  /** Starts enrolling a second factor: a new secret, not in force until confirmed with a code. */
  async beginTotp(actor: Actor): Promise<{ secret: string; uri: string }> {
    if (actor.kind !== 'admin') throw new AppError('FORBIDDEN', 'only administrators have a second factor');
    const state = await this.#store.totpSecretOf(actor.adminId);
    if (state.enabled) throw new AppError('CONFLICT', 'a second factor is already set; remove it first');
    const secret = new Secret({ size: 20 });
    await this.#store.setTotp(actor.adminId, this.#seal.encrypt(secret.base32), null);
    const totp = new TOTP({ issuer: TOTP_ISSUER, label: actor.name, secret });
    return { secret: secret.base32, uri: totp.toString() };
  }
  /** Puts the second factor in force once the administrator shows a valid code. */
  async confirmTotp(actor: Actor, code: string): Promise<void> {
    if (actor.kind !== 'admin') throw new AppError('FORBIDDEN', 'only administrators have a second factor');
    const state = await this.#store.totpSecretOf(actor.adminId);
    if (!state.secret || state.enabled) throw new AppError('CONFLICT', 'start with POST /api/v1/me/totp');
    if (!(await this.#checkTotp(actor.adminId, this.#seal.decrypt(state.secret), code))) throw new AppError('VALIDATION_FAILED', 'the code is wrong; check the time of the device that shows it');
    await this.#store.setTotp(actor.adminId, state.secret, this.#clock.now().toISOString());
  }
  /** Removes a second factor: the caller's own (with a valid code), or anyone's by an administrator manager. */
  async removeTotp(adminId: string, code?: string): Promise<void> {
    const state = await this.#store.totpSecretOf(adminId);
    if (code !== undefined) {
      if (!state.enabled || !state.secret || !(await this.#checkTotp(adminId, this.#seal.decrypt(state.secret), code))) throw new AppError('VALIDATION_FAILED', 'the code is wrong');
    }
    await this.#store.setTotp(adminId, null, null);
  }
  /** A valid code whose time step is later than the last one taken for the administrator (RFC 6238 §5.2: once). */
  async #checkTotp(adminId: string, base32: string, code: string): Promise<boolean> {
    if (!/^\d{6}$/.test(code)) return false;
    const totp = new TOTP({ issuer: TOTP_ISSUER, secret: Secret.fromBase32(base32) });
    const now = this.#clock.now().getTime();
    const delta = totp.validate({ token: code, timestamp: now, window: 1 });
    if (delta === null) return false;
    return this.#store.takeTotpStep(adminId, Math.floor(now / 30_000) + delta);
  }

}
