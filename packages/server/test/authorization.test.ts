/**
 * The HTTP boundary and administrators' scopes (issue 12): every registered route declares
 * who may call it, disguised paths reach the same decision, and administrators whose roles
 * are granted on one subtree are tried against every route with objects of another subtree.
 * A route added without a case here fails the test that enumerates them.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { errorCodeInfo, type Task } from '@garrison/protocol';
import { apiClient, dbKinds, startTestServer, type TestServer } from './helpers.ts';
import { agentPost, hostileDevice, inventory } from './support/raw-agent.ts';
import { buildArchive, manifest } from './package-fixtures.ts';
import { readFile } from 'node:fs/promises';

type Req = { status: number; body: unknown; text: string };
type Expect = 'self' | 'filtered' | 'denied';
interface Case {
  /** The request with objects of the other subtree (or server-wide ones). */
  path: string;
  body?: unknown;
  /** self: the caller's own things (any status); filtered: 2xx without a trace of the other subtree; denied: 403 or 404. */
  expect: Expect;
  /** Other statuses that also deny (an import naming a group the caller cannot see is an invalid document). */
  alsoDenied?: number[];
}

for (const kind of dbKinds) {
  describe(`authorization (${kind.name})`, () => {
    let t: TestServer;
    const f = {} as Record<string, string>;
    const tokens = {} as Record<'operator' | 'auditor' | 'installer' | 'subAdmin', string>;
    let markers: string[] = [];

    const call = (token: string, method: string, url: string, body?: unknown): Promise<Req> => apiClient(t.fetch, t.server.url, token)(method, url, body);

    before(async () => {
      t = await startTestServer(kind);
      const api = t.api;
      const group = async (name: string, parentId?: string) => (await api<{ id: string }>('POST', '/api/v1/groups', { name, ...(parentId ? { parentId } : {}) })).body.id;
      f.inside = await group('Inside');
      f.insideSub = await group('Inside sub', f.inside);
      f.outside = await group('Outside');
      const devIn = await hostileDevice(t, f.inside, 'inside-host');
      const devOut = await hostileDevice(t, f.outside, 'outside-host');
      f.devIn = devIn.deviceId;
      f.devOut = devOut.deviceId;
      const task = async (name: string, scope: unknown) => (await api<Task>('POST', '/api/v1/tasks', { name, type: 'script', settings: { command: 'true' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope })).body.id;
      f.taskIn = await task('Inside task', { type: 'group', groupId: f.inside });
      f.taskOut = await task('Outside task', { type: 'group', groupId: f.outside });
      f.localOut = await task('Outside local task', { type: 'local', deviceId: f.devOut });
      f.globalTask = await task('Global task', { type: 'global', deviceIds: [f.devIn, f.devOut] });
      f.runOut = (await api<{ requestId: string }>('POST', `/api/v1/tasks/${f.taskOut}/run`, {})).body.requestId;
      f.runOutId = (await api<{ items: { id: string }[] }>('GET', `/api/v1/runs?requestId=${f.runOut}`)).body.items[0]!.id;
      await api('PUT', '/api/v1/secrets/out-secret', { value: 'out-secret-value', groupId: f.outside });
      await api('PUT', '/api/v1/secrets/root-secret', { value: 'root-secret-value' });
      f.tokOut = (await api<{ id: string }>('POST', '/api/v1/enrolment-tokens', { groupId: f.outside, name: 'Outside token' })).body.id;
      const up = await t.fetch(`${t.server.url}/api/v1/repository/packages`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: await readFile(await buildArchive(manifest('app-out', '1.0.0'))) });
      f.pkg = ((await up.json()) as { id: string }).id;
      assert.equal((await api('PUT', `/api/v1/groups/${f.outside}/deployments/app-out`, { branch: 'current' })).status, 200);
      // A machine presenting the outside device's credential from elsewhere.
      await agentPost(t, devOut.credential, '/agent/v1/check-in', { type: 'check-in', inventory: inventory('outside-host'), machineIdentity: 'a'.repeat(64) });
      await agentPost(t, devOut.credential, '/agent/v1/check-in', { type: 'check-in', inventory: inventory('outside-clone'), machineIdentity: 'b'.repeat(64) });
      f.dupOut = (await api<{ items: { id: string }[] }>('GET', '/api/v1/device-duplicates?state=pending')).body.items[0]!.id;
      f.push = (await api<{ id: string }>('POST', '/api/v1/push-installs', { groupId: f.outside, hosts: ['127.0.0.1'], port: 1, username: 'nobody', password: 'not-a-real-one', connectTimeoutSeconds: 1 })).body.id;
      f.serverTask = (await api<{ items: { id: string; name: string }[] }>('GET', '/api/v1/server-tasks')).body.items.find((x) => x.name === 'Database maintenance')!.id;
      f.serverTaskRun = (await api<{ id: string }>('POST', `/api/v1/server-tasks/${f.serverTask}/run`)).body.id;
      f.role = (await api<{ id: string }>('POST', '/api/v1/roles', { name: 'Readers', permissions: ['read'] })).body.id;
      // A policy assigned to the outside group only (ADR 0020).
      f.policyOut = (await api<{ id: string }>('POST', '/api/v1/policies', { name: 'Agent policy of another subtree', product: 'garrison', settings: { checkInIntervalMinutes: 7 } })).body.id;
      assert.equal((await api('PUT', `/api/v1/groups/${f.outside}/policies/garrison`, { policyId: f.policyOut, blockInheritance: false })).status, 200);
      // A notification rule of the outside group, with a delivery in the history (ADR 0022).
      f.ruleOut = (await api<{ id: string }>('POST', '/api/v1/notifications/rules', { name: 'Outside rule', groupId: f.outside, kinds: ['run.failed'], actions: { webhook: { url: 'http://192.0.2.1:1/outside-hook' } } })).body.id;
      assert.equal((await api('POST', `/api/v1/notifications/rules/${f.ruleOut}/test`)).status, 202);
      f.mainAdmin = (await api<{ adminId: string }>('GET', '/api/v1/me')).body.adminId;
      f.mainSelection = (await api<{ id: string }>('POST', '/api/v1/saved-selections', { page: 'events', name: 'main only', query: { kind: 'audit.*' } })).body.id;
      f.mainToken = (await api<{ items: { id: string }[] }>('GET', '/api/v1/api-tokens')).body.items[0]!.id;

      const person = async (name: string, roleId: string, groupId: string) => {
        const password = randomBytes(12).toString('base64url');
        const created = await api('POST', '/api/v1/admins', { name, password, grants: [{ roleId, groupId }] });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        const s = await t.fetch(`${t.server.url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password }) });
        return ((await s.json()) as { token: string }).token;
      };
      tokens.operator = await person('op-inside', 'operator', f.inside);
      tokens.auditor = await person('audit-inside', 'auditor', f.inside);
      tokens.installer = await person('install-inside', 'installer', f.inside);
      tokens.subAdmin = await person('admin-inside', 'administrator', f.inside);
      markers = [f.outside, f.devOut, f.taskOut, f.localOut, f.runOutId, f.tokOut, 'out-secret', 'outside-host', 'Outside task', f.dupOut, f.push, f.globalTask, f.ruleOut, 'outside-hook'];
      await t.server.services.events.flush();
    });
    after(async () => {
      await t?.close();
    });

    /** Every admin route, tried with the other subtree's objects. */
    const cases = (): Record<string, Case> => ({
      'GET /api/v1/me': { path: '/api/v1/me', expect: 'self' },
      'GET /api/v1/api-tokens': { path: '/api/v1/api-tokens', expect: 'self' },
      'POST /api/v1/api-tokens': { path: '/api/v1/api-tokens', body: { name: 'mine' }, expect: 'self' },
      'DELETE /api/v1/api-tokens/:id': { path: `/api/v1/api-tokens/${f.mainToken}`, expect: 'denied' },
      'POST /api/v1/me/totp': { path: '/api/v1/me/totp', expect: 'self' },
      'POST /api/v1/me/totp/confirm': { path: '/api/v1/me/totp/confirm', body: { code: '000000' }, expect: 'self' },
      'DELETE /api/v1/me/totp': { path: '/api/v1/me/totp', body: { code: '000000' }, expect: 'self' },
      'PUT /api/v1/me/password': { path: '/api/v1/me/password', body: { newPassword: 'x' }, expect: 'self' },
      'DELETE /api/v1/session': { path: '/api/v1/session', expect: 'self' },
      'GET /api/v1/permissions': { path: '/api/v1/permissions', expect: 'self' },
      'GET /api/v1/products': { path: '/api/v1/products', expect: 'self' },
      'GET /api/v1/roles': { path: '/api/v1/roles', expect: 'self' },
      'GET /api/v1/settings': { path: '/api/v1/settings', expect: 'self' },
      'GET /api/v1/saved-selections': { path: '/api/v1/saved-selections?page=events', expect: 'self' },
      'POST /api/v1/saved-selections': { path: '/api/v1/saved-selections', body: { page: 'events', name: 'mine', query: { severity: 'error' } }, expect: 'self' },
      'DELETE /api/v1/saved-selections/:id': { path: `/api/v1/saved-selections/${f.mainSelection}`, expect: 'denied' },
      'GET /api/v1/repository/signing-key': { path: '/api/v1/repository/signing-key', expect: 'self' },
      'POST /api/v1/roles': { path: '/api/v1/roles', body: { name: 'Mine', permissions: ['read'] }, expect: 'denied' },
      'PATCH /api/v1/roles/:id': { path: `/api/v1/roles/${f.role}`, body: { permissions: ['read', 'admins:write'] }, expect: 'denied' },
      'DELETE /api/v1/roles/:id': { path: `/api/v1/roles/${f.role}`, expect: 'denied' },
      'GET /api/v1/admins': { path: '/api/v1/admins', expect: 'denied' },
      'POST /api/v1/admins': { path: '/api/v1/admins', body: { name: 'sneaky', grants: [{ roleId: 'main-administrator', groupId: 'root' }] }, expect: 'denied' },
      'GET /api/v1/admins/:id': { path: `/api/v1/admins/${f.mainAdmin}`, expect: 'denied' },
      'PATCH /api/v1/admins/:id': { path: `/api/v1/admins/${f.mainAdmin}`, body: { disabled: true }, expect: 'denied' },
      'DELETE /api/v1/admins/:id': { path: `/api/v1/admins/${f.mainAdmin}`, expect: 'denied' },
      'POST /api/v1/admins/:id/password': { path: `/api/v1/admins/${f.mainAdmin}/password`, body: { password: 'a-new-password-1' }, expect: 'denied' },
      'DELETE /api/v1/admins/:id/totp': { path: `/api/v1/admins/${f.mainAdmin}/totp`, expect: 'denied' },
      'GET /api/v1/groups': { path: '/api/v1/groups', expect: 'filtered' },
      'POST /api/v1/groups': { path: '/api/v1/groups', body: { name: 'Under outside', parentId: f.outside }, expect: 'denied' },
      'GET /api/v1/groups/:id': { path: `/api/v1/groups/${f.outside}`, expect: 'denied' },
      'PATCH /api/v1/groups/:id': { path: `/api/v1/groups/${f.outside}`, body: { name: 'Renamed' }, expect: 'denied' },
      'DELETE /api/v1/groups/:id': { path: `/api/v1/groups/${f.outside}`, expect: 'denied' },
      'GET /api/v1/groups/:id/deployments': { path: `/api/v1/groups/${f.outside}/deployments`, expect: 'denied' },
      'PUT /api/v1/groups/:id/deployments/:product': { path: `/api/v1/groups/${f.outside}/deployments/app-out`, body: { action: 'remove' }, expect: 'denied' },
      'DELETE /api/v1/groups/:id/deployments/:product': { path: `/api/v1/groups/${f.outside}/deployments/app-out`, expect: 'denied' },
      'POST /api/v1/groups/:id/deployments/:product/rollout/resume': { path: `/api/v1/groups/${f.outside}/deployments/app-out/rollout/resume`, expect: 'denied' },
      'GET /api/v1/deployments': { path: '/api/v1/deployments', expect: 'filtered' },
      'GET /api/v1/deployments/compliance': { path: '/api/v1/deployments/compliance', expect: 'filtered' },
      'GET /api/v1/devices': { path: '/api/v1/devices', expect: 'filtered' },
      'GET /api/v1/devices/:id': { path: `/api/v1/devices/${f.devOut}`, expect: 'denied' },
      'POST /api/v1/devices/bulk': { path: '/api/v1/devices/bulk', body: { action: 'addTags', deviceIds: [f.devOut], tags: ['sneaky'] }, expect: 'filtered' },
      'GET /api/v1/groups/statuses': { path: '/api/v1/groups/statuses', expect: 'filtered' },
      'PATCH /api/v1/devices/:id': { path: `/api/v1/devices/${f.devOut}`, body: { groupId: f.inside }, expect: 'denied' },
      'DELETE /api/v1/devices/:id': { path: `/api/v1/devices/${f.devOut}`, expect: 'denied' },
      'POST /api/v1/devices/:id/credential/rotate': { path: `/api/v1/devices/${f.devOut}/credential/rotate`, expect: 'denied' },
      'POST /api/v1/devices/:id/credential/revoke': { path: `/api/v1/devices/${f.devOut}/credential/revoke`, expect: 'denied' },
      'POST /api/v1/devices/:id/uninstall': { path: `/api/v1/devices/${f.devOut}/uninstall`, expect: 'denied' },
      'GET /api/v1/devices/:id/tasks': { path: `/api/v1/devices/${f.devOut}/tasks`, expect: 'denied' },
      'GET /api/v1/devices/:id/runs': { path: `/api/v1/devices/${f.devOut}/runs`, expect: 'filtered' },
      'GET /api/v1/device-duplicates': { path: '/api/v1/device-duplicates', expect: 'filtered' },
      'POST /api/v1/device-duplicates/:id/approve': { path: `/api/v1/device-duplicates/${f.dupOut}/approve`, expect: 'denied' },
      'POST /api/v1/device-duplicates/:id/reject': { path: `/api/v1/device-duplicates/${f.dupOut}/reject`, expect: 'denied' },
      'GET /api/v1/enrolment-tokens': { path: '/api/v1/enrolment-tokens', expect: 'filtered' },
      'POST /api/v1/enrolment-tokens': { path: '/api/v1/enrolment-tokens', body: { groupId: f.outside }, expect: 'denied' },
      'POST /api/v1/enrolment-tokens/:id/revoke': { path: `/api/v1/enrolment-tokens/${f.tokOut}/revoke`, expect: 'denied' },
      'POST /api/v1/installers': { path: '/api/v1/installers', body: { groupId: f.outside }, expect: 'denied' },
      'GET /api/v1/installation-packages': { path: '/api/v1/installation-packages', expect: 'filtered' },
      'GET /api/v1/installation-packages/:file': { path: '/api/v1/installation-packages/none.tar.gz', expect: 'denied' },
      'DELETE /api/v1/installation-packages/:file': { path: '/api/v1/installation-packages/none.tar.gz', expect: 'denied' },
      'GET /api/v1/events': { path: '/api/v1/events?limit=1000', expect: 'filtered' },
      'GET /api/v1/event-kinds': { path: '/api/v1/event-kinds?limit=1000', expect: 'filtered' },
      'GET /api/v1/live': { path: '/api/v1/live', expect: 'filtered' },
      'GET /api/v1/summary': { path: '/api/v1/summary', expect: 'filtered' },
      'GET /api/v1/dashboard/monitors': { path: '/api/v1/dashboard/monitors', expect: 'filtered' },
      'GET /api/v1/dashboard/trend': { path: '/api/v1/dashboard/trend?days=30', expect: 'filtered' },
      'GET /api/v1/dashboard/layout': { path: '/api/v1/dashboard/layout', expect: 'self' },
      'PUT /api/v1/dashboard/layout': { path: '/api/v1/dashboard/layout', body: { monitors: ['notSeen'] }, expect: 'self' },
      'DELETE /api/v1/dashboard/layout': { path: '/api/v1/dashboard/layout', expect: 'self' },
      'POST /api/v1/scopes/preview': { path: '/api/v1/scopes/preview', body: { scope: { type: 'group', groupId: f.outside } }, expect: 'denied' },
      'GET /api/v1/push-installs': { path: '/api/v1/push-installs', expect: 'filtered' },
      'POST /api/v1/push-installs': { path: '/api/v1/push-installs', body: { groupId: f.outside, hosts: ['127.0.0.1'], port: 1, username: 'x', password: 'y' }, expect: 'denied' },
      'GET /api/v1/push-installs/:id': { path: `/api/v1/push-installs/${f.push}`, expect: 'denied' },
      'POST /api/v1/push-installs/:id/cancel': { path: `/api/v1/push-installs/${f.push}/cancel`, expect: 'denied' },
      'GET /api/v1/repository/packages': { path: '/api/v1/repository/packages', expect: 'self' },
      'GET /api/v1/repository/packages/:id': { path: `/api/v1/repository/packages/${f.pkg}`, expect: 'self' },
      'GET /api/v1/repository/packages/:id/archive': { path: `/api/v1/repository/packages/${f.pkg}/archive`, expect: 'self' },
      'POST /api/v1/repository/packages': { path: '/api/v1/repository/packages', body: {}, expect: 'denied' },
      'POST /api/v1/repository/packages/:id/promote': { path: `/api/v1/repository/packages/${f.pkg}/promote`, body: { branch: 'previous' }, expect: 'denied' },
      'DELETE /api/v1/repository/packages/:id': { path: `/api/v1/repository/packages/${f.pkg}`, expect: 'denied' },
      'GET /api/v1/runs': { path: '/api/v1/runs?limit=1000', expect: 'filtered' },
      'GET /api/v1/runs/:id': { path: `/api/v1/runs/${f.runOutId}`, expect: 'denied' },
      'GET /api/v1/secrets': { path: '/api/v1/secrets', expect: 'filtered' },
      'PUT /api/v1/secrets/:name': { path: '/api/v1/secrets/out-secret', body: { value: 'taken over' }, expect: 'denied' },
      'DELETE /api/v1/secrets/:name': { path: '/api/v1/secrets/out-secret', expect: 'denied' },
      'GET /api/v1/security/refusals': { path: '/api/v1/security/refusals', expect: 'denied' },
      'GET /api/v1/server-task-types': { path: '/api/v1/server-task-types', expect: 'denied' },
      'GET /api/v1/server-tasks': { path: '/api/v1/server-tasks', expect: 'denied' },
      'POST /api/v1/server-tasks': { path: '/api/v1/server-tasks', body: { name: 'x', type: 'database-maintenance', settings: {}, schedule: { triggers: [{ type: 'on-demand' }] } }, expect: 'denied' },
      'GET /api/v1/server-tasks/:id': { path: `/api/v1/server-tasks/${f.serverTask}`, expect: 'denied' },
      'PATCH /api/v1/server-tasks/:id': { path: `/api/v1/server-tasks/${f.serverTask}`, body: { enabled: false }, expect: 'denied' },
      'DELETE /api/v1/server-tasks/:id': { path: `/api/v1/server-tasks/${f.serverTask}`, expect: 'denied' },
      'POST /api/v1/server-tasks/:id/copy': { path: `/api/v1/server-tasks/${f.serverTask}/copy`, body: {}, expect: 'denied' },
      'POST /api/v1/server-tasks/:id/enable': { path: `/api/v1/server-tasks/${f.serverTask}/enable`, expect: 'denied' },
      'POST /api/v1/server-tasks/:id/disable': { path: `/api/v1/server-tasks/${f.serverTask}/disable`, expect: 'denied' },
      'POST /api/v1/server-tasks/:id/run': { path: `/api/v1/server-tasks/${f.serverTask}/run`, expect: 'denied' },
      'POST /api/v1/server-tasks/:id/stop': { path: `/api/v1/server-tasks/${f.serverTask}/stop`, expect: 'denied' },
      'GET /api/v1/server-tasks/:id/runs': { path: `/api/v1/server-tasks/${f.serverTask}/runs`, expect: 'denied' },
      'GET /api/v1/server-tasks/export': { path: '/api/v1/server-tasks/export', expect: 'denied' },
      'POST /api/v1/server-tasks/import': { path: '/api/v1/server-tasks/import', body: { format: 'garrison.server-tasks', version: 1, tasks: [] }, expect: 'denied' },
      'GET /api/v1/server-task-runs': { path: '/api/v1/server-task-runs', expect: 'denied' },
      'GET /api/v1/server-task-runs/:id': { path: `/api/v1/server-task-runs/${f.serverTaskRun}`, expect: 'denied' },
      'PATCH /api/v1/settings': { path: '/api/v1/settings', body: { eventRetentionDays: 1 }, expect: 'denied' },
      'GET /api/v1/settings/oidc': { path: '/api/v1/settings/oidc', expect: 'denied' },
      'PUT /api/v1/settings/oidc': { path: '/api/v1/settings/oidc', body: { issuer: 'https://idp.invalid', clientId: 'x', enabled: false }, expect: 'denied' },
      'GET /api/v1/tasks': { path: '/api/v1/tasks', expect: 'filtered' },
      'POST /api/v1/tasks': { path: '/api/v1/tasks', body: { name: 'x', type: 'script', settings: { command: 'true' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: f.outside } }, expect: 'denied' },
      'GET /api/v1/tasks/export': { path: '/api/v1/tasks/export', expect: 'filtered' },
      'POST /api/v1/tasks/import': {
        path: '/api/v1/tasks/import',
        body: { format: 'garrison.tasks', version: 1, exportedAt: new Date().toISOString(), tasks: [{ name: 'imp', product: 'garrison', type: 'script', settings: { command: 'true' }, schedule: { triggers: [{ type: 'on-demand' }] }, enabled: true, scope: { type: 'group', groupPath: 'My Organization/Outside' } }] },
        expect: 'denied',
        alsoDenied: [422],
      },
      'GET /api/v1/tasks/:id': { path: `/api/v1/tasks/${f.taskOut}`, expect: 'denied' },
      'PATCH /api/v1/tasks/:id': { path: `/api/v1/tasks/${f.taskOut}`, body: { name: 'renamed' }, expect: 'denied' },
      'DELETE /api/v1/tasks/:id': { path: `/api/v1/tasks/${f.taskOut}`, expect: 'denied' },
      'POST /api/v1/tasks/:id/copy': { path: `/api/v1/tasks/${f.taskOut}/copy`, body: {}, expect: 'denied' },
      'POST /api/v1/tasks/:id/enable': { path: `/api/v1/tasks/${f.taskOut}/enable`, expect: 'denied' },
      'POST /api/v1/tasks/:id/disable': { path: `/api/v1/tasks/${f.taskOut}/disable`, expect: 'denied' },
      'POST /api/v1/tasks/:id/run': { path: `/api/v1/tasks/${f.globalTask}/run`, body: {}, expect: 'denied' },
      'POST /api/v1/tasks/:id/stop': { path: `/api/v1/tasks/${f.taskOut}/stop`, expect: 'denied' },
      'GET /api/v1/tasks/:id/progress': { path: `/api/v1/tasks/${f.taskOut}/progress`, expect: 'denied' },
      'GET /api/v1/tasks/:id/run-requests/:requestId/progress': { path: `/api/v1/tasks/${f.taskOut}/run-requests/${f.runOut}/progress`, expect: 'denied' },
      'GET /api/v1/tasks/:id/results': { path: `/api/v1/tasks/${f.localOut}/results`, expect: 'denied' },
      'GET /api/v1/tasks/:id/targets': { path: `/api/v1/tasks/${f.globalTask}/targets`, expect: 'denied' },
      'GET /api/v1/tasks/:id/results/export': { path: `/api/v1/tasks/${f.localOut}/results/export`, expect: 'denied' },
      'POST /api/v1/schedules/preview': { path: '/api/v1/schedules/preview', body: { schedule: { triggers: [{ type: 'daily', time: '03:00' }] } }, expect: 'self' },
      // Policies belong to no group (every reader sees them); changing one needs policies:write on every group it is assigned to.
      'GET /api/v1/policy-types': { path: '/api/v1/policy-types', expect: 'self' },
      'GET /api/v1/policies': { path: '/api/v1/policies', expect: 'self' },
      'POST /api/v1/policies': { path: '/api/v1/policies', body: { name: 'Mine', product: 'garrison' }, expect: 'self' },
      'POST /api/v1/policies/import': { path: '/api/v1/policies/import', body: { format: 'garrison-policy', formatVersion: 1, policy: { name: 'Imported', product: 'garrison', settings: {}, locked: [], profiles: [] } }, expect: 'self' },
      'GET /api/v1/policies/:id': { path: `/api/v1/policies/${f.policyOut}`, expect: 'self' },
      'PATCH /api/v1/policies/:id': { path: `/api/v1/policies/${f.policyOut}`, body: { revision: 1, settings: { checkInIntervalMinutes: 1 } }, expect: 'denied' },
      'DELETE /api/v1/policies/:id': { path: `/api/v1/policies/${f.policyOut}`, expect: 'denied' },
      'POST /api/v1/policies/:id/copy': { path: `/api/v1/policies/${f.policyOut}/copy`, body: { name: 'Copied' }, expect: 'self' },
      'GET /api/v1/policies/:id/revisions': { path: `/api/v1/policies/${f.policyOut}/revisions`, expect: 'self' },
      'GET /api/v1/policies/:id/export': { path: `/api/v1/policies/${f.policyOut}/export`, expect: 'self' },
      'POST /api/v1/policies/:id/preview': { path: `/api/v1/policies/${f.policyOut}/preview`, body: { settings: { checkInIntervalMinutes: 3 } }, expect: 'filtered' },
      'GET /api/v1/policies/:id/compliance': { path: `/api/v1/policies/${f.policyOut}/compliance`, expect: 'filtered' },
      'GET /api/v1/groups/:id/policies': { path: `/api/v1/groups/${f.outside}/policies`, expect: 'denied' },
      'PUT /api/v1/groups/:id/policies/:product': { path: `/api/v1/groups/${f.outside}/policies/garrison`, body: { policyId: null, blockInheritance: true }, expect: 'denied' },
      'DELETE /api/v1/groups/:id/policies/:product': { path: `/api/v1/groups/${f.outside}/policies/garrison`, expect: 'denied' },
      'POST /api/v1/groups/:id/policies/:product/preview': { path: `/api/v1/groups/${f.outside}/policies/garrison/preview`, body: { policyId: null, blockInheritance: true }, expect: 'denied' },
      'GET /api/v1/devices/:id/policy': { path: `/api/v1/devices/${f.devOut}/policy`, expect: 'denied' },
      'GET /api/v1/notifications/rules': { path: '/api/v1/notifications/rules', expect: 'filtered' },
      'POST /api/v1/notifications/rules': { path: '/api/v1/notifications/rules', body: { name: 'sneaky', groupId: f.outside, kinds: ['run.'], actions: { email: { to: ['a@example.com'] } } }, expect: 'denied' },
      'GET /api/v1/notifications/rules/:id': { path: `/api/v1/notifications/rules/${f.ruleOut}`, expect: 'denied' },
      'PATCH /api/v1/notifications/rules/:id': { path: `/api/v1/notifications/rules/${f.ruleOut}`, body: { enabled: false }, expect: 'denied' },
      'DELETE /api/v1/notifications/rules/:id': { path: `/api/v1/notifications/rules/${f.ruleOut}`, expect: 'denied' },
      'POST /api/v1/notifications/rules/:id/test': { path: `/api/v1/notifications/rules/${f.ruleOut}/test`, expect: 'denied' },
      'GET /api/v1/notifications/deliveries': { path: '/api/v1/notifications/deliveries', expect: 'filtered' },
      'GET /api/v1/notifications/smtp': { path: '/api/v1/notifications/smtp', expect: 'denied' },
      'PUT /api/v1/notifications/smtp': { path: '/api/v1/notifications/smtp', body: { host: 'mail.example.com', port: 25, security: 'none', from: 'a@example.com' }, expect: 'denied' },
    });

    it('every route declares who may call it, and every administrator route has a case here', () => {
      const routes = t.server.http.declaredRoutes.filter((r) => r.method !== 'HEAD');
      assert.ok(routes.length > 100);
      for (const r of routes) assert.ok(['public', 'device', 'admin'].includes(r.access.kind), `${r.method} ${r.url}`);
      const admin = routes.filter((r) => r.access.kind === 'admin').map((r) => `${r.method} ${r.url}`);
      const table = cases();
      assert.deepEqual(admin.filter((k) => !table[k]), [], 'administrator routes without a case');
      assert.deepEqual(Object.keys(table).filter((k) => !admin.includes(k)), [], 'cases for routes that do not exist');
      // Device routes refuse administrators' tokens and anonymous callers alike.
      for (const r of routes.filter((x) => x.access.kind === 'device')) assert.ok(r.url.startsWith('/agent/'), r.url);
    });

    it('disguised paths reach the same decision: no token, no data', async () => {
      const raw = (path: string) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const s = connect({ host: '127.0.0.1', port: t.server.port, ca: t.server.tls!.caPem, servername: 'localhost' }, () => s.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`));
          let data = '';
          s.on('data', (d) => (data += d.toString()));
          s.on('end', () => resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(data)?.[1] ?? 0), body: data.slice(data.indexOf('\r\n\r\n') + 4) }));
          s.on('error', reject);
        });
      for (const p of ['/api/v1/devices', '/api/v1/%64evices', '/%61pi/v1/devices', '/api/v1/devices/', '/API/v1/devices', '/api/v1/devices?x=/api/v1/health', '/api/v1/health/../devices', '/api/v1/./devices', '//api/v1/devices', '/api/v1/devices;/api/v1/health', `/api/v1/devices/${f.devOut}%2f..%2f..%2fhealth`]) {
        const r = await raw(p);
        assert.ok([400, 401, 404].includes(r.status), `${p}: HTTP ${r.status}`);
        assert.doesNotMatch(r.body, /outside-host|inside-host/, p);
      }
      // A device credential is not an administrator's, and an API token is not a device's.
      const dev = await hostileDevice(t, f.inside, 'cred-mixer');
      assert.equal((await call(dev.credential, 'GET', '/api/v1/devices')).status, 401);
      assert.equal((await agentPost(t, t.token, '/agent/v1/check-in', { type: 'check-in', inventory: inventory('x') })).status, 401);
    });

    for (const who of ['operator', 'auditor', 'installer', 'subAdmin'] as const) {
      it(`an administrator scoped to one subtree (${who}) reaches nothing of another through any route`, async () => {
        const problems: string[] = [];
        for (const [key, c] of Object.entries(cases())) {
          const method = key.split(' ')[0]!;
          if (c.path === '/api/v1/live') {
            const res = await t.fetch(t.server.url + c.path, { headers: { authorization: `Bearer ${tokens[who]}` } });
            if (res.status !== 200) problems.push(`${key}: HTTP ${res.status}`);
            await res.body?.cancel();
            continue;
          }
          if (key === 'DELETE /api/v1/session') continue; // would end the session the test uses
          const r = await call(tokens[who], method, c.path, c.body);
          if (r.status >= 500) problems.push(`${key}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
          if (r.status >= 400) {
            const code = (r.body as { error?: { code?: string } } | null)?.error?.code;
            if (!code || !(code in errorCodeInfo)) problems.push(`${key}: error without a code from the registry: ${r.text.slice(0, 200)}`);
          }
          if (c.expect === 'denied' && ![403, 404, ...(c.alsoDenied ?? [])].includes(r.status)) problems.push(`${key}: expected 403/404, got ${r.status} ${r.text.slice(0, 200)}`);
          if (c.expect === 'filtered') {
            if (r.status !== 200) problems.push(`${key}: expected 200, got ${r.status} ${r.text.slice(0, 200)}`);
            const leaked = markers.filter((m) => r.text.includes(m));
            if (leaked.length) problems.push(`${key}: shows ${leaked.join(', ')}`);
          }
        }
        assert.deepEqual(problems, []);
        // Nothing changed outside.
        assert.equal((await t.api<Task>('GET', `/api/v1/tasks/${f.taskOut}`)).body.name, 'Outside task');
        assert.equal((await t.api<{ disabled: boolean }>('GET', `/api/v1/admins/${f.mainAdmin}`)).body.disabled, false);
        assert.equal((await t.api<{ groupId: string }>('GET', `/api/v1/devices/${f.devOut}`)).body.groupId, f.outside);
        const pol = (await t.api<{ revision: number; assignedTo: { groupId: string }[] }>('GET', `/api/v1/policies/${f.policyOut}`)).body;
        assert.equal(pol.revision, 1);
        assert.deepEqual(pol.assignedTo.map((a) => a.groupId), [f.outside]);
      });
    }

    it('inside its subtree each role does exactly what it grants', async () => {
      const { operator, auditor, installer, subAdmin } = tokens;
      // Everyone sees the subtree.
      for (const tok of [operator, auditor, installer, subAdmin]) {
        const devices = ((await call(tok, 'GET', '/api/v1/devices')).body as { items: { id: string }[] }).items;
        assert.deepEqual(devices.map((d) => d.id).sort(), [f.devIn, (await t.api<{ items: { id: string; name: string }[] }>('GET', '/api/v1/devices')).body.items.find((d) => d.name === 'cred-mixer')?.id].filter(Boolean).sort());
        assert.equal((await call(tok, 'GET', `/api/v1/tasks/${f.taskIn}`)).status, 200);
      }
      // Operator: runs and stops, changes nothing.
      assert.equal((await call(operator, 'POST', `/api/v1/tasks/${f.taskIn}/run`, {})).status, 202);
      assert.equal((await call(operator, 'POST', `/api/v1/tasks/${f.taskIn}/stop`)).status, 200);
      assert.equal((await call(operator, 'PATCH', `/api/v1/tasks/${f.taskIn}`, { name: 'no' })).status, 403);
      assert.equal((await call(operator, 'POST', '/api/v1/enrolment-tokens', { groupId: f.inside })).status, 403);
      // Auditor: reads only, including the audit trail of its subtree.
      assert.equal((await call(auditor, 'POST', `/api/v1/tasks/${f.taskIn}/run`, {})).status, 403);
      const audit = ((await call(auditor, 'GET', '/api/v1/events?kind=audit.task.run-now')).body as { items: { taskId: string; via: string; actor: string }[] }).items;
      assert.ok(audit.some((e) => e.taskId === f.taskIn && e.actor === 'op-inside' && e.via === 'console'), JSON.stringify(audit));
      // Installer: enrols into its subtree, nothing else.
      assert.equal((await call(installer, 'POST', '/api/v1/enrolment-tokens', { groupId: f.insideSub })).status, 201);
      assert.equal((await call(installer, 'POST', `/api/v1/tasks/${f.taskIn}/run`, {})).status, 403);
      // Administrator of the subtree: changes it, but not server-wide things, and uses only secrets it may.
      const mk = (scope: unknown, settings: unknown = { command: 'true' }) => call(subAdmin, 'POST', '/api/v1/tasks', { name: `sub ${randomBytes(3).toString('hex')}`, type: 'script', settings, schedule: { triggers: [{ type: 'on-demand' }] }, scope });
      assert.equal((await mk({ type: 'group', groupId: f.insideSub })).status, 201);
      assert.equal((await mk({ type: 'global', selection: { tags: ['x'] } })).status, 403);
      for (const secret of ['out-secret', 'root-secret']) {
        const r = await mk({ type: 'group', groupId: f.inside }, { shell: 'sh', script: 'env', env: { S: { $secret: secret } } });
        assert.equal((r.body as { error: { code: string } }).error.code, 'SECRET_REFERENCE_REFUSED', secret);
      }
      assert.equal((await call(subAdmin, 'PUT', '/api/v1/secrets/inside-secret', { value: 'inside-value', groupId: f.inside })).status, 204);
      assert.equal((await mk({ type: 'group', groupId: f.insideSub }, { shell: 'sh', script: 'env', env: { S: { $secret: 'inside-secret' } } })).status, 201);
      assert.equal((await call(subAdmin, 'POST', '/api/v1/groups', { name: 'New sub', parentId: f.inside })).status, 201);
      assert.equal((await call(subAdmin, 'POST', '/api/v1/groups', { name: 'New top' })).status, 403);
      assert.equal((await call(subAdmin, 'PATCH', `/api/v1/groups/${f.insideSub}`, { parentId: f.outside })).status, 404);
      // A task of the root is seen (it applies here) but not changed or run.
      const rootTask = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'Root task', type: 'script', settings: { command: 'true' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: 'root' } })).body;
      assert.equal((await call(operator, 'GET', `/api/v1/tasks/${rootTask.id}`)).status, 200);
      assert.equal((await call(operator, 'POST', `/api/v1/tasks/${rootTask.id}/run`, {})).status, 403);
      const progress = (await call(operator, 'GET', `/api/v1/tasks/${rootTask.id}/progress`)).body as { targets: number };
      const visible = ((await call(operator, 'GET', '/api/v1/devices')).body as { items: unknown[] }).items.length;
      const all = (await t.api<{ items: unknown[] }>('GET', '/api/v1/devices')).body.items.length;
      assert.ok(visible < all);
      assert.equal(progress.targets, visible, 'progress counts only its own devices');
      // Grants follow the tree: a group created under a granted one is covered at once.
      const newSub = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Later', parentId: f.inside })).body.id;
      assert.equal((await call(auditor, 'GET', `/api/v1/groups/${newSub}`)).status, 200);
    });

    it('the last administrator who can manage administrators cannot be locked out; a disabled administrator is out at once', async () => {
      const me = f.mainAdmin;
      const r = await t.api<{ error: { code: string } }>('PATCH', `/api/v1/admins/${me}`, { grants: [{ roleId: 'operator', groupId: 'root' }] });
      assert.equal(r.body.error.code, 'CONFLICT');
      assert.equal((await t.api<{ error: { code: string } }>('DELETE', `/api/v1/admins/${me}`)).body.error.code, 'CONFLICT');
      assert.equal((await t.api('GET', '/api/v1/me')).status, 200);
      const admins = (await t.api<{ items: { id: string; name: string }[] }>('GET', '/api/v1/admins')).body.items;
      const op = admins.find((a) => a.name === 'op-inside')!;
      assert.equal((await call(tokens.operator, 'GET', '/api/v1/me')).status, 200);
      assert.equal((await t.api('PATCH', `/api/v1/admins/${op.id}`, { disabled: true })).status, 200);
      assert.equal((await call(tokens.operator, 'GET', '/api/v1/me')).status, 401);
      const ev = (await t.api<{ items: { kind: string; actor: string; via: string; address: string }[] }>('GET', '/api/v1/events?kind=audit.admin.disabled')).body.items[0]!;
      assert.equal(ev.actor, 'admin');
      assert.equal(ev.via, 'api-token');
      assert.ok(ev.address);
    });
  });
}
