/**
 * Product deployment end to end: real signed packages in the repository, a real agent that
 * downloads, verifies and installs them in dependency order, updates when a newer version
 * is checked in, reports a failed install's return code, refuses a tampered archive, rolls
 * back, and removes.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DeviceProductState, PackageManifest, Page, RepositoryPackage } from '@garrison/protocol';
import { apiClient, dbKinds, startAgent, startTestServer, waitFor, type AgentProcess, type TestServer } from './helpers.ts';
import { buildArchive } from './package-fixtures.ts';

/** A product whose install appends its name to a log beside the products, and whose uninstall says so too. */
function product(id: string, version: string, extra: Partial<PackageManifest> = {}, install = 'set -eu; echo "install $GARRISON_PRODUCT $GARRISON_VERSION" >> "$GARRISON_PRODUCT_DIR/../deploy.log"'): PackageManifest {
  return {
    product: id,
    name: id,
    version,
    kind: 'application',
    platforms: ['linux-*', 'darwin-*'],
    commands: {
      install: { shell: 'sh', script: install },
      uninstall: { shell: 'sh', script: 'echo "uninstall $GARRISON_PRODUCT" >> "$GARRISON_PRODUCT_DIR/../deploy.log"' },
    },
    ...extra,
  };
}

async function upload(t: TestServer, m: PackageManifest, branch = 'current'): Promise<RepositoryPackage> {
  const res = await t.fetch(`${t.server.url}/api/v1/repository/packages?branch=${branch}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' },
    body: await readFile(await buildArchive(m)),
  });
  const body = (await res.json()) as RepositoryPackage;
  assert.equal(res.status, 201, JSON.stringify(body));
  return body;
}

type Compliance = { items: (DeviceProductState & { deviceName: string })[]; summary: { product: string; states: Record<string, number> }[] };

for (const kind of dbKinds) {
  describe(`product deployment end to end (${kind.name})`, () => {
    let t: TestServer;
    let agent: AgentProcess & { deviceId: string };
    let groupId: string;
    const states = async () => (await t.api<Compliance>('GET', `/api/v1/deployments/compliance?groupId=${groupId}`)).body.items;
    const stateOf = async (product: string) => (await states()).find((d) => d.product === product);
    const deployLog = async () => (await readFile(path.join(agent.stateDir, 'products', 'deploy.log'), 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);

    before(async () => {
      t = await startTestServer(kind);
      groupId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Deployed' })).body.id;
    });
    after(async () => {
      await agent?.kill('SIGKILL');
      await t.close();
    });

    it('installs the group\'s products at enrolment in dependency order (updater, management, security app)', async () => {
      await upload(t, product('updater', '1.0', { order: 10 }));
      await upload(t, product('manager', '2.0', { order: 20, dependencies: [{ product: 'updater' }] }));
      await upload(t, product('secapp', '1.9', { order: 30, dependencies: [{ product: 'manager', minVersion: '2.0' }] }));
      const assigned = await t.api('PUT', `/api/v1/groups/${groupId}/deployments/secapp`, { branch: 'current' });
      assert.equal(assigned.status, 200, JSON.stringify(assigned.body));
      agent = await startAgent(t, groupId, 'deploy-1');
      await waitFor(async () => (await stateOf('secapp'))?.state === 'compliant' && (await stateOf('secapp'))?.installedVersion === '1.9', { what: 'secapp installed', output: agent.output, timeoutMs: 30_000 });
      assert.deepEqual(await deployLog(), ['install updater 1.0', 'install manager 2.0', 'install secapp 1.9']);
      // The agent reports its new inventory at the check-in that follows the install.
      const inventory = async () => (await t.api<{ products: { id: string; version: string }[] }>('GET', `/api/v1/devices/${agent.deviceId}`)).body.products.map((p) => `${p.id}@${p.version}`).sort();
      await waitFor(async () => (await inventory()).length === 4, { what: 'inventory reported' });
      assert.deepEqual(await inventory(), ['garrison@0.1.0', 'manager@2.0', 'secapp@1.9', 'updater@1.0']);
      // The install reports may reach the server just after the check-in that made the device compliant.
      await waitFor(async () => (await t.api<{ items: { kind: string }[] }>('GET', `/api/v1/events?deviceId=${agent.deviceId}&kind=garrison.deployment.installed`)).body.items.length === 3, { what: 'three install events' });
      // The dashboard's summary, counted by the database, agrees with the compliance view.
      const dashboard = await t.api<{ compliance: Compliance['summary'] }>('GET', '/api/v1/summary');
      const compliance = await t.api<Compliance>('GET', '/api/v1/deployments/compliance');
      const bySorted = (l: Compliance['summary']) => [...l].sort((a, b) => a.product.localeCompare(b.product));
      assert.deepEqual(bySorted(dashboard.body.compliance), bySorted(compliance.body.summary));
      assert.equal(dashboard.body.compliance.find((c) => c.product === 'secapp')?.states.compliant, 1);
      assert.equal((await t.api<{ error: { code: string } }>('GET', '/api/v1/deployments/compliance?cursor=WzFd')).body.error.code, 'VALIDATION_FAILED');
      assert.equal((await t.api<{ error: { code: string } }>('GET', '/api/v1/deployments/compliance?limit=5000')).body.error.code, 'VALIDATION_FAILED');
      // An administrator confined to another group sees none of these rows, nor their counts.
      const elsewhere = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Elsewhere' })).body.id;
      const password = 'confined-pass-12345';
      assert.equal((await t.api('POST', '/api/v1/admins', { name: 'deploy-confined', password, grants: [{ roleId: 'administrator', groupId: elsewhere }] })).status, 201);
      const session = (await (await t.fetch(`${t.server.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'deploy-confined', password }) })).json()) as { token: string };
      const confined = apiClient(t.fetch, t.server.url, session.token);
      const theirs = await confined<Page<unknown> & Compliance>('GET', '/api/v1/deployments/compliance');
      assert.equal(theirs.status, 200, theirs.text);
      assert.deepEqual([theirs.body.items, theirs.body.total, theirs.body.summary], [[], 0, []]);
      assert.equal((await confined<{ error: { code: string } }>('GET', `/api/v1/deployments/compliance?groupId=${groupId}`)).body.error.code, 'NOT_FOUND');
      assert.deepEqual((await confined<Page<unknown>>('GET', '/api/v1/deployments')).body.items, []);
    });

    it('updates to a newer version checked into the branch (1.10 after 1.9)', async () => {
      await upload(t, product('secapp', '1.10', { order: 30, dependencies: [{ product: 'manager', minVersion: '2.0' }] }));
      await waitFor(async () => (await stateOf('secapp'))?.installedVersion === '1.10', { what: 'secapp updated', output: agent.output, timeoutMs: 30_000 });
      assert.equal((await deployLog()).at(-1), 'install secapp 1.10');
    });

    it('reports a failed install with its return code and output, and refuses a tampered archive', async () => {
      await upload(t, product('broken', '1.0', { order: 40 }, 'echo "cannot write /opt/broken" >&2; exit 7'));
      await t.api('PUT', `/api/v1/groups/${groupId}/deployments/broken`, {});
      // The assignments page by group path, then product.
      const assigned1 = (await t.api<Page<{ product: string }>>('GET', `/api/v1/deployments?groupId=${groupId}&limit=1`)).body;
      assert.deepEqual([assigned1.items.map((a) => a.product), assigned1.total], [['broken'], 2]);
      const assigned2 = (await t.api<Page<{ product: string }>>('GET', `/api/v1/deployments?groupId=${groupId}&limit=1&cursor=${assigned1.nextCursor}`)).body;
      assert.deepEqual([assigned2.items.map((a) => a.product), assigned2.nextCursor], [['secapp'], null]);
      await waitFor(async () => (await stateOf('broken'))?.state === 'failed', { what: 'broken failed', output: agent.output, timeoutMs: 30_000 });
      const broken = (await stateOf('broken'))!;
      assert.equal(broken.exitCode, 7);
      assert.match(broken.outputTail ?? '', /cannot write/);
      // Paged by product then device: a page boundary; the summary covers every page; a state filter narrows the rows only.
      const page1 = (await t.api<Page<Compliance['items'][number]> & Compliance>('GET', `/api/v1/deployments/compliance?groupId=${groupId}&limit=1`)).body;
      assert.deepEqual([page1.items.map((d) => d.product), page1.total, typeof page1.nextCursor], [['broken'], 2, 'string']);
      assert.deepEqual(page1.summary.map((x) => x.product).sort(), ['broken', 'secapp']);
      const page2 = (await t.api<Page<Compliance['items'][number]>>('GET', `/api/v1/deployments/compliance?groupId=${groupId}&limit=1&cursor=${page1.nextCursor}`)).body;
      assert.deepEqual([page2.items.map((d) => d.product), page2.nextCursor], [['secapp'], null]);
      const failedOnly = (await t.api<Page<Compliance['items'][number]> & Compliance>('GET', `/api/v1/deployments/compliance?groupId=${groupId}&state=failed`)).body;
      assert.deepEqual([failedOnly.items.map((d) => d.product), failedOnly.total, failedOnly.summary.length], [['broken'], 1, 2]);
      const failed = await t.api<{ items: { kind: string; severity: string; data: { exitCode: number } }[] }>('GET', `/api/v1/events?deviceId=${agent.deviceId}&kind=garrison.deployment.failed`);
      assert.equal(failed.body.items[0]?.data.exitCode, 7);
      await t.api('DELETE', `/api/v1/groups/${groupId}/deployments/broken`);

      const evil = await upload(t, product('extra', '1.0', { order: 50 }));
      const file = path.join(t.dataDir, 'repository', `${evil.sha256}.tgz`);
      const bytes = await readFile(file);
      bytes[bytes.length - 20] ^= 0xff;
      await writeFile(file, bytes);
      await t.api('PUT', `/api/v1/groups/${groupId}/deployments/extra`, {});
      await waitFor(async () => (await stateOf('extra'))?.state === 'failed', { what: 'tampered package refused', output: agent.output, timeoutMs: 30_000 });
      assert.match((await stateOf('extra'))!.detail ?? '', /SHA-256/);
      assert.ok(!(await deployLog()).includes('install extra 1.0'), 'nothing of a tampered package ran');
      const refused = await t.api<{ items: unknown[] }>('GET', `/api/v1/events?deviceId=${agent.deviceId}&kind=garrison.deployment.refused`);
      assert.equal(refused.body.items.length >= 1, true);
      await t.api('DELETE', `/api/v1/groups/${groupId}/deployments/extra`);
    });

    it('shows a product as installing while its install runs', async () => {
      await upload(t, product('slow', '1.0', { order: 60 }, 'sleep 2'));
      await t.api('PUT', `/api/v1/groups/${groupId}/deployments/slow`, {});
      await waitFor(async () => (await stateOf('slow'))?.state === 'installing', { what: 'slow installing', output: agent.output, timeoutMs: 30_000 });
      await waitFor(async () => (await stateOf('slow'))?.state === 'compliant', { what: 'slow installed', output: agent.output, timeoutMs: 30_000 });
      await t.api('DELETE', `/api/v1/groups/${groupId}/deployments/slow`);
    });

    it('rolls back to the previous branch, and removes a product assigned for removal', async () => {
      await t.api('PUT', `/api/v1/groups/${groupId}/deployments/secapp`, { branch: 'previous' });
      await waitFor(async () => (await stateOf('secapp'))?.installedVersion === '1.9', { what: 'secapp rolled back', output: agent.output, timeoutMs: 30_000 });
      // A subgroup overrides: its devices have the product removed.
      const sub = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'No secapp', parentId: groupId })).body.id;
      await t.api('PUT', `/api/v1/groups/${sub}/deployments/secapp`, { action: 'remove' });
      await t.api('PATCH', `/api/v1/devices/${agent.deviceId}`, { groupId: sub });
      await waitFor(async () => (await deployLog()).at(-1) === 'uninstall secapp', { what: 'secapp removed', output: agent.output, timeoutMs: 30_000 });
      const device = await t.api<{ products: { id: string }[] }>('GET', `/api/v1/devices/${agent.deviceId}`);
      await waitFor(async () => !(await t.api<{ products: { id: string }[] }>('GET', `/api/v1/devices/${agent.deviceId}`)).body.products.some((p) => p.id === 'secapp'), { what: 'inventory without secapp' });
      assert.ok(device.body.products.length > 0);
    });
  });
}
