/**
 * Device events (ADR 0020) from a device holding one valid credential, over real HTTP and a
 * real WebSocket: stored once per event id in the central event log as `<product>.<kind>`,
 * for the authenticated device only; forged device ids, unknown products, the agent's reserved
 * kinds and oversized batches are refused.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { AGENT_DEVICE_EVENTS_PATH, BUILTIN_PRODUCT, type AckMessage, type EventView } from '@garrison/protocol';
import { dbKinds, startTestServer, type TestServer } from './helpers.ts';
import { agentPost, hostileDevice, nextOf, openSocket } from './support/raw-agent.ts';

const ev = (extra: Record<string, unknown> = {}) => ({
  eventId: `ev-${randomBytes(8).toString('hex')}`,
  product: BUILTIN_PRODUCT,
  severity: 'warning',
  kind: 'policy.restored',
  message: 'logKeepFiles was put back',
  time: new Date().toISOString(),
  ...extra,
});

for (const kind of dbKinds) {
  describe(`device events (${kind.name})`, () => {
    let t: TestServer;
    let groupId: string;
    before(async () => {
      t = await startTestServer(kind);
      groupId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Events A' })).body.id;
    });
    after(async () => {
      await t?.close();
    });
    const eventsOf = async (deviceId: string) => (await t.api<{ items: EventView[] }>('GET', `/api/v1/events?deviceId=${deviceId}&kind=${BUILTIN_PRODUCT}.policy.restored`)).body.items;

    it('stores each event once for the authenticated device, however often it is resent (HTTP and WebSocket)', async () => {
      const d = await hostileDevice(t, groupId, 'ev-1');
      const e = ev({ data: { setting: 'logKeepFiles', deviceId: 'someone-else' } });
      const first = await agentPost<AckMessage>(t, d.credential, AGENT_DEVICE_EVENTS_PATH, { type: 'device-events', id: 'a', events: [e, e] });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.deepEqual(first.body.eventIds, [e.eventId]);
      const again = await agentPost<AckMessage>(t, d.credential, AGENT_DEVICE_EVENTS_PATH, { type: 'device-events', id: 'b', events: [e] });
      assert.deepEqual(again.body.eventIds, [e.eventId], 'a resent event is acknowledged');
      const s = await openSocket(t, d.credential);
      try {
        s.send({ type: 'device-events', id: 7, events: [e] });
        const ack = (await nextOf(s, 'ack')) as unknown as AckMessage;
        assert.equal(ack.re, 7);
        assert.deepEqual(ack.eventIds, [e.eventId]);
      } finally {
        s.ws.close();
      }
      const stored = await eventsOf(d.deviceId);
      assert.equal(stored.length, 1, 'stored once');
      assert.equal(stored[0]!.severity, 'warning');
      assert.equal(stored[0]!.product, BUILTIN_PRODUCT);
      assert.equal(stored[0]!.deviceId, d.deviceId);
      assert.equal(stored[0]!.groupId, groupId);
      // Another device sending the same event id stores its own event (ids are per device).
      const other = await hostileDevice(t, groupId, 'ev-1b');
      assert.deepEqual((await agentPost<AckMessage>(t, other.credential, AGENT_DEVICE_EVENTS_PATH, { type: 'device-events', id: 'c', events: [e] })).body.eventIds, [e.eventId]);
      assert.equal((await eventsOf(other.deviceId)).length, 1);
      assert.equal((await eventsOf(d.deviceId)).length, 1);
    });

    it('refuses a forged device id, an oversized batch, an unknown product and reserved kinds', async () => {
      const d = await hostileDevice(t, groupId, 'ev-2');
      const victim = await hostileDevice(t, groupId, 'ev-victim');
      const forged = await agentPost<{ error: { code: string } }>(t, d.credential, AGENT_DEVICE_EVENTS_PATH, { type: 'device-events', id: 'f', events: [ev({ deviceId: victim.deviceId })] });
      assert.equal(forged.status, 400);
      assert.equal(forged.body.error.code, 'VALIDATION_FAILED');
      const big = await agentPost<{ error: { code: string } }>(t, d.credential, AGENT_DEVICE_EVENTS_PATH, { type: 'device-events', id: 'g', events: Array.from({ length: 501 }, () => ev()) });
      assert.equal(big.status, 400);
      const unknown = ev({ product: 'no-such-product' });
      const reserved = ev({ kind: 'run.interrupted' });
      const agentKind = ev({ kind: 'agent.connected' });
      const fine = ev();
      const mixed = await agentPost<AckMessage>(t, d.credential, AGENT_DEVICE_EVENTS_PATH, { type: 'device-events', id: 'h', events: [unknown, reserved, agentKind, fine] });
      assert.equal(mixed.status, 200, JSON.stringify(mixed.body));
      assert.deepEqual(mixed.body.eventIds, [fine.eventId]);
      const codes = Object.fromEntries(mixed.body.rejected.map((r) => [r.runId, r.code]));
      assert.deepEqual(codes, { [unknown.eventId]: 'PRODUCT_NOT_INSTALLED', [reserved.eventId]: 'FORBIDDEN', [agentKind.eventId]: 'FORBIDDEN' });
      const all = (await t.api<{ items: EventView[] }>('GET', `/api/v1/events?deviceId=${d.deviceId}`)).body.items;
      assert.ok(!all.some((x) => x.kind.startsWith('no-such-product.') || x.kind.endsWith('run.interrupted') || x.kind === 'agent.connected'));
      assert.equal((await t.api<{ items: EventView[] }>('GET', `/api/v1/events?deviceId=${victim.deviceId}`)).body.items.filter((x) => x.kind.startsWith(`${BUILTIN_PRODUCT}.`)).length, 0);

      // Data too large, or nested too deep to serialise again, is refused per event; a NUL in a
      // message (which PostgreSQL's text refuses) fails neither this batch nor other devices'.
      const deepBody = `{"type":"device-events","id":"d","events":[${JSON.stringify(ev()).slice(0, -1)},"data":{"a":${'['.repeat(100_000)}1${']'.repeat(100_000)}}},${JSON.stringify({ ...ev(), data: { big: 'x'.repeat(20_000) } })},${JSON.stringify({ ...ev(), message: 'nul \u0000 inside' })}]}`;
      const res = await t.fetch(`${t.server.url}${AGENT_DEVICE_EVENTS_PATH}`, { method: 'POST', headers: { authorization: `Bearer ${d.credential}`, 'content-type': 'application/json' }, body: deepBody });
      const ack = (await res.json()) as AckMessage;
      assert.equal(res.status, 200, JSON.stringify(ack));
      assert.deepEqual(ack.rejected.map((r) => r.code), ['VALIDATION_FAILED', 'VALIDATION_FAILED']);
      assert.equal(ack.eventIds?.length, 1);
      const stored = (await t.api<{ items: EventView[] }>('GET', `/api/v1/events?deviceId=${d.deviceId}`)).body.items;
      assert.ok(stored.some((x) => x.message === 'nul \uFFFD inside'), 'the NUL is replaced, the event stored');
    });

    it("a flood stops at the device's event budget: the rest is neither stored nor acknowledged", async () => {
      const d = await hostileDevice(t, groupId, 'ev-3');
      let stored = 0;
      let limited = false;
      for (let i = 0; i < 6 && !limited; i++) {
        const res = await agentPost<AckMessage & { error?: { code: string } }>(t, d.credential, AGENT_DEVICE_EVENTS_PATH, { type: 'device-events', id: `x${i}`, events: Array.from({ length: 500 }, () => ev()) });
        if (res.status === 429) {
          assert.equal(res.body.error!.code, 'RATE_LIMITED');
          limited = true;
        } else stored += res.body.eventIds!.length;
      }
      assert.ok(limited, 'the device is limited');
      assert.ok(stored <= 2100, `at most the burst is stored (${stored})`);
      // More than a page: counted in the export (every matching event).
      assert.equal((await t.api<string>('GET', `/api/v1/events?deviceId=${d.deviceId}&kind=${BUILTIN_PRODUCT}.policy.restored&format=jsonl`)).body.split('\n').filter(Boolean).length, stored);
    });
  });
}
