/**
 * Version schemes (docs/adr/0015-version-schemes.md) through the real server: a package whose
 * version does not parse under its manifest's scheme is refused at check-in with
 * VERSION_INVALID (upload and the repository-download server task alike) and nothing is
 * stored; a product keeps one scheme (VERSION_SCHEME_MISMATCH); the repository lists and a
 * real agent's deployment decides "newer" by the product's scheme (dpkg: 1:1.0 beats 9.0).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { DeviceProductState, PackageManifest, RepositoryPackage } from '@garrison/protocol';
import { repositoryDownloadTaskType as downloadTask } from '../src/server-tasks/repository-download.ts';
import type { ServerTaskContext } from '../src/server-tasks/server-task.ts';
import { builtinServerTaskTypes } from '../src/server-tasks/types.ts';
import { buildFeed } from '../src/server-tasks/update-feed.ts';
import { dbKinds, startAgent, startTestServer, tempDir, waitFor, type AgentProcess, type TestServer, serverTaskContext } from './helpers.ts';
import { buildArchive, manifest } from './package-fixtures.ts';

type ErrorReply = { error?: { code: string; message: string; details?: Record<string, unknown> } };

async function upload(t: TestServer, m: PackageManifest, branch = 'current'): Promise<{ status: number; body: RepositoryPackage & ErrorReply }> {
  const res = await t.fetch(`${t.server.url}/api/v1/repository/packages?branch=${branch}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' },
    body: await readFile(await buildArchive(m)),
  });
  return { status: res.status, body: (await res.json()) as RepositoryPackage & ErrorReply };
}

/** What check-in may have stored: package rows, archive files, audit events. */
async function stored(t: TestServer): Promise<{ packages: string[]; archives: string[]; audits: number }> {
  const packages = (await t.api<{ items: RepositoryPackage[] }>('GET', '/api/v1/repository/packages')).body.items.map((p) => `${p.product} ${p.version} ${p.branch}`).sort();
  const archives = (await readdir(path.join(t.dataDir, 'repository')).catch(() => [] as string[])).sort();
  const audits = (await t.api<{ items: unknown[] }>('GET', '/api/v1/events?kind=audit.repository.added')).body.items.length;
  return { packages, archives, audits };
}

const context = (t: TestServer, lines: string[]): ServerTaskContext => serverTaskContext(t, { output: (l) => lines.push(l) });

for (const kind of dbKinds) {
  describe(`version schemes in the repository (${kind.name})`, () => {
    let t: TestServer;
    before(async () => {
      // Registered here until types.ts lists it; then the built-in list has it already.
      const serverTaskTypes = builtinServerTaskTypes.some((x) => x.type === downloadTask.type) ? [] : [downloadTask];
      t = await startTestServer(kind, { serverTaskTypes });
    });
    after(() => t.close());

    it('refuses a version that does not parse under its scheme with VERSION_INVALID, storing nothing', async () => {
      assert.equal((await upload(t, manifest('kept', '1.0'))).status, 201);
      const before = await stored(t);
      const cases: [PackageManifest, RegExp][] = [
        [manifest('deb-like', '1:2.0'), /not a valid semver version.*name it in "versionScheme"/],
        [manifest('semver-bad', '1..2'), /not a valid semver version/],
        [manifest('dpkg-bad', 'a1.0', { versionScheme: 'dpkg' }), /not a valid dpkg version: the upstream version "a1.0" does not start with a digit/],
        [manifest('dpkg-bad', '1.0_1', { versionScheme: 'dpkg' }), /not a valid dpkg version/],
        [manifest('rpm-bad', '1.0-', { versionScheme: 'rpm' }), /not a valid rpm version: the release after the last "-" is empty/],
        [manifest('win-bad', '1.2.3.4.5', { versionScheme: 'windows' }), /not a valid windows version/],
        [manifest('win-bad', '70000', { versionScheme: 'windows' }), /larger than 65535/],
        [manifest('kept', '1.1~rc1'), /not a valid semver version/],
      ];
      for (const [m, message] of cases) {
        const r = await upload(t, m);
        assert.equal(r.status, 422, `${m.product} ${m.version}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error?.code, 'VERSION_INVALID');
        assert.match(r.body.error?.message ?? '', message);
        assert.equal(r.body.error?.details?.version, m.version);
        assert.equal(r.body.error?.details?.versionScheme, m.versionScheme ?? 'semver');
      }
      // A scheme the schema does not know is a schema error, as before.
      const unknown = await upload(t, { ...manifest('odd', '1.0'), versionScheme: 'maven' } as unknown as PackageManifest);
      assert.equal(unknown.body.error?.code, 'VALIDATION_FAILED');
      assert.deepEqual(await stored(t), before);
      // The code is in the registry clients read.
      const codes = (await t.api<Record<string, { status: number }>>('GET', '/api/v1/error-codes')).body;
      assert.equal(codes.VERSION_INVALID?.status, 422);
      assert.equal(codes.VERSION_SCHEME_MISMATCH?.status, 409);
    });

    it('keeps one scheme per product, and lists its versions in that order', async () => {
      assert.equal((await upload(t, manifest('debtool', '1:1.0', { versionScheme: 'dpkg' }))).status, 201);
      assert.equal((await upload(t, manifest('debtool', '9.0', { versionScheme: 'dpkg' }), 'evaluation')).status, 201);
      assert.equal((await upload(t, manifest('debtool', '1:1.0-1ubuntu1', { versionScheme: 'dpkg' }), 'evaluation')).status, 201);
      const before = await stored(t);
      for (const m of [manifest('debtool', '2.0'), manifest('debtool', '2.0', { versionScheme: 'rpm' })]) {
        const r = await upload(t, m);
        assert.equal(r.status, 409, JSON.stringify(r.body));
        assert.equal(r.body.error?.code, 'VERSION_SCHEME_MISMATCH');
        assert.match(r.body.error?.message ?? '', /debtool .* uses dpkg: all packages of a product use one scheme/);
        assert.equal(r.body.error?.details?.productVersionScheme, 'dpkg');
      }
      // Another spelling of a stored version is the same version to deployment (01:1.0 is 1:1.0).
      const respelt = await upload(t, manifest('debtool', '01:1.0', { versionScheme: 'dpkg' }));
      assert.equal(respelt.status, 409, JSON.stringify(respelt.body));
      assert.equal(respelt.body.error?.code, 'CONFLICT');
      assert.match(respelt.body.error?.message ?? '', /is the same version as 1:1.0/);
      const onSemver = await upload(t, manifest('kept', '2.0', { versionScheme: 'windows' }));
      assert.equal(onSemver.body.error?.code, 'VERSION_SCHEME_MISMATCH');
      assert.deepEqual(await stored(t), before);
      // Newest first by dpkg (by semver rules 9.0 would come first).
      const list = (await t.api<{ items: RepositoryPackage[] }>('GET', '/api/v1/repository/packages?product=debtool')).body.items;
      assert.deepEqual(list.map((p) => p.version), ['1:1.0-1ubuntu1', '1:1.0', '9.0']);
      assert.equal(list[0]?.manifest.versionScheme, 'dpkg');
    });

    it('of two first check-ins of one product with different schemes at once, one lands and the other is refused; deleting the last package frees the scheme', async () => {
      for (let round = 0; round < 3; round++) {
        const product = `racer${round}`;
        const replies = await Promise.all([upload(t, manifest(product, '1:1.0', { versionScheme: 'dpkg' })), upload(t, manifest(product, '1.0', { versionScheme: 'rpm' }))]);
        assert.deepEqual(replies.map((r) => r.status).sort(), [201, 409], JSON.stringify(replies.map((r) => r.body)));
        const refused = replies.find((r) => r.status === 409)!;
        assert.equal(refused.body.error?.code, 'VERSION_SCHEME_MISMATCH');
        const list = (await t.api<{ items: RepositoryPackage[] }>('GET', `/api/v1/repository/packages?product=${product}`)).body.items;
        assert.equal(list.length, 1);
        const landed = replies.find((r) => r.status === 201)!.body;
        assert.equal(list[0]!.id, landed.id);
        // No archive of the refused one is left behind.
        const archives = await readdir(path.join(t.dataDir, 'repository'));
        const kept = await Promise.all((await t.api<{ items: RepositoryPackage[] }>('GET', '/api/v1/repository/packages')).body.items.map((p) => p.sha256));
        assert.deepEqual(archives.filter((f) => !kept.some((sha) => f.startsWith(sha))), []);
        // The product's last package deleted, another scheme may start it again.
        assert.equal((await t.api('DELETE', `/api/v1/repository/packages/${landed.id}`)).status, 204);
        assert.equal((await upload(t, manifest(product, '2.0', { versionScheme: 'windows' }))).status, 201);
      }
    });

    it('refuses such versions in the repository-download task too, with their code, landing the rest', async () => {
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const dir = path.join(await tempDir(), 'feed');
      await buildFeed(dir, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), [
        await buildArchive(manifest('feedtool', '1:2.0~rc1', { versionScheme: 'dpkg' })),
        await buildArchive(manifest('feedtool', '1:2.0_1', { versionScheme: 'dpkg' })),
        await buildArchive(manifest('debtool', '3.0')), // semver for a dpkg product
      ]);
      const before = await stored(t);
      const lines: string[] = [];
      const r = await downloadTask.run({ source: { kind: 'feed', url: dir, publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() } }, context(t, lines));
      const refused = (r.data as { refused: { product: string; version: string; code?: string }[] }).refused;
      assert.deepEqual(
        refused.map((x) => `${x.product} ${x.version} ${x.code}`).sort(),
        ['debtool 3.0 VERSION_SCHEME_MISMATCH', 'feedtool 1:2.0_1 VERSION_INVALID'],
      );
      assert.ok(lines.some((l) => /^refused feedtool 1:2\.0_1: .*not a valid dpkg version.*\(VERSION_INVALID\)$/.test(l)), lines.join('\n'));
      const after = await stored(t);
      assert.deepEqual(after.packages, [...before.packages, 'feedtool 1:2.0~rc1 current'].sort());
      assert.equal(after.archives.length, before.archives.length + 1);
      assert.equal(after.audits, before.audits + 1);
    });
  });

  describe(`a dpkg-scheme product deployed to a real agent (${kind.name})`, () => {
    let t: TestServer;
    let agent: (AgentProcess & { deviceId: string }) | undefined;
    let groupId: string;
    const deb = (version: string): PackageManifest =>
      manifest('debapp', version, {
        versionScheme: 'dpkg',
        platforms: ['linux-*', 'darwin-*'],
        commands: { install: { shell: 'sh', script: 'set -eu; echo "install $GARRISON_VERSION" >> "$GARRISON_PRODUCT_DIR/../deb.log"' } },
      });
    const stateOf = async () =>
      (await t.api<{ items: DeviceProductState[] }>('GET', `/api/v1/deployments/compliance?groupId=${groupId}`)).body.items.find((d) => d.product === 'debapp');
    const log = async () => (await readFile(path.join(agent!.stateDir, 'products', 'deb.log'), 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);
    before(async () => {
      t = await startTestServer(kind);
      groupId = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Debian hosts' })).body.id;
    });
    after(async () => {
      await agent?.kill('SIGKILL');
      await t.close();
    });

    it('updates 9.0 to 1:1.0 (the epoch wins) and leaves 1:1.0-1 alone against 1:1.0~rc1', async () => {
      assert.equal((await upload(t, deb('9.0'))).status, 201);
      assert.equal((await t.api('PUT', `/api/v1/groups/${groupId}/deployments/debapp`, { branch: 'current' })).status, 200);
      agent = await startAgent(t, groupId, 'deb-1');
      await waitFor(async () => (await stateOf())?.state === 'compliant' && (await stateOf())?.installedVersion === '9.0', { what: 'debapp 9.0 installed', output: agent.output, timeoutMs: 30_000 });

      // Under the default scheme "1:1.0" is not even a version; under dpkg it is newer than 9.0.
      assert.equal((await upload(t, deb('1:1.0'))).status, 201);
      await waitFor(async () => (await stateOf())?.state === 'compliant' && (await stateOf())?.installedVersion === '1:1.0', { what: 'debapp 1:1.0 installed', output: agent!.output, timeoutMs: 30_000 });
      assert.deepEqual(await log(), ['install 9.0', 'install 1:1.0']);

      // A Debian revision is newer; then a "~" pre-release in current is older than what runs.
      assert.equal((await upload(t, deb('1:1.0-1'))).status, 201);
      await waitFor(async () => (await stateOf())?.installedVersion === '1:1.0-1', { what: 'debapp 1:1.0-1 installed', output: agent!.output, timeoutMs: 30_000 });
      assert.equal((await upload(t, deb('1:1.0~rc1'))).status, 201);
      await waitFor(async () => (await stateOf())?.targetVersion === '1:1.0~rc1', { what: 'plan recomputed for 1:1.0~rc1', output: agent!.output, timeoutMs: 30_000 });
      const st = (await stateOf())!;
      assert.equal(st.state, 'compliant');
      assert.equal(st.installedVersion, '1:1.0-1');
      assert.match(st.detail ?? '', /newer than the branch/);
      assert.deepEqual(await log(), ['install 9.0', 'install 1:1.0', 'install 1:1.0-1']);
    });
  });
}
