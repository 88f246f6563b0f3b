/**
 * The agent's own policy on a real agent process, through its local API and CLI: policies kept
 * in the state folder are enforced at start without the server (the server side of policies is
 * exercised by its own tests), a locked setting edited by hand is put back with a
 * policy.restored event, the local user changes unlocked settings and is refused locked ones
 * (POLICY_SETTING_LOCKED), and local task edits are refused when the policy forbids them
 * (LOCAL_TASKS_NOT_ALLOWED).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { DEFAULT_AGENT_POLICY } from '@garrison/protocol';
import { agentCli, startAgent, startTestServer, tempDir, waitFor, type AgentProcess, type TestServer } from './helpers.ts';

describe('agent policy (device side)', () => {
  let t: TestServer;
  let agent: AgentProcess & { deviceId: string };
  let stateDir: string;
  const wanted = { ...DEFAULT_AGENT_POLICY, localTasksAllowed: false, checkInIntervalMinutes: 30 };
  before(async () => {
    t = await startTestServer();
    const g = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Agent policy' })).body.id;
    stateDir = await tempDir('garrison-agent-');
    // As a restart finds them: the policies of an earlier check-in, their last application, and
    // the settings file with the locked setting changed by hand meanwhile.
    await mkdir(path.join(stateDir, 'policy'), { recursive: true });
    await writeFile(path.join(stateDir, 'policy', 'policies.json'), JSON.stringify({ etag: 'seeded', products: [{ product: 'garrison', revision: 'rev-1', settings: wanted, locked: ['localTasksAllowed'] }] }));
    await writeFile(path.join(stateDir, 'policy', 'applied.json'), JSON.stringify({ garrison: { revision: 'rev-1', policy: wanted, applied: wanted, at: new Date().toISOString() } }));
    await writeFile(path.join(stateDir, 'agent-settings.json'), JSON.stringify({ ...wanted, localTasksAllowed: true }));
    agent = await startAgent(t, g, 'policy-agent', { stateDir });
  });
  after(async () => {
    await agent?.stop();
    await t?.close();
  });
  const cli = (args: string[]) => agentCli(stateDir, args);

  it('puts a locked setting edited by hand back at start, with a policy.restored event', async () => {
    await waitFor(async () => JSON.parse(await readFile(path.join(stateDir, 'agent-settings.json'), 'utf8')).localTasksAllowed === false, { what: 'the setting put back', output: agent.output });
    const events = await waitFor(async () => {
      const evs = JSON.parse((await cli(['events', '--json', '--limit', '200'])).stdout) as { kind: string; data?: { setting?: string } }[];
      return evs.find((e) => e.kind === 'garrison.policy.restored');
    }, { what: 'the policy.restored event', output: agent.output });
    assert.equal(events.data?.setting, 'localTasksAllowed');
    const shown = JSON.parse((await cli(['policy', 'show', '--json'])).stdout) as { settings: { localTasksAllowed: boolean }; locked: string[]; status: { state: string; drift?: { setting: string; action: string }[] } };
    assert.equal(shown.settings.localTasksAllowed, false);
    assert.deepEqual(shown.locked, ['localTasksAllowed']);
    assert.equal(shown.status.state, 'compliant');
    assert.deepEqual(shown.status.drift?.map((d) => [d.setting, d.action]), [['localTasksAllowed', 'restored']]);
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
