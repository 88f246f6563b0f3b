/**
 * Sign-in with the organisation's OpenID Connect provider (the authorization code flow with
 * PKCE, through openid-client), as the console's alternative to a password.
 *
 * - The settings live in server settings under `oidc`. The client secret is a reference to a
 *   stored secret (of the root group, since the server hands it to a URL an administrator
 *   chose), resolved through SecretService when the provider is called; it is never stored in
 *   clear nor returned.
 * - An identity is the pair (issuer, sub), never a name or an e-mail address, which many
 *   providers let users change. Unknown identities become administrators at their first
 *   sign-in when the settings allow it, named after preferred_username or email (made unique).
 * - The provider is authoritative for what its administrators may do: at every sign-in their
 *   grants are set from the role mappings of their groups claim. One whose groups map to no
 *   role loses every grant and is refused (OIDC_NO_ROLE); nobody without a role is created.
 * - The browser leg keeps nothing secret in a URL: the state, nonce and PKCE verifier stay
 *   here (in memory, 10 minutes, single use), bound to the browser that started the sign-in by
 *   a cookie, so that a sign-in started elsewhere cannot be completed in a victim's browser
 *   (login CSRF). The callback ends in a one-time code (60 s, single use, the same browser
 *   only) that the console exchanges for a session; the session token itself never appears in
 *   a URL, a Referer or the browser's history.
 * - Pending sign-ins are per server instance: behind a load balancer the login and the
 *   callback must reach the same instance (sticky sessions) until issue 14 shares them.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import * as client from 'openid-client';
import type { Logger } from 'pino';
import {
  ADMIN_NAME_PATTERN,
  OIDC_CALLBACK_PATH,
  OIDC_DEFAULT_DISPLAY_NAME,
  OIDC_DEFAULT_GROUPS_CLAIM,
  OIDC_DEFAULT_SCOPES,
  OIDC_LOGIN_PATH,
  Permission,
  isSecretRef,
  type ErrorCode,
  type OidcRoleMapping,
  type OidcSettingsInput,
  type OidcSettingsView,
  type OidcStatus,
  type SecretRef,
} from '@garrison/protocol';
import { pinnedFetch } from '@garrison/protocol/tls';
import { AppError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import { hashSecret, newId, newSecret, sameHash } from '../ids.ts';
import type { SignInStore } from '../storage/sign-in-store.ts';
import type { AdminStore, StoredGrant } from '../storage/admin-store.ts';
import type { SettingsStore } from '../storage/settings-store.ts';
import { authorize, type Actor } from './actor.ts';
import type { AdminService } from './admin-service.ts';
import type { AuthService } from './auth-service.ts';
import type { Catalog } from './catalog.ts';
import type { EventService } from './event-service.ts';
import type { SecretService } from './secret-service.ts';

export const OIDC_SETTINGS_KEY = 'oidc';
/** How long a started sign-in may take at the provider. */
export const OIDC_STATE_TTL_MS = 10 * 60_000;
/** How long the console has to exchange the one-time code. */
export const OIDC_CODE_TTL_MS = 60_000;
/** Bounds the pending sign-ins, which anyone may start: the oldest go first. */
const MAX_PENDING = 10_000;
/** Discovery documents are read again after this, or at once after a settings change. */
const DISCOVERY_TTL_MS = 3600_000;
const PROVIDER_TIMEOUT_S = 10;

/** What is stored under the `oidc` settings key: the view's fields, all of them set. */
type StoredOidcSettings = Omit<OidcSettingsView, 'configured' | 'callbackPath' | 'issuer' | 'clientId' | 'updatedAt'> & { issuer: string; clientId: string; updatedAt: string };

interface PendingLogin {
  codeVerifier: string;
  nonce: string;
  redirectUri: string;
  /** SHA-256 of the browser-binding cookie. */
  binding: string;
  expires: number;
}
interface PendingSession {
  adminId: string;
  name: string;
  binding: string;
  expires: number;
}

/** The claims a sign-in is decided on (ID token, completed by the UserInfo endpoint). */
type Claims = Record<string, unknown> & { sub: string };

function invalid(message: string, details?: unknown): AppError {
  return new AppError('OIDC_SETTINGS_INVALID', message, details);
}

/** https:// only: the ID token is trusted because it came over TLS from the issuer. */
function httpsUrl(value: string, field: string): URL {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw invalid(`${field} is not a URL`, { field });
  }
  if (u.protocol !== 'https:') throw invalid(`${field} must be an https:// URL`, { field });
  if (u.username || u.password || u.hash) throw invalid(`${field} may not hold credentials or a fragment`, { field });
  return u;
}

/** A claim by its exact name, or, when absent, by a dotted path into nested objects (Keycloak's realm_access.roles). */
function claimAt(claims: Record<string, unknown>, name: string): unknown {
  if (name in claims) return claims[name];
  let v: unknown = claims;
  for (const part of name.split('.')) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}
function groupsOf(claims: Record<string, unknown>, claim: string): string[] {
  const v = claimAt(claims, claim);
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}
function str(v: unknown, max: number): string | null {
  return typeof v === 'string' && v.trim() ? v.trim().slice(0, max) : null;
}

const NAME_RE = new RegExp(ADMIN_NAME_PATTERN);
/** An administrator name from the identity's claims: allowed characters only, at most 90 (room for a suffix). */
function baseName(claims: Claims): string {
  const raw = str(claims.preferred_username, 200) ?? str(claims.email, 320) ?? str(claims.name, 200) ?? `oidc-${claims.sub}`;
  const cleaned = raw.replace(/[^A-Za-z0-9._@-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 90).replace(/-+$/, '');
  return NAME_RE.test(cleaned) ? cleaned : 'oidc-user';
}

function sameGrants(a: readonly Omit<StoredGrant, 'adminId'>[], b: readonly Omit<StoredGrant, 'adminId'>[]): boolean {
  const key = (g: Omit<StoredGrant, 'adminId'>) => `${g.roleId}\n${g.groupId}`;
  const x = new Set(a.map(key));
  return x.size === new Set(b.map(key)).size && b.every((g) => x.has(key(g)));
}

/** Network trouble (unreachable, timed out) rather than a refusal. */
function isUnreachable(err: unknown): boolean {
  for (let e: unknown = err, i = 0; e && i < 5; e = (e as { cause?: unknown }).cause, i++) {
    const name = (e as { name?: string }).name;
    const message = String((e as { message?: string }).message ?? '');
    if (name === 'TimeoutError' || name === 'AbortError' || /fetch failed|ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|ECONNRESET|certificate|self.signed/i.test(message)) return true;
  }
  return false;
}

export class OidcService {
  readonly #settings: SettingsStore;
  readonly #secrets: SecretService;
  readonly #store: AdminStore;
  readonly #auth: AuthService;
  readonly #admins: AdminService;
  readonly #catalog: Catalog;
  readonly #clock: Clock;
  readonly #events: EventService;
  readonly #log: Logger;
  /** Pending sign-ins and one-time codes, sealed, in the database: any instance may take the next step. */
  readonly #pending: SignInStore;
  #discovered: { key: string; at: number; config: client.Configuration } | null = null;
  /** Sign-ins of one identity run one at a time, so that two first sign-ins create one administrator. */
  readonly #identityLocks = new Map<string, Promise<unknown>>();

  constructor(deps: { settings: SettingsStore; secrets: SecretService; store: AdminStore; auth: AuthService; admins: AdminService; catalog: Catalog; clock: Clock; events: EventService; log: Logger; pending: SignInStore }) {
    this.#pending = deps.pending;
    this.#settings = deps.settings;
    this.#secrets = deps.secrets;
    this.#store = deps.store;
    this.#auth = deps.auth;
    this.#admins = deps.admins;
    this.#catalog = deps.catalog;
    this.#clock = deps.clock;
    this.#events = deps.events;
    this.#log = deps.log;
  }

  // Settings

  async #stored(): Promise<StoredOidcSettings | undefined> {
    return this.#settings.get<StoredOidcSettings>(OIDC_SETTINGS_KEY);
  }
  #view(s: StoredOidcSettings | undefined): OidcSettingsView {
    return {
      configured: s !== undefined,
      enabled: s?.enabled ?? false,
      issuer: s?.issuer ?? null,
      clientId: s?.clientId ?? null,
      clientSecret: s?.clientSecret ?? null,
      tokenEndpointAuthMethod: s?.tokenEndpointAuthMethod ?? 'client_secret_basic',
      displayName: s?.displayName ?? OIDC_DEFAULT_DISPLAY_NAME,
      scopes: s?.scopes ?? [...OIDC_DEFAULT_SCOPES],
      groupsClaim: s?.groupsClaim ?? OIDC_DEFAULT_GROUPS_CLAIM,
      createUsers: s?.createUsers ?? true,
      roleMappings: s?.roleMappings ?? [],
      caPem: s?.caPem ?? null,
      redirectUri: s?.redirectUri ?? null,
      callbackPath: OIDC_CALLBACK_PATH,
      updatedAt: s?.updatedAt ?? null,
    };
  }
  /** Sign-in settings are server-wide: reading them needs read on the root group. */
  async getSettings(actor: Actor): Promise<OidcSettingsView> {
    authorize(actor, Permission.read, this.#catalog.tree);
    return this.#view(await this.#stored());
  }
  /**
   * Replaces the settings (admins:write on the root). An absent client secret keeps the
   * current reference; a literal value is refused. When enabled, the provider's discovery
   * document is read first, so that a wrong issuer or CA shows now rather than at sign-in.
   */
  async putSettings(actor: Actor, input: OidcSettingsInput): Promise<OidcSettingsView> {
    authorize(actor, Permission.manageAdmins, this.#catalog.tree);
    const before = await this.#stored();
    const issuer = httpsUrl(input.issuer, 'issuer');
    if (issuer.search) throw invalid('issuer may not have a query', { field: 'issuer' });
    if (input.redirectUri) {
      const r = httpsUrl(input.redirectUri, 'redirectUri');
      if (r.pathname !== OIDC_CALLBACK_PATH || r.search) throw invalid(`redirectUri must be https://<this server>${OIDC_CALLBACK_PATH}`, { field: 'redirectUri' });
    }
    if (input.caPem) {
      try {
        new X509Certificate(input.caPem);
      } catch {
        throw invalid('caPem is not a PEM certificate', { field: 'caPem' });
      }
    }
    let clientSecret: SecretRef | null;
    if (input.clientSecret === undefined) clientSecret = before?.clientSecret ?? null;
    else if (input.clientSecret === null) clientSecret = null;
    else if (isSecretRef(input.clientSecret)) clientSecret = { $secret: input.clientSecret.$secret };
    else throw new AppError('SECRET_LITERAL_REFUSED', 'give the client secret as {"$secret": name}: store its value as a secret of the root group first', { path: ['clientSecret'] });
    if (clientSecret) {
      await this.#secrets.assertRefsExist(clientSecret);
      // The server sends the value to the issuer this administrator chose: using a secret here needs the right to it.
      await this.#secrets.assertMayReference(actor, { clientSecret }, before ? { clientSecret: before.clientSecret } : undefined, []);
    }
    const roles = new Set((await this.#admins.listRoles({ kind: 'system', name: 'system' })).map((r) => r.id));
    const mappings = new Map<string, OidcRoleMapping>();
    for (const [i, m] of (input.roleMappings ?? []).entries()) {
      if (!roles.has(m.roleId)) throw invalid(`roleMappings[${i}]: no role ${m.roleId}`, { field: `roleMappings/${i}/roleId`, roleId: m.roleId });
      if (!this.#catalog.group(m.groupId)) throw invalid(`roleMappings[${i}]: no group ${m.groupId}`, { field: `roleMappings/${i}/groupId`, groupId: m.groupId });
      mappings.set(`${m.claimValue}\n${m.roleId}\n${m.groupId}`, { claimValue: m.claimValue, roleId: m.roleId, groupId: m.groupId });
    }
    const scopes = [...new Set(['openid', ...(input.scopes ?? OIDC_DEFAULT_SCOPES)])];
    const next: StoredOidcSettings = {
      enabled: input.enabled ?? true,
      // As given; discovery compares it with the provider's own after URL normalisation, and
      // administrators are linked to the issuer the provider names itself.
      issuer: input.issuer,
      clientId: input.clientId,
      clientSecret,
      tokenEndpointAuthMethod: input.tokenEndpointAuthMethod ?? 'client_secret_basic',
      displayName: input.displayName ?? OIDC_DEFAULT_DISPLAY_NAME,
      scopes,
      groupsClaim: input.groupsClaim ?? OIDC_DEFAULT_GROUPS_CLAIM,
      createUsers: input.createUsers ?? true,
      roleMappings: [...mappings.values()],
      caPem: input.caPem ?? null,
      redirectUri: input.redirectUri ?? null,
      updatedAt: this.#clock.now().toISOString(),
    };
    this.#discovered = null;
    if (next.enabled) await this.#configuration(next);
    await this.#settings.set(OIDC_SETTINGS_KEY, next);
    await this.#events.audit(actor, 'settings.oidc-updated', `OpenID Connect sign-in settings changed (${next.enabled ? 'enabled' : 'disabled'}, issuer ${next.issuer})`, {
      data: { enabled: next.enabled, issuer: next.issuer, clientId: next.clientId, clientSecret: next.clientSecret, createUsers: next.createUsers, roleMappings: next.roleMappings.length },
    });
    return this.#view(next);
  }
  /** Public: what the console's sign-in page shows. */
  async status(): Promise<OidcStatus> {
    const s = await this.#stored();
    return { enabled: Boolean(s?.enabled), displayName: s?.enabled ? s.displayName : null, loginPath: OIDC_LOGIN_PATH };
  }

  // The provider

  async #enabledSettings(): Promise<StoredOidcSettings> {
    const s = await this.#stored();
    if (!s?.enabled) throw new AppError('OIDC_NOT_CONFIGURED', 'sign-in with OpenID Connect is not configured on this server');
    return s;
  }
  /** The provider's metadata and this client, discovered once an hour (or after a settings change). */
  async #configuration(s: StoredOidcSettings): Promise<client.Configuration> {
    const secret = s.clientSecret ? (await this.#secrets.values([s.clientSecret.$secret])).get(s.clientSecret.$secret) : undefined;
    if (s.clientSecret && secret === undefined) throw new AppError('SECRET_NOT_FOUND', `the client secret "${s.clientSecret.$secret}" of the OpenID Connect settings does not exist`);
    // The cache key covers everything the configuration is made of; the secret only as a hash.
    const key = hashSecret(JSON.stringify([s.issuer, s.clientId, s.tokenEndpointAuthMethod, s.caPem, secret ? hashSecret(secret) : null]));
    const now = Date.now();
    if (this.#discovered && this.#discovered.key === key && now - this.#discovered.at < DISCOVERY_TTL_MS) return this.#discovered.config;
    const auth = secret === undefined ? client.None() : s.tokenEndpointAuthMethod === 'client_secret_post' ? client.ClientSecretPost(secret) : client.ClientSecretBasic(secret);
    let config: client.Configuration;
    try {
      config = await client.discovery(new URL(s.issuer), s.clientId, undefined, auth, {
        // An internal provider's own CA, trusted for this provider only (instead of the system's roots).
        ...(s.caPem ? { [client.customFetch]: pinnedFetch(s.caPem) as client.CustomFetch } : {}),
        timeout: PROVIDER_TIMEOUT_S,
        // ID tokens are also checked against the provider's keys, not only trusted for arriving over TLS.
        execute: [client.enableNonRepudiationChecks],
      });
    } catch (err) {
      this.#log.warn({ err, issuer: s.issuer }, 'OpenID Connect discovery failed');
      throw new AppError('OIDC_PROVIDER_UNAVAILABLE', `the identity provider ${s.issuer} could not be discovered: ${(err as Error).message}`);
    }
    const meta = config.serverMetadata();
    if (!meta.authorization_endpoint || !meta.token_endpoint) throw new AppError('OIDC_PROVIDER_UNAVAILABLE', `the identity provider ${s.issuer} names no authorization or token endpoint`);
    if (meta.code_challenge_methods_supported && !meta.code_challenge_methods_supported.includes('S256')) {
      throw new AppError('OIDC_PROVIDER_UNAVAILABLE', `the identity provider ${s.issuer} does not support PKCE with S256`);
    }
    this.#discovered = { key, at: now, config };
    return config;
  }

  // The browser leg

  async #keep(kind: 'login' | 'session', key: string, value: PendingLogin | PendingSession): Promise<void> {
    const now = this.#clock.now();
    await this.#pending.put(key, kind, this.#secrets.encrypt(JSON.stringify(value)), new Date(value.expires).toISOString(), now.toISOString(), MAX_PENDING);
  }
  async #take<T extends PendingLogin | PendingSession>(kind: 'login' | 'session', key: string): Promise<T | undefined> {
    const sealed = await this.#pending.take(key, kind, this.#clock.now().toISOString());
    return sealed === undefined ? undefined : (JSON.parse(this.#secrets.decrypt(sealed)) as T);
  }
  /**
   * Starts a sign-in: the provider's authorization URL (PKCE S256, state, nonce) and the value
   * of the cookie that binds the sign-in to this browser.
   */
  async beginLogin(defaultRedirectUri: string | null): Promise<{ url: string; binding: string }> {
    const s = await this.#enabledSettings();
    const redirectUri = s.redirectUri ?? defaultRedirectUri;
    if (!redirectUri) throw invalid('the callback address is unknown: set redirectUri in the OpenID Connect settings');
    const config = await this.#configuration(s);
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const binding = newSecret();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      response_type: 'code',
      scope: s.scopes.join(' '),
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    await this.#keep('login', hashSecret(state), { codeVerifier, nonce, redirectUri, binding: hashSecret(binding), expires: this.#clock.now().getTime() + OIDC_STATE_TTL_MS });
    return { url: url.href, binding };
  }

  /**
   * The provider's answer: checks the state (single use, this browser), exchanges the code,
   * validates the ID token, maps the identity to an administrator and their grants, and
   * returns a one-time code for the console. Failures are audited and thrown as AppError.
   */
  async completeLogin(query: Record<string, string>, binding: string | undefined, address: string): Promise<string> {
    let claims: Claims | null = null;
    try {
      const pending = query.state ? await this.#take<PendingLogin>('login', hashSecret(query.state)) : undefined;
      if (!pending || pending.expires <= this.#clock.now().getTime()) throw new AppError('OIDC_STATE_INVALID', 'this sign-in is unknown, expired or completed already; start again');
      if (!binding || !sameHash(pending.binding, hashSecret(binding))) throw new AppError('OIDC_STATE_INVALID', 'this sign-in was started in another browser; start again');
      const s = await this.#enabledSettings();
      if (query.error) {
        throw new AppError('OIDC_SIGN_IN_FAILED', `the identity provider refused the sign-in: ${query.error.slice(0, 100)}${query.error_description ? ` (${query.error_description.slice(0, 300)})` : ''}`);
      }
      const config = await this.#configuration(s);
      const current = new URL(pending.redirectUri);
      for (const [k, v] of Object.entries(query)) current.searchParams.set(k, v);
      let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
      try {
        tokens = await client.authorizationCodeGrant(config, current, { pkceCodeVerifier: pending.codeVerifier, expectedState: query.state, expectedNonce: pending.nonce, idTokenExpected: true });
      } catch (err) {
        this.#log.warn({ err }, 'OpenID Connect code exchange failed');
        if (isUnreachable(err)) throw new AppError('OIDC_PROVIDER_UNAVAILABLE', `the identity provider could not be reached: ${(err as Error).message}`);
        throw new AppError('OIDC_SIGN_IN_FAILED', `the identity provider's answer did not validate: ${(err as Error).message}`);
      }
      const idClaims = tokens.claims();
      if (!idClaims?.sub) throw new AppError('OIDC_SIGN_IN_FAILED', 'the identity provider sent no ID token subject');
      claims = { ...idClaims, sub: idClaims.sub };
      // Many providers put profile and group claims only in the UserInfo answer for the code flow.
      const wanted = [s.groupsClaim, 'preferred_username', 'email'];
      if (config.serverMetadata().userinfo_endpoint && tokens.access_token && wanted.some((c) => claimAt(claims!, c) === undefined)) {
        try {
          const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
          // What the ID token says wins; UserInfo fills in what it left out (its sub was checked to be the same).
          claims = { ...info, ...claims };
        } catch (err) {
          this.#log.warn({ err }, 'OpenID Connect UserInfo request failed; deciding on the ID token alone');
        }
      }
      const issuer = config.serverMetadata().issuer;
      const c = claims;
      const admin = await this.#serialized(`${issuer}\n${c.sub}`, () => this.#mapIdentity(s, issuer, c));
      const code = newSecret();
      await this.#keep('session', hashSecret(code), { adminId: admin.id, name: admin.name, binding: hashSecret(binding), expires: this.#clock.now().getTime() + OIDC_CODE_TTL_MS });
      return code;
    } catch (err) {
      const e = err instanceof AppError ? err : new AppError('OIDC_SIGN_IN_FAILED', 'the sign-in failed');
      if (!(err instanceof AppError)) this.#log.error({ err }, 'OpenID Connect sign-in failed');
      const who = claims ? (str(claims.preferred_username, 100) ?? str(claims.email, 100) ?? claims.sub.slice(0, 100)) : null;
      this.#events.record({
        severity: 'warning',
        kind: 'admin.sign-in-failed',
        message: `failed console sign-in through OpenID Connect${who ? ` as "${who}"` : ''}: ${e.code}`,
        via: 'console',
        address,
        data: { address, method: 'oidc', code: e.code, ...(claims ? { subject: claims.sub.slice(0, 200) } : {}) },
      });
      throw e;
    }
  }

  async #serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#identityLocks.get(key) ?? Promise.resolve();
    const run = prev.catch(() => {}).then(fn);
    this.#identityLocks.set(key, run);
    try {
      return await run;
    } finally {
      if (this.#identityLocks.get(key) === run) this.#identityLocks.delete(key);
    }
  }

  /** Finds or creates the administrator of (issuer, sub) and sets their grants from the groups claim. */
  async #mapIdentity(s: StoredOidcSettings, issuer: string, claims: Claims): Promise<{ id: string; name: string }> {
    const groups = new Set(groupsOf(claims, s.groupsClaim));
    const roles = new Set((await this.#admins.listRoles({ kind: 'system', name: 'system' })).map((r) => r.id));
    const grants = new Map<string, Omit<StoredGrant, 'adminId'>>();
    for (const m of s.roleMappings) {
      // A mapping whose role or group was deleted since is skipped.
      if (groups.has(m.claimValue) && roles.has(m.roleId) && this.#catalog.group(m.groupId)) grants.set(`${m.roleId}\n${m.groupId}`, { roleId: m.roleId, groupId: m.groupId });
    }
    const granted = [...grants.values()];
    const displayName = str(claims.name, 200);
    const email = str(claims.email, 320);
    const at = this.#clock.now().toISOString();
    const provider = { kind: 'system', name: 'openid-connect' } as const;
    const existing = await this.#store.findAdminByOidc(issuer, claims.sub);
    if (!existing) {
      if (!s.createUsers) throw new AppError('OIDC_ACCOUNT_UNKNOWN', 'no administrator is linked to this identity, and this server does not create them at first sign-in');
      if (granted.length === 0) throw new AppError('OIDC_NO_ROLE', `none of your groups (claim "${s.groupsClaim}") maps to a role on this server`);
      const name = await this.#uniqueName(baseName(claims));
      const id = newId();
      await this.#store.insertAdmin({ id, name, displayName, email, oidcIssuer: issuer, oidcSubject: claims.sub }, granted, at);
      await this.#events.audit(provider, 'admin.created', `administrator "${name}" created at their first sign-in through OpenID Connect`, { data: { adminId: id, issuer, subject: claims.sub, grants: granted } });
      return { id, name };
    }
    if (existing.disabledAt) throw new AppError('UNAUTHENTICATED', 'this administrator is disabled');
    const current = await this.#store.grantsOf(existing.id);
    if (!sameGrants(current, granted)) {
      await this.#store.replaceGrants(existing.id, granted, at);
      this.#auth.forgetAdmin(existing.id);
      await this.#events.audit(provider, 'admin.grants-synced', `grants of administrator "${existing.name}" set from their groups at the identity provider`, { data: { adminId: existing.id, grants: granted } });
    }
    if (displayName !== existing.displayName || email !== existing.email) await this.#store.updateAdmin(existing.id, { displayName, email });
    if (granted.length === 0) throw new AppError('OIDC_NO_ROLE', `none of your groups (claim "${s.groupsClaim}") maps to a role on this server`);
    return { id: existing.id, name: existing.name };
  }
  async #uniqueName(base: string): Promise<string> {
    for (let i = 1; i <= 50; i++) {
      const name = i === 1 ? base : `${base}-${i}`;
      if (!(await this.#store.findAdminByName(name))) return name;
    }
    return `${base}-${randomBytes(4).toString('hex')}`;
  }

  /** The console's exchange of the one-time code (single use, 60 s, the same browser) for a session. */
  async exchange(code: string, binding: string | undefined, address: string): Promise<{ token: string; expiresAt: string; name: string }> {
    const key = hashSecret(code);
    const pending = await this.#take<PendingSession>('session', key);
    let failure: ErrorCode | null = null;
    if (!pending || pending.expires <= this.#clock.now().getTime() || !binding || !sameHash(pending.binding, hashSecret(binding))) failure = 'OIDC_CODE_INVALID';
    else if ((await this.#store.getAdmin(pending.adminId))?.disabledAt !== null) failure = 'UNAUTHENTICATED';
    if (failure || !pending) {
      this.#events.record({ severity: 'warning', kind: 'admin.sign-in-failed', message: `failed console sign-in through OpenID Connect: ${failure}`, via: 'console', address, data: { address, method: 'oidc', code: failure } });
      throw failure === 'UNAUTHENTICATED'
        ? new AppError('UNAUTHENTICATED', 'this administrator is disabled or was deleted')
        : new AppError('OIDC_CODE_INVALID', 'this sign-in code is unknown, expired or used already; sign in again');
    }
    const session = await this.#auth.startSession(pending.adminId, pending.name, 'console session (OpenID Connect)');
    this.#events.record({
      severity: 'info',
      kind: 'admin.signed-in',
      message: `${session.name} signed in to the console through OpenID Connect`,
      actor: session.name,
      actorId: pending.adminId,
      via: 'console',
      address,
      data: { address, method: 'oidc' },
    });
    return session;
  }
}
