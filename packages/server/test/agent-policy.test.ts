/**
 * The agent's own policy on a real agent process, from the server's policy API to the agent's
 * local API and CLI: the policy set and locked for the group reaches the agent, a locked
 * setting edited by hand in the agent's settings file is put back at an enforcement with a
 * policy.restored event (in the local log and the central one), the local user changes
 * unlocked settings and is refused locked ones (POLICY_SETTING_LOCKED), and local task edits
 * are refused when the policy forbids them (LOCAL_TASKS_NOT_ALLOWED).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import type { DevicePolicyView } from '@garrison/protocol';
import { agentCli, startAgent, startTestServer, tempDir, waitFor, type AgentProcess, type TestServer } from './helpers.ts';

describe('agent policy (device side)', () => {
  let t: TestServer;
  let agent: AgentProcess & { deviceId: string };
  let stateDir: string;
  const settingsFile = () => path.join(stateDir, 'agent-settings.json');
  const onDevice = async () => JSON.parse(await readFile(settingsFile(), 'utf8').catch(() => '{}')) as Record<string, unknown>;
  before(async () => {
    t = await startTestServer();
    const g = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Agent policy' })).body.id;
    const policy = await t.api<{ id: string }>('POST', '/api/v1/policies', { name: 'No local tasks', product: 'garrison', settings: { localTasksAllowed: false, checkInIntervalMinutes: 30 }, locked: ['localTasksAllowed'] });
    assert.equal(policy.status, 201, JSON.stringify(policy.body));
    assert.equal((await t.api('PUT', `/api/v1/groups/${g}/policies/garrison`, { policyId: policy.body.id, blockInheritance: false })).status, 200);
    stateDir = await tempDir('garrison-agent-');
    agent = await startAgent(t, g, 'policy-agent', { stateDir });
    await waitFor(async () => {
      const v = (await t.api<DevicePolicyView>('GET', `/api/v1/devices/${agent.deviceId}/policy`)).body;
      return v.compliance.find((c) => c.product === 'garrison')?.state === 'compliant' && (await onDevice()).localTasksAllowed === false;
    }, { what: 'the agent policy applied and reported', output: agent.output, timeoutMs: 30_000 });
  });
  after(async () => {
    await agent?.stop();
    await t?.close();
  });
  const cli = (args: string[]) => agentCli(stateDir, args);

  it('puts a locked setting edited by hand back at an enforcement, with a policy.restored event', async () => {
    assert.equal((await onDevice()).checkInIntervalMinutes, 30);
    await writeFile(settingsFile(), JSON.stringify({ ...(await onDevice()), localTasksAllowed: true }));
    const enforced = await cli(['policy', 'enforce']);
    assert.equal(enforced.code, 0, enforced.stderr);
    assert.equal((await onDevice()).localTasksAllowed, false);
    const local = await waitFor(async () => {
      const evs = JSON.parse((await cli(['events', '--json', '--limit', '200'])).stdout) as { kind: string; data?: { setting?: string } }[];
      return evs.find((e) => e.kind === 'garrison.policy.restored');
    }, { what: 'the policy.restored event in the local log', output: agent.output });
    assert.equal(local.data?.setting, 'localTasksAllowed');
    await waitFor(async () => (await t.api<{ items: { data: { setting?: string } }[] }>('GET', `/api/v1/events?deviceId=${agent.deviceId}&kind=garrison.policy.restored`)).body.items.some((e) => e.data.setting === 'localTasksAllowed'), { what: 'the event in the central log', output: agent.output });
    const shown = JSON.parse((await cli(['policy', 'show', '--json'])).stdout) as { settings: { localTasksAllowed: boolean }; locked: string[]; status: { state: string; drift?: { setting: string; action: string }[] } };
    assert.equal(shown.settings.localTasksAllowed, false);
    assert.deepEqual(shown.locked, ['localTasksAllowed']);
    // The agent watches its settings file: the edit may have been put back before the enforcement ran.
    assert.ok(['compliant', 'drifted'].includes(shown.status.state), shown.status.state);
  });

  it('refuses a locked setting locally and takes an unlocked one', async () => {
    const locked = await cli(['policy', 'set', 'localTasksAllowed=true']);
    assert.equal(locked.code, 1);
    assert.match(locked.stderr, /POLICY_SETTING_LOCKED/);
    const bad = await cli(['policy', 'set', 'checkInIntervalMinutes=0']);
    assert.match(bad.stderr, /VALIDATION_FAILED/);
    const ok = await cli(['policy', 'set', 'checkInRandomizationMinutes=7', '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { settings: { checkInRandomizationMinutes: number } }).settings.checkInRandomizationMinutes, 7);
    assert.equal(JSON.parse(await readFile(path.join(stateDir, 'agent-settings.json'), 'utf8')).checkInRandomizationMinutes, 7);
  });

  it('refuses local task edits while the policy does not allow them', async () => {
    const created = await cli(['task', 'create', '--name', 'not allowed', '--schedule', 'every:15m', '--command', 'echo hi']);
    assert.equal(created.code, 1);
    assert.match(created.stderr, /LOCAL_TASKS_NOT_ALLOWED/);
  });
});
