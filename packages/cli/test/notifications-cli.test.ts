/**
 * `garrison notification` against a real server (in process): a rule created with a webhook
 * to a real HTTP receiver, listed, tested (the receiver gets the call), its deliveries shown,
 * and deleted; usage errors say what to give.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTestServer, waitFor, type TestServer } from '../../server/test/helpers.ts';
import { cliInProcess, type CliResult } from './support/run-cli.ts';

describe('garrison notification against a real server', { timeout: 120_000 }, () => {
  let t: TestServer;
  let home: string;
  let receiver: Server;
  let url: string;
  const calls: string[] = [];

  const env = () => ({ HOME: home, XDG_CONFIG_HOME: home, GARRISON_URL: t.server.url, GARRISON_TOKEN: t.token, GARRISON_CA: t.caFile });
  const run = (args: string[]): Promise<CliResult> => cliInProcess(args, env());
  const ok = async (args: string[]): Promise<string> => {
    const r = await run(args);
    assert.equal(r.code, 0, `garrison ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };

  before(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'garrison-notify-cli-'));
    receiver = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        calls.push(req.url ?? '');
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/cli-hook`;
    t = await startTestServer(undefined, { webhookAllow: ['127.0.0.1/32'] });
    await t.api('POST', '/api/v1/groups', { name: 'Notified' });
  });
  after(async () => {
    await t?.close();
    receiver.closeAllConnections();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
    await rm(home, { recursive: true, force: true });
  });

  it('creates, lists, tests and deletes a rule, and shows its deliveries', async () => {
    assert.match(await ok(['notification', 'rule', 'create', 'CLI rule', '--kind', 'run.failed', '--kind', 'agent.', '--group', 'Notified', '--threshold', '2/10', '--throttle', '30', '--webhook', url]), /^created notification rule "CLI rule" \(\S+\)/);
    const list = await ok(['notification', 'rule', 'list']);
    assert.match(list, /CLI rule\s+yes\s+.+\/Notified\s+run\.failed,agent\.\s+>= info\s+2\/10m\s+30m\s+webhook http:\/\/127\.0\.0\.1:\d+\/cli-hook/);
    assert.match(await ok(['notification', 'rule', 'test', 'cli rule']), /test notification \S+ queued: webhook to http:\/\/127\.0\.0\.1:\d+\/cli-hook/);
    await waitFor(async () => calls.includes('/cli-hook'), { what: 'the webhook call' });
    await waitFor(async () => /CLI rule \(test\)\s+webhook\s+\S+\s+sent\s+1\s+200\s+HTTP 200/.test(await ok(['notification', 'deliveries', '--rule', 'CLI rule'])), { what: 'the delivery listed as sent' });
    const json = JSON.parse(await ok(['notification', 'deliveries', '--json', '--limit', '1'])) as { state: string }[];
    assert.equal(json.length, 1);
    assert.match(await ok(['notification', 'rule', 'delete', 'CLI rule']), /deleted notification rule "CLI rule"/);
    assert.doesNotMatch(await ok(['notification', 'rule', 'list']), /CLI rule/);
  });

  it('refuses a rule without an action and a bad threshold, and passes the API errors on', async () => {
    const none = await run(['notification', 'rule', 'create', 'x', '--kind', 'run.failed']);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /at least one action/);
    const bad = await run(['notification', 'rule', 'create', 'x', '--kind', 'run.failed', '--threshold', 'two', '--email', 'a@example.com']);
    assert.match(bad.stderr, /--threshold is COUNT or COUNT\/MINUTES/);
    const url2 = await run(['notification', 'rule', 'create', 'x', '--kind', 'run.failed', '--webhook', 'ftp://example.com/x']);
    assert.notEqual(url2.code, 0);
    assert.match(url2.stderr, /VALIDATION_FAILED|not an http:\/\/ or https:\/\/ URL/);
  });
});
