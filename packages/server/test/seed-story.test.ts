/**
 * The story of the ePO seed, end to end with the sample security application: a device
 * enrols, the initial deployment installs the group's products (the scanner, then its
 * definitions) from signed packages, the scanner's tasks run only while its service runs,
 * a scan finds the EICAR test file and reports it as an event, and newer definitions
 * checked into the repository reach the device at its next check-in. Then its policy: locked
 * at the top group, a subgroup's profile for tagged devices, real-time protection quarantining
 * EICAR as it is written, and a locked setting changed on the device put back.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, mkdir, access } from 'node:fs/promises';
import path from 'node:path';
import type { DevicePolicyView, DeviceProductState, Policy, Run, Task } from '@garrison/protocol';
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
      const compliance = async () => (await t.api<{ items: DeviceProductState[] }>('GET', `/api/v1/deployments/compliance?groupId=${group}`)).body.items;
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
      const result = await waitFor(async () => (await t.api<{ items: Run[] }>('GET', `/api/v1/tasks/${scan.id}/results`)).body.items.find((r) => r.state !== 'pending' && r.state !== 'running' && r.state !== 'scheduled'), { what: 'scan finished', output: a.output });
      assert.equal(result.state, 'succeeded_with_warnings', JSON.stringify(result));
      const detections = await t.api<{ items: { kind: string; message: string; data: { path: string } }[] }>('GET', `/api/v1/events?deviceId=${a.deviceId}&kind=sample-scanner.detection`);
      assert.equal(detections.body.items.length, 1);
      assert.equal(detections.body.items[0]!.data.path, path.join(dir, 'nested', 'eicar.com'));

      // Stop the service with the product's stop task: its tasks are then skipped with that reason.
      const stop = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'stop scanner', product: 'sample-scanner', type: 'stop', settings: {}, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: group } })).body;
      await t.api('POST', `/api/v1/tasks/${stop.id}/run`, {});
      await waitFor(async () => (await t.api<{ items: Run[] }>('GET', `/api/v1/tasks/${stop.id}/results`)).body.items[0]?.state === 'succeeded', { what: 'service stopped', output: a.output });
      await t.api('POST', `/api/v1/tasks/${scan.id}/run`, {});
      const skipped = await waitFor(async () => (await t.api<{ items: Run[] }>('GET', `/api/v1/tasks/${scan.id}/results`)).body.items.find((r) => r.state === 'skipped'), { what: 'scan skipped', output: a.output });
      assert.match(skipped.reason ?? '', /not running/);
      const start = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'start scanner', product: 'sample-scanner', type: 'start', settings: {}, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: group } })).body;
      await t.api('POST', `/api/v1/tasks/${start.id}/run`, {});
      await waitFor(async () => (await t.api<{ items: Run[] }>('GET', `/api/v1/tasks/${start.id}/results`)).body.items[0]?.state === 'succeeded', { what: 'service started', output: a.output });

      // Newer definitions checked into the repository reach the device at its next contact, and
      // the scanner's task triggered by new repository content runs by itself once they are in.
      const update = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'update definitions', product: 'sample-scanner', type: 'update-definitions', settings: {}, schedule: { triggers: [{ type: 'repository-content' }] }, scope: { type: 'group', groupId: group } })).body;
      await waitFor(async () => (await t.api<{ items: { id: string }[] }>('GET', `/api/v1/devices/${a.deviceId}/tasks`)).body.items.some((x) => x.id === update.id), { what: 'task assigned' });
      // The agent has it (its trigger armed) before the new content arrives.
      await waitFor(async () => (await agentCli(a.stateDir, ['task', 'list', '--json'])).stdout.includes(update.id), { what: 'the task on the agent', output: a.output });
      const v2 = await buildScannerPackages(await tempDir('garrison-scanner-pkg-'), { version: '1.0.0', definitionsVersion: '2026.11.22.1' });
      await upload(t, v2.definitions);
      await waitFor(async () => (await compliance()).find((d) => d.product === 'sample-scanner-definitions')?.installedVersion === '2026.11.22.1', { what: 'definitions updated', timeoutMs: 30_000, output: a.output });
      const updated = await waitFor(async () => (await t.api<{ items: Run[] }>('GET', `/api/v1/tasks/${update.id}/results`)).body.items.find((r) => r.state === 'succeeded'), { what: 'definitions reloaded', output: a.output });
      assert.equal(updated.cause, 'repository-content');
      assert.match(updated.outputTail ?? '', /2026\.11\.22\.1/);

      // The scanner's policy: real-time protection of a folder, the action locked at the top group.
      const watched = await tempDir('garrison-watched-');
      const root = (await t.api<{ items: { id: string; parentId: string | null }[] }>('GET', '/api/v1/groups')).body.items.find((g) => g.parentId === null)!.id;
      const top = await t.api<Policy>('POST', '/api/v1/policies', {
        name: 'Scanner: organisation',
        product: 'sample-scanner',
        settings: { realTimeProtection: true, watchedFolders: [watched], detectionAction: 'quarantine' },
        locked: ['detectionAction', 'watchedFolders'],
      });
      assert.equal(top.status, 201, JSON.stringify(top.body));
      assert.equal((await t.api('PUT', `/api/v1/groups/${root}/policies/sample-scanner`, { policyId: top.body.id, blockInheritance: false })).status, 200);
      // The subgroup's own policy tries to report only (the lock above wins) and has a profile for kiosks.
      const sub = await t.api<Policy>('POST', '/api/v1/policies', {
        name: 'Scanner: protected',
        product: 'sample-scanner',
        settings: { detectionAction: 'report' },
        profiles: [{ id: 'kiosk', name: 'Kiosks', priority: 1, enabled: true, condition: { tags: ['kiosk'] }, settings: { exclusions: ['*.skip'] }, locked: [] }],
      });
      assert.equal(sub.status, 201, JSON.stringify(sub.body));
      assert.equal((await t.api('PUT', `/api/v1/groups/${group}/policies/sample-scanner`, { policyId: sub.body.id, blockInheritance: false })).status, 200);
      assert.equal((await t.api('PATCH', `/api/v1/devices/${a.deviceId}`, { tags: ['kiosk'] })).status, 200);

      const effective = await waitFor(async () => {
        const v = (await t.api<DevicePolicyView>('GET', `/api/v1/devices/${a.deviceId}/policy`)).body;
        const scanner = v.products.find((p) => p.product === 'sample-scanner');
        const state = v.compliance.find((c) => c.product === 'sample-scanner');
        return scanner && state?.state === 'compliant' && state.appliedRevision === scanner.revision && scanner;
      }, { what: 'the scanner policy applied and reported compliant', timeoutMs: 30_000, output: a.output });
      assert.equal(effective.settings.detectionAction!.value, 'quarantine');
      assert.equal(effective.settings.detectionAction!.lockedBy?.kind, 'policy');
      assert.deepEqual(effective.settings.detectionAction!.overridden.map((o) => o.value), ['report']);
      assert.deepEqual(effective.settings.exclusions!.value, ['*.skip']);
      assert.equal(effective.settings.exclusions!.origin.kind, 'profile');
      const scannerDir = path.join(a.stateDir, 'products', 'sample-scanner');
      const config = async () => JSON.parse(await readFile(path.join(scannerDir, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual((await config()).watchedFolders, [watched]);

      // EICAR written into the watched folder is quarantined as it appears; an excluded file is not.
      await writeFile(path.join(watched, 'spared.skip'), EICAR_TEST_STRING);
      const written = performance.now();
      await writeFile(path.join(watched, 'eicar.com'), EICAR_TEST_STRING);
      const gone = async () => access(path.join(watched, 'eicar.com')).then(() => false, () => true);
      await waitFor(gone, { what: 'EICAR quarantined', timeoutMs: 10_000, intervalMs: 10, output: a.output });
      const quarantinedMs = performance.now() - written;
      console.log(`# EICAR written into a watched folder was quarantined after ${quarantinedMs.toFixed(0)} ms`);
      const detection = await waitFor(async () => (await t.api<{ items: { kind: string; data: { path?: string; action?: string } }[] }>('GET', `/api/v1/events?deviceId=${a.deviceId}&kind=sample-scanner.detection`)).body.items.find((e) => e.data.path === path.join(watched, 'eicar.com')), { what: 'the real-time detection in the central log', output: a.output });
      assert.equal(detection.data.action, 'quarantined');
      await access(path.join(watched, 'spared.skip')); // excluded by the kiosk profile

      // A locked setting changed on the device is put back at the next enforcement, and logged centrally.
      await writeFile(path.join(scannerDir, 'config.json'), JSON.stringify({ ...(await config()), detectionAction: 'report' }));
      const enforce = await agentCli(a.stateDir, ['policy', 'enforce']);
      assert.equal(enforce.code, 0, enforce.stderr);
      assert.equal((await config()).detectionAction, 'quarantine');
      const restored = await waitFor(async () => (await t.api<{ items: { kind: string; data: { setting?: string } }[] }>('GET', `/api/v1/events?deviceId=${a.deviceId}&kind=sample-scanner.policy.restored`)).body.items.find((e) => e.data.setting === 'detectionAction'), { what: 'the restored setting in the central log', output: a.output });
      assert.ok(restored);
    });
  });
}
