/**
 * What the web console needs of the server, over real HTTPS on every configured database:
 * password sign-in with expiring sessions, sign-out and password change, the live-update
 * stream, the scope preview, the dashboard summary, and the console served at `/` with its
 * security headers (the browser tests are in packages/console/test).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dbKinds, startTestServer, waitFor, type TestServer } from './helpers.ts';

for (const kind of dbKinds) {
  describe(`console API (${kind.name})`, () => {
    let t: TestServer;
    let password: string;
    const signIn = (name: string, pw: string) =>
      t.fetch(`${t.server.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password: pw }) });
    const as = (token: string, method: string, url: string, body?: unknown) =>
      t.fetch(`${t.server.url}${url}`, { method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });

    before(async () => {
      t = await startTestServer(kind);
      assert.ok(t.server.initialPassword, 'a new server gives the first administrator a password');
      password = (await readFile(t.server.initialPassword.file, 'utf8')).trim();
    });
    after(() => t.close());

    it('signs in with the initial password; a wrong one is refused with UNAUTHENTICATED and an event', async () => {
      const bad = await signIn('admin', 'not the password');
      assert.equal(bad.status, 401);
      assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
      const unknown = await signIn('nobody', password);
      assert.equal(unknown.status, 401);
      const ok = await signIn('admin', password);
      assert.equal(ok.status, 201);
      const s = (await ok.json()) as { token: string; expiresAt: string; name: string };
      assert.equal(s.name, 'admin');
      assert.ok(Date.parse(s.expiresAt) - Date.now() > 11 * 3600_000, 'a session lasts 12 hours');
      const me = (await (await as(s.token, 'GET', '/api/v1/me')).json()) as { name: string; session: boolean };
      assert.deepEqual([me.name, me.session], ['admin', true]);
      const events = await t.api<{ items: { kind: string; message: string }[] }>('GET', '/api/v1/events?kind=admin.sign-in-failed');
      assert.equal(events.body.items.length, 2);
      assert.ok(!JSON.stringify(events.body.items).includes('not the password'), 'tried passwords are not logged');
      // Console sessions are not listed among API tokens.
      const tokens = await t.api<{ items: { name: string }[] }>('GET', '/api/v1/api-tokens');
      assert.ok(tokens.body.items.every((x) => x.name !== 'console session'));
    });

    it('signs out: the session token stops working at once', async () => {
      const s = (await (await signIn('admin', password)).json()) as { token: string };
      assert.equal((await as(s.token, 'GET', '/api/v1/groups')).status, 200);
      assert.equal((await as(s.token, 'DELETE', '/api/v1/session')).status, 204);
      const after = await as(s.token, 'GET', '/api/v1/groups');
      assert.equal(after.status, 401);
    });

    it('changes the password: the current one is needed from a session, other sessions end, the old password stops working', async () => {
      const a = ((await (await signIn('admin', password)).json()) as { token: string }).token;
      const b = ((await (await signIn('admin', password)).json()) as { token: string }).token;
      const short = await as(a, 'PUT', '/api/v1/me/password', { currentPassword: password, newPassword: 'short' });
      assert.equal(short.status, 400);
      assert.equal(((await short.json()) as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
      const wrong = await as(a, 'PUT', '/api/v1/me/password', { currentPassword: 'wrong', newPassword: 'a much longer password' });
      assert.equal(wrong.status, 403);
      assert.equal((await as(a, 'PUT', '/api/v1/me/password', { currentPassword: password, newPassword: 'a much longer password' })).status, 204);
      assert.equal((await as(a, 'GET', '/api/v1/me')).status, 200, 'the session that changed it goes on');
      assert.equal((await as(b, 'GET', '/api/v1/me')).status, 401, 'other sessions end');
      assert.equal((await signIn('admin', password)).status, 401);
      assert.equal((await signIn('admin', 'a much longer password')).status, 201);
      // With an API token (the CLI) no current password is asked: that is the reset path.
      assert.equal((await t.api('PUT', '/api/v1/me/password', { newPassword: password })).status, 204);
      assert.equal((await signIn('admin', password)).status, 201);
    });

    it('limits sign-in attempts per address with RATE_LIMITED', async () => {
      let last = 0;
      let body: { error?: { code: string } } = {};
      for (let i = 0; i < 12 && last !== 429; i++) {
        const r = await signIn('admin', 'guess');
        last = r.status;
        body = (await r.json()) as typeof body;
      }
      assert.equal(last, 429);
      assert.equal(body.error?.code, 'RATE_LIMITED');
    });

    it('streams live topics: a group change reaches a signed-in console within seconds; no stream without a token', async () => {
      const ctrl = new AbortController();
      const res = await t.fetch(`${t.server.url}/api/v1/live`, { headers: { authorization: `Bearer ${t.token}` }, signal: ctrl.signal });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let text = '';
      const seen = new Set<string>();
      const pump = (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          text += value;
          for (const m of text.matchAll(/data: (\{.*\})/g)) for (const topic of (JSON.parse(m[1]!) as { topics?: string[] }).topics ?? []) seen.add(topic);
        }
      })().catch(() => {});
      await waitFor(async () => text.includes('event: ready'), { what: 'stream ready' });
      await t.api('POST', '/api/v1/groups', { name: `live ${kind.name}` });
      await waitFor(async () => seen.has('config') && seen.has('events'), { what: 'config topic', timeoutMs: 5000 });
      ctrl.abort();
      await pump;
      const unauth = await t.fetch(`${t.server.url}/api/v1/live`);
      assert.equal(unauth.status, 401);
    });

    it('previews a scope: devices of a group, errors for unknown groups', async () => {
      const g = await t.api<{ id: string }>('POST', '/api/v1/groups', { name: `preview ${kind.name}` });
      const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId: g.body.id, maxUses: 3 });
      for (const name of ['pv-a', 'pv-b', 'pv-c']) {
        const r = await t.fetch(`${t.server.url}/agent/v1/enrol`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ token: tok.body.token, inventory: { hostname: name, osPlatform: 'linux', osName: 'Linux', osVersion: '6', arch: 'x64', addresses: [], agentVersion: '0.1.0', timeZone: 'UTC', products: [] } }),
        });
        assert.equal(r.status, 201);
      }
      const p = await t.api<{ total: number; devices: { name: string }[] }>('POST', '/api/v1/scopes/preview', { scope: { type: 'group', groupId: g.body.id }, limit: 2 });
      assert.equal(p.status, 200);
      assert.equal(p.body.total, 3);
      assert.equal(p.body.devices.length, 2);
      const sel = await t.api<{ total: number }>('POST', '/api/v1/scopes/preview', { scope: { type: 'global', selection: { namePattern: 'pv-?' } } });
      assert.equal(sel.body.total, 3);
      const bad = await t.api<{ error: { code: string } }>('POST', '/api/v1/scopes/preview', { scope: { type: 'group', groupId: 'nope' } });
      assert.equal(bad.body.error.code, 'SCOPE_INVALID');
      const malformed = await t.api<{ error: { code: string } }>('POST', '/api/v1/scopes/preview', { scope: { type: 'planet' } });
      assert.equal(malformed.body.error.code, 'VALIDATION_FAILED');
      const sum = await t.api<{ devices: { total: number; online: number; offline: number }; runs: { states: Record<string, number> }; compliance: unknown[] }>('GET', '/api/v1/summary');
      assert.equal(sum.status, 200);
      assert.ok(sum.body.devices.total >= 3);
      assert.equal(sum.body.devices.online + sum.body.devices.offline, sum.body.devices.total);
      assert.equal(typeof sum.body.runs.states, 'object');
    });

    it('keeps a secret description when a new value comes without one', async () => {
      assert.equal((await t.api('PUT', '/api/v1/secrets/console-kept', { value: 'one', description: 'the db password' })).status, 204);
      assert.equal((await t.api('PUT', '/api/v1/secrets/console-kept', { value: 'two' })).status, 204);
      const list = await t.api<{ items: { name: string; description: string }[] }>('GET', '/api/v1/secrets');
      assert.equal(list.body.items.find((x) => x.name === 'console-kept')?.description, 'the db password');
      assert.ok(!JSON.stringify(list.body).includes('two'));
    });

    it('serves the console at / and its client routes with a strict content security policy; API paths stay JSON 404s', async () => {
      const root = await t.fetch(`${t.server.url}/`, { headers: { accept: 'text/html' } });
      assert.equal(root.status, 200);
      assert.match(root.headers.get('content-security-policy') ?? '', /default-src 'self'.*frame-ancestors 'none'/);
      const html = await root.text();
      if (t.server.consoleBuilt) {
        assert.match(html, /<div id="root">/);
        const deep = await t.fetch(`${t.server.url}/tasks/some-id`, { headers: { accept: 'text/html' } });
        assert.equal(deep.status, 200);
        assert.equal(await deep.text(), html);
        const asset = html.match(/src="(\/assets\/[^"]+\.js)"/)?.[1];
        assert.ok(asset);
        const js = await t.fetch(`${t.server.url}${asset}`);
        assert.equal(js.status, 200);
        assert.match(js.headers.get('cache-control') ?? '', /immutable/);
        // Compressed when the browser accepts it (the build's .br and .gz), the same code and headers.
        const plain = await t.fetch(`${t.server.url}${asset}`, { headers: { 'accept-encoding': 'identity' } });
        assert.equal(plain.headers.get('content-encoding'), null);
        const code = await plain.text();
        for (const encoding of ['br', 'gzip']) {
          const packed = await t.fetch(`${t.server.url}${asset}`, { headers: { 'accept-encoding': encoding } });
          assert.equal(packed.headers.get('content-encoding'), encoding);
          assert.ok(Number(packed.headers.get('content-length')) < code.length / 3, `${encoding}: ${packed.headers.get('content-length')} bytes of ${code.length}`);
          assert.match(packed.headers.get('content-security-policy') ?? '', /default-src 'self'/);
          assert.equal(await packed.text(), code);
        }
      } else assert.match(html, /not built/);
      const api404 = await t.fetch(`${t.server.url}/api/v1/nothing-here`, { headers: { accept: 'text/html', authorization: `Bearer ${t.token}` } });
      assert.equal(api404.status, 404);
      assert.equal(((await api404.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
      const missingAsset = await t.fetch(`${t.server.url}/assets/missing.js`, { headers: { accept: 'text/html' } });
      assert.equal(missingAsset.status, 404);
    });
  });
}
