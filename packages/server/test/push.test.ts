/**
 * Push installation against real OpenSSH servers (support/sshd.ts) and a real Garrison
 * server: logins by key and password, refused logins, unreachable and silent hosts, a host
 * that drops mid-install, a failing installer, parallel hosts, cancellation, interrupted jobs,
 * credentials kept out of every record, input validation, and the `garrison push` CLI.
 *
 * The installer command here is a real shell command from a test InstallCommandSource (with
 * a real enrolment token) that prints what the real installer prints; the end-to-end test
 * with the real installer lives with the installer.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import pg from 'pg';
import { expandHostList, listPushInstalls, PUSH_PROGRESS_MARKER, splitHostList, type EventView, type Page, type PushHostView, type PushJobState, type PushJobView } from '@garrison/protocol';
import { ApiError, GarrisonClient } from '@garrison/client';
import { BIN, dbKinds, PG_URL, startTestServer, tempDir, waitFor, type DbKind, type TestServer } from './helpers.ts';
import { freePort, generateKey, passwordLoginsSupported, sshdSkipReason, startSshd, type Sshd } from './support/sshd.ts';
import type { GarrisonServer } from '../src/app.ts';
import type { InstallCommandSource } from '../src/services/push-service.ts';
import type { Actor } from '../src/services/actor.ts';
import { PushStore } from '../src/storage/push-store.ts';

const skip = sshdSkipReason() || (existsSync('/usr/bin/curl') || existsSync('/bin/curl') ? false : 'curl is missing: the requirements step needs it on the hosts (this machine)');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ENROLLED = 'echo "garrison-install: enrolled device $(cat /proc/sys/kernel/random/uuid)"';

/** An InstallCommandSource that creates a real enrolment token and returns the command a test sets. */
class TestSource implements InstallCommandSource {
  readonly calls: { groupId: string; uses: number; expiresInMinutes: number; installDir: string; tokenId: string }[] = [];
  script: (installDir: string) => string = () => ENROLLED;
  readonly #server: () => GarrisonServer;
  constructor(server: () => GarrisonServer) {
    this.#server = server;
  }
  async unixInstallCommand(actor: Actor, groupId: string, opts: { uses: number; expiresInMinutes: number; installDir: string }) {
    const token = await this.#server().services.enrolment.createToken(actor, { groupId, maxUses: opts.uses, expiresInMinutes: opts.expiresInMinutes, name: 'push test' });
    this.calls.push({ groupId, ...opts, tokenId: token.id });
    return { command: this.script(opts.installDir), tokenId: token.id };
  }
}

/** A TCP port that accepts connections and never says anything: an SSH server that hangs. */
async function silentPort(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Whether a process whose command line contains `text` is running. */
async function processRunning(text: string): Promise<boolean> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if ((await readFile(`/proc/${entry}/cmdline`, 'utf8')).replaceAll('\0', ' ').includes(text)) return true;
    } catch {
      /* gone */
    }
  }
  return false;
}

function pushSuite(kind: DbKind): void {
  describe(`push installation over SSH (${kind.name})`, { skip, timeout: 300_000 }, () => {
    let t: TestServer;
    let sshd: Sshd;
    let work: string;
    let fleetId: string;
    let passwords = false;
    const rootPassword = `pw-${Math.random().toString(36).slice(2)}-Secr3t`;
    const source = new TestSource(() => t.server);
    const target = (s: Sshd, address = '127.0.0.1') => `${address}:${s.port}`;

    const start = async (body: Record<string, unknown>): Promise<PushJobView> => {
      const r = await t.api<PushJobView>('POST', '/api/v1/push-installs', { groupId: fleetId, username: 'root', installDir: path.join(work, `opt-${Math.random().toString(36).slice(2, 8)}`), ...body });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      return r.body;
    };
    const get = async (id: string) => (await t.api<PushJobView>('GET', `/api/v1/push-installs/${id}`)).body;
    const finished = (id: string, timeoutMs = 60_000) =>
      waitFor(async () => {
        const j = await get(id);
        return j.state !== 'running' ? j : undefined;
      }, { timeoutMs, what: `push installation ${id} to end` });
    const host = (job: PushJobView, i = 0): PushHostView => job.hosts![i]!;
    const step = (h: PushHostView, name: string) => h.steps.find((s) => s.name === name)!;
    const events = async (kindName: string) => (await t.api<Page<EventView>>('GET', `/api/v1/events?kind=${kindName}&limit=1000`)).body.items;

    before(async () => {
      passwords = await passwordLoginsSupported();
      t = await startTestServer(kind);
      t.server.services.push.installCommands = source;
      fleetId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Fleet' })).body.id;
      work = await tempDir('garrison-push-');
      sshd = await startSshd({ listen: ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4'], ...(passwords ? { rootPassword } : {}) });
    });
    after(async () => {
      await sshd?.stop();
      await t?.close();
      if (work) await rm(work, { recursive: true, force: true });
    });

    it('installs over a key login end to end, records every step, and revokes the job token', async () => {
      source.script = (dir) => `echo "${PUSH_PROGRESS_MARKER}50"; echo "installing into ${dir}"; mkdir -p ${dir} && ${ENROLLED}`;
      const started = await start({ hosts: [target(sshd)], privateKey: sshd.clientKey });
      assert.equal(started.state, 'running');
      assert.equal(started.hosts!.length, 1);
      assert.deepEqual(started.options.auth, 'key');
      const job = await finished(started.id);
      const h = host(job);
      assert.equal(job.state, 'completed', JSON.stringify(job, null, 2));
      assert.equal(h.state, 'succeeded', h.message ?? '');
      assert.equal(h.outcome, 'SUCCEEDED');
      assert.equal(h.percent, 100);
      assert.equal(h.exitCode, 0);
      assert.match(h.deviceId!, UUID);
      assert.equal(h.hostKeySha256, sshd.hostKeySha256);
      assert.equal(h.platform, 'Linux x86_64');
      assert.deepEqual(h.steps.map((s) => [s.name, s.state]), [
        ['connect', 'succeeded'],
        ['requirements', 'succeeded'],
        ['remove-conflicts', 'skipped'],
        ['install', 'succeeded'],
        ['report', 'succeeded'],
      ]);
      for (const s of h.steps) assert.ok(s.startedAt && s.finishedAt, `${s.name} has times`);
      assert.match(step(h, 'requirements').message!, /Linux x86_64, root, curl, .* free/);
      assert.match(h.outputTail!, /installing into/);
      assert.deepEqual(job.summary, { total: 1, pending: 0, running: 0, succeeded: 1, failed: 0, outcomes: { SUCCEEDED: 1 } });

      // One token for the job, with a use per host, revoked once the job ended.
      const call = source.calls.at(-1)!;
      assert.equal(call.uses, 1);
      assert.equal(call.groupId, fleetId);
      assert.equal(job.enrolmentTokenId, call.tokenId);
      const tokens = (await t.api<{ items: { id: string; state: string }[] }>('GET', '/api/v1/enrolment-tokens')).body.items;
      assert.equal(tokens.find((x) => x.id === call.tokenId)?.state, 'revoked');

      const list = (await t.api<Page<PushJobView>>('GET', '/api/v1/push-installs')).body.items;
      const listed = list.find((j) => j.id === job.id)!;
      assert.equal(listed.summary.succeeded, 1);
      assert.equal(listed.hosts, undefined);
      assert.ok((await events('push.started')).some((e) => (e.data as { jobId: string }).jobId === job.id && e.groupId === fleetId));
      const ok = (await events('push.host.succeeded')).find((e) => (e.data as { jobId: string }).jobId === job.id)!;
      assert.equal(ok.groupId, fleetId);
      assert.equal(ok.deviceId, h.deviceId);
      assert.ok((await events('push.finished')).some((e) => (e.data as { jobId: string; state: string }).jobId === job.id));
    });

    it('runs the previous agent\'s uninstall.sh first when asked', async () => {
      const dir = path.join(work, 'previous');
      source.script = (d) => `mkdir -p ${d} && printf '#!/bin/sh\\necho old agent uninstalled\\n' > ${d}/uninstall.sh && ${ENROLLED}`;
      await finished((await start({ hosts: [target(sshd)], privateKey: sshd.clientKey, installDir: dir })).id);
      const job = await finished((await start({ hosts: [target(sshd)], privateKey: sshd.clientKey, installDir: dir, removeConflicting: true })).id);
      const h = host(job);
      assert.equal(h.outcome, 'SUCCEEDED', h.message ?? '');
      assert.equal(step(h, 'remove-conflicts').state, 'succeeded');
      assert.match(step(h, 'remove-conflicts').message!, /previous agent removed/);
      assert.match(h.outputTail!, /old agent uninstalled/);
      // Nothing to remove: the step passes and says so.
      const fresh = host(await finished((await start({ hosts: [target(sshd)], privateKey: sshd.clientKey, removeConflicting: true })).id));
      assert.equal(fresh.outcome, 'SUCCEEDED');
      assert.match(step(fresh, 'remove-conflicts').message!, /no previous agent/);
    });

    it('logs in with a password', async (ctx) => {
      if (!passwords) return ctx.skip('cannot give sshd a private /etc/shadow here (unshare -m or openssl missing)');
      source.script = () => ENROLLED;
      const job = await finished((await start({ hosts: [target(sshd, '127.0.0.2')], password: rootPassword })).id);
      assert.equal(host(job).outcome, 'SUCCEEDED', host(job).message ?? '');
      assert.equal(job.options.auth, 'password');
    });

    it('refuses a wrong password and a wrong key with AUTH_FAILED', async () => {
      const other = await generateKey(work, 'not-authorized');
      const byPassword = await finished((await start({ hosts: [target(sshd)], password: 'not-the-password' })).id);
      const byKey = await finished((await start({ hosts: [target(sshd)], privateKey: other.privateKey })).id);
      for (const job of [byPassword, byKey]) {
        const h = host(job);
        assert.equal(job.state, 'completed');
        assert.equal(h.state, 'failed');
        assert.equal(h.outcome, 'AUTH_FAILED', h.message ?? '');
        assert.equal(h.step, 'connect');
        assert.equal(step(h, 'connect').state, 'failed');
        assert.equal(step(h, 'install').state, 'pending');
        assert.equal(h.hostKeySha256, null);
      }
      const failed = (await events('push.host.failed')).find((e) => (e.data as { jobId: string }).jobId === byKey.id)!;
      assert.equal(failed.severity, 'error');
      assert.equal((failed.data as { outcome: string }).outcome, 'AUTH_FAILED');
      assert.equal(failed.groupId, fleetId);
    });

    it('reports a refused port as UNREACHABLE and a silent one as TIMEOUT, without touching the other hosts', async () => {
      const refused = await freePort();
      const silent = await silentPort();
      try {
        source.script = () => ENROLLED;
        const job = await finished((await start({ hosts: [`127.0.0.1:${refused}`, `127.0.0.1:${silent.port}`, target(sshd)], privateKey: sshd.clientKey, connectTimeoutSeconds: 2 })).id);
        assert.deepEqual(job.hosts!.map((h) => h.outcome), ['UNREACHABLE', 'TIMEOUT', 'SUCCEEDED']);
        assert.match(host(job, 0).message!, /connection refused/);
        assert.match(host(job, 1).message!, /no SSH login within 2 s/);
        assert.equal(job.summary.failed, 2);
        assert.equal(job.summary.succeeded, 1);
      } finally {
        await silent.close();
      }
    });

    it('reports a failing installer as INSTALL_FAILED with its exit code and output', async () => {
      source.script = () => 'echo "downloading"; echo "broken download" >&2; exit 7';
      const job = await finished((await start({ hosts: [target(sshd)], privateKey: sshd.clientKey })).id);
      const h = host(job);
      assert.equal(h.outcome, 'INSTALL_FAILED');
      assert.equal(h.exitCode, 7);
      assert.match(h.message!, /exited with code 7/);
      assert.match(h.outputTail!, /downloading/);
      assert.match(h.outputTail!, /broken download/);
      assert.equal(step(h, 'install').state, 'failed');
      assert.equal(step(h, 'report').state, 'pending');

      source.script = () => 'echo "all done, or so it says"';
      const silentSuccess = host(await finished((await start({ hosts: [target(sshd)], privateKey: sshd.clientKey })).id));
      assert.equal(silentSuccess.outcome, 'INSTALL_FAILED');
      assert.equal(silentSuccess.exitCode, 0);
      assert.match(silentSuccess.message!, /did not print/);
    });

    it('reports a host that drops mid-install as CONNECTION_LOST; the other host succeeds', async () => {
      // This host's sessions get GARRISON_TEST_SLOW, so that the install step is still running when it is killed.
      const drop = await startSshd({ forceCommand: 'GARRISON_TEST_SLOW=1 exec sh -c "$SSH_ORIGINAL_COMMAND"' });
      try {
        source.script = () => `echo started; if [ -n "$GARRISON_TEST_SLOW" ]; then sleep 30; fi; ${ENROLLED}`;
        // Each sshd accepts its own client key: the healthy one takes the drop host's key too.
        await appendFile(path.join(sshd.dir, 'authorized_keys'), await readFile(`${drop.clientKeyFile}.pub`, 'utf8'));
        const { id } = await start({ hosts: [target(drop), target(sshd)], privateKey: drop.clientKey });
        await waitFor(async () => {
          const h = host(await get(id));
          return h.step === 'install' && h.state === 'running' && (h.outputTail ?? '').includes('started');
        }, { what: 'the install step to run on the host that will drop', timeoutMs: 30_000 });
        await drop.killAll();
        const job = await finished(id);
        const h = host(job);
        assert.equal(h.outcome, 'CONNECTION_LOST', h.message ?? '');
        assert.equal(step(h, 'install').state, 'failed');
        assert.match(h.message!, /during install/);
        assert.equal(h.exitCode, null);
        assert.equal(host(job, 1).outcome, 'SUCCEEDED', host(job, 1).message ?? '');
      } finally {
        await drop.stop();
      }
    });

    it('installs several hosts in parallel, at most `parallel` at once', async () => {
      const log = path.join(work, 'parallel.log');
      await writeFile(log, '');
      source.script = () => `echo "start $(date +%s.%N)" >> ${log}; sleep 1; echo "end $(date +%s.%N)" >> ${log}; ${ENROLLED}`;
      const job = await finished((await start({ hosts: [`127.0.0.1-4:${sshd.port}`], privateKey: sshd.clientKey, parallel: 2 })).id);
      assert.deepEqual(job.hosts!.map((h) => h.address), ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4']);
      assert.deepEqual(job.hosts!.map((h) => h.outcome), ['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
      const marks = (await readFile(log, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => l.split(' '))
        .map(([what, at]) => ({ d: what === 'start' ? 1 : -1, at: Number(at) }))
        .sort((a, b) => a.at - b.at || a.d - b.d);
      let now = 0;
      let most = 0;
      for (const m of marks) most = Math.max(most, (now += m.d));
      assert.equal(marks.length, 8);
      assert.equal(most, 2, 'two installs overlapped, never three');
    });

    it('says when a platform is not supported, and when a requirement is missing', async () => {
      const bin = path.join(work, 'fakebin');
      const lean = path.join(work, 'leanbin');
      // 127.0.0.5 answers as an ARM machine; 127.0.0.6 has no curl on its PATH.
      const odd = await startSshd({
        listen: ['127.0.0.5', '127.0.0.6'],
        forceCommand: [
          `mkdir -p ${bin} ${lean}`,
          `printf '#!/bin/sh\\nif [ "$1" = -m ]; then echo aarch64; else echo Linux; fi\\n' > ${bin}/uname; chmod +x ${bin}/uname`,
          `for c in sh uname id dirname df awk sudo mkdir cat; do p=$(command -v $c) && ln -sf "$p" ${lean}/$c; done`,
          'case "$SSH_CONNECTION" in',
          `  *" 127.0.0.5 "*) PATH=${bin}:$PATH exec sh -c "$SSH_ORIGINAL_COMMAND" ;;`,
          `  *) PATH=${lean} exec sh -c "$SSH_ORIGINAL_COMMAND" ;;`,
          'esac',
        ].join('\n'),
      });
      try {
        source.script = () => ENROLLED;
        const job = await finished((await start({ hosts: [target(odd, '127.0.0.5'), target(odd, '127.0.0.6')], privateKey: odd.clientKey })).id);
        assert.equal(host(job, 0).outcome, 'UNSUPPORTED_PLATFORM', host(job, 0).message ?? '');
        assert.equal(host(job, 0).platform, 'Linux aarch64');
        assert.match(host(job, 0).message!, /unsupported platform: Linux aarch64/);
        assert.equal(host(job, 1).outcome, 'REQUIREMENTS_NOT_MET', host(job, 1).message ?? '');
        assert.match(host(job, 1).message!, /curl is not installed/);
        assert.equal(step(host(job, 1), 'requirements').state, 'failed');
      } finally {
        await odd.stop();
      }
    });

    it('cancels a running job: the running host is stopped on the host, the pending one never starts', async () => {
      source.script = () => `echo started; sleep 37; ${ENROLLED}`;
      const { id } = await start({ hosts: [target(sshd, '127.0.0.3'), target(sshd, '127.0.0.4')], privateKey: sshd.clientKey, parallel: 1 });
      await waitFor(async () => (host(await get(id)).outputTail ?? '').includes('started'), { what: 'the install to start', timeoutMs: 30_000 });
      const r = await t.api<PushJobView>('POST', `/api/v1/push-installs/${id}/cancel`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.state, 'cancelled');
      assert.deepEqual(r.body.hosts!.map((h) => h.outcome), ['CANCELLED', 'CANCELLED']);
      assert.equal(step(host(r.body, 1), 'connect').state, 'pending');
      assert.equal((await get(id)).state, 'cancelled');
      // The installer on the host was killed, not left running.
      await waitFor(async () => !(await processRunning('sleep 37')), { what: 'the installer on the host to be killed', timeoutMs: 10_000 });
      const again = await t.api<{ error: { code: string } }>('POST', `/api/v1/push-installs/${id}/cancel`);
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, 'CONFLICT');
    });

    it('marks a job interrupted when its server stops, and the jobs of a crashed server at the next look', async () => {
      // A crashed server: its job is still "running" but its lease ran out.
      const store = new PushStore(t.server.db);
      const now = new Date();
      const crashed = {
        id: `crashed-${Date.now()}`,
        groupId: fleetId,
        requestedBy: 'admin',
        state: 'running' as const,
        options: { port: 22, parallel: 1, removeConflicting: false, installDir: '/opt/garrison-agent', auth: 'key' as const, connectTimeoutSeconds: 5, installTimeoutMinutes: 1 },
        tokenId: null,
        hostCount: 1,
        createdAt: now.toISOString(),
        finishedAt: null,
      };
      const running: PushHostView = {
        address: '192.0.2.1',
        port: 22,
        state: 'running',
        outcome: null,
        message: null,
        step: 'install',
        percent: 40,
        steps: [],
        exitCode: null,
        outputTail: null,
        deviceId: null,
        hostKeySha256: null,
        platform: null,
        startedAt: now.toISOString(),
        finishedAt: null,
      };
      await store.insertJob(crashed, [running], { owner: 'dead-server', expiresAt: new Date(now.getTime() - 1000).toISOString() });
      assert.equal(await t.server.services.push.interruptAbandoned(), 1);
      const marked = await get(crashed.id);
      assert.equal(marked.state, 'interrupted');
      assert.equal(host(marked).outcome, 'INTERRUPTED');

      // A server that stops cleanly interrupts its own running jobs.
      const t2 = await startTestServer(kind);
      const source2 = new TestSource(() => t2.server);
      source2.script = () => `echo started; sleep 41; ${ENROLLED}`;
      t2.server.services.push.installCommands = source2;
      const group2 = (await t2.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Fleet' })).body.id;
      const r = await t2.api<PushJobView>('POST', '/api/v1/push-installs', { groupId: group2, hosts: [target(sshd)], username: 'root', privateKey: sshd.clientKey, installDir: path.join(work, 'stopping') });
      assert.equal(r.status, 202);
      await waitFor(async () => ((await t2.api<PushJobView>('GET', `/api/v1/push-installs/${r.body.id}`)).body.hosts![0]!.outputTail ?? '').includes('started'), { timeoutMs: 30_000, what: 'the install to start' });
      await t2.server.close();
      const t3 = await startTestServer(kind, { restartOf: t2 });
      try {
        const job = (await t3.api<PushJobView>('GET', `/api/v1/push-installs/${r.body.id}`)).body;
        assert.equal(job.state, 'interrupted');
        assert.equal(job.hosts![0]!.state, 'failed');
        assert.equal(job.hosts![0]!.outcome, 'INTERRUPTED');
        assert.equal(job.hosts![0]!.step, 'install');
      } finally {
        await t3.close();
      }
    });

    it('refuses bad input with stable error codes', async () => {
      const base = { groupId: fleetId, username: 'root', hosts: ['127.0.0.1'], privateKey: sshd.clientKey };
      const { privateKey: _key, ...noCredentials } = base;
      const cases: [string, Record<string, unknown>, number, string][] = [
        ['a CIDR block larger than /22', { ...base, hosts: ['10.0.0.0/21'] }, 400, 'HOSTS_INVALID'],
        ['more than 4096 hosts', { ...base, hosts: ['10.0.0.0/22', '10.0.4.0/22', '10.0.8.0/22', '10.0.12.0/22', '10.0.16.0/28'] }, 400, 'HOSTS_INVALID'],
        ['a bad address', { ...base, hosts: ['10.0.0.300'] }, 400, 'HOSTS_INVALID'],
        ['a bad port', { ...base, hosts: ['web1:70000'] }, 400, 'HOSTS_INVALID'],
        ['a bad name', { ...base, hosts: ['bad_host!'] }, 400, 'HOSTS_INVALID'],
        ['a reversed range', { ...base, hosts: ['10.0.0.9-3'] }, 400, 'HOSTS_INVALID'],
        ['no hosts', { ...base, hosts: [] }, 400, 'VALIDATION_FAILED'],
        ['both password and key', { ...base, password: 'x' }, 400, 'CREDENTIALS_INVALID'],
        ['neither password nor key', noCredentials, 400, 'CREDENTIALS_INVALID'],
        ['a passphrase without a key', { ...noCredentials, password: 'x', passphrase: 'y' }, 400, 'CREDENTIALS_INVALID'],
        ['a key that is not a key', { ...base, privateKey: 'not a key' }, 400, 'CREDENTIALS_INVALID'],
        ['parallel over 50', { ...base, parallel: 51 }, 400, 'VALIDATION_FAILED'],
        ['a relative install folder', { ...base, installDir: 'opt/garrison' }, 400, 'VALIDATION_FAILED'],
        ['an install folder with ..', { ...base, installDir: '/opt/../etc' }, 400, 'VALIDATION_FAILED'],
        ['an unknown property', { ...base, sudoPassword: 'x' }, 400, 'VALIDATION_FAILED'],
        ['an unknown group', { ...base, groupId: 'no-such-group' }, 404, 'NOT_FOUND'],
      ];
      for (const [what, body, status, code] of cases) {
        const r = await t.api<{ error: { code: string; message: string } }>('POST', '/api/v1/push-installs', body);
        assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.code, code, `${what}: ${r.body.error.message}`);
      }
      const missing = await t.api<{ error: { code: string } }>('GET', '/api/v1/push-installs/no-such-job');
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error.code, 'NOT_FOUND');

      // Without an installer command source the feature says it is unavailable.
      t.server.services.push.installCommands = null;
      try {
        const r = await t.api<{ error: { code: string } }>('POST', '/api/v1/push-installs', base);
        assert.equal(r.status, 503);
        assert.equal(r.body.error.code, 'UNAVAILABLE');
      } finally {
        t.server.services.push.installCommands = source;
      }
      const doc = (await t.api<{ paths: Record<string, unknown> }>('GET', '/api/v1/openapi.json')).body;
      for (const p of ['/api/v1/push-installs', '/api/v1/push-installs/{id}', '/api/v1/push-installs/{id}/cancel']) assert.ok(doc.paths[p], `${p} is documented`);
    });
  });
}

describe('push host lists', () => {
  const expand = (...entries: string[]) => {
    const r = expandHostList(entries);
    return r.ok ? r.hosts.map((h) => `${h.address}:${h.port}`) : `${r.entry}: ${r.reason}`;
  };
  it('expands names, addresses, ranges and CIDR blocks with their ports, in order and without duplicates', () => {
    assert.deepEqual(expand('Web1.Example.com', 'db:2222, 10.0.0.1'), ['web1.example.com:22', 'db:2222', '10.0.0.1:22']);
    assert.deepEqual(expand('10.0.0.254-10.0.1.1:2200'), ['10.0.0.254:2200', '10.0.0.255:2200', '10.0.1.0:2200', '10.0.1.1:2200']);
    assert.deepEqual(expand('10.0.0.5-7', '10.0.0.6'), ['10.0.0.5:22', '10.0.0.6:22', '10.0.0.7:22']);
    assert.deepEqual(expand('192.168.1.0/30'), ['192.168.1.1:22', '192.168.1.2:22']);
    assert.deepEqual(expand('192.168.1.7/31', '192.168.1.9/32'), ['192.168.1.6:22', '192.168.1.7:22', '192.168.1.9:22']);
    assert.deepEqual(expand('[fd00::1]:2222', '::1', 'fd00::/127'), ['fd00::1:2222', '::1:22', 'fd00:::22', 'fd00::1:22']);
    assert.equal((expandHostList(['10.1.0.0/22']) as { hosts: unknown[] }).hosts.length, 1022);
    assert.equal((expandHostList(['10.1.0.0/22', '10.2.0.0/22', '10.3.0.0/22', '10.4.0.0/22', '10.5.0.0/29']) as { hosts: unknown[] }).hosts.length, 4094);
    assert.deepEqual(splitHostList(' a,b;c\n d  '), ['a', 'b', 'c', 'd']);
  });
  it('says what is wrong with an entry', () => {
    assert.match(expand('10.0.0.0/21') as string, /at most a \/22/);
    assert.match(expand('fd00::/64') as string, /at most a \/118/);
    assert.match(expand('0.0.0.0-255.255.255.255') as string, /more than 4096 hosts/);
    assert.match(expand('10.0.0.256') as string, /not an IPv4 address/);
    assert.match(expand('10.0.0.9-3') as string, /ends before it starts/);
    assert.match(expand('10.0.0.1-256') as string, /256 is not 0 to 255/);
    assert.match(expand('web:0') as string, /port 0 is not 1 to 65535/);
    assert.match(expand('web:ssh') as string, /"ssh" is not a port/);
    assert.match(expand('web:') as string, /a port must follow/);
    assert.match(expand('[fd00::1') as string, /in brackets/);
    assert.match(expand('[nothex::1]:22') as string, /not an IPv6 address/);
    assert.match(expand('-bad-.example') as string, /not a host name/);
    assert.match(expand('') as string, /no hosts given/);
  });
});

for (const kind of dbKinds) pushSuite(kind);

// -------------------------------------------------------------------------------------------
// The list of jobs: paged newest first (no SSH needed: the jobs are written as a server would)
// -------------------------------------------------------------------------------------------

for (const kind of dbKinds) {
  describe(`push installations listed (${kind.name})`, () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer(kind);
    });
    after(() => t.close());

    it('pages the jobs newest first with a cursor, filters every page, and refuses a cursor it did not give', async () => {
      const api = new GarrisonClient({ baseUrl: t.server.url, token: t.token, fetch: t.fetch });
      const groupA = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: `Paged A ${kind.name}` })).body.id;
      const groupB = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: `Paged B ${kind.name}` })).body.id;
      const store = new PushStore(t.server.db);
      const t0 = Date.parse('2026-02-01T00:00:00.000Z');
      // Six jobs; two share a start time, so the id must break the tie.
      const jobs = [0, 1, 2, 2, 3, 4].map((sec, i) => ({
        id: `paged-job-${i}`,
        groupId: i === 5 ? groupB : groupA,
        requestedBy: 'admin',
        state: (i === 1 ? 'cancelled' : 'completed') as PushJobState,
        options: { port: 22, parallel: 1, removeConflicting: false, installDir: '/opt/garrison-agent', auth: 'key' as const, connectTimeoutSeconds: 5, installTimeoutMinutes: 1 },
        tokenId: null,
        hostCount: 0,
        createdAt: new Date(t0 + sec * 1000).toISOString(),
        finishedAt: new Date(t0 + sec * 1000 + 500).toISOString(),
      }));
      for (const j of jobs) await store.insertJob(j, [], { owner: 'elsewhere', expiresAt: new Date(t0).toISOString() });
      const newestFirst = [...jobs].sort((a, b) => (a.createdAt === b.createdAt ? b.id.localeCompare(a.id) : b.createdAt.localeCompare(a.createdAt))).map((j) => j.id);
      const inA = newestFirst.filter((id) => id !== 'paged-job-5');

      const first = await api.call(listPushInstalls, { query: { groupId: groupA, limit: 3 } });
      assert.deepEqual(first.items.map((j) => j.id), inA.slice(0, 3));
      assert.equal(first.total, 5);
      assert.ok(first.nextCursor);
      assert.equal(first.items[0]!.hosts, undefined, 'no hosts in a listing');
      const second = await api.call(listPushInstalls, { query: { groupId: groupA, limit: 3, cursor: first.nextCursor } });
      assert.deepEqual(second.items.map((j) => j.id), inA.slice(3));
      assert.equal(second.nextCursor, null);
      const pages: string[][] = [];
      for await (const page of api.pages(listPushInstalls, { query: { limit: 2 } })) pages.push(page.items.map((j) => j.id));
      assert.deepEqual(pages, [newestFirst.slice(0, 2), newestFirst.slice(2, 4), newestFirst.slice(4)]);
      const cancelled = await api.call(listPushInstalls, { query: { state: 'cancelled', limit: 1 } });
      assert.deepEqual([cancelled.items.map((j) => j.id), cancelled.total, cancelled.nextCursor], [['paged-job-1'], 1, null]);

      for (const cursor of ['not-a-cursor', Buffer.from('[1,2]').toString('base64url'), Buffer.from('["a","b","c"]').toString('base64url')]) {
        await assert.rejects(api.call(listPushInstalls, { query: { cursor } }), (e: ApiError) => e.code === 'VALIDATION_FAILED' && e.status === 400, cursor);
      }
      await assert.rejects(api.call(listPushInstalls, { query: { limit: 1001 } }), (e: ApiError) => e.code === 'VALIDATION_FAILED' && e.status === 400);
    });
  });
}

// -------------------------------------------------------------------------------------------
// Credentials: nowhere but in memory
// -------------------------------------------------------------------------------------------

describe('push installation credentials', { skip, timeout: 120_000 }, () => {
  it('appear nowhere: not in the database, events, API answers or the log, even when a host echoes them', async () => {
    const { startServer } = await import('../src/app.ts');
    const dataDir = await tempDir('garrison-push-creds-');
    let logText = '';
    const logStream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logText += chunk.toString();
        cb();
      },
    });
    const password = `pw-${Math.random().toString(36).slice(2)}-Secr3t-Creds`;
    const sshd = await startSshd((await passwordLoginsSupported()) ? { rootPassword: password } : {});
    const server = await startServer({ dataDir, port: 0, logger: pino({ level: 'trace' }, logStream) });
    try {
      const adminToken = (await readFile(server.adminTokenFile, 'utf8')).trim();
      // In process (inject): this test is about what is recorded, not about the transport.
      const call = async <T>(method: 'GET' | 'POST', url: string, body?: unknown) => {
        const res = await server.http.inject({ method, url, headers: { authorization: `Bearer ${adminToken}` }, ...(body !== undefined ? { payload: body as object } : {}) });
        return { status: res.statusCode, text: res.body, body: (res.body ? JSON.parse(res.body) : null) as T };
      };
      const passphrase = `pp-${Math.random().toString(36).slice(2)}-Phrase`;
      const keyDir = await tempDir('garrison-push-key-');
      const key = await generateKey(keyDir, 'with-passphrase', { passphrase });
      await appendFile(path.join(sshd.dir, 'authorized_keys'), `${key.publicKey}\n`);
      const keyBody = key.privateKey.split('\n').filter((l) => l && !l.startsWith('-----')).sort((a, b) => b.length - a.length)[0]!;
      const source = new TestSource(() => server);
      const passwords = await passwordLoginsSupported();
      server.services.push.installCommands = source;
      const group = (await call<{ id: string }>('POST', '/api/v1/groups', { name: 'Creds' })).body.id;
      const texts: string[] = [];
      const run = async (body: Record<string, unknown>) => {
        const r = await call<PushJobView>('POST', '/api/v1/push-installs', { groupId: group, username: 'root', hosts: [`127.0.0.1:${sshd.port}`], installDir: path.join(keyDir, 'opt'), ...body });
        assert.equal(r.status, 202, r.text);
        texts.push(r.text);
        await server.services.push.settled(r.body.id);
        const done = await call<PushJobView>('GET', `/api/v1/push-installs/${r.body.id}`);
        texts.push(done.text);
        return done.body;
      };
      // The "installers" echo the job's secret and a token: the output tail must keep neither.
      source.script = () => `echo "oops, the passphrase is ${passphrase}"; echo "token get.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"; ${ENROLLED}`;
      const byKey = await run({ privateKey: key.privateKey, passphrase });
      assert.equal(byKey.hosts![0]!.outcome, 'SUCCEEDED', byKey.hosts![0]!.message ?? '');
      assert.match(byKey.hosts![0]!.outputTail!, /the passphrase is \*\*\*/);
      assert.match(byKey.hosts![0]!.outputTail!, /token get\.\*\*\*/);
      source.script = () => `echo "oops, the password is ${password}"; ${ENROLLED}`;
      const byPassword = await run({ password });
      if (passwords) {
        assert.equal(byPassword.hosts![0]!.outcome, 'SUCCEEDED', byPassword.hosts![0]!.message ?? '');
        assert.match(byPassword.hosts![0]!.outputTail!, /the password is \*\*\*/);
      } else assert.equal(byPassword.hosts![0]!.outcome, 'AUTH_FAILED');
      // A refused request does not echo them either.
      const refused = await call('POST', '/api/v1/push-installs', { groupId: group, username: 'root', hosts: ['127.0.0.1'], password, privateKey: key.privateKey, passphrase });
      assert.equal(refused.status, 400);
      texts.push(refused.text);
      texts.push((await call('GET', '/api/v1/push-installs')).text);
      texts.push((await call('GET', '/api/v1/events?limit=1000')).text);
      await server.services.events.flush();

      const stored: string[] = [];
      for (const f of await readdir(dataDir)) {
        if (/garrison\.db/.test(f)) stored.push((await readFile(path.join(dataDir, f))).toString('latin1'));
      }
      assert.ok(stored.length > 0, 'the SQLite files were read');
      assert.ok(logText.length > 0, 'the log was captured');
      for (const secret of [password, passphrase, keyBody]) {
        for (const [where, text] of [['API answers', texts.join('\n')], ['database files', stored.join('\n')], ['log', logText]] as const) {
          assert.ok(!text.includes(secret), `a credential appears in the ${where}`);
        }
      }
      await rm(keyDir, { recursive: true, force: true });
    } finally {
      await server.close();
      await sshd.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('are not stored in PostgreSQL either', { skip: PG_URL ? false : 'GARRISON_TEST_PG_URL is not set' }, async () => {
    const kind = dbKinds.find((k) => k.name === 'postgres')!;
    const t = await startTestServer(kind);
    const sshd = await startSshd();
    try {
      const source = new TestSource(() => t.server);
      const password = `pw-${Math.random().toString(36).slice(2)}-Secr3t-PG`;
      source.script = () => `echo "${password}"; ${ENROLLED}`;
      t.server.services.push.installCommands = source;
      const group = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'PG' })).body.id;
      const r = await t.api<PushJobView>('POST', '/api/v1/push-installs', { groupId: group, username: 'root', hosts: [`127.0.0.1:${sshd.port}`], password });
      await t.server.services.push.settled(r.body.id);
      await t.server.services.events.flush();
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      try {
        const schema = (t.database as { schema: string }).schema;
        for (const table of ['push_jobs', 'push_hosts', 'events']) {
          const rows = await client.query(`select * from ${schema}.${table}`);
          assert.ok(!JSON.stringify(rows.rows).includes(password), `the password appears in ${table}`);
        }
      } finally {
        await client.end();
      }
    } finally {
      await sshd.stop();
      await t.close();
    }
  });
});

// -------------------------------------------------------------------------------------------
// The CLI
// -------------------------------------------------------------------------------------------

describe('garrison push (CLI)', { skip, timeout: 180_000 }, () => {
  let t: TestServer;
  let sshd: Sshd;
  let home: string;
  const source = new TestSource(() => t.server);

  const cli = (args: string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve, reject) => {
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, XDG_CONFIG_HOME: home, GARRISON_URL: t.server.url, GARRISON_TOKEN: t.token };
      const caFile = (t as { caFile?: string }).caFile;
      if (caFile) env.GARRISON_CA = caFile;
      const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
      child.stdin.end(input);
    });

  before(async () => {
    home = await tempDir('garrison-push-cli-');
    t = await startTestServer();
    t.server.services.push.installCommands = source;
    await t.api('POST', '/api/v1/groups', { name: 'Web' });
    sshd = await startSshd({ listen: ['127.0.0.1', '127.0.0.2'], ...((await passwordLoginsSupported()) ? { rootPassword: 'cli-Passw0rd' } : {}) });
  });
  after(async () => {
    await sshd?.stop();
    await t?.close();
    if (home) await rm(home, { recursive: true, force: true });
  });

  it('pushes with a key, shows a line per host, and exits 1 when a host failed', async () => {
    source.script = () => `echo "${PUSH_PROGRESS_MARKER}40"; ${ENROLLED}`;
    const refused = await freePort();
    const r = await cli(['push', '--group', 'Web', '--hosts', `127.0.0.1-2,127.0.0.1:${refused}`, '--port', String(sshd.port), '--user', 'root', '--key', sshd.clientKeyFile, '--install-dir', path.join(home, 'opt')]);
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.match(r.stdout, /push installation \S+ into "My Organization\/Web": 3 hosts, 10 at once/);
    assert.match(r.stdout, new RegExp(`127\\.0\\.0\\.1:${sshd.port}\\s+100%\\s+succeeded`));
    assert.match(r.stdout, new RegExp(`127\\.0\\.0\\.2:${sshd.port}\\s+100%\\s+succeeded`));
    assert.match(r.stdout, new RegExp(`127\\.0\\.0\\.1:${refused}\\s+\\d+%\\s+failed\\s+connect\\s+UNREACHABLE: connection refused`));
    assert.match(r.stdout, /completed: 3 hosts: 2 succeeded, 1 failed/);
    assert.match(r.stdout, /HOST\s+OUTCOME\s+STEP\s+EXIT\s+MESSAGE/);

    const ok = await cli(['push', '--group', 'Web', '--hosts', '127.0.0.2', '--port', String(sshd.port), '--user', 'root', '--key', sshd.clientKeyFile, '--install-dir', path.join(home, 'opt'), '--json']);
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    const job = JSON.parse(ok.stdout) as PushJobView;
    assert.equal(job.state, 'completed');
    assert.equal(job.hosts![0]!.outcome, 'SUCCEEDED');

    const list = await cli(['push', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^ID\s+STATE\s+GROUP\s+HOSTS\s+SUCCEEDED\s+FAILED/m);
    assert.ok(list.stdout.includes(job.id));
    const show = await cli(['push', 'show', job.id, '--output']);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /state:\s+completed/);
    assert.ok(show.stdout.includes(sshd.hostKeySha256));
    assert.match(show.stdout, /garrison-install: enrolled device/);
    const cancel = await cli(['push', 'cancel', job.id]);
    assert.equal(cancel.code, 1);
    assert.match(cancel.stderr, /error CONFLICT: /);
  });

  it('reads the password from stdin, starts without watching, and refuses bad usage', async (ctx) => {
    const started = await cli(['push', '--group', 'Web', '--hosts', `127.0.0.1:${sshd.port}`, '--user', 'root', '--password-stdin', '--no-watch', '--install-dir', path.join(home, 'opt')], 'cli-Passw0rd\n');
    assert.equal(started.code, 0, started.stderr);
    const id = /push installation (\S+) started/.exec(started.stdout)![1]!;
    await t.server.services.push.settled(id);
    const job = (await t.api<PushJobView>('GET', `/api/v1/push-installs/${id}`)).body;
    assert.equal(job.options.auth, 'password');
    if (await passwordLoginsSupported()) assert.equal(job.hosts![0]!.outcome, 'SUCCEEDED', job.hosts![0]!.message ?? '');
    else {
      assert.equal(job.hosts![0]!.outcome, 'AUTH_FAILED');
      ctx.diagnostic('password logins cannot be tested here: the password reached sshd and was refused');
    }

    const both = await cli(['push', '--group', 'Web', '--hosts', 'h1', '--user', 'root', '--password-stdin', '--key', sshd.clientKeyFile], 'x\n');
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give --password-stdin or --key FILE/);
    const badHosts = await cli(['push', '--group', 'Web', '--hosts', '10.0.0.0/16', '--user', 'root', '--key', sshd.clientKeyFile]);
    assert.equal(badHosts.code, 2);
    assert.match(badHosts.stderr, /at most a \/22/);
    const noGroup = await cli(['push', '--hosts', 'h1', '--user', 'root', '--key', sshd.clientKeyFile]);
    assert.equal(noGroup.code, 2);
    assert.match(noGroup.stderr, /--group is required/);
    const unknown = await cli(['push', 'show', 'no-such-job']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /error NOT_FOUND/);
  });
});
