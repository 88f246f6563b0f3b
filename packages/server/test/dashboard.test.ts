/**
 * The dashboard's monitors, trends and layouts (issue 16) through real HTTP on a real
 * database: devices enrolled through the agent endpoint (and, for earlier days, by the device
 * store's own insert), detections sent as device events by those devices with their own past
 * times, runs reported by the devices today and stored for earlier days by the run store's own
 * report path. An administrator confined to one subtree sees only its devices' figures; one
 * without any grant sees nothing; a bad layout is refused with the registry's code.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { AGENT_DEVICE_EVENTS_PATH, AGENT_REPORTS_PATH, BUILTIN_PRODUCT, DASHBOARD_MONITORS, type DashboardLayout, type DashboardMonitors, type DashboardTrend, type Task } from '@garrison/protocol';
import { apiClient, dbKinds, startTestServer, waitFor, type TestServer } from './helpers.ts';
import { agentPost, enrolRaw, inventory, report } from './support/raw-agent.ts';
import { DeviceStore } from '../src/storage/device-store.ts';
import { RunStore } from '../src/storage/run-store.ts';
import { DashboardStore } from '../src/storage/dashboard-store.ts';

const DAY = 86_400_000;
const ago = (days: number, now = Date.now()) => new Date(now - days * DAY).toISOString();
/** The UTC day (YYYY-MM-DD) `days` days before now. */
const dayAgo = (days: number) => ago(days).slice(0, 10);

for (const kind of dbKinds) {
  describe(`dashboard monitors, trends and layouts (${kind.name})`, () => {
    let t: TestServer;
    const g = { a: '', a1: '', b: '' };
    const dev: Record<string, { deviceId: string; credential: string }> = {};
    let confined: ReturnType<typeof apiClient>;
    let ungranted: ReturnType<typeof apiClient>;

    const signIn = async (name: string, grants: { roleId: string; groupId: string }[]) => {
      const password = randomBytes(12).toString('base64url');
      const created = await t.api('POST', '/api/v1/admins', { name, password, grants });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const s = await t.fetch(`${t.server.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password }) });
      assert.equal(s.status, 201);
      return apiClient(t.fetch, t.server.url, ((await s.json()) as { token: string }).token);
    };
    const ok = async <T>(call: Promise<{ status: number; body: T }>): Promise<T> => {
      const r = await call;
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body;
    };
    const detection = async (device: string, daysAgo: number) => {
      const e = { eventId: `ev-${randomBytes(6).toString('hex')}`, product: BUILTIN_PRODUCT, severity: 'warning', kind: 'detection', message: 'EICAR-Test-File found', time: ago(daysAgo) };
      const r = await agentPost<{ eventIds: string[] }>(t, dev[device]!.credential, AGENT_DEVICE_EVENTS_PATH, { type: 'device-events', id: e.eventId, events: [e] });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.eventIds, [e.eventId], 'stored');
    };

    before(async () => {
      t = await startTestServer(kind);
      const group = async (name: string, parentId?: string) => (await t.api<{ id: string }>('POST', '/api/v1/groups', { name, ...(parentId ? { parentId } : {}) })).body.id;
      g.a = await group('Dash A');
      g.a1 = await group('Dash A1', g.a);
      g.b = await group('Dash B');
      // Today, through the agent's enrolment endpoint.
      const enrol = async (groupId: string, name: string, osName: string, agentVersion: string) => {
        const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId, maxUses: 1 });
        const r = await enrolRaw(t, tok.body.token, name, { inventory: { ...inventory(name), osName, agentVersion } });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        dev[name] = { deviceId: r.body.deviceId, credential: r.body.credential };
      };
      await enrol(g.a, 'a-win', 'Windows', '2.0.0');
      await enrol(g.a1, 'a1-linux', 'Linux', '1.9.0');
      await enrol(g.b, 'b-linux', 'Linux', '1.9.0');
      await enrol(g.b, 'b-mac', 'macOS', '1.8.0');
      // Earlier days, by the device store's own insert (enrolled and last seen that day), then read into the catalog.
      const devices = new DeviceStore(t.server.db);
      const old = async (groupId: string, name: string, osName: string, agentVersion: string, daysAgo: number) => {
        const id = `dash-${name}`;
        await devices.insertDevice({ id, groupId, name, inventory: { ...inventory(name), osName, agentVersion }, credentialHash: 'x'.repeat(64), at: ago(daysAgo) });
        await t.server.services.catalog.loadDevice(id);
        dev[name] = { deviceId: id, credential: '' };
      };
      await old(g.a, 'a-old', 'Linux', '1.9.0', 3);
      await old(g.b, 'b-old', 'macOS', '1.7.0', 20);

      // Detections, as device events with the device's own (past) times.
      await detection('a-win', 0);
      await detection('a1-linux', 2);
      await detection('b-linux', 5);
      await detection('b-linux', 10);

      // Runs: today reported by the devices; earlier days stored by the run store's report path with that day as "now".
      const task = async (groupId: string) =>
        (await t.api<Task>('POST', '/api/v1/tasks', { name: `dash ${groupId}`, type: 'script', settings: { command: 'echo hi' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId } })).body;
      const ta = await task(g.a);
      const tb = await task(g.b);
      for (const [name, taskId, state] of [
        ['a-win', ta.id, 'succeeded'],
        ['b-linux', tb.id, 'failed'],
      ] as const) {
        const r = await agentPost(t, dev[name]!.credential, AGENT_REPORTS_PATH, { type: 'reports', reports: [report(`run-${name}-today`, taskId, { state, exitCode: state === 'failed' ? 1 : 0 })] });
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
      const runs = new RunStore(t.server.db);
      const past = async (name: string, taskId: string, state: string, daysAgo: number) => {
        const at = ago(daysAgo);
        const res = await runs.applyReports([{ deviceId: dev[name]!.deviceId, report: { ...report(`run-${name}-${daysAgo}`, taskId), state: state as 'succeeded', createdAt: at, startedAt: at, endedAt: at } }], at);
        assert.equal(res.applied.length, 1);
      };
      await past('a1-linux', ta.id, 'succeeded', 1);
      await past('a1-linux', ta.id, 'timed_out', 3);
      await past('b-mac', tb.id, 'failed', 1);
      await past('b-mac', tb.id, 'succeeded_with_warnings', 12);
      // A run that has not ended is no outcome.
      await past('b-mac', tb.id, 'running', 2);

      confined = await signIn('dash-confined', [{ roleId: 'auditor', groupId: g.a }]);
      ungranted = await signIn('dash-nobody', []);
    });
    after(async () => {
      await t?.close();
    });

    it('counts detections, devices not seen, agent and OS versions over every device', async () => {
      const m = await ok(t.api<DashboardMonitors>('GET', '/api/v1/dashboard/monitors'));
      assert.equal(m.devices, 6);
      assert.deepEqual(m.detections, { last24h: 1, last7d: 3, last30d: 4 });
      // b-old was last seen 20 days ago, a-old 3 days ago; the others today.
      assert.deepEqual(m.notSeen, { days: 7, count: 1, buckets: [{ days: 1, count: 2 }, { days: 7, count: 1 }, { days: 30, count: 0 }] });
      assert.deepEqual(m.agentVersions, { total: 6, top: [{ value: '1.9.0', count: 3 }, { value: '1.7.0', count: 1 }, { value: '1.8.0', count: 1 }, { value: '2.0.0', count: 1 }], other: 0, otherValues: 0 });
      assert.deepEqual(m.osVersions.top, [{ value: 'Linux', count: 3 }, { value: 'macOS', count: 2 }, { value: 'Windows', count: 1 }]);
      // N as asked, and the top values before "other".
      const n = await ok(t.api<DashboardMonitors>('GET', '/api/v1/dashboard/monitors?notSeenDays=2&top=2'));
      assert.equal(n.notSeen.days, 2);
      assert.equal(n.notSeen.count, 2);
      assert.deepEqual(n.agentVersions, { total: 6, top: [{ value: '1.9.0', count: 3 }, { value: '1.7.0', count: 1 }], other: 2, otherValues: 2 });
      assert.deepEqual(n.osVersions, { total: 6, top: [{ value: 'Linux', count: 3 }, { value: 'macOS', count: 2 }], other: 1, otherValues: 1 });
    });

    it('gives the figures the device list and the event log give for the same filters', async () => {
      const m = await ok(t.api<DashboardMonitors>('GET', '/api/v1/dashboard/monitors?notSeenDays=2'));
      const total = async (q: string) => (await ok(t.api<{ total: number }>('GET', `/api/v1/devices?${q}&limit=1`))).total;
      assert.equal(await total('notSeenForDays=2'), m.notSeen.count);
      assert.equal(await total('notSeenForDays=30'), m.notSeen.buckets.find((b) => b.days === 30)!.count);
      for (const v of m.agentVersions.top) assert.equal(await total(`agentVersion=${encodeURIComponent(v.value)}`), v.count, v.value);
      for (const v of m.osVersions.top) assert.equal(await total(`osName=${encodeURIComponent(v.value)}`), v.count, v.value);
      const events = await ok(t.api<{ items: unknown[] }>('GET', `/api/v1/events?kind=${encodeURIComponent('*.detection')}&since=${encodeURIComponent(ago(7))}&limit=100`));
      assert.equal(events.items.length, m.detections.last7d);
    });

    it('gives the trend per UTC day over 7 and 30 days', async () => {
      // Today's reports are written behind: wait until both are stored.
      const week = await waitFor(
        async () => {
          const r = await ok(t.api<DashboardTrend>('GET', '/api/v1/dashboard/trend?days=7'));
          const today = r.points.at(-1)!;
          return today.succeeded === 1 && today.failed === 1 ? r : undefined;
        },
        { what: "today's run outcomes in the trend" },
      );
      assert.equal(week.days, 7);
      assert.equal(week.points.length, 7);
      assert.deepEqual(
        week.points.map((p) => p.date),
        [6, 5, 4, 3, 2, 1, 0].map(dayAgo),
      );
      for (const p of week.points) {
        assert.equal(p.since, `${p.date}T00:00:00.000Z`);
        assert.equal(Date.parse(p.until) - Date.parse(p.since), DAY);
      }
      const on = (r: DashboardTrend, daysAgo: number) => {
        const p = r.points.find((x) => x.date === dayAgo(daysAgo))!;
        return { succeeded: p.succeeded, failed: p.failed, detections: p.detections, enrolled: p.enrolled };
      };
      assert.deepEqual(on(week, 0), { succeeded: 1, failed: 1, detections: 1, enrolled: 4 });
      assert.deepEqual(on(week, 1), { succeeded: 1, failed: 1, detections: 0, enrolled: 0 });
      assert.deepEqual(on(week, 2), { succeeded: 0, failed: 0, detections: 1, enrolled: 0 });
      assert.deepEqual(on(week, 3), { succeeded: 0, failed: 1, detections: 0, enrolled: 1 });
      assert.deepEqual(on(week, 5), { succeeded: 0, failed: 0, detections: 1, enrolled: 0 });
      assert.equal(week.since, week.points[0]!.since);

      const month = await ok(t.api<DashboardTrend>('GET', '/api/v1/dashboard/trend?days=30'));
      assert.equal(month.points.length, 30);
      assert.deepEqual(on(month, 10), { succeeded: 0, failed: 0, detections: 1, enrolled: 0 });
      assert.deepEqual(on(month, 12), { succeeded: 1, failed: 0, detections: 0, enrolled: 0 });
      assert.deepEqual(on(month, 20), { succeeded: 0, failed: 0, detections: 0, enrolled: 1 });
      const sum = (k: 'succeeded' | 'failed' | 'detections' | 'enrolled') => month.points.reduce((a, p) => a + p[k], 0);
      assert.deepEqual({ succeeded: sum('succeeded'), failed: sum('failed'), detections: sum('detections'), enrolled: sum('enrolled') }, { succeeded: 3, failed: 3, detections: 4, enrolled: 6 });

      // Today is counted on every read (the days before are kept a while): a new detection shows at once.
      await detection('b-linux', 0);
      const again = await ok(t.api<DashboardTrend>('GET', '/api/v1/dashboard/trend?days=7'));
      assert.deepEqual(on(again, 0), { succeeded: 1, failed: 1, detections: 2, enrolled: 4 });
      assert.deepEqual(on(again, 5), on(week, 5));

      for (const q of ['days=14', 'days=0', 'days=x', 'colour=red']) {
        const r = await t.api<{ error: { code: string } }>('GET', `/api/v1/dashboard/trend?${q}`);
        assert.equal(r.status, 400, q);
        assert.equal(r.body.error.code, 'VALIDATION_FAILED', q);
      }
    });

    it('counts only the devices and events of the groups a confined administrator may read', async () => {
      const m = await ok(confined<DashboardMonitors>('GET', '/api/v1/dashboard/monitors'));
      assert.equal(m.devices, 3, 'A and its subgroup: a-win, a1-linux, a-old');
      assert.deepEqual(m.detections, { last24h: 1, last7d: 2, last30d: 2 });
      assert.deepEqual(m.notSeen, { days: 7, count: 0, buckets: [{ days: 1, count: 1 }, { days: 7, count: 0 }, { days: 30, count: 0 }] });
      assert.deepEqual(m.agentVersions.top, [{ value: '1.9.0', count: 2 }, { value: '2.0.0', count: 1 }]);
      assert.deepEqual(m.osVersions.top, [{ value: 'Linux', count: 2 }, { value: 'Windows', count: 1 }]);
      const month = await waitFor(
        async () => {
          const r = await ok(confined<DashboardTrend>('GET', '/api/v1/dashboard/trend?days=30'));
          return r.points.at(-1)!.succeeded === 1 ? r : undefined;
        },
        { what: "today's run in the confined trend" },
      );
      const sum = (k: 'succeeded' | 'failed' | 'detections' | 'enrolled') => month.points.reduce((a, p) => a + p[k], 0);
      assert.deepEqual({ succeeded: sum('succeeded'), failed: sum('failed'), detections: sum('detections'), enrolled: sum('enrolled') }, { succeeded: 2, failed: 1, detections: 2, enrolled: 3 });
      const today = month.points.at(-1)!;
      assert.deepEqual({ succeeded: today.succeeded, failed: today.failed, enrolled: today.enrolled }, { succeeded: 1, failed: 0, enrolled: 2 });

      // Without any grant: no figures at all, but a layout of their own.
      for (const path of ['/api/v1/dashboard/monitors', '/api/v1/dashboard/trend']) {
        const r = await ungranted<{ error: { code: string } }>('GET', path);
        assert.equal(r.status, 403, path);
        assert.equal(r.body.error.code, 'FORBIDDEN');
      }
      assert.equal((await ungranted<DashboardLayout>('GET', '/api/v1/dashboard/layout')).status, 200);
      // Not signed in: nothing.
      const anon = await t.fetch(`${t.server.url}/api/v1/dashboard/monitors`);
      assert.equal(anon.status, 401);
    });

    it("keeps each administrator's chosen monitors in their order and refuses a bad layout", async () => {
      const initial = await ok(confined<DashboardLayout>('GET', '/api/v1/dashboard/layout'));
      assert.deepEqual(initial, { monitors: [...DASHBOARD_MONITORS], custom: false, updatedAt: null });
      const chosen = ['detectionTrend', 'notSeen', 'agentVersions'];
      const put = await ok(confined<DashboardLayout>('PUT', '/api/v1/dashboard/layout', { monitors: chosen }));
      assert.deepEqual(put.monitors, chosen);
      assert.equal(put.custom, true);
      assert.ok(put.updatedAt);
      assert.deepEqual((await ok(confined<DashboardLayout>('GET', '/api/v1/dashboard/layout'))).monitors, chosen, 'stored, in order');
      // Another administrator's layout is their own.
      assert.equal((await ok(t.api<DashboardLayout>('GET', '/api/v1/dashboard/layout'))).custom, false);
      await ok(t.api<DashboardLayout>('PUT', '/api/v1/dashboard/layout', { monitors: ['devices'] }));
      assert.deepEqual((await ok(t.api<DashboardLayout>('GET', '/api/v1/dashboard/layout'))).monitors, ['devices']);
      assert.deepEqual((await ok(confined<DashboardLayout>('GET', '/api/v1/dashboard/layout'))).monitors, chosen, "unchanged by another's");
      // A deleted administrator's layout goes with them (removed when layouts are next saved).
      const gone = await signIn('dash-gone', [{ roleId: 'auditor', groupId: g.b }]);
      await ok(gone<DashboardLayout>('PUT', '/api/v1/dashboard/layout', { monitors: ['notSeen'] }));
      const admins = await ok(t.api<{ items: { id: string; name: string }[] }>('GET', '/api/v1/admins?limit=1000'));
      const goneId = admins.items.find((a) => a.name === 'dash-gone')!.id;
      assert.equal((await t.api('DELETE', `/api/v1/admins/${goneId}`)).status, 204);
      await ok(t.api<DashboardLayout>('PUT', '/api/v1/dashboard/layout', { monitors: ['devices', 'notSeen'] }));
      const layouts = new DashboardStore(t.server.db);
      assert.equal(await layouts.layout(goneId), undefined, 'the deleted administrator has no layout left');
      assert.deepEqual((await layouts.layout(admins.items.find((a) => a.name === 'dash-confined')!.id))?.monitors, chosen);
      // Reordered; an empty layout is allowed (the dashboard says so).
      assert.deepEqual((await ok(confined<DashboardLayout>('PUT', '/api/v1/dashboard/layout', { monitors: ['agentVersions', 'detectionTrend'] }))).monitors, ['agentVersions', 'detectionTrend']);
      assert.deepEqual((await ok(confined<DashboardLayout>('PUT', '/api/v1/dashboard/layout', { monitors: [] }))).monitors, []);

      const bad = async (body: unknown, status: number, code: string) => {
        const r = await confined<{ error: { code: string; message: string; details?: { unknown: string[]; duplicates: string[] } } }>('PUT', '/api/v1/dashboard/layout', body);
        assert.equal(r.status, status, JSON.stringify(r.body));
        assert.equal(r.body.error.code, code);
        return r.body.error;
      };
      const unknown = await bad({ monitors: ['notSeen', 'weather'] }, 422, 'DASHBOARD_LAYOUT_INVALID');
      assert.deepEqual(unknown.details, { unknown: ['weather'], duplicates: [] });
      assert.match(unknown.message, /unknown monitor "weather"/);
      const dup = await bad({ monitors: ['notSeen', 'osVersions', 'notSeen'] }, 422, 'DASHBOARD_LAYOUT_INVALID');
      assert.deepEqual(dup.details, { unknown: [], duplicates: ['notSeen'] });
      await bad({}, 400, 'VALIDATION_FAILED');
      await bad({ monitors: [{ id: 'notSeen' }] }, 400, 'VALIDATION_FAILED');
      await bad({ monitors: Array.from({ length: 101 }, () => 'notSeen') }, 400, 'VALIDATION_FAILED');
      // Nothing was saved by the refused ones.
      assert.deepEqual((await ok(confined<DashboardLayout>('GET', '/api/v1/dashboard/layout'))).monitors, []);

      // Back to the default.
      const reset = await ok(confined<DashboardLayout>('DELETE', '/api/v1/dashboard/layout'));
      assert.deepEqual(reset, { monitors: [...DASHBOARD_MONITORS], custom: false, updatedAt: null });
    });
  });
}
