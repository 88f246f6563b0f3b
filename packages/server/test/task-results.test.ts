/**
 * A task's results at fleet scale (issue 16), over real HTTPS on every configured database:
 * results paged by device name with the count of each state over the whole task, filtered by
 * state, searched by device, exported as CSV; targets and runs paged; run-now limited to some
 * targets or to the failed ones (with a real agent too); the tasks list's last run and
 * failures; the schedule preview; and the live stream naming the tasks and devices whose runs
 * changed.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { AGENT_REPORTS_PATH, type Run, type Task } from '@garrison/protocol';
import { dbKinds, startAgent, startTestServer, waitFor, type TestServer } from './helpers.ts';
import { agentPost, enrolRaw, report } from './support/raw-agent.ts';

const DEVICES = 90;
const PAGE = 40;
const onDemand = { triggers: [{ type: 'on-demand' }] };

interface ResultPage {
  items: (Run & { deviceName: string; hostname: string })[];
  nextCursor: string | null;
  total?: number;
  states: Record<string, number>;
}
type ErrorAnswer = { error: { code: string; details?: { deviceIds?: string[] } } };

for (const kind of dbKinds) {
  describe(`task results (${kind.name})`, () => {
    let t: TestServer;
    let groupId: string;
    let task: Task;
    const devices: { id: string; name: string; credential: string }[] = [];
    let failedIds: Set<string>;
    const liveMessages: { topics: string[]; runs?: { tasks: { taskId: string; deviceIds: string[] | null }[]; more: boolean } }[] = [];
    const live = new AbortController();
    let pump: Promise<void> = Promise.resolve();

    before(async () => {
      t = await startTestServer(kind);
      groupId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Results fleet' })).body.id;
      const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId, maxUses: DEVICES });
      for (let i = 0; i < DEVICES; i++) {
        const name = `res-${String(i).padStart(2, '0')}`;
        const r = await enrolRaw(t, tok.body.token, name);
        assert.equal(r.status, 201, JSON.stringify(r.body));
        devices.push({ id: r.body.deviceId, name, credential: r.body.credential });
      }
      task = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'results task', type: 'script', settings: { command: 'true' }, schedule: onDemand, scope: { type: 'group', groupId } })).body;

      // The live stream, read from before the run.
      const res = await t.fetch(`${t.server.url}/api/v1/live`, { headers: { authorization: `Bearer ${t.token}` }, signal: live.signal });
      assert.equal(res.status, 200);
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      pump = (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          buf += value;
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (data && data !== '{}') liveMessages.push(JSON.parse(data) as (typeof liveMessages)[number]);
          }
        }
      })().catch(() => {});

      // Run now on all; a third fail, the others succeed (as their agents would report).
      const run = await t.api<{ requestId: string; targets: number }>('POST', `/api/v1/tasks/${task.id}/run`, {});
      assert.equal(run.status, 202);
      assert.equal(run.body.targets, DEVICES);
      const runs = (await t.api<{ items: Run[] }>('GET', `/api/v1/runs?requestId=${run.body.requestId}&limit=1000`)).body.items;
      assert.equal(runs.length, DEVICES);
      const runOf = new Map(runs.map((r) => [r.deviceId, r.id]));
      failedIds = new Set(devices.filter((_, i) => i % 3 === 0).map((d) => d.id));
      for (const d of devices) {
        const failed = failedIds.has(d.id);
        const r = await agentPost(t, d.credential, AGENT_REPORTS_PATH, { type: 'reports', reports: [report(runOf.get(d.id)!, task.id, { cause: 'run-now', state: failed ? 'failed' : 'succeeded', exitCode: failed ? 1 : 0 })] });
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
    });
    after(async () => {
      live.abort();
      await pump;
      await t?.close();
    });
    const results = (query = '') => t.api<ResultPage & ErrorAnswer>('GET', `/api/v1/tasks/${task.id}/results${query}`);

    it('pages the results by device name, with the count of each state over the whole task', async () => {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const r: { status: number; body: ResultPage } = await results(`?limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        assert.equal(r.status, 200);
        assert.deepEqual(r.body.states, { failed: DEVICES / 3, succeeded: (DEVICES * 2) / 3 });
        assert.equal(r.body.total, DEVICES);
        seen.push(...r.body.items.map((x) => x.deviceName));
        cursor = r.body.nextCursor;
        pages++;
      } while (cursor);
      assert.equal(pages, Math.ceil(DEVICES / PAGE));
      assert.deepEqual(seen, devices.map((d) => d.name), 'every device once, in name order, across pages');
    });

    it('filters by state and searches by device name, literally', async () => {
      const failed = (await results('?state=failed&limit=1000')).body;
      assert.equal(failed.total, DEVICES / 3);
      assert.deepEqual(new Set(failed.items.map((r) => r.deviceId)), failedIds);
      assert.ok(failed.items.every((r) => r.state === 'failed' && r.exitCode === 1));
      assert.deepEqual(failed.states, { failed: DEVICES / 3, succeeded: (DEVICES * 2) / 3 }, 'the counts are of the whole task');
      const found = (await results('?search=RES-1')).body;
      assert.deepEqual(found.items.map((r) => r.deviceName), ['res-10', 'res-11', 'res-12', 'res-13', 'res-14', 'res-15', 'res-16', 'res-17', 'res-18', 'res-19']);
      assert.equal(found.total, 10);
      assert.equal((await results('?search=%25')).body.items.length, 0, '% is no wildcard');
      const two = (await results(`?deviceIds=${devices[1]!.id},${devices[2]!.id}&output=false`)).body;
      assert.deepEqual(two.items.map((r) => r.deviceId), [devices[1]!.id, devices[2]!.id]);
      assert.ok(two.items.every((r) => r.outputTail === null));
    });

    it('refuses a cursor it did not give and a page over the limit with VALIDATION_FAILED', async () => {
      for (const q of ['?cursor=not-a-cursor', `?cursor=${Buffer.from('[1,2,3]').toString('base64url')}`, '?limit=1001', '?limit=0']) {
        const r = await results(q);
        assert.equal(r.status, 400, q);
        assert.equal(r.body.error.code, 'VALIDATION_FAILED', q);
      }
      const runs = await t.api<ErrorAnswer>('GET', '/api/v1/runs?cursor=bm9wZQ');
      assert.equal(runs.body.error.code, 'VALIDATION_FAILED');
    });

    it('exports what the filter matches as CSV', async () => {
      const res = await t.fetch(`${t.server.url}/api/v1/tasks/${task.id}/results/export?state=failed`, { headers: { authorization: `Bearer ${t.token}` } });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/csv/);
      const lines = (await res.text()).trim().split('\n');
      assert.equal(lines[0], 'deviceId,deviceName,hostname,state,percent,attempt,cause,createdAt,startedAt,endedAt,exitCode,reason,runId');
      assert.equal(lines.length, 1 + DEVICES / 3);
      assert.ok(lines.slice(1).every((l) => l.split(',')[3] === 'failed'));
      const all = await t.fetch(`${t.server.url}/api/v1/tasks/${task.id}/results/export`, { headers: { authorization: `Bearer ${t.token}` } });
      assert.equal((await all.text()).trim().split('\n').length, 1 + DEVICES);
    });

    it('pages the targets and the runs (newest first) with continuous cursors', async () => {
      const first = (await t.api<{ items: { name: string }[]; nextCursor: string; total: number }>('GET', `/api/v1/tasks/${task.id}/targets?limit=${PAGE}`)).body;
      assert.equal(first.total, DEVICES);
      const second = (await t.api<{ items: { name: string }[]; nextCursor: string | null }>('GET', `/api/v1/tasks/${task.id}/targets?limit=${PAGE}&cursor=${first.nextCursor}`)).body;
      assert.deepEqual([...first.items, ...second.items].map((d) => d.name), devices.slice(0, 2 * PAGE).map((d) => d.name));
      const found = (await t.api<{ items: { name: string }[] }>('GET', `/api/v1/tasks/${task.id}/targets?search=res-8`)).body;
      assert.deepEqual(found.items.map((d) => d.name), ['res-80', 'res-81', 'res-82', 'res-83', 'res-84', 'res-85', 'res-86', 'res-87', 'res-88', 'res-89']);
      const ids = new Set<string>();
      let cursor: string | null = null;
      let last = '9999';
      do {
        const page: { items: Run[]; nextCursor: string | null } = (await t.api<{ items: Run[]; nextCursor: string | null }>('GET', `/api/v1/runs?taskId=${task.id}&limit=${PAGE}${cursor ? `&cursor=${cursor}` : ''}`)).body;
        for (const r of page.items) {
          assert.ok(r.createdAt <= last, 'newest first');
          last = r.createdAt;
          ids.add(r.id);
        }
        cursor = page.nextCursor;
      } while (cursor);
      assert.equal(ids.size, DEVICES);
    });

    it('lists tasks with their last run and failures; previews a schedule', async () => {
      const list = (await t.api<{ items: (Task & { lastRunAt: string | null; nextRunAt: string | null; failures: number })[] }>('GET', '/api/v1/tasks?search=RESULTS')).body.items;
      const mine = list.find((x) => x.id === task.id)!;
      assert.equal(mine.failures, DEVICES / 3);
      assert.ok(mine.lastRunAt);
      assert.equal(mine.nextRunAt, null, 'on demand only: no next run');
      const daily = await t.api<{ fires: string[]; issues: string[] }>('POST', '/api/v1/schedules/preview', { schedule: { triggers: [{ type: 'daily', time: '03:00' }], timeBasis: 'UTC' }, count: 3 });
      assert.equal(daily.status, 200);
      assert.deepEqual(daily.body.issues, []);
      assert.equal(daily.body.fires.length, 3);
      assert.ok(daily.body.fires.every((f) => f.endsWith('T03:00:00.000Z')));
      assert.equal(Date.parse(daily.body.fires[1]!) - Date.parse(daily.body.fires[0]!), 86_400_000);
      const zone = await t.api<{ fires: string[]; issues: string[] }>('POST', '/api/v1/schedules/preview', { schedule: { triggers: [{ type: 'daily', time: '03:00' }] }, timeZone: 'Mars/Olympus_Mons' });
      assert.ok(zone.body.issues.length > 0);
      assert.deepEqual(zone.body.fires, []);
    });

    it('tells live consoles which task and devices changed', async () => {
      await waitFor(async () => liveMessages.some((m) => m.runs?.tasks.some((x) => x.taskId === task.id && (x.deviceIds === null || x.deviceIds.length > 0))), { what: 'a live message naming the task', timeoutMs: 10_000 });
      const named = new Set(liveMessages.flatMap((m) => m.runs?.tasks.filter((x) => x.taskId === task.id).flatMap((x) => x.deviceIds ?? []) ?? []));
      assert.ok([...named].every((id) => devices.some((d) => d.id === id)), 'only devices of the task');
      assert.ok(liveMessages.every((m) => JSON.stringify(m).length < 16_000), 'every message is bounded');
    });

    it('runs again on the given targets or the failed ones only; refuses devices that are not targets', async () => {
      const outsider = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Not a target' })).body.id;
      const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId: outsider, maxUses: 1 });
      const other = await enrolRaw(t, tok.body.token, 'outsider-1');
      const refused = await t.api<ErrorAnswer>('POST', `/api/v1/tasks/${task.id}/run`, { deviceIds: [devices[0]!.id, other.body.deviceId] });
      assert.equal(refused.status, 409);
      assert.equal(refused.body.error.code, 'DEVICE_NOT_TARGETED');
      assert.deepEqual(refused.body.error.details?.deviceIds, [other.body.deviceId]);
      assert.equal((await results('?state=pending')).body.total, 0, 'nothing was run');
      const tooMany = await t.api<ErrorAnswer>('POST', `/api/v1/tasks/${task.id}/run`, { deviceIds: Array.from({ length: 10_001 }, (_, i) => `d${i}`) });
      assert.equal(tooMany.body.error.code, 'VALIDATION_FAILED');

      const two = await t.api<{ targets: number }>('POST', `/api/v1/tasks/${task.id}/run`, { deviceIds: [devices[1]!.id, devices[2]!.id] });
      assert.equal(two.body.targets, 2);
      const again = await t.api<{ targets: number }>('POST', `/api/v1/tasks/${task.id}/run`, { onlyFailed: true });
      assert.equal(again.status, 202);
      assert.equal(again.body.targets, DEVICES / 3);
      const now = (await results('?state=pending&limit=1000')).body;
      assert.deepEqual(new Set(now.items.map((r) => r.deviceId)), new Set([...failedIds, devices[1]!.id, devices[2]!.id]));
    });
  });
}

describe('run again on the failed devices, with a real agent', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  it('reruns only where the latest run failed', async () => {
    const groupId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Rerun' })).body.id;
    const agent = await startAgent(t, groupId, 'rerun-agent');
    try {
      const task = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'flaky', type: 'script', settings: { shell: 'sh', script: 'exit 3' }, schedule: onDemand, scope: { type: 'group', groupId } })).body;
      const latest = async () => (await t.api<ResultPage>('GET', `/api/v1/tasks/${task.id}/results`)).body.items[0];
      await t.api('POST', `/api/v1/tasks/${task.id}/run`, {});
      await waitFor(async () => (await latest())?.state === 'failed', { what: 'the run failed', output: agent.output, timeoutMs: 30_000 });
      await t.api('PATCH', `/api/v1/tasks/${task.id}`, { settings: { shell: 'sh', script: 'exit 0' } });
      const again = await t.api<{ targets: number; delivered: number }>('POST', `/api/v1/tasks/${task.id}/run`, { onlyFailed: true });
      assert.equal(again.body.targets, 1);
      await waitFor(async () => (await latest())?.state === 'succeeded', { what: 'the rerun succeeded', output: agent.output, timeoutMs: 30_000 });
      const none = await t.api<{ targets: number }>('POST', `/api/v1/tasks/${task.id}/run`, { onlyFailed: true });
      assert.equal(none.body.targets, 0, 'nothing failed any more');
    } finally {
      await agent.stop();
    }
  });
});
