/**
 * The master repository: check-in, branches, version order, signing, and what an agent does
 * with a package before anything of it runs (hash, signature, manifest, safe extraction).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { generateKeyPairSync } from 'node:crypto';
import path from 'node:path';
import type { Page, RepositoryPackage } from '@garrison/protocol';
import { downloadPackage, extractPackage, verifyPackage, PackageVerificationError } from '../../agent/src/package-verify.ts';
import { dbKinds, startTestServer, tempDir, type TestServer } from './helpers.ts';
import { buildArchive, manifest } from './package-fixtures.ts';

async function upload(t: TestServer, file: string, branch?: string): Promise<{ status: number; body: RepositoryPackage & { error?: { code: string } } }> {
  const res = await t.fetch(`${t.server.url}/api/v1/repository/packages${branch ? `?branch=${branch}` : ''}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' },
    body: await readFile(file),
  });
  return { status: res.status, body: (await res.json()) as RepositoryPackage & { error?: { code: string } } };
}

/** The versions and branches of a list query's packages, over every page (`limit` per page). */
async function packages(t: TestServer, query = '', limit?: number): Promise<RepositoryPackage[]> {
  const out: RepositoryPackage[] = [];
  let cursor: string | null = null;
  do {
    const qs = new URLSearchParams(query);
    if (limit) qs.set('limit', String(limit));
    if (cursor) qs.set('cursor', cursor);
    const page = await t.api<Page<RepositoryPackage>>('GET', `/api/v1/repository/packages?${qs}`);
    assert.equal(page.status, 200, JSON.stringify(page.body));
    out.push(...page.body.items);
    cursor = page.body.nextCursor;
  } while (cursor);
  return out;
}

for (const kind of dbKinds) {
  describe(`master repository (${kind.name})`, () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer(kind);
    });
    after(() => t.close());

    it('checks packages into branches, moving the older current to previous, in version order', async () => {
      const a = await upload(t, await buildArchive(manifest('app-x', '1.9')));
      assert.equal(a.status, 201, JSON.stringify(a.body));
      assert.equal(a.body.branch, 'current');
      assert.match(a.body.sha256, /^[0-9a-f]{64}$/);
      const b = await upload(t, await buildArchive(manifest('app-x', '1.10')));
      assert.equal(b.body.branch, 'current');
      const list = { body: await packages(t, 'product=app-x') };
      assert.deepEqual(list.body.map((p) => [p.version, p.branch]), [['1.10', 'current'], ['1.9', 'previous']]);
      const c = await upload(t, await buildArchive(manifest('app-x', '2.0.0-beta.1')), 'evaluation');
      assert.equal(c.body.branch, 'evaluation');
      const d = await upload(t, await buildArchive(manifest('app-x', '1.11')));
      const after = { body: await packages(t, 'product=app-x') };
      assert.deepEqual(after.body.map((p) => [p.version, p.branch]), [['2.0.0-beta.1', 'evaluation'], ['1.11', 'current'], ['1.10', 'previous'], ['1.9', null]]);
      // Paged in version order (not the database's): every page boundary gives the same list, with its total.
      for (const limit of [1, 3]) assert.deepEqual((await packages(t, 'product=app-x', limit)).map((p) => p.version), ['2.0.0-beta.1', '1.11', '1.10', '1.9']);
      const first = (await t.api<Page<RepositoryPackage>>('GET', '/api/v1/repository/packages?product=app-x&limit=3')).body;
      assert.deepEqual([first.items.length, first.total, typeof first.nextCursor], [3, 4, 'string']);
      // A package removed at the cursor: the next page goes on after where it was.
      const third = first.items[2]!;
      assert.equal((await t.api('DELETE', `/api/v1/repository/packages/${third.id}`)).status, 204);
      assert.deepEqual((await t.api<Page<RepositoryPackage>>('GET', `/api/v1/repository/packages?product=app-x&limit=3&cursor=${first.nextCursor}`)).body.items.map((p) => p.version), ['1.9']);
      assert.equal((await upload(t, await buildArchive(manifest('app-x', third.version)), third.branch ?? 'none')).status, 201);
      assert.equal((await t.api<{ error: { code: string } }>('GET', '/api/v1/repository/packages?cursor=WzEsMiwzXQ')).body.error.code, 'VALIDATION_FAILED');
      // Promote the evaluation build to current; rolling back promotes previous again.
      await t.api('POST', `/api/v1/repository/packages/${c.body.id}/promote`, { branch: 'current' });
      const promoted = { body: await packages(t, 'product=app-x') };
      assert.deepEqual(promoted.body.map((p) => [p.version, p.branch]), [['2.0.0-beta.1', 'current'], ['1.11', 'previous'], ['1.10', null], ['1.9', null]]);
      await t.api('POST', `/api/v1/repository/packages/${d.body.id}/promote`, { branch: 'current' });
      const back = { body: await packages(t, 'product=app-x&branch=current') };
      assert.deepEqual(back.body.map((p) => p.version), ['1.11']);
      assert.equal((await upload(t, await buildArchive(manifest('app-x', '1.10')))).body.error?.code, 'CONFLICT');
    });

    it('refuses archives that are not packages, and stores nothing of them', async () => {
      const notTar = path.join(await tempDir(), 'x.tgz');
      await writeFile(notTar, 'this is not gzip');
      const cases: [string, string][] = [
        [notTar, 'VALIDATION_FAILED'],
        [await buildArchive(null), 'VALIDATION_FAILED'],
        [await buildArchive(null, {}, '{not json'), 'VALIDATION_FAILED'],
        [await buildArchive({ ...manifest('bad', '1.0'), product: 'Bad Name!' }), 'VALIDATION_FAILED'],
        [await buildArchive({ ...manifest('defs', '1.0'), kind: 'definitions' }), 'VALIDATION_FAILED'],
      ];
      for (const [file, code] of cases) assert.equal((await upload(t, file)).body.error?.code, code, file);
      const empty = await t.fetch(`${t.server.url}/api/v1/repository/packages`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: '' });
      assert.equal(empty.status, 400);
      const list = { body: await packages(t) };
      assert.ok(!list.body.some((p) => p.product === 'bad' || p.product === 'defs'));
    });

    it('lets an enrolled agent download a package and verify hash, signature and manifest; tampering is refused', async () => {
      const g = await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Repo agents' });
      const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId: g.body.id });
      const enrol = (await (
        await t.fetch(`${t.server.url}/agent/v1/enrol`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ token: tok.body.token, inventory: { hostname: 'h', osPlatform: 'linux', osName: 'Linux', osVersion: '6', arch: 'x64', addresses: [], agentVersion: '0.1.0', timeZone: 'UTC', products: [] } }),
        })
      ).json()) as { credential: string; signingPublicKey: string };
      const key = await t.api<{ publicKey: string }>('GET', '/api/v1/repository/signing-key');
      assert.equal(enrol.signingPublicKey, key.body.publicKey);
      const pkg = (await upload(t, await buildArchive(manifest('app-y', '3.1.4'), { 'run.sh': 'echo hi' }))).body;
      // A device may download what its deployment plan names: the product is assigned to its group.
      assert.equal((await t.api('PUT', `/api/v1/groups/${g.body.id}/deployments/app-y`, { branch: 'current' })).status, 200);
      const dir = await tempDir();
      const file = path.join(dir, 'p.tgz');
      await downloadPackage(t.server.url, enrol.credential, pkg.id, file, t.fetch);
      await verifyPackage(file, pkg, enrol.signingPublicKey);
      await extractPackage(file, path.join(dir, 'x'), pkg);
      assert.equal(await readFile(path.join(dir, 'x', 'run.sh'), 'utf8'), 'echo hi');

      const refuse = async (p: Promise<unknown>, code: string) => {
        await assert.rejects(p, (e: unknown) => e instanceof PackageVerificationError && e.code === code);
      };
      const bytes = await readFile(file);
      bytes[bytes.length - 10] ^= 0xff;
      const tampered = path.join(dir, 'tampered.tgz');
      await writeFile(tampered, bytes);
      await refuse(verifyPackage(tampered, pkg, enrol.signingPublicKey), 'HASH_MISMATCH');
      await refuse(verifyPackage(file, { ...pkg, manifest: { ...pkg.manifest, commands: { install: { command: 'rm -rf /' } } } }, enrol.signingPublicKey), 'SIGNATURE_INVALID');
      const other = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
      await refuse(verifyPackage(file, pkg, other), 'SIGNATURE_INVALID');
      // The right signature but another archive's manifest inside.
      const swapped = (await upload(t, await buildArchive(manifest('app-z', '1.0')))).body;
      assert.equal((await t.api('PUT', `/api/v1/groups/${g.body.id}/deployments/app-z`, { branch: 'current' })).status, 200);
      const swappedFile = path.join(dir, 'z.tgz');
      await downloadPackage(t.server.url, enrol.credential, swapped.id, swappedFile, t.fetch);
      await refuse(extractPackage(swappedFile, path.join(dir, 'z'), pkg), 'MANIFEST_MISMATCH');

      await refuse(downloadPackage(t.server.url, 'gdc.nope.nope', pkg.id, path.join(dir, 'n.tgz'), t.fetch), 'DOWNLOAD_FAILED');
      assert.equal((await t.api('DELETE', `/api/v1/repository/packages/${pkg.id}`)).status, 204);
      await refuse(downloadPackage(t.server.url, enrol.credential, pkg.id, path.join(dir, 'gone.tgz'), t.fetch), 'DOWNLOAD_FAILED');
    });
  });
}
