/**
 * The device boundary (issue 12): what a device holding one valid credential can try, through
 * a real agent and its local CLI, or as a raw client over real HTTP and a real WebSocket.
 * Each attack here succeeded before the boundary was closed.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { AGENT_CHECK_IN_PATH, AGENT_CREDENTIAL_PATH, AGENT_PACKAGES_PATH, AGENT_REPORTS_PATH, type Task } from '@garrison/protocol';
import { agentCli, dbKinds, startAgent, startTestServer, waitFor, type AgentProcess, type TestServer } from './helpers.ts';
import { agentPost, hostileDevice, inventory, nextOf, openSocket, report, signRotation } from './support/raw-agent.ts';
import { buildArchive, manifest } from './package-fixtures.ts';

const SECRET_VALUE = 'Vault-Value-9f3b2c77aa';
const onDemand = { triggers: [{ type: 'on-demand' }] };

for (const kind of dbKinds) {
  describe(`device boundary (${kind.name})`, () => {
    let t: TestServer;
    let groupA: string;
    let groupB: string;
    let agent: AgentProcess & { deviceId: string };
    before(async () => {
      t = await startTestServer(kind);
      groupA = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Boundary A' })).body.id;
      groupB = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Boundary B' })).body.id;
      assert.equal((await t.api('PUT', '/api/v1/secrets/vault-pass', { value: SECRET_VALUE })).status, 204);
      agent = await startAgent(t, groupA, 'boundary-agent');
    });
    after(async () => {
      await agent?.stop();
      await t?.close();
    });
    const serverTask = async (id: string) => (await t.api<Task>('GET', `/api/v1/tasks/${id}`)).body;
    const refusals = async () => (await t.api<{ byCode: Record<string, number>; devices: { deviceId: string; byCode: Record<string, number> }[] }>('GET', '/api/v1/security/refusals')).body;

    it('a device cannot make the server resolve a secret for it: a local task that names one is refused, through the agent CLI and raw', async () => {
      const created = await agentCli(agent.stateDir, [
        'task', 'create', '--name', 'steal', '--schedule', JSON.stringify(onDemand),
        '--settings', JSON.stringify({ shell: 'sh', script: 'echo "$X"', env: { X: { $secret: 'vault-pass' } } }), '--json',
      ]);
      assert.equal(created.code, 0, created.stderr);
      const rejected = await waitFor(async () => (await t.api<{ items: { kind: string; message: string }[] }>('GET', `/api/v1/events?deviceId=${agent.deviceId}&kind=task.local-change-rejected`)).body.items[0], { what: 'the local change rejected', output: agent.output });
      assert.match(rejected.message, /SECRET_REFERENCE_REFUSED/);
      assert.equal((await t.api<{ items: Task[] }>('GET', '/api/v1/tasks?limit=1000')).body.items.filter((x) => x.name === 'steal').length, 0);
      // Raw: a check-in carrying a new local task with a reference gets it rejected, and no value comes back.
      const cred = JSON.parse(await readFile(path.join(agent.stateDir, 'credential.json'), 'utf8')) as { credential: string };
      const raw = await agentPost<{ localResolutions: { outcome: string; reason: string }[] }>(t, cred.credential, AGENT_CHECK_IN_PATH, {
        type: 'check-in',
        inventory: inventory('boundary-agent'),
        localChanges: [{ taskId: 'stolen-1', baseRevision: null, changedAt: new Date().toISOString(), task: { name: 'steal2', product: 'garrison', type: 'script', settings: { shell: 'sh', script: 'env', env: { X: { $secret: 'vault-pass' } } }, schedule: onDemand, enabled: true } }],
      });
      assert.equal(raw.status, 200);
      assert.equal(raw.body.localResolutions[0]!.outcome, 'rejected');
      assert.match(raw.body.localResolutions[0]!.reason, /SECRET_REFERENCE_REFUSED/);
      assert.doesNotMatch(JSON.stringify(raw.body), new RegExp(SECRET_VALUE));
      assert.ok(((await refusals()).byCode.SECRET_REFERENCE_REFUSED ?? 0) >= 1);
    });

    it("a reference the administrator set stays a reference through the device's edits; the value is nowhere but on the agent", async () => {
      const created = await t.api<Task>('POST', '/api/v1/tasks', {
        name: 'uses vault',
        type: 'script',
        // The run proves the value reached the device by its hash, without the value in any setting.
        settings: { shell: 'sh', script: 'printf %s "$X" | sha256sum', env: { X: { $secret: 'vault-pass' }, EXPECTED: 'not-the-value' } },
        schedule: onDemand,
        scope: { type: 'local', deviceId: agent.deviceId },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const id = created.body.id;
      await waitFor(async () => (await agentCli(agent.stateDir, ['task', 'list', '--json'])).stdout.includes(id), { what: 'the task on the agent', output: agent.output });
      // The device's user sees the reference, never the value.
      const listed = (await agentCli(agent.stateDir, ['task', 'list', '--json'])).stdout;
      assert.match(listed, /"\$secret": ?"vault-pass"/);
      assert.doesNotMatch(listed, new RegExp(SECRET_VALUE));
      // An edit on the device goes back with the reference.
      assert.equal((await agentCli(agent.stateDir, ['task', 'set', id, '--name', 'uses vault (renamed on the device)'])).code, 0);
      await waitFor(async () => (await serverTask(id)).name === 'uses vault (renamed on the device)', { what: 'the device edit applied', output: agent.output });
      assert.deepEqual((await serverTask(id)).settings.env, { X: { $secret: 'vault-pass' }, EXPECTED: 'not-the-value' });
      // Raw: a device that sends the value in place of the reference (an old agent) has it put back as the reference.
      const cred = JSON.parse(await readFile(path.join(agent.stateDir, 'credential.json'), 'utf8')) as { credential: string };
      const base = await serverTask(id);
      const change = (settings: Record<string, unknown>, name: string) => ({
        type: 'check-in',
        inventory: inventory('boundary-agent'),
        localChanges: [{ taskId: id, baseRevision: base.revision, changedAt: new Date().toISOString(), task: { name, product: 'garrison', type: 'script', settings, schedule: onDemand, enabled: true } }],
      });
      const valueBack = await agentPost<{ localResolutions: { outcome: string; revision: number }[] }>(t, cred.credential, AGENT_CHECK_IN_PATH, change({ ...base.settings, env: { X: SECRET_VALUE, EXPECTED: 'x' } }, 'value sent back'));
      assert.equal(valueBack.body.localResolutions[0]!.outcome, 'applied');
      assert.deepEqual((await serverTask(id)).settings.env, { X: { $secret: 'vault-pass' }, EXPECTED: 'x' });
      // The value anywhere else, or another secret's reference, is refused.
      const again = await serverTask(id);
      const change2 = (settings: Record<string, unknown>) => ({ ...change(settings, 'x'), localChanges: [{ ...change(settings, 'x').localChanges[0]!, baseRevision: again.revision }] });
      for (const settings of [
        { ...again.settings, script: `echo ${SECRET_VALUE}` },
        { ...again.settings, env: { X: { $secret: 'other-secret' }, EXPECTED: 'x' } },
        { ...again.settings, env: { X: { $secret: 'vault-pass' }, Y: { $secret: 'vault-pass' } } },
      ]) {
        const r = await agentPost<{ localResolutions: { outcome: string; reason: string }[] }>(t, cred.credential, AGENT_CHECK_IN_PATH, change2(settings));
        assert.equal(r.body.localResolutions[0]!.outcome, 'rejected', JSON.stringify(settings));
      }
      assert.deepEqual((await serverTask(id)).settings.env, { X: { $secret: 'vault-pass' }, EXPECTED: 'x' });
      // It still runs with the value on the device.
      const run = await t.api<{ requestId: string }>('POST', `/api/v1/tasks/${id}/run`, {});
      const done = await waitFor(async () => (await t.api<{ items: { state: string; outputTail: string | null }[] }>('GET', `/api/v1/runs?requestId=${run.body.requestId}`)).body.items.find((r) => r.state === 'succeeded'), { what: 'the run', output: agent.output });
      assert.match(done.outputTail ?? '', new RegExp(createHash('sha256').update(SECRET_VALUE).digest('hex')));

      // The value is nowhere: database (and its WAL), exports, events, backups.
      const exported = await t.api('GET', '/api/v1/tasks/export');
      assert.doesNotMatch(JSON.stringify(exported.body), new RegExp(SECRET_VALUE));
      const events = await t.api<string>('GET', '/api/v1/events?format=jsonl');
      assert.doesNotMatch(events.body, new RegExp(SECRET_VALUE));
      await t.server.services.events.flush();
      if (kind.name === 'sqlite') {
        for (const f of ['garrison.db', 'garrison.db-wal']) {
          const file = path.join(t.dataDir, f);
          if (existsSync(file)) assert.equal((await readFile(file)).includes(Buffer.from(SECRET_VALUE)), false, `${f} holds the value`);
        }
      }
      const backup = (await t.api<{ items: { id: string; name: string }[] }>('GET', '/api/v1/server-tasks')).body.items.find((x) => x.name === 'Backup of server data')!;
      const started = await t.api<{ id: string }>('POST', `/api/v1/server-tasks/${backup.id}/run`);
      await waitFor(async () => /^succeeded/.test((await t.api<{ state: string }>('GET', `/api/v1/server-task-runs/${started.body.id}`)).body.state), { what: 'the backup', timeoutMs: 60_000 });
      const dir = path.join(t.dataDir, 'backups');
      const archive = (await readdir(dir)).find((f) => f.endsWith('.tar.gz'))!;
      assert.equal(gunzipSync(await readFile(path.join(dir, archive))).includes(Buffer.from(SECRET_VALUE)), false, 'the backup holds the value');
    });

    it('a device reports only for runs made for it and tasks of its own; events of other tasks are refused and counted', async () => {
      const hostile = await hostileDevice(t, groupB, 'hostile-reporter');
      const taskA = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'A only', type: 'script', settings: { command: 'true' }, schedule: onDemand, scope: { type: 'group', groupId: groupA } })).body;
      const taskB = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'B own', type: 'script', settings: { command: 'true' }, schedule: onDemand, scope: { type: 'group', groupId: groupB } })).body;
      const runA = await t.api<{ requestId: string }>('POST', `/api/v1/tasks/${taskA.id}/run`, {});
      const aRun = await waitFor(async () => (await t.api<{ items: { id: string; state: string }[] }>('GET', `/api/v1/runs?requestId=${runA.body.requestId}`)).body.items.find((r) => r.state === 'succeeded'), { what: "A's run", output: agent.output });
      const s = await openSocket(t, hostile.credential);
      const detection = [{ severity: 'error', kind: 'detection', message: 'forged detection', data: { path: '/etc/passwd' } }];
      s.send({ type: 'reports', id: 1, reports: [
        report(aRun.id, taskA.id, { seq: 99, events: detection }),
        report('forged-run-1', taskA.id, { events: detection }),
        report('own-run-1', taskB.id, { events: [{ severity: 'info', kind: 'note', message: 'mine' }] }),
      ] });
      const ack = (await nextOf(s, 'ack')) as { runIds: string[]; rejected: { runId: string; code: string }[] };
      assert.deepEqual(ack.runIds, ['own-run-1']);
      assert.deepEqual(ack.rejected.map((r) => [r.runId, r.code]).sort(), [[aRun.id, 'NOT_ASSIGNED'], ['forged-run-1', 'NOT_ASSIGNED']]);
      // A run the server made for the hostile device, reported under another task, is refused too.
      const runB = await t.api<{ requestId: string }>('POST', `/api/v1/tasks/${taskB.id}/run`, {});
      const pendingB = (await t.api<{ items: { id: string }[] }>('GET', `/api/v1/runs?requestId=${runB.body.requestId}`)).body.items[0]!;
      s.send({ type: 'reports', id: 2, reports: [report(pendingB.id, taskA.id)] });
      assert.equal(((await nextOf(s, 'ack')) as { rejected: { code: string }[] }).rejected[0]!.code, 'NOT_ASSIGNED');
      s.ws.close();
      await t.server.services.events.flush();
      const forged = (await t.api<{ items: { message: string; deviceId: string }[] }>('GET', `/api/v1/events?taskId=${taskA.id}`)).body.items.filter((e) => e.deviceId === hostile.deviceId);
      assert.deepEqual(forged, []);
      assert.equal((await t.api<{ state: string }>('GET', `/api/v1/runs/${aRun.id}`)).body.state, 'succeeded');
      const mine = (await refusals()).devices.find((d) => d.deviceId === hostile.deviceId);
      assert.equal(mine?.byCode.NOT_ASSIGNED, 3);
    });

    it('a credential seen from other machines makes pending duplicates, bounded, never devices; revoking it rejects them', async () => {
      const hostile = await hostileDevice(t, groupB, 'hostile-cloner');
      const devicesBefore = (await t.api<{ items: unknown[] }>('GET', '/api/v1/devices')).body.items.length;
      const checkIn = (identity: string) => agentPost<{ identity?: { action: string }; error?: { code: string } }>(t, hostile.credential, AGENT_CHECK_IN_PATH, { type: 'check-in', inventory: inventory('clone'), machineIdentity: identity });
      assert.equal((await checkIn('a'.repeat(64))).status, 200);
      const outcomes: string[] = [];
      for (let i = 0; i < 25; i++) {
        const r = await checkIn(randomBytes(32).toString('hex'));
        outcomes.push(r.status === 200 ? r.body.identity!.action : r.body.error!.code);
      }
      assert.equal(outcomes.filter((o) => o === 'quarantined').length, 20);
      assert.equal(outcomes.filter((o) => o === 'DEVICE_QUARANTINED').length, 5);
      assert.equal((await t.api<{ items: unknown[] }>('GET', '/api/v1/devices')).body.items.length, devicesBefore);
      const pending = (await t.api<{ items: { deviceId: string }[] }>('GET', '/api/v1/device-duplicates?state=pending')).body.items.filter((d) => d.deviceId === hostile.deviceId);
      assert.equal(pending.length, 20);
      // A quarantined machine's reports are not taken.
      const q = await agentPost<{ error: { code: string } }>(t, hostile.credential, AGENT_REPORTS_PATH, { type: 'reports', reports: [report('q-1', 'x')] }, { 'x-garrison-machine-identity': 'b'.repeat(64) });
      assert.equal(q.body.error.code, 'DEVICE_QUARANTINED');
      assert.equal((await t.api('POST', `/api/v1/devices/${hostile.deviceId}/credential/revoke`)).status, 200);
      assert.equal((await t.api<{ items: unknown[] }>('GET', '/api/v1/device-duplicates?state=pending')).body.items.filter((d) => (d as { deviceId: string }).deviceId === hostile.deviceId).length, 0);
    });

    it('re-registering a credential needs the device key and the challenge; a rotation closes the connections of the old secret at once', async () => {
      const hostile = await hostileDevice(t, groupB, 'hostile-rotator');
      const secret = randomBytes(32).toString('base64url');
      const attempt = (challenge: string, signature: string) => agentPost<{ error?: { code: string } }>(t, hostile.credential, AGENT_CREDENTIAL_PATH, { secret, challenge, signature });
      // Not asked for: refused, even well signed.
      assert.equal((await attempt('c'.repeat(43), signRotation(hostile.key, hostile.deviceId, 'c'.repeat(43), secret))).body.error?.code, 'CREDENTIAL_PROOF_INVALID');
      assert.equal((await t.api('POST', `/api/v1/devices/${hostile.deviceId}/credential/rotate`)).status, 200);
      const ci = await agentPost<{ identity: { action: string; challenge: string } }>(t, hostile.credential, AGENT_CHECK_IN_PATH, { type: 'check-in', inventory: inventory('hostile-rotator') });
      const challenge = ci.body.identity.challenge;
      assert.equal(ci.body.identity.action, 'rotate-credential');
      // Someone holding the bearer credential but not the device key.
      const thief = createPrivateKey(generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }));
      assert.equal((await attempt(challenge, signRotation(thief, hostile.deviceId, challenge, secret))).body.error?.code, 'CREDENTIAL_PROOF_INVALID');
      assert.equal((await attempt('d'.repeat(43), signRotation(hostile.key, hostile.deviceId, 'd'.repeat(43), secret))).body.error?.code, 'CREDENTIAL_PROOF_INVALID');
      // A connection opened with the old secret, then the device rotates and uses the new one.
      const old = await openSocket(t, hostile.credential);
      assert.equal((await attempt(challenge, signRotation(hostile.key, hostile.deviceId, challenge, secret))).status, 200);
      const next = `gdc.${hostile.deviceId}.${secret}`;
      assert.equal((await agentPost(t, next, AGENT_CHECK_IN_PATH, { type: 'check-in', inventory: inventory('hostile-rotator') })).status, 200);
      assert.equal(await old.closed, 4001);
      assert.equal((await agentPost<{ error: { code: string } }>(t, hostile.credential, AGENT_CHECK_IN_PATH, { type: 'check-in', inventory: inventory('x') })).body.error.code, 'DEVICE_CREDENTIAL_INVALID');
      // The challenge was single-use.
      assert.equal((await agentPost<{ error?: { code: string } }>(t, next, AGENT_CREDENTIAL_PATH, { secret: randomBytes(32).toString('base64url'), challenge, signature: signRotation(hostile.key, hostile.deviceId, challenge, secret) })).body.error?.code, 'CREDENTIAL_PROOF_INVALID');
    });

    it("a device downloads only packages its deployment plan names", async () => {
      const up = await t.fetch(`${t.server.url}/api/v1/repository/packages`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: await readFile(await buildArchive(manifest('boundary-app', '1.0.0'))) });
      assert.equal(up.status, 201);
      const pkg = (await up.json()) as { id: string };
      const assigned = await t.api('PUT', `/api/v1/groups/${groupA}/deployments/boundary-app`, { branch: 'current' });
      assert.equal(assigned.status, 200, JSON.stringify(assigned.body));
      const hostile = await hostileDevice(t, groupB, 'hostile-downloader');
      const get = (credential: string) => t.fetch(`${t.server.url}${AGENT_PACKAGES_PATH}/${pkg.id}`, { headers: { authorization: `Bearer ${credential}` } });
      // Claiming to have it installed opens nothing: the product is not one of its deployments.
      assert.equal((await agentPost(t, hostile.credential, AGENT_CHECK_IN_PATH, { type: 'check-in', inventory: inventory('hostile-downloader', [{ id: 'boundary-app', version: '1.0.0' }]) })).status, 200);
      const refused = await get(hostile.credential);
      assert.equal(refused.status, 403);
      assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'NOT_ASSIGNED');
      // The agent of group A installs it (its plan names it).
      await waitFor(async () => (await t.api<{ products: { id: string }[] }>('GET', `/api/v1/devices/${agent.deviceId}`)).body.products.some((p) => p.id === 'boundary-app'), { what: 'installed on A', output: agent.output, timeoutMs: 30_000 });
    });

    it('one device cannot flood the server: messages and run events have per-device budgets, refused and counted', async () => {
      const hostile = await hostileDevice(t, groupB, 'hostile-flooder');
      const taskB = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'B flood target', type: 'script', settings: { command: 'true' }, schedule: onDemand, scope: { type: 'group', groupId: groupB } })).body;
      const s = await openSocket(t, hostile.credential);
      const events = Array.from({ length: 100 }, (_, i) => ({ severity: 'info', kind: 'spam', message: `spam ${i}` }));
      for (let i = 0; i < 30; i++) s.send({ type: 'reports', id: i, reports: [report(`flood-${i}`, taskB.id, { events })] });
      let acks = 0;
      while (acks < 30) {
        const m = await s.next();
        assert.equal(m.type, 'ack', JSON.stringify(m));
        acks++;
      }
      await t.server.services.events.flush();
      // More than a page: counted in the export (every matching event).
      const stored = (await t.api<string>('GET', `/api/v1/events?deviceId=${hostile.deviceId}&kind=garrison.spam&format=jsonl`)).body.split('\n').filter(Boolean).length;
      assert.ok(stored <= 2000 + 60, `stored ${stored} events`);
      assert.ok(stored >= 1900, `stored ${stored} events`);
      // Messages: the burst is bounded; the rest get RATE_LIMITED.
      let limited = 0;
      for (let i = 0; i < 400; i++) s.send({ type: 'check-in', id: `c${i}`, inventory: inventory('hostile-flooder') });
      for (let i = 0; i < 400; i++) {
        const m = await s.next();
        if (m.code === 'RATE_LIMITED') limited++;
      }
      assert.ok(limited >= 50, `${limited} refused`);
      s.ws.close();
      const mine = (await refusals()).devices.find((d) => d.deviceId === hostile.deviceId)!;
      assert.ok((mine.byCode.RATE_LIMITED ?? 0) >= limited);
      const warned = (await t.api<{ items: unknown[] }>('GET', `/api/v1/events?deviceId=${hostile.deviceId}&kind=device.refused`)).body.items;
      assert.equal(warned.length, 1, 'one warning event, not one per refusal');
    });
  });
}
