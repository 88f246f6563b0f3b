/**
 * A rollout's cap on concurrent installs, with real agents on both databases: three devices
 * of a group, a product whose install blocks until the test opens a gate file beside the
 * device's products, and at most one installing at once. While one device installs, the
 * others are held ("waiting: ..."); each finished install nudges the waiting ones, and all
 * three end installed. The compliance API never shows two installing, and the installs'
 * start/end lines in a shared log never overlap.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DeploymentAssignmentView, DeviceProductState, PackageManifest } from '@garrison/protocol';
import { dbKinds, startAgent, tempDir, useTestServer, waitFor } from './helpers.ts';
import { buildArchive } from './package-fixtures.ts';

/** Appends "start <dir>" to the shared log, waits for "<products>/gate", appends "end <dir>". */
const gated = (log: string): PackageManifest => ({
  product: 'capped-app',
  name: 'Capped app',
  version: '1.0',
  kind: 'application',
  platforms: ['linux-*', 'darwin-*'],
  commands: {
    install: {
      shell: 'sh',
      script: `set -eu; echo "start $GARRISON_PRODUCT_DIR" >> '${log}'; while [ ! -f "$GARRISON_PRODUCT_DIR/../gate" ]; do sleep 0.05; done; echo "end $GARRISON_PRODUCT_DIR" >> '${log}'`,
    },
  },
});

for (const kind of dbKinds) {
  describe(`rollout cap on concurrent installs (${kind.name})`, () => {
    const t = useTestServer(kind);

    it('lets at most one device of the group install at a time, and all three end installed', async () => {
      const groupId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Capped fleet' })).body.id;
      const log = path.join(await tempDir('garrison-cap-'), 'installs.log');
      await writeFile(log, '');
      const res = await t.fetch(`${t.server.url}/api/v1/repository/packages`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: await readFile(await buildArchive(gated(log))) });
      assert.equal(res.status, 201, await res.text());
      // A rollout with only the cap: no phases (the default [100]).
      const assigned = await t.api<DeploymentAssignmentView>('PUT', `/api/v1/groups/${groupId}/deployments/capped-app`, { rollout: { maxConcurrentInstalls: 1 } });
      assert.equal(assigned.status, 200, JSON.stringify(assigned.body));
      assert.deepEqual(assigned.body.rollout, { maxConcurrentInstalls: 1 });
      // Out of range is refused by the schema.
      assert.equal((await t.api('PUT', `/api/v1/groups/${groupId}/deployments/capped-app`, { rollout: { maxConcurrentInstalls: 0 } })).status, 400);

      const agents = [];
      for (const name of ['cap-1', 'cap-2', 'cap-3']) agents.push(t.track(await startAgent(t, groupId, name)));
      const stateDirOf = new Map(agents.map((a) => [a.deviceId, a.stateDir]));
      const states = async () => (await t.api<{ items: DeviceProductState[] }>('GET', `/api/v1/deployments/compliance?groupId=${groupId}&product=capped-app`)).body.items;

      // Watch the compliance API the whole time: never two installing.
      let sampling = true;
      let samples = 0;
      let maxInstalling = 0;
      const sampler = (async () => {
        while (sampling) {
          const n = (await states()).filter((s) => s.state === 'installing').length;
          maxInstalling = Math.max(maxInstalling, n);
          samples++;
          await new Promise((r) => setTimeout(r, 50));
        }
      })();

      const released = new Set<string>();
      for (let round = 0; round < 3; round++) {
        // One device installs; the others that still need the product were held at their check-in.
        const installing = await waitFor(
          async () => {
            const s = await states();
            const inst = s.filter((x) => x.state === 'installing');
            const waiting = s.filter((x) => x.state === 'pending' && x.detail?.startsWith('waiting:'));
            const open = (await readFile(log, 'utf8')).split('\n').filter((l) => l.startsWith('start ')).length - released.size;
            return inst.length === 1 && !released.has(inst[0]!.deviceId) && waiting.length === 2 - round && open === 1 && inst[0]!;
          },
          { what: `round ${round + 1}: one device installing, ${2 - round} waiting`, timeoutMs: 30_000 },
        );
        await writeFile(path.join(stateDirOf.get(installing.deviceId)!, 'products', 'gate'), '');
        released.add(installing.deviceId);
        await waitFor(async () => (await states()).find((x) => x.deviceId === installing.deviceId)?.state === 'compliant', { what: `round ${round + 1}: the device installed`, timeoutMs: 30_000 });
      }
      await waitFor(async () => {
        const s = await states();
        return s.length === 3 && s.every((x) => x.state === 'compliant' && x.installedVersion === '1.0');
      }, { what: 'all three installed', timeoutMs: 30_000 });
      sampling = false;
      await sampler;
      assert.ok(samples > 5, `sampled ${samples} times`);
      assert.equal(maxInstalling, 1, 'never more than one device installing');

      // The installs themselves never overlapped: every start is followed by its own end.
      const lines = (await readFile(log, 'utf8')).trim().split('\n');
      assert.equal(lines.length, 6, lines.join('\n'));
      for (let i = 0; i < lines.length; i += 2) {
        const dir = lines[i]!.replace(/^start /, '');
        assert.ok(lines[i]!.startsWith('start '), lines.join('\n'));
        assert.equal(lines[i + 1], `end ${dir}`, lines.join('\n'));
      }
      assert.equal(new Set(lines.map((l) => l.split(' ')[1])).size, 3, 'three different devices installed');
    });
  });
}
