/**
 * Server task "repository-download": packages pulled from another real Garrison server
 * (pinned CA, API token, upstream signatures) and from signed feeds in a folder, over HTTP and
 * over HTTPS with a private CA. Only verified packages land, re-signed with the downstream's
 * key, audited and announced (repository.content); tampered archives and indexes land nothing.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { canonicalJson, checker, packageSigningPayload, type RepositoryPackage, type Page, type ServerTask, type ServerTaskRun } from '@garrison/protocol';
import type { ServerTaskContext, ServerTaskResult } from '../src/server-tasks/server-task.ts';
import { repositoryDownloadTaskType as task } from '../src/server-tasks/repository-download.ts';
import { buildFeed, FEED_INDEX_FILE } from '../src/server-tasks/update-feed.ts';
import { builtinServerTaskTypes } from '../src/server-tasks/types.ts';
import { dbKinds, startTestServer, tempDir, waitFor, type TestServer, serverTaskContext } from './helpers.ts';
import { buildArchive, manifest } from './package-fixtures.ts';

async function upload(t: TestServer, file: string): Promise<RepositoryPackage> {
  const res = await t.fetch(`${t.server.url}/api/v1/repository/packages`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: await readFile(file) });
  assert.equal(res.status, 201);
  return (await res.json()) as RepositoryPackage;
}

const context = (t: TestServer, lines: string[]): ServerTaskContext => serverTaskContext(t, { output: (l) => lines.push(l) });

/** Serves a folder read-only over HTTP, or HTTPS with the given key and chain. */
async function serveFolder(dir: string, tlsOpts?: { key: string; cert: string }): Promise<{ url: string; close(): Promise<void> }> {
  const handler: http.RequestListener = (req, res) => {
    const file = path.join(dir, decodeURIComponent(new URL(req.url!, 'http://x').pathname));
    if (!file.startsWith(dir + path.sep)) return void res.writeHead(403).end();
    createReadStream(file)
      .on('error', () => res.writeHead(404).end())
      .on('open', () => res.writeHead(200))
      .pipe(res);
  };
  const server = tlsOpts ? https.createServer(tlsOpts, handler) : http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { url: `${tlsOpts ? 'https' : 'http'}://127.0.0.1:${port}/feed/`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function newKeyPair(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

for (const kind of dbKinds) {
  describe(`repository download (${kind.name})`, () => {
    let up: TestServer;
    let down: TestServer;
    const announced: string[] = [];
    const feedKey = newKeyPair();
    before(async () => {
      // Registered here until types.ts lists it; then the built-in list has it already.
      const serverTaskTypes = builtinServerTaskTypes.some((x) => x.type === task.type) ? [] : [task];
      [up, down] = await Promise.all([startTestServer(kind), startTestServer(kind, { serverTaskTypes })]);
      // Observe the announcement (what deployments, "repository-content" tasks and the other instances hang on).
      down.server.bus.on('repository.content', (e) => void announced.push(`${e.product} ${e.version}`));
    });
    after(async () => {
      await Promise.all([up?.close(), down?.close()]);
    });

    const run = async (settings: Record<string, unknown>, lines: string[] = []): Promise<ServerTaskResult> => task.run(settings, context(down, lines));
    const localPackages = async (product: string) => (await down.api<{ items: RepositoryPackage[] }>('GET', `/api/v1/repository/packages?product=${product}`)).body.items;

    it('pulls from another Garrison server: re-signed with the downstream key, audited, announced; a second run skips', async () => {
      await upload(up, await buildArchive(manifest('s2s-app', '1.0')));
      const upstreamPkg = await upload(up, await buildArchive(manifest('s2s-app', '1.1')));
      await upload(up, await buildArchive(manifest('s2s-other', '3.0')));
      const token = (await up.api<{ token: string }>('POST', '/api/v1/api-tokens', { name: 'downstream' })).body.token;
      const source = { kind: 'garrison', url: up.server.url, caFingerprint: up.server.tls!.caFingerprint };

      // What the framework checks at create: the schema (token only as a secret reference) and validate().
      const schema = checker(task.settingsSchema);
      assert.ok(schema.check({ source: { ...source, token: { $secret: 'upstream-token' } }, products: ['s2s-app'] }));
      assert.ok(!schema.check({ source: { ...source, token: 'literal' } }));
      assert.deepEqual(await task.validate!({ source: { ...source, token: { $secret: 'x' } } }, down.server as never), []);

      const lines: string[] = [];
      const r = await run({ source: { ...source, token }, products: ['s2s-app'] }, lines);
      // The upstream's current branch holds 1.1 only; s2s-other is filtered out.
      assert.deepEqual([r.data!.checked, r.data!.downloaded, r.data!.skipped, r.data!.refused], [1, 1, 0, []], JSON.stringify(r));
      assert.equal(r.warnings, undefined);
      assert.ok(!lines.join('\n').includes(token) && !JSON.stringify(r).includes(token), 'the token never reaches output or result');
      const [pkg] = await localPackages('s2s-app');
      assert.equal(pkg!.version, '1.1');
      assert.equal(pkg!.branch, 'current');
      assert.equal(pkg!.sha256, upstreamPkg.sha256);
      assert.notEqual(pkg!.signature, upstreamPkg.signature);
      const downKey = (await down.api<{ publicKey: string }>('GET', '/api/v1/repository/signing-key')).body.publicKey;
      const payload = packageSigningPayload({ product: pkg!.product, version: pkg!.version, sha256: pkg!.sha256, manifestSha256: createHash('sha256').update(canonicalJson(pkg!.manifest)).digest('hex') });
      assert.ok(verify(null, Buffer.from(payload), createPublicKey(downKey), Buffer.from(pkg!.signature, 'base64')));
      assert.ok(announced.includes('s2s-app 1.1'));
      const audit = (await down.api<{ items: { kind: string; actor: string }[] }>('GET', '/api/v1/events?kind=audit.repository.added&product=s2s-app')).body.items;
      assert.equal(audit.length, 1);
      assert.equal(audit[0]!.actor, 'system');

      const again = await run({ source: { ...source, token } });
      assert.deepEqual([again.data!.downloaded, again.data!.skipped], [1, 1], 'only s2s-other is new');
      assert.equal((await localPackages('s2s-app')).length, 1);
    });

    it('runs through the server-task API: token as a secret reference, run now, content-triggered tasks follow', async () => {
      await upload(up, await buildArchive(manifest('api-app', '2.0')));
      const token = (await up.api<{ token: string }>('POST', '/api/v1/api-tokens', { name: 'downstream-api' })).body.token;
      assert.equal((await down.api('PUT', '/api/v1/secrets/upstream-token', { value: token })).status, 204);
      const source = { kind: 'garrison', url: up.server.url, caFingerprint: up.server.tls!.caFingerprint, token: { $secret: 'upstream-token' } };
      const onDemand = { triggers: [{ type: 'on-demand' }] };
      const literal = await down.api<{ error: { code: string } }>('POST', '/api/v1/server-tasks', { name: 'pull literal', type: task.type, settings: { source: { ...source, token } }, schedule: onDemand });
      assert.equal(literal.body.error.code, 'SECRET_LITERAL_REFUSED');
      const invalid = await down.api<{ error: { code: string; message: string } }>('POST', '/api/v1/server-tasks', { name: 'pull bad', type: task.type, settings: { source: { ...source, caFingerprint: 'z'.repeat(64) } }, schedule: onDemand });
      assert.equal(invalid.body.error.code, 'SETTINGS_INVALID');
      assert.match(invalid.body.error.message, /caFingerprint must be the SHA-256 fingerprint/);

      const follower = await down.api<ServerTask>('POST', '/api/v1/server-tasks', { name: 'after new content', type: 'database-maintenance', settings: { vacuum: 'never' }, schedule: { triggers: [{ type: 'repository-content' }] } });
      assert.equal(follower.status, 201, JSON.stringify(follower.body));
      const created = await down.api<ServerTask>('POST', '/api/v1/server-tasks', { name: 'pull from upstream', type: task.type, settings: { source, products: ['api-app'] }, schedule: onDemand });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const started = await down.api<ServerTaskRun>('POST', `/api/v1/server-tasks/${created.body.id}/run`);
      assert.equal(started.status, 202);
      const done = await waitFor(async () => {
        const r = (await down.api<ServerTaskRun>('GET', `/api/v1/server-task-runs/${started.body.id}`)).body;
        return ['succeeded', 'succeeded_with_warnings', 'failed', 'timed_out', 'cancelled', 'skipped'].includes(r.state) ? r : null;
      }, { what: 'the download run' });
      assert.equal(done.state, 'succeeded', JSON.stringify(done));
      assert.match(done.summary!, /^1 package\(s\) downloaded/);
      assert.equal(done.result!.downloaded, 1);
      assert.match(done.outputTail!, /downloaded api-app 2\.0/);
      assert.ok(!JSON.stringify(done).includes(token), 'the token is in neither result nor output');
      assert.equal((await localPackages('api-app'))[0]?.branch, 'current');
      const followed = await waitFor(async () => (await down.api<Page<ServerTaskRun>>('GET', `/api/v1/server-tasks/${follower.body.id}/runs`)).body.items.find((r) => r.cause === 'repository-content'), { what: 'the repository-content task' });
      assert.ok(followed);
    });

    it('refuses an upstream it cannot trust or that refuses it, and packages whose signature does not verify', async () => {
      const token = (await up.api<{ token: string }>('POST', '/api/v1/api-tokens', { name: 'downstream-2' })).body.token;
      const base = { kind: 'garrison', url: up.server.url, caFingerprint: up.server.tls!.caFingerprint, token };
      await assert.rejects(run({ source: { ...base, caFingerprint: down.server.tls!.caFingerprint } }), /cannot be trusted: the server's CA fingerprint is .* not the expected .*check source\.caFingerprint/);
      await assert.rejects(run({ source: { ...base, token: 'gat.wrong.wrong' } }), (err: Error) => /HTTP 401/.test(err.message) && /API token/.test(err.message) && !err.message.includes('gat.wrong'));
      await upload(up, await buildArchive(manifest('s2s-forged', '1.0')));
      // A configured signing key that is not the upstream's key: every signature fails, nothing is fetched.
      await assert.rejects(run({ source: { ...base, signingPublicKey: newKeyPair().publicPem }, products: ['s2s-forged'] }), /nothing landed.*signature does not verify/);
      assert.equal((await localPackages('s2s-forged')).length, 0);
      assert.deepEqual(
        (await task.validate!({ source: { ...base, token: { $secret: 'x' }, url: 'https://u:p@host:1' } } as never, down.server as never))[0],
        'source.url must not carry credentials: the API token goes in source.token, as a secret',
      );
      assert.match((await task.validate!({ source: { ...base, caFingerprint: 'abc' } } as never, down.server as never))[0]!, /64 hex digits/);
    });

    it('lands a signed folder feed (path and file:// URL); a tampered archive is refused and never lands', async () => {
      const dir = path.join(await tempDir(), 'feed');
      await buildFeed(dir, feedKey.privatePem, [await buildArchive(manifest('feed-a', '1.0')), await buildArchive(manifest('feed-b', '2.0'))]);
      // feed-b's archive is altered after signing: its hash no longer matches the index.
      const bFile = path.join(dir, 'feed-b-2.0.tgz');
      const bytes = await readFile(bFile);
      bytes[bytes.length - 5]! ^= 0xff;
      await writeFile(bFile, bytes);
      const lines: string[] = [];
      const r = await run({ source: { kind: 'feed', url: dir, publicKey: feedKey.publicPem } }, lines);
      assert.deepEqual([r.data!.checked, r.data!.downloaded], [2, 1]);
      assert.equal(r.warnings?.length, 1);
      assert.match(r.warnings![0]!, /feed-b 2\.0 refused: the archive \(SHA-256 [0-9a-f]{64}, \d+ bytes\) is not the signed one/);
      assert.ok(lines.some((l) => l.startsWith('downloaded feed-a 1.0')) && lines.some((l) => l.startsWith('refused feed-b 2.0')), lines.join('\n'));
      assert.equal((await localPackages('feed-a'))[0]?.branch, 'current');
      assert.equal((await localPackages('feed-b')).length, 0);
      assert.ok(announced.includes('feed-a 1.0') && !announced.includes('feed-b 2.0'));
      // The refused bytes are gone: not in the repository's store, no temporary folder left behind.
      const badSha = /SHA-256 ([0-9a-f]{64})/.exec(r.warnings![0]!)![1]!;
      assert.ok(!(await readdir(path.join(down.dataDir, 'repository'))).some((f) => f.startsWith(badSha)));
      assert.ok(!(await readdir(down.dataDir)).some((f) => f.startsWith('.repository-download-')));

      // Same feed by file:// URL pointing at the index: feed-a is now skipped.
      const again = await run({ source: { kind: 'feed', url: pathToFileURL(path.join(dir, FEED_INDEX_FILE)).href, publicKey: feedKey.publicPem } });
      assert.deepEqual([again.data!.skipped, (again.data!.refused as unknown[]).length], [1, 1]);

      // A stopped run ends before fetching anything.
      const stop = new AbortController();
      stop.abort(new Error('stopped by an administrator'));
      await buildFeed(dir, feedKey.privatePem, [await buildArchive(manifest('feed-stopped', '1.0'))]);
      await assert.rejects(task.run({ source: { kind: 'feed', url: dir, publicKey: feedKey.publicPem } }, { ...context(down, []), signal: stop.signal }), /stopped by an administrator/);
      assert.equal((await localPackages('feed-stopped')).length, 0);
    });

    it('fails on an index whose signature does not verify, and on a link leading out of the folder; nothing lands', async () => {
      const dir = path.join(await tempDir(), 'feed');
      await buildFeed(dir, feedKey.privatePem, [await buildArchive(manifest('feed-bad', '1.0'))]);
      await assert.rejects(run({ source: { kind: 'feed', url: dir, publicKey: newKeyPair().publicPem } }), /feed .* is refused: the signature in index\.json\.sig does not verify/);
      const index = await readFile(path.join(dir, FEED_INDEX_FILE), 'utf8');
      await writeFile(path.join(dir, FEED_INDEX_FILE), index.replace('"size": ', '"size": 1'));
      await assert.rejects(run({ source: { kind: 'feed', url: dir, publicKey: feedKey.publicPem } }), /the index was altered or signed with another key/);
      assert.equal((await localPackages('feed-bad')).length, 0);

      // A correctly signed entry whose file is a link to an archive outside the feed folder.
      const outside = await buildArchive(manifest('feed-link', '1.0'));
      const linked = path.join(await tempDir(), 'feed');
      const built = await buildFeed(linked, feedKey.privatePem, [outside]);
      await mkdir(path.join(linked, 'sub'));
      await symlink(outside, path.join(linked, 'sub', 'evil.tgz'));
      const evil = { ...built, packages: [{ ...built.packages[0]!, file: 'sub/evil.tgz' }] };
      const { signFeedIndex } = await import('../src/server-tasks/update-feed.ts');
      const evilBytes = Buffer.from(JSON.stringify(evil));
      await writeFile(path.join(linked, FEED_INDEX_FILE), evilBytes);
      await writeFile(path.join(linked, 'index.json.sig'), signFeedIndex(evilBytes, feedKey.privatePem));
      await assert.rejects(run({ source: { kind: 'feed', url: linked, publicKey: feedKey.publicPem } }), /sub\/evil\.tgz leads outside the feed folder/);
      assert.equal((await localPackages('feed-link')).length, 0);
    });

    it('lands a feed over HTTP and over HTTPS pinned by CA fingerprint; an older version lands outside the branch; maxPackages defers', async () => {
      const root = await tempDir();
      const dir = path.join(root, 'feed');
      await upload(down, await buildArchive(manifest('feed-http', '5.0')));
      await buildFeed(dir, feedKey.privatePem, [await buildArchive(manifest('feed-http', '4.0')), await buildArchive(manifest('feed-http2', '1.0')), await buildArchive(manifest('feed-http2', '1.1'))]);
      const plain = await serveFolder(root);
      try {
        const lines: string[] = [];
        const r = await run({ source: { kind: 'feed', url: plain.url, publicKey: feedKey.publicPem }, maxPackages: 2 }, lines);
        assert.deepEqual([r.data!.downloaded, r.data!.deferred], [2, 1], lines.join('\n'));
        const http1 = await localPackages('feed-http');
        assert.deepEqual(http1.map((p) => [p.version, p.branch]), [['5.0', 'current'], ['4.0', null]]);
        assert.ok(lines.some((l) => l.includes('downloaded feed-http 4.0') && l.includes('current holds the newer 5.0')));
        assert.ok(!announced.includes('feed-http 4.0'), 'a package outside the branches announces nothing');
      } finally {
        await plain.close();
      }
      // The upstream test server's key and chain (server certificate, then its CA) serve the feed over HTTPS.
      const tlsFeed = await serveFolder(root, { key: up.server.tls!.key, cert: up.server.tls!.cert });
      try {
        const source = { kind: 'feed', url: tlsFeed.url, publicKey: feedKey.publicPem };
        await assert.rejects(run({ source }), /index\.json could not be fetched from https:.*certificate/, 'a private CA is not trusted without its pin');
        await assert.rejects(run({ source: { ...source, caFingerprint: down.server.tls!.caFingerprint } }), /presented no certificate with the SHA-256 fingerprint/);
        const r = await run({ source: { ...source, caFingerprint: up.server.tls!.caFingerprint } });
        assert.deepEqual([r.data!.downloaded, r.data!.skipped], [1, 2]);
        // Both new versions of feed-http2 landed oldest first, so the newest is current.
        assert.deepEqual((await localPackages('feed-http2')).map((p) => [p.version, p.branch]), [['1.1', 'current'], ['1.0', 'previous']]);
      } finally {
        await tlsFeed.close();
      }
    });
  });
}
