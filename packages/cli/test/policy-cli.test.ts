/**
 * `garrison policy …` and `garrison device policy`: the option parsing and the texts as units,
 * then the commands through cliMain in process against a real server with a real agent:
 * types, create with --set/--lock, show, list, edit (and a stale revision refused with
 * POLICY_REVISION_CONFLICT), preview, assign to a group, the device's effective policy with
 * each value's origin and lock, compliance once the agent reported, copy, export/import,
 * delete refused while assigned (POLICY_IN_USE), unassign, delete.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Policy } from '@garrison/protocol';
import { startAgent, startTestServer, waitFor, type AgentProcess, type TestServer } from '../../server/test/helpers.ts';
import { applySettingOptions, devicePolicyText, originText, parseSetting, previewText } from '../src/commands/policies.ts';
import { cliInProcess, type CliResult } from './support/run-cli.ts';

describe('policy command options and texts', () => {
  it('reads --set KEY=JSON, a non-JSON value as a string', () => {
    assert.deepEqual(parseSetting('checkInIntervalMinutes=30'), ['checkInIntervalMinutes', 30]);
    assert.deepEqual(parseSetting('updateSources=[{"kind":"server"}]'), ['updateSources', [{ kind: 'server' }]]);
    assert.deepEqual(parseSetting('name=plain text'), ['name', 'plain text']);
    assert.deepEqual(parseSetting('a=b=c'), ['a', 'b=c']);
    assert.throws(() => parseSetting('novalue'), /KEY=VALUE/);
  });
  it('applies --set, --unset (which drops the lock), --lock and --unlock', () => {
    const r = applySettingOptions({ a: 1, b: 2 }, ['b'], { set: ['c=true'], unset: ['b'], lock: ['a', 'c'], unlock: ['c'] });
    assert.deepEqual(r, { settings: { a: 1, c: true }, locked: ['a'] });
  });
  it('says where a value comes from', () => {
    const paths = (id: string) => (id === 'g1' ? 'Org/Servers' : id);
    assert.equal(originText({ kind: 'default' }), 'default');
    assert.equal(originText({ kind: 'policy', policyId: 'p', policyName: 'Base', revision: 3, groupId: 'g1' }, paths), 'policy "Base" (rev 3) at Org/Servers');
    assert.equal(
      originText({ kind: 'profile', policyId: 'p', policyName: 'Base', revision: 3, groupId: 'g1', profileId: 'l', profileName: 'Laptops' }, paths),
      'profile "Laptops" of policy "Base" (rev 3) at Org/Servers',
    );
    const text = devicePolicyText({
      products: [
        {
          product: 'garrison',
          revision: 'abcdef0123456789',
          profiles: [],
          settings: {
            checkInIntervalMinutes: {
              value: 15,
              origin: { kind: 'policy', policyId: 'p', policyName: 'Base', revision: 2, groupId: 'g1' },
              lockedBy: { kind: 'policy', policyId: 'p', policyName: 'Base', revision: 2, groupId: 'g1' },
              overridden: [{ origin: { kind: 'policy', policyId: 'q', policyName: 'Child', revision: 1, groupId: 'g2' }, value: 90 }],
            },
            logKeepFiles: { value: 5, origin: { kind: 'default' }, lockedBy: null, overridden: [] },
          },
        },
      ],
      compliance: [],
      nextMaintenanceWindow: null,
    }, paths);
    assert.match(text, /checkInIntervalMinutes\s+15\s+policy "Base" \(rev 2\) at Org\/Servers\s+locked by policy "Base"/);
    assert.match(text, /logKeepFiles\s+5\s+default/);
    assert.match(text, /90 from policy "Child" \(rev 1\) at g2 is overridden by the lock/);
    assert.match(text, /next maintenance window: none/);
    assert.match(
      previewText({ reached: 2, changed: 1, truncated: false, devices: [{ deviceId: 'd1', deviceName: 'web-1', groupId: 'g1', changes: [{ setting: 'logKeepFiles', before: 5, after: 9, lockedBefore: false, lockedAfter: true }] }] }),
      /reaches 2 devices; changes 1\nweb-1 \(d1\):\n {2}logKeepFiles: 5 -> 9 \(now locked\)/,
    );
  });
});

describe('garrison policy against a real server', { timeout: 120_000 }, () => {
  let t: TestServer;
  let home: string;
  let groupId: string;
  let agent: AgentProcess & { deviceId: string };

  const env = () => ({ HOME: home, XDG_CONFIG_HOME: home, GARRISON_URL: t.server.url, GARRISON_TOKEN: t.token, GARRISON_CA: t.caFile });
  const run = (args: string[]): Promise<CliResult> => cliInProcess(args, env());
  const ok = async (args: string[]): Promise<string> => {
    const r = await run(args);
    assert.equal(r.code, 0, `garrison ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const fails = async (args: string[], exit: number, stderr: RegExp): Promise<void> => {
    const r = await run(args);
    assert.equal(r.code, exit, `garrison ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`);
    assert.match(r.stderr, stderr);
  };

  before(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'garrison-policy-cli-'));
    t = await startTestServer();
    groupId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Policy servers' })).body.id;
    agent = await startAgent(t, groupId, 'pol-1');
  });
  after(async () => {
    await agent?.stop();
    await t?.close();
    await rm(home, { recursive: true, force: true });
  });

  it('lists the policy types with their settings', async () => {
    const out = await ok(['policy', 'types']);
    assert.match(out, /^garrison /m);
    assert.match(out, /checkInIntervalMinutes\s+60\s+/);
  });

  let policy: Policy;
  it('creates a policy with settings and a lock, shows it and lists it', async () => {
    policy = JSON.parse(
      await ok(['--json', 'policy', 'create', '--name', 'CLI agent policy', '--product', 'garrison', '--set', 'checkInIntervalMinutes=15', '--set', 'logKeepFiles=7', '--lock', 'checkInIntervalMinutes']),
    ) as Policy;
    assert.equal(policy.revision, 1);
    assert.deepEqual(policy.settings, { checkInIntervalMinutes: 15, logKeepFiles: 7 });
    assert.deepEqual(policy.locked, ['checkInIntervalMinutes']);
    const shown = await ok(['policy', 'show', 'CLI agent policy']);
    assert.match(shown, /checkInIntervalMinutes\s+15\s+yes/);
    assert.match(shown, /Assigned to:\s+no group/);
    assert.match(await ok(['policy', 'list', '--product', 'garrison']), /CLI agent policy\s+garrison\s+1\s+2\s+1\s+0/);
    await fails(['policy', 'create', '--product', 'garrison'], 2, /--name/);
    await fails(['policy', 'create', '--name', 'Bad', '--product', 'garrison', '--set', 'checkInIntervalMinutes=0'], 1, /POLICY_INVALID/);
  });

  it('edits with the revision it read; a stale revision is refused', async () => {
    const out = await ok(['policy', 'edit', 'CLI agent policy', '--set', 'logRetentionDays=10', '--unset', 'logKeepFiles']);
    assert.match(out, /revision 2/);
    await fails(['policy', 'edit', policy.id, '--set', 'logKeepFiles=3', '--revision', '1'], 1, /POLICY_REVISION_CONFLICT/);
  });

  it('assigns the policy to a group after a preview, and the device shows where each value comes from', async () => {
    const pv = await ok(['policy', 'assign', 'CLI agent policy', '--group', 'Policy servers', '--preview']);
    assert.match(pv, /changes 1/);
    assert.match(pv, /checkInIntervalMinutes: 60 -> 15 \(now locked\)/);
    assert.match(await ok(['policy', 'assign', 'CLI agent policy', '--group', 'Policy servers']), /assigned policy "CLI agent policy" to .*Policy servers/);
    assert.match(await ok(['policy', 'group', 'Policy servers']), /garrison\s+CLI agent policy/);
    const why = await ok(['device', 'policy', 'pol-1']);
    assert.match(why, /checkInIntervalMinutes\s+15\s+policy "CLI agent policy" \(rev 2\) at .*Policy servers\s+locked by policy "CLI agent policy"/);
    assert.match(why, /logKeepFiles\s+5\s+default/);
    // A preview of a further change names the device and the change, without saving it.
    assert.match(await ok(['policy', 'preview', 'CLI agent policy', '--set', 'logKeepFiles=9']), /pol-1 .*\n {2}logKeepFiles: 5 -> 9/);
    assert.doesNotMatch(await ok(['policy', 'show', 'CLI agent policy']), /logKeepFiles/);
  });

  it('shows compliance once the agent has applied the policy', async () => {
    let last = '';
    await waitFor(async () => /compliant 1/.test((last = (await run(['policy', 'compliance', 'CLI agent policy'])).stdout + (await run(['device', 'policy', 'pol-1'])).stdout)), { what: 'the agent reports compliant', timeoutMs: 30_000, output: () => last });
    assert.match(await ok(['policy', 'compliance', 'CLI agent policy', '--state', 'compliant']), /pol-1\s+.*Policy servers\s+compliant/);
    await fails(['policy', 'compliance', 'CLI agent policy', '--state', 'bogus'], 2, /--state must be one of/);
  });

  it('copies, exports and imports; refuses to delete while assigned; unassigns and deletes', async () => {
    assert.match(await ok(['policy', 'copy', 'CLI agent policy', '--name', 'CLI copy']), /copied to policy "CLI copy"/);
    const file = path.join(home, 'policy.json');
    await ok(['policy', 'export', 'CLI copy', '-o', file]);
    const doc = JSON.parse(await readFile(file, 'utf8')) as { format: string; policy: { name: string; settings: Record<string, unknown> } };
    assert.equal(doc.format, 'garrison-policy');
    assert.equal(doc.policy.settings.checkInIntervalMinutes, 15);
    assert.match(await ok(['policy', 'import', file, '--name', 'CLI imported']), /imported policy "CLI imported" for garrison/);
    await fails(['policy', 'delete', 'CLI agent policy'], 1, /POLICY_IN_USE/);
    await ok(['policy', 'unassign', '--group', 'Policy servers', '--product', 'garrison']);
    assert.match(await ok(['device', 'policy', 'pol-1']), /checkInIntervalMinutes\s+60\s+default/);
    for (const name of ['CLI agent policy', 'CLI copy', 'CLI imported']) assert.match(await ok(['policy', 'delete', name]), /deleted policy/);
    await fails(['policy', 'show', 'CLI copy'], 1, /NOT_FOUND/);
  });
});
