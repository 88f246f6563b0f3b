/**
 * Staged rollouts with several server instances on one database (issue 14). Every instance
 * evaluates every rollout on its own timer and every instance meets the new version in the
 * plans of its own agents, so each change of a rollout is a compare-and-set in the store
 * (DeploymentStore.startRollout, advanceRollout): exactly one instance starts a rollout and
 * moves each phase on, and only that one announces it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { DeploymentAssignmentView, DeviceProductState, PackageManifest, RolloutState } from '@garrison/protocol';
import { openDatabase } from '../src/storage/database.ts';
import { DeploymentStore } from '../src/storage/deployment-store.ts';
import { dbKinds, pgSkip, postgresKind, startAgent, startTestServer, waitFor, type AgentProcess, type TestServer } from './helpers.ts';
import { buildArchive } from './package-fixtures.ts';

type Stored = Omit<RolloutState, 'phases'>;

const app = (version: string): PackageManifest => ({
  product: 'shared-app',
  name: 'Shared app',
  version,
  kind: 'application',
  platforms: ['linux-*', 'darwin-*'],
  commands: { install: { shell: 'sh', script: 'true' } },
});

async function upload(t: TestServer, m: PackageManifest): Promise<void> {
  const res = await t.fetch(`${t.server.url}/api/v1/repository/packages`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: await readFile(await buildArchive(m)) });
  assert.equal(res.status, 201, await res.text());
}

describe('rollouts across two instances (postgres)', { skip: pgSkip }, () => {
  it('starts, advances and completes each rollout exactly once, phase by phase', async () => {
    // Both instances evaluate rollouts often, so that they race on every phase.
    const a = await startTestServer(postgresKind, { rolloutIntervalMs: 150 });
    let b: TestServer | undefined;
    const agents: AgentProcess[] = [];
    try {
      b = await startTestServer(postgresKind, { restartOf: a, rolloutIntervalMs: 150 });
      const fleet = (await a.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Shared fleet' })).body.id;
      const pilot = (await a.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Shared pilot', parentId: fleet })).body.id;
      await upload(a, app('1.0'));
      const assigned = await a.api<DeploymentAssignmentView>('PUT', `/api/v1/groups/${fleet}/deployments/shared-app`, { rollout: { pilotGroupId: pilot, percentages: [50, 100], failureThresholdPercent: 50 } });
      assert.equal(assigned.status, 200, JSON.stringify(assigned.body));
      const second = b;
      // The other instance learns of the new groups and the assignment over the bus.
      await waitFor(async () => {
        const group = await second.api('GET', `/api/v1/groups/${pilot}`);
        const assignments = await second.api<{ items?: unknown[] }>('GET', `/api/v1/deployments?groupId=${fleet}`);
        return group.status === 200 && assignments.body.items?.length === 1;
      }, { what: 'groups and assignment on the second instance' });
      // Agents on both instances, in the pilot and out of it: both instances plan devices that meet the new version.
      const at = [a, second];
      const names = ['pilot-a', 'pilot-b', 'fleet-a1', 'fleet-b1', 'fleet-a2', 'fleet-b2'];
      for (const [i, name] of names.entries()) {
        agents.push(await startAgent(a, name.startsWith('pilot') ? pilot : fleet, name, { serverUrl: at[i % 2]!.server.url }));
      }
      const versions = async (t: TestServer) => {
        const c = (await t.api<{ items: (DeviceProductState & { deviceName: string })[] }>('GET', `/api/v1/deployments/compliance?groupId=${fleet}&product=shared-app`)).body.items;
        return c.map((d) => `${d.installedVersion}/${d.state}`);
      };
      const output = () => agents.map((x) => x.output()).join('\n---\n');
      await waitFor(async () => (await versions(a)).filter((v) => v === '1.0/compliant').length === names.length, { what: 'all on 1.0', timeoutMs: 60_000, output });

      await upload(second, app('1.1'));
      await waitFor(async () => {
        const v = await versions(a);
        return v.length === names.length && v.every((x) => x === '1.1/compliant');
      }, { what: 'all on 1.1', timeoutMs: 60_000, output });
      const rollout = async (t: TestServer) => (await t.api<{ items: DeploymentAssignmentView[] }>('GET', `/api/v1/deployments?groupId=${fleet}`)).body.items[0]!.rolloutState;
      await waitFor(async () => (await rollout(a))?.state === 'completed' && (await rollout(second))?.state === 'completed', { what: 'rollout completed on both instances', timeoutMs: 30_000 });
      // Both instances agree on the one stored rollout (a loser took the winner's startedAt).
      assert.deepEqual(await rollout(a), await rollout(second));
      // A few more evaluation rounds on both instances: a doubled announcement would be stored by now.
      await new Promise((resolve) => setTimeout(resolve, 1000));

      const events = async (kind: string) =>
        (await a.api<{ items: { id: number; message: string }[] }>('GET', `/api/v1/events?groupId=${fleet}&kind=${kind}&limit=100`)).body.items.sort((x, y) => x.id - y.id).map((e) => e.message);
      const started = await events('deployment.rollout-started');
      assert.equal(started.length, 1, JSON.stringify(started));
      assert.match(started[0]!, /shared-app 1\.1 started .*phases pilot, 50%, 100%/);
      // Every phase announced once, in order: none skipped, none doubled.
      const advanced = await events('deployment.rollout-advanced');
      assert.equal(advanced.length, 2, JSON.stringify(advanced));
      assert.match(advanced[0]!, /1\.1 .* moved to phase 50%$/);
      assert.match(advanced[1]!, /1\.1 .* moved to phase 100%$/);
      const completed = await events('deployment.rollout-completed');
      assert.equal(completed.length, 1, JSON.stringify(completed));
      assert.deepEqual(await events('deployment.rollout-halted'), []);
    } finally {
      await Promise.all(agents.map((x) => x.kill('SIGKILL')));
      if (b) await b.server.close();
      await a.close();
    }
  });
});

for (const kind of dbKinds) {
  describe(`rollout compare-and-set in the store (${kind.name})`, () => {
    it('starts a rollout once per target version and lets exactly one of many concurrent advances win', async () => {
      const t = await startTestServer(kind);
      // Separate connections (pools) besides the server's own, as separate instances have.
      const extra = kind.name === 'postgres' ? await Promise.all([openDatabase(t.database), openDatabase(t.database)]) : [];
      try {
        const stores = [t.server.db, ...extra].map((db) => new DeploymentStore(db));
        const store = (i: number) => stores[i % stores.length]!;
        const start = (v: string, i: number): Stored => ({ targetVersion: v, phase: 0, state: 'active', reason: null, startedAt: `2030-01-01T00:00:00.${String(i).padStart(3, '0')}Z`, updatedAt: `2030-01-01T00:00:00.${String(i).padStart(3, '0')}Z` });
        const stored = async () => (await stores[0]!.listRollouts()).find((r) => r.groupId === 'g1' && r.product === 'p')?.state;

        // Many instances meet 1.1 at once: one starts the rollout.
        const starts = await Promise.all(Array.from({ length: 20 }, (_, i) => store(i).startRollout('g1', 'p', start('1.1', i))));
        assert.equal(starts.filter(Boolean).length, 1, JSON.stringify(starts));
        const first = (await stored())!;
        assert.deepEqual(first, start('1.1', starts.indexOf(true)));
        // The same version again changes nothing; a new version starts over, once.
        assert.equal(await store(1).startRollout('g1', 'p', start('1.1', 500)), false);
        assert.deepEqual(await stored(), first);

        // Many instances decide to advance the same phase at once: one wins, the rest change nothing.
        const nexts = Array.from({ length: 30 }, (_, i): Stored => ({ ...first, phase: 1, updatedAt: `2030-01-01T00:00:01.${String(i).padStart(3, '0')}Z` }));
        const won = await Promise.all(nexts.map((n, i) => store(i).advanceRollout('g1', 'p', first, n)));
        assert.equal(won.filter(Boolean).length, 1, JSON.stringify(won));
        const advanced = (await stored())!;
        assert.deepEqual(advanced, nexts[won.indexOf(true)]);
        // A stale expectation loses, whichever field is stale.
        for (const stale of [first, { ...advanced, phase: 0 }, { ...advanced, state: 'halted' as const }, { ...advanced, targetVersion: '1.0' }, { ...advanced, updatedAt: first.updatedAt }]) {
          assert.equal(await store(2).advanceRollout('g1', 'p', stale, { ...advanced, phase: 2, updatedAt: '2030-01-01T00:00:02.000Z' }), false, JSON.stringify(stale));
        }
        assert.deepEqual(await stored(), advanced);
        // Halt, then two concurrent resumes: one wins.
        const halted: Stored = { ...advanced, state: 'halted', reason: 'too many failures', updatedAt: '2030-01-01T00:00:03.000Z' };
        assert.equal(await store(0).advanceRollout('g1', 'p', advanced, halted), true);
        const resumes = await Promise.all([0, 1, 2, 3].map((i) => store(i).advanceRollout('g1', 'p', halted, { ...halted, state: 'active', reason: null, updatedAt: `2030-01-01T00:00:04.00${i}Z` })));
        assert.equal(resumes.filter(Boolean).length, 1, JSON.stringify(resumes));
        // No row: nothing to advance.
        assert.equal(await store(0).advanceRollout('g2', 'p', first, advanced), false);

        // A newer version restarts the rollout, exactly once among concurrent starts.
        const restarts = await Promise.all(Array.from({ length: 20 }, (_, i) => store(i).startRollout('g1', 'p', start('1.2', i))));
        assert.equal(restarts.filter(Boolean).length, 1, JSON.stringify(restarts));
        assert.deepEqual(await stored(), start('1.2', restarts.indexOf(true)));
      } finally {
        await Promise.all(extra.map((db) => db.close()));
        await t.close();
      }
    });
  });
}
