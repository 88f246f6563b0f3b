/**
 * Installer links for real: the one-line command's own curl (public key pinned) fetches the
 * Linux script (which deletes itself as it starts), which downloads the single-executable agent, checks its SHA-256, installs it
 * in its own folder with a systemd unit, and enrols the machine; the unit's ExecStart is then
 * started as systemd would, the device comes online and the deployment task installs the
 * group's product; the console's uninstall removes it again. Expired, revoked and used-up
 * links, a wrong pin, a tampered agent and a forged CA each fail with a clear message.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { PackageManifest } from '@garrison/protocol';
import { hostPlatform } from '@garrison/agent/sea';
import { sh, startTestServer, tempDir, type TestServer, waitFor } from './helpers.ts';
import { buildArchive } from './package-fixtures.ts';

const skip = process.platform !== 'linux' ? 'installer links are tested on Linux' : !spawnSync('curl', ['--version']).stdout ? 'curl is missing' : false;

interface Installer {
  url: string;
  caFingerprint: string;
  publicKeyPin: string;
  commands: { linux: string; macos: string; windows: string };
  token: { id: string; state: string };
}


describe('installer links (Linux, for real)', { skip }, () => {
  let t: TestServer;
  let groupId: string;
  let root: string;
  const children: import('node:child_process').ChildProcess[] = [];

  before(async () => {
    // Its own build folder, seeded from the shared build: this test tampers with it.
    const shared = path.join(os.tmpdir(), 'garrison-test-agent-builds');
    const probe = await startTestServer();
    const build = await probe.server.services.installers.builds.get(hostPlatform());
    await probe.close();
    const own = await tempDir('garrison-builds-');
    const rel = path.relative(shared, path.dirname(build.file));
    await mkdir(path.join(own, rel), { recursive: true });
    for (const f of await readdir(path.dirname(build.file))) await copyFile(path.join(path.dirname(build.file), f), path.join(own, rel, f));
    t = await startTestServer(undefined, { agentBuildDir: own });
    groupId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Installed' })).body.id;
    const m: PackageManifest = {
      product: 'linkapp',
      name: 'Link app',
      version: '1.0.0',
      kind: 'application',
      platforms: ['linux-*'],
      commands: { install: { shell: 'sh', script: 'echo "installed $GARRISON_VERSION" > "$GARRISON_PRODUCT_DIR/../linkapp.txt"' } },
    };
    const res = await t.fetch(`${t.server.url}/api/v1/repository/packages`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: await readFile(await buildArchive(m)) });
    assert.equal(res.status, 201, await res.text());
    assert.equal((await t.api('PUT', `/api/v1/groups/${groupId}/deployments/linkapp`, { branch: 'current' })).status, 200);
    root = await tempDir('garrison-root-');
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await t?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  const create = async (body: Record<string, unknown> = {}) => {
    const r = await t.api<Installer>('POST', '/api/v1/installers', { groupId, ...body });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };
  /** The one-line command, run as given but without sudo, the script installing into a staged root. */
  const install = async (link: Installer, name: string, env: Record<string, string> = {}) => {
    const dir = path.join(root, name);
    await mkdir(dir, { recursive: true });
    const r = await sh(link.commands.linux.replace(' sudo sh ', ' sh '), dir, {
      GARRISON_INSTALL_DIR: path.join(dir, 'opt/garrison-agent'),
      GARRISON_UNIT_DIR: path.join(dir, 'etc/systemd/system'),
      GARRISON_NO_START: '1',
      GARRISON_NAME: name,
      ...env,
    });
    // Whatever happened, no copy of the script (it holds the token) is left behind.
    assert.equal(existsSync(path.join(dir, 'garrison-install.sh')), false, r.out);
    return r;
  };

  it('installs the agent as a service, enrols it, deploys the group products, and uninstalls it from the console', async () => {
    const link = await create({ maxUses: 5 });
    // The link reaches curl on its stdin (not its command line); the script is removed whatever happens.
    assert.match(link.commands.linux, /^\(umask 077; printf 'url = "%s"\\n' 'https:\/\/127\.0\.0\.1:\d+\/install\/get\.[^/]+\/linux\.sh' \| curl -sSk --pinnedpubkey 'sha256\/\/[A-Za-z0-9+/=]+' -K - -o garrison-install\.sh && sudo sh garrison-install\.sh; r=\$\?; rm -f garrison-install\.sh; exit \$r\)$/);
    assert.equal(link.caFingerprint, t.server.tls!.caFingerprint);
    const r = await install(link, 'linked-1');
    assert.equal(r.code, 0, r.out);
    const deviceId = /garrison-install: enrolled device (\S+)/.exec(r.out)?.[1];
    assert.ok(deviceId, r.out);

    const dir = path.join(root, 'linked-1');
    const unit = await readFile(path.join(dir, 'etc/systemd/system/garrison-agent.service'), 'utf8');
    const exec = /^ExecStart=(.+)$/m.exec(unit)![1]!.split(' ');
    assert.equal(exec[0], path.join(dir, 'opt/garrison-agent/garrison-agent'));
    if (spawnSync('systemd-analyze', ['--version']).status === 0) {
      const v = spawnSync('systemd-analyze', ['verify', path.join(dir, 'etc/systemd/system/garrison-agent.service')], { encoding: 'utf8' });
      // Only problems with our unit count (the host may lack unrelated units).
      const ours = (v.stderr + v.stdout).split('\n').filter((l) => l.includes('garrison-agent.service') && !/Failed to .*(load|connect)|not found/i.test(l));
      assert.deepEqual(ours, [], v.stderr);
    }
    // The credential is the agent's own (0600), next to the pinned CA.
    const cred = JSON.parse(await readFile(path.join(dir, 'opt/garrison-agent/state/credential.json'), 'utf8')) as { deviceId: string; caPem: string };
    assert.equal(cred.deviceId, deviceId);
    assert.equal(cred.caPem.trim(), t.server.tls!.caPem.trim());

    // Start it as systemd would.
    const agent = spawn(exec[0]!, exec.slice(1), { cwd: path.join(dir, 'opt/garrison-agent'), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GARRISON_INSTALL_DIR: path.join(dir, 'opt/garrison-agent') } });
    children.push(agent);
    let out = '';
    agent.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    agent.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const device = await waitFor(async () => (await t.api<{ online: boolean; groupId: string; name: string }>('GET', `/api/v1/devices/${deviceId}`)).body.online && (await t.api<{ groupId: string; name: string }>('GET', `/api/v1/devices/${deviceId}`)).body, { what: 'installed agent online', output: () => out, timeoutMs: 30_000 });
    assert.equal(device.groupId, groupId);
    assert.equal(device.name, 'linked-1');
    await waitFor(async () => (await readFile(path.join(dir, 'opt/garrison-agent/state/products/linkapp.txt'), 'utf8').catch(() => '')).includes('installed 1.0.0'), { what: 'the group product installed', output: () => out, timeoutMs: 30_000 });

    // Uninstall from the console: the agent confirms, runs its uninstall script, is gone.
    assert.equal((await t.api('POST', `/api/v1/devices/${deviceId}/uninstall`)).status, 200);
    await waitFor(async () => !existsSync(path.join(dir, 'opt/garrison-agent')) && !existsSync(path.join(dir, 'etc/systemd/system/garrison-agent.service')), { what: 'agent folder and unit removed', output: () => out, timeoutMs: 30_000 });
    const after = (await t.api<{ uninstalledAt: string | null; credentialRevoked: boolean; online: boolean }>('GET', `/api/v1/devices/${deviceId}`)).body;
    assert.ok(after.uninstalledAt);
    assert.equal(after.credentialRevoked, true);
    await waitFor(async () => !(await t.api<{ online: boolean }>('GET', `/api/v1/devices/${deviceId}`)).body.online, { what: 'offline after uninstall' });
    const kinds = (await t.api<{ items: { kind: string }[] }>('GET', `/api/v1/events?deviceId=${deviceId}`)).body.items.map((e) => e.kind);
    assert.ok(kinds.includes('agent.enrolled') && kinds.includes('audit.device.uninstall-requested') && kinds.includes('agent.uninstalled'), kinds.join(','));
  });

  it('refuses expired, revoked and used-up links, a wrong pin, a tampered agent and a forged CA, leaving nothing behind', async () => {
    const devicesBefore = (await t.api<{ items: unknown[] }>('GET', '/api/v1/devices')).body.items.length;

    const expired = await create({ expiresInMinutes: 1 });
    // Expire it in the store, as time would.
    await t.server.db.kysely.updateTable('enrolment_tokens').set({ expires_at: new Date(Date.now() - 1000).toISOString() }).where('id', '=', expired.token.id).execute();
    let r = await install(expired, 'expired');
    assert.equal(r.code, 5, r.out);
    assert.match(r.out, /garrison-install: error: TOKEN_EXPIRED: this installer link expired/);

    const revoked = await create();
    await t.api('POST', `/api/v1/enrolment-tokens/${revoked.token.id}/revoke`);
    r = await install(revoked, 'revoked');
    assert.equal(r.code, 5);
    assert.match(r.out, /TOKEN_REVOKED/);

    const once = await create({ maxUses: 1 });
    assert.equal((await install(once, 'once-1')).code, 0);
    r = await install(once, 'once-2');
    assert.equal(r.code, 5);
    assert.match(r.out, /TOKEN_EXHAUSTED/);

    // The one-liner with another server's key pinned: curl refuses, nothing runs.
    const good = await create({ maxUses: 10 });
    const wrongPin = { ...good, commands: { ...good.commands, linux: good.commands.linux.replace(/sha256\/\/[A-Za-z0-9+/=]+/, `sha256//${Buffer.alloc(32, 7).toString('base64')}`) } };
    r = await install(wrongPin, 'wrong-pin');
    assert.notEqual(r.code, 0);
    assert.match(r.out, /pinned public key|public key does not match/i);
    assert.equal(existsSync(path.join(root, 'wrong-pin', 'garrison-install.sh')) && (await readFile(path.join(root, 'wrong-pin', 'garrison-install.sh'), 'utf8')).length > 0, false);

    // A tampered agent executable on the server's side: the script's checksum catches it.
    const build = await t.server.services.installers.builds.get(hostPlatform());
    const original = await readFile(build.file);
    const tampered = Buffer.from(original);
    tampered[tampered.length - 100] ^= 0xff;
    await writeFile(build.file, tampered);
    try {
      r = await install(good, 'tampered');
    } finally {
      await writeFile(build.file, original);
    }
    assert.equal(r.code, 4, r.out);
    assert.match(r.out, /tampered or corrupted, nothing installed/);
    assert.equal(existsSync(path.join(root, 'tampered', 'opt/garrison-agent/garrison-agent')), false);

    // An agent told another CA's fingerprint refuses to enrol with this server.
    const exe = path.join(root, 'once-1', 'opt/garrison-agent/garrison-agent');
    // (The server runs in this process: the agent is started asynchronously.)
    const forged = await sh(`'${exe}' enrol --state '${path.join(root, 'forged-state')}' --server '${t.server.url}' --ca-fingerprint ${'ab'.repeat(32)}`, root, { GARRISON_ENROL_TOKEN: 'get.unused' });
    assert.equal(forged.code, 1);
    assert.match(forged.out, /CA_FINGERPRINT_MISMATCH/);
    const plain = await sh(`'${exe}' enrol --state '${path.join(root, 'forged-state')}' --server '${t.server.url.replace('https', 'http')}' --ca-fingerprint ${t.server.tls!.caFingerprint}`, root, { GARRISON_ENROL_TOKEN: 'get.unused' });
    // A plain-HTTP address is a bad argument: refused before anything is tried (exit 2, as usage errors).
    assert.equal(plain.code, 2);
    assert.match(plain.out, /TLS_REQUIRED/);

    // Only the one good enrolment made a device.
    assert.equal((await t.api<{ items: unknown[] }>('GET', '/api/v1/devices')).body.items.length, devicesBefore + 1);
  });

  it('generates macOS and Windows scripts that a shell can parse', async () => {
    const link = await create();
    for (const [file, check] of [['macos.sh', ['sh', '-n']], ['linux.sh', ['sh', '-n']]] as const) {
      const res = await t.fetch(`${link.url}/${file}`);
      assert.equal(res.status, 200);
      const text = await res.text();
      const f = path.join(root, file);
      await writeFile(f, text);
      execFileSync(check[0], [check[1], f]);
    }
    const mac = await (await t.fetch(`${link.url}/macos.sh`)).text();
    assert.match(mac, /launchctl bootstrap system/);
    // This server builds Linux agents only: the macOS script says so before touching anything.
    assert.match(mac, /AGENT_PLATFORMS=''/);
    const win = await (await t.fetch(`${link.url}/windows.ps1`)).text();
    assert.match(win, /Get-FileHash -Algorithm SHA256/);
    assert.match(win, /Register-ScheduledTask/);
    assert.match(link.commands.windows, new RegExp(t.server.tls!.certFingerprint.toUpperCase()));
    assert.equal((await t.fetch(`${link.url}/solaris.sh`)).status, 404);
    assert.equal((await t.api('POST', '/api/v1/installers', { groupId: 'nope' })).status, 404);
    assert.equal((await t.api('POST', '/api/v1/installers', { groupId, serverUrl: 'http://plain:1' })).status, 400);
  });
});
