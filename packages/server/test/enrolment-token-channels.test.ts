/**
 * How an enrolment token reaches the agent, with real agent processes and a real server: never
 * on a command line (`--token VALUE` is refused without repeating the value), but from a file
 * only its owner can read (`--token-file`), from the environment (`GARRISON_ENROL_TOKEN`, which
 * the agent's tasks do not inherit) or from standard input (`--token-stdin`). While the agent
 * runs, /proc shows the token in neither its command line nor (file, stdin) its environment.
 * The Linux install script of an installer link deletes itself as it starts and hands the
 * token to the agent on its standard input.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Run, Task } from '@garrison/protocol';
import { type AgentProcess, sh, spawnAgent, tempDir, useTestServer, waitFor } from './helpers.ts';

const onLinux = process.platform === 'linux' ? false : '/proc and the Linux install script are tested on Linux';


describe('enrolment token channels', () => {
  const t = useTestServer();
  let groupId: string;
  let work: string;

  before(async () => {
    groupId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Token channels' })).body.id;
    work = await tempDir('garrison-token-channels-');
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  const newToken = async (): Promise<string> => {
    const r = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId, maxUses: 1, expiresInMinutes: 10 });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.token;
  };
  const start = (args: string[], env: Record<string, string> = {}, opts: { stdin?: string } = {}): AgentProcess => {
    return t.track(spawnAgent(args, path.join(work, `state-${Math.random().toString(36).slice(2)}`), env, opts));
  };
  const exited = (a: AgentProcess) => waitFor(async () => (a.child.exitCode !== null ? { code: a.child.exitCode } : undefined), { what: 'the agent to exit', output: a.output });
  const online = (name: string, a: AgentProcess) =>
    waitFor(async () => (await t.api<{ items: { id: string; name: string; online: boolean }[] }>('GET', `/api/v1/devices?search=${encodeURIComponent(name)}`)).body.items.find((d) => d.name === name && d.online), {
      what: `agent ${name} online`,
      output: a.output,
    });
  const proc = async (pid: number) => ({
    cmdline: (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replaceAll('\0', ' '),
    environ: (await readFile(`/proc/${pid}/environ`, 'utf8')).replaceAll('\0', '\n'),
  });

  it('refuses --token VALUE with a message that says how to give it and does not repeat it', async () => {
    const value = await newToken();
    for (const args of [
      ['--server', t.server.url, '--token', value, '--ca', t.caFile, '--name', 'refused'],
      ['--server', t.server.url, `--token=${value}`, '--ca', t.caFile],
      ['enrol', '--server', t.server.url, '--token', value, '--ca', t.caFile],
    ]) {
      const a = start(args);
      assert.equal((await exited(a)).code, 2, a.output());
      assert.match(a.output(), /--token is not accepted/);
      assert.match(a.output(), /--token-file PATH/);
      assert.match(a.output(), /--token-stdin/);
      assert.match(a.output(), /GARRISON_ENROL_TOKEN/);
      assert.ok(!a.output().includes(value), a.output());
    }
    // Nothing enrolled with it.
    const tokens = (await t.api<{ items: { uses: number; state: string }[] }>('GET', '/api/v1/enrolment-tokens')).body.items;
    assert.ok(tokens.every((x) => x.uses === 0), JSON.stringify(tokens));
  });

  it('refuses a token file that other users may read, without showing its content', { skip: process.platform === 'win32' ? 'Windows has no POSIX mode bits' : false }, async () => {
    const value = await newToken();
    const file = path.join(work, 'open-token');
    await writeFile(file, `${value}\n`, { mode: 0o644 });
    const a = start(['--server', t.server.url, '--token-file', file, '--ca', t.caFile, '--name', 'open-file']);
    assert.equal((await exited(a)).code, 2, a.output());
    assert.match(a.output(), /may be read or written by other users \(mode 644\).*chmod 600/);
    assert.ok(!a.output().includes(value), a.output());
    // Both one-shot channels at once is a usage error too.
    const both = start(['enrol', '--server', t.server.url, '--token-file', file, '--token-stdin', '--ca', t.caFile], {}, { stdin: `${value}\n` });
    assert.equal((await exited(both)).code, 2, both.output());
    assert.match(both.output(), /not both/);
  });

  it('enrols with --token-file and keeps the token out of the command line and the environment', { skip: onLinux }, async () => {
    const value = await newToken();
    const file = path.join(work, 'token-file');
    await writeFile(file, `  ${value}\n\n`, { mode: 0o600 });
    const a = start(['--server', t.server.url, '--token-file', file, '--ca', t.caFile, '--name', 'via-file']);
    await online('via-file', a);
    const p = await proc(a.child.pid!);
    assert.ok(p.cmdline.includes('--token-file'), p.cmdline);
    assert.ok(!p.cmdline.includes(value), p.cmdline);
    assert.ok(!p.environ.includes(value), 'the token is not in the agent environment');
    // Enrolled: a restart with the same arguments does not need the file any more.
    await a.stop();
    await rm(file);
    const again = t.track(spawnAgent(['--server', t.server.url, '--token-file', file, '--ca', t.caFile, '--name', 'via-file'], a.stateDir));
    await online('via-file', again);
  });

  it('enrols with --token-stdin and keeps the token out of the command line and the environment', { skip: onLinux }, async () => {
    const value = await newToken();
    const a = start(['--server', t.server.url, '--token-stdin', '--ca', t.caFile, '--name', 'via-stdin'], {}, { stdin: `${value}\nnot for the agent\n` });
    await online('via-stdin', a);
    const p = await proc(a.child.pid!);
    assert.ok(!p.cmdline.includes(value), p.cmdline);
    assert.ok(!p.environ.includes(value), 'the token is not in the agent environment');
  });

  it('enrols with GARRISON_ENROL_TOKEN, which neither its command line nor the tasks it runs see', { skip: onLinux }, async () => {
    const value = await newToken();
    const a = start(['--server', t.server.url, '--ca', t.caFile, '--name', 'via-env'], { GARRISON_ENROL_TOKEN: value });
    const device = await online('via-env', a);
    const p = await proc(a.child.pid!);
    assert.ok(!p.cmdline.includes(value), p.cmdline);
    // (Linux keeps the environment a process was started with in /proc/PID/environ, which only
    // the same user and root may read; what the agent itself starts no longer gets it.)
    const task = (
      await t.api<Task>('POST', '/api/v1/tasks', {
        name: 'what the task environment holds',
        type: 'script',
        settings: { shell: 'sh', script: 'echo "token=${GARRISON_ENROL_TOKEN:-unset}"; env' },
        schedule: { triggers: [{ type: 'on-demand' }] },
        scope: { type: 'local', deviceId: device.id },
      })
    ).body;
    assert.ok(task.id, JSON.stringify(task));
    await t.api('POST', `/api/v1/tasks/${task.id}/run`, {});
    const run = await waitFor(async () => (await t.api<{ items: Run[] }>('GET', `/api/v1/tasks/${task.id}/results`)).body.items.find((r) => r.state === 'succeeded'), { what: 'the task ran', output: a.output });
    assert.match(run.outputTail ?? '', /token=unset/);
    assert.ok(!(run.outputTail ?? '').includes(value), run.outputTail ?? '');
  });

  describe('the Linux install script of an installer link', { skip: onLinux || (!spawnSync('curl', ['--version']).stdout ? 'curl is missing' : false) }, () => {
    const link = async (): Promise<{ url: string; token: string }> => {
      const r = await t.api<{ url: string }>('POST', '/api/v1/installers', { groupId, maxUses: 5 });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return { url: r.body.url, token: r.body.url.split('/').at(-1)! };
    };
    const download = async (url: string, dir: string): Promise<{ file: string; text: string }> => {
      const res = await t.fetch(`${url}/linux.sh`);
      assert.equal(res.status, 200);
      const text = await res.text();
      const file = path.join(dir, 'garrison-install.sh');
      await writeFile(file, text, { mode: 0o600 });
      return { file, text };
    };

    it('deletes itself, hands the agent the token on stdin, and enrols the machine', async () => {
      const { url, token } = await link();
      const dir = await tempDir('garrison-install-run-');
      try {
        const { file, text } = await download(url, dir);
        // The agent invocation carries no token argument: the token comes on its stdin.
        const enrolLine = text.split('\n').find((l) => /garrison-agent" enrol /.test(l));
        assert.ok(enrolLine, text);
        const [feed, agentCall] = enrolLine.split(' | ');
        assert.match(feed!, /printf '%s\\n' "\$TOKEN"$/);
        assert.match(agentCall!, /enrol --token-stdin /);
        assert.doesNotMatch(agentCall!, /--token[ =]|TOKEN|GARRISON_ENROL_TOKEN/);
        assert.ok(!agentCall!.includes(token));
        // No command of the script gets the token as an argument: it is only assigned and printed into pipes.
        const uses = text.split('\n').filter((l) => l.includes('$TOKEN') || l.includes(token));
        for (const l of uses) assert.match(l, /^TOKEN=|^(if ! OUT="\$\()?printf '(%s|url = "%s")\\n' "(\$TOKEN|\$SERVER\/install\/\$TOKEN\/agent\/\$PLATFORM)" \| /, l);

        const r = await sh('sh garrison-install.sh', dir, {
          GARRISON_INSTALL_DIR: path.join(dir, 'opt/garrison-agent'),
          GARRISON_UNIT_DIR: path.join(dir, 'etc/systemd/system'),
          GARRISON_NO_START: '1',
          GARRISON_NAME: 'installed-by-script',
        });
        assert.equal(r.code, 0, r.out);
        assert.equal(existsSync(file), false, 'the script removed itself');
        const deviceId = /garrison-install: enrolled device (\S+)/.exec(r.out)?.[1];
        assert.ok(deviceId, r.out);
        assert.equal((await t.api<{ groupId: string }>('GET', `/api/v1/devices/${deviceId}`)).body.groupId, groupId);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('deletes itself before anything can make it fail', async () => {
      const { url } = await link();
      const dir = await tempDir('garrison-install-fail-');
      try {
        const { file } = await download(url, dir);
        // A relative install folder is refused at once, before anything is installed.
        const r = await sh('sh garrison-install.sh', dir, { GARRISON_INSTALL_DIR: 'relative/dir', GARRISON_NO_START: '1' });
        assert.equal(r.code, 3, r.out);
        assert.match(r.out, /GARRISON_INSTALL_DIR must be an absolute path/);
        assert.equal(existsSync(file), false, 'the script removed itself');
        // Run from standard input ($0 is the shell), it deletes no file of the folder.
        await writeFile(path.join(dir, 'sh'), 'not the script\n');
        const { text } = await download(url, work);
        await writeFile(path.join(work, 'piped.sh'), text, { mode: 0o600 });
        await rm(path.join(work, 'garrison-install.sh'));
        const fromStdin = await sh(`sh -s < ${JSON.stringify(path.join(work, 'piped.sh'))}`, dir, { GARRISON_INSTALL_DIR: 'relative/dir' });
        assert.equal(fromStdin.code, 3, fromStdin.out);
        assert.equal(existsSync(path.join(dir, 'sh')), true);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});
