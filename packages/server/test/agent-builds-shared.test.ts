/**
 * Agent builds shared by the instances on one database (issue 14): builds are not
 * byte-reproducible, and an install script names the SHA-256 of the executable that another
 * instance may serve. The first build stored claims the (platform, agent version) in the
 * database with its bytes; the other instances serve that build, fetched from the database,
 * instead of their own. Real builds (the SEA of this Node), real PostgreSQL.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { hostPlatform } from '@garrison/agent/sea';
import { AgentBuilds } from '../src/services/agent-builds.ts';
import { ArchiveStore } from '../src/storage/archive-store.ts';
import { SettingsStore } from '../src/storage/settings-store.ts';
import { pgSkip, postgresKind, startTestServer, tempDir } from './helpers.ts';

const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

describe('agent builds shared between instances (postgres)', { skip: pgSkip }, () => {
  it('serves one build everywhere: the first one stored, fetched from the database by the others', async () => {
    const t = await startTestServer(postgresKind);
    const dirs: string[] = [];
    const dir = async (name: string) => {
      const d = await tempDir(`garrison-builds-${name}-`);
      dirs.push(d);
      return d;
    };
    try {
      const shared = { settings: new SettingsStore(t.server.db), archives: new ArchiveStore(t.server.db) };
      const platform = hostPlatform();
      // Instance A has a build on disk already (a copy of the suite's shared one: no build needed).
      const suite = await new AgentBuilds(path.join(os.tmpdir(), 'garrison-test-agent-builds')).get(platform);
      const dirA = await dir('a');
      const rel = path.relative(path.join(os.tmpdir(), 'garrison-test-agent-builds'), path.dirname(suite.file));
      await mkdir(path.join(dirA, rel), { recursive: true });
      for (const f of await readdir(path.dirname(suite.file))) await copyFile(path.join(path.dirname(suite.file), f), path.join(dirA, rel, f));
      const logA: string[] = [];
      const logB: string[] = [];
      const logC: string[] = [];
      const a = new AgentBuilds(dirA, (m) => logA.push(m), shared);
      // Instance B has none and builds its own at the same time (a different SHA-256: builds are not reproducible).
      const b = new AgentBuilds(await dir('b'), (m) => logB.push(m), shared);
      const [ba, bb] = await Promise.all([a.get(platform), b.get(platform)]);
      assert.equal(ba.sha256, bb.sha256, `one build served by both: ${JSON.stringify([logA, logB])}`);
      assert.equal(ba.size, bb.size);
      assert.equal(await sha256(ba.file), ba.sha256);
      assert.equal(await sha256(bb.file), bb.sha256);
      assert.ok(((await stat(bb.file)).mode & 0o111) !== 0, 'executable');
      // The claim names it, its bytes are in the database, and the loser's bytes are not.
      const claims = await t.server.db.kysely.selectFrom('server_settings').selectAll().where('key', 'like', 'agent-build:%').execute();
      assert.equal(claims.length, 1);
      assert.deepEqual(JSON.parse(claims[0]!.value), { sha256: ba.sha256, size: ba.size });
      const archives = await shared.archives.stored();
      assert.deepEqual([...archives], [ba.sha256]);
      const both = [...logA, ...logB];
      assert.equal(both.filter((m) => /^stored .* in the database/.test(m)).length, 1, both.join('\n'));
      assert.equal(both.filter((m) => /^fetched .* from the database/.test(m)).length, 1, both.join('\n'));

      // A third instance builds nothing: it fetches the claimed build, and keeps it.
      const c = new AgentBuilds(await dir('c'), (m) => logC.push(m), shared);
      const bc = await c.get(platform);
      assert.equal(bc.sha256, ba.sha256);
      assert.equal(await sha256(bc.file), ba.sha256);
      assert.ok(logC.some((m) => /fetched/.test(m)) && !logC.some((m) => /^built/.test(m)), logC.join('\n'));
      const again = await new AgentBuilds(c.dir, (m) => logC.push(`again: ${m}`), shared).get(platform);
      assert.equal(again.file, bc.file);
      assert.ok(!logC.some((m) => m.startsWith('again:')), 'served from its folder, not fetched again');
      // Another platform: only served when some instance claimed one; none did.
      await assert.rejects(c.get(platform.startsWith('linux') ? 'darwin-arm64' : 'linux-x64'), (err: { code?: string }) => err.code === 'AGENT_BUILD_UNAVAILABLE');
    } finally {
      await t.close();
      // Each holds an executable of ~100 MB.
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
    }
  });
});
