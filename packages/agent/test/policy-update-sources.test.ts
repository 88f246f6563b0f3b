// Update sources (update-sources.ts): a real local HTTP server as the server and as a mirror, a
// real folder, real Ed25519 signatures verified by verifyPackage exactly as for any download.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { AGENT_PACKAGES_PATH, canonicalJson, packageSigningPayload, type DeploymentPackageRef, type PackageManifest, type UpdateSource } from '@garrison/protocol';
import { verifyPackage } from '../src/package-verify.ts';
import { fetchVerified } from '../src/update-sources.ts';

const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();

function signed(bytes: Buffer, id = 'pkg-1'): DeploymentPackageRef {
  const manifest = { product: 'scanner', version: '1.0.0', commands: {} } as unknown as PackageManifest;
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const manifestSha256 = createHash('sha256').update(canonicalJson(manifest)).digest('hex');
  const signature = sign(null, Buffer.from(packageSigningPayload({ product: 'scanner', version: '1.0.0', sha256, manifestSha256 })), privateKey).toString('base64');
  return { id, product: 'scanner', version: '1.0.0', sha256, signature, manifest };
}

/** Serves `files` (path → bytes); counts requests per path. */
async function serve(files: Record<string, Buffer>, needAuth?: string): Promise<{ url: string; hits: Record<string, number>; close(): Promise<void> }> {
  const hits: Record<string, number> = {};
  const server = http.createServer((req, res) => {
    hits[req.url!] = (hits[req.url!] ?? 0) + 1;
    if (needAuth && req.headers.authorization !== `Bearer ${needAuth}`) return void res.writeHead(401).end();
    const body = files[req.url!];
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits, close: () => new Promise((r) => server.close(() => r())) };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'garrison-sources-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a mirror serving a tampered archive is refused by verification and the next source (a folder) is used', () =>
  withDir(async (dir) => {
    const good = randomBytes(40_000);
    const pkg = signed(good);
    const tampered = Buffer.from(good);
    tampered[100] = tampered[100]! ^ 0xff;
    const mirror = await serve({ '/mirror/pkg-1': tampered });
    const folder = join(dir, 'share');
    await mkdir(folder);
    await writeFile(join(folder, 'pkg-1.tgz'), good);
    const failures: string[] = [];
    try {
      const sources: UpdateSource[] = [{ kind: 'url', url: `${mirror.url}/mirror` }, { kind: 'folder', path: join(dir, 'missing') }, { kind: 'folder', path: folder }];
      const dest = join(dir, 'downloads', 'a.tgz');
      const used = await fetchVerified(sources, pkg.id, dest, { url: 'http://127.0.0.1:1', credential: 'c', fetch }, (f) => verifyPackage(f, pkg, publicPem), { onFailure: (_s, e) => failures.push(e.message) });
      assert.deepEqual(used, { kind: 'folder', path: folder });
      assert.deepEqual(await readFile(dest), good);
      assert.equal(mirror.hits['/mirror/pkg-1'], 1);
      assert.match(failures[0]!, /SHA-256/);
      assert.equal(failures.length, 2);

      // Only the tampered mirror: refused as a verification failure, nothing left behind.
      await assert.rejects(
        fetchVerified([{ kind: 'url', url: `${mirror.url}/mirror` }], pkg.id, dest, { url: 'http://127.0.0.1:1', credential: 'c', fetch }, (f) => verifyPackage(f, pkg, publicPem)),
        (e: Error & { code?: string }) => e.code === 'HASH_MISMATCH',
      );
      await assert.rejects(readFile(dest), /ENOENT/);
    } finally {
      await mirror.close();
    }
  }));

test('the server source (authenticated) first; when it fails, a mirror; a package id cannot leave the folder', () =>
  withDir(async (dir) => {
    const good = randomBytes(10_000);
    const pkg = signed(good);
    const srv = await serve({ [`${AGENT_PACKAGES_PATH}/pkg-1`]: good }, 'gdc.dev.secret');
    try {
      const dest = join(dir, 'b.tgz');
      const used = await fetchVerified([{ kind: 'server' }, { kind: 'folder', path: dir }], pkg.id, dest, { url: srv.url, credential: 'gdc.dev.secret', fetch }, (f) => verifyPackage(f, pkg, publicPem));
      assert.equal(used.kind, 'server');
      // A wrong credential: the server refuses, the folder is next (and has nothing): both failures reported.
      await assert.rejects(
        fetchVerified([{ kind: 'server' }, { kind: 'folder', path: join(dir, 'none') }], pkg.id, dest, { url: srv.url, credential: 'wrong', fetch }, (f) => verifyPackage(f, pkg, publicPem)),
        /HTTP 401.*folder/,
      );
      await assert.rejects(
        fetchVerified([{ kind: 'folder', path: dir }], '../escape', dest, { url: srv.url, credential: 'x', fetch }, (f) => verifyPackage(f, pkg, publicPem)),
        /cannot name a file/,
      );
    } finally {
      await srv.close();
    }
  }));

test('a bandwidth limit holds a mirror download near its rate', () =>
  withDir(async (dir) => {
    const good = randomBytes(128 * 1024);
    const pkg = signed(good);
    const mirror = await serve({ '/pkg-1': good });
    try {
      const dest = join(dir, 'c.tgz');
      const t0 = Date.now();
      await fetchVerified([{ kind: 'url', url: mirror.url, bandwidthLimitKBps: 64 }], pkg.id, dest, { url: mirror.url, credential: 'x', fetch }, (f) => verifyPackage(f, pkg, publicPem));
      const seconds = (Date.now() - t0) / 1000;
      // 128 KB at 64 KB/s is 2 s: never much faster, and (even on a loaded machine) not absurdly slower.
      assert.ok(seconds >= 1.7, `took ${seconds} s`);
      assert.ok(seconds < 30, `took ${seconds} s`);
      assert.deepEqual(await readFile(dest), good);
      // A folder source with a limit is throttled the same way.
      await mkdir(join(dir, 'share'));
      await writeFile(join(dir, 'share', 'pkg-1.tgz'), good);
      const t1 = Date.now();
      await fetchVerified([{ kind: 'folder', path: join(dir, 'share'), bandwidthLimitKBps: 128 }], pkg.id, dest, { url: mirror.url, credential: 'x', fetch }, (f) => verifyPackage(f, pkg, publicPem));
      const s2 = (Date.now() - t1) / 1000;
      assert.ok(s2 >= 0.8 && s2 < 30, `took ${s2} s`);
    } finally {
      await mirror.close();
    }
  }));
