/**
 * A device's identity with real agents: credential rotation (the old secret stops working once
 * the new one is used), revocation (the agent is disconnected at once), and a machine cloned
 * with the agent's state inside (a new device, nothing merged).
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cp, lstat, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { dbKinds, spawnAgent, startAgent, tempDir, useTestServer, waitFor } from './helpers.ts';

type Device = { id: string; online: boolean; credentialRotatedAt: string | null; rotateRequested: boolean; credentialRevoked: boolean; clonedFrom: string | null; machineIdentity: string | null; groupId: string };

for (const kind of dbKinds) {
  describe(`device identity (${kind.name})`, () => {
    const t = useTestServer(kind);
    let groupId: string;
    const device = async (id: string) => (await t.api<Device>('GET', `/api/v1/devices/${id}`)).body;
    const checkInWith = async (credential: string) =>
      (await t.fetch(`${t.server.url}/agent/v1/check-in`, { method: 'POST', headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' }, body: '{}' })).status;

    before(async () => {
      groupId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Identities' })).body.id;
    });

    it('rotates a credential: the agent switches, the old secret is refused', async () => {
      const a = t.track(await startAgent(t, groupId, 'rotating'));
      const credFile = path.join(a.stateDir, 'credential.json');
      const before = JSON.parse(await readFile(credFile, 'utf8')) as { credential: string };
      const r = await t.api<Device>('POST', `/api/v1/devices/${a.deviceId}/credential/rotate`);
      assert.equal(r.status, 200);
      assert.equal(r.body.rotateRequested, true);
      const rotated = await waitFor(async () => {
        const d = await device(a.deviceId);
        return d.credentialRotatedAt !== null && !d.rotateRequested ? d : undefined;
      }, { what: 'rotation done', output: a.output });
      assert.ok(rotated.credentialRotatedAt);
      // The server records the rotation when it accepts it; the agent writes its file after.
      const after = await waitFor(async () => {
        const c = JSON.parse(await readFile(credFile, 'utf8')) as { credential: string; deviceId: string };
        return c.credential !== before.credential && c;
      }, { what: 'the new credential written', output: a.output });
      assert.equal(after.deviceId, a.deviceId);
      // Once the agent uses the new secret (it reconnects with it), the old one is refused.
      await waitFor(async () => (await device(a.deviceId)).online, { what: 'online with the new credential', output: a.output });
      await waitFor(async () => (await checkInWith(before.credential)) === 401, { what: 'old credential refused' });
      assert.notEqual(await checkInWith(after.credential), 401);
    });

    it('revokes a credential: the agent is disconnected at once and refused from then on', async () => {
      const a = t.track(await startAgent(t, groupId, 'revoked'));
      const cred = JSON.parse(await readFile(path.join(a.stateDir, 'credential.json'), 'utf8')) as { credential: string };
      const started = Date.now();
      const r = await t.api<Device>('POST', `/api/v1/devices/${a.deviceId}/credential/revoke`);
      assert.equal(r.body.credentialRevoked, true);
      await waitFor(async () => !(await device(a.deviceId)).online, { what: 'offline', timeoutMs: 3000 });
      assert.ok(Date.now() - started < 3000);
      assert.equal(await checkInWith(cred.credential), 401);
      // It does not come back.
      await new Promise((res) => setTimeout(res, 1500));
      assert.equal((await device(a.deviceId)).online, false);
      assert.equal((await t.api('POST', `/api/v1/devices/${a.deviceId}/credential/rotate`)).status, 409);
    });

    it('quarantines a cloned machine until an administrator approves it; then it becomes a device of its own, the original keeps its own', async () => {
      const dir = await tempDir('garrison-clone-');
      const idA = path.join(dir, 'machine-id-a');
      const idB = path.join(dir, 'machine-id-b');
      await writeFile(idA, 'a'.repeat(32) + '\n');
      await writeFile(idB, 'b'.repeat(32) + '\n');
      const original = t.track(await startAgent(t, groupId, 'original', { env: { GARRISON_MACHINE_ID_FILE: idA } }));
      await waitFor(async () => (await device(original.deviceId)).machineIdentity, { what: 'identity recorded' });
      await original.stop();
      // The image: the agent's state folder copied to another machine.
      const cloneState = path.join(dir, 'clone-state');
      // Files only: the stopped agent's local socket may still be there, and an image holds none.
      await cp(original.stateDir, cloneState, { recursive: true, filter: async (src) => !(await lstat(src)).isSocket() });
      const again = t.track(spawnAgent([], original.stateDir, { GARRISON_MACHINE_ID_FILE: idA }));
      const clone = t.track(spawnAgent([], cloneState, { GARRISON_MACHINE_ID_FILE: idB }));
      // Quarantined: a pending duplicate, no device made, nothing of it recorded for the original.
      const pending = await waitFor(async () => (await t.api<{ items: { id: string; deviceId: string; state: string }[] }>('GET', '/api/v1/device-duplicates?state=pending')).body.items[0], { what: 'a pending duplicate', output: clone.output });
      assert.equal(pending.deviceId, original.deviceId);
      await waitFor(async () => (await device(original.deviceId)).online, { what: 'the original online', output: again.output });
      const before = (await t.api<{ items: { id: string }[] }>('GET', '/api/v1/devices')).body.items.length;
      assert.equal(JSON.parse(await readFile(path.join(cloneState, 'credential.json'), 'utf8')).deviceId, original.deviceId);
      // Both connections stay: the clone's never replaces the original's.
      await new Promise((res) => setTimeout(res, 500));
      assert.equal((await device(original.deviceId)).online, true);
      // Approved: the clone is told at once and takes its new identity.
      const approved = await t.api<{ state: string; newDeviceId: string }>('POST', `/api/v1/device-duplicates/${pending.id}/approve`);
      assert.equal(approved.status, 200, JSON.stringify(approved.body));
      const cloneCred = await waitFor(async () => {
        const c = JSON.parse(await readFile(path.join(cloneState, 'credential.json'), 'utf8')) as { deviceId: string };
        return c.deviceId !== original.deviceId && c;
      }, { what: 'the clone re-identified', output: clone.output });
      assert.equal(cloneCred.deviceId, approved.body.newDeviceId);
      const d = await waitFor(async () => {
        const x = await device(cloneCred.deviceId);
        return x.online && x;
      }, { what: 'the clone online as a new device', output: clone.output });
      assert.equal(d.clonedFrom, original.deviceId);
      assert.equal(d.groupId, groupId);
      assert.equal((await t.api<{ items: { id: string }[] }>('GET', '/api/v1/devices')).body.items.length, before + 1);
      assert.equal(JSON.parse(await readFile(path.join(original.stateDir, 'credential.json'), 'utf8')).deviceId, original.deviceId);
      const ev = (await t.api<{ items: { kind: string; deviceId: string }[] }>('GET', '/api/v1/events?kind=device.duplicate-pending')).body.items;
      assert.equal(ev.length, 1);
      assert.equal(ev[0]!.deviceId, original.deviceId);
      // Both stay online and apart.
      await waitFor(async () => (await device(original.deviceId)).online && (await device(cloneCred.deviceId)).online, { what: 'both online' });
    });
  });
}
