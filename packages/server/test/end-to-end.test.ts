/**
 * Client tasks end to end: a real server, real agent processes over real sockets, real
 * commands executed on the device side.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import type { Run, Task, TaskProgress } from '@garrison/protocol';
import { agentCli, dbKinds, spawnAgent, startAgent, startProxy, startTestServer, tempDir, useTestServer, waitFor, type AgentProcess, type TestServer } from './helpers.ts';

type Agent = AgentProcess & { deviceId: string };

async function group(t: TestServer, name: string, parentId?: string): Promise<string> {
  const r = await t.api<{ id: string }>('POST', '/api/v1/groups', { name, ...(parentId ? { parentId } : {}) });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id;
}
async function createTask(t: TestServer, body: Record<string, unknown>): Promise<Task> {
  const r = await t.api<Task>('POST', '/api/v1/tasks', { type: 'script', schedule: { triggers: [{ type: 'on-demand' }] }, ...body });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}
async function progress(t: TestServer, taskId: string): Promise<TaskProgress> {
  return (await t.api<TaskProgress>('GET', `/api/v1/tasks/${taskId}/progress`)).body;
}
async function finished(t: TestServer, taskId: string, what = 'task finished', timeoutMs = 20_000): Promise<TaskProgress> {
  return waitFor(async () => {
    const p = await progress(t, taskId);
    return p.finished ? p : undefined;
  }, { what, timeoutMs });
}
async function results(t: TestServer, taskId: string): Promise<Run[]> {
  return (await t.api<{ items: Run[] }>('GET', `/api/v1/tasks/${taskId}/results`)).body.items;
}

for (const kind of dbKinds) {
  describe(`client tasks end to end (${kind.name})`, () => {
    const t = useTestServer(kind);

    it('runs a group task on the group and its subgroups, honours blocked inheritance, and follows devices that move', async () => {
      const parent = await group(t, 'E2E Parent');
      const child = await group(t, 'E2E Child', parent);
      const a = t.track(await startAgent(t, parent, 'e2e-a'));
      const b = t.track(await startAgent(t, child, 'e2e-b'));
      const task = await createTask(t, { name: 'e2e hello', scope: { type: 'group', groupId: parent }, settings: { shell: 'sh', script: 'echo "hello from $0 $1"; echo garrison:progress=50; exit 0', args: ['one'] } });
      const run = await t.api<{ targets: number; delivered: number }>('POST', `/api/v1/tasks/${task.id}/run`, {});
      assert.deepEqual([run.body.targets, run.body.delivered], [2, 2]);
      const p = await finished(t, task.id);
      assert.deepEqual([p.targets, p.states.succeeded], [2, 2]);
      const rs = await results(t, task.id);
      assert.equal(rs.length, 2);
      for (const r of rs) {
        assert.equal(r.state, 'succeeded');
        assert.equal(r.exitCode, 0);
        assert.match(r.outputTail ?? '', /hello from .* one/);
        assert.ok(r.startedAt && r.endedAt && r.endedAt >= r.startedAt);
      }
      // Blocking inheritance on the child removes b from the parent's task.
      await t.api('PATCH', `/api/v1/groups/${child}`, { blockInheritance: true });
      let targets = await t.api<{ items: { id: string }[] }>('GET', `/api/v1/tasks/${task.id}/targets`);
      assert.deepEqual(targets.body.items.map((d) => d.id), [a.deviceId]);
      // Membership is live: b moved into the parent group is a target at once.
      await t.api('PATCH', `/api/v1/devices/${b.deviceId}`, { groupId: parent });
      targets = await t.api('GET', `/api/v1/tasks/${task.id}/targets`);
      assert.deepEqual(targets.body.items.map((d) => d.id).sort(), [a.deviceId, b.deviceId].sort());
      const bTasks = await t.api<{ items: { id: string }[] }>('GET', `/api/v1/devices/${b.deviceId}/tasks`);
      assert.ok(bTasks.body.items.some((x) => x.id === task.id));
    });

    it('maps exit codes, times out, retries with back-off, and stops a running task', async () => {
      const g = await group(t, 'E2E Outcomes');
      const agent = t.track(await startAgent(t, g, 'e2e-outcomes'));
      const marker = path.join(await tempDir(), 'attempts');
      const cases: [Record<string, unknown>, string, (r: Run) => void][] = [
        [{ command: 'exit 3', warningExitCodes: [3] }, 'succeeded_with_warnings', (r) => assert.equal(r.exitCode, 3)],
        [{ command: 'exit 4' }, 'failed', (r) => assert.equal(r.reason, 'exit code 4')],
        [{ command: 'sleep 20', timeoutSeconds: 1 }, 'timed_out', () => {}],
      ];
      for (const [settings, state, check] of cases) {
        const task = await createTask(t, { name: `outcome ${state}`, scope: { type: 'local', deviceId: agent.deviceId }, settings });
        await t.api('POST', `/api/v1/tasks/${task.id}/run`, {});
        await finished(t, task.id, state);
        const [r] = await results(t, task.id);
        assert.equal(r!.state, state);
        check(r!);
      }
      // Fails on the first try, succeeds on the second.
      const retry = await createTask(t, {
        name: 'outcome retry',
        scope: { type: 'local', deviceId: agent.deviceId },
        settings: { shell: 'sh', script: `echo x >> ${marker}; [ $(wc -l < ${marker}) -ge 2 ]` },
        schedule: { triggers: [{ type: 'on-demand' }], retry: { attempts: 2, delaySeconds: 1 } },
      });
      await t.api('POST', `/api/v1/tasks/${retry.id}/run`, {});
      await waitFor(async () => (await results(t, retry.id))[0]?.state === 'succeeded', { what: 'retry succeeded' });
      assert.equal((await results(t, retry.id))[0]!.attempt, 2);
      // Stop: a running run is cancelled.
      const long = await createTask(t, { name: 'outcome long', scope: { type: 'local', deviceId: agent.deviceId }, settings: { command: 'sleep 30' } });
      await t.api('POST', `/api/v1/tasks/${long.id}/run`, {});
      await waitFor(async () => (await progress(t, long.id)).states.running === 1, { what: 'long task running' });
      await t.api('POST', `/api/v1/tasks/${long.id}/stop`);
      const p = await finished(t, long.id, 'stopped');
      assert.equal(p.states.cancelled, 1);
    });

    it('fires event triggers on the agent: check-in, after another task, continuously with back-off', async () => {
      const g = await group(t, 'E2E Triggers');
      const agent = t.track(await startAgent(t, g, 'e2e-triggers'));
      const scope = { type: 'local', deviceId: agent.deviceId };
      const first = await createTask(t, { name: 'trigger first', scope, settings: { command: 'echo first' } });
      const then = await createTask(t, { name: 'trigger then', scope, settings: { command: 'echo then' }, schedule: { triggers: [{ type: 'after-task', taskId: first.id, states: ['succeeded'] }] } });
      const atCheckIn = await createTask(t, { name: 'trigger check-in', scope, settings: { command: 'echo checked-in' }, schedule: { triggers: [{ type: 'check-in' }] } });
      const forever = await createTask(t, { name: 'trigger continuous', scope, settings: { command: 'sleep 0.2' }, schedule: { triggers: [{ type: 'continuous', backoffSeconds: 1, maxBackoffSeconds: 1 }] } });
      // The task list reached the agent with a check-in, which fires the check-in task.
      await waitFor(async () => (await results(t, atCheckIn.id))[0]?.state === 'succeeded', { what: 'check-in task ran', output: agent.output });
      await t.api('POST', `/api/v1/tasks/${first.id}/run`, {});
      await waitFor(async () => (await results(t, then.id))[0]?.state === 'succeeded', { what: 'after-task fired', output: agent.output });
      assert.equal((await results(t, then.id))[0]!.cause, 'after-task');
      await waitFor(async () => (await t.api<{ items: Run[] }>('GET', `/api/v1/runs?taskId=${forever.id}`)).body.items.filter((r) => r.state === 'succeeded').length >= 3, {
        what: 'continuous task restarted',
        output: agent.output,
      });
      await t.api('POST', `/api/v1/tasks/${forever.id}/disable`);
      await new Promise((r) => setTimeout(r, 1500));
      const count = (await t.api<{ items: Run[] }>('GET', `/api/v1/runs?taskId=${forever.id}`)).body.items.length;
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal((await t.api<{ items: Run[] }>('GET', `/api/v1/runs?taskId=${forever.id}`)).body.items.length, count, 'a disabled continuous task is not restarted');
    });

    it('resolves secrets only for the agent and masks them in returned output', async () => {
      const g = await group(t, 'E2E Secrets');
      t.track(await startAgent(t, g, 'e2e-secrets'));
      await t.api('PUT', '/api/v1/secrets/e2e-token', { value: 'tok-123456-very-secret' });
      const task = await createTask(t, {
        name: 'e2e secret',
        scope: { type: 'group', groupId: g },
        settings: { shell: 'sh', script: '[ "$API_TOKEN" = "tok-123456-very-secret" ] && echo "match: $API_TOKEN"', env: { API_TOKEN: { $secret: 'e2e-token' } } },
      });
      await t.api('POST', `/api/v1/tasks/${task.id}/run`, {});
      await finished(t, task.id);
      const [r] = await results(t, task.id);
      assert.equal(r!.state, 'succeeded');
      assert.equal(r!.outputTail?.trim(), 'match: ***');
      const events = await t.api('GET', '/api/v1/events?limit=1000');
      assert.doesNotMatch(JSON.stringify(events.body), /tok-123456-very-secret/);
    });

    it('resumes a run interrupted by an agent crash and reports it once', async () => {
      const g = await group(t, 'E2E Crash');
      const stateDir = await tempDir('garrison-agent-');
      const first = t.track(await startAgent(t, g, 'e2e-crash', { stateDir }));
      const task = await createTask(t, { name: 'e2e crash', scope: { type: 'group', groupId: g }, settings: { shell: 'sh', script: 'sleep 2; echo finished' } });
      await t.api('POST', `/api/v1/tasks/${task.id}/run`, {});
      await waitFor(async () => (await progress(t, task.id)).states.running === 1, { what: 'run started' });
      await first.kill('SIGKILL');
      const second = t.track(spawnAgent([], stateDir));
      const p = await finished(t, task.id, 'resumed run finished', 30_000);
      assert.equal(p.states.succeeded, 1, second.output());
      const runs = (await t.api<{ items: Run[] }>('GET', `/api/v1/runs?taskId=${task.id}`)).body.items;
      assert.equal(runs.length, 1, 'one run, not a duplicate');
      assert.equal(runs[0]!.attempt, 2);
      assert.match(runs[0]!.outputTail ?? '', /finished/);
    });

    it('runs scheduled work while the server is down and delivers the results when it is back', async () => {
      const port = 20000 + Math.floor(Math.random() * 20000);
      const own = await startTestServer(kind, { port });
      let back: TestServer | undefined;
      try {
        const g = (await own.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Offline' })).body.id;
        const stateDir = await tempDir('garrison-agent-');
        const agent = t.track(await startAgent(own, g, 'e2e-offline', { stateDir }));
        const task = (await own.api<Task>('POST', '/api/v1/tasks', { name: 'at agent start', type: 'script', settings: { command: 'echo started-offline' }, schedule: { triggers: [{ type: 'agent-start' }] }, scope: { type: 'group', groupId: g } })).body;
        // Let the agent receive its task list, then take the server away and restart the agent.
        await waitFor(async () => JSON.parse(await readFile(path.join(stateDir, 'tasks.json'), 'utf8')).tasks.some((x: { id: string }) => x.id === task.id), { what: 'agent holds the task' });
        await own.server.close();
        await agent.stop();
        const again = t.track(spawnAgent([], stateDir));
        await waitFor(async () => (await agentCli(stateDir, ['status', '--json'])).stdout.includes('"spooledReports": 1'), { what: 'result spooled offline', output: again.output });
        back = await startTestServer(kind, { port, restartOf: own });
        const server = back;
        await waitFor(async () => (await server.api<{ items: Run[] }>('GET', `/api/v1/runs?taskId=${task.id}`)).body.items.some((r) => r.state === 'succeeded' && r.cause === 'agent-start' && /started-offline/.test(r.outputTail ?? '')), {
          what: 'offline result delivered',
          timeoutMs: 30_000,
          output: again.output,
        });
        await again.stop();
      } finally {
        await own.server.close();
        if (back) await back.close();
        else await own.cleanup();
      }
    });

    it('lets the device user manage local tasks; on a conflict the administrator wins and the event log says so', async () => {
      const g = await group(t, 'E2E Local');
      const proxy = await startProxy(t.server.port);
      try {
        const stateDir = await tempDir('garrison-agent-');
        const agent: Agent = t.track(await startAgent(t, g, 'e2e-local', { stateDir, serverUrl: proxy.url }));
        const created = await agentCli(stateDir, ['task', 'create', '--name', 'local one', '--schedule', '{"triggers":[{"type":"on-demand"}]}', '--settings', '{"command":"echo local"}', '--json']);
        assert.equal(created.code, 0, created.stderr);
        const id = (JSON.parse(created.stdout) as { id: string }).id;
        const onServer = await waitFor(async () => (await t.api<Task>('GET', `/api/v1/tasks/${id}`)).body.origin === 'device' && (await t.api<Task>('GET', `/api/v1/tasks/${id}`)).body, { what: 'local task synced' });
        assert.deepEqual(onServer.scope, { type: 'local', deviceId: agent.deviceId });
        // A change from the device alone is applied.
        assert.equal((await agentCli(stateDir, ['task', 'set', id, '--name', 'local renamed'])).code, 0);
        await waitFor(async () => (await t.api<Task>('GET', `/api/v1/tasks/${id}`)).body.name === 'local renamed', { what: 'device rename applied' });
        // Both change it while the device is cut off: the administrator's version wins.
        proxy.cut();
        await waitFor(async () => !(await t.api<{ online: boolean }>('GET', `/api/v1/devices/${agent.deviceId}`)).body.online, { what: 'agent offline' });
        assert.equal((await t.api('PATCH', `/api/v1/tasks/${id}`, { name: 'admin name' })).status, 200);
        assert.equal((await agentCli(stateDir, ['task', 'set', id, '--name', 'device name'])).code, 0);
        proxy.restore();
        await waitFor(async () => (await t.api<{ items: { kind: string }[] }>('GET', `/api/v1/events?taskId=${id}&kind=task.local-change-overridden`)).body.items.length === 1, { what: 'override logged', timeoutMs: 40_000 });
        assert.equal((await t.api<Task>('GET', `/api/v1/tasks/${id}`)).body.name, 'admin name');
        await waitFor(async () => (await agentCli(stateDir, ['task', 'list', '--json'])).stdout.includes('"admin name"'), { what: 'agent took the admin version' });
        const local = await agentCli(stateDir, ['events', '--json']);
        assert.match(local.stdout, /task\.local-change-overridden/);
        // The device may not change a group task.
        const gt = await createTask(t, { name: 'group owned', scope: { type: 'group', groupId: g }, settings: { command: 'true' } });
        await waitFor(async () => (await agentCli(stateDir, ['task', 'list', '--json'])).stdout.includes(gt.id), { what: 'group task on agent' });
        const refused = await agentCli(stateDir, ['task', 'set', gt.id, '--name', 'mine']);
        assert.equal(refused.code, 1);
        assert.match(refused.stderr, /FORBIDDEN/);
      } finally {
        await proxy.close();
      }
    });
  });
}
