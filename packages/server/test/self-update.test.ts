/**
 * Agent self-update through the deployment path, with the real launcher and bundled agents:
 * a newer agent package reaches the device and the agent restarts into it keeping its state;
 * an agent that does not come up is rolled back by the launcher, and the failure reported.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import type { DeviceProductState, Run, Task } from '@garrison/protocol';
import { buildAgentBundle, buildAgentPackage } from '../../agent/src/bundle.ts';
import { ROOT, dbKinds, startTestServer, tempDir, waitFor, type TestServer } from './helpers.ts';

for (const kind of dbKinds) {
  describe(`agent self-update with the launcher (${kind.name})`, { timeout: 180_000 }, () => {
    let t: TestServer;
    let launcher: ChildProcess | undefined;
    let output = '';
    before(async () => {
      t = await startTestServer(kind);
    });
    after(async () => {
      if (launcher && launcher.exitCode === null) {
        launcher.kill('SIGTERM');
        await new Promise((r) => launcher!.once('exit', r));
      }
      await t.close();
    });
    const upload = async (file: string) => {
      const res = await t.fetch(`${t.server.url}/api/v1/repository/packages`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: await readFile(file) });
      assert.equal(res.status, 201, await res.text());
    };

    it('updates the agent, keeps its state, and rolls back an agent that does not come up', async () => {
      const work = await tempDir('garrison-selfupdate-');
      const v1 = path.join(work, 'agent-1.0.0.mjs');
      await buildAgentBundle(v1, { version: '1.0.0' });
      const group = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Self-updating' })).body.id;
      const token = (await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId: group, maxUses: 1 })).body.token;
      const state = path.join(work, 'state');
      // The launcher gives every runtime it starts these arguments; the token is read from the
      // file at the first start only (the updated runtimes find the agent enrolled).
      const tokenFile = path.join(work, 'enrolment-token');
      await writeFile(tokenFile, token, { mode: 0o600 });
      launcher = spawn(process.execPath, [path.join(ROOT, 'packages/agent/src/launcher-main.ts'), '--state', state, '--bootstrap', v1, '--bootstrap-version', '1.0.0', '--', '--server', t.server.url, '--token-file', tokenFile, '--name', 'updater-device', '--ca', t.caFile], {
        env: { ...process.env, GARRISON_UPDATE_CONFIRM_MS: '20000' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      launcher.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      launcher.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      const device = async () => (await t.api<{ items: { id: string; agentVersion: string; online: boolean }[] }>('GET', '/api/v1/devices?search=updater-device')).body.items[0];
      const first = await waitFor(async () => (await device())?.online && (await device()), { what: 'agent 1.0.0 online', output: () => output });
      assert.equal(first.agentVersion, '1.0.0');
      // A task that runs at every agent start shows the task list survives the update.
      const atStart = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'at start', type: 'script', settings: { command: 'echo started' }, schedule: { triggers: [{ type: 'agent-start' }] }, scope: { type: 'group', groupId: group } })).body;

      await upload(await buildAgentPackage(path.join(work, 'garrison-1.0.1.tgz'), { version: '1.0.1' }));
      await t.api('PUT', `/api/v1/groups/${group}/deployments/garrison`, {});
      await waitFor(async () => (await device())?.agentVersion === '1.0.1' && (await device())?.online, { what: 'agent 1.0.1 online', timeoutMs: 60_000, output: () => output });
      const compliance = async () => (await t.api<{ items: DeviceProductState[] }>('GET', `/api/v1/deployments/compliance?groupId=${group}&product=garrison`)).body.items[0];
      await waitFor(async () => (await compliance())?.state === 'compliant' && (await compliance())?.installedVersion === '1.0.1', { what: 'garrison compliant at 1.0.1', output: () => output });
      assert.equal(JSON.parse(await readFile(path.join(state, 'runtime', 'current.json'), 'utf8')).version, '1.0.1');
      await waitFor(async () => (await t.api<{ items: Run[] }>('GET', `/api/v1/runs?taskId=${atStart.id}`)).body.items.filter((r) => r.state === 'succeeded').length >= 1, {
        what: 'the new agent ran its agent-start task',
        output: () => output,
      });

      // 1.0.2 never comes up: the launcher goes back to 1.0.1, which reports the failure.
      const broken = path.join(work, 'broken.mjs');
      await writeFile(broken, 'process.stderr.write("broken agent\\n"); process.exit(3);\n');
      await upload(await buildAgentPackage(path.join(work, 'garrison-1.0.2.tgz'), { version: '1.0.2', bundle: broken }));
      await waitFor(async () => (await compliance())?.state === 'failed', { what: 'update to 1.0.2 reported failed', timeoutMs: 60_000, output: () => output });
      assert.match((await compliance())!.detail ?? '', /rolled back/);
      const d = await waitFor(async () => (await device())?.online && (await device()), { what: 'agent back online', output: () => output });
      assert.equal(d.agentVersion, '1.0.1');
      assert.equal(JSON.parse(await readFile(path.join(state, 'runtime', 'current.json'), 'utf8')).version, '1.0.1');
      assert.match(output, /rolling back to 1\.0\.1/);
    });
  });
}
