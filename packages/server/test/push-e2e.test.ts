/**
 * Push installation with the real installer: the server logs in to a real OpenSSH server on
 * loopback, runs the group's Linux installer link there (pinned download of the script and
 * of the single-executable agent), and the agent it installs comes online in the group.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { PushJobView } from '@garrison/protocol';
import { startTestServer, tempDir, waitFor, type TestServer } from './helpers.ts';
import { sshdSkipReason, startSshd, type Sshd } from './support/sshd.ts';

const skip = sshdSkipReason();

describe('push installation with the real installer', { skip, timeout: 180_000 }, () => {
  let t: TestServer;
  let sshd: Sshd;
  let work: string;
  let groupId: string;

  before(async () => {
    t = await startTestServer();
    groupId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Pushed' })).body.id;
    work = await tempDir('garrison-push-e2e-');
    // This "host" keeps its service units in the test folder rather than in /etc (an
    // environment its administrator set); everything else is the real command.
    const wrapper = path.join(work, 'host-env.sh');
    await writeFile(wrapper, `export GARRISON_UNIT_DIR='${path.join(work, 'units')}'\nexec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n`);
    sshd = await startSshd({ forceCommand: `/bin/sh ${wrapper}` });
  });
  after(async () => {
    const pidFile = path.join(work, 'opt', 'agent.pid');
    if (existsSync(pidFile)) {
      try {
        process.kill(Number((await readFile(pidFile, 'utf8')).trim()), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    // The launcher's embedded agent (its child) outlives a SIGKILL of the launcher: end every
    // process running from the test folder.
    if (work) {
      for (const pid of await readdir('/proc').catch(() => [] as string[])) {
        if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
        const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        if (cmd.includes(work)) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
    }
    await sshd?.stop();
    await t?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('installs and enrols the agent on the host, which comes online in the group', async () => {
    const installDir = path.join(work, 'opt');
    const r = await t.api<PushJobView>('POST', '/api/v1/push-installs', { groupId, hosts: [`127.0.0.1:${sshd.port}`], username: 'root', privateKey: sshd.clientKey, installDir });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const job = await waitFor(async () => {
      const j = (await t.api<PushJobView>('GET', `/api/v1/push-installs/${r.body.id}`)).body;
      return j.state !== 'running' && j;
    }, { timeoutMs: 120_000, what: 'the push job to end' });
    const h = job.hosts![0]!;
    assert.equal(h.outcome, 'SUCCEEDED', `${h.message}\n${h.outputTail}`);
    assert.match(h.outputTail ?? '', /garrison-install: enrolled device/);
    assert.ok(h.deviceId);
    const device = await waitFor(async () => {
      const d = (await t.api<{ online: boolean; groupId: string }>('GET', `/api/v1/devices/${h.deviceId}`)).body;
      return d.online && d;
    }, { timeoutMs: 30_000, what: 'the pushed agent online' });
    assert.equal(device.groupId, groupId);
    assert.ok(existsSync(path.join(work, 'units', 'garrison-agent.service')));
    // The enrolment token of the job was revoked when the job ended; the credentials were never stored.
    const token = (await t.api<{ items: { id: string; state: string }[] }>('GET', '/api/v1/enrolment-tokens')).body.items.find((x) => x.id === job.enrolmentTokenId);
    assert.equal(token?.state, 'revoked');
  });
});
