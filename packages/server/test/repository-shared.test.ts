/**
 * Repository archives shared by every instance on one database (issue 14): the archive of a
 * package checked in through one instance is stored in the database (package_archive_chunks)
 * and each instance's `DATA/repository/` is a cache of it, filled from the database when a
 * file is missing, its SHA-256 checked first.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, cp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import type { RepositoryPackage } from '@garrison/protocol';
import { pinnedFetch } from '@garrison/protocol/tls';
import { downloadPackage, verifyPackage } from '../../agent/src/package-verify.ts';
import { startServer } from '../src/app.ts';
import type { AppError } from '../src/errors.ts';
import { SIGNING_KEY_FILE } from '../src/services/signing.ts';
import { ArchiveStore } from '../src/storage/archive-store.ts';
import type { Db } from '../src/storage/database.ts';
import { dbKinds, pgSkip, postgresKind, sqliteKind, startTestServer, tempDir, type TestServer } from './helpers.ts';
import { buildArchive, manifest } from './package-fixtures.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function upload(t: Pick<TestServer, 'fetch' | 'token'>, url: string, file: string): Promise<RepositoryPackage> {
  const res = await t.fetch(`${url}/api/v1/repository/packages`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: await readFile(file) });
  const body = (await res.json()) as RepositoryPackage;
  assert.equal(res.status, 201, JSON.stringify(body));
  return body;
}

/** A device enrolled into a new group; `assign` gives the group a product, so that the credential downloads its packages. */
async function enrolledDevice(t: TestServer, product: string): Promise<{ credential: string; signingPublicKey: string; assign(): Promise<void> }> {
  const g = await t.api<{ id: string }>('POST', '/api/v1/groups', { name: `Shared ${product}` });
  const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId: g.body.id });
  const res = await t.fetch(`${t.server.url}/agent/v1/enrol`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: tok.body.token, inventory: { hostname: 'h', osPlatform: 'linux', osName: 'Linux', osVersion: '6', arch: 'x64', addresses: [], agentVersion: '0.1.0', timeZone: 'UTC', products: [] } }),
  });
  assert.equal(res.status, 201);
  const enrolled = (await res.json()) as { credential: string; signingPublicKey: string };
  return {
    ...enrolled,
    async assign() {
      const r = await t.api('PUT', `/api/v1/groups/${g.body.id}/deployments/${product}`, { branch: 'current' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    },
  };
}

/** A package of about 3 MB of incompressible payload: several 1 MiB chunks in the database. */
const bigArchive = (product: string, version: string) => buildArchive(manifest(product, version), { 'payload.txt': randomBytes(2_400_000).toString('base64') });

async function chunkRows(db: Db, sha: string): Promise<number> {
  const r = await db.kysely.selectFrom('package_archive_chunks').select((eb) => eb.fn.countAll<number>().as('n')).where('sha256', '=', sha).executeTakeFirstOrThrow();
  return Number(r.n);
}

for (const kind of dbKinds) {
  describe(`archive store (${kind.name})`, () => {
    it('stores a file in chunks, reads it back whole, never shows a half-written archive, and deletes', async () => {
      const t = await startTestServer(kind);
      try {
        const store = new ArchiveStore(t.server.db, { chunkBytes: 1000 });
        const dir = await tempDir();
        const bytes = randomBytes(10_500);
        const file = path.join(dir, 'a.bin');
        await writeFile(file, bytes);
        const sha = sha256(bytes);
        assert.equal(await store.has(sha), false);
        assert.equal(await store.open(sha), undefined);
        assert.equal(await store.put(sha, file), true);
        assert.equal(await chunkRows(t.server.db, sha), 11 + 1, '11 chunks and the marker');
        assert.equal(await store.has(sha), true);
        assert.equal(await store.put(sha, file), false, 'stored once');
        const opened = (await store.open(sha))!;
        assert.equal(opened.size, bytes.length);
        const parts: Buffer[] = [];
        for await (const c of opened.stream) parts.push(c as Buffer);
        assert.deepEqual(Buffer.concat(parts), bytes);

        // The wrong hash: chunks may be written, but it is never marked complete.
        const other = sha256(Buffer.from('other'));
        await assert.rejects(store.put(other, file), /has SHA-256/);
        assert.equal(await store.has(other), false);
        assert.equal(await store.open(other), undefined);
        assert.ok(!(await store.stored()).has(other));
        assert.ok((await store.stored()).has(sha));

        // A package naming the bytes keeps them; delete() takes them regardless.
        assert.equal(await store.deleteUnlessUsed(other), true, 'leftovers of the refused write go');
        await store.delete(sha);
        assert.equal(await chunkRows(t.server.db, sha), 0);
        assert.equal(await store.has(sha), false);
      } finally {
        await t.close();
      }
    });
  });
}

describe('shared repository (postgres: two instances, one database)', { skip: pgSkip }, () => {
  it('a package checked in through A downloads from B byte for byte; removed through B, its chunks are gone', async () => {
    const a = await startTestServer(postgresKind);
    let bDir: string | undefined;
    try {
      // Everything B needs to authorize the download exists before it starts (deployment
      // assignments and package candidates are loaded at start; refreshing them across
      // instances is not this test's subject).
      const device = await enrolledDevice(a, 'shared-app');
      const archive = await bigArchive('shared-app', '1.0');
      const original = await readFile(archive);
      const pkg = await upload(a, a.server.url, archive);
      await device.assign();
      assert.equal(pkg.sha256, sha256(original));
      assert.equal(await chunkRows(a.server.db, pkg.sha256), 3 + 1, 'about 3 MB: three 1 MiB chunks and the marker');

      bDir = await tempDir();
      await copyFile(path.join(a.dataDir, SIGNING_KEY_FILE), path.join(bDir, SIGNING_KEY_FILE));
      await cp(path.join(a.dataDir, 'tls'), path.join(bDir, 'tls'), { recursive: true });
      const secretKey = Buffer.from((await readFile(path.join(a.dataDir, 'secret.key'), 'utf8')).trim(), 'base64');
      const b = await startServer({ dataDir: bDir, database: a.database, port: 0, logger: pino({ level: 'silent' }), secretKey, serverTaskTickMs: 200, agentBuildDir: path.join(os.tmpdir(), 'garrison-test-agent-builds') });
      try {
        const bFetch = pinnedFetch(b.tls!.caPem);
        const cached = b.services.repository.archivePath(pkg.sha256);
        assert.equal(existsSync(cached), false, 'B has no file of it');

        // As an agent downloads: the device credential from A, the package from B.
        const dir = await tempDir();
        const got = path.join(dir, 'got.tgz');
        await downloadPackage(b.url, device.credential, pkg.id, got, bFetch);
        assert.ok((await readFile(got)).equals(original), 'the same bytes');
        await verifyPackage(got, pkg, device.signingPublicKey);
        assert.ok((await readFile(cached)).equals(original), 'B keeps it in its cache');

        // Readers at the same time share one fetch, and leave no temporary file.
        await rm(cached);
        const paths = await Promise.all(Array.from({ length: 5 }, () => b.services.repository.localArchive(pkg.sha256)));
        assert.deepEqual(new Set(paths), new Set([cached]));
        assert.equal(sha256(await readFile(cached)), pkg.sha256);
        assert.deepEqual((await readdir(path.dirname(cached))).filter((f) => f.startsWith('.')), []);

        // Removed through B: the rows go, and B's file; A's stale copy is dropped by its start-up sync.
        const del = await bFetch(`${b.url}/api/v1/repository/packages/${pkg.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${a.token}` } });
        assert.equal(del.status, 204);
        assert.equal(await chunkRows(a.server.db, pkg.sha256), 0, 'no chunk left in the database');
        assert.equal(existsSync(cached), false);
        assert.ok(existsSync(a.server.services.repository.archivePath(pkg.sha256)), "A's cache still has it until it syncs");
        assert.deepEqual(await a.server.services.repository.syncLocalArchives(), { copied: 0, removed: 1, failed: 0 });
        assert.equal(existsSync(a.server.services.repository.archivePath(pkg.sha256)), false);
        await assert.rejects(a.server.services.repository.localArchive(pkg.sha256), (err: AppError) => err.code === 'NOT_FOUND');
      } finally {
        await b.close();
      }
    } finally {
      await a.close();
      if (bDir) await rm(bDir, { recursive: true, force: true });
    }
  });
});

describe('shared repository (sqlite: the local folder is a cache)', () => {
  it('restores a missing cache file from the database, refuses damaged rows, and copies archives from before into the database', async () => {
    const t = await startTestServer(sqliteKind);
    try {
      const repo = t.server.services.repository;
      const device = await enrolledDevice(t, 'cached-app');
      const archive = await bigArchive('cached-app', '2.0');
      const original = await readFile(archive);
      const pkg = await upload(t, t.server.url, archive);
      await device.assign();
      const cached = repo.archivePath(pkg.sha256);

      // The cache file is lost (a new disk, a cleaned folder): the download restores it.
      await rm(cached);
      const dir = await tempDir();
      await downloadPackage(t.server.url, device.credential, pkg.id, path.join(dir, 'a.tgz'), t.fetch);
      assert.ok((await readFile(path.join(dir, 'a.tgz'))).equals(original));
      assert.ok((await readFile(cached)).equals(original), 'restored into the cache');

      // A damaged row in the database is refused, and no file of it is left.
      await rm(cached);
      const row = await t.server.db.kysely.selectFrom('package_archive_chunks').select('data').where('sha256', '=', pkg.sha256).where('chunk', '=', 1).executeTakeFirstOrThrow();
      const damaged = Buffer.from(row.data);
      damaged[100] ^= 0xff;
      await t.server.db.kysely.updateTable('package_archive_chunks').set({ data: damaged }).where('sha256', '=', pkg.sha256).where('chunk', '=', 1).execute();
      await assert.rejects(repo.localArchive(pkg.sha256), (err: AppError) => err.code === 'INTERNAL' && /refused/.test(err.message));
      assert.equal(existsSync(cached), false);
      assert.deepEqual((await readdir(path.dirname(cached))).filter((f) => f.startsWith('.')), []);

      // An archive checked in before archives were kept in the database: a file and no rows.
      await writeFile(cached, original);
      await t.server.db.kysely.deleteFrom('package_archive_chunks').where('sha256', '=', pkg.sha256).execute();
      assert.deepEqual(await repo.syncLocalArchives(), { copied: 1, removed: 0, failed: 0 });
      assert.equal(await chunkRows(t.server.db, pkg.sha256), 3 + 1);

      // At start too: a server restarted with the file and no rows copies it before serving.
      await t.server.db.kysely.deleteFrom('package_archive_chunks').where('sha256', '=', pkg.sha256).execute();
      await t.server.close();
      const again = await startTestServer(sqliteKind, { restartOf: t });
      try {
        await downloadPackage(again.server.url, device.credential, pkg.id, path.join(dir, 'b.tgz'), again.fetch);
        assert.ok((await readFile(path.join(dir, 'b.tgz'))).equals(original));
        assert.equal(await chunkRows(again.server.db, pkg.sha256), 3 + 1, 'copied into the database at start');
        // Removing the package removes both.
        assert.equal((await again.api('DELETE', `/api/v1/repository/packages/${pkg.id}`)).status, 204);
        assert.equal(await chunkRows(again.server.db, pkg.sha256), 0);
        assert.equal(existsSync(cached), false);
      } finally {
        await again.close();
      }
    } catch (err) {
      await t.server.close().catch(() => {});
      await t.cleanup();
      throw err;
    }
  });
});
