/**
 * The "installation-package" server task for real: a bundle for a subgroup whose parent
 * deploys a product (with a dependency) is made, extracted with the system's tar, and the
 * repository's archives are deleted from disk so that any download would fail; the bundle's
 * install script installs the agent (staged root, no system service), enrols it into the
 * subgroup, and the agent installs both products from the bundle. A copy of the bundle with a
 * tampered archive enrols but the agent refuses the archive. Another platform fails clearly
 * without leaving a token; the download routes refuse names outside the index, audit a
 * download, and revoke the token of a deleted bundle; `keep` prunes older bundles. A bundle
 * indexed as a JSON file before the index moved into the database is imported at the first
 * list. On PostgreSQL, a bundle made through one instance is listed, downloaded and deleted
 * through another with a data folder of its own (issue 14).
 *
 * The install and the routes run on SQLite only, as installer.test.ts does: they use no
 * storage of their own beyond tokens, deployments and events (tested on both databases
 * elsewhere), and each bundle packs the 125 MB agent, which would double the file's time.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { DeviceProductState, Page, PackageManifest, RepositoryPackage, ServerTask, ServerTaskRun } from '@garrison/protocol';
import { AppError } from '../src/errors.ts';
import { bearer } from '../src/agent-hub/hub.ts';
import { registerInstallationPackageRoutes } from '../src/http/installation-package-routes.ts';
import { startServer, type GarrisonServer } from '../src/app.ts';
import { ArchiveStore } from '../src/storage/archive-store.ts';
import { InstallationPackageStore, type InstallationPackageInfo } from '../src/storage/installation-package-store.ts';
import { offlineInstallScript } from '../src/services/installer-service.ts';
import { installationPackageTaskType as taskType, listInstallationPackages, type InstallationPackageIndex } from '../src/server-tasks/installation-package.ts';
import type { ServerTaskResult } from '../src/server-tasks/server-task.ts';
import { builtinServerTaskTypes } from '../src/server-tasks/types.ts';
import { dbKinds, serverTaskContext, sh, startTestServer, tempDir, type TestServer, waitFor } from './helpers.ts';
import { pino } from 'pino';
import os from 'node:os';
import { buildArchive } from './package-fixtures.ts';

const skip = process.platform !== 'linux' ? 'installation packages are tested on Linux' : false;

/** What the routes and the task's index functions use, over this server's database and data folder. */
const indexOf = (server: GarrisonServer, dataDir: string): InstallationPackageIndex => ({ dataDir, installationPackages: new InstallationPackageStore(server.db), archives: new ArchiveStore(server.db) });

/** The download routes on their own app, authenticated as app.ts does (the composition root registers them on the server). */
async function routesApp(server: GarrisonServer, dataDir: string): Promise<FastifyInstance> {
  const app = Fastify();
  app.addHook('onRequest', async (req) => {
    req.actor = await server.services.auth.authenticate(bearer(req.headers.authorization));
  });
  app.setErrorHandler((err, _req, reply) => void reply.status(err instanceof AppError ? err.status : 500).send(err instanceof AppError ? err.toBody() : { error: { message: String(err) } }));
  registerInstallationPackageRoutes(app, server.services, indexOf(server, dataDir));
  await app.ready();
  return app;
}


function product(id: string, version: string, extra: Partial<PackageManifest> = {}): PackageManifest {
  return {
    product: id,
    name: id,
    version,
    kind: 'application',
    platforms: ['linux-*'],
    commands: { install: { shell: 'sh', script: 'echo "install $GARRISON_PRODUCT $GARRISON_VERSION" >> "$GARRISON_PRODUCT_DIR/../offline.log"' } },
    ...extra,
  };
}

for (const kind of dbKinds) {
  describe(`installation package server task (${kind.name})`, { skip }, () => {
    let t: TestServer;
    let siteId: string;
    let branchId: string;
    let root: string;
    let lines: string[];
    let app: FastifyInstance;
    const children: ChildProcess[] = [];
    const uploaded: RepositoryPackage[] = [];

    const run = async (settings: Record<string, unknown>, taskId = 'task-1', stopAt?: string): Promise<ServerTaskResult> => {
      lines = [];
      const stop = new AbortController();
      const progress = (_percent: number, message?: string) => void (message === stopAt && stop.abort(new Error('stopped by an administrator')));
      const ctx = serverTaskContext(t, { taskId, taskName: 'Branch A bundle', runId: `r${Math.random().toString(36).slice(2)}`, signal: stop.signal, progress, output: (l: string) => lines.push(l) });
      assert.deepEqual(await taskType.validate!(settings, ctx), []);
      return taskType.run(settings, ctx);
    };
    const tokens = async () => (await t.api<{ items: { id: string; state: string; uses: number }[] }>('GET', '/api/v1/enrolment-tokens')).body.items;
    /** Runs the bundle's install script as installer.test.ts runs the link's, then starts the unit's ExecStart as systemd would. */
    const install = async (dir: string, name: string) => {
      const r = await sh('sh install.sh', dir, { GARRISON_INSTALL_DIR: path.join(root, name, 'opt'), GARRISON_UNIT_DIR: path.join(root, name, 'unit'), GARRISON_NO_START: '1', GARRISON_NAME: name });
      assert.equal(r.code, 0, r.out);
      const deviceId = /garrison-install: enrolled device (\S+)/.exec(r.out)?.[1];
      assert.ok(deviceId, r.out);
      const unit = await readFile(path.join(root, name, 'unit', 'garrison-agent.service'), 'utf8');
      const exec = /^ExecStart=(.+)$/m.exec(unit)![1]!.split(' ');
      const agent = spawn(exec[0]!, exec.slice(1), { cwd: path.join(root, name, 'opt'), stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(agent);
      let out = r.out;
      agent.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      agent.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      return { deviceId, state: path.join(root, name, 'opt', 'state'), output: () => out };
    };

    before(async () => {
      t = await startTestServer(kind, builtinServerTaskTypes.some((x) => x.type === taskType.type) ? {} : { serverTaskTypes: [taskType] });
      siteId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Site' })).body.id;
      branchId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Branch A', parentId: siteId })).body.id;
      for (const m of [product('offlib', '1.0', { order: 10 }), product('offapp', '2.1', { dependencies: [{ product: 'offlib' }] }), product('macapp', '1.0', { platforms: ['darwin-*'] })]) {
        const res = await t.fetch(`${t.server.url}/api/v1/repository/packages`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: await readFile(await buildArchive(m)) });
        assert.equal(res.status, 201);
        uploaded.push((await res.json()) as RepositoryPackage);
      }
      // Assigned on the parent: the subgroup inherits it (and offlib comes as a dependency).
      assert.equal((await t.api('PUT', `/api/v1/groups/${siteId}/deployments/offapp`, { branch: 'current' })).status, 200);
      assert.equal((await t.api('PUT', `/api/v1/groups/${siteId}/deployments/macapp`, { branch: 'current' })).status, 200);
      root = await tempDir('garrison-bundle-');
      app = await routesApp(t.server, t.dataDir);
    });
    after(async () => {
      // A clean stop ends the launcher's embedded agent too; anything still running from the test folder is killed.
      const exited = Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r).kill('SIGTERM')) : null)));
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000).unref())]);
      for (const pid of root ? await readdir('/proc') : []) {
        if (/^\d+$/.test(pid) && (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes(root)) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
      await app?.close();
      await t?.close();
      if (root) await rm(root, { recursive: true, force: true });
    });

    const sqliteOnly = { skip: kind.name === 'sqlite' ? false : 'the offline install runs on SQLite only' };

    let apiTaskId = '';
    it('makes a bundle through the server-task API that installs, enrols and deploys the group products with no repository download; a tampered archive is refused', sqliteOnly, async () => {
      const create = (settings: Record<string, unknown>) => t.api<ServerTask & { error: { code: string; message: string } }>('POST', '/api/v1/server-tasks', { name: 'Branch A bundle', type: taskType.type, settings, schedule: { triggers: [{ type: 'on-demand' }] } });
      const relative = await create({ groupId: branchId, platform: 'linux', folder: 'bundles' });
      assert.equal(relative.body.error.code, 'SETTINGS_INVALID');
      assert.match(relative.body.error.message, /folder "bundles" must be an absolute path/);
      assert.equal((await create({ groupId: branchId, platform: 'solaris' })).body.error.code, 'SETTINGS_INVALID');
      const created = await create({ groupId: branchId, platform: 'linux', maxUses: 5 });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      apiTaskId = created.body.id;
      assert.equal((await t.api('POST', `/api/v1/server-tasks/${apiTaskId}/run`, {})).status, 202);
      const result = await waitFor(async () => {
        const r = (await t.api<Page<ServerTaskRun>>('GET', `/api/v1/server-tasks/${apiTaskId}/runs`)).body.items[0];
        return r && ['succeeded', 'succeeded_with_warnings', 'failed', 'timed_out', 'cancelled', 'skipped'].includes(r.state) ? r : null;
      }, { what: 'the installation package run to end', timeoutMs: 25_000 });
      // macapp has no Linux package: said, not fatal.
      assert.equal(result.state, 'succeeded_with_warnings', `${result.summary}\n${result.outputTail}`);
      const data = result.result as { file: string; name: string; size: number; tokenId: string; tokenExpiresAt: string; products: { product: string; version: string }[]; warnings: string[] };
      assert.equal(data.warnings.length, 1);
      assert.match(data.warnings[0]!, /^macapp is not included/);
      assert.match(result.summary!, /for "My Organization\/Site\/Branch A" on linux-\w+: the agent [\d.]+ and 2 product packages/);
      assert.match(result.outputTail!, /enrolment token \S+ created for "My Organization\/Site\/Branch A"/);
      assert.match(data.name, /^garrison-agent-site-branch-a-linux-(x64|arm64)-\d{8}-\d{6}\.tar\.gz$/);
      assert.equal(data.file, path.join(t.dataDir, 'installation-packages', data.name));
      assert.equal((await stat(data.file)).size, data.size);
      assert.equal((await stat(data.file)).mode & 0o777, 0o600);
      assert.deepEqual(data.products.map((p) => `${p.product}@${p.version}`), ['offlib@1.0', 'offapp@2.1']);
      const token = (await tokens()).find((x) => x.id === data.tokenId)!;
      assert.equal(token.state, 'active');
      const days = (Date.parse(data.tokenExpiresAt) - Date.now()) / 86400_000;
      assert.ok(days > 29.9 && days <= 30, String(days));

      // Extracted as an administrator would.
      const x = path.join(root, 'x');
      await mkdir(x);
      const tarOut = await sh(`tar xzf '${data.file}'`, x);
      assert.equal(tarOut.code, 0, tarOut.out);
      const dir = path.join(x, data.name.replace(/\.tar\.gz$/, ''));
      assert.deepEqual((await readdir(dir)).sort(), ['README.txt', 'bundle.json', 'ca.crt', 'ca.fingerprint', 'enrolment-token', 'garrison-agent', 'install.sh', 'packages']);
      assert.equal((await stat(path.join(dir, 'enrolment-token'))).mode & 0o777, 0o600);
      assert.equal((await stat(path.join(dir, 'install.sh'))).mode & 0o777, 0o755);
      const tokenValue = (await readFile(path.join(dir, 'enrolment-token'), 'utf8')).trim();
      assert.match(tokenValue, /^get\./);
      const bundle = JSON.parse(await readFile(path.join(dir, 'bundle.json'), 'utf8')) as {
        serverUrl: string;
        group: { id: string; path: string };
        caFingerprint: string;
        signingPublicKey: string;
        agent: { sha256: string };
        enrolmentToken: { id: string };
        packages: { product: string; sha256: string; signature: string; file: string }[];
      };
      assert.equal(bundle.serverUrl, t.server.url);
      assert.deepEqual(bundle.group, { id: branchId, path: 'My Organization/Site/Branch A' });
      assert.equal(bundle.caFingerprint, t.server.tls!.caFingerprint);
      assert.equal((await readFile(path.join(dir, 'ca.fingerprint'), 'utf8')).trim(), t.server.tls!.caFingerprint);
      assert.equal((await readFile(path.join(dir, 'ca.crt'), 'utf8')).trim(), t.server.tls!.caPem.trim());
      assert.equal(bundle.signingPublicKey, t.server.services.repository.publicKeyPem);
      assert.equal(bundle.enrolmentToken.id, data.tokenId);
      assert.equal(bundle.agent.sha256, (await t.server.services.installers.builds.get(data.name.includes('arm64') ? 'linux-arm64' : 'linux-x64')).sha256);
      for (const p of bundle.packages) {
        const signed = uploaded.find((u) => u.product === p.product)!;
        assert.equal(p.sha256, signed.sha256);
        assert.equal(p.signature, signed.signature);
        assert.equal(createHash('sha256').update(await readFile(path.join(dir, p.file))).digest('hex'), p.sha256);
      }
      // The token's value is in its file only: not in the script, the run (result, output, summary) or the events.
      assert.ok(!(await readFile(path.join(dir, 'install.sh'), 'utf8')).includes(tokenValue));
      assert.ok(!JSON.stringify(result).includes(tokenValue));
      assert.ok(!JSON.stringify((await t.api('GET', '/api/v1/events?limit=1000')).body).includes(tokenValue));

      // A second copy with a tampered archive, then no archive left in the repository.
      const y = path.join(root, 'y');
      await cp(dir, y, { recursive: true });
      const victim = path.join(y, bundle.packages.find((p) => p.product === 'offlib')!.file);
      const bytes = await readFile(victim);
      bytes[bytes.length - 5] ^= 0xff;
      await writeFile(victim, bytes);
      for (const u of uploaded) await rm(t.server.services.repository.archivePath(u.sha256));

      const [good, bad] = await Promise.all([install(dir, 'bundled-1'), install(y, 'bundled-tampered')]);
      const device = (await t.api<{ groupId: string; name: string }>('GET', `/api/v1/devices/${good.deviceId}`)).body;
      assert.equal(device.groupId, branchId);
      assert.equal(device.name, 'bundled-1');
      type Compliance = { items: DeviceProductState[] };
      const stateOf = async (deviceId: string, p: string) => (await t.api<Compliance>('GET', `/api/v1/deployments/compliance?groupId=${branchId}`)).body.items.find((d) => d.deviceId === deviceId && d.product === p);
      await waitFor(async () => (await stateOf(good.deviceId, 'offapp'))?.state === 'compliant', { what: 'offapp installed from the bundle', output: good.output, timeoutMs: 20_000 });
      assert.equal((await stateOf(good.deviceId, 'offapp'))?.installedVersion, '2.1');
      assert.deepEqual((await readFile(path.join(good.state, 'products', 'offline.log'), 'utf8')).trim().split('\n'), ['install offlib 1.0', 'install offapp 2.1']);
      // Both archives were taken from the offline folder (and used up).
      assert.deepEqual(await readdir(path.join(good.state, 'offline-packages')), []);

      assert.equal((await t.api<{ groupId: string }>('GET', `/api/v1/devices/${bad.deviceId}`)).body.groupId, branchId);
      const refused = await waitFor(async () => (await t.api<{ items: { message: string }[] }>('GET', `/api/v1/events?deviceId=${bad.deviceId}&kind=garrison.deployment.refused`)).body.items[0], { what: 'tampered archive refused', output: bad.output, timeoutMs: 20_000 });
      assert.match(refused.message, /offlib 1\.0.*archive SHA-256 [0-9a-f]{64} is not the signed/);
      assert.equal(existsSync(path.join(bad.state, 'products', 'offline.log')), false);
      assert.equal((await tokens()).find((x) => x.id === data.tokenId)!.uses, 2);
    });

    it('fails clearly for a platform this server cannot build, leaving no token or file; a stopped run leaves no file and revokes its token', async () => {
      const known = new Set((await tokens()).map((x) => x.id));
      const files = await readdir(path.join(t.dataDir, 'installation-packages')).catch(() => []);
      await assert.rejects(run({ groupId: branchId, platform: 'windows' }), /AGENT_BUILD_UNAVAILABLE: this server builds the agent for linux-\w+ only.*a windows installation package needs a server running on windows/);
      await assert.rejects(run({ groupId: branchId, platform: 'macos' }), /AGENT_BUILD_UNAVAILABLE/);
      assert.equal((await tokens()).length, known.size);
      assert.deepEqual(await readdir(path.join(t.dataDir, 'installation-packages')).catch(() => []), files);

      // Stopped while compressing (after the token was made): nothing is left, the token is revoked.
      const folder = path.join(t.dataDir, 'stopped');
      await assert.rejects(run({ groupId: branchId, platform: 'linux', includeProducts: false, folder }, 'task-stop', 'compressing'), /stopped by an administrator/);
      assert.deepEqual(await readdir(folder), []);
      const made = (await tokens()).filter((x) => !known.has(x.id));
      assert.deepEqual(made.map((x) => x.state), ['revoked']);
      assert.deepEqual(await readdir(path.join(t.dataDir, 'installation-packages')).catch(() => []), files);

      // The other platforms' scripts (not runnable here): they parse, and read the token from its file.
      const build = { platform: 'darwin-arm64', version: '0.1.0', file: '/x', sha256: 'ab'.repeat(32), size: 1 };
      const ctx = { serverUrl: t.server.url, groupPath: 'My Organization/Site', tls: t.server.tls!, build };
      const mac = path.join(t.dataDir, 'macos-install.sh');
      await writeFile(mac, offlineInstallScript('macos', ctx));
      assert.equal(spawnSync('sh', ['-n', mac]).status, 0);
      assert.match(await readFile(mac, 'utf8'), /TOKEN="\$\(cat "\$HERE\/enrolment-token"\)"[\s\S]*launchctl bootstrap system/);
      const win = offlineInstallScript('windows', { ...ctx, build: { ...build, platform: 'win32-x64' } });
      assert.match(win, /\$Token = \(Get-Content -Raw \(Join-Path \$Here 'enrolment-token'\)\)\.Trim\(\)/);
      assert.match(win, /Copy-Item \(Join-Path \$Here 'garrison-agent\.exe'\) \$Part/);
      assert.doesNotMatch(win, /DownloadFile|get\./);
      const env = serverTaskContext(t);
      assert.deepEqual(await taskType.validate!({ groupId: 'nope', platform: 'linux', folder: 'relative/dir' }, env), [
        'group nope does not exist: choose the group the devices should enrol into',
        'folder "relative/dir" must be an absolute path below the file system\'s root',
      ]);
    });

    it('keeps the newest bundles of a task with "keep" (older ones deleted, tokens revoked); lists, downloads and deletes bundles over the API, refusing other names', sqliteOnly, async () => {
      const [first] = await listInstallationPackages(indexOf(t.server, t.dataDir));
      assert.equal(first?.taskId, apiTaskId);
      const folder = path.join(root, 'custom');
      const second = (await run({ groupId: siteId, platform: 'linux', includeProducts: false, folder, expiresInDays: 2, keep: 1 }, apiTaskId)).data as { name: string; tokenId: string; file: string; removed: string[]; products: unknown[]; tokenExpiresAt: string };
      assert.equal(path.dirname(second.file), folder);
      assert.deepEqual(second.products, []);
      assert.ok(Math.abs(Date.parse(second.tokenExpiresAt) - Date.now() - 2 * 86400_000) < 60_000);
      assert.deepEqual(second.removed, [first.name]);
      assert.ok(lines.includes(`removed ${first.name} and revoked its enrolment token ${first.tokenId}`), lines.join('\n'));
      assert.equal(existsSync(first.file), false);
      assert.equal((await tokens()).find((x) => x.id === first.tokenId)!.state, 'revoked');

      const auth = { authorization: `Bearer ${t.token}` };
      const list = await app.inject({ method: 'GET', url: '/api/v1/installation-packages', headers: auth });
      assert.equal(list.statusCode, 200);
      const listed = list.json<Page<{ name: string; available: boolean; tokenState: string }>>().items;
      assert.equal(listed[0]!.name, second.name);
      assert.deepEqual(listed.map((b) => b.name), [second.name]);
      assert.ok(listed[0]!.available && listed[0]!.tokenState === 'active');
      assert.equal((await app.inject({ method: 'GET', url: '/api/v1/installation-packages' })).statusCode, 401);

      const dl = await app.inject({ method: 'GET', url: `/api/v1/installation-packages/${second.name}`, headers: auth });
      assert.equal(dl.statusCode, 200);
      assert.equal(dl.headers['content-type'], 'application/gzip');
      assert.equal(createHash('sha256').update(dl.rawPayload).digest('hex'), createHash('sha256').update(await readFile(second.file)).digest('hex'));
      assert.equal(dl.headers['x-checksum-sha256'], createHash('sha256').update(dl.rawPayload).digest('hex'));
      const audited = (await t.api<{ items: { kind: string }[] }>('GET', '/api/v1/events?kind=audit.installation-package.downloaded')).body.items;
      assert.equal(audited.length, 1);
      for (const name of ['..%2F..%2Fgarrison.db', '..%2Fserver.key', 'garrison-agent-x-linux-x64-20200101-000000.tar.gz', encodeURIComponent(second.file)]) {
        const r = await app.inject({ method: 'GET', url: `/api/v1/installation-packages/${name}`, headers: auth });
        assert.equal(r.statusCode, 404, name);
      }

      assert.equal((await app.inject({ method: 'DELETE', url: `/api/v1/installation-packages/${second.name}`, headers: auth })).statusCode, 204);
      assert.equal(existsSync(second.file), false);
      assert.equal((await tokens()).find((x) => x.id === second.tokenId)!.state, 'revoked');
      assert.equal((await app.inject({ method: 'GET', url: `/api/v1/installation-packages/${second.name}`, headers: auth })).statusCode, 404);
    });

    it('imports a bundle indexed as a JSON file before the index moved into the database at the first list, with its bytes', async () => {
      const auth = { authorization: `Bearer ${t.token}` };
      const dir = path.join(t.dataDir, 'installation-packages');
      await mkdir(dir, { recursive: true });
      const name = 'garrison-agent-site-linux-x64-20260101-000000.tar.gz';
      const bytes = Buffer.from('not really a tarball, but bytes to serve');
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const tokenId = (await t.api<{ id: string }>('POST', '/api/v1/enrolment-tokens', { groupId: siteId, name: 'legacy bundle' })).body.id;
      assert.ok(tokenId);
      const info: InstallationPackageInfo = {
        name, file: path.join(dir, name), size: bytes.length, sha256, createdAt: '2026-01-01T00:00:00.000Z', taskId: 'legacy', runId: 'r-legacy',
        groupId: siteId, groupPath: 'My Organization/Site', platform: 'linux-x64', serverUrl: t.server.url, agentVersion: '0.0.1', tokenId, tokenExpiresAt: null, maxUses: null, products: [],
      };
      await writeFile(info.file, bytes);
      await writeFile(path.join(dir, `${name}.json`), JSON.stringify(info));
      // A bundle file whose bundle was deleted through another instance (no row, no JSON): removed at the list.
      const orphan = path.join(dir, 'garrison-agent-site-linux-x64-20250101-000000.tar.gz');
      await writeFile(orphan, 'orphan');

      const listed = (await app.inject({ method: 'GET', url: '/api/v1/installation-packages', headers: auth })).json<Page<InstallationPackageInfo & { available: boolean }>>().items;
      assert.deepEqual(listed.filter((b) => b.name === name).map((b) => [b.sha256, b.available]), [[sha256, true]]);
      assert.equal(existsSync(path.join(dir, `${name}.json`)), false);
      assert.equal(existsSync(orphan), false);
      assert.equal(await new ArchiveStore(t.server.db).has(sha256), true);
      // Served from the database once the file is gone from this disk.
      await rm(info.file);
      const dl = await app.inject({ method: 'GET', url: `/api/v1/installation-packages/${name}`, headers: auth });
      assert.equal(dl.statusCode, 200);
      assert.deepEqual(dl.rawPayload, bytes);
      assert.equal(dl.headers['x-checksum-sha256'], sha256);
      assert.equal((await app.inject({ method: 'DELETE', url: `/api/v1/installation-packages/${name}`, headers: auth })).statusCode, 204);
      assert.equal((await tokens()).find((x) => x.id === tokenId)!.state, 'revoked');
      assert.equal(await new ArchiveStore(t.server.db).has(sha256), false);
      assert.equal(await new InstallationPackageStore(t.server.db).find(name), null);
    });

    it('serves a bundle made through one instance from another with its own data folder: listed, downloaded, deleted (token revoked, gone from both)', { skip: kind.name === 'sqlite' ? 'one SQLite database has one instance' : false }, async () => {
      const made = (await run({ groupId: branchId, platform: 'linux', includeProducts: false }, 'task-shared')).data as { name: string; file: string; size: number; sha256: string; tokenId: string };
      assert.equal(path.dirname(made.file), path.join(t.dataDir, 'installation-packages'));
      const otherDir = await tempDir('garrison-instance-b-');
      let b: GarrisonServer | null = null;
      let appB: FastifyInstance | null = null;
      try {
        // Joined as an operator joins an instance: the database and the secret-store key, nothing of A's folder.
        b = await startServer({
          dataDir: otherDir,
          database: t.database,
          secretKey: Buffer.from((await readFile(path.join(t.dataDir, 'secret.key'), 'utf8')).trim(), 'base64'),
          port: 0,
          logger: pino({ level: process.env.GARRISON_TEST_LOG ?? 'silent' }),
          agentBuildDir: path.join(os.tmpdir(), 'garrison-test-agent-builds'),
        });
        appB = await routesApp(b, otherDir);
        const auth = { authorization: `Bearer ${t.token}` };
        const names = async (a: FastifyInstance) => (await a.inject({ method: 'GET', url: '/api/v1/installation-packages', headers: auth })).json<Page<{ name: string; available: boolean; tokenState: string }>>().items;

        const onB = (await names(appB)).find((x) => x.name === made.name);
        assert.deepEqual(onB && [onB.available, onB.tokenState], [true, 'active']);
        assert.equal(existsSync(path.join(otherDir, 'installation-packages', made.name)), false);
        const dl = await appB.inject({ method: 'GET', url: `/api/v1/installation-packages/${made.name}`, headers: auth });
        assert.equal(dl.statusCode, 200);
        assert.equal(Number(dl.headers['content-length']), made.size);
        assert.equal(dl.headers['x-checksum-sha256'], made.sha256);
        assert.equal(createHash('sha256').update(dl.rawPayload).digest('hex'), made.sha256);
        assert.ok(dl.rawPayload.equals(await readFile(made.file)));

        assert.equal((await appB.inject({ method: 'DELETE', url: `/api/v1/installation-packages/${made.name}`, headers: auth })).statusCode, 204);
        assert.equal((await tokens()).find((x) => x.id === made.tokenId)!.state, 'revoked');
        assert.ok(!(await names(appB)).some((x) => x.name === made.name));
        assert.ok(!(await names(app)).some((x) => x.name === made.name));
        assert.equal((await app.inject({ method: 'GET', url: `/api/v1/installation-packages/${made.name}`, headers: auth })).statusCode, 404);
        assert.equal(await new ArchiveStore(t.server.db).has(made.sha256), false);
        // A's copy, out of B's reach, went at A's list.
        assert.equal(existsSync(made.file), false);
      } finally {
        await appB?.close();
        await b?.close();
        await rm(otherDir, { recursive: true, force: true });
      }
    });
  });
}
