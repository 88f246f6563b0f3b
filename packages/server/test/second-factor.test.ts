/**
 * The TOTP second factor of password sign-in, over real HTTPS on every configured database:
 * enrolment (secret and otpauth:// URI, confirmed with a code), sign-in with and without the
 * code, single use of each code, removal by an administrator manager, and the secret kept
 * encrypted at rest. Codes are computed with otpauth, as an authenticator app would.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { Secret, TOTP } from 'otpauth';
import { dbKinds, startTestServer, type TestServer } from './helpers.ts';

const PASSWORD = 'a long enough password';

for (const kind of dbKinds) {
  describe(`second factor (${kind.name})`, () => {
    let t: TestServer;
    let rootId: string;
    let adminId: string;
    let session: string;
    let secret: string;
    let confirmStep: number;
    /** The 30-second steps whose codes were spent (the server accepts one step of drift either way). */
    const spent = new Set<number>();

    const post = (url: string, body: unknown, token?: string) =>
      t.fetch(`${t.server.url}${url}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
    const as = (token: string, method: string, url: string) => t.fetch(`${t.server.url}${url}`, { method, headers: { authorization: `Bearer ${token}` } });
    const signIn = async (body: Record<string, string>) => {
      const res = await post('/api/v1/session', { name: 'tess', password: PASSWORD, ...body });
      return { status: res.status, body: (await res.json()) as { token?: string; name?: string; error?: { code: string } } };
    };
    const codeAt = (step: number) => new TOTP({ secret: Secret.fromBase32(secret) }).generate({ timestamp: step * 30_000 });
    /** A well-formed code that no step within the accepted drift has. */
    const wrongCode = () => {
      const now = Math.floor(Date.now() / 30_000);
      const valid = new Set([now - 2, now - 1, now, now + 1, now + 2].map(codeAt));
      for (let n = 0; ; n++) {
        const c = String(n).padStart(6, '0');
        if (!valid.has(c)) return c;
      }
    };
    /** A code of a step nobody used yet: the next step first (still valid if a step boundary passes meanwhile), else the current one. */
    const freshCode = () => {
      const now = Math.floor(Date.now() / 30_000);
      const step = [now + 1, now].find((s) => !spent.has(s));
      assert.ok(step !== undefined, 'a fresh step');
      spent.add(step);
      return codeAt(step);
    };

    before(async () => {
      t = await startTestServer(kind);
      rootId = (await t.api<{ items: { id: string; parentId: string | null }[] }>('GET', '/api/v1/groups')).body.items.find((g) => g.parentId === null)!.id;
      const created = await t.api<{ id: string }>('POST', '/api/v1/admins', { name: 'tess', password: PASSWORD, grants: [{ roleId: 'operator', groupId: rootId }] });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      adminId = created.body.id;
      const s = await signIn({});
      assert.equal(s.status, 201, 'no second factor yet: the password is enough');
      session = s.body.token!;
    });
    after(() => t.close());

    it('starts with a secret and an otpauth URI, refuses a wrong code, and is in force after the right one', async () => {
      const begin = await post('/api/v1/me/totp', {}, session);
      assert.equal(begin.status, 201);
      const b = (await begin.json()) as { secret: string; uri: string };
      secret = b.secret;
      assert.match(secret, /^[A-Z2-7]{32}$/, 'a 160-bit base32 secret');
      const uri = new URL(b.uri);
      assert.equal(uri.protocol, 'otpauth:');
      assert.equal(uri.host, 'totp');
      assert.equal(uri.searchParams.get('secret'), secret);
      assert.equal(uri.searchParams.get('issuer'), 'Garrison');
      assert.match(decodeURIComponent(uri.pathname), /tess/);
      // Not in force before it is confirmed.
      assert.equal(((await (await as(session, 'GET', '/api/v1/me')).json()) as { totpEnabled: boolean }).totpEnabled, false);

      const bad = await post('/api/v1/me/totp/confirm', { code: wrongCode() }, session);
      assert.equal(bad.status, 400);
      assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
      const malformed = await post('/api/v1/me/totp/confirm', { code: '12ab56' }, session);
      assert.equal(malformed.status, 400);

      confirmStep = Math.floor(Date.now() / 30_000);
      spent.add(confirmStep);
      const ok = await post('/api/v1/me/totp/confirm', { code: codeAt(confirmStep) }, session);
      assert.equal(ok.status, 204);
      assert.equal(((await (await as(session, 'GET', '/api/v1/me')).json()) as { totpEnabled: boolean }).totpEnabled, true);
      const again = await post('/api/v1/me/totp', {}, session);
      assert.equal(again.status, 409, 'a second one cannot be started over the one in force');
      const audit = await t.api<{ items: { actor: string }[] }>('GET', '/api/v1/events?kind=audit.admin.second-factor-set');
      assert.ok(audit.body.items.some((e) => e.actor === 'tess'));
    });

    it('password sign-in then needs the code: SECOND_FACTOR_REQUIRED, UNAUTHENTICATED for a wrong one, a session for the right one', async () => {
      const none = await signIn({});
      assert.deepEqual([none.status, none.body.error?.code], [401, 'SECOND_FACTOR_REQUIRED']);
      assert.equal(none.body.token, undefined);
      const wrong = await signIn({ otp: wrongCode() });
      assert.deepEqual([wrong.status, wrong.body.error?.code], [401, 'UNAUTHENTICATED']);
      // The code that confirmed the factor is spent.
      const confirmCode = await signIn({ otp: codeAt(confirmStep) });
      assert.deepEqual([confirmCode.status, confirmCode.body.error?.code], [401, 'UNAUTHENTICATED']);
      // A right code with a wrong password is no way in.
      const wrongPassword = await post('/api/v1/session', { name: 'tess', password: 'not the password', otp: codeAt(Math.floor(Date.now() / 30_000) + 1) });
      assert.equal(wrongPassword.status, 401);

      const code = freshCode();
      const ok = await signIn({ otp: code });
      assert.equal(ok.status, 201, JSON.stringify(ok.body));
      assert.equal(ok.body.name, 'tess');
      const me = (await (await as(ok.body.token!, 'GET', '/api/v1/me')).json()) as { name: string; session: boolean; totpEnabled: boolean };
      assert.deepEqual([me.name, me.session, me.totpEnabled], ['tess', true, true]);

      // Each code works once.
      const replay = await signIn({ otp: code });
      assert.deepEqual([replay.status, replay.body.error?.code], [401, 'UNAUTHENTICATED']);
      const failures = await t.api<{ items: { message: string }[] }>('GET', '/api/v1/events?kind=admin.sign-in-failed');
      assert.ok(failures.body.items.length >= 3);
      assert.ok(!JSON.stringify(failures.body.items).includes(code), 'codes are not logged');
    });

    it('keeps the TOTP secret encrypted at rest', async () => {
      const row = await t.server.db.kysely.selectFrom('admins').select('totp_secret').where('id', '=', adminId).executeTakeFirstOrThrow();
      assert.ok(row.totp_secret, 'a secret is stored');
      assert.ok(!row.totp_secret.includes(secret), 'not in clear');
      assert.match(row.totp_secret, /^v1:/, "sealed with the secret store's key");
      if (t.database.kind === 'sqlite') {
        const file = t.database.file;
        for (const f of [file, `${file}-wal`]) {
          if (!existsSync(f)) continue;
          const bytes = await readFile(f);
          assert.ok(!bytes.includes(secret), `${f} does not hold the base32 secret`);
          assert.ok(!bytes.includes(Buffer.from(Secret.fromBase32(secret).bytes)), `${f} does not hold the raw secret`);
        }
      }
    });

    it('an administrator with admins:write removes another administrator\'s second factor; others may not', async () => {
      // tess herself is an operator: she may not remove anyone's, not even through this route.
      const denied = await as(session, 'DELETE', `/api/v1/admins/${adminId}/totp`);
      assert.equal(denied.status, 403);
      assert.equal((await signIn({})).body.error?.code, 'SECOND_FACTOR_REQUIRED');

      const removed = await t.api('DELETE', `/api/v1/admins/${adminId}/totp`);
      assert.equal(removed.status, 204);
      const view = await t.api<{ totpEnabled: boolean }>('GET', `/api/v1/admins/${adminId}`);
      assert.equal(view.body.totpEnabled, false);
      const ok = await signIn({});
      assert.equal(ok.status, 201, 'the password is enough again');
      const row = await t.server.db.kysely.selectFrom('admins').select(['totp_secret', 'totp_enabled_at']).where('id', '=', adminId).executeTakeFirstOrThrow();
      assert.deepEqual([row.totp_secret, row.totp_enabled_at], [null, null], 'the secret is gone, not only switched off');
      const audit = await t.api<{ items: { message: string; actor: string }[] }>('GET', '/api/v1/events?kind=audit.admin.second-factor-removed');
      assert.ok(audit.body.items.some((e) => e.message.includes('"tess"') && e.actor === 'admin'));
    });
  });
}
