/**
 * The event log, saved selections and the identity lists through real HTTP (issue 16): the
 * event log pages newest first with a cursor (continuity, a bad cursor and an oversized limit
 * refused), kind patterns, the list of kinds, exports of more than a page, names of devices
 * and tasks; saved selections per administrator (built-in ones first, replaced by name, never
 * seen or deleted by another administrator, gone with their administrator); and the paged
 * lists of roles, administrators, API tokens and secrets. On SQLite, and PostgreSQL when
 * GARRISON_TEST_PG_URL is set.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { GarrisonClient, ApiError } from '@garrison/client';
import {
  createSavedSelection,
  deleteAdmin,
  deleteSavedSelection,
  listAdmins,
  listApiTokens,
  listEventKinds,
  listEvents,
  listRoles,
  listSavedSelections,
  listSecrets,
  putSecret,
  createAdmin,
  createSession,
} from '@garrison/protocol';
import { dbKinds, startTestServer, type TestServer } from './helpers.ts';

for (const kind of dbKinds) {
  describe(`event log, saved selections and identity lists (${kind.name})`, () => {
    let t: TestServer;
    let api: GarrisonClient;
    const stamp = randomBytes(4).toString('hex');
    const k = (name: string) => `h1-${stamp}.${name}`;

    before(async () => {
      t = await startTestServer(kind);
      api = new GarrisonClient({ baseUrl: t.server.url, token: t.token, fetch: t.fetch });
      const ev = t.server.services.events;
      for (let i = 0; i < 7; i++) ev.record({ severity: i % 3 === 0 ? 'error' : 'info', kind: k('paged'), message: `paged ${i}` });
      ev.record({ severity: 'warning', kind: k('other.detection'), message: 'a detection' });
      ev.record({ severity: 'info', kind: k('100%_literal'), message: 'a literal percent' });
      for (let i = 0; i < 1205; i++) ev.record({ severity: 'info', kind: k('bulk'), message: `bulk ${i}` });
      await ev.flush();
    });
    after(() => t?.close());

    it('pages the event log newest first: every event once, a cursor that continues, bad cursors and limits refused', async () => {
      const first = await api.call(listEvents, { query: { kind: k('paged'), limit: 3 } });
      assert.deepEqual(first.items.map((e) => e.message), ['paged 6', 'paged 5', 'paged 4']);
      assert.ok(first.nextCursor);
      const second = await api.call(listEvents, { query: { kind: k('paged'), limit: 3, cursor: first.nextCursor! } });
      assert.deepEqual(second.items.map((e) => e.message), ['paged 3', 'paged 2', 'paged 1']);
      const all = await api.all(listEvents, { query: { kind: k('paged'), limit: 3 } });
      assert.deepEqual(all.map((e) => e.message), [6, 5, 4, 3, 2, 1, 0].map((i) => `paged ${i}`));
      const ids = all.map((e) => e.id);
      assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest (highest id) first');
      const last = await api.call(listEvents, { query: { kind: k('paged'), limit: 7 } });
      assert.equal(last.nextCursor, null, 'the page that ends the list says so');
      // Filters apply again on every page: severity with the cursor of another filter's page.
      const errors = await api.all(listEvents, { query: { kind: k('paged'), severity: 'error', limit: 1 } });
      assert.deepEqual(errors.map((e) => e.message), ['paged 6', 'paged 3', 'paged 0']);

      for (const cursor of ['not-a-cursor', Buffer.from('{"a":1}').toString('base64url'), Buffer.from('["x"]').toString('base64url'), Buffer.from('[1,2]').toString('base64url')]) {
        await assert.rejects(api.call(listEvents, { query: { cursor } }), (e: ApiError) => e.code === 'VALIDATION_FAILED' && e.status === 400, cursor);
      }
      await assert.rejects(api.call(listEvents, { query: { limit: 1001 } }), (e: ApiError) => e.code === 'VALIDATION_FAILED' && e.status === 400);
      const old = await t.api<{ error: { code: string } }>('GET', '/api/v1/events?beforeId=5');
      assert.equal(old.status, 400, 'the old beforeId parameter is gone');
      assert.equal(old.body.error.code, 'VALIDATION_FAILED');
    });

    it('filters kinds by patterns and comma lists, and lists the kinds of the log', async () => {
      const audit = await api.call(listEvents, { query: { kind: `h1-${stamp}.*`, limit: 1000 } });
      assert.equal(audit.items.length, 1000);
      const two = await api.all(listEvents, { query: { kind: `${k('paged')}, ${k('other.detection')}`, limit: 1000 } });
      assert.equal(two.length, 8);
      const detections = await api.all(listEvents, { query: { kind: `*${stamp}.*.detection` } });
      assert.deepEqual(detections.map((e) => e.message), ['a detection']);
      // % and _ are literal characters, not LIKE wildcards.
      assert.deepEqual((await api.all(listEvents, { query: { kind: `*.100%_literal` } })).map((e) => e.message), ['a literal percent']);
      assert.equal((await api.all(listEvents, { query: { kind: `*.1000_literal` } })).length, 0);

      const kinds = await api.all(listEventKinds, { query: { limit: 2 } });
      const mine = kinds.filter((x) => x.startsWith(`h1-${stamp}.`));
      assert.deepEqual(mine, [k('100%_literal'), k('bulk'), k('other.detection'), k('paged')]);
      assert.deepEqual(kinds, [...kinds].sort(), 'in order');
      assert.equal(new Set(kinds).size, kinds.length, 'each once');
      await assert.rejects(api.call(listEventKinds, { query: { cursor: 'nope' } }), (e: ApiError) => e.code === 'VALIDATION_FAILED');
    });

    it('exports every matching event (more than a page) as JSON lines and CSV, newest first', async () => {
      const jsonl = await (await api.request('GET', '/events', { query: { kind: k('bulk'), format: 'jsonl' }, accept: 'application/x-ndjson' })).text();
      const lines = jsonl.trim().split('\n').map((l) => JSON.parse(l) as { message: string });
      assert.equal(lines.length, 1205);
      assert.equal(lines[0]!.message, 'bulk 1204');
      assert.equal(lines.at(-1)!.message, 'bulk 0');
      const res = await api.request('GET', '/events', { query: { kind: k('bulk'), format: 'csv' }, accept: 'text/csv' });
      assert.match(res.headers.get('content-type') ?? '', /^text\/csv/);
      const csv = (await res.text()).trim().split('\n');
      assert.equal(csv[0], 'id,time,severity,kind,message,actor,deviceId,groupId,taskId,runId,product,data,deviceName,taskName');
      assert.equal(csv.length, 1206);
      // A refused filter is an error answer, not a cut stream.
      const bad = await t.api<{ error: { code: string } }>('GET', '/api/v1/events?groupId=no-such-group&format=csv');
      assert.equal(bad.status, 404);
      assert.equal(bad.body.error.code, 'NOT_FOUND');
    });

    it('keeps saved selections per administrator: built-in ones first, replaced by name, invisible to and undeletable by another', async () => {
      const mine = await api.call(listSavedSelections, { query: { page: 'events' } });
      assert.deepEqual(mine.items.map((s) => s.name), ['Errors and warnings, last 24 hours', 'Failed runs', 'Audit trail', 'Detections']);
      assert.ok(mine.items.every((s) => s.builtIn && s.id.startsWith('builtin:') && s.createdAt === null));
      assert.equal(mine.total, 4);
      assert.deepEqual(mine.items.find((s) => s.name === 'Audit trail')!.query, { kind: 'audit.*' });

      const a = await api.call(createSavedSelection, { body: { page: 'events', name: 'Zeta errors', query: { severity: 'error' } } });
      const b2 = await api.call(createSavedSelection, { body: { page: 'events', name: 'Alpha audit', query: { kind: 'audit.*', range: '7d' } } });
      assert.equal(a.builtIn, false);
      assert.ok(a.createdAt);
      // The same name again replaces it, keeping its id.
      const again = await api.call(createSavedSelection, { body: { page: 'events', name: 'Zeta errors', query: { severity: 'warning' } } });
      assert.equal(again.id, a.id);
      await api.call(createSavedSelection, { body: { page: 'devices', name: 'Offline', query: { online: 'false' } } });

      const pages = [];
      for await (const p of api.pages(listSavedSelections, { query: { page: 'events', limit: 3 } })) pages.push(p);
      assert.deepEqual(pages.map((p) => p.items.length), [3, 3]);
      const names = pages.flatMap((p) => p.items.map((s) => s.name));
      assert.deepEqual(names, ['Errors and warnings, last 24 hours', 'Failed runs', 'Audit trail', 'Detections', 'Alpha audit', 'Zeta errors']);
      assert.equal(pages[0]!.total, 6);
      assert.deepEqual((await api.all(listSavedSelections, { query: { page: 'events' } })).find((s) => s.id === a.id)!.query, { severity: 'warning' });
      assert.deepEqual((await api.all(listSavedSelections, { query: { page: 'devices' } })).map((s) => s.name), ['Offline']);

      // Another administrator (a read-only auditor) sees only the built-in ones, and cannot delete mine.
      const password = randomBytes(12).toString('base64url');
      const other = await api.call(createAdmin, { body: { name: `auditor-${stamp}`, password, grants: [{ roleId: 'auditor', groupId: t.server.services.groups.rootId }] } });
      const session = await new GarrisonClient({ baseUrl: t.server.url, fetch: t.fetch }).call(createSession, { body: { name: `auditor-${stamp}`, password } });
      const theirs = new GarrisonClient({ baseUrl: t.server.url, token: session.token, fetch: t.fetch });
      assert.deepEqual((await theirs.all(listSavedSelections, { query: { page: 'events' } })).map((s) => s.builtIn), [true, true, true, true]);
      await assert.rejects(theirs.call(deleteSavedSelection, { params: { id: a.id } }), (e: ApiError) => e.code === 'NOT_FOUND');
      await assert.rejects(theirs.call(deleteSavedSelection, { params: { id: 'builtin:events-audit' } }), (e: ApiError) => e.code === 'CONFLICT');
      const own = await theirs.call(createSavedSelection, { body: { page: 'events', name: 'Zeta errors', query: { severity: 'error' } } });
      assert.notEqual(own.id, a.id, 'the same name belongs to each administrator separately');
      assert.equal((await api.all(listSavedSelections, { query: { page: 'events' } })).find((s) => s.name === 'Zeta errors')!.id, a.id);
      await assert.rejects(api.call(deleteSavedSelection, { params: { id: own.id } }), (e: ApiError) => e.code === 'NOT_FOUND');

      // Bad input is a coded error.
      await assert.rejects(api.call(createSavedSelection, { body: { page: 'nowhere' as 'events', name: 'x', query: {} } }), (e: ApiError) => e.code === 'VALIDATION_FAILED');
      await assert.rejects(api.call(createSavedSelection, { body: { page: 'events', name: '   ', query: {} } }), (e: ApiError) => e.code === 'VALIDATION_FAILED');
      await assert.rejects(api.call(listSavedSelections, { query: { page: 'events', cursor: Buffer.from('[1]').toString('base64url') } }), (e: ApiError) => e.code === 'VALIDATION_FAILED');

      await api.call(deleteSavedSelection, { params: { id: b2.id } });
      assert.ok(!(await api.all(listSavedSelections, { query: { page: 'events' } })).some((s) => s.id === b2.id));
      await assert.rejects(api.call(deleteSavedSelection, { params: { id: b2.id } }), (e: ApiError) => e.code === 'NOT_FOUND');

      // Deleting the administrator deletes their selections.
      await api.call(deleteAdmin, { params: { id: other.id } });
      const rows = await t.server.db.kysely.selectFrom('saved_selections').select('id').where('admin_id', '=', other.id).execute();
      assert.equal(rows.length, 0);
    });

    it('pages roles (built-in first), administrators (by name), API tokens (newest first) and secrets (by name)', async () => {
      const roles = await api.call(listRoles, { query: { limit: 2 } });
      assert.deepEqual(roles.items.map((r) => r.id), ['main-administrator', 'administrator']);
      const allRoles = await api.all(listRoles, { query: { limit: 2 } });
      assert.deepEqual(allRoles.slice(0, 5).map((r) => r.builtin), [true, true, true, true, true]);
      assert.equal(allRoles.length, roles.total);

      for (const n of ['zed', 'amy']) await api.call(createAdmin, { body: { name: `${n}-${stamp}`, grants: [] } });
      const admins = await api.all(listAdmins, { query: { limit: 1 } });
      const names = admins.map((a) => a.name.toLowerCase());
      assert.deepEqual(names, [...names].sort());
      assert.ok(names.includes(`amy-${stamp}`) && names.includes(`zed-${stamp}`));

      const tokens = await api.all(listApiTokens, { query: { limit: 1 } });
      assert.ok(tokens.length >= 1);
      const times = tokens.map((x) => x.createdAt);
      assert.deepEqual(times, [...times].sort().reverse());

      for (const n of ['b-secret', 'a-secret', 'c-secret']) await api.call(putSecret, { params: { name: `${n}-${stamp}` }, body: { value: 'v' } });
      const first = await api.call(listSecrets, { query: { limit: 2 } });
      assert.equal(first.items.length, 2);
      assert.ok(first.nextCursor);
      const secrets = (await api.all(listSecrets, { query: { limit: 2 } })).map((s) => s.name).filter((n) => n.endsWith(stamp));
      assert.deepEqual(secrets, [`a-secret-${stamp}`, `b-secret-${stamp}`, `c-secret-${stamp}`]);
      await assert.rejects(api.call(listSecrets, { query: { cursor: 'x' } }), (e: ApiError) => e.code === 'VALIDATION_FAILED');
    });

    it('names the device and task of an event in the log', async () => {
      const root = t.server.services.groups.rootId;
      const task = (await t.api<{ id: string; name: string }>('POST', '/api/v1/tasks', { name: `named-${stamp}`, type: 'script', settings: { command: 'true' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: root } })).body;
      t.server.services.events.record({ severity: 'info', kind: k('named'), message: 'about a task', taskId: task.id, groupId: root });
      const [e] = await api.all(listEvents, { query: { kind: k('named') } });
      assert.equal(e!.taskName, `named-${stamp}`);
      assert.equal(e!.deviceName, undefined);
    });
  });
}
