/**
 * The server-task framework (issue 6): the API's operations, schedules, run now, stop,
 * failures, retries, after-task chains, missed runs, resuming after a shutdown or a dead
 * instance, secrets masked, and one execution per run across two instances on PostgreSQL.
 * A test type ("probe") stands in for real work; the real types have their own test files.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from 'typebox';
import { listRunsOfServerTask, listServerTaskRuns, listServerTasks, SecretRefSchema, type ServerTask, type Page, type ServerTaskExport, type ServerTaskRun } from '@garrison/protocol';
import { ApiError, GarrisonClient } from '@garrison/client';
import { dbKinds, pgSkip, postgresKind, startTestServer, waitFor, type TestServer } from './helpers.ts';
import { defineServerTaskType, type ServerTaskType } from '../src/server-tasks/server-task.ts';
import { buildArchive, manifest } from './package-fixtures.ts';

/** Every execution of the probe type, across all servers of this process. */
const executions: { runId: string; taskName: string; settings: Record<string, unknown> }[] = [];

const probe: ServerTaskType = defineServerTaskType<{ ms?: number; fail?: string; failTimes?: number; token?: string; warn?: boolean }>({
  type: 'probe',
  name: 'Probe',
  description: 'Waits, then succeeds or fails as told (tests only).',
  settingsSchema: Type.Object(
    { ms: Type.Optional(Type.Integer({ minimum: 0 })), fail: Type.Optional(Type.String()), failTimes: Type.Optional(Type.Integer()), token: Type.Optional(SecretRefSchema), warn: Type.Optional(Type.Boolean()) },
    { additionalProperties: false },
  ),
  validate: (s) => (s.ms !== undefined && s.ms > 600_000 ? ['ms: at most 600000'] : []),
  async run(settings, ctx) {
    executions.push({ runId: ctx.runId, taskName: ctx.taskName, settings });
    ctx.progress(10, 'waiting');
    if (settings.token) ctx.output(`using token ${settings.token}`);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, settings.ms ?? 0);
      ctx.signal.addEventListener('abort', () => (clearTimeout(t), reject(ctx.signal.reason as Error)), { once: true });
    });
    const mine = executions.filter((e) => e.taskName === ctx.taskName).length;
    if (settings.fail && mine <= (settings.failTimes ?? Infinity)) throw new Error(settings.fail);
    return { summary: `waited ${settings.ms ?? 0} ms`, data: { ms: settings.ms ?? 0 }, ...(settings.warn ? { warnings: ['something was odd'] } : {}) };
  },
});

const onDemand = { triggers: [{ type: 'on-demand' as const }] };

async function create(t: TestServer, body: Record<string, unknown>): Promise<ServerTask> {
  const r = await t.api<ServerTask>('POST', '/api/v1/server-tasks', { type: 'probe', settings: {}, schedule: onDemand, ...body });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}
async function runs(t: TestServer, id: string): Promise<ServerTaskRun[]> {
  return (await t.api<Page<ServerTaskRun>>('GET', `/api/v1/server-tasks/${id}/runs`)).body.items;
}
const FINAL = new Set(['succeeded', 'succeeded_with_warnings', 'failed', 'timed_out', 'cancelled', 'skipped']);
async function finalRun(t: TestServer, runId: string, timeoutMs = 15_000): Promise<ServerTaskRun> {
  return waitFor(
    async () => {
      const r = (await t.api<ServerTaskRun>('GET', `/api/v1/server-task-runs/${runId}`)).body;
      return FINAL.has(r.state) ? r : null;
    },
    { timeoutMs, what: `run ${runId} to end` },
  );
}
/** "YYYY-MM-DDTHH:MM:SS" in UTC, `ms` from now: a once trigger with timeBasis UTC. */
/**
 * A wall-clock time in UTC at least `ms` from now. A once trigger has whole seconds, so the
 * time is rounded up: truncated, `now + 1000` could be as little as a few ms away, and a task
 * created after its only fire time never runs (the cause of a rare flake under load).
 */
function utcLocal(ms: number): string {
  return new Date(Math.ceil((Date.now() + ms) / 1000) * 1000).toISOString().slice(0, 19);
}

for (const kind of dbKinds) {
  describe(`server tasks (${kind.name})`, () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer(kind, { serverTaskTypes: [probe] });
    });
    after(async () => t.close());

    it('lists types and starts with the default maintenance and backup tasks', async () => {
      const types = (await t.api<{ type: string; settingsSchema: unknown }[]>('GET', '/api/v1/server-task-types')).body;
      assert.ok(types.some((x) => x.type === 'database-maintenance' && x.settingsSchema));
      const list = (await t.api<Page<ServerTask>>('GET', '/api/v1/server-tasks?limit=1000')).body.items;
      const m = list.find((x) => x.type === 'database-maintenance');
      assert.ok(m, 'default maintenance task');
      assert.ok(m.nextRunAt && Date.parse(m.nextRunAt) > Date.now(), 'scheduled');
      assert.ok(list.some((x) => x.type === 'backup' && x.enabled), 'default backup task');
    });

    it('refuses bad definitions with stable codes and stores nothing', async () => {
      const before = (await t.api<Page<ServerTask>>('GET', '/api/v1/server-tasks?limit=1000')).body.items.length;
      const cases: [Record<string, unknown>, string][] = [
        [{ name: 'x', type: 'nope' }, 'TASK_TYPE_UNKNOWN'],
        [{ name: 'x', settings: { ms: 'soon' } }, 'SETTINGS_INVALID'],
        [{ name: 'x', settings: { ms: 700_000 } }, 'SETTINGS_INVALID'],
        [{ name: 'x', settings: { password: 'hunter2' } }, 'SECRET_LITERAL_REFUSED'],
        [{ name: 'x', settings: { token: { $secret: 'missing' } } }, 'SECRET_NOT_FOUND'],
        [{ name: 'x', schedule: { triggers: [{ type: 'check-in' }] } }, 'SCHEDULE_INVALID'],
        [{ name: 'x', schedule: { triggers: [{ type: 'after-task', taskId: 'nope' }] } }, 'SCHEDULE_INVALID'],
        [{ name: 'x', schedule: { triggers: [{ type: 'cron', expression: 'not a cron' }] } }, 'SCHEDULE_INVALID'],
        [{ name: '', settings: {} }, 'VALIDATION_FAILED'],
      ];
      for (const [body, code] of cases) {
        const r = await t.api<{ error: { code: string } }>('POST', '/api/v1/server-tasks', { type: 'probe', settings: {}, schedule: onDemand, ...body });
        assert.equal(r.body.error?.code, code, `${JSON.stringify(body)} → ${JSON.stringify(r.body)}`);
      }
      assert.equal((await t.api<Page<ServerTask>>('GET', '/api/v1/server-tasks?limit=1000')).body.items.length, before);
    });

    it('runs now, records progress, history and the event log; refuses a second run-now while one runs', async () => {
      const task = await create(t, { name: 'quick', settings: { ms: 300, warn: true } });
      const run = (await t.api<ServerTaskRun>('POST', `/api/v1/server-tasks/${task.id}/run`)).body;
      assert.equal(run.cause, 'run-now');
      const again = await t.api<{ error: { code: string } }>('POST', `/api/v1/server-tasks/${task.id}/run`);
      assert.equal(again.body.error.code, 'CONFLICT');
      const done = await finalRun(t, run.id);
      assert.equal(done.state, 'succeeded_with_warnings');
      assert.equal(done.summary, 'waited 300 ms');
      assert.deepEqual(done.result, { ms: 300, warnings: ['something was odd'] });
      assert.equal(done.percent, 100);
      assert.ok(done.startedAt && done.endedAt && done.createdBy);
      await t.server.services.events.flush();
      const events = (await t.api<{ items: { kind: string; taskId: string }[] }>('GET', `/api/v1/events?taskId=${task.id}`)).body.items.map((e) => e.kind);
      for (const k of ['audit.server-task.created', 'audit.server-task.run-now', 'server-task.started', 'server-task.succeeded-with-warnings']) assert.ok(events.includes(k), `${k} in ${events.join(',')}`);
    });

    it('a failing task records why, retries per its schedule, and the server goes on', async () => {
      const task = await create(t, { name: `flaky-${kind.name}`, settings: { fail: 'disk on fire', failTimes: 1 }, schedule: { ...onDemand, retry: { attempts: 2, delaySeconds: 1 } } });
      const first = await finalRun(t, (await t.api<ServerTaskRun>('POST', `/api/v1/server-tasks/${task.id}/run`)).body.id);
      assert.equal(first.state, 'failed');
      assert.match(first.summary!, /disk on fire/);
      const retried = await waitFor(async () => (await runs(t, task.id)).find((r) => r.cause === 'retry' && FINAL.has(r.state)), { what: 'the retry' });
      assert.equal(retried.state, 'succeeded');
      assert.equal(retried.attempt, 2);
      assert.equal((await t.api('GET', '/api/v1/me')).status, 200);
    });

    it('stop cancels a running task at once', async () => {
      const task = await create(t, { name: 'long', settings: { ms: 60_000 } });
      const run = (await t.api<ServerTaskRun>('POST', `/api/v1/server-tasks/${task.id}/run`)).body;
      await waitFor(async () => (await t.api<ServerTaskRun>('GET', `/api/v1/server-task-runs/${run.id}`)).body.state === 'running');
      const stop = await t.api<{ stopping: number }>('POST', `/api/v1/server-tasks/${task.id}/stop`);
      assert.equal(stop.body.stopping, 1);
      const done = await finalRun(t, run.id, 5000);
      assert.equal(done.state, 'cancelled');
      assert.match(done.summary!, /stopped by an administrator/);
    });

    it('fires once triggers, after-task chains, and repository-content triggers', async () => {
      const first = await create(t, { name: 'first', schedule: { triggers: [{ type: 'once', at: utcLocal(1500) }], timeBasis: 'UTC' } });
      assert.ok(first.nextRunAt);
      const second = await create(t, { name: 'second', schedule: { triggers: [{ type: 'after-task', taskId: first.id, states: ['succeeded'] }] } });
      const onContent = await create(t, { name: 'on content', schedule: { triggers: [{ type: 'repository-content' }] } });
      const a = await waitFor(async () => (await runs(t, first.id)).find((r) => r.state === 'succeeded'), { what: 'the once trigger' });
      assert.equal(a.cause, 'schedule');
      assert.equal((await t.api<ServerTask>('GET', `/api/v1/server-tasks/${first.id}`)).body.nextRunAt, null, 'a once trigger fires once');
      const b = await waitFor(async () => (await runs(t, second.id)).find((r) => r.state === 'succeeded'), { what: 'the after-task run' });
      assert.equal(b.cause, 'after-task');
      const file = await buildArchive(manifest('content-app', '1.0'));
      const { readFile } = await import('node:fs/promises');
      const up = await t.fetch(`${t.server.url}/api/v1/repository/packages?branch=current`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: await readFile(file) });
      assert.equal(up.status, 201, await up.text());
      const c = await waitFor(async () => (await runs(t, onContent.id)).find((r) => r.state === 'succeeded'), { what: 'the repository-content run' });
      assert.equal(c.cause, 'repository-content');
    });

    it('a missed fire is skipped with an event, or run once when "run missed runs" is on', async () => {
      const k = t.server.db.kysely;
      const longAgo = new Date(Date.now() - 3600_000).toISOString();
      const skip = await create(t, { name: 'missed-off', schedule: { triggers: [{ type: 'interval', every: 1, unit: 'hours' }] } });
      const catchUp = await create(t, { name: 'missed-on', schedule: { triggers: [{ type: 'interval', every: 1, unit: 'hours' }], runMissed: true } });
      // As if the server had been down at the fire time.
      await k.updateTable('server_tasks').set({ next_run_at: longAgo }).where('id', 'in', [skip.id, catchUp.id]).execute();
      const r = await waitFor(async () => (await runs(t, catchUp.id)).find((x) => x.state === 'succeeded'), { what: 'the missed run' });
      assert.equal(r.cause, 'missed');
      await t.server.services.events.flush();
      const ev = (await t.api<{ items: { kind: string }[] }>('GET', `/api/v1/events?taskId=${skip.id}`)).body.items.map((e) => e.kind);
      assert.ok(ev.includes('server-task.missed'));
      assert.equal((await runs(t, skip.id)).length, 0);
      const after = (await t.api<ServerTask>('GET', `/api/v1/server-tasks/${skip.id}`)).body;
      assert.ok(Date.parse(after.nextRunAt!) > Date.now(), 'rescheduled in the future');
    });

    it('secret values are resolved for the run and masked in what it records', async () => {
      assert.equal((await t.api('PUT', '/api/v1/secrets/probe-token', { value: 's3cr3t-value' })).status, 204);
      const task = await create(t, { name: 'with secret', settings: { token: { $secret: 'probe-token' } } });
      const done = await finalRun(t, (await t.api<ServerTaskRun>('POST', `/api/v1/server-tasks/${task.id}/run`)).body.id);
      assert.equal(executions.find((e) => e.runId === done.id)?.settings.token, 's3cr3t-value', 'the type got the value');
      assert.match(done.outputTail!, /using token \*\*\*/);
      const exported = JSON.stringify((await t.api('GET', `/api/v1/server-tasks/export?ids=${task.id}`)).body);
      assert.ok(!exported.includes('s3cr3t-value') && exported.includes('probe-token'));
      const all = JSON.stringify([(await t.api('GET', '/api/v1/server-task-runs')).body, (await t.api('GET', `/api/v1/events?taskId=${task.id}`)).body]);
      assert.ok(!all.includes('s3cr3t-value'));
    });

    it('copies, changes with revisions, disables, exports and imports (all or nothing), deletes', async () => {
      const a = await create(t, { name: 'exp-a', description: 'first', settings: { ms: 1 } });
      await create(t, { name: 'exp-b', schedule: { triggers: [{ type: 'after-task', taskId: a.id }] } });
      const copy = await t.api<ServerTask>('POST', `/api/v1/server-tasks/${a.id}/copy`, { name: 'exp-a copy' });
      assert.equal(copy.status, 201);
      assert.deepEqual(copy.body.settings, { ms: 1 });
      const changed = await t.api<ServerTask>('PATCH', `/api/v1/server-tasks/${a.id}`, { description: 'changed', revision: a.revision });
      assert.equal(changed.body.revision, a.revision + 1);
      const stale = await t.api<{ error: { code: string } }>('PATCH', `/api/v1/server-tasks/${a.id}`, { description: 'stale', revision: a.revision });
      assert.equal(stale.body.error.code, 'CONFLICT');
      const daily = await t.api<ServerTask>('PATCH', `/api/v1/server-tasks/${a.id}`, { schedule: { triggers: [{ type: 'daily', time: '04:00' }] } });
      assert.ok(daily.body.nextRunAt);
      assert.equal((await t.api<ServerTask>('POST', `/api/v1/server-tasks/${a.id}/disable`)).body.nextRunAt, null);
      assert.ok((await t.api<ServerTask>('POST', `/api/v1/server-tasks/${a.id}/enable`)).body.nextRunAt);

      const list = (await t.api<Page<ServerTask>>('GET', '/api/v1/server-tasks?limit=1000')).body.items;
      const ids = list.filter((x) => x.name.startsWith('exp-')).map((x) => x.id);
      const doc = (await t.api<ServerTaskExport>('GET', `/api/v1/server-tasks/export?ids=${ids.join(',')}`)).body;
      assert.equal(doc.format, 'garrison.server-tasks');
      const b = doc.tasks.find((x) => x.name === 'exp-b')!;
      assert.deepEqual(b.schedule.triggers[0], { type: 'after-task', taskId: 'exp-a' }, 'linked by name');
      const renamed = { ...doc, tasks: doc.tasks.map((x) => ({ ...x, name: `imp-${x.name}`, schedule: { ...x.schedule, triggers: x.schedule.triggers.map((g) => (g.type === 'after-task' ? { ...g, taskId: `imp-${g.taskId}` } : g)) } })) };
      const bad = { ...renamed, tasks: [...renamed.tasks, { name: 'broken', type: 'probe', settings: { ms: 'x' }, schedule: onDemand, enabled: true }] };
      const refused = await t.api<{ error: { code: string; message: string } }>('POST', '/api/v1/server-tasks/import', bad);
      assert.equal(refused.body.error.code, 'IMPORT_INVALID');
      assert.match(refused.body.error.message, /broken/);
      assert.ok(!(await t.api<Page<ServerTask>>('GET', '/api/v1/server-tasks?limit=1000')).body.items.some((x) => x.name.startsWith('imp-')), 'nothing imported');
      const imported = await t.api<ServerTask[]>('POST', '/api/v1/server-tasks/import', renamed);
      assert.equal(imported.status, 201, JSON.stringify(imported.body));
      const impA = imported.body.find((x) => x.name === 'imp-exp-a')!;
      const impB = imported.body.find((x) => x.name === 'imp-exp-b')!;
      assert.deepEqual(impB.schedule.triggers[0], { type: 'after-task', taskId: impA.id });
      assert.equal((await t.api('POST', '/api/v1/server-tasks/import', { format: 'garrison.tasks' })).status, 422);

      assert.equal((await t.api('DELETE', `/api/v1/server-tasks/${copy.body.id}`)).status, 204);
      assert.equal((await t.api<{ error: { code: string } }>('GET', `/api/v1/server-tasks/${copy.body.id}`)).body.error.code, 'NOT_FOUND');
    });

    it('pages a task\'s runs newest first with a cursor, and the runs of every task; refuses a cursor it did not give', async () => {
      const task = await create(t, { name: 'paged-runs' });
      const t0 = Date.parse('2026-01-01T00:00:00.000Z');
      // Six finished runs; two share a creation time, so the id must break the tie.
      const rows = [0, 1, 2, 3, 3, 4].map((sec, i) => ({ id: `page-run-${i}`, at: new Date(t0 + sec * 1000).toISOString(), state: i === 2 ? 'failed' : 'succeeded' }));
      await t.server.db.kysely
        .insertInto('server_task_runs')
        .values(rows.map((r) => ({ id: r.id, task_id: task.id, state: r.state, cause: 'run-now', attempt: 1, percent: 100, message: null, created_at: r.at, not_before: r.at, started_at: r.at, ended_at: r.at, owner: null, lease_until: null, stop_requested_at: null, summary: 'done', result: null, output_tail: null, created_by: 'admin' })))
        .execute();
      const newestFirst = [...rows].sort((a, b) => (a.at === b.at ? b.id.localeCompare(a.id) : b.at.localeCompare(a.at))).map((r) => r.id);
      const api = new GarrisonClient({ baseUrl: t.server.url, token: t.token, fetch: t.fetch });

      const first = await api.call(listRunsOfServerTask, { params: { id: task.id }, query: { limit: 4 } });
      assert.deepEqual(first.items.map((r) => r.id), newestFirst.slice(0, 4));
      assert.ok(first.nextCursor);
      const second = await api.call(listRunsOfServerTask, { params: { id: task.id }, query: { limit: 4, cursor: first.nextCursor } });
      assert.deepEqual(second.items.map((r) => r.id), newestFirst.slice(4));
      assert.equal(second.nextCursor, null);
      const pages: string[][] = [];
      for await (const page of api.pages(listRunsOfServerTask, { params: { id: task.id }, query: { limit: 2 } })) pages.push(page.items.map((r) => r.id));
      assert.deepEqual(pages, [newestFirst.slice(0, 2), newestFirst.slice(2, 4), newestFirst.slice(4)]);
      // The filter applies to every page; the list of every task pages the same way.
      assert.deepEqual((await api.all(listRunsOfServerTask, { params: { id: task.id }, query: { state: 'failed', limit: 1 } })).map((r) => r.id), ['page-run-2']);
      const everyRun = (await api.all(listServerTaskRuns, { query: { limit: 3 } })).map((r) => r.id);
      assert.deepEqual(everyRun.filter((id) => id.startsWith('page-run-')), newestFirst);
      assert.equal(new Set(everyRun).size, everyRun.length, 'no run on two pages');

      for (const cursor of ['not-a-cursor', Buffer.from('[1,2]').toString('base64url'), Buffer.from('["a"]').toString('base64url')]) {
        await assert.rejects(api.call(listRunsOfServerTask, { params: { id: task.id }, query: { cursor } }), (e: ApiError) => e.code === 'VALIDATION_FAILED' && e.status === 400, cursor);
      }
      await assert.rejects(api.call(listServerTaskRuns, { query: { limit: 1001 } }), (e: ApiError) => e.code === 'VALIDATION_FAILED' && e.status === 400);
      await assert.rejects(api.call(listRunsOfServerTask, { params: { id: 'no-such-task' }, query: {} }), (e: ApiError) => e.code === 'NOT_FOUND');
    });

    it('pages the server tasks by name', async () => {
      for (const n of ['pg-c', 'pg-a', 'pg-b']) await create(t, { name: n });
      const api = new GarrisonClient({ baseUrl: t.server.url, token: t.token, fetch: t.fetch });
      const first = await api.call(listServerTasks, { query: { type: 'probe', limit: 1 } });
      assert.equal(first.items.length, 1);
      assert.ok(first.total && first.total >= 3);
      const names = (await api.all(listServerTasks, { query: { type: 'probe', limit: 2 } })).map((x) => x.name);
      assert.deepEqual(names.filter((x) => x.startsWith('pg-')), ['pg-a', 'pg-b', 'pg-c']);
      assert.equal(names.length, first.total);
    });

    it('database maintenance purges past retention in batches and reports sizes', async () => {
      const old = new Date(Date.now() - 400 * 86400_000).toISOString();
      for (let i = 0; i < 250; i++) t.server.services.events.record({ severity: 'info', kind: 'test.old', message: `old ${i}`, time: old });
      await t.server.services.events.flush();
      const m = (await t.api<Page<ServerTask>>('GET', '/api/v1/server-tasks?limit=1000')).body.items.find((x) => x.type === 'database-maintenance')!;
      await t.api('PATCH', `/api/v1/server-tasks/${m.id}`, { settings: { batchSize: 100, vacuum: 'always' } });
      const done = await finalRun(t, (await t.api<ServerTaskRun>('POST', `/api/v1/server-tasks/${m.id}/run`)).body.id);
      assert.equal(done.state, 'succeeded', done.summary ?? '');
      const data = done.result as { removed: { events: number }; sizeBeforeBytes: number; sizeAfterBytes: number; maintenance: string[] };
      assert.ok(data.removed.events >= 250, JSON.stringify(data));
      assert.ok(data.sizeBeforeBytes > 0 && data.sizeAfterBytes > 0);
      assert.ok(data.maintenance.some((x) => x.includes('vacuum')));
      assert.equal((await t.api<{ items: unknown[] }>('GET', '/api/v1/events?kind=test.old')).body.items.length, 0);
    });
  });

  describe(`server tasks survive restarts (${kind.name})`, () => {
    it('a run interrupted by a shutdown resumes at the next start; a dead instance\'s run is taken over', async () => {
      const t1 = await startTestServer(kind, { serverTaskTypes: [probe] });
      let t2: TestServer | null = null;
      try {
        const task = await create(t1, { name: 'interrupted', settings: { ms: 1500 } });
        const run = (await t1.api<ServerTaskRun>('POST', `/api/v1/server-tasks/${task.id}/run`)).body;
        await waitFor(async () => (await t1.api<ServerTaskRun>('GET', `/api/v1/server-task-runs/${run.id}`)).body.state === 'running');
        await t1.server.close();
        t2 = await startTestServer(kind, { restartOf: t1, serverTaskTypes: [probe] });
        const done = await finalRun(t2, run.id);
        assert.equal(done.state, 'succeeded');
        assert.equal(executions.filter((e) => e.runId === run.id).length, 2, 'ran again after the restart');

        // A run claimed by an instance that died: its lease runs out and it is resumed.
        const ghost = await create(t2, { name: 'ghost' });
        const now = new Date().toISOString();
        await t2.server.db.kysely
          .insertInto('server_task_runs')
          .values({ id: 'ghost-run', task_id: ghost.id, state: 'running', cause: 'run-now', attempt: 1, percent: 40, message: null, created_at: now, not_before: now, started_at: now, ended_at: null, owner: 'dead-instance', lease_until: new Date(Date.now() - 1000).toISOString(), stop_requested_at: null, summary: null, result: null, output_tail: null, created_by: 'admin' })
          .execute();
        const resumed = await finalRun(t2, 'ghost-run');
        assert.equal(resumed.state, 'succeeded');
        assert.equal(resumed.cause, 'resumed');
        assert.equal(resumed.attempt, 2);
      } finally {
        await (t2 ?? t1).close();
      }
    });
  });
}

describe('server tasks on two instances sharing PostgreSQL', { skip: pgSkip }, () => {
  it('each run executes once, whichever instance claims it', async () => {
    const a = await startTestServer(postgresKind, { serverTaskTypes: [probe] });
    const b = await startTestServer(postgresKind, { restartOf: a, serverTaskTypes: [probe], port: 0 });
    try {
      const task = await create(a, { name: 'shared', settings: { ms: 50 }, schedule: { triggers: [{ type: 'once', at: utcLocal(1000) }], timeBasis: 'UTC' } });
      assert.ok(task.nextRunAt, 'scheduled in the future');
      const scheduled = await waitFor(async () => (await runs(b, task.id)).find((r) => r.state === 'succeeded'), { what: 'the scheduled run' });
      const viaB = (await b.api<ServerTaskRun>('POST', `/api/v1/server-tasks/${task.id}/run`)).body;
      await finalRun(a, viaB.id);
      await new Promise((r) => setTimeout(r, 600)); // a few more ticks of both instances
      const all = await runs(a, task.id);
      assert.equal(all.length, 2, JSON.stringify(all));
      for (const r of [scheduled.id, viaB.id]) assert.equal(executions.filter((e) => e.runId === r).length, 1, `run ${r} executed once`);
    } finally {
      await b.server.close();
      await a.close();
    }
  });
});
