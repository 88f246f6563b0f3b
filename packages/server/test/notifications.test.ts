/**
 * Notifications and automatic responses (issue 16, ADR 0022), through real HTTP: a real agent
 * runs a real failing command, its run.failed events reach a rule with a threshold, and the
 * mail goes through a real SMTP server (smtp-server); a webhook is a real HTTP receiver on
 * port 0 that checks the signature; a run-task action starts a real run; a delivery in flight
 * when the server stops is sent after the restart.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHmac, randomBytes } from 'node:crypto';
import { SMTPServer } from 'smtp-server';
import type { NotificationDelivery, NotificationRule, NotificationTestAnswer, Page, Task } from '@garrison/protocol';
import { apiClient, dbKinds, startAgent, startTestServer, waitFor, type AgentProcess, type TestServer } from './helpers.ts';

interface Mail {
  rcpt: string[];
  raw: string;
}
interface Hook {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

for (const kind of dbKinds) {
  describe(`notifications (${kind.name})`, () => {
    let t: TestServer;
    let smtp: SMTPServer;
    let receiver: Server;
    let hookUrl: string;
    const mails: Mail[] = [];
    const hooks: Hook[] = [];
    /** Requests to /slow are held unanswered while this is set (a receiver that hangs). */
    let hang = false;
    const held: ServerResponse[] = [];
    const agents: AgentProcess[] = [];
    let groupId: string;
    let otherGroupId: string;

    const api = async <T>(method: string, url: string, body?: unknown, expect = 300): Promise<T> => {
      const r = await t.api<T>(method, url, body);
      assert.ok(r.status < expect, `${method} ${url}: ${r.status} ${r.text}`);
      return r.body;
    };
    const rule = (body: Record<string, unknown>) => api<NotificationRule>('POST', '/api/v1/notifications/rules', body);
    const deliveries = async (ruleId: string) => (await api<Page<NotificationDelivery>>('GET', `/api/v1/notifications/deliveries?ruleId=${ruleId}`)).items;

    before(async () => {
      smtp = new SMTPServer({
        secure: false,
        authOptional: true,
        disabledCommands: ['STARTTLS', 'AUTH'],
        logger: false,
        onData(stream, session, cb) {
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            mails.push({ rcpt: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString('utf8') });
            cb(null);
          });
        },
      });
      await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
      receiver = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          hooks.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
          if (req.url === '/slow' && hang) {
            held.push(res);
            return;
          }
          if (req.url === '/moved') {
            res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' }).end();
            return;
          }
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
      // The test's receiver listens on 127.0.0.1, which a webhook reaches only when allowed.
      t = await startTestServer(kind, { webhookAllow: ['127.0.0.1/32'] });
      groupId = (await api<{ id: string }>('POST', '/api/v1/groups', { name: 'Alerting' })).id;
      otherGroupId = (await api<{ id: string }>('POST', '/api/v1/groups', { name: 'Elsewhere' })).id;
      await api('PUT', '/api/v1/notifications/smtp', { host: '127.0.0.1', port: (smtp.server.address() as AddressInfo).port, security: 'none', from: 'Garrison <garrison@example.com>', timeoutSeconds: 10 });
    });
    after(async () => {
      await Promise.all(agents.map((a) => a.kill('SIGKILL')));
      for (const res of held) res.destroy();
      await t?.close();
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
      receiver.closeAllConnections();
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    });

    it('SMTP settings are root-only server settings; bad ones get a coded error', async () => {
      const got = await api<{ smtp: { host: string; security: string } | null }>('GET', '/api/v1/notifications/smtp');
      assert.equal(got.smtp?.security, 'none');
      const bad = await t.api<{ error: { code: string; message: string } }>('PUT', '/api/v1/notifications/smtp', { host: 'bad host', port: 25, security: 'none', from: 'not-me' });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.code, 'VALIDATION_FAILED');
      assert.match(bad.body.error.message, /from "not-me"/);
      const literal = await t.api<{ error: { code: string } }>('PUT', '/api/v1/notifications/smtp', { host: 'mail.example.com', port: 587, security: 'starttls', user: 'u', password: 'plain', from: 'a@example.com' });
      assert.equal(literal.status, 400, 'a literal password is refused by the schema');
    });

    it('a bad webhook URL, a bad address or a rule without actions gets VALIDATION_FAILED', async () => {
      for (const [actions, what] of [
        [{ webhook: { url: 'ftp://example.com/hook' } }, /not an http:\/\/ or https:\/\/ URL/],
        [{ webhook: { url: 'not a url at all' } }, /not an http:\/\/ or https:\/\/ URL/],
        [{ webhook: { url: 'https://user:pw@example.com/' } }, /credentials/],
        [{ email: { to: ['ops@example.com', 'not an address'] } }, /not e-mail addresses: "not an address"/],
        [{}, /at least one action/],
      ] as const) {
        const r = await t.api<{ error: { code: string; message: string } }>('POST', '/api/v1/notifications/rules', { name: 'bad', groupId, kinds: ['run.failed'], actions });
        assert.equal(r.status, 400, r.text);
        assert.equal(r.body.error.code, 'VALIDATION_FAILED');
        assert.match(r.body.error.message, what);
      }
      const secret = await t.api<{ error: { code: string } }>('POST', '/api/v1/notifications/rules', { name: 'bad', groupId, kinds: ['run.failed'], actions: { webhook: { url: `${hookUrl}/x`, secret: { $secret: 'no-such-secret' } } } });
      assert.equal(secret.body.error.code, 'SECRET_NOT_FOUND');
    });

    it('two failed runs of a real agent within 10 minutes send one mail; the throttle holds the third', async () => {
      const mailRule = await rule({ name: 'Failed runs in Alerting', groupId, kinds: ['run.failed'], minSeverity: 'error', threshold: { count: 2, minutes: 10 }, throttleMinutes: 60, actions: { email: { to: ['ops@example.com', 'oncall@example.com'] } } });
      assert.deepEqual(mailRule.window, { events: 0, suppressed: 0 });
      const agent = await startAgent(t, groupId, 'notify-agent');
      agents.push(agent);
      const task = await api<Task>('POST', '/api/v1/tasks', { name: 'always fails', type: 'script', settings: { shell: 'sh', script: 'echo "disk full" >&2; exit 3' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId } });
      const window = async () => (await api<NotificationRule>('GET', `/api/v1/notifications/rules/${mailRule.id}`)).window;
      const run = () => api('POST', `/api/v1/tasks/${task.id}/run`, {});
      await run();
      await waitFor(async () => (await window()).events === 1, { what: 'the first failed run counted', output: agent.output, timeoutMs: 30_000 });
      assert.equal(mails.length, 0, 'one failed run is below the threshold');
      await run();
      await waitFor(async () => mails.length === 1, { what: 'the mail after the second failed run', output: agent.output, timeoutMs: 30_000 });
      assert.deepEqual(mails[0]!.rcpt.sort(), ['oncall@example.com', 'ops@example.com']);
      assert.match(mails[0]!.raw, /Subject: \[Garrison\] Failed runs in Alerting: 2 events/);
      assert.match(mails[0]!.raw, /run\.failed/);
      assert.match(mails[0]!.raw, /notify-agent/);
      const sent = await waitFor(async () => (await deliveries(mailRule.id)).find((d) => d.state === 'sent'), { what: 'the delivery recorded as sent' });
      assert.equal(sent.action, 'email');
      assert.equal(sent.eventCount, 2);
      assert.match(sent.result ?? '', /accepted for 2 recipients/);
      // The third failure is inside the quiet period: counted, not sent.
      await run();
      await waitFor(async () => (await window()).suppressed === 1, { what: 'the third failure held by the throttle', output: agent.output, timeoutMs: 30_000 });
      await t.server.services.notifications.sendDue();
      assert.equal(mails.length, 1);
      assert.equal((await deliveries(mailRule.id)).length, 1);
      const got = await api<NotificationRule>('GET', `/api/v1/notifications/rules/${mailRule.id}`);
      assert.ok(got.lastNotifiedAt);
      // Disabled: it stops counting.
      await api('PATCH', `/api/v1/notifications/rules/${mailRule.id}`, { enabled: false });
    });

    it('a webhook receives a JSON body signed with HMAC-SHA256; a redirect is not followed', async () => {
      const key = randomBytes(16).toString('hex');
      assert.ok((await t.api('PUT', '/api/v1/secrets/hook-key', { value: key })).status < 300);
      const hookRule = await rule({ name: 'Webhook', groupId, kinds: ['agent.never-happens'], actions: { webhook: { url: `${hookUrl}/hook`, secret: { $secret: 'hook-key' } } } });
      const test = await api<NotificationTestAnswer>('POST', `/api/v1/notifications/rules/${hookRule.id}/test`);
      assert.equal(test.deliveries.length, 1);
      assert.equal(test.deliveries[0]!.state, 'pending');
      const hook = await waitFor(async () => hooks.find((h) => h.path === '/hook'), { what: 'the webhook call' });
      assert.equal(hook.headers['content-type'], 'application/json');
      assert.equal(hook.headers['x-garrison-signature'], `sha256=${createHmac('sha256', key).update(hook.body).digest('hex')}`);
      const body = JSON.parse(hook.body) as { rule: { id: string; name: string }; test: boolean; events: { kind: string }[]; deliveryId: string };
      assert.equal(body.rule.id, hookRule.id);
      assert.equal(body.test, true);
      assert.equal(body.deliveryId, test.deliveries[0]!.id);
      const sent = await waitFor(async () => (await deliveries(hookRule.id)).find((d) => d.state === 'sent'), { what: 'the webhook delivery sent' });
      assert.equal(sent.status, 204);

      const moved = await rule({ name: 'Moved webhook', groupId, kinds: ['agent.never-happens'], actions: { webhook: { url: `${hookUrl}/moved` } } });
      await api('POST', `/api/v1/notifications/rules/${moved.id}/test`);
      const failed = await waitFor(async () => (await deliveries(moved.id)).find((d) => d.state === 'failed'), { what: 'the redirected delivery failed' });
      assert.equal(failed.status, 302);
      assert.match(failed.error ?? '', /redirects are not followed/);
      assert.equal(hooks.filter((h) => h.path === '/elsewhere').length, 0);
    });

    it('a run-task action starts a run of the task', async () => {
      const agent = agents[0]!;
      const task = await api<Task>('POST', '/api/v1/tasks', { name: 'collect diagnostics', type: 'script', settings: { shell: 'sh', script: 'echo collected' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId } });
      const runRule = await rule({ name: 'Respond', groupId, kinds: ['agent.never-happens'], actions: { runTask: { taskId: task.id } } });
      await api('POST', `/api/v1/notifications/rules/${runRule.id}/test`);
      const sent = await waitFor(async () => (await deliveries(runRule.id)).find((d) => d.state === 'sent'), { what: 'the run-task delivery' });
      assert.match(sent.result ?? '', /run request \S+: 1 device, 1 connected/);
      await waitFor(async () => (await api<{ finished: boolean; states?: Record<string, number> }>('GET', `/api/v1/tasks/${task.id}/progress`)).finished, { what: 'the run finished', output: agent.output, timeoutMs: 30_000 });
    });

    it("a rule of a group outside an administrator's reach is invisible to them, and they cannot run others' tasks from a rule", async () => {
      const outside = await rule({ name: 'Outside rule', groupId: otherGroupId, kinds: ['run.failed'], actions: { email: { to: ['x@example.com'] } } });
      const outsideTask = await api<Task>('POST', '/api/v1/tasks', { name: 'outside task', type: 'script', settings: { shell: 'sh', script: 'true' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: otherGroupId } });
      const person = async (name: string, roleId: string) => {
        const password = randomBytes(12).toString('base64url');
        await api('POST', '/api/v1/admins', { name, password, grants: [{ roleId, groupId }] });
        const s = await t.fetch(`${t.server.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password }) });
        return apiClient(t.fetch, t.server.url, ((await s.json()) as { token: string }).token);
      };
      const sub = await person('alerting-admin', 'administrator');
      const list = (await sub<Page<NotificationRule>>('GET', '/api/v1/notifications/rules')).body;
      assert.ok(list.items.length > 0);
      assert.ok(list.items.every((r) => r.groupId === groupId), 'only rules of the reachable subtree');
      assert.equal((await sub('GET', `/api/v1/notifications/rules/${outside.id}`)).status, 404);
      assert.equal((await sub('POST', `/api/v1/notifications/rules/${outside.id}/test`)).status, 404);
      assert.equal((await sub('DELETE', `/api/v1/notifications/rules/${outside.id}`)).status, 404);
      const deliveriesSeen = (await sub<Page<NotificationDelivery>>('GET', '/api/v1/notifications/deliveries')).body.items;
      assert.ok(deliveriesSeen.every((d) => d.groupId === groupId));
      assert.equal((await sub('POST', '/api/v1/notifications/rules', { name: 'x', groupId: otherGroupId, kinds: ['run.'], actions: { email: { to: ['a@example.com'] } } })).status, 403);
      const runOther = await sub<{ error: { code: string } }>('POST', '/api/v1/notifications/rules', { name: 'x', groupId, kinds: ['run.'], actions: { runTask: { taskId: outsideTask.id } } });
      assert.equal(runOther.status, 404, 'a task they cannot see');
      const mine = await sub<NotificationRule>('POST', '/api/v1/notifications/rules', { name: 'Mine', groupId, kinds: ['run.'], actions: { email: { to: ['a@example.com'] } } });
      assert.equal(mine.status, 201, mine.text);
      assert.equal((await sub('GET', '/api/v1/notifications/smtp')).status, 403, 'the mail server is the root administrators');
      const operator = await person('alerting-operator', 'operator');
      assert.equal((await operator('POST', '/api/v1/notifications/rules', { name: 'y', groupId, kinds: ['run.'], actions: { email: { to: ['a@example.com'] } } })).status, 403);
      assert.equal((await operator<Page<NotificationRule>>('GET', '/api/v1/notifications/rules')).status, 200);
    });

    it('rules and deliveries page with a cursor; a bad cursor or a limit over 1000 is VALIDATION_FAILED', async () => {
      for (const path of ['/api/v1/notifications/rules', '/api/v1/notifications/deliveries']) {
        const all = (await api<Page<{ id: string }>>('GET', `${path}?limit=1000`)).items;
        assert.ok(all.length >= 3, path);
        const first = await api<Page<{ id: string }>>('GET', `${path}?limit=2`);
        assert.equal(first.items.length, 2);
        assert.ok(first.nextCursor);
        const seen = [...first.items];
        let cursor: string | null = first.nextCursor;
        while (cursor) {
          const next: Page<{ id: string }> = await api<Page<{ id: string }>>('GET', `${path}?limit=2&cursor=${encodeURIComponent(cursor)}`);
          seen.push(...next.items);
          cursor = next.nextCursor;
        }
        assert.deepEqual(seen.map((x) => x.id), all.map((x) => x.id), `${path}: the pages continue each other`);
        for (const q of ['cursor=not-a-cursor', 'limit=1001']) {
          const r = await t.api<{ error: { code: string } }>('GET', `${path}?${q}`);
          assert.equal(r.status, 400, `${path}?${q}`);
          assert.equal(r.body.error.code, 'VALIDATION_FAILED');
        }
      }
      const deliveriesPage = (await api<Page<NotificationDelivery>>('GET', '/api/v1/notifications/deliveries?limit=1000')).items;
      const times = deliveriesPage.map((d) => d.createdAt);
      assert.deepEqual(times, [...times].sort().reverse(), 'newest first');
    });

    it('a delivery in flight when the server stops is sent after the restart', async () => {
      hang = true;
      const slow = await rule({ name: 'Slow receiver', groupId, kinds: ['agent.never-happens'], actions: { webhook: { url: `${hookUrl}/slow` } } });
      const test = await api<NotificationTestAnswer>('POST', `/api/v1/notifications/rules/${slow.id}/test`);
      const id = test.deliveries[0]!.id;
      await waitFor(async () => held.length === 1, { what: 'the receiver holding the first call' });
      for (const a of agents) await a.kill('SIGKILL');
      await t.server.close();
      hang = false;
      t = await startTestServer(kind, { restartOf: t, webhookAllow: ['127.0.0.1/32'] });
      const sent = await waitFor(async () => (await deliveries(slow.id)).find((d) => d.id === id && d.state === 'sent'), { what: 'the delivery sent after the restart' });
      assert.equal(sent.attempts, 1, 'the interrupted attempt does not count');
      const calls = hooks.filter((h) => h.path === '/slow');
      assert.equal(calls.length, 2);
      assert.deepEqual(calls.map((c) => c.headers['x-garrison-delivery']), [id, id]);
    });
  });
}
