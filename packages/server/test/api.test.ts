/**
 * The admin API and the agent endpoints against a real server, on every configured database.
 * Agents here are raw protocol clients (fetch and ws), which lets a test send what a real
 * agent never would: malformed messages, other devices' run ids.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { errorCodeInfo, ErrorCode, type Task } from '@garrison/protocol';
import { dbKinds, startTestServer, type TestServer } from './helpers.ts';
import { enrolRaw, inventory, openSocket } from './support/raw-agent.ts';

const scriptTask = (scope: unknown, extra: Record<string, unknown> = {}) => ({
  name: `task ${Math.random().toString(36).slice(2, 8)}`,
  type: 'script',
  settings: { command: 'echo hello' },
  schedule: { triggers: [{ type: 'on-demand' }] },
  scope,
  ...extra,
});

for (const kind of dbKinds) {
  describe(`admin API and agent endpoints (${kind.name})`, () => {
    let t: TestServer;
    let rootId: string;
    before(async () => {
      t = await startTestServer(kind);
      const groups = await t.api<{ items: { id: string; parentId: string | null; name: string }[] }>('GET', '/api/v1/groups');
      rootId = groups.body.items.find((g) => g.parentId === null)!.id;
      assert.equal(groups.body.items.find((g) => g.id === rootId)!.name, 'My Organization');
    });
    after(() => t.close());

    it('refuses calls without a valid API token, with a stable code', async () => {
      const res = await t.fetch(`${t.server.url}/api/v1/groups`);
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
      const bad = await t.fetch(`${t.server.url}/api/v1/groups`, { headers: { authorization: 'Bearer gat.x.y' } });
      assert.equal(bad.status, 401);
    });

    it('serves its OpenAPI document and a complete error-code table', async () => {
      const doc = (await (await t.fetch(`${t.server.url}/api/v1/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
      assert.match(doc.openapi, /^3\./);
      assert.ok(doc.paths['/api/v1/tasks/{id}/run']);
      const codes = (await (await t.fetch(`${t.server.url}/api/v1/error-codes`)).json()) as Record<string, { status: number }>;
      assert.deepEqual(Object.keys(codes).sort(), Object.values(ErrorCode).sort());
      for (const info of Object.values(errorCodeInfo)) assert.ok(info.status >= 400 && info.status < 600);
    });

    it('manages the group tree: create, rename, move, policy inheritance, delete when empty', async () => {
      const a = await t.api<{ id: string; path: string }>('POST', '/api/v1/groups', { name: 'Servers' });
      assert.equal(a.status, 201);
      assert.equal(a.body.path, 'My Organization/Servers');
      const b = await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Web', parentId: a.body.id });
      const dup = await t.api<{ error: { code: string } }>('POST', '/api/v1/groups', { name: 'web', parentId: a.body.id });
      assert.equal(dup.body.error.code, 'CONFLICT');
      const cycle = await t.api<{ error: { code: string } }>('PATCH', `/api/v1/groups/${a.body.id}`, { parentId: b.body.id });
      assert.equal(cycle.body.error.code, 'GROUP_CYCLE');
      const rootMove = await t.api<{ error: { code: string } }>('PATCH', `/api/v1/groups/${rootId}`, { parentId: b.body.id });
      assert.equal(rootMove.body.error.code, 'ROOT_GROUP_IMMUTABLE');
      // Policy set on the parent flows down; the child may override it.
      await t.api('PATCH', `/api/v1/groups/${a.body.id}`, { checkInIntervalMinutes: 10 });
      let web = await t.api<{ effectivePolicy: { checkInIntervalMinutes: number; policyEnforcementMinutes: number } }>('GET', `/api/v1/groups/${b.body.id}`);
      assert.deepEqual(web.body.effectivePolicy, { checkInIntervalMinutes: 10, policyEnforcementMinutes: 5 });
      await t.api('PATCH', `/api/v1/groups/${b.body.id}`, { checkInIntervalMinutes: 2, name: 'Web servers' });
      web = await t.api('GET', `/api/v1/groups/${b.body.id}`);
      assert.equal(web.body.effectivePolicy.checkInIntervalMinutes, 2);
      const notEmpty = await t.api<{ error: { code: string } }>('DELETE', `/api/v1/groups/${a.body.id}`);
      assert.equal(notEmpty.body.error.code, 'GROUP_NOT_EMPTY');
      assert.equal((await t.api('DELETE', `/api/v1/groups/${b.body.id}`)).status, 204);
      assert.equal((await t.api('DELETE', `/api/v1/groups/${a.body.id}`)).status, 204);
    });

    it('enrols with a token and refuses expired, revoked and exhausted ones', async () => {
      const g = await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Enrol' });
      const tok = await t.api<{ token: string; id: string }>('POST', '/api/v1/enrolment-tokens', { groupId: g.body.id, maxUses: 1 });
      const ok = await enrolRaw(t, tok.body.token, 'host-1');
      assert.equal(ok.status, 201);
      assert.match(ok.body.credential, /^gdc\./);
      assert.equal((await enrolRaw(t, tok.body.token, 'host-2')).body.error!.code, 'TOKEN_EXHAUSTED');
      assert.equal((await enrolRaw(t, 'get.nonsense-token', 'host-3')).body.error!.code, 'TOKEN_INVALID');
      const tok2 = await t.api<{ token: string; id: string }>('POST', '/api/v1/enrolment-tokens', { groupId: g.body.id });
      await t.api('POST', `/api/v1/enrolment-tokens/${tok2.body.id}/revoke`);
      assert.equal((await enrolRaw(t, tok2.body.token, 'host-4')).body.error!.code, 'TOKEN_REVOKED');
      const bad = await t.fetch(`${t.server.url}/agent/v1/enrol`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"token": 5}' });
      assert.equal(bad.status, 400);
      assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
      const devices = await t.api<{ items: { name: string; groupPath: string }[] }>('GET', `/api/v1/devices?groupId=${g.body.id}`);
      assert.deepEqual(
        devices.body.items.map((d) => [d.name, d.groupPath]),
        [['host-1', 'My Organization/Enrol']],
      );
    });

    it('refuses unknown or revoked device credentials on every agent endpoint', async () => {
      const res = await t.fetch(`${t.server.url}/agent/v1/check-in`, { method: 'POST', headers: { authorization: 'Bearer gdc.nope.nope', 'content-type': 'application/json' }, body: '{}' });
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'DEVICE_CREDENTIAL_INVALID');
      await assert.rejects(openSocket(t, 'gdc.nope.nope'), /HTTP 401/);
      const g = await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Deleted' });
      const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId: g.body.id });
      const dev = await enrolRaw(t, tok.body.token, 'doomed');
      await t.api('DELETE', `/api/v1/devices/${dev.body.deviceId}`);
      await assert.rejects(openSocket(t, dev.body.credential), /HTTP 401/);
    });

    it('validates task definitions: schema, product, schedule, scope, credential literals, secrets', async () => {
      const g = await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Validation' });
      const scope = { type: 'group', groupId: g.body.id };
      const cases: [unknown, string][] = [
        [scriptTask(scope, { settings: { command: 'x', bogus: 1 } }), 'SETTINGS_INVALID'],
        [scriptTask(scope, { settings: {} }), 'SETTINGS_INVALID'],
        [scriptTask(scope, { product: 'no-such-product' }), 'PRODUCT_NOT_INSTALLED'],
        [scriptTask(scope, { type: 'no-such-type' }), 'TASK_TYPE_UNKNOWN'],
        [scriptTask(scope, { settings: { command: 'x', env: { DB_PASSWORD: 'hunter2' } } }), 'SECRET_LITERAL_REFUSED'],
        [scriptTask(scope, { settings: { command: 'x', env: { API: { $secret: 'missing' } } } }), 'SECRET_NOT_FOUND'],
        [scriptTask(scope, { schedule: { triggers: [{ type: 'cron', expression: 'not a cron at all' }] } }), 'SCHEDULE_INVALID'],
        [scriptTask(scope, { schedule: { triggers: [{ type: 'daily', time: '10:00' }], timeBasis: 'Mars/Olympus' } }), 'SCHEDULE_INVALID'],
        [scriptTask({ type: 'group', groupId: 'nope' }), 'SCOPE_INVALID'],
        [scriptTask({ type: 'global' }), 'SCOPE_INVALID'],
        [scriptTask(scope, { schedule: { triggers: [] } }), 'VALIDATION_FAILED'],
        [{ name: 'x' }, 'VALIDATION_FAILED'],
      ];
      for (const [body, code] of cases) {
        const r = await t.api<{ error: { code: string; message: string } }>('POST', '/api/v1/tasks', body);
        assert.equal(r.body.error?.code, code, `expected ${code} for ${JSON.stringify(body)}: got ${JSON.stringify(r.body)}`);
      }
      const notJson = await t.fetch(`${t.server.url}/api/v1/tasks`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json' }, body: '{oops' });
      assert.equal(notJson.status, 400);
      assert.equal(((await notJson.json()) as { error: { code: string } }).error.code, 'BAD_REQUEST');
      const list = await t.api<{ items: Task[] }>('GET', '/api/v1/tasks?limit=1000');
      assert.equal(list.body.items.filter((x) => x.scope.type === 'group' && x.scope.groupId === g.body.id).length, 0, 'nothing stored from refused input');
    });

    it('keeps secret values out of every read, export and event', async () => {
      const g = await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Secrets' });
      assert.equal((await t.api('PUT', '/api/v1/secrets/db-pass', { value: 'S3cr3t-value-xyz' })).status, 204);
      const created = await t.api<Task>('POST', '/api/v1/tasks', scriptTask({ type: 'group', groupId: g.body.id }, { settings: { command: 'echo $DB_PASSWORD', env: { DB_PASSWORD: { $secret: 'db-pass' } } } }));
      assert.equal(created.status, 201);
      const reads = [
        await t.api('GET', '/api/v1/secrets'),
        await t.api('GET', `/api/v1/tasks/${created.body.id}`),
        await t.api('GET', `/api/v1/tasks/export?ids=${created.body.id}`),
        await t.api('GET', '/api/v1/events?limit=1000'),
      ];
      for (const r of reads) assert.doesNotMatch(JSON.stringify(r.body), /S3cr3t-value-xyz/);
      const exported = reads[2]!.body as { tasks: { settings: { env: Record<string, unknown> } }[] };
      assert.deepEqual(exported.tasks[0]!.settings.env.DB_PASSWORD, { $secret: 'db-pass' });
    });

    it('exports and imports tasks (groups by path), refusing invalid documents whole', async () => {
      const g = await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Porting' });
      const a = await t.api<Task>('POST', '/api/v1/tasks', scriptTask({ type: 'group', groupId: g.body.id, includeSubgroups: false }, { name: 'porting first', schedule: { triggers: [{ type: 'daily', time: '03:00' }], timeBasis: 'Europe/Paris', randomizeMinutes: 10 } }));
      await t.api<Task>('POST', '/api/v1/tasks', scriptTask({ type: 'group', groupId: g.body.id }, { name: 'porting second', schedule: { triggers: [{ type: 'after-task', taskId: a.body.id }] } }));
      const doc = await t.api<{ format: string; version: number; tasks: { name: string; scope: unknown }[] }>('GET', '/api/v1/tasks/export');
      const mine = { ...doc.body, tasks: doc.body.tasks.filter((x) => x.name.startsWith('porting')) };
      assert.deepEqual(mine.tasks[0]!.scope, { type: 'group', groupPath: 'My Organization/Porting', includeSubgroups: false });
      const bad = await t.api<{ error: { code: string } }>('POST', '/api/v1/tasks/import', { ...mine, tasks: [...mine.tasks, { ...mine.tasks[0], name: 'x', scope: { type: 'group', groupPath: 'No/Such' } }] });
      assert.equal(bad.body.error.code, 'IMPORT_INVALID');
      const wrongSettings = await t.api<{ error: { code: string } }>('POST', '/api/v1/tasks/import', { ...mine, tasks: [{ ...mine.tasks[0], settings: { nope: true } }] });
      assert.equal(wrongSettings.body.error.code, 'IMPORT_INVALID');
      assert.equal((await t.api<{ error: { code: string } }>('POST', '/api/v1/tasks/import', { format: 'other' })).body.error.code, 'IMPORT_INVALID');
      const before = (await t.api<{ items: Task[] }>('GET', '/api/v1/tasks?limit=1000')).body.items.length;
      const imported = await t.api<Task[]>('POST', '/api/v1/tasks/import', mine);
      assert.equal(imported.status, 201);
      assert.equal((await t.api<{ items: Task[] }>('GET', '/api/v1/tasks?limit=1000')).body.items.length, before + 2);
      const second = imported.body.find((x) => x.name === 'porting second')!;
      const first = imported.body.find((x) => x.name === 'porting first')!;
      assert.deepEqual(second.schedule.triggers[0], { type: 'after-task', taskId: first.id }, 'after-task relinked to the imported copy');
      const copy = await t.api<Task>('POST', `/api/v1/tasks/${a.body.id}/copy`, {});
      assert.equal(copy.body.name, 'porting first (copy)');
      assert.notEqual(copy.body.id, a.body.id);
    });

    it('never lets an agent write another device\'s run, and survives malformed messages', async () => {
      const g = await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Isolation' });
      const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId: g.body.id });
      const a = await enrolRaw(t, tok.body.token, 'iso-a');
      const b = await enrolRaw(t, tok.body.token, 'iso-b');
      const task = await t.api<Task>('POST', '/api/v1/tasks', scriptTask({ type: 'group', groupId: g.body.id }));
      const sa = await openSocket(t, a.body.credential);
      const sb = await openSocket(t, b.body.credential);
      const report = (seq: number, state: string) => ({ runId: 'run-iso-1', taskId: task.body.id, attempt: 1, seq, state, cause: 'run-now', createdAt: new Date().toISOString() });
      sa.send({ type: 'reports', id: 1, reports: [report(1, 'running')] });
      const ackA = (await sa.next()) as { type: string; runIds: string[] };
      assert.deepEqual(ackA.runIds, ['run-iso-1']);
      sb.send({ type: 'reports', id: 2, reports: [report(5, 'succeeded')] });
      const ackB = (await sb.next()) as { type: string; runIds: string[]; rejected: { code: string }[] };
      assert.deepEqual(ackB.runIds, []);
      assert.equal(ackB.rejected[0]!.code, 'NOT_ASSIGNED');
      const run = await t.api<{ deviceId: string; state: string }>('GET', '/api/v1/runs/run-iso-1');
      assert.equal(run.body.deviceId, a.body.deviceId);
      assert.equal(run.body.state, 'running');
      // Idempotent: the same report again changes nothing and is acknowledged.
      sa.send({ type: 'reports', id: 3, reports: [report(1, 'running')] });
      assert.deepEqual(((await sa.next()) as { runIds: string[] }).runIds, ['run-iso-1']);
      // Malformed input gets an error message with a code; the connection and the server live on.
      sa.send('{not json');
      assert.equal((await sa.next()).code, 'BAD_REQUEST');
      sa.send({ type: 'reports', id: 4, reports: [{ runId: '../../etc', taskId: task.body.id }] });
      assert.equal((await sa.next()).code, 'VALIDATION_FAILED');
      sa.send({ type: 'launch-missiles', id: 5 });
      assert.equal((await sa.next()).code, 'VALIDATION_FAILED');
      sa.send({ type: 'reports', id: 6, reports: [{ ...report(2, 'succeeded'), taskId: 'no-such-task', runId: 'run-iso-2' }] });
      assert.equal(((await sa.next()) as { rejected: { code: string }[] }).rejected[0]!.code, 'NOT_FOUND');
      sa.send({ type: 'check-in', id: 7, inventory: inventory('iso-a') });
      const res = (await sa.next()) as { type: string; tasks: { id: string }[] };
      assert.equal(res.type, 'check-in-result');
      assert.ok(res.tasks.some((x) => x.id === task.body.id));
      sa.ws.close();
      sb.ws.close();
    });

    it('stores the inventory an agent reports at check-in', async () => {
      const g = await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Inventory' });
      const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId: g.body.id });
      const devs = await Promise.all(['inv-1', 'inv-2'].map((h) => enrolRaw(t, tok.body.token, h)));
      for (const [i, d] of devs.entries()) {
        const res = await t.fetch(`${t.server.url}/agent/v1/check-in`, {
          method: 'POST',
          headers: { authorization: `Bearer ${d.body.credential}`, 'content-type': 'application/json' },
          body: JSON.stringify({ type: 'check-in', inventory: { ...inventory(`inv-${i + 1}`), osVersion: `9.${i}`, addresses: [`10.9.9.${i}`], products: [{ id: 'garrison', version: '0.2.0' }, { id: 'scanner', version: '1.10' }] } }),
        });
        assert.equal(res.status, 200);
      }
      const { waitFor } = await import('./helpers.ts');
      await waitFor(async () => {
        const list = (await t.api<{ items: { name: string; osVersion: string; addresses: string[]; products: { id: string }[] }[] }>('GET', `/api/v1/devices?groupId=${g.body.id}`)).body.items;
        return list.every((d, i) => d.osVersion === `9.${i}` && d.addresses[0] === `10.9.9.${i}` && d.products.length === 2);
      }, { what: 'inventory stored' });
      // A selection by installed product sees the new inventory at once.
      const task = await t.api<{ id: string }>('POST', '/api/v1/tasks', scriptTask({ type: 'global', selection: { product: 'scanner' } }));
      const targets = await t.api<{ items: { name: string }[] }>('GET', `/api/v1/tasks/${task.body.id}/targets`);
      assert.deepEqual(targets.body.items.map((d) => d.name).sort(), ['inv-1', 'inv-2']);
    });

    it('searches devices literally, without SQL wildcards', async () => {
      const all = await t.api<{ items: unknown[]; total: number }>('GET', '/api/v1/devices?search=%25');
      assert.equal(all.status, 200);
      assert.equal(all.body.items.length, 0);
      assert.equal(all.body.total, 0);
      const one = await t.api<{ items: { name: string }[] }>('GET', '/api/v1/devices?search=HOST-1');
      assert.deepEqual(one.body.items.map((d) => d.name), ['host-1']);
    });

    it('counts progress per state over current targets, and a run-now reaches connected agents at once', async () => {
      const g = await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Progress' });
      const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId: g.body.id });
      const online = await enrolRaw(t, tok.body.token, 'prog-online');
      await enrolRaw(t, tok.body.token, 'prog-offline');
      const task = await t.api<Task>('POST', '/api/v1/tasks', scriptTask({ type: 'group', groupId: g.body.id }));
      const s = await openSocket(t, online.body.credential);
      const run = await t.api<{ targets: number; delivered: number; requestId: string }>('POST', `/api/v1/tasks/${task.body.id}/run`, {});
      assert.equal(run.status, 202);
      assert.equal(run.body.targets, 2);
      assert.equal(run.body.delivered, 1);
      const push = (await s.next()) as { type: string; requests: { runId: string; task: { settings: unknown } }[] };
      assert.equal(push.type, 'run-now');
      assert.deepEqual(push.requests[0]!.task.settings, { command: 'echo hello' });
      let progress = await t.api<{ targets: number; states: Record<string, number>; finished: boolean }>('GET', `/api/v1/tasks/${task.body.id}/progress`);
      assert.equal(progress.body.states.pending, 2);
      const now = new Date().toISOString();
      s.send({ type: 'reports', id: 1, reports: [{ runId: push.requests[0]!.runId, taskId: task.body.id, attempt: 1, seq: 2, state: 'failed', exitCode: 3, cause: 'run-now', createdAt: now, endedAt: now, outputTail: 'boom' }] });
      await s.next();
      progress = await t.api('GET', `/api/v1/tasks/${task.body.id}/progress`);
      assert.equal(progress.body.states.failed, 1);
      assert.equal(progress.body.states.pending, 1);
      assert.equal(progress.body.finished, false);
      // An agent without a socket gets the run at its check-in over plain HTTP.
      const offline = (await t.api<{ items: { id: string; name: string }[] }>('GET', `/api/v1/devices?groupId=${g.body.id}&search=prog-offline`)).body.items[0]!;
      const credOffline = await enrolRaw(t, tok.body.token, 'prog-http');
      const viaHttp = await t.fetch(`${t.server.url}/agent/v1/check-in`, {
        method: 'POST',
        headers: { authorization: `Bearer ${credOffline.body.credential}`, 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'check-in', inventory: inventory('prog-http') }),
      });
      const checkIn = (await viaHttp.json()) as { runRequests: unknown[]; tasks: { id: string }[]; policy: { checkInIntervalMinutes: number } };
      assert.equal(viaHttp.status, 200);
      assert.ok(checkIn.tasks.some((x) => x.id === task.body.id), 'a device enrolled later gets the group task');
      assert.equal(checkIn.runRequests.length, 0, 'a run-now targets the devices of its time only');
      assert.ok(offline, 'the offline device is listed');
      // The offline device gets the run at check-in; stop cancels what is still undelivered.
      const stop = await t.api<{ cancelledPending: number }>('POST', `/api/v1/tasks/${task.body.id}/stop`);
      assert.equal(stop.body.cancelledPending, 1);
      progress = await t.api('GET', `/api/v1/tasks/${task.body.id}/progress`);
      assert.equal(progress.body.states.cancelled, 1);
      // Membership is live: the device enrolled after the run-now is a target that has not run it.
      assert.equal((progress.body as unknown as { notRun: number }).notRun, 1);
      assert.equal(progress.body.finished, false);
      const events = await t.api<{ items: { kind: string; severity: string }[] }>('GET', `/api/v1/events?taskId=${task.body.id}&severity=error`);
      assert.deepEqual(events.body.items.map((e) => e.kind), ['run.failed']);
      const csv = await t.api<string>('GET', `/api/v1/events?taskId=${task.body.id}&format=csv`);
      assert.match(csv.body, /^id,time,severity,kind/);
      s.ws.close();
    });
  });
}
