/**
 * One agent per state folder, one server per SQLite data folder: real processes. A second
 * agent on a folder in use exits with STATE_FOLDER_IN_USE and the holder's pid while the first
 * stays connected; a second server is refused with DATA_FOLDER_IN_USE; after kill -9 of the
 * holder the folder can be used again at once; a server closed in process releases it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { startServer } from '../src/app.ts';
import { AppError } from '../src/errors.ts';
import { agentCli, BIN, spawnAgent, sqliteKind, startAgent, startTestServer, tempDir, useTestServer, waitFor, type AgentProcess } from './helpers.ts';

const exitOf = (a: AgentProcess) => new Promise<number | null>((resolve) => (a.child.exitCode !== null ? resolve(a.child.exitCode) : a.child.once('exit', (code) => resolve(code))));

describe('one agent per state folder', () => {
  const t = useTestServer(sqliteKind);

  it('a second agent is refused with the holder\'s pid and the first stays connected; after kill -9 the folder is free', async () => {
    const g = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Locked' })).body.id;
    const stateDir = await tempDir('garrison-agent-');
    const first = t.track(await startAgent(t, g, 'lock-1', { stateDir }));
    const connections = async () => (await t.api<{ items: { kind: string }[] }>('GET', `/api/v1/events?deviceId=${first.deviceId}&kind=agent.connected`)).body.items.length;
    const before = await connections();

    const second = t.track(spawnAgent([], stateDir));
    assert.equal(await exitOf(second), 73);
    assert.match(second.output(), /STATE_FOLDER_IN_USE: the state folder .* is in use by another agent: pid (\d+)/);
    assert.equal(Number(/pid (\d+)/.exec(second.output())![1]), first.child.pid);
    assert.match(second.output(), /another --state folder/);

    // The first kept its one connection (a second agent would have replaced it at once).
    const status = await agentCli(stateDir, ['status', '--json']);
    assert.equal(JSON.parse(status.stdout).connected, true, status.stdout + status.stderr);
    assert.equal(first.child.exitCode, null);
    assert.equal(await connections(), before);

    await first.kill('SIGKILL');
    const third = t.track(spawnAgent([], stateDir));
    await waitFor(async () => JSON.parse((await agentCli(stateDir, ['status', '--json'])).stdout).connected === true, { what: 'the agent started after kill -9 connected', output: third.output });
    assert.equal(third.child.exitCode, null);
    await third.stop();
  });
});

describe('one server per SQLite data folder', () => {
  it('in process: refused while running, usable after close', async () => {
    const t = await startTestServer(sqliteKind);
    try {
      const config = { dataDir: t.dataDir, database: t.database, port: 0, logger: pino({ level: 'silent' }), agentBuildDir: path.join(os.tmpdir(), 'garrison-test-agent-builds') };
      await assert.rejects(startServer(config), (err: AppError) => err instanceof AppError && err.code === 'DATA_FOLDER_IN_USE' && err.message.includes(`pid ${process.pid} (this very process)`));
      await t.server.close();
      const again = await startServer(config);
      await again.close();
    } finally {
      await t.cleanup();
    }
  });

  it('real processes: the second is refused naming the first; after kill -9 of the first it starts', async () => {
    const dataDir = await tempDir();
    const serve = () => {
      const child = spawn(process.execPath, [BIN, 'server', '--data', dataDir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GARRISON_LOG_LEVEL: 'warn' } });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      return { child, output: () => out, exited };
    };
    const first = serve();
    try {
      await waitFor(async () => first.output().includes('listening on'), { what: 'the first server', output: first.output, timeoutMs: 30_000 });
      const second = serve();
      assert.equal(await second.exited, 73, second.output());
      assert.match(second.output(), new RegExp(`DATA_FOLDER_IN_USE: the data folder .* is in use by another Garrison server: pid ${first.child.pid} `));
      assert.match(second.output(), /another --data folder/);
      assert.equal(first.child.exitCode, null);
      first.child.kill('SIGKILL');
      await first.exited;
      const back = await startServer({ dataDir, port: 0, logger: pino({ level: 'silent' }), agentBuildDir: path.join(os.tmpdir(), 'garrison-test-agent-builds') });
      await back.close();
    } finally {
      first.child.kill('SIGKILL');
      const { rm } = await import('node:fs/promises');
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
