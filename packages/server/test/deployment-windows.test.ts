/**
 * Maintenance windows and urgent deployment assignments end to end, on both databases: the
 * agent's own policy (product "garrison", `maintenanceWindows`) set on a group through the
 * policy API reaches a real agent process, which then holds non-urgent installs outside its
 * windows; an urgent assignment (and the dependency it brings) installs at once; making the
 * held assignment urgent installs it; inside an open window a non-urgent one installs too.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { DeploymentAssignmentView, DeviceProductState, MaintenanceWindow, PackageManifest, PolicyCompliance, Run } from '@garrison/protocol';
import { dbKinds, startAgent, startTestServer, waitFor, type AgentProcess, type TestServer } from './helpers.ts';
import { buildArchive } from './package-fixtures.ts';

/** A product whose install appends "install <product> <version>" to a log beside the products. */
function product(id: string, version: string, extra: Partial<PackageManifest> = {}): PackageManifest {
  return {
    product: id,
    name: id,
    version,
    kind: 'application',
    platforms: ['linux-*', 'darwin-*'],
    commands: {
      install: { shell: 'sh', script: 'set -eu; echo "install $GARRISON_PRODUCT $GARRISON_VERSION" >> "$GARRISON_PRODUCT_DIR/../deploy.log"' },
      uninstall: { shell: 'sh', script: 'echo "uninstall $GARRISON_PRODUCT" >> "$GARRISON_PRODUCT_DIR/../deploy.log"' },
    },
    ...extra,
  };
}

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
/** A one-minute window three days from now (UTC): never open while the test runs. */
const closedWindow = (): MaintenanceWindow => ({ name: 'far away', days: [DAYS[(new Date().getUTCDay() + 3) % 7]!], start: '00:00', durationMinutes: 1, timeBasis: 'UTC' });
/** Every day, all day: always open. */
const openWindow: MaintenanceWindow = { name: 'always', days: [...DAYS], start: '00:00', durationMinutes: 1440, timeBasis: 'UTC' };

for (const kind of dbKinds) {
  describe(`deployment and maintenance windows (${kind.name})`, () => {
    let t: TestServer;
    let agent: AgentProcess & { deviceId: string };
    let groupId: string;
    const stateOf = async (p: string) =>
      (await t.api<{ items: DeviceProductState[] }>('GET', `/api/v1/deployments/compliance?groupId=${groupId}&product=${p}`)).body.items.find((d) => d.deviceId === agent.deviceId);
    const deployLog = async () => (await readFile(path.join(agent.stateDir, 'products', 'deploy.log'), 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);
    const upload = async (m: PackageManifest) => {
      const res = await t.fetch(`${t.server.url}/api/v1/repository/packages?branch=current`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' },
        body: await readFile(await buildArchive(m)),
      });
      assert.equal(res.status, 201, await res.text());
    };
    const assign = async (p: string, body: Record<string, unknown>) => {
      const r = await t.api<DeploymentAssignmentView>('PUT', `/api/v1/groups/${groupId}/deployments/${p}`, body);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body;
    };
    /** Creates an agent policy with these windows and assigns it to the group. */
    const useWindows = async (name: string, windows: MaintenanceWindow[]) => {
      const created = await t.api<{ id: string }>('POST', '/api/v1/policies', { name, product: 'garrison', settings: { maintenanceWindows: windows } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const assigned = await t.api('PUT', `/api/v1/groups/${groupId}/policies/garrison`, { policyId: created.body.id, blockInheritance: false });
      assert.equal(assigned.status, 200, JSON.stringify(assigned.body));
    };
    /** Waits until the device reports the group's agent policy applied (a revision other than `before`). */
    const policyApplied = async (before: string | null) =>
      waitFor(
        async () => {
          const c = (await t.api<{ compliance: PolicyCompliance[] }>('GET', `/api/v1/devices/${agent.deviceId}/policy`)).body.compliance.find((x) => x.product === 'garrison');
          return c && c.state === 'compliant' && c.expectedRevision !== null && c.expectedRevision !== before && c.appliedRevision === c.expectedRevision ? c.expectedRevision : null;
        },
        { what: 'the agent policy applied', output: agent.output, timeoutMs: 30_000 },
      );
    let revision: string | null = null;

    before(async () => {
      t = await startTestServer(kind);
      groupId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Windowed' })).body.id;
      await upload(product('lib', '1.0', { order: 10 }));
      await upload(product('app', '1.0', { order: 20, dependencies: [{ product: 'lib' }] }));
      await upload(product('tool', '1.0', { order: 30 }));
      await upload(product('extra', '1.0', { order: 40 }));
      await useWindows('closed now', [closedWindow()]);
      agent = await startAgent(t, groupId, 'windowed-1');
      revision = await policyApplied(null);
    });
    after(async () => {
      await agent?.kill('SIGKILL');
      await t?.close();
    });

    it('holds a non-urgent install outside the windows; an urgent one installs at once, with its dependency', async () => {
      const tool = await assign('tool', {});
      assert.equal(tool.urgent, false);
      const app = await assign('app', { urgent: true });
      assert.equal(app.urgent, true);
      // The run that installed the urgent product says it held the other step.
      const run = await waitFor(
        async () => (await t.api<{ items: Run[] }>('GET', `/api/v1/devices/${agent.deviceId}/runs`)).body.items.find((r) => r.state === 'succeeded' && /held\s+1 step until the next maintenance window/.test(r.outputTail ?? '')),
        { what: 'a deployment run that held a step', output: agent.output, timeoutMs: 30_000 },
      );
      assert.match(run.outputTail ?? '', /held\s+1 step/);
      // lib came as app's dependency (urgent with it); once installed it has no state of its own.
      await waitFor(async () => (await stateOf('app'))?.state === 'compliant', { what: 'app installed', output: agent.output, timeoutMs: 30_000 });
      assert.deepEqual(await deployLog(), ['install lib 1.0', 'install app 1.0']);
      // Held, not failed nor done: the server still plans it (its state is pending, or installing
      // while a run that held it is reported).
      const held = await stateOf('tool');
      assert.ok(held && ['pending', 'installing'].includes(held.state), JSON.stringify(held));
      assert.equal(held.installedVersion, null);
      const inventory = (await t.api<{ products: { id: string }[] }>('GET', `/api/v1/devices/${agent.deviceId}`)).body.products.map((p) => p.id);
      assert.ok(!inventory.includes('tool'), `tool is not installed: ${inventory.join(', ')}`);
    });

    it('installs the held product once its assignment is made urgent', async () => {
      const tool = await assign('tool', { urgent: true });
      assert.equal(tool.urgent, true);
      await waitFor(async () => (await stateOf('tool'))?.state === 'compliant', { what: 'tool installed', output: agent.output, timeoutMs: 30_000 });
      assert.equal((await deployLog()).at(-1), 'install tool 1.0');
      const listed = (await t.api<{ items: DeploymentAssignmentView[] }>('GET', `/api/v1/deployments?groupId=${groupId}`)).body.items;
      assert.deepEqual(listed.map((a) => [a.product, a.urgent]).sort(), [['app', true], ['tool', true]]);
    });

    it('installs a non-urgent assignment inside an open window', async () => {
      await useWindows('open now', [openWindow]);
      revision = await policyApplied(revision);
      const extra = await assign('extra', {});
      assert.equal(extra.urgent, false);
      await waitFor(async () => (await stateOf('extra'))?.state === 'compliant', { what: 'extra installed', output: agent.output, timeoutMs: 30_000 });
      assert.equal((await deployLog()).at(-1), 'install extra 1.0');
    });
  });
}
