/**
 * The device list at fleet scale, the group tree's statuses and bulk actions, through real
 * HTTP: paging that follows the sort, the filters, bulk actions by a caller who may change only
 * some of the devices (the others refused, counted and untouched), on ids or on a filter, and
 * "check in now" reaching a connected agent (a raw socket sees the message, a real agent checks
 * in).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { AGENT_DEVICE_EVENTS_PATH, BUILTIN_PRODUCT, type DeviceBulkResult, type DeviceView, type GroupStatus, type Page } from '@garrison/protocol';
import { apiClient, dbKinds, startAgent, startTestServer, waitFor, type TestServer } from './helpers.ts';
import { agentPost, enrolRaw, inventory, nextOf, openSocket } from './support/raw-agent.ts';

for (const kind of dbKinds) {
  describe(`device list, group statuses and bulk actions (${kind.name})`, () => {
    let t: TestServer;
    const g: Record<'a' | 'a1' | 'b', string> = { a: '', a1: '', b: '' };
    const dev: Record<string, { deviceId: string; credential: string }> = {};
    let limited: ReturnType<typeof apiClient>;

    before(async () => {
      t = await startTestServer(kind);
      g.a = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'List A' })).body.id;
      g.a1 = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'List A1', parentId: g.a })).body.id;
      g.b = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'List B' })).body.id;
      const enrol = async (groupId: string, name: string, os: string, agentVersion: string) => {
        const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId, maxUses: 1 });
        const r = await enrolRaw(t, tok.body.token, name, { inventory: { ...inventory(name), osName: os, agentVersion } });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        dev[name] = { deviceId: r.body.deviceId, credential: r.body.credential };
      };
      // Versions that sort wrong as text (1.10 after 1.9), names out of order.
      await enrol(g.a, 'a-echo', 'Windows', '1.10.0');
      await enrol(g.a, 'a-alpha', 'Linux', '1.9.0');
      await enrol(g.a, 'a-delta', 'Linux', '1.2.0');
      await enrol(g.a, 'a-charlie', 'Windows', '1.9.1');
      await enrol(g.a, 'a-bravo', 'Linux', '2.0.0');
      await enrol(g.a1, 'a1-golf', 'Linux', '1.9.0');
      await enrol(g.a1, 'a1-foxtrot', 'macOS', '1.9.0');
      await enrol(g.b, 'b-hotel', 'Linux', '1.9.0');
      await enrol(g.b, 'b-india', 'Linux', '1.9.0');
      // May change the devices of A (and its subgroup), only read those of B.
      const password = randomBytes(12).toString('base64url');
      const created = await t.api('POST', '/api/v1/admins', { name: 'list-limited', password, grants: [{ roleId: 'administrator', groupId: g.a }, { roleId: 'auditor', groupId: g.b }] });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const s = await t.fetch(`${t.server.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'list-limited', password }) });
      limited = apiClient(t.fetch, t.server.url, ((await s.json()) as { token: string }).token);
    });
    after(async () => {
      await t?.close();
    });

    const list = async (query: string) => {
      const r = await t.api<Page<DeviceView>>('GET', `/api/v1/devices?${query}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body;
    };
    /** Every page of a query, following nextCursor. */
    const allPages = async (query: string, limit: number) => {
      const names: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: Page<DeviceView> = await list(`${query}&limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        assert.ok(page.items.length <= limit);
        names.push(...page.items.map((d) => d.name));
        cursor = page.nextCursor;
        pages++;
      } while (cursor && pages < 50);
      return { names, pages };
    };
    const bulk = async (body: unknown, as?: ReturnType<typeof apiClient>) => (as ? as<DeviceBulkResult>('POST', '/api/v1/devices/bulk', body) : t.api<DeviceBulkResult>('POST', '/api/v1/devices/bulk', body));

    it('pages the list in the order asked, the cursor following the sort, with the total', async () => {
      const first = await list(`groupId=${g.a}&limit=3`);
      assert.equal(first.total, 7, 'A and its subgroup');
      assert.deepEqual(first.items.map((d) => d.name), ['a-alpha', 'a-bravo', 'a-charlie']);
      assert.ok(first.nextCursor);
      const byName = await allPages(`groupId=${g.a}`, 3);
      assert.equal(byName.pages, 3);
      assert.deepEqual(byName.names, ['a-alpha', 'a-bravo', 'a-charlie', 'a-delta', 'a-echo', 'a1-foxtrot', 'a1-golf']);
      // Versions by their numbers, newest first; ties by name.
      const byVersion = await allPages(`groupId=${g.a}&sort=agentVersion&order=desc`, 2);
      // Descending reverses the whole key: equal versions come by name descending.
      assert.deepEqual(byVersion.names, ['a-bravo', 'a-echo', 'a-charlie', 'a1-golf', 'a1-foxtrot', 'a-alpha', 'a-delta']);
      const whole = await list(`groupId=${g.a}&sort=agentVersion&order=desc&limit=1000`);
      assert.deepEqual(whole.items.map((d) => d.name), byVersion.names);
      assert.equal(whole.nextCursor, null);
      const byGroup = await allPages(`sort=group&search=a`, 4);
      assert.deepEqual(byGroup.names.filter((n) => n.startsWith('a')), ['a-alpha', 'a-bravo', 'a-charlie', 'a-delta', 'a-echo', 'a1-foxtrot', 'a1-golf']);
      const byOs = (await list(`groupId=${g.a}&sort=osName&limit=100`)).items.map((d) => d.osName);
      assert.deepEqual(byOs, [...byOs].sort((x, y) => x.toLowerCase().localeCompare(y.toLowerCase())));
    });

    it('refuses a cursor it did not give and a limit over 1000', async () => {
      for (const q of ['cursor=not-a-cursor', `cursor=${Buffer.from('{"a":1}').toString('base64url')}`, 'limit=1001', 'limit=0', 'sort=colour']) {
        const r = await t.api<{ error: { code: string } }>('GET', `/api/v1/devices?${q}`);
        assert.equal(r.status, 400, q);
        assert.equal(r.body.error.code, 'VALIDATION_FAILED', q);
      }
    });

    it('filters on OS, agent version, status, last contact, subgroups and search', async () => {
      assert.deepEqual((await list(`osName=windows`)).items.map((d) => d.name).sort(), ['a-charlie', 'a-echo']);
      assert.equal((await list(`groupId=${g.a}&agentVersion=1.9.0`)).total, 3);
      assert.equal((await list(`groupId=${g.a}&recursive=false`)).total, 5);
      assert.equal((await list(`groupId=${g.a}&search=FOX`)).total, 1);
      assert.equal((await list(`groupId=${g.a}&status=online`)).total, 0);
      assert.equal((await list(`groupId=${g.a}&status=offline`)).total, 7);
      assert.equal((await list(`groupId=${g.a}&seenWithinDays=1`)).total, 7);
      assert.equal((await list(`groupId=${g.a}&notSeenForDays=1`)).total, 0);
      // A device last seen ten days ago.
      await t.server.db.kysely.updateTable('devices').set({ last_contact_at: new Date(Date.now() - 10 * 86_400_000).toISOString() }).where('id', '=', dev['a1-golf']!.deviceId).execute();
      assert.deepEqual((await list(`notSeenForDays=7`)).items.map((d) => d.name), ['a1-golf']);
      assert.equal((await list(`groupId=${g.a}&seenWithinDays=7`)).total, 6);
      const first = (await list(`groupId=${g.a}&sort=lastContact&limit=1`)).items[0]!;
      assert.equal(first.name, 'a1-golf', 'the oldest contact first');
      // Enrolled in a period (the dashboard's devices enrolled per day): one enrolled three days ago.
      const threeDaysAgo = new Date(Date.now() - 3 * 86_400_000);
      await t.server.db.kysely.updateTable('devices').set({ enrolled_at: threeDaysAgo.toISOString() }).where('id', '=', dev['b-india']!.deviceId).execute();
      const day = threeDaysAgo.toISOString().slice(0, 10);
      const next = new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString();
      assert.deepEqual((await list(`enrolledSince=${day}T00:00:00Z&enrolledUntil=${encodeURIComponent(next)}`)).items.map((d) => d.name), ['b-india']);
      assert.equal((await list(`enrolledSince=${encodeURIComponent(new Date(Date.now() - 86_400_000).toISOString())}`)).total, 8);
      const bad = await t.api<{ error: { code: string } }>('GET', '/api/v1/devices?enrolledSince=yesterday');
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.code, 'VALIDATION_FAILED');
    });

    it('gives each group its counts and its worst status with the reason', async () => {
      const statuses = async (q = '') => {
        const r = await t.api<Page<GroupStatus>>('GET', `/api/v1/groups/statuses${q}`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return new Map(r.body.items.map((s) => [s.groupId, s]));
      };
      let s = await statuses();
      assert.equal(s.get(g.a)!.devices, 5);
      assert.equal(s.get(g.a)!.devicesWithSubgroups, 7);
      assert.equal(s.get(g.a1)!.devices, 2);
      assert.equal(s.get(g.a1)!.status, 'critical', 'a device offline for ten days');
      assert.match(s.get(g.a1)!.reason!, /1 device offline for more than 7 days/);
      assert.equal(s.get(g.a)!.status, 'critical', 'a subgroup counts in its parent');
      assert.equal(s.get(g.b)!.status, 'ok');
      assert.equal(s.get(g.b)!.reason, null);
      // With a longer threshold the same device only warns.
      s = await statuses('?offlineDays=30');
      assert.equal(s.get(g.a1)!.status, 'warning');
      assert.match(s.get(g.a1)!.reason!, /offline for more than a day/);
      // A detection makes B warn.
      const e = { eventId: `ev-${randomBytes(6).toString('hex')}`, product: BUILTIN_PRODUCT, severity: 'warning', kind: 'detection', message: 'EICAR found', time: new Date().toISOString() };
      const posted = await agentPost(t, dev['b-hotel']!.credential, AGENT_DEVICE_EVENTS_PATH, { type: 'device-events', id: 'x', events: [e] });
      assert.equal(posted.status, 200, JSON.stringify(posted.body));
      await t.server.services.events.flush();
      s = await statuses();
      assert.equal(s.get(g.b)!.status, 'warning');
      assert.equal(s.get(g.b)!.counts.detections, 1);
      assert.match(s.get(g.b)!.reason!, /1 device with detections in the last 24 hours/);
      // The limited caller sees only its groups.
      const mine = (await limited<Page<GroupStatus>>('GET', '/api/v1/groups/statuses')).body.items.map((x) => x.groupId).sort();
      assert.deepEqual(mine, [g.a, g.a1, g.b].sort());
    });

    it('tags only the devices the caller may change; the others are refused, counted and untouched', async () => {
      const ids = ['a-alpha', 'a1-foxtrot', 'b-hotel', 'b-india'].map((n) => dev[n]!.deviceId);
      const r = await bulk({ action: 'addTags', deviceIds: [...ids, 'no-such-device'], tags: ['bulk-1', 'bulk-2'] }, limited);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual({ ...r.body, refusedDeviceIds: [...r.body.refusedDeviceIds].sort() }, {
        action: 'addTags',
        matched: 4,
        done: 2,
        refused: 2,
        notFound: 1,
        unchanged: 0,
        refusedDeviceIds: [dev['b-hotel']!.deviceId, dev['b-india']!.deviceId].sort(),
      });
      assert.deepEqual((await list('tag=bulk-1')).items.map((d) => d.name).sort(), ['a-alpha', 'a1-foxtrot']);
      assert.deepEqual((await t.api<DeviceView>('GET', `/api/v1/devices/${dev['b-hotel']!.deviceId}`)).body.tags, []);
      // Again: nothing to change.
      const again = await bulk({ action: 'addTags', deviceIds: ids.slice(0, 2), tags: ['bulk-1'] }, limited);
      assert.equal(again.body.done, 0);
      assert.equal(again.body.unchanged, 2);
      // On everything a filter matches: the tag removed from all of A.
      const off = await bulk({ action: 'removeTags', filter: { groupId: g.a, tag: 'bulk-2' }, tags: ['bulk-2'] });
      assert.equal(off.body.matched, 2);
      assert.equal(off.body.done, 2);
      assert.equal((await list('tag=bulk-2')).total, 0);
      assert.equal((await list('tag=bulk-1')).total, 2);
    });

    it('moves and deletes on a filter or ids, per device, and refuses bad requests with a code', async () => {
      const moved = await bulk({ action: 'move', filter: { groupId: g.a1, recursive: false }, groupId: g.b });
      assert.equal(moved.status, 200, JSON.stringify(moved.body));
      assert.equal(moved.body.done, 2);
      assert.equal((await list(`groupId=${g.b}`)).total, 4);
      // The limited caller may not move into B (read only there), nor delete B's devices.
      const into = await bulk({ action: 'move', deviceIds: [dev['a-alpha']!.deviceId], groupId: g.b }, limited);
      assert.equal(into.status, 403);
      const del = await bulk({ action: 'delete', filter: { groupId: g.b } }, limited);
      assert.equal(del.status, 200);
      assert.equal(del.body.refused, 4);
      assert.equal(del.body.done, 0);
      assert.equal((await list(`groupId=${g.b}`)).total, 4);
      const gone = await bulk({ action: 'delete', deviceIds: [dev['a1-golf']!.deviceId] });
      assert.equal(gone.body.done, 1);
      assert.equal((await t.api('GET', `/api/v1/devices/${dev['a1-golf']!.deviceId}`)).status, 404);
      for (const body of [
        { action: 'delete' },
        { action: 'delete', deviceIds: [dev['a-alpha']!.deviceId], filter: {} },
        { action: 'addTags', deviceIds: [dev['a-alpha']!.deviceId] },
        { action: 'addTags', deviceIds: [dev['a-alpha']!.deviceId], tags: ['no spaces'] },
        { action: 'move', deviceIds: [dev['a-alpha']!.deviceId] },
        { action: 'explode', deviceIds: [dev['a-alpha']!.deviceId] },
        { action: 'delete', deviceIds: Array.from({ length: 10_001 }, (_, i) => `d${i}`) },
      ]) {
        const r = await bulk(body);
        assert.equal(r.status, 400, JSON.stringify(body).slice(0, 100));
        assert.equal((r.body as unknown as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
      }
    });

    it('runs a task now on the selected devices that are its targets, as the caller may', async () => {
      const task = await t.api<{ id: string }>('POST', '/api/v1/tasks', { name: 'Bulk run', type: 'script', settings: { command: 'echo hi' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: g.b } });
      assert.equal(task.status, 201, JSON.stringify(task.body));
      const ids = [dev['b-hotel']!.deviceId, dev['a-alpha']!.deviceId];
      const r = await bulk({ action: 'runTask', deviceIds: ids, taskId: task.body.id });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.done, 1, 'the target');
      assert.equal(r.body.unchanged, 1, 'not a target of the task');
      assert.ok(r.body.runRequestId);
      const runs = (await t.api<Page<{ deviceId: string; requestId: string | null }>>('GET', `/api/v1/devices/${dev['b-hotel']!.deviceId}/runs`)).body.items;
      assert.ok(runs.some((x) => x.requestId === r.body.runRequestId));
      // The limited caller only reads B: refused there, and its own devices are not targets.
      const mine = await bulk({ action: 'runTask', deviceIds: ids, taskId: task.body.id }, limited);
      assert.equal(mine.status, 200, JSON.stringify(mine.body));
      assert.equal(mine.body.refused, 1);
      assert.equal(mine.body.done, 0);
      assert.equal((await bulk({ action: 'runTask', deviceIds: ids, taskId: 'no-such-task' })).status, 404);
    });

    it('asks connected agents to check in now: a socket is told, a real agent checks in', async () => {
      const raw = dev['a-delta']!;
      const sock = await openSocket(t, raw.credential);
      try {
        await waitFor(async () => (await list(`search=a-delta`)).items[0]?.online, { what: 'the socket online' });
        const r = await bulk({ action: 'checkIn', deviceIds: [raw.deviceId, dev['a-echo']!.deviceId] });
        assert.equal(r.body.done, 1, 'the connected one');
        assert.equal(r.body.unchanged, 1, 'the offline one');
        assert.equal((await nextOf(sock, 'sync')).type, 'sync');
      } finally {
        sock.ws.close();
      }
      const agent = await startAgent(t, g.b, 'list-real-agent');
      try {
        const contact = async () => {
          await t.server.services.agents.flushCheckIns();
          const d = (await t.api<DeviceView>('GET', `/api/v1/devices/${agent.deviceId}`)).body;
          return d.lastContactAt !== null && d.lastContactAt > d.enrolledAt ? d.lastContactAt : null;
        };
        const before = await waitFor(contact, { what: 'a first check-in recorded', output: agent.output });
        const r = await bulk({ action: 'checkIn', filter: { groupId: g.b, status: 'online' } });
        assert.equal(r.body.done, 1);
        await waitFor(async () => ((await contact()) ?? '') > before, { what: 'the agent checking in again', output: agent.output });
      } finally {
        await agent.kill('SIGKILL');
      }
    });
  });
}
