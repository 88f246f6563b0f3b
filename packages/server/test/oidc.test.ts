/**
 * Sign-in with OpenID Connect against a real provider: oidc-provider on a local port over
 * HTTPS with its own CA (which the OIDC settings trust), its development login and consent
 * forms driven with plain fetch the way a browser would (manual redirects, cookies per origin).
 * The accounts' groups are mapped to roles on groups of the tree; what each administrator may
 * then do is checked through the API.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { rm } from 'node:fs/promises';
import Provider from 'oidc-provider';
import { pinnedFetch, type FetchLike } from '@garrison/protocol/tls';
import { dbKinds, startTestServer, tempDir, type TestServer } from './helpers.ts';
import { hostileDevice } from './support/raw-agent.ts';
import { loadOrCreateTls } from '../src/tls/pki.ts';

const CLIENT_SECRET = 'idp-client-secret-0f3b9c2d7e';
const ACCOUNTS: Record<string, Record<string, unknown>> = {
  alice: { preferred_username: 'alice', email: 'alice@example.test', name: 'Alice Operator', groups: ['garrison-operators', 'staff'] },
  bob: { preferred_username: 'bob', email: 'bob@example.test', name: 'Bob Nobody', groups: ['staff'] },
  // Claims the name of the built-in administrator: gets a name of its own.
  mallory: { preferred_username: 'admin', email: 'mallory@example.test', groups: ['garrison-operators'] },
  dave: { preferred_username: 'dave', groups: ['garrison-operators'] },
};

interface TestProvider {
  issuer: string;
  caPem: string;
  fetch: FetchLike;
  close(): Promise<void>;
}

/** oidc-provider over HTTPS on 127.0.0.1 with a CA of its own; accounts from ACCOUNTS, any password. */
async function startProvider(redirectUri: string): Promise<TestProvider> {
  const dir = await tempDir('garrison-idp-');
  const tls = await loadOrCreateTls(dir, {});
  let handler: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void = (_q, r) => r.end();
  const server = https.createServer({ key: tls.key, cert: tls.cert }, (req, res) => handler(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const issuer = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: [{ client_id: 'garrison', client_secret: CLIENT_SECRET, redirect_uris: [redirectUri], grant_types: ['authorization_code'], response_types: ['code'] }],
    async findAccount(_ctx, id) {
      const a = ACCOUNTS[id];
      return a && { accountId: id, claims: async () => ({ sub: id, ...a }) };
    },
    claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email'], groups: ['groups'] },
    scopes: ['openid', 'profile', 'email', 'groups'],
    cookies: { keys: ['test-cookie-key-0123456789abcdef'] },
    features: { devInteractions: { enabled: true } },
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
  });
  handler = provider.callback();
  return {
    issuer,
    caPem: tls.caPem,
    fetch: pinnedFetch(tls.caPem),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A browser: cookies per origin, redirects followed by hand, the provider's forms submitted. */
class Browser {
  readonly #jar = new Map<string, Map<string, string>>();
  readonly #fetchers: Map<string, FetchLike>;
  constructor(fetchers: Record<string, FetchLike>) {
    this.#fetchers = new Map(Object.entries(fetchers).map(([url, f]) => [new URL(url).origin, f]));
  }
  cookies(origin: string): Map<string, string> {
    let m = this.#jar.get(origin);
    if (!m) this.#jar.set(origin, (m = new Map()));
    return m;
  }
  async request(url: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<Response> {
    const u = new URL(url);
    const f = this.#fetchers.get(u.origin);
    assert.ok(f, `no fetch for ${u.origin}`);
    const jar = this.cookies(u.origin);
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await f(url, { method: init.method ?? 'GET', redirect: 'manual', headers: { ...(cookie ? { cookie } : {}), ...(init.headers ?? {}) }, ...(init.body !== undefined ? { body: init.body } : {}) });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i).trim();
      const value = pair!.slice(i + 1).trim();
      const gone = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a) || (/^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]!) < Date.now()));
      if (gone || !value) jar.delete(name);
      else jar.set(name, value);
    }
    return res;
  }
  /**
   * From the console's login route through the provider's login and consent forms, until the
   * provider sends the browser back to `stopAt`: returns that callback URL.
   */
  async throughProvider(startUrl: string, login: string, stopAt: string, opts: { cancel?: boolean } = {}): Promise<string> {
    let url = startUrl;
    for (let step = 0; step < 20; step++) {
      const res = await this.request(url);
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel();
        const next = new URL(res.headers.get('location')!, url).href;
        if (next.startsWith(stopAt)) return next;
        url = next;
        continue;
      }
      const html = await res.text();
      assert.equal(res.status, 200, `${url}: ${html.slice(0, 300)}`);
      const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1]?.replace(/&amp;/g, '&');
      const prompt = /name="prompt" value="([^"]+)"/.exec(html)?.[1];
      assert.ok(action && prompt, `a form at ${url}: ${html.slice(0, 300)}`);
      if (opts.cancel) {
        const abort = /<a href="([^"]+\/abort)"/.exec(html)?.[1];
        assert.ok(abort, 'a cancel link');
        url = new URL(abort.replace(/&amp;/g, '&'), url).href;
        continue;
      }
      const body = new URLSearchParams(prompt === 'login' ? { prompt, login, password: 'any' } : { prompt });
      const posted = await this.request(new URL(action, url).href, { method: 'POST', body: body.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      await posted.body?.cancel();
      assert.ok(posted.status >= 300 && posted.status < 400, `form ${prompt}: HTTP ${posted.status}`);
      const next = new URL(posted.headers.get('location')!, url).href;
      if (next.startsWith(stopAt)) return next;
      url = next;
    }
    throw new Error('too many steps at the provider');
  }
}

for (const kind of dbKinds) {
  describe(`sign-in with OpenID Connect (${kind.name})`, () => {
    let t: TestServer;
    let idp: TestProvider;
    let groupX: string;
    let groupOther: string;
    let devX: string;
    let devOther: string;
    let settings: Record<string, unknown>;
    const callbackUrl = () => `${t.server.url}/api/v1/oidc/callback`;
    const newBrowser = () => new Browser({ [t.server.url]: t.fetch, [idp.issuer]: idp.fetch });
    const bearer = (token: string, method: string, url: string, body?: unknown) =>
      t.fetch(`${t.server.url}${url}`, { method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });

    /** The whole browser leg: returns where the console's page was sent (`?oidc=` or `?oidc-error=`), the callback URL and the browser. */
    async function signIn(login: string, browser = newBrowser()) {
      const callback = await browser.throughProvider(`${t.server.url}/api/v1/oidc/login`, login, callbackUrl());
      const res = await browser.request(callback);
      await res.body?.cancel();
      assert.equal(res.status, 302);
      const landing = new URL(res.headers.get('location')!, t.server.url);
      assert.equal(landing.pathname, '/');
      return { landing, callback, browser };
    }
    async function exchange(browser: Browser, code: string) {
      const res = await browser.request(`${t.server.url}/api/v1/session/oidc`, { method: 'POST', body: JSON.stringify({ code }), headers: { 'content-type': 'application/json' } });
      return { status: res.status, body: (await res.json()) as { token: string; expiresAt: string; name: string; error?: { code: string } } };
    }
    async function sessionOf(login: string) {
      const { landing, browser } = await signIn(login);
      const code = landing.searchParams.get('oidc');
      assert.ok(code, `signed in, not ${landing.search}`);
      const r = await exchange(browser, code);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return { ...r.body, code, browser };
    }

    before(async () => {
      t = await startTestServer(kind);
      idp = await startProvider(callbackUrl());
      groupX = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Operated' })).body.id;
      groupOther = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Elsewhere' })).body.id;
      devX = (await hostileDevice(t, groupX, 'oidc-operated-host')).deviceId;
      devOther = (await hostileDevice(t, groupOther, 'oidc-elsewhere-host')).deviceId;
      assert.equal((await t.api('PUT', '/api/v1/secrets/idp-client', { value: CLIENT_SECRET })).status, 204);
      settings = {
        issuer: idp.issuer,
        clientId: 'garrison',
        clientSecret: { $secret: 'idp-client' },
        displayName: 'Example IdP',
        scopes: ['openid', 'profile', 'email', 'groups'],
        roleMappings: [{ claimValue: 'garrison-operators', roleId: 'operator', groupId: groupX }],
        caPem: idp.caPem,
      };
    });
    after(async () => {
      await t?.close();
      await idp?.close();
    });

    it('validates the settings with stable codes and keeps the client secret a reference', async () => {
      const empty = await t.api<{ configured: boolean; enabled: boolean }>('GET', '/api/v1/settings/oidc');
      assert.deepEqual([empty.status, empty.body.configured, empty.body.enabled], [200, false, false]);
      assert.deepEqual((await t.api('GET', '/api/v1/oidc')).body, { enabled: false, displayName: null, loginPath: '/api/v1/oidc/login' });
      const code = async (body: unknown) => (await t.api<{ error: { code: string } }>('PUT', '/api/v1/settings/oidc', body)).body.error?.code;
      assert.equal(await code({ ...settings, issuer: idp.issuer.replace('https:', 'http:') }), 'OIDC_SETTINGS_INVALID');
      assert.equal(await code({ ...settings, issuer: 'not a url' }), 'OIDC_SETTINGS_INVALID');
      assert.equal(await code({ ...settings, clientSecret: CLIENT_SECRET }), 'SECRET_LITERAL_REFUSED');
      assert.equal(await code({ ...settings, clientSecret: { $secret: 'no-such-secret' } }), 'SECRET_NOT_FOUND');
      assert.equal(await code({ ...settings, roleMappings: [{ claimValue: 'x', roleId: 'no-such-role', groupId: groupX }] }), 'OIDC_SETTINGS_INVALID');
      assert.equal(await code({ ...settings, roleMappings: [{ claimValue: 'x', roleId: 'operator', groupId: 'no-such-group' }] }), 'OIDC_SETTINGS_INVALID');
      assert.equal(await code({ ...settings, caPem: 'not a certificate' }), 'OIDC_SETTINGS_INVALID');
      assert.equal(await code({ ...settings, redirectUri: 'https://example.test/elsewhere' }), 'OIDC_SETTINGS_INVALID');
      assert.equal(await code({ ...settings, unknownField: 1 }), 'VALIDATION_FAILED');
      // Without the provider's CA the server does not trust it: discovery fails before saving.
      assert.equal(await code({ ...settings, caPem: null }), 'OIDC_PROVIDER_UNAVAILABLE');
      assert.equal((await t.api<{ configured: boolean }>('GET', '/api/v1/settings/oidc')).body.configured, false, 'nothing was saved');

      const put = await t.api<Record<string, unknown>>('PUT', '/api/v1/settings/oidc', settings);
      assert.equal(put.status, 200, JSON.stringify(put.body));
      assert.deepEqual(put.body.clientSecret, { $secret: 'idp-client' });
      const got = await t.api<Record<string, unknown>>('GET', '/api/v1/settings/oidc');
      assert.equal(got.body.enabled, true);
      assert.equal(got.body.callbackPath, '/api/v1/oidc/callback');
      assert.deepEqual(got.body.scopes, ['openid', 'profile', 'email', 'groups']);
      assert.ok(!JSON.stringify(got.body).includes(CLIENT_SECRET), 'the client secret is never returned');
      // An absent client secret keeps the reference (the console need not ask for it again).
      const { clientSecret: _omit, ...withoutSecret } = settings;
      assert.deepEqual((await t.api<Record<string, unknown>>('PUT', '/api/v1/settings/oidc', withoutSecret)).body.clientSecret, { $secret: 'idp-client' });
      assert.deepEqual((await t.api('GET', '/api/v1/oidc')).body, { enabled: true, displayName: 'Example IdP', loginPath: '/api/v1/oidc/login' });
    });

    it('an operator of the organisation signs in with role operator on the mapped group only', async () => {
      const login = await newBrowser().request(`${t.server.url}/api/v1/oidc/login`);
      await login.body?.cancel();
      assert.equal(login.status, 302);
      const authorize = new URL(login.headers.get('location')!);
      assert.equal(authorize.origin, idp.issuer, 'to the provider');
      assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
      assert.ok(authorize.searchParams.get('code_challenge') && authorize.searchParams.get('state') && authorize.searchParams.get('nonce'));
      assert.equal(authorize.searchParams.get('redirect_uri'), callbackUrl());
      assert.match(login.headers.get('set-cookie') ?? '', /HttpOnly; Secure; SameSite=Lax/);

      const s = await sessionOf('alice');
      assert.equal(s.name, 'alice');
      assert.ok(Date.parse(s.expiresAt) - Date.now() > 11 * 3600_000, 'a console session of 12 hours');
      assert.ok(!s.code.includes(s.token.split('.')[2]!), 'the token is not in the URL');
      const me = (await (await bearer(s.token, 'GET', '/api/v1/me')).json()) as { name: string; displayName: string; via: string; session: boolean; grants: { roleId: string; groupId: string }[] };
      assert.deepEqual([me.name, me.displayName, me.via, me.session], ['alice', 'Alice Operator', 'console', true]);
      assert.deepEqual(me.grants.map((g) => [g.roleId, g.groupId]), [['operator', groupX]]);
      const devices = ((await (await bearer(s.token, 'GET', '/api/v1/devices')).json()) as { items: { id: string }[] }).items;
      assert.deepEqual(devices.map((d) => d.id), [devX], 'the devices of the mapped group only');
      assert.equal((await bearer(s.token, 'GET', `/api/v1/devices/${devOther}`)).status, 404);
      const task = await bearer(s.token, 'POST', '/api/v1/tasks', { name: 'not allowed', type: 'script', settings: { command: 'true' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: groupX } });
      assert.equal(task.status, 403);
      assert.equal(((await task.json()) as { error: { code: string } }).error.code, 'FORBIDDEN');
      const admins = await t.api<{ items: { name: string; oidcSubject: string | null; hasPassword: boolean; email: string }[] }>('GET', '/api/v1/admins');
      const alice = admins.body.items.find((a) => a.name === 'alice');
      assert.deepEqual([alice?.oidcSubject, alice?.hasPassword, alice?.email], ['alice', false, 'alice@example.test']);

      // The one-time code works once.
      const again = await exchange(s.browser, s.code);
      assert.deepEqual([again.status, again.body.error?.code], [401, 'OIDC_CODE_INVALID']);
      // A second sign-in is the same administrator.
      const s2 = await sessionOf('alice');
      assert.equal(s2.name, 'alice');
      assert.equal((await t.api<{ items: { name: string }[] }>('GET', '/api/v1/admins')).body.items.filter((a) => a.name.startsWith('alice')).length, 1);
    });

    it('refuses a user whose groups map to no role, and creates nobody; a sign-in cancelled at the provider lands on the console', async () => {
      const { landing } = await signIn('bob');
      assert.equal(landing.searchParams.get('oidc-error'), 'OIDC_NO_ROLE');
      assert.equal(landing.searchParams.get('oidc'), null);
      assert.ok(!(await t.api<{ items: { name: string }[] }>('GET', '/api/v1/admins')).body.items.some((a) => a.name === 'bob'));

      const browser = newBrowser();
      const callback = await browser.throughProvider(`${t.server.url}/api/v1/oidc/login`, 'alice', callbackUrl(), { cancel: true });
      assert.equal(new URL(callback).searchParams.get('error'), 'access_denied');
      const res = await browser.request(callback);
      await res.body?.cancel();
      assert.equal(new URL(res.headers.get('location')!, t.server.url).searchParams.get('oidc-error'), 'OIDC_SIGN_IN_FAILED');
    });

    it('refuses a replayed state, a sign-in completed in another browser, and a code exchanged from another browser', async () => {
      const { callback, browser } = await signIn('alice');
      const replay = await browser.request(callback);
      await replay.body?.cancel();
      assert.equal(new URL(replay.headers.get('location')!, t.server.url).searchParams.get('oidc-error'), 'OIDC_STATE_INVALID');

      // The attacker's own sign-in, completed in the victim's browser (login CSRF): refused.
      const attacker = newBrowser();
      const attackersCallback = await attacker.throughProvider(`${t.server.url}/api/v1/oidc/login`, 'alice', callbackUrl());
      const victim = newBrowser();
      const csrf = await victim.request(attackersCallback);
      await csrf.body?.cancel();
      assert.equal(new URL(csrf.headers.get('location')!, t.server.url).searchParams.get('oidc-error'), 'OIDC_STATE_INVALID');

      const { landing, browser: b2 } = await signIn('alice');
      const code = landing.searchParams.get('oidc')!;
      const elsewhere = await exchange(newBrowser(), code);
      assert.deepEqual([elsewhere.status, elsewhere.body.error?.code], [401, 'OIDC_CODE_INVALID']);
      assert.equal((await exchange(b2, code)).status, 401, 'and it was used up by the attempt');

      const forged = await newBrowser().request(`${callbackUrl()}?code=x&state=made-up`);
      await forged.body?.cancel();
      assert.equal(new URL(forged.headers.get('location')!, t.server.url).searchParams.get('oidc-error'), 'OIDC_STATE_INVALID');
    });

    it('names a new administrator uniquely, and sets grants from the groups at every sign-in', async () => {
      const m = await sessionOf('mallory');
      assert.equal(m.name, 'admin-2', 'not the built-in administrator');
      const me = (await (await bearer(m.token, 'GET', '/api/v1/me')).json()) as { adminId: string; grants: { roleId: string }[] };
      assert.deepEqual(me.grants.map((g) => g.roleId), ['operator']);

      // The mapping changes: staff are auditors of the other group, operators nothing any more.
      const a = await sessionOf('alice');
      assert.equal((await t.api('PUT', '/api/v1/settings/oidc', { ...settings, roleMappings: [{ claimValue: 'staff', roleId: 'auditor', groupId: groupOther }] })).status, 200);
      const a2 = await sessionOf('alice');
      const grants = ((await (await bearer(a2.token, 'GET', '/api/v1/me')).json()) as { grants: { roleId: string; groupId: string }[] }).grants;
      assert.deepEqual(grants.map((g) => [g.roleId, g.groupId]), [['auditor', groupOther]]);
      // Earlier sessions see the new grants at once.
      assert.deepEqual(((await (await bearer(a.token, 'GET', '/api/v1/devices')).json()) as { items: { id: string }[] }).items.map((d) => d.id), [devOther]);
      const synced = await t.api<{ items: { message: string }[] }>('GET', '/api/v1/events?kind=audit.admin.grants-synced');
      assert.ok(synced.body.items.some((e) => e.message.includes('"alice"')));

      // mallory's groups map to nothing now: refused, and her grants are gone.
      const { landing } = await signIn('mallory');
      assert.equal(landing.searchParams.get('oidc-error'), 'OIDC_NO_ROLE');
      assert.equal((await t.api<{ grants: unknown[] }>('GET', `/api/v1/admins/${me.adminId}`)).body.grants.length, 0);
      assert.equal((await bearer(m.token, 'GET', '/api/v1/devices')).status, 403, 'and her session can do nothing');
      assert.equal((await t.api('PUT', '/api/v1/settings/oidc', settings)).status, 200);
    });

    it('refuses disabled administrators, and unknown users when creation is off', async () => {
      const admins = (await t.api<{ items: { id: string; name: string }[] }>('GET', '/api/v1/admins')).body.items;
      const alice = admins.find((a) => a.name === 'alice')!;
      assert.equal((await t.api('PATCH', `/api/v1/admins/${alice.id}`, { disabled: true })).status, 200);
      assert.equal((await signIn('alice')).landing.searchParams.get('oidc-error'), 'UNAUTHENTICATED');
      assert.equal((await t.api('PATCH', `/api/v1/admins/${alice.id}`, { disabled: false })).status, 200);

      assert.equal((await t.api('PUT', '/api/v1/settings/oidc', { ...settings, createUsers: false })).status, 200);
      assert.equal((await signIn('dave')).landing.searchParams.get('oidc-error'), 'OIDC_ACCOUNT_UNKNOWN');
      assert.equal((await sessionOf('alice')).name, 'alice', 'known administrators still sign in');
      assert.equal((await t.api('PUT', '/api/v1/settings/oidc', { ...settings, enabled: false })).status, 200);
      const off = await newBrowser().request(`${t.server.url}/api/v1/oidc/login`);
      await off.body?.cancel();
      assert.equal(new URL(off.headers.get('location')!, t.server.url).searchParams.get('oidc-error'), 'OIDC_NOT_CONFIGURED');
      assert.equal((await t.api('PUT', '/api/v1/settings/oidc', settings)).status, 200);
    });

    it('audits sign-ins with how and from where, and never records the client secret', async () => {
      const ok = await t.api<{ items: { actor: string; via: string; address: string; data: { method: string } }[] }>('GET', '/api/v1/events?kind=admin.signed-in');
      const alice = ok.body.items.find((e) => e.actor === 'alice');
      assert.ok(alice, 'a sign-in event');
      assert.deepEqual([alice.via, alice.data.method], ['console', 'oidc']);
      assert.match(alice.address, /127\.0\.0\.1/);
      const failed = await t.api<{ items: { data: { code: string } }[] }>('GET', '/api/v1/events?kind=admin.sign-in-failed');
      const codes = new Set(failed.body.items.map((e) => e.data.code));
      for (const c of ['OIDC_NO_ROLE', 'OIDC_STATE_INVALID', 'OIDC_CODE_INVALID', 'OIDC_ACCOUNT_UNKNOWN', 'UNAUTHENTICATED']) assert.ok(codes.has(c), c);
      const all = await t.api('GET', '/api/v1/events?limit=1000');
      assert.ok(!JSON.stringify(all.body).includes(CLIENT_SECRET), 'no event holds the client secret');
      assert.ok(JSON.stringify(all.body).includes('settings.oidc-updated'));
    });
  });
}
