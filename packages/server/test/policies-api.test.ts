/**
 * Product policies through the real HTTP API, on every configured database (ADR 0020):
 * authorization on group subtrees first, then CRUD with revision compare-and-set, the
 * effective policy of enrolled devices with origins (inheritance, block, lock, profile), what
 * invalid input is refused with, the group intervals' compatibility view, and previews.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { EffectiveProductPolicy, Page, Policy, PolicyCompliancePage, PolicyListItem, PolicyPreview, PolicyView } from '@garrison/protocol';
import { apiClient, dbKinds, startTestServer, tempDir, type TestServer } from './helpers.ts';
import { hostileDevice, openSocket } from './support/raw-agent.ts';

type Err = { error: { code: string; details?: { problems?: string[] } } };
type DevicePolicy = { products: EffectiveProductPolicy[]; compliance: { product: string; state: string }[]; nextMaintenanceWindow: unknown };

/** A third-party plug-in whose policy type locks only one of its two settings (a plain JSON Schema, as a plug-in may write it). */
const LIMITED_PLUGIN = `export default {
  product: { id: 'limited', name: 'Limited', description: 'test' },
  taskTypes: [],
  policyType: {
    settingsSchema: { type: 'object', properties: { level: { type: 'integer', minimum: 0, maximum: 9 }, note: { type: 'string' } }, additionalProperties: false },
    defaults: { level: 1, note: '' },
    lockable: ['level'],
  },
};
`;

for (const kind of dbKinds) {
  describe(`policies API (${kind.name})`, () => {
    let t: TestServer;
    const g = {} as Record<'top' | 'sub' | 'other' | 'blocked', string>;
    const dev = {} as Record<'top' | 'sub' | 'vip' | 'other' | 'blocked', string>;
    let subAdmin: ReturnType<typeof apiClient>;

    before(async () => {
      const dir = await tempDir('garrison-policy-plugin-');
      const pluginFile = path.join(dir, 'limited.mjs');
      await writeFile(pluginFile, LIMITED_PLUGIN);
      t = await startTestServer(kind, { plugins: [pluginFile] });
      const group = async (name: string, parentId?: string) => (await t.api<{ id: string }>('POST', '/api/v1/groups', { name, ...(parentId ? { parentId } : {}) })).body.id;
      g.top = await group('Top');
      g.sub = await group('Sub', g.top);
      g.blocked = await group('Blocked', g.top);
      g.other = await group('Other');
      dev.top = (await hostileDevice(t, g.top, 'top-host')).deviceId;
      dev.sub = (await hostileDevice(t, g.sub, 'sub-host')).deviceId;
      dev.vip = (await hostileDevice(t, g.sub, 'vip-host')).deviceId;
      dev.blocked = (await hostileDevice(t, g.blocked, 'blocked-host')).deviceId;
      dev.other = (await hostileDevice(t, g.other, 'other-host')).deviceId;
      assert.equal((await t.api('PATCH', `/api/v1/devices/${dev.vip}`, { tags: ['vip'] })).status, 200);
      // An administrator whose role is on the subgroup only.
      const name = 'sub-admin';
      const password = randomBytes(12).toString('base64url');
      assert.equal((await t.api('POST', '/api/v1/admins', { name, password, grants: [{ roleId: 'administrator', groupId: g.sub }] })).status, 201);
      const s = await t.fetch(`${t.server.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password }) });
      subAdmin = apiClient(t.fetch, t.server.url, ((await s.json()) as { token: string }).token);
    });
    after(() => t.close());

    const policyOf = async (deviceId: string, product = 'garrison') => {
      const r = await t.api<DevicePolicy>('GET', `/api/v1/devices/${deviceId}/policy`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.products.find((p) => p.product === product)!;
    };

    it('refuses a subtree administrator what lies above or beside the subtree', async () => {
      const above = (await t.api<Policy>('POST', '/api/v1/policies', { name: 'Top agent policy', product: 'garrison', settings: { logKeepFiles: 9 } })).body;
      assert.equal((await t.api('PUT', `/api/v1/groups/${g.top}/policies/garrison`, { policyId: above.id, blockInheritance: false })).status, 200);
      // Cannot assign at the parent, nor block it, nor unassign it.
      const own = await subAdmin<Policy>('POST', '/api/v1/policies', { name: 'Sub admin policy', product: 'garrison', settings: { logKeepFiles: 2 } });
      assert.equal(own.status, 201, own.text);
      // (The group above is not even visible to it: 404 rather than 403, so ids cannot be probed.)
      assert.equal((await subAdmin<Err>('PUT', `/api/v1/groups/${g.top}/policies/garrison`, { policyId: own.body.id, blockInheritance: false })).body.error.code, 'NOT_FOUND');
      assert.equal((await subAdmin<Err>('PUT', `/api/v1/groups/${g.top}/policies/garrison`, { policyId: null, blockInheritance: true })).body.error.code, 'NOT_FOUND');
      assert.equal((await subAdmin<Err>('DELETE', `/api/v1/groups/${g.top}/policies/garrison`)).body.error.code, 'NOT_FOUND');
      // Cannot edit or delete a policy assigned above the subtree.
      assert.equal((await subAdmin<Err>('PATCH', `/api/v1/policies/${above.id}`, { revision: above.revision, settings: { logKeepFiles: 1 } })).body.error.code, 'FORBIDDEN');
      assert.equal((await subAdmin<Err>('DELETE', `/api/v1/policies/${above.id}`)).body.error.code, 'FORBIDDEN');
      // Nor another administrator's draft, assigned nowhere yet; nor its own before it assigns it.
      const draft = (await t.api<Policy>('POST', '/api/v1/policies', { name: 'Root draft', product: 'garrison', settings: { logKeepFiles: 7 } })).body;
      assert.equal((await subAdmin<Err>('PATCH', `/api/v1/policies/${draft.id}`, { revision: draft.revision, settings: { logKeepFiles: 1 } })).body.error.code, 'FORBIDDEN');
      assert.equal((await subAdmin<Err>('DELETE', `/api/v1/policies/${draft.id}`)).body.error.code, 'FORBIDDEN');
      assert.equal((await t.api<Policy>('GET', `/api/v1/policies/${draft.id}`)).body.revision, 1);
      assert.equal((await subAdmin<Err>('PATCH', `/api/v1/policies/${own.body.id}`, { revision: own.body.revision, settings: { logKeepFiles: 3 } })).body.error.code, 'FORBIDDEN');
      // Sees that the policy is assigned elsewhere, never where.
      const seen = (await subAdmin<PolicyView>('GET', `/api/v1/policies/${above.id}`)).body;
      assert.deepEqual([seen.assignedTo, seen.assignedElsewhere], [[], 1]);
      assert.deepEqual((await t.api<PolicyView>('GET', `/api/v1/policies/${above.id}`)).body.assignedTo.map((a) => a.groupId), [g.top]);
      // Cannot read devices outside, nor groups beside.
      assert.equal((await subAdmin<Err>('GET', `/api/v1/devices/${dev.other}/policy`)).status, 404);
      assert.equal((await subAdmin<Err>('GET', `/api/v1/devices/${dev.top}/policy`)).status, 404);
      assert.equal((await subAdmin<Err>('GET', `/api/v1/groups/${g.other}/policies`)).status, 404);
      // A preview of the policy above lists only the devices it may read.
      const preview = await subAdmin<PolicyPreview>('POST', `/api/v1/policies/${above.id}/preview`, { settings: { logKeepFiles: 4 } });
      assert.equal(preview.status, 200, preview.text);
      assert.deepEqual(preview.body.devices.map((d) => d.deviceId).sort(), [dev.sub, dev.vip].sort());
      // What it may do: assign its own policy to its own group.
      assert.equal((await subAdmin('PUT', `/api/v1/groups/${g.sub}/policies/garrison`, { policyId: own.body.id, blockInheritance: false })).status, 200);
      // Nothing above changed.
      const still = (await t.api<Policy>('GET', `/api/v1/policies/${above.id}`)).body;
      assert.equal(still.revision, 1);
      assert.equal((await policyOf(dev.top)).settings.logKeepFiles!.value, 9);
      assert.equal((await policyOf(dev.sub)).settings.logKeepFiles!.value, 2);
      assert.equal((await t.api('DELETE', `/api/v1/groups/${g.sub}/policies/garrison`)).status, 204);
      assert.equal((await t.api('DELETE', `/api/v1/groups/${g.top}/policies/garrison`)).status, 204);
    });

    it('creates, reads, changes with compare-and-set, copies, exports, imports and deletes', async () => {
      const created = await t.api<Policy>('POST', '/api/v1/policies', { name: 'CRUD', product: 'garrison', settings: { checkInIntervalMinutes: 30 }, locked: [] });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.revision, 1);
      const changed = await t.api<Policy>('PATCH', `/api/v1/policies/${created.body.id}`, { revision: 1, settings: { checkInIntervalMinutes: 20 } });
      assert.equal(changed.status, 200, JSON.stringify(changed.body));
      assert.equal(changed.body.revision, 2);
      const stale = await t.api<Err>('PATCH', `/api/v1/policies/${created.body.id}`, { revision: 1, settings: { checkInIntervalMinutes: 10 } });
      assert.equal(stale.status, 409);
      assert.equal(stale.body.error.code, 'POLICY_REVISION_CONFLICT');
      const revisions = (await t.api<{ items: { revision: number; document: { policy: { settings: Record<string, unknown> } } }[] }>('GET', `/api/v1/policies/${created.body.id}/revisions`)).body.items;
      assert.deepEqual(revisions.map((r) => [r.revision, r.document.policy.settings.checkInIntervalMinutes]), [[2, 20], [1, 30]]);
      const exported = (await t.api<{ format: string; policy: { name: string } }>('GET', `/api/v1/policies/${created.body.id}/export`)).body;
      assert.equal(exported.format, 'garrison-policy');
      const imported = await t.api<Policy>('POST', '/api/v1/policies/import', { ...exported, name: 'CRUD imported' });
      assert.equal(imported.status, 201, JSON.stringify(imported.body));
      assert.equal(imported.body.settings.checkInIntervalMinutes, 20);
      const copy = await t.api<Policy>('POST', `/api/v1/policies/${created.body.id}/copy`, { name: 'CRUD copy' });
      assert.equal(copy.status, 201);
      assert.equal(copy.body.revision, 1);
      // Revisions page newest first; the list pages by name.
      const rev1 = (await t.api<Page<{ revision: number }>>('GET', `/api/v1/policies/${created.body.id}/revisions?limit=1`)).body;
      assert.deepEqual([rev1.items.map((r) => r.revision), rev1.total, typeof rev1.nextCursor], [[2], 2, 'string']);
      const rev2 = (await t.api<Page<{ revision: number }>>('GET', `/api/v1/policies/${created.body.id}/revisions?limit=1&cursor=${rev1.nextCursor}`)).body;
      assert.deepEqual([rev2.items.map((r) => r.revision), rev2.nextCursor], [[1], null]);
      assert.equal((await t.api<Err>('GET', `/api/v1/policies/${created.body.id}/revisions?cursor=WyJ4Il0`)).body.error.code, 'VALIDATION_FAILED');
      const byName1 = (await t.api<Page<Policy>>('GET', '/api/v1/policies?search=crud&limit=2')).body;
      assert.deepEqual([byName1.items.map((p) => p.name), byName1.total], [['CRUD', 'CRUD copy'], 3]);
      const byName2 = (await t.api<Page<Policy>>('GET', `/api/v1/policies?search=crud&limit=2&cursor=${byName1.nextCursor}`)).body;
      assert.deepEqual([byName2.items.map((p) => p.name), byName2.nextCursor], [['CRUD imported'], null]);
      assert.equal((await t.api<Err>('GET', '/api/v1/policies?cursor=%25%25')).body.error.code, 'VALIDATION_FAILED');
      assert.equal((await t.api('PUT', `/api/v1/groups/${g.other}/policies/garrison`, { policyId: created.body.id, blockInheritance: false })).status, 200);
      const inUse = await t.api<Err>('DELETE', `/api/v1/policies/${created.body.id}`);
      assert.equal(inUse.body.error.code, 'POLICY_IN_USE');
      const view = (await t.api<{ assignedTo: { groupId: string }[] }>('GET', `/api/v1/policies/${created.body.id}`)).body;
      assert.deepEqual(view.assignedTo.map((a) => a.groupId), [g.other]);
      assert.equal((await policyOf(dev.other)).settings.checkInIntervalMinutes!.value, 20);
      assert.equal((await t.api('DELETE', `/api/v1/groups/${g.other}/policies/garrison`)).status, 204);
      for (const id of [created.body.id, imported.body.id, copy.body.id]) assert.equal((await t.api('DELETE', `/api/v1/policies/${id}`)).status, 204);
      await t.server.services.events.flush();
      for (const kind of ['created', 'updated', 'assigned', 'unassigned', 'deleted']) {
        const audit = (await t.api<{ items: { actor: string; message: string }[] }>('GET', `/api/v1/events?kind=audit.policy.${kind}`)).body.items;
        assert.ok(audit.some((e) => e.message.includes('CRUD')), `audit.policy.${kind}: ${JSON.stringify(audit)}`);
      }
      const list = (await t.api<{ items: Policy[]; total: number }>('GET', '/api/v1/policies?product=garrison')).body;
      assert.ok(!list.items.some((p) => p.name.startsWith('CRUD')));
      const types = (await t.api<{ items: { product: string; lockable: string[] }[] }>('GET', '/api/v1/policy-types')).body.items;
      assert.deepEqual(types.find((x) => x.product === 'limited')!.lockable, ['level']);
    });

    it('evaluates inheritance, block, lock and profile with the origin of every value', async () => {
      const top = (await t.api<Policy>('POST', '/api/v1/policies', { name: 'Eval top', product: 'garrison', settings: { checkInIntervalMinutes: 30, logKeepFiles: 8 }, locked: ['checkInIntervalMinutes'] })).body;
      const sub = (
        await t.api<Policy>('POST', '/api/v1/policies', {
          name: 'Eval sub',
          product: 'garrison',
          settings: { checkInIntervalMinutes: 5, logRetentionDays: 3 },
          profiles: [{ id: 'vip', name: 'VIP', priority: 10, enabled: true, condition: { tags: ['vip'] }, settings: { logRetentionDays: 99 }, locked: [] }],
        })
      ).body;
      assert.equal((await t.api('PUT', `/api/v1/groups/${g.top}/policies/garrison`, { policyId: top.id, blockInheritance: false })).status, 200);
      assert.equal((await t.api('PUT', `/api/v1/groups/${g.sub}/policies/garrison`, { policyId: sub.id, blockInheritance: false })).status, 200);
      assert.equal((await t.api('PUT', `/api/v1/groups/${g.blocked}/policies/garrison`, { policyId: null, blockInheritance: true })).status, 200);

      const s = await policyOf(dev.sub);
      // Locked above: the child's value is overridden, and says so.
      assert.equal(s.settings.checkInIntervalMinutes!.value, 30);
      assert.deepEqual(s.settings.checkInIntervalMinutes!.lockedBy, { kind: 'policy', policyId: top.id, policyName: 'Eval top', revision: 1, groupId: g.top });
      assert.equal(s.settings.checkInIntervalMinutes!.origin.kind, 'policy');
      assert.deepEqual(s.settings.checkInIntervalMinutes!.overridden.map((o) => o.value), [5]);
      assert.equal(s.settings.logKeepFiles!.value, 8);
      assert.equal(s.settings.logRetentionDays!.value, 3);
      assert.deepEqual(s.settings.logRetentionDays!.origin, { kind: 'policy', policyId: sub.id, policyName: 'Eval sub', revision: 1, groupId: g.sub });
      assert.deepEqual(s.settings.policyEnforcementMinutes!.origin, { kind: 'default' });
      // The profile applies to the tagged device only.
      const v = await policyOf(dev.vip);
      assert.equal(v.settings.logRetentionDays!.value, 99);
      assert.equal(v.settings.logRetentionDays!.origin.kind, 'profile');
      assert.deepEqual(v.profiles.map((p) => p.profileId), ['vip']);
      // Blocking: the unlocked settings above do not come down, the locked one does.
      // No windows: none to show; a window set at the top shows on the device page.
      assert.equal((await t.api<DevicePolicy>('GET', `/api/v1/devices/${dev.sub}/policy`)).body.nextMaintenanceWindow, null);
      assert.equal((await t.api('PATCH', `/api/v1/policies/${top.id}`, { revision: 1, settings: { ...top.settings, maintenanceWindows: [{ days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], start: '02:00', durationMinutes: 60, timeBasis: 'UTC' }] } })).status, 200);
      const w = (await t.api<DevicePolicy>('GET', `/api/v1/devices/${dev.sub}/policy`)).body.nextMaintenanceWindow as { start: string; end: string };
      assert.match(w.start, /T02:00:00\.000Z$/);
      assert.equal(Date.parse(w.end) - Date.parse(w.start), 3600_000);
      const b = await policyOf(dev.blocked);
      assert.equal(b.settings.logKeepFiles!.origin.kind, 'default');
      assert.equal(b.settings.checkInIntervalMinutes!.value, 30);
      // The compatibility view of the group.
      const view = (await t.api<{ checkInIntervalMinutes: number | null; effectivePolicy: { checkInIntervalMinutes: number } }>('GET', `/api/v1/groups/${g.sub}`)).body;
      assert.equal(view.checkInIntervalMinutes, 5);
      assert.equal(view.effectivePolicy.checkInIntervalMinutes, 30);
      // Compliance: nothing reported yet.
      const compliance = (await t.api<PolicyCompliancePage>('GET', `/api/v1/policies/${top.id}/compliance`)).body;
      assert.equal(compliance.states.pending, 4);
      assert.equal(compliance.items.length, 4);
      assert.equal(compliance.total, 4);
      // Paged by device name: a page boundary, the counts over every page, a cursor it did not give.
      const first = (await t.api<PolicyCompliancePage>('GET', `/api/v1/policies/${top.id}/compliance?limit=3`)).body;
      assert.deepEqual(first.items.map((d) => d.deviceId), [dev.blocked, dev.sub, dev.top]);
      assert.equal(first.total, 4);
      assert.deepEqual(first.states, { compliant: 0, drifted: 0, failed: 0, pending: 4 });
      assert.ok(first.nextCursor);
      const second = (await t.api<PolicyCompliancePage>('GET', `/api/v1/policies/${top.id}/compliance?limit=3&cursor=${first.nextCursor}`)).body;
      assert.deepEqual(second.items.map((d) => d.deviceId), [dev.vip]);
      assert.equal(second.nextCursor, null);
      assert.equal((await t.api<Err>('GET', `/api/v1/policies/${top.id}/compliance?cursor=bm90LWEtY3Vyc29y`)).body.error.code, 'VALIDATION_FAILED');
      assert.equal((await t.api<Err>('GET', `/api/v1/policies/${top.id}/compliance?limit=1001`)).body.error.code, 'VALIDATION_FAILED');
      // A state filter narrows the rows, not the counts; a search by name.
      const none = (await t.api<PolicyCompliancePage>('GET', `/api/v1/policies/${top.id}/compliance?state=compliant`)).body;
      assert.deepEqual([none.items.length, none.total, none.states.pending], [0, 0, 4]);
      assert.deepEqual((await t.api<PolicyCompliancePage>('GET', `/api/v1/policies/${top.id}/compliance?search=VIP`)).body.items.map((d) => d.deviceId), [dev.vip]);
      // A subtree administrator sees its subtree's devices only, in the rows and in the counts.
      const confined = await subAdmin<PolicyCompliancePage>('GET', `/api/v1/policies/${top.id}/compliance`);
      assert.equal(confined.status, 200, confined.text);
      assert.deepEqual(confined.body.items.map((d) => d.deviceId), [dev.sub, dev.vip]);
      assert.deepEqual([confined.body.total, confined.body.states.pending], [2, 2]);
      // The list carries the groups (those the caller reads) and, when asked, the counts: one request for a page of policies.
      const listed = (await t.api<Page<PolicyListItem>>('GET', '/api/v1/policies?search=eval%20top&compliance=true')).body;
      assert.deepEqual(listed.items.map((p) => [p.id, p.assignedTo.map((a) => a.groupId), p.compliance?.pending]), [[top.id, [g.top], 4]]);
      assert.equal((await t.api<Page<PolicyListItem>>('GET', '/api/v1/policies?search=eval%20top')).body.items[0]!.compliance, undefined);
      const listedSub = (await subAdmin<Page<PolicyListItem>>('GET', '/api/v1/policies?search=eval%20top&compliance=true')).body;
      assert.deepEqual(listedSub.items.map((p) => [p.assignedTo.length, p.assignedElsewhere, p.compliance?.pending]), [[0, 1, 2]]);

      // A preview of unlocking at the top lists the devices below whose value would change.
      const preview = (await t.api<PolicyPreview>('POST', `/api/v1/policies/${top.id}/preview`, { locked: [] })).body;
      assert.equal(preview.reached, 4);
      assert.deepEqual(preview.devices.map((d) => d.deviceId).sort(), [dev.top, dev.sub, dev.vip, dev.blocked].sort());
      const subChange = preview.devices.find((d) => d.deviceId === dev.sub)!.changes.find((c) => c.setting === 'checkInIntervalMinutes')!;
      assert.deepEqual([subChange.before, subChange.after, subChange.lockedBefore, subChange.lockedAfter], [30, 5, true, false]);
      // A group preview: taking the sub policy away.
      const gp = (await t.api<PolicyPreview>('POST', `/api/v1/groups/${g.sub}/policies/garrison/preview`, { policyId: null, blockInheritance: false })).body;
      assert.equal(gp.reached, 2);
      assert.equal(gp.changed, 2);

      for (const grp of [g.top, g.sub, g.blocked]) assert.equal((await t.api('DELETE', `/api/v1/groups/${grp}/policies/garrison`)).status, 204);
      for (const id of [top.id, sub.id]) assert.equal((await t.api('DELETE', `/api/v1/policies/${id}`)).status, 204);
    });

    it('refuses invalid policies with their code, storing nothing', async () => {
      const before = (await t.api<{ total: number }>('GET', '/api/v1/policies')).body.total;
      const bad = async (body: unknown, code: string, url = '/api/v1/policies') => {
        const r = await t.api<Err>('POST', url, body);
        assert.equal(r.body.error?.code, code, JSON.stringify(r.body));
        return r.body;
      };
      const invalid = await bad({ name: 'Bad value', product: 'garrison', settings: { checkInIntervalMinutes: 0 } }, 'POLICY_INVALID');
      assert.ok(invalid.error.details!.problems!.some((p) => p.includes('checkInIntervalMinutes')));
      await bad({ name: 'Unknown', product: 'garrison', settings: { noSuchSetting: 1 } }, 'POLICY_INVALID');
      await bad({ name: 'Not lockable', product: 'limited', settings: { note: 'x' }, locked: ['note'] }, 'POLICY_INVALID');
      await bad({ name: 'Bad zone', product: 'garrison', settings: { maintenanceWindows: [{ days: ['mon'], start: '01:00', durationMinutes: 60, timeBasis: 'Mars/Olympus' }] } }, 'POLICY_INVALID');
      await bad({ name: 'No type', product: 'nothing-here', settings: {} }, 'POLICY_TYPE_UNKNOWN');
      await bad({ format: 'garrison-policy', formatVersion: 2, policy: {} }, 'POLICY_IMPORT_INVALID', '/api/v1/policies/import');
      await bad({ format: 'garrison-policy', formatVersion: 1, policy: { name: 'x', product: 'garrison', settings: { logKeepFiles: -1 }, locked: [], profiles: [] } }, 'POLICY_IMPORT_INVALID', '/api/v1/policies/import');
      assert.equal((await t.api<{ total: number }>('GET', '/api/v1/policies')).body.total, before);
      // A policy of one product cannot be assigned for another.
      const lim = (await t.api<Policy>('POST', '/api/v1/policies', { name: 'Limited one', product: 'limited', settings: { level: 3 }, locked: ['level'] })).body;
      const wrong = await t.api<Err>('PUT', `/api/v1/groups/${g.other}/policies/garrison`, { policyId: lim.id, blockInheritance: false });
      assert.equal(wrong.body.error.code, 'VALIDATION_FAILED');
      assert.equal((await t.api<{ items: unknown[] }>('GET', `/api/v1/groups/${g.other}/policies`)).body.items.length, 0);
      assert.equal((await t.api('DELETE', `/api/v1/policies/${lim.id}`)).status, 204);
    });

    it("tells a connected agent to sync when its effective policy changes", async () => {
      const grp = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Synced' })).body.id;
      const d = await hostileDevice(t, grp, 'synced-host');
      const sock = await openSocket(t, d.credential);
      try {
        const p = (await t.api<Policy>('POST', '/api/v1/policies', { name: 'Sync me', product: 'garrison', settings: { logKeepFiles: 3 } })).body;
        assert.equal((await t.api('PUT', `/api/v1/groups/${grp}/policies/garrison`, { policyId: p.id, blockInheritance: false })).status, 200);
        assert.equal((await sock.next()).type, 'sync');
        assert.equal((await t.api('PATCH', `/api/v1/policies/${p.id}`, { revision: 1, settings: { logKeepFiles: 4 } })).status, 200);
        assert.equal((await sock.next()).type, 'sync');
        const etag = t.server.services.policies.agentPolicies(t.server.services.catalog.device(d.deviceId)!).etag;
        assert.equal(t.server.services.policies.agentPolicies(t.server.services.catalog.device(d.deviceId)!).products.find((x) => x.product === 'garrison')!.settings.logKeepFiles, 4);
        assert.match(etag, /^[0-9a-f]{16}$/);
      } finally {
        sock.ws.close();
      }
    });

    it('keeps the group intervals as a view of the group policy', async () => {
      const grp = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Compat', checkInIntervalMinutes: 12 })).body.id;
      let view = (await t.api<{ checkInIntervalMinutes: number | null; policyEnforcementMinutes: number | null; effectivePolicy: { checkInIntervalMinutes: number; policyEnforcementMinutes: number } }>('GET', `/api/v1/groups/${grp}`)).body;
      assert.deepEqual([view.checkInIntervalMinutes, view.policyEnforcementMinutes, view.effectivePolicy.checkInIntervalMinutes], [12, null, 12]);
      const own = (await t.api<{ items: { policyId: string; policyName: string }[] }>('GET', `/api/v1/groups/${grp}/policies`)).body.items;
      assert.equal(own.length, 1);
      assert.equal(own[0]!.policyName, 'My Organization/Compat – agent policy');
      await t.api('PATCH', `/api/v1/groups/${grp}`, { checkInIntervalMinutes: null, policyEnforcementMinutes: 3 });
      view = (await t.api<typeof view>('GET', `/api/v1/groups/${grp}`)).body;
      assert.deepEqual([view.checkInIntervalMinutes, view.policyEnforcementMinutes, view.effectivePolicy.checkInIntervalMinutes, view.effectivePolicy.policyEnforcementMinutes], [null, 3, 60, 3]);
      const p = (await t.api<Policy>('GET', `/api/v1/policies/${own[0]!.policyId}`)).body;
      assert.deepEqual(p.settings, { policyEnforcementMinutes: 3 });
      assert.equal(p.revision, 2);
    });
  });
}

describe('policy types are checked when a plug-in is installed', () => {
  it('refuses incomplete or invalid defaults and unknown lockable settings, with a clear message', async () => {
    const { PluginRegistry } = await import('../src/plugins/registry.ts');
    const schema = { type: 'object', properties: { level: { type: 'integer', minimum: 0 }, note: { type: 'string' } }, additionalProperties: false } as never;
    const plugin = (policyType: unknown) => ({ product: { id: 'broken', name: 'Broken', description: '' }, taskTypes: [], policyType }) as never;
    const refused = (policyType: unknown, why: RegExp) => assert.throws(() => new PluginRegistry().install(plugin(policyType)), why);
    refused({ settingsSchema: schema, defaults: { level: 1 } }, /plug-in broken: its policy type has no default for note/);
    refused({ settingsSchema: schema, defaults: { level: -1, note: '' } }, /defaults that do not match its schema/);
    refused({ settingsSchema: schema, defaults: { level: 1, note: '', extra: 1 } }, /defaults for settings it does not declare: extra/);
    refused({ settingsSchema: schema, defaults: { level: 1, note: '' }, lockable: ['nope'] }, /lockable settings it does not declare: nope/);
    refused({ settingsSchema: { type: 'string' }, defaults: {} }, /object settingsSchema/);
    refused({ settingsSchema: schema, defaults: { level: 1, note: '' }, validate: () => ['never'] }, /refuses its own defaults: never/);
    const ok = new PluginRegistry();
    ok.install(plugin({ settingsSchema: schema, defaults: { level: 1, note: '' } }));
    assert.deepEqual(ok.policyType('broken')!.lockable, ['level', 'note']);
  });
});
