/**
 * The agent events "enrolment" and "agent-start" (issue 13), with real agents: each fires
 * once its tasks are known (a new agent knows none before its first check-in), enrolment once
 * per enrolment, agent-start once per start. Agent-side behaviour: SQLite only.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import type { Run, Task } from '@garrison/protocol';
import { spawnAgent, startAgent, tempDir, useTestServer, waitFor } from './helpers.ts';

describe('agent events: enrolment and agent start', () => {
  const t = useTestServer();
  const task = async (name: string, groupId: string, trigger: string): Promise<Task> => {
    const r = await t.api<Task>('POST', '/api/v1/tasks', { name, type: 'script', settings: { command: `echo ${trigger}` }, schedule: { triggers: [{ type: trigger }] }, scope: { type: 'group', groupId } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };
  const runs = async (taskId: string, deviceId: string) => (await t.api<{ items: Run[] }>('GET', `/api/v1/runs?taskId=${taskId}&deviceId=${deviceId}`)).body.items;
  const finalRuns = async (taskId: string, deviceId: string, n: number) => {
    const list = await runs(taskId, deviceId);
    return list.length >= n && list.every((r) => r.state === 'succeeded') && list;
  };

  it('fires an enrolment-only task once on a device enrolled afterwards (installer path: enrol, then start), never after a restart; agent-start once per start', async () => {
    const g = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Events' })).body.id;
    const onEnrolment = await task('at enrolment', g, 'enrolment');
    const onStart = await task('at agent start', g, 'agent-start');
    const onCheckIn = await task('at check-in', g, 'check-in');

    // As the installer does it: `garrison agent enrol` (which exits), then the service starts.
    const stateDir = await tempDir('garrison-agent-');
    const tokenDir = await tempDir('garrison-enrol-');
    const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId: g, maxUses: 1, expiresInMinutes: 10 });
    await writeFile(path.join(tokenDir, 'token'), `${tok.body.token}\n`, { mode: 0o600 });
    const enrol = spawnAgent(['enrol', '--server', t.server.url, '--token-file', path.join(tokenDir, 'token'), '--ca', t.caFile, '--name', 'events-installed'], stateDir);
    await new Promise((r) => enrol.child.once('exit', r));
    assert.equal(enrol.child.exitCode, 0, enrol.output());
    let agent = t.track(spawnAgent([], stateDir));
    const device = await waitFor(async () => (await t.api<{ items: { id: string; online: boolean }[] }>('GET', '/api/v1/devices?search=events-installed')).body.items.find((d) => d.online), { what: 'agent online', output: agent.output });

    await waitFor(() => finalRuns(onEnrolment.id, device.id, 1), { what: 'the enrolment task ran', output: agent.output });
    await waitFor(() => finalRuns(onStart.id, device.id, 1), { what: 'the agent-start task ran at the first start', output: agent.output });
    const [first] = await runs(onEnrolment.id, device.id);
    assert.equal(first!.cause, 'enrolment');

    // A restart: agent-start fires again (from the kept task list), enrolment does not. A run
    // of the check-in task made after the restart shows that the restarted agent has had its
    // first check-in (the events owed fire before the check-in event).
    await agent.stop();
    const restartedAt = new Date().toISOString();
    agent = t.track(spawnAgent([], stateDir));
    await waitFor(async () => (await runs(onCheckIn.id, device.id)).some((r) => r.createdAt > restartedAt && r.state === 'succeeded'), { what: 'the check-in after the restart', output: agent.output });
    await waitFor(() => finalRuns(onStart.id, device.id, 2), { what: 'the agent-start task ran after the restart', output: agent.output });
    assert.equal((await runs(onEnrolment.id, device.id)).length, 1, 'enrolment fired once');
    assert.equal((await runs(onStart.id, device.id)).length, 2, 'agent-start once per start, not again at the first check-in');
    assert.deepEqual((await runs(onStart.id, device.id)).map((r) => r.cause), ['agent-start', 'agent-start']);
  });

  it('fires both on an agent that enrols and runs in one process', async () => {
    const g = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Events One Process' })).body.id;
    const onEnrolment = await task('enrolment, one process', g, 'enrolment');
    const onStart = await task('agent start, one process', g, 'agent-start');
    const agent = t.track(await startAgent(t, g, 'events-one-process'));
    await waitFor(() => finalRuns(onEnrolment.id, agent.deviceId, 1), { what: 'the enrolment task ran', output: agent.output });
    await waitFor(() => finalRuns(onStart.id, agent.deviceId, 1), { what: 'the agent-start task ran', output: agent.output });
    // A task created afterwards with these triggers does not fire: the events are over.
    const late = await task('enrolment, created later', g, 'enrolment');
    const onCheckIn = await task('check-in, created later', g, 'check-in');
    await waitFor(() => finalRuns(onCheckIn.id, agent.deviceId, 1), { what: 'the agent received the later tasks', output: agent.output });
    assert.equal((await runs(late.id, agent.deviceId)).length, 0);
    assert.equal((await runs(onEnrolment.id, agent.deviceId)).length, 1);
    assert.equal((await runs(onStart.id, agent.deviceId)).length, 1);
  });
});
