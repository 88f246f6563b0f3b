/**
 * The agent's local CLI with a real agent (issue 13): its socket where a long state folder
 * path cannot break it, and `garrison agent task create|set` in the administrator's syntax,
 * checked by the agent against the task type's schema for every client of the local API.
 * Agent-side behaviour: SQLite only.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { stat, writeFile } from 'node:fs/promises';
import type { Task } from '@garrison/protocol';
import { findLocalSocket } from '@garrison/agent/local-api';
import { agentCli, startAgent, startTestServer, tempDir, waitFor, type AgentProcess, type TestServer } from './helpers.ts';

interface LocalTask { id: string; name: string; local: boolean; settings: Record<string, unknown>; schedule: Task['schedule'] }

function rawLocal(stateDir: string, method: string, url: string, body?: unknown): Promise<{ status: number; json: { error?: { code: string; message: string } } & Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: findLocalSocket(stateDir), method, path: url, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

describe('agent local CLI', () => {
  let t: TestServer;
  let agent: AgentProcess & { deviceId: string };
  let stateDir: string;
  before(async () => {
    t = await startTestServer();
    const g = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Local CLI' })).body.id;
    // A state folder path of about 150 characters: agent.sock in it would be past the 108
    // bytes a Unix socket address holds.
    const base = await tempDir('garrison-agent-');
    stateDir = path.join(base, 'a-state-folder-with-a-long-name'.padEnd(60, '-'), 'x'.repeat(Math.max(1, 150 - base.length - 62)));
    assert.ok(stateDir.length >= 145, `${stateDir.length}`);
    agent = await startAgent(t, g, 'local-cli', { stateDir });
  });
  after(async () => {
    await agent?.stop();
    await t?.close();
  });
  const cli = (args: string[]) => agentCli(stateDir, args);
  const localTasks = async () => JSON.parse((await cli(['task', 'list', '--json'])).stdout) as LocalTask[];

  it('works with a state folder path of ~150 characters: the socket is in a private folder of the agent user', async () => {
    const status = await cli(['status', '--json']);
    assert.equal(status.code, 0, status.stderr + agent.output());
    assert.equal((JSON.parse(status.stdout) as { deviceId: string }).deviceId, agent.deviceId);
    const socket = findLocalSocket(stateDir);
    assert.ok(!socket.startsWith(stateDir), socket);
    assert.ok(Buffer.byteLength(socket) < 104, socket);
    const dir = await stat(path.dirname(socket));
    assert.equal(dir.mode & 0o777, 0o700);
    assert.equal(dir.uid, process.getuid!());
    assert.equal((await stat(socket)).mode & 0o777, 0o600);
    // The agent says where it listens.
    assert.ok((await cli(['events', '--json'])).stdout.includes(socket));
  });

  it('creates and changes a local task with the administrator CLI syntax', async () => {
    const created = await cli(['task', 'create', '--name', 'every quarter hour', '--schedule', 'every:15m', '--command', 'echo local', '--timeout', '30', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const id = (JSON.parse(created.stdout) as { id: string }).id;
    let mine = (await localTasks()).find((x) => x.id === id)!;
    assert.deepEqual(mine.settings, { command: 'echo local', timeoutSeconds: 30 });
    assert.deepEqual(mine.schedule.triggers.map((x) => x.type), ['interval']);
    // set: only what the options name changes, over the current task.
    const set = await cli(['task', 'set', id, '--schedule', 'daily:02:30', '--schedule', 'agent-start', '--randomize', '10', '--env', 'MODE=quick']);
    assert.equal(set.code, 0, set.stderr);
    mine = (await localTasks()).find((x) => x.id === id)!;
    assert.deepEqual(mine.schedule.triggers.map((x) => x.type), ['daily', 'agent-start']);
    assert.equal(mine.schedule.randomizeMinutes, 10);
    assert.deepEqual(mine.settings, { command: 'echo local', timeoutSeconds: 30, env: { MODE: 'quick' } });
    // The JSON forms still work.
    const json = await cli(['task', 'create', '--name', 'json form', '--schedule', '{"triggers":[{"type":"on-demand"}]}', '--settings', '{"command":"true"}']);
    assert.equal(json.code, 0, json.stderr);
    // The server got the task in the same form.
    await waitFor(async () => (await t.api<Task>('GET', `/api/v1/tasks/${id}`)).body.schedule?.randomizeMinutes === 10, { what: 'the local task synced', output: agent.output });
  });

  it('refuses a task that does not match its type, with the error code, before accepting it', async () => {
    const before = (await localTasks()).length;
    const refuse = async (args: string[], code: string | RegExp, exit = 1) => {
      const r = await cli(['task', 'create', '--name', 'bad', ...args]);
      assert.equal(r.code, exit, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, typeof code === 'string' ? new RegExp(`error ${code}:`) : code);
    };
    await refuse(['--schedule', 'on-demand', '--settings', '{"command":"true","bogus":1}'], 'SETTINGS_INVALID');
    await refuse(['--schedule', 'on-demand', '--settings', '{"command":"true","timeoutSeconds":"soon"}'], 'SETTINGS_INVALID');
    await refuse(['--schedule', 'on-demand'], 'SETTINGS_INVALID');
    await refuse(['--schedule', 'on-demand', '--command', 'true', '--type', 'no-such-type'], 'TASK_TYPE_UNKNOWN');
    await refuse(['--schedule', 'on-demand', '--command', 'true', '--product', 'no-such-product'], 'PRODUCT_NOT_INSTALLED');
    await refuse(['--schedule', '{"triggers":[{"type":"cron","expression":"99 * * * *"}]}', '--command', 'true'], 'SCHEDULE_INVALID');
    // A plug-in's own type, against the schema of its server half.
    await refuse(['--schedule', 'on-demand', '--product', 'sample-scanner', '--type', 'scan', '--settings', '{"paths":[]}'], 'SETTINGS_INVALID');
    await refuse(['--schedule', 'on-demand', '--product', 'sample-scanner', '--type', 'start', '--settings', '{"now":true}'], 'SETTINGS_INVALID');
    // Malformed options are usage errors of the CLI (exit 2), in the administrator CLI's words.
    await refuse(['--schedule', 'every:soon', '--command', 'true'], /--schedule/, 2);
    await refuse(['--command', 'true'], /give a schedule/, 2);
    await refuse(['--schedule', 'on-demand', '--shell', 'fish', '--command', 'true'], /--shell must be one of/, 2);
    // The agent itself refuses, whatever the client: a raw request over the socket.
    const raw = await rawLocal(stateDir, 'POST', '/tasks', { name: 'raw', type: 'script', settings: { script: 'true', command: 'true' }, schedule: { triggers: [{ type: 'on-demand' }] } });
    assert.equal(raw.status, 400);
    assert.equal(raw.json.error?.code, 'SETTINGS_INVALID');
    // A change is checked too.
    const [target] = (await localTasks()).filter((x) => x.local);
    const patch = await rawLocal(stateDir, 'PATCH', `/tasks/${target!.id}`, { settings: { command: 'true', successExitCodes: [] } });
    assert.equal(patch.json.error?.code, 'SETTINGS_INVALID');
    const retype = await rawLocal(stateDir, 'PATCH', `/tasks/${target!.id}`, { type: 'other' });
    assert.equal(retype.json.error?.code, 'VALIDATION_FAILED');
    assert.equal((await localTasks()).length, before, 'nothing was accepted');
    const script = path.join(await tempDir('garrison-script-'), 'job.sh');
    await writeFile(script, 'echo from a file\n');
    const fromFile = await cli(['task', 'create', '--name', 'from a file', '--schedule', 'on-demand', '--script-file', script, '--shell', 'sh', '--json']);
    assert.equal(fromFile.code, 0, fromFile.stderr);
  });
});
