/**
 * The story of the ePO seed, end to end with the sample security application: a device
 * enrols, the initial deployment installs the group's products (the scanner, then its
 * definitions) from signed packages, the scanner's tasks run only while its service runs,
 * a scan finds the EICAR test file and reports it as an event, and newer definitions
 * checked into the repository reach the device at its next check-in.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { DeviceProductState, Run, Task } from '@garrison/protocol';
import { buildScannerPackages } from '@garrison/sample-scanner/build-packages';
import { EICAR_TEST_STRING } from '@garrison/sample-scanner/definitions';
import { agentCli, dbKinds, startAgent, startTestServer, tempDir, waitFor, type AgentProcess, type TestServer } from './helpers.ts';

async function upload(t: TestServer, file: string): Promise<void> {
  const res = await t.fetch(`${t.server.url}/api/v1/repository/packages?branch=current`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' },
    body: await readFile(file),
  });
  assert.equal(res.status, 201, await res.text());
}

for (const kind of dbKinds) {
  describe(`the seed story with the sample scanner (${kind.name})`, () => {
    let t: TestServer;
    let agent: (AgentProcess & { deviceId: string }) | undefined;
    before(async () => {
      t = await startTestServer(kind);
    });
    after(async () => {
      // Stop the scanner service the agent started, then the agent.
      if (agent) {
        const { stopService } = await import('@garrison/sample-scanner/control');
        await stopService(path.join(agent.stateDir, 'products', 'sample-scanner')).catch(() => {});
        await agent.kill('SIGKILL');
      }
      await t.close();
    });

    it('enrols, deploys scanner and definitions, scans, honours the execution condition, and updates definitions', async () => {
      const out = await tempDir('garrison-scanner-pkg-');
      const v1 = await buildScannerPackages(out, { version: '1.0.0', definitionsVersion: '2026.11.21.1' });
      await upload(t, v1.application);
      await upload(t, v1.definitions);
      const group = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Protected' })).body.id;
      await t.api('PUT', `/api/v1/groups/${group}/deployments/sample-scanner`, {});
      await t.api('PUT', `/api/v1/groups/${group}/deployments/sample-scanner-definitions`, {});
      agent = await startAgent(t, group, 'protected-1');
      const a = agent;
      const compliance = async () => (await t.api<{ devices: DeviceProductState[] }>('GET', `/api/v1/deployments/compliance?groupId=${group}`)).body.devices;
      await waitFor(async () => {
        const c = await compliance();
        return c.length === 2 && c.every((d) => d.state === 'compliant');
      }, { what: 'scanner and definitions deployed', timeoutMs: 60_000, output: a.output });
      const device = await waitFor(async () => {
        const d = (await t.api<{ products: { id: string; version: string; running?: boolean }[] }>('GET', `/api/v1/devices/${a.deviceId}`)).body;
        return d.products.some((p) => p.id === 'sample-scanner' && p.running) && d.products.some((p) => p.id === 'sample-scanner-definitions') && d;
      }, { what: 'inventory with a running scanner', output: a.output });
      assert.equal(device.products.find((p) => p.id === 'sample-scanner')!.version, '1.0.0');

      // A scan of a folder with the EICAR test file: a detection event, a warning outcome.
      const dir = await tempDir('garrison-scan-');
      await mkdir(path.join(dir, 'nested'));
      await writeFile(path.join(dir, 'nested', 'eicar.com'), EICAR_TEST_STRING);
      await writeFile(path.join(dir, 'clean.txt'), 'nothing to see');
      const scan = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'scan', product: 'sample-scanner', type: 'scan', settings: { paths: [dir] }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: group } })).body;
      await t.api('POST', `/api/v1/tasks/${scan.id}/run`, {});
      const result = await waitFor(async () => (await t.api<Run[]>('GET', `/api/v1/tasks/${scan.id}/results`)).body.find((r) => r.state !== 'pending' && r.state !== 'running' && r.state !== 'scheduled'), { what: 'scan finished', output: a.output });
      assert.equal(result.state, 'succeeded_with_warnings', JSON.stringify(result));
      const detections = await t.api<{ kind: string; message: string; data: { path: string } }[]>('GET', `/api/v1/events?deviceId=${a.deviceId}&kind=sample-scanner.detection`);
      assert.equal(detections.body.length, 1);
      assert.equal(detections.body[0]!.data.path, path.join(dir, 'nested', 'eicar.com'));

      // Stop the service with the product's stop task: its tasks are then skipped with that reason.
      const stop = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'stop scanner', product: 'sample-scanner', type: 'stop', settings: {}, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: group } })).body;
      await t.api('POST', `/api/v1/tasks/${stop.id}/run`, {});
      await waitFor(async () => (await t.api<Run[]>('GET', `/api/v1/tasks/${stop.id}/results`)).body[0]?.state === 'succeeded', { what: 'service stopped', output: a.output });
      await t.api('POST', `/api/v1/tasks/${scan.id}/run`, {});
      const skipped = await waitFor(async () => (await t.api<Run[]>('GET', `/api/v1/tasks/${scan.id}/results`)).body.find((r) => r.state === 'skipped'), { what: 'scan skipped', output: a.output });
      assert.match(skipped.reason ?? '', /not running/);
      const start = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'start scanner', product: 'sample-scanner', type: 'start', settings: {}, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: group } })).body;
      await t.api('POST', `/api/v1/tasks/${start.id}/run`, {});
      await waitFor(async () => (await t.api<Run[]>('GET', `/api/v1/tasks/${start.id}/results`)).body[0]?.state === 'succeeded', { what: 'service started', output: a.output });

      // Newer definitions checked into the repository reach the device at its next contact, and
      // the scanner's task triggered by new repository content runs by itself once they are in.
      const update = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'update definitions', product: 'sample-scanner', type: 'update-definitions', settings: {}, schedule: { triggers: [{ type: 'repository-content' }] }, scope: { type: 'group', groupId: group } })).body;
      await waitFor(async () => (await t.api<{ id: string }[]>('GET', `/api/v1/devices/${a.deviceId}/tasks`)).body.some((x) => x.id === update.id), { what: 'task assigned' });
      // The agent has it (its trigger armed) before the new content arrives.
      await waitFor(async () => (await agentCli(a.stateDir, ['task', 'list', '--json'])).stdout.includes(update.id), { what: 'the task on the agent', output: a.output });
      const v2 = await buildScannerPackages(await tempDir('garrison-scanner-pkg-'), { version: '1.0.0', definitionsVersion: '2026.11.22.1' });
      await upload(t, v2.definitions);
      await waitFor(async () => (await compliance()).find((d) => d.product === 'sample-scanner-definitions')?.installedVersion === '2026.11.22.1', { what: 'definitions updated', timeoutMs: 30_000, output: a.output });
      const updated = await waitFor(async () => (await t.api<Run[]>('GET', `/api/v1/tasks/${update.id}/results`)).body.find((r) => r.state === 'succeeded'), { what: 'definitions reloaded', output: a.output });
      assert.equal(updated.cause, 'repository-content');
      assert.match(updated.outputTail ?? '', /2026\.11\.22\.1/);
    });
  });
}
