/**
 * Several server instances on one PostgreSQL behind a real TCP load balancer (issue 14,
 * ADR 0019): instance A in this process, instance B in a process of its own (joined with
 * nothing but the database and the secret-store key, and killed with SIGKILL later), HAProxy
 * from Debian's packages in front, real agents enrolled and connected through it and spread
 * over both. What one instance is told reaches the agents of the other; presence is the same
 * everywhere; when B dies in the middle of a run-now, its agents move to A and every result
 * is stored.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Run, Task } from '@garrison/protocol';
import { agentCli, apiClient, pgSkip, postgresKind, startAgent, startTestServer, tempDir, waitFor, type AgentProcess, type TestServer } from './helpers.ts';

const HAPROXY = '/usr/sbin/haproxy';
const LEASE_MS = 3000;
const skip = pgSkip || (existsSync(HAPROXY) ? false : 'HAProxy is not installed (apt-get install haproxy): the load-balanced instance test is skipped');

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Instance {
  child: ChildProcess;
  url: string;
  port: number;
  output(): string;
}
async function startInstance(t: TestServer): Promise<Instance> {
  const dataDir = await tempDir('garrison-instance-');
  const secretKey = (await readFile(path.join(t.dataDir, 'secret.key'), 'utf8')).trim();
  // A short lease, so that its agents read offline soon after it is killed.
  const child = spawn(process.execPath, [path.join(import.meta.dirname, 'support/instance-process.ts'), dataDir, JSON.stringify(t.database), JSON.stringify({ instanceLeaseMs: LEASE_MS })], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, GARRISON_SECRET_KEY: secretKey },
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const ready = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('READY ')) resolve(line.slice(6));
      else err += `${line}\n`;
    });
    child.once('exit', (code) => reject(new Error(`instance exited ${code}: ${err}`)));
  });
  const { url, port } = JSON.parse(ready) as { url: string; port: number };
  return { child, url, port, output: () => err };
}

interface Haproxy {
  child: ChildProcess;
  url: string;
  output(): string;
  /** One command on HAProxy's admin socket (`disable server instances/i1`, `show stat`); its answer. */
  command(line: string): Promise<string>;
}

async function startHaproxy(ports: number[]): Promise<Haproxy> {
  const port = await freePort();
  const dir = await tempDir('garrison-haproxy-');
  const cfg = path.join(dir, 'haproxy.cfg');
  const socket = path.join(dir, 'admin.sock');
  await writeFile(
    cfg,
    [
      'global',
      '  maxconn 2000',
      `  stats socket ${socket} level admin`,
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 1h',
      '  timeout server 1h',
      'frontend agents',
      `  bind 127.0.0.1:${port}`,
      '  default_backend instances',
      'backend instances',
      // Long-lived agent connections: the least loaded instance takes the next one.
      '  balance leastconn',
      ...ports.map((p, i) => `  server i${i} 127.0.0.1:${p} check inter 300 fall 2 rise 1`),
      '',
    ].join('\n'),
  );
  const child = spawn(HAPROXY, ['-db', '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
    { what: 'HAProxy listening', output: () => out },
  );
  const command = (line: string) =>
    new Promise<string>((resolve, reject) => {
      let answer = '';
      const c = net.connect(socket, () => c.end(`${line}\n`));
      c.on('data', (d: Buffer) => (answer += d.toString()));
      c.on('end', () => resolve(answer));
      c.on('error', reject);
    });
  // Both instances up in HAProxy's view before anything goes through it.
  await waitFor(async () => (await command('show stat')).split('\n').filter((l) => /^instances,i\d+,/.test(l) && l.split(',')[17] === 'UP').length === ports.length, {
    what: 'HAProxy sees every instance up',
    output: () => out,
  });
  return { child, url: `https://127.0.0.1:${port}`, output: () => out, command };
}

async function agentTaskIds(agent: AgentProcess): Promise<string[]> {
  const r = await agentCli(agent.stateDir, ['task', 'list', '--json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as { id: string }[]).map((t) => t.id) : [];
}

describe('several instances on one PostgreSQL behind HAProxy', { skip }, () => {
  it('share the fleet: presence, task changes, run-now, revocation; a killed instance loses no result', async () => {
    const a = await startTestServer(postgresKind);
    let b: Instance | undefined;
    let lb: Haproxy | undefined;
    const agents: (AgentProcess & { deviceId: string })[] = [];
    try {
      // B joins with the database and the secret-store key only: it takes CA, TLS and signing keys from the database.
      b = await startInstance(a);
      const bApi = apiClient(a.fetch, b.url, a.token);
      const health = await bApi<{ status: string }>('GET', '/api/v1/health');
      assert.equal(health.status, 200, 'B presents a certificate from the CA agents of A pin');
      lb = await startHaproxy([a.server.port, b.port]);
      const output = () => `${agents.map((x) => x.output()).join('\n')}\n--- B ---\n${b?.output() ?? ''}\n--- HAProxy ---\n${lb?.output() ?? ''}`;

      const g = await a.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Fleet' });
      assert.equal(g.status, 201);
      // Enrolled and connected through the load balancer, one after another: leastconn spreads them.
      // Two go to B and two to A: the operator drains one instance at a time on HAProxy's admin socket.
      for (let i = 0; i < 4; i++) {
        await lb.command(`disable server instances/i${i < 2 ? 0 : 1}`);
        await lb.command(`enable server instances/i${i < 2 ? 1 : 0}`);
        const agent = await startAgent(a, g.body.id, `lb-${i}`, { serverUrl: lb.url });
        agents.push(agent);
        await waitFor(async () => (await a.api<{ online: boolean }>('GET', `/api/v1/devices/${agent.deviceId}`)).body.online, { what: `agent ${i} online`, output });
      }
      await lb.command('enable server instances/i0');
      const onA = agents.filter((x) => a.server.presence.isOnlineHere(x.deviceId));
      const onB = agents.filter((x) => !a.server.presence.isOnlineHere(x.deviceId));
      assert.ok(onA.length >= 1 && onB.length >= 1, `agents on both instances (A ${onA.length}, B ${onB.length})\n${output()}`);

      // 1. Presence: every device online, seen from either instance.
      for (const api of [a.api, bApi]) {
        await waitFor(async () => {
          const list = (await api<{ items: { id: string; online: boolean }[] }>('GET', `/api/v1/devices?groupId=${g.body.id}`)).body.items;
          return list.length === 4 && list.every((d) => d.online);
        }, { what: 'all four online on both instances', output });
      }

      // 2. A task made on A reaches the agents on B within seconds (the periodic reload is 30 s).
      const task = await a.api<Task>('POST', '/api/v1/tasks', {
        name: 'everywhere',
        type: 'script',
        scope: { type: 'group', groupId: g.body.id },
        schedule: { triggers: [{ type: 'on-demand' }] },
        settings: { shell: 'sh', script: 'echo ran-on-$(hostname)' },
      });
      assert.equal(task.status, 201, JSON.stringify(task.body));
      for (const agent of agents) await waitFor(async () => (await agentTaskIds(agent)).includes(task.body.id), { what: `the task on ${agent.deviceId}`, timeoutMs: 10_000, output });

      // 3. A run-now given to B reaches every agent, those on A included.
      const run = await bApi<{ targets: number; delivered: number }>('POST', `/api/v1/tasks/${task.body.id}/run`, {});
      assert.equal(run.status, 202, JSON.stringify(run.body));
      assert.equal(run.body.targets, 4);
      await waitFor(async () => {
        const rs = (await a.api<{ items: Run[] }>('GET', `/api/v1/tasks/${task.body.id}/results`)).body.items;
        return rs.length === 4 && rs.every((r) => r.state === 'succeeded');
      }, { what: 'four results of the run-now given to B', timeoutMs: 30_000, output });

      // 4. A device revoked through B, connected to A, is disconnected there at once.
      const victim = onA[0]!;
      assert.equal((await bApi('POST', `/api/v1/devices/${victim.deviceId}/credential/revoke`)).status, 200);
      await waitFor(async () => !a.server.presence.isOnlineHere(victim.deviceId), { what: 'revoked device disconnected from A', timeoutMs: 5000, output });
      const rest = agents.filter((x) => x !== victim);

      // An API token revoked through A is refused by B at once, though B has it cached.
      const made = await a.api<{ token: string; id: string }>('POST', '/api/v1/api-tokens', { name: 'short-lived' });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      const withToken = apiClient(a.fetch, b.url, made.body.token);
      assert.equal((await withToken('GET', '/api/v1/groups')).status, 200);
      assert.equal((await a.api('DELETE', `/api/v1/api-tokens/${made.body.id}`)).status, 204);
      await waitFor(async () => (await withToken('GET', '/api/v1/groups')).status === 401, { what: 'the revoked token refused by B', timeoutMs: 5000, output });

      // 5. B is killed during a run-now: its agents move to A through the load balancer, and
      //    every result is stored, the runs B's agents were doing included.
      const marker = path.join(await tempDir(), 'go');
      const slow = await a.api<Task>('POST', '/api/v1/tasks', {
        name: 'through the crash',
        type: 'script',
        scope: { type: 'group', groupId: g.body.id },
        schedule: { triggers: [{ type: 'on-demand' }] },
        settings: { shell: 'sh', script: `i=0; while [ ! -f '${marker}' ]; do sleep 0.1; i=$((i+1)); [ $i -gt 900 ] && exit 9; done; echo done` },
      });
      assert.equal(slow.status, 201);
      for (const agent of rest) await waitFor(async () => (await agentTaskIds(agent)).includes(slow.body.id), { what: 'the slow task everywhere', timeoutMs: 10_000, output });
      assert.equal((await a.api('POST', `/api/v1/tasks/${slow.body.id}/run`, {})).status, 202);
      await waitFor(async () => {
        const rs = (await a.api<{ items: Run[] }>('GET', `/api/v1/tasks/${slow.body.id}/results`)).body.items;
        return rs.filter((r) => r.state === 'running').length === rest.length;
      }, { what: 'the slow run running on the three agents', timeoutMs: 20_000, output });
      const wereOnB = rest.filter((x) => !a.server.presence.isOnlineHere(x.deviceId));
      // One more agent that knows only B's own address: it cannot move when B dies.
      const stranded = await startAgent(a, g.body.id, 'b-only', { serverUrl: b.url });
      agents.push(stranded);
      await waitFor(async () => (await a.api<{ online: boolean }>('GET', `/api/v1/devices/${stranded.deviceId}`)).body.online, { what: 'the B-only agent online, seen from A', output });
      // B's lease as the database holds it when B dies: B renews it every third of the lease,
      // later when its loop is busy, so what is left of it is read, not assumed.
      const leaseUntil = async () => {
        const rows = await a.server.db.kysely.selectFrom('server_instances').select(['id', 'lease_until']).where('id', '!=', a.server.bus.instanceId).execute();
        assert.equal(rows.length, 1, "B's instance row is there when it dies");
        return Date.parse(rows[0]!.lease_until);
      };
      b.child.kill('SIGKILL');
      await new Promise((r) => b!.child.once('exit', r));
      const bLeaseUntil = await leaseUntil();
      await writeFile(marker, '');
      let states = '';
      await waitFor(async () => {
        const rs = (await a.api<{ items: Run[] }>('GET', `/api/v1/tasks/${slow.body.id}/results`)).body.items;
        states = JSON.stringify(rs.map((r) => [r.deviceId, r.state, r.attempt]));
        // (The revoked device is still a target: its run waits, pending, until it expires.)
        return rest.every((x) => rs.find((r) => r.deviceId === x.deviceId)?.state === 'succeeded');
      }, { what: 'every result stored after B died', timeoutMs: 60_000, output: () => `${states}\n${output()}` });
      await waitFor(async () => wereOnB.every((x) => a.server.presence.isOnlineHere(x.deviceId)), { what: "B's agents connected to A", timeoutMs: 30_000, output });
      // The agent stranded on the dead instance reads offline once B's lease has run out (B never said goodbye).
      await waitFor(async () => !(await a.api<{ online: boolean }>('GET', `/api/v1/devices/${stranded.deviceId}`)).body.online, { what: 'the stranded agent offline within the lease', timeoutMs: LEASE_MS * 2 + 5000, output });
      // A reads the leases once per renewal period, so its view of B's may be one renewal older;
      // under load its read comes late too (CI saw it fail at one period), so two are allowed.
      // Still well after the kill: the agent did not read offline because its connection broke.
      assert.ok(Date.now() >= bLeaseUntil - (2 * LEASE_MS) / 3, 'offline because the lease ran out, not before');
    } finally {
      await Promise.all(agents.map((x) => x.stop().catch(() => {})));
      lb?.child.kill('SIGKILL');
      if (b && b.child.exitCode === null) b.child.kill('SIGKILL');
      await a.close();
    }
  });
});
