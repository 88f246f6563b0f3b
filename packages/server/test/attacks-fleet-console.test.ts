/**
 * Attacks on the fleet and console endpoints of issue 16, through real HTTP on a real database:
 * administrators confined to one group subtree, or lacking a permission, try to read or change
 * what lies outside — bulk actions by filter or ids, moves into groups they cannot reach, runs of
 * tasks they may not run, other administrators' saved selections, notification rules and
 * deliveries of other groups, a rule's run-task action fired by someone who may not run the task,
 * webhooks to the server's own addresses, results exports and group statuses naming other
 * groups' devices, forged cursors and huge bodies.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { AGENT_REPORTS_PATH, type DeviceBulkResult, DeviceView, GroupStatus, NotificationDelivery, NotificationRule, NotificationTestAnswer, Page, SavedSelection, Task } from '@garrison/protocol';
import { apiClient, dbKinds, startTestServer, waitFor, type TestServer } from './helpers.ts';
import { agentPost, enrolRaw, report } from './support/raw-agent.ts';

type Client = ReturnType<typeof apiClient>;
interface ErrorBody {
  error: { code: string; message: string };
}

for (const kind of dbKinds) {
  describe(`attacks on fleet and console endpoints (${kind.name})`, () => {
    let t: TestServer;
    let rootId: string;
    const g: Record<'a' | 'a1' | 'b', string> = { a: '', a1: '', b: '' };
    const dev: Record<string, string> = {};
    const cred: Record<string, string> = {};
    /** Administrator of A only: B is invisible to them. */
    let confined: Client;
    /** Administrator of A, auditor of B: sees B, may not change it. */
    let mixed: Client;
    /** Auditor of A: reads A, may change nothing. */
    let reader: Client;

    const ok = async <T>(as: Client, method: string, url: string, body?: unknown): Promise<T> => {
      const r = await as<T>(method, url, body);
      assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${r.text}`);
      return r.body;
    };
    const root = (): Client => t.api;
    const person = async (name: string, grants: { roleId: string; groupId: string }[]): Promise<Client> => {
      const password = randomBytes(12).toString('base64url');
      await ok(root(), 'POST', '/api/v1/admins', { name, password, grants });
      const s = await t.fetch(`${t.server.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password }) });
      return apiClient(t.fetch, t.server.url, ((await s.json()) as { token: string }).token);
    };
    const names = async (as: Client, query = '') => (await ok<Page<DeviceView>>(as, 'GET', `/api/v1/devices?limit=1000${query}`)).items.map((d) => d.name).sort();
    const bulk = (as: Client, body: unknown) => as<DeviceBulkResult & ErrorBody>('POST', '/api/v1/devices/bulk', body);
    const task = (name: string, groupId: string) => ok<Task>(root(), 'POST', '/api/v1/tasks', { name, type: 'script', settings: { shell: 'sh', script: 'true' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId } });

    before(async () => {
      t = await startTestServer(kind);
      const groups = await ok<Page<{ id: string; parentId: string | null }>>(root(), 'GET', '/api/v1/groups?limit=1000');
      rootId = groups.items.find((x) => x.parentId === null)!.id;
      g.a = (await ok<{ id: string }>(root(), 'POST', '/api/v1/groups', { name: 'Atk A' })).id;
      g.a1 = (await ok<{ id: string }>(root(), 'POST', '/api/v1/groups', { name: 'Atk A1', parentId: g.a })).id;
      g.b = (await ok<{ id: string }>(root(), 'POST', '/api/v1/groups', { name: 'Atk B' })).id;
      for (const [groupId, name] of [[g.a, 'atk-a-1'], [g.a, 'atk-a-2'], [g.a1, 'atk-a1-1'], [g.b, 'atk-b-1'], [g.b, 'atk-b-2']] as const) {
        const tok = await ok<{ token: string }>(root(), 'POST', '/api/v1/enrolment-tokens', { groupId, maxUses: 1 });
        const r = await enrolRaw(t, tok.token, name);
        assert.equal(r.status, 201, JSON.stringify(r.body));
        dev[name] = r.body.deviceId;
        cred[name] = r.body.credential;
      }
      confined = await person('atk-confined', [{ roleId: 'administrator', groupId: g.a }]);
      mixed = await person('atk-mixed', [{ roleId: 'administrator', groupId: g.a }, { roleId: 'auditor', groupId: g.b }]);
      reader = await person('atk-reader', [{ roleId: 'auditor', groupId: g.a }]);
    });
    after(async () => {
      await t?.close();
    });

    it('bulk tag and delete by a filter reach only the caller\'s subtree; a filter on an invisible group is not found', async () => {
      // No group in the filter: everything the caller reads, never B.
      const tagged = await bulk(confined, { action: 'addTags', filter: {}, tags: ['atk-all'] });
      assert.equal(tagged.status, 200, tagged.text);
      assert.equal(tagged.body.matched, 3, 'A and A1 only');
      assert.deepEqual(await names(root(), '&tag=atk-all'), ['atk-a-1', 'atk-a-2', 'atk-a1-1']);
      // A search that B's devices match too.
      const searched = await bulk(confined, { action: 'addTags', filter: { search: 'atk-b' }, tags: ['atk-b-hit'] });
      assert.equal(searched.body.matched, 0);
      assert.equal((await names(root(), '&tag=atk-b-hit')).length, 0);
      // A filter naming B: B reads as absent, and nothing is deleted.
      const delB = await bulk(confined, { action: 'delete', filter: { groupId: g.b } });
      assert.equal(delB.status, 404, delB.text);
      assert.equal(delB.body.error.code, 'NOT_FOUND');
      // Ids of B's devices: not found (not "refused", which would say they exist).
      const byIds = await bulk(confined, { action: 'delete', deviceIds: [dev['atk-b-1']!, dev['atk-b-2']!] });
      assert.equal(byIds.status, 200, byIds.text);
      assert.deepEqual([byIds.body.matched, byIds.body.done, byIds.body.refused, byIds.body.notFound], [0, 0, 0, 2]);
      // A reader of A may change none of A's.
      const readerDel = await bulk(reader, { action: 'delete', filter: { groupId: g.a } });
      assert.equal(readerDel.status, 200, readerDel.text);
      assert.deepEqual([readerDel.body.matched, readerDel.body.done, readerDel.body.refused], [3, 0, 3]);
      assert.deepEqual(await names(root(), `&groupId=${g.b}`), ['atk-b-1', 'atk-b-2']);
      assert.equal((await names(root(), `&groupId=${g.a}`)).length, 3);
    });

    it('devices cannot be moved into a group the caller cannot reach or may only read, nor out of one', async () => {
      const a1 = dev['atk-a-1']!;
      const invisible = await bulk(confined, { action: 'move', deviceIds: [a1], groupId: g.b });
      assert.equal(invisible.status, 404, invisible.text);
      assert.equal(invisible.body.error.code, 'NOT_FOUND');
      const missing = await bulk(confined, { action: 'move', deviceIds: [a1], groupId: 'no-such-group' });
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error.message.replace('no-such-group', 'X'), invisible.body.error.message.replace(g.b, 'X'), 'an invisible group reads exactly as an absent one');
      const readOnly = await bulk(mixed, { action: 'move', deviceIds: [a1], groupId: g.b });
      assert.equal(readOnly.status, 403, readOnly.text);
      const toRoot = await bulk(mixed, { action: 'move', deviceIds: [a1], groupId: rootId });
      assert.ok(toRoot.status === 403 || toRoot.status === 404, `moving to the root: ${toRoot.status}`);
      // B's devices into A: B only read, so refused and left where they are.
      const outOfB = await bulk(mixed, { action: 'move', filter: { groupId: g.b }, groupId: g.a });
      assert.equal(outOfB.status, 200, outOfB.text);
      assert.deepEqual([outOfB.body.done, outOfB.body.refused], [0, 2]);
      assert.deepEqual(await names(root(), `&groupId=${g.b}`), ['atk-b-1', 'atk-b-2']);
      assert.equal((await ok<DeviceView>(root(), 'GET', `/api/v1/devices/${a1}`)).groupId, g.a);
    });

    it('bulk runTask cannot run a task the caller may not run, nor on devices out of reach', async () => {
      const bTask = await task('atk B task', g.b);
      const rootTask = await task('atk everywhere', rootId);
      const aTask = await task('atk A task', g.a);
      const hidden = await bulk(confined, { action: 'runTask', deviceIds: [dev['atk-a-1']!], taskId: bTask.id });
      assert.equal(hidden.status, 404, hidden.text);
      // A task inherited from the root: visible to the confined caller, but not theirs to run.
      const inherited = await bulk(confined, { action: 'runTask', filter: {}, taskId: rootTask.id });
      assert.equal(inherited.status, 403, inherited.text);
      assert.equal(inherited.body.error.code, 'FORBIDDEN');
      // A reader of A has every device refused and no run request.
      const readerRun = await bulk(reader, { action: 'runTask', filter: {}, taskId: aTask.id });
      assert.equal(readerRun.status, 200, readerRun.text);
      assert.equal(readerRun.body.done, 0);
      assert.equal(readerRun.body.runRequestId, undefined);
      // Run now with device ids outside the task's targets or the caller's reach.
      const runNow = await confined<ErrorBody & { targets: number }>('POST', `/api/v1/tasks/${aTask.id}/run`, { deviceIds: [dev['atk-b-1']!] });
      assert.ok(runNow.status >= 400 || runNow.body.targets === 0, `run now on B's device: ${runNow.status} ${runNow.text}`);
      const runs = await ok<Page<{ taskId: string }>>(root(), 'GET', `/api/v1/devices/${dev['atk-b-1']!}/runs`);
      assert.equal(runs.items.filter((r) => r.taskId === aTask.id).length, 0, "no run of A's task on B's device");
    });

    it("another administrator's saved selection cannot be read, deleted or reached with a forged cursor", async () => {
      const theirs = await ok<SavedSelection>(root(), 'POST', '/api/v1/saved-selections', { page: 'events', name: 'root only', query: { severity: 'error' } });
      const mine = await ok<SavedSelection>(confined, 'POST', '/api/v1/saved-selections', { page: 'events', name: 'mine', query: { range: '1h' } });
      const listed = await ok<Page<SavedSelection>>(confined, 'GET', '/api/v1/saved-selections?page=events&limit=1000');
      assert.ok(listed.items.some((s) => s.id === mine.id));
      assert.ok(!listed.items.some((s) => s.id === theirs.id));
      const del = await confined<ErrorBody>('DELETE', `/api/v1/saved-selections/${theirs.id}`);
      assert.equal(del.status, 404, del.text);
      assert.equal(del.body.error.code, 'NOT_FOUND');
      const builtin = await confined<ErrorBody>('DELETE', '/api/v1/saved-selections/builtin:events-audit');
      assert.equal(builtin.status, 409, builtin.text);
      // A cursor placed before every own selection of anyone: still only the caller's.
      for (const key of [[1, '', ''], [0, '', '']]) {
        const cursor = Buffer.from(JSON.stringify(key)).toString('base64url');
        const page = await ok<Page<SavedSelection>>(confined, 'GET', `/api/v1/saved-selections?page=events&limit=1000&cursor=${cursor}`);
        assert.ok(!page.items.some((s) => s.id === theirs.id), `cursor ${JSON.stringify(key)}`);
      }
      for (const key of [[1, { x: 1 }, ''], ['a'], 'x']) {
        const cursor = Buffer.from(JSON.stringify(key)).toString('base64url');
        const r = await confined<ErrorBody>('GET', `/api/v1/saved-selections?page=events&cursor=${cursor}`);
        assert.equal(r.status, 400, `cursor ${JSON.stringify(key)}: ${r.text}`);
      }
      assert.equal((await ok<Page<SavedSelection>>(root(), 'GET', '/api/v1/saved-selections?page=events&limit=1000')).items.filter((s) => s.id === theirs.id).length, 1, 'still there');
    });

    it('a forged device-list cursor does not reach devices of other groups', async () => {
      for (const key of [['', ''], ['atk-b', ''], [null, null]]) {
        const cursor = Buffer.from(JSON.stringify(key)).toString('base64url');
        const r = await confined<Page<DeviceView> & ErrorBody>('GET', `/api/v1/devices?cursor=${cursor}`);
        if (r.status === 400) {
          assert.equal(r.body.error.code, 'VALIDATION_FAILED');
          continue;
        }
        assert.equal(r.status, 200, r.text);
        assert.ok(r.body.items.every((d) => d.groupId === g.a || d.groupId === g.a1), `cursor ${JSON.stringify(key)}`);
      }
    });

    it('notification rules and deliveries of other groups stay out of reach', async () => {
      const bRule = await ok<NotificationRule>(root(), 'POST', '/api/v1/notifications/rules', { name: 'atk B rule', groupId: g.b, kinds: ['agent.never-happens'], actions: { webhook: { url: 'http://192.0.2.1:9/b' } } });
      await ok(root(), 'POST', `/api/v1/notifications/rules/${bRule.id}/test`);
      await waitFor(async () => (await ok<Page<NotificationDelivery>>(root(), 'GET', `/api/v1/notifications/deliveries?ruleId=${bRule.id}`)).items.length > 0, { what: "B's delivery recorded" });
      assert.equal((await confined('GET', `/api/v1/notifications/rules/${bRule.id}`)).status, 404);
      assert.equal((await confined('PATCH', `/api/v1/notifications/rules/${bRule.id}`, { enabled: false })).status, 404);
      assert.equal((await ok<Page<NotificationDelivery>>(confined, 'GET', `/api/v1/notifications/deliveries?ruleId=${bRule.id}`)).items.length, 0);
      assert.ok((await ok<Page<NotificationDelivery>>(confined, 'GET', '/api/v1/notifications/deliveries?limit=1000')).items.every((d) => d.groupId !== g.b));
      assert.equal((await confined('GET', `/api/v1/notifications/rules?groupId=${g.b}`)).status, 404);
      // A rule of theirs moved to B.
      const mine = await ok<NotificationRule>(confined, 'POST', '/api/v1/notifications/rules', { name: 'atk mine', groupId: g.a, kinds: ['run.failed'], actions: { email: { to: ['a@example.com'] } } });
      const moved = await confined<ErrorBody>('PATCH', `/api/v1/notifications/rules/${mine.id}`, { groupId: g.b });
      assert.ok(moved.status === 403 || moved.status === 404, `${moved.status} ${moved.text}`);
      assert.equal((await ok<NotificationRule>(root(), 'GET', `/api/v1/notifications/rules/${mine.id}`)).groupId, g.a);
      // The mixed administrator reads B's rule but may not change or test it.
      assert.equal((await mixed('GET', `/api/v1/notifications/rules/${bRule.id}`)).status, 200);
      assert.equal((await mixed('POST', `/api/v1/notifications/rules/${bRule.id}/test`)).status, 403);
      assert.equal((await mixed('DELETE', `/api/v1/notifications/rules/${bRule.id}`)).status, 403);
    });

    it("a rule's run-task action cannot be fired or re-armed by an administrator who may not run the task", async () => {
      // The root administrator sets a rule in A whose response runs a task on every device.
      const everywhere = await task('atk rule runs everywhere', rootId);
      const rule = await ok<NotificationRule>(root(), 'POST', '/api/v1/notifications/rules', { name: 'atk respond everywhere', groupId: g.a, kinds: ['agent.never-happens'], actions: { runTask: { taskId: everywhere.id } } });
      // The confined administrator manages A's rules, but may not run a root task: testing the
      // rule would run it on B's devices too.
      const tested = await confined<NotificationTestAnswer & ErrorBody>('POST', `/api/v1/notifications/rules/${rule.id}/test`);
      assert.equal(tested.status, 403, `testing the rule: ${tested.text}`);
      // Nor may they widen when it fires (it would run the task on their events).
      const rearmed = await confined<ErrorBody>('PATCH', `/api/v1/notifications/rules/${rule.id}`, { kinds: ['run.'], threshold: { count: 1, minutes: 1 } });
      assert.equal(rearmed.status, 403, `re-arming the rule: ${rearmed.text}`);
      // Nor swap its task for... the same task with a new action beside it.
      const widened = await confined<ErrorBody>('PATCH', `/api/v1/notifications/rules/${rule.id}`, { actions: { runTask: { taskId: everywhere.id }, email: { to: ['a@example.com'] } } });
      assert.equal(widened.status, 403, `adding an action: ${widened.text}`);
      // Turning it off (or renaming it) stays theirs to do, also with the whole rule sent back as the console does.
      const whole = { name: 'atk respond everywhere (off)', groupId: g.a, kinds: rule.kinds, minSeverity: rule.minSeverity, product: rule.product, threshold: { minutes: rule.threshold.minutes, count: rule.threshold.count }, throttleMinutes: rule.throttleMinutes, actions: rule.actions, enabled: false };
      const off = await confined<NotificationRule>('PATCH', `/api/v1/notifications/rules/${rule.id}`, whole);
      assert.equal(off.status, 200, off.text);
      assert.equal(off.body.enabled, false);
      const backOn = await confined<ErrorBody>('PATCH', `/api/v1/notifications/rules/${rule.id}`, { enabled: true });
      assert.equal(backOn.status, 403, `turning it back on: ${backOn.text}`);
      const runs = await ok<Page<{ taskId: string }>>(root(), 'GET', `/api/v1/devices/${dev['atk-b-1']!}/runs`);
      assert.equal(runs.items.filter((r) => r.taskId === everywhere.id).length, 0, 'no run on B');
      // The root administrator may test it: the run goes out.
      await ok(root(), 'PATCH', `/api/v1/notifications/rules/${rule.id}`, { enabled: true });
      await ok(root(), 'POST', `/api/v1/notifications/rules/${rule.id}/test`);
      await waitFor(async () => (await ok<Page<NotificationDelivery>>(root(), 'GET', `/api/v1/notifications/deliveries?ruleId=${rule.id}`)).items.find((d) => d.state === 'sent'), { what: 'the root test run' });
    });

    it("a webhook to the server's own loopback, link-local or metadata address is refused, as a literal and through a name", async () => {
      const port = new URL(t.server.url).port;
      // A literal address: refused when the rule is saved.
      for (const url of [`https://127.0.0.1:${port}/api/v1/admins`, 'http://169.254.169.254/latest/meta-data/', 'http://[::1]:9/x', 'http://[::ffff:127.0.0.1]:9/x', 'http://0.0.0.0:9/x', 'http://[fd00:ec2::254]/x']) {
        const r = await confined<NotificationRule & ErrorBody>('POST', '/api/v1/notifications/rules', { name: `atk hook ${url}`, groupId: g.a, kinds: ['agent.never-happens'], actions: { webhook: { url } } });
        assert.equal(r.status, 400, `${url}: ${r.text}`);
        assert.equal(r.body.error.code, 'VALIDATION_FAILED');
        assert.match(r.body.error.message, /the server itself or its link/);
      }
      // A name that resolves to loopback: saved (names move), refused as the socket connects, not retried.
      const r = await confined<NotificationRule & ErrorBody>('POST', '/api/v1/notifications/rules', { name: 'atk hook localhost', groupId: g.a, kinds: ['agent.never-happens'], actions: { webhook: { url: `https://localhost:${port}/api/v1/admins` } } });
      assert.equal(r.status, 201, r.text);
      await ok(confined, 'POST', `/api/v1/notifications/rules/${r.body.id}/test`);
      const d = await waitFor(async () => (await ok<Page<NotificationDelivery>>(confined, 'GET', `/api/v1/notifications/deliveries?ruleId=${r.body.id}`)).items.find((x) => x.state === 'failed'), { what: 'the self-webhook refused' });
      assert.equal(d.attempts, 1, 'a refused address is not retried');
      assert.match(d.error ?? '', /may not be called: localhost: (127\.0\.0\.1|::1) is an address of the server itself/);
      await ok(confined, 'DELETE', `/api/v1/notifications/rules/${r.body.id}`);
      // A private network is an intranet receiver's: allowed.
      const lan = await confined<NotificationRule & ErrorBody>('POST', '/api/v1/notifications/rules', { name: 'atk hook lan', groupId: g.a, kinds: ['agent.never-happens'], actions: { webhook: { url: 'http://10.20.30.40/hook' } } });
      assert.equal(lan.status, 201, lan.text);
      await ok(confined, 'DELETE', `/api/v1/notifications/rules/${lan.body.id}`);
    });

    it("the results export and group statuses name only the caller's devices", async () => {
      const everywhere = await task('atk export everywhere', rootId);
      const started = await ok<{ targets: number }>(root(), 'POST', `/api/v1/tasks/${everywhere.id}/run`, {});
      assert.equal(started.targets, 5);
      const csv = async (as: Client) => {
        const r = await as<string>('GET', `/api/v1/tasks/${everywhere.id}/results/export`);
        assert.equal(r.status, 200, r.text);
        return r.text;
      };
      const all = await csv(root());
      assert.match(all, /atk-b-1/, 'the root administrator sees B in the export');
      const confinedCsv = await csv(confined);
      assert.match(confinedCsv, /atk-a-1/);
      assert.doesNotMatch(confinedCsv, /atk-b-/);
      const listed = await ok<{ items: { deviceName: string }[]; states: Record<string, number>; total: number }>(confined, 'GET', `/api/v1/tasks/${everywhere.id}/results?limit=1000`);
      assert.equal(listed.total, 3);
      assert.ok(listed.items.every((x) => !x.deviceName.startsWith('atk-b')));
      // A task of B: not exportable by one who cannot see it.
      const bTask = await task('atk export B', g.b);
      const hidden = await confined<ErrorBody>('GET', `/api/v1/tasks/${bTask.id}/results/export`);
      assert.equal(hidden.status, 404, hidden.text);
      // Group statuses.
      const statuses = await ok<Page<GroupStatus>>(confined, 'GET', '/api/v1/groups/statuses?limit=1000');
      assert.deepEqual(statuses.items.map((s) => s.groupId).sort(), [g.a, g.a1].sort());
      const a = statuses.items.find((s) => s.groupId === g.a)!;
      assert.equal(a.devicesWithSubgroups, 3);
      const forged = Buffer.from(JSON.stringify([''])).toString('base64url');
      const fromStart = await confined<Page<GroupStatus> & ErrorBody>('GET', `/api/v1/groups/statuses?cursor=${forged}`);
      if (fromStart.status === 200) assert.ok(fromStart.body.items.every((s) => s.groupId === g.a || s.groupId === g.a1));
      else assert.equal(fromStart.body.error.code, 'VALIDATION_FAILED');
    });

    it('the live stream names no device nor task the caller cannot read', async () => {
      const everywhere = await task('atk live everywhere', rootId);
      const bOnly = await task('atk live B', g.b);
      /** A live stream as the holder of `token`: the run changes it was sent. */
      const stream = async (token: string) => {
        const ctrl = new AbortController();
        const res = await t.fetch(`${t.server.url}/api/v1/live`, { headers: { authorization: `Bearer ${token}` }, signal: ctrl.signal });
        assert.equal(res.status, 200);
        const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
        const state = { text: '', tasks: [] as { taskId: string; deviceIds: string[] | null }[] };
        const pump = (async () => {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return;
            state.text += value;
            state.tasks = [...state.text.matchAll(/data: (\{.*\})/g)].flatMap((m) => (JSON.parse(m[1]!) as { runs?: { tasks: { taskId: string; deviceIds: string[] | null }[] } }).runs?.tasks ?? []);
          }
        })().catch(() => {});
        await waitFor(async () => state.text.includes('event: ready'), { what: 'stream ready' });
        return { state, stop: async () => (ctrl.abort(), await pump) };
      };
      // A stream of an administrator of A only.
      const liveToken = await (async () => {
        const pw = randomBytes(12).toString('base64url');
        await ok(root(), 'POST', '/api/v1/admins', { name: 'atk-live', password: pw, grants: [{ roleId: 'administrator', groupId: g.a }] });
        const s = await t.fetch(`${t.server.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'atk-live', password: pw }) });
        return ((await s.json()) as { token: string }).token;
      })();
      const mine = await stream(liveToken);
      const all = await stream(t.token);
      try {
        for (const [name, taskId] of [['atk-b-1', everywhere.id], ['atk-b-2', bOnly.id], ['atk-a-1', everywhere.id]] as const) {
          const r = await agentPost(t, cred[name]!, AGENT_REPORTS_PATH, { type: 'reports', reports: [report(`live-${name}-${taskId}`, taskId)] });
          assert.equal(r.status, 200, JSON.stringify(r.body));
        }
        const named = (s: typeof all.state, taskId: string, deviceId: string) => s.tasks.some((x) => x.taskId === taskId && (x.deviceIds === null || x.deviceIds.includes(deviceId)));
        await waitFor(async () => named(all.state, everywhere.id, dev['atk-b-1']!) && named(all.state, bOnly.id, dev['atk-b-2']!) && named(all.state, everywhere.id, dev['atk-a-1']!), { what: 'the root stream told of every run' });
        await waitFor(async () => named(mine.state, everywhere.id, dev['atk-a-1']!), { what: "the confined stream told of A's run" });
        const bIds = new Set([dev['atk-b-1']!, dev['atk-b-2']!]);
        assert.ok(!mine.state.tasks.some((x) => x.taskId === bOnly.id), "B's task is never named");
        assert.ok(!mine.state.tasks.some((x) => (x.deviceIds ?? []).some((d) => bIds.has(d))), "B's devices are never named");
      } finally {
        await mine.stop();
        await all.stop();
      }
    });

    it('policy and deployment compliance and the dashboard count only the caller\'s devices, whatever the cursor', async () => {
      const policy = await ok<{ id: string }>(root(), 'POST', '/api/v1/policies', { name: 'atk everywhere policy', product: 'garrison', settings: { logKeepFiles: 4 } });
      await ok(root(), 'PUT', `/api/v1/groups/${rootId}/policies/garrison`, { policyId: policy.id, blockInheritance: false });
      type Compliance = Page<{ deviceId: string; groupId: string }> & { states: Record<string, number> };
      const everyone = await ok<Compliance>(root(), 'GET', `/api/v1/policies/${policy.id}/compliance?limit=1000`);
      assert.ok(everyone.items.some((d) => d.deviceId === dev['atk-b-1']), 'the root administrator sees B');
      const seen = await confined<Compliance & ErrorBody>('GET', `/api/v1/policies/${policy.id}/compliance?limit=1000`);
      assert.equal(seen.status, 200, seen.text);
      {
        assert.ok(seen.body.items.every((d) => d.groupId === g.a || d.groupId === g.a1), 'only A');
        assert.equal(Object.values(seen.body.states).reduce((a, b) => a + b, 0), 3, 'the counts are over A only');
        // A cursor placed before every name.
        const cursor = Buffer.from(JSON.stringify(['', ''])).toString('base64url');
        const forged = await confined<Compliance & ErrorBody>('GET', `/api/v1/policies/${policy.id}/compliance?cursor=${cursor}`);
        if (forged.status === 200) assert.ok(forged.body.items.every((d) => d.groupId === g.a || d.groupId === g.a1));
        else assert.equal(forged.body.error.code, 'VALIDATION_FAILED');
      }
      const deployments = await confined<Page<{ deviceId: string }> & ErrorBody>('GET', `/api/v1/deployments/compliance?limit=1000&cursor=${Buffer.from(JSON.stringify(['', ''])).toString('base64url')}`);
      assert.equal(deployments.status, 200, deployments.text);
      assert.ok(deployments.body.items.every((d) => d.deviceId !== dev['atk-b-1'] && d.deviceId !== dev['atk-b-2']));
      assert.equal((await confined('GET', `/api/v1/deployments/compliance?groupId=${g.b}`)).status, 404);
      const monitors = await ok<{ devices: number }>(confined, 'GET', '/api/v1/dashboard/monitors');
      assert.equal(monitors.devices, 3);
      assert.equal((await ok<{ devices: number }>(root(), 'GET', '/api/v1/dashboard/monitors')).devices, 5);
    });

    it('huge bodies and lists are refused with a code, not taken', async () => {
      const big = await bulk(confined, { action: 'addTags', deviceIds: [dev['atk-a-1']!], tags: Array.from({ length: 5000 }, (_, i) => `t${i}`) });
      assert.equal(big.status, 400, big.text.slice(0, 200));
      assert.equal(big.body.error.code, 'VALIDATION_FAILED');
      const huge = await t.fetch(`${t.server.url}/api/v1/saved-selections`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ page: 'events', name: 'huge', query: { search: 'x'.repeat(20 * 1024 * 1024) } }),
      });
      const text = await huge.text();
      assert.ok(huge.status === 413 || huge.status === 400, `${huge.status} ${text.slice(0, 200)}`);
      assert.ok(JSON.parse(text).error.code, text.slice(0, 200));
      const aTask = await task('atk many ids', g.a);
      const manyIds = await confined<ErrorBody>('GET', `/api/v1/tasks/${aTask.id}/results?deviceIds=${Array.from({ length: 2000 }, (_, i) => `d${i}`).join(',')}`);
      assert.equal(manyIds.status, 400, manyIds.text.slice(0, 200));
      assert.equal(manyIds.body.error.code, 'VALIDATION_FAILED');
      // A rule in a group that does not exist and in one out of reach read the same.
      const rule = (groupId: string) => confined<ErrorBody>('POST', '/api/v1/notifications/rules', { name: 'atk where', groupId, kinds: ['run.'], actions: { email: { to: ['a@example.com'] } } });
      const [absent, hidden] = [await rule('no-such-group'), await rule(g.b)];
      assert.equal(absent.status, hidden.status, `absent ${absent.text} / hidden ${hidden.text}`);
      assert.equal(absent.body.error.code, hidden.body.error.code);
    });
  });
}
