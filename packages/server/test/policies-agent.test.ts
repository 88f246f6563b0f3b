/**
 * The agent-facing side of policies (ADR 0020), as a device holding a real credential sees it
 * over real HTTP and a real WebSocket: effective policies delivered only when the etag differs,
 * the intervals from the device's own policy, and policy reports stored only for products with
 * a policy type on this server.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { AGENT_CHECK_IN_PATH, BUILTIN_PRODUCT, type CheckInResult } from '@garrison/protocol';
import { dbKinds, startTestServer, waitFor, type TestServer } from './helpers.ts';
import { agentPost, hostileDevice, inventory, nextOf, openSocket } from './support/raw-agent.ts';

for (const kind of dbKinds) {
  describe(`policies on the agent path (${kind.name})`, () => {
    let t: TestServer;
    let groupId: string;
    before(async () => {
      t = await startTestServer(kind);
      groupId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Policies A' })).body.id;
    });
    after(async () => {
      await t?.close();
    });

    it("carries the device's own effective policies, only when the agent's etag differs", async () => {
      const d = await hostileDevice(t, groupId, 'pol-1');
      const first = await agentPost<CheckInResult>(t, d.credential, AGENT_CHECK_IN_PATH, { type: 'check-in', inventory: inventory('pol-1') });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const policies = first.body.policies;
      assert.ok(policies, 'a first check-in gets the policies');
      const own = t.server.services.policies.agentPolicies(t.server.services.catalog.device(d.deviceId)!);
      assert.deepEqual(policies, own);
      assert.ok(policies.products.some((p) => p.product === BUILTIN_PRODUCT));
      assert.deepEqual(first.body.policy, t.server.services.policies.intervals(t.server.services.catalog.device(d.deviceId)!));
      const again = await agentPost<CheckInResult>(t, d.credential, AGENT_CHECK_IN_PATH, { type: 'check-in', inventory: inventory('pol-1'), policiesEtag: policies.etag });
      assert.equal(again.status, 200);
      assert.equal(again.body.policies, undefined, 'an unchanged etag gets no policies');
      const stale = await agentPost<CheckInResult>(t, d.credential, AGENT_CHECK_IN_PATH, { type: 'check-in', inventory: inventory('pol-1'), policiesEtag: 'stale' });
      assert.deepEqual(stale.body.policies, own);
      // Over the WebSocket the same.
      const s = await openSocket(t, d.credential);
      try {
        s.send({ type: 'check-in', id: 1, inventory: inventory('pol-1'), policiesEtag: policies.etag });
        const r = (await nextOf(s, 'check-in-result')) as unknown as CheckInResult;
        assert.equal(r.policies, undefined);
        s.send({ type: 'check-in', id: 2, inventory: inventory('pol-1') });
        assert.deepEqual(((await nextOf(s, 'check-in-result')) as unknown as CheckInResult).policies, own);
      } finally {
        s.ws.close();
      }
    });

    it('stores policy reports of known products, drops those of unknown ones, and replaces a product’s last report', async () => {
      const d = await hostileDevice(t, groupId, 'pol-2');
      const at = new Date().toISOString();
      const res = await agentPost<CheckInResult>(t, d.credential, AGENT_CHECK_IN_PATH, {
        type: 'check-in',
        inventory: inventory('pol-2'),
        policyStatus: [
          { product: BUILTIN_PRODUCT, revision: 'r1', state: 'drifted', at, drift: [{ setting: 'logKeepFiles', expected: 5, found: 9, action: 'kept-local' }] },
          { product: 'no-such-product', revision: 'r1', state: 'compliant', at },
        ],
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const rows = async () => t.server.db.kysely.selectFrom('device_policy_status').selectAll().where('device_id', '=', d.deviceId).execute();
      const stored = await rows();
      assert.deepEqual(stored.map((r) => r.product), [BUILTIN_PRODUCT], 'the unknown product is dropped');
      assert.equal(stored[0]!.state, 'drifted');
      assert.equal(JSON.parse(stored[0]!.drift)[0].setting, 'logKeepFiles');
      await agentPost(t, d.credential, AGENT_CHECK_IN_PATH, { type: 'check-in', inventory: inventory('pol-2'), policyStatus: [{ product: BUILTIN_PRODUCT, revision: 'r2', state: 'compliant', at }] });
      const after2 = await rows();
      assert.equal(after2.length, 1);
      assert.equal(after2[0]!.applied_revision, 'r2');
      assert.equal(after2[0]!.state, 'compliant');
      // A deleted device's reports go with it.
      assert.equal((await t.api('DELETE', `/api/v1/devices/${d.deviceId}`)).status, 204);
      await waitFor(async () => (await rows()).length === 0, { what: 'the reports deleted with the device' });
    });

    it('a malformed report fails the check-in validation (the schema bounds it)', async () => {
      const d = await hostileDevice(t, groupId, 'pol-3');
      const res = await agentPost<{ error: { code: string } }>(t, d.credential, AGENT_CHECK_IN_PATH, {
        type: 'check-in',
        inventory: inventory('pol-3'),
        policyStatus: [{ product: BUILTIN_PRODUCT, revision: 'r1', state: 'owned', at: 'now' }],
      });
      assert.equal(res.status, 400);
      assert.equal(res.body.error.code, 'VALIDATION_FAILED');
    });
  });
}
