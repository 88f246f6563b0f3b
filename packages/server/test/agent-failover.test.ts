/**
 * Agent failover between server instances (issue 14): two real instances on one PostgreSQL
 * database and one data folder (so they share keys and TLS material, and the agent's pinned
 * CA is valid for both), a real agent process enrolled with both addresses. The first
 * instance goes away while a run is in progress; the run's result is spooled while no
 * instance can be reached, and reaches the second one when it can.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import type { Run, Task } from '@garrison/protocol';
import { agentCli, pgSkip, postgresKind, spawnAgent, startAgent, startProxy, startTestServer, tempDir, waitFor, type AgentProcess, type CuttableProxy, type TestServer } from './helpers.ts';

interface Status {
  connected: boolean;
  serverUrl: string;
  serverUrls: string[];
  spooledReports: number;
}
async function status(stateDir: string): Promise<Status | undefined> {
  const r = await agentCli(stateDir, ['status', '--json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as Status) : undefined;
}
interface StoredCredential {
  serverUrl: string;
  serverUrls?: string[];
}
async function credentialFile(stateDir: string): Promise<StoredCredential> {
  return JSON.parse(await readFile(path.join(stateDir, 'credential.json'), 'utf8')) as StoredCredential;
}

describe('agent failover between server instances (postgres)', { skip: pgSkip }, () => {
  it('moves to the next address when its instance goes away, and the spooled result of a run in progress arrives there', async () => {
    const a = await startTestServer(postgresKind);
    let b: TestServer | undefined;
    let proxy: CuttableProxy | undefined;
    let agent: AgentProcess | undefined;
    let again: AgentProcess | undefined;
    try {
      // The second instance on the same database and data folder (PostgreSQL: no folder lock).
      b = await startTestServer(postgresKind, { restartOf: a });
      // The agent reaches the second instance through a proxy the test can cut: an outage of
      // every address, so that the result has to wait in the spool.
      proxy = await startProxy(b.server.port);
      const g = await a.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Failover' });
      assert.equal(g.status, 201, JSON.stringify(g.body));
      const stateDir = await tempDir('garrison-agent-');
      agent = await startAgent(a, g.body.id, 'failover-1', { stateDir, serverUrl: `${a.server.url},${proxy.url}` });
      const output = agent.output;
      // Both addresses stored; the first also as serverUrl, for older agents.
      assert.deepEqual(await credentialFile(stateDir), { ...(await credentialFile(stateDir)), serverUrl: a.server.url, serverUrls: [a.server.url, proxy.url] });
      await waitFor(async () => (await status(stateDir))?.serverUrl === a.server.url && true, { what: 'agent on the first address', output });

      // A run that goes on until the test lets it end.
      const marker = path.join(await tempDir(), 'go');
      const task = await a.api<Task>('POST', '/api/v1/tasks', {
        name: 'failover run',
        type: 'script',
        scope: { type: 'group', groupId: g.body.id },
        schedule: { triggers: [{ type: 'on-demand' }] },
        settings: { shell: 'sh', script: `i=0; while [ ! -f '${marker}' ]; do sleep 0.1; i=$((i+1)); [ $i -gt 900 ] && exit 9; done; echo finished-after-failover` },
      });
      assert.equal(task.status, 201, JSON.stringify(task.body));
      assert.equal((await a.api('POST', `/api/v1/tasks/${task.body.id}/run`, {})).status, 202);
      await waitFor(async () => (await a.api<{ items: Run[] }>('GET', `/api/v1/tasks/${task.body.id}/results`)).body.items.some((r) => r.state === 'running'), { what: 'run in progress', output });

      // Every address goes away: the first instance is closed, the second cut off.
      proxy.cut();
      await a.server.close();
      await waitFor(async () => (await status(stateDir))?.connected === false, { what: 'agent disconnected', output });
      // The run ends while no instance answers: its result waits in the spool.
      await writeFile(marker, '');
      await waitFor(async () => ((await status(stateDir))?.spooledReports ?? 0) >= 1, { what: 'result spooled', output });
      assert.equal((await b.api<{ items: Run[] }>('GET', `/api/v1/tasks/${task.body.id}/results`)).body.items[0]?.state, 'running');

      // The second instance is reachable again: the agent connects there and sends the spool.
      proxy.restore();
      const run = await waitFor(async () => (await b!.api<{ items: Run[] }>('GET', `/api/v1/tasks/${task.body.id}/results`)).body.items.find((r) => r.state === 'succeeded'), { what: 'result at the second instance', timeoutMs: 60_000, output });
      assert.match(run.outputTail ?? '', /finished-after-failover/);
      const s = await waitFor(async () => {
        const x = await status(stateDir);
        return x?.connected && x.spooledReports === 0 && x;
      }, { what: 'agent connected to the second address with an empty spool', output });
      // It stays on the address that works.
      assert.equal(s.serverUrl, proxy.url);
      assert.deepEqual(s.serverUrls, [a.server.url, proxy.url]);
      await waitFor(async () => (await b!.api<{ online: boolean }>('GET', `/api/v1/devices/${(agent as AgentProcess & { deviceId: string }).deviceId}`)).body.online, { what: 'device online at the second instance', output });
      await agent.stop();

      // A credential file from before the list (serverUrl only) still works, and a --server
      // list given to the enrolled agent replaces the stored one.
      const { serverUrls: _list, ...old } = JSON.parse(await readFile(path.join(stateDir, 'credential.json'), 'utf8')) as StoredCredential & Record<string, unknown>;
      await writeFile(path.join(stateDir, 'credential.json'), JSON.stringify({ ...old, serverUrl: a.server.url }), { mode: 0o600 });
      again = spawnAgent(['--server', b.server.url, '--server', proxy.url], stateDir);
      await waitFor(async () => (await status(stateDir))?.connected && true, { what: 'restarted agent connected', output: again.output });
      assert.deepEqual(await credentialFile(stateDir), { ...(await credentialFile(stateDir)), serverUrl: b.server.url, serverUrls: [b.server.url, proxy.url] });
      assert.equal((await status(stateDir))?.serverUrl, b.server.url);
    } finally {
      await agent?.kill('SIGKILL');
      await again?.kill('SIGKILL');
      await proxy?.close();
      await b?.server.close();
      // a's server is closed by the test (or closed here if the test failed first); then the shared database and folder go.
      await a.server.close().catch(() => {});
      await a.cleanup();
    }
  });
});
