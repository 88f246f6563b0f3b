/**
 * Staged rollout with real agents: a new version reaches the pilot group first, the others
 * once the pilot runs it; a version whose installs fail past the threshold halts the
 * rollout by itself, leaving the other devices on the version they had.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { DeploymentAssignmentView, DeviceProductState, PackageManifest } from '@garrison/protocol';
import { dbKinds, startAgent, useTestServer, waitFor } from './helpers.ts';
import { buildArchive } from './package-fixtures.ts';

const app = (version: string, install = 'true'): PackageManifest => ({
  product: 'fleet-app',
  name: 'Fleet app',
  version,
  kind: 'application',
  platforms: ['linux-*', 'darwin-*'],
  commands: { install: { shell: 'sh', script: install } },
});

for (const kind of dbKinds) {
  describe(`staged rollout (${kind.name})`, () => {
    const t = useTestServer(kind, { rolloutIntervalMs: 300 });
    const upload = async (m: PackageManifest) => {
      const res = await t.fetch(`${t.server.url}/api/v1/repository/packages`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: await readFile(await buildArchive(m)) });
      assert.equal(res.status, 201, await res.text());
    };

    it('goes to the pilot group first, then everyone; halts past the failure threshold', async () => {
      const fleet = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Rollout fleet' })).body.id;
      const pilot = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Pilot', parentId: fleet })).body.id;
      await upload(app('1.0'));
      const assigned = await t.api<DeploymentAssignmentView>('PUT', `/api/v1/groups/${fleet}/deployments/fleet-app`, { rollout: { pilotGroupId: pilot, percentages: [100], failureThresholdPercent: 40 } });
      assert.equal(assigned.status, 200, JSON.stringify(assigned.body));
      const p1 = t.track(await startAgent(t, pilot, 'pilot-1'));
      const a1 = t.track(await startAgent(t, fleet, 'fleet-1'));
      const a2 = t.track(await startAgent(t, fleet, 'fleet-2'));
      const versions = async () => {
        const c = (await t.api<{ items: (DeviceProductState & { deviceName: string })[] }>('GET', `/api/v1/deployments/compliance?groupId=${fleet}&product=fleet-app`)).body.items;
        return Object.fromEntries(c.map((d) => [d.deviceName, `${d.installedVersion}/${d.state}`]));
      };
      // New installs are not held: everyone gets 1.0.
      await waitFor(async () => Object.values(await versions()).filter((v) => v === '1.0/compliant').length === 3, { what: 'all on 1.0', timeoutMs: 30_000 });

      // 1.1: the pilot first (the others wait), then the others once the pilot runs it.
      await upload(app('1.1'));
      await waitFor(async () => Object.values(await versions()).every((x) => x === '1.1/compliant'), { what: 'all on 1.1', timeoutMs: 30_000 });
      // The others installed 1.1 only after the pilot had it: compare when the installs were stored.
      // (The install reports may reach the server just after the check-ins that made the devices compliant.)
      const installs = await waitFor(async () => {
        const list = (await t.api<{ items: { time: string; deviceId: string; data: { version: string } }[] }>('GET', `/api/v1/events?groupId=${fleet}&kind=garrison.deployment.installed&limit=100`)).body.items.filter((e) => e.data.version === '1.1');
        return list.length === 3 && list;
      }, { what: 'three install events' });
      const at = (d: { deviceId: string }) => installs.find((e) => e.deviceId === d.deviceId)!.time;
      assert.ok(at(p1) < at(a1) && at(p1) < at(a2), `pilot first: ${JSON.stringify(installs.map((e) => [e.deviceId === p1.deviceId ? 'pilot' : 'other', e.time]))}`);
      await waitFor(async () => (await t.api<{ items: DeploymentAssignmentView[] }>('GET', `/api/v1/deployments?groupId=${fleet}`)).body.items[0]!.rolloutState?.state === 'completed', { what: 'rollout completed' });

      // 1.2 fails on the pilot: the rollout halts and the others stay on 1.1.
      await upload(app('1.2', 'echo "disk full" >&2; exit 28'));
      await waitFor(async () => (await t.api<{ items: DeploymentAssignmentView[] }>('GET', `/api/v1/deployments?groupId=${fleet}`)).body.items[0]!.rolloutState?.state === 'halted', { what: 'rollout halted', timeoutMs: 30_000 });
      const halted = (await t.api<{ items: DeploymentAssignmentView[] }>('GET', `/api/v1/deployments?groupId=${fleet}`)).body.items[0]!.rolloutState!;
      assert.equal(halted.targetVersion, '1.2');
      assert.match(halted.reason ?? '', /1 of 1 installs failed/);
      const v = await versions();
      assert.equal(v['pilot-1'], 'null/failed');
      assert.equal(v['fleet-1'], '1.1/pending');
      assert.equal(v['fleet-2'], '1.1/pending');
      const events = await t.api<{ items: { kind: string }[] }>('GET', `/api/v1/events?groupId=${fleet}&kind=deployment.rollout-halted`);
      assert.equal(events.body.items.length, 1);
      // Resuming is refused unless halted, and accepted now.
      assert.equal((await t.api('POST', `/api/v1/groups/${fleet}/deployments/fleet-app/rollout/resume`)).status, 200);
    });
  });
}
