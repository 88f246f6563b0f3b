/**
 * Backup of server data and `garrison restore`: a backup taken while real agents report and
 * the API writes restores into a consistent database; a quiesced one restores into a server
 * whose every table (devices, tasks, runs, events, …), keys and secrets are those of the
 * source. Also: passphrase encryption (right and wrong passphrase, through the CLI), keep=N,
 * refusal of damaged or altered archives and of non-empty targets, PostgreSQL's pg_dump and
 * logical paths (the logical one restored into SQLite), and a run through the server-task API.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import pg from 'pg';
import * as tar from 'tar';
import { sql } from 'kysely';
import { isFinalRunState, type Run, type ServerTask, type Page, type ServerTaskRun } from '@garrison/protocol';
import { BIN, PG_URL, dbKinds, serverTaskContext, startAgent, tempDir, useTestServer, waitFor, type TestServer } from './helpers.ts';
import { buildArchive, manifest } from './package-fixtures.ts';
import { startServer } from '../src/app.ts';
import { systemClock, type Clock } from '../src/clock.ts';
import { systemActor } from '../src/services/actor.ts';
import { openDatabase, type DatabaseConfig, type Db } from '../src/storage/database.ts';
import { backupTaskType } from '../src/server-tasks/backup.ts';
import { builtinServerTaskTypes } from '../src/server-tasks/types.ts';
import { ServerTaskStore } from '../src/storage/server-task-store.ts';
import type { ServerTaskResult } from '../src/server-tasks/server-task.ts';
import { createBackup, taskTag } from '../src/backup/create.ts';
import { restoreBackup, RestoreError } from '../src/backup/restore.ts';
import type { BackupManifest } from '../src/backup/manifest.ts';
import { RUNTIME_TABLES } from '../src/storage/schema.ts';

const PASSPHRASE = 'correct horse battery staple';

/** The server-task context the runner would give, built by hand. */
function context(t: TestServer, opts: { taskId?: string; clock?: Clock; lines?: string[]; signal?: AbortSignal; progress?: (percent: number) => void } = {}) {
  const lines = opts.lines ?? [];
  return serverTaskContext(t, {
    clock: opts.clock ?? systemClock,
    taskId: opts.taskId ?? 'backup-test-task',
    taskName: 'backup test',
    runId: randomBytes(8).toString('hex'),
    signal: opts.signal ?? new AbortController().signal,
    progress: opts.progress ?? (() => {}),
    output: (l: string) => void lines.push(l),
  });
}
async function backup(t: TestServer, settings: Record<string, unknown>, opts: Parameters<typeof context>[1] = {}): Promise<ServerTaskResult & { data: { file: string; method: string; encrypted: boolean } }> {
  return (await backupTaskType.run(settings, context(t, opts))) as ServerTaskResult & { data: { file: string; method: string; encrypted: boolean } };
}

/** Every table (but Kysely's migration tables) as sorted JSON rows with sorted keys: comparable across dialects. */
async function tables(db: Db): Promise<Record<string, string[]>> {
  const names =
    db.dialect.name === 'sqlite'
      ? (await sql<{ n: string }>`select name as n from sqlite_master where type = 'table' and name not like 'sqlite_%'`.execute(db.kysely)).rows
      : (await sql<{ n: string }>`select table_name as n from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'`.execute(db.kysely)).rows;
  const out: Record<string, string[]> = {};
  for (const { n } of names.filter((r) => !r.n.startsWith('garrison_migrations') && !RUNTIME_TABLES.includes(r.n)).sort((a, b) => (a.n < b.n ? -1 : 1))) {
    const rows = (await sql<Record<string, unknown>>`select * from ${sql.id(n)}`.execute(db.kysely)).rows;
    out[n] = rows.map((r) => JSON.stringify(Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : 1))))).sort();
  }
  return out;
}
const parsed = (rows: string[]) => rows.map((r) => JSON.parse(r) as Record<string, unknown>);

async function withDb<T>(config: DatabaseConfig, fn: (db: Db) => Promise<T>): Promise<T> {
  const db = await openDatabase(config);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}
async function pgQuery(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  await c.query(text).finally(() => c.end());
}
/** Temporary folders (backup folders, restore targets), removed when the file's tests end. */
const scratchDirs: string[] = [];
async function scratch(prefix?: string): Promise<string> {
  const dir = await tempDir(prefix);
  scratchDirs.push(dir);
  return dir;
}
const freshSchema = () => `t_${randomBytes(6).toString('hex')}`;

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'restore', ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The backup type, unless the server already has it built in. */
const withBackupType = builtinServerTaskTypes.some((t) => t.type === 'backup') ? {} : { serverTaskTypes: [backupTaskType] };

async function uploadPackage(t: TestServer, product: string, version: string): Promise<void> {
  const res = await t.fetch(`${t.server.url}/api/v1/repository/packages`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: await readFile(await buildArchive(manifest(product, version))) });
  assert.equal(res.status, 201, await res.text());
}

// The suites are independent (own servers, folders and schemas) and mostly wait on agents and
// child processes: run side by side, the file takes as long as its longest suite.
describe('backup of server data', { concurrency: true }, () => {
  after(() => Promise.all(scratchDirs.map((d) => rm(d, { recursive: true, force: true }))));
  for (const kind of dbKinds) {
    describe(`backup and restore under load (${kind.name})`, { concurrency: 1 }, () => {
      // The test closes the server itself (the source is lost); the hook closes it only if the test did not get there.
      const t = useTestServer(kind, withBackupType);
      const cleanups: (() => Promise<unknown>)[] = [];
      after(async () => {
        for (const c of cleanups) await c().catch(() => {});
      });

      it('backs up while agents report and the API writes, then restores a quiesced backup identical to the source', async () => {
        const s = t.server.services;
        const g = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Backup fleet' })).body.id;
        const [a, b] = await Promise.all([startAgent(t, g, 'backup-a'), startAgent(t, g, 'backup-b')]);
        t.track(a!);
        t.track(b!);
        const task = await t.api<{ id: string }>('POST', '/api/v1/tasks', { name: 'backup load', type: 'script', schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: g }, settings: { shell: 'sh', script: 'echo "load on $(hostname)"' } });
        assert.equal(task.status, 201, JSON.stringify(task.body));
        await s.secrets.put(systemActor, 'db-pass', 's3cret-value');
        await uploadPackage(t, 'backup-app', '1.0');

        // The load: run-now on both agents, a stream of events, and API writes, until told to stop.
        let loading = true;
        let iterations = 0;
        const load = (async () => {
          while (loading) {
            await t.api('POST', `/api/v1/tasks/${task.body.id}/run`, {});
            for (let k = 0; k < 25; k++) s.events.record({ severity: 'info', kind: 'test.load', message: `load ${iterations}.${k}`, deviceId: k % 2 ? a!.deviceId : b!.deviceId });
            await t.api('POST', '/api/v1/groups', { name: `load ${iterations}`, parentId: g });
            iterations++;
            await new Promise((r) => setTimeout(r, 10)); // pacing of the load, not a wait for a condition
          }
        })();
        await waitFor(async () => iterations >= 5 && (await t.api<{ items: Run[] }>('GET', `/api/v1/runs?taskId=${task.body.id}`)).body.items.some((r) => r.state === 'succeeded'), { what: 'load with finished runs' });
        const folder = await scratch('garrison-backups-');
        const before = iterations;
        const underLoad = await backup(t, { folder, keep: 10 });
        const during = iterations - before;
        loading = false;
        await load;
        assert.ok(during >= 1, 'the load went on during the backup');
        assert.equal(underLoad.data.method, kind.name === 'sqlite' ? 'sqlite-backup' : 'pg_dump');
        assert.ok(underLoad.warnings?.some((w) => /not encrypted/.test(w)), 'an unencrypted backup warns that it holds the keys');

        // Quiesce: every run finished, agents stopped and seen offline, buffers flushed.
        let states = '';
        await waitFor(async () => {
          const runs = (await t.api<{ items: Run[] }>('GET', `/api/v1/runs?taskId=${task.body.id}`)).body.items;
          states = JSON.stringify(runs.map((r) => r.state));
          return runs.every((r) => isFinalRunState(r.state));
        }, { what: 'every load run finished', timeoutMs: 20_000, output: () => states });
        await Promise.all([a!.stop(), b!.stop()]);
        await waitFor(async () => (await t.api<{ items: { online: boolean }[] }>('GET', '/api/v1/devices')).body.items.every((d) => !d.online), { what: 'agents offline' });
        await s.agents.flushAll();
        await s.events.flush();
        await t.server.presence.flush();
        const source = await tables(t.server.db);
        const quiet = await backup(t, { folder, keep: 10 });
        assert.deepEqual(await tables(t.server.db), source, 'nothing changed while the quiesced backup ran');
        assert.ok(source.runs!.length >= 10 && source.events!.length >= 100 && source.devices!.length === 2, `runs ${source.runs!.length}, events ${source.events!.length}`);
        const forcedLogical =
          kind.name === 'postgres'
            ? await createBackup({ db: t.server.db, dataDir: t.dataDir, folder, includeRepository: true, runId: 'logical1', taskId: 'logical', clock: systemClock, signal: new AbortController().signal, progress: () => {}, output: () => {}, pgDump: false })
            : null;
        const keyFiles = ['secret.key', 'signing-key.pem', 'tls/ca.crt', 'tls/ca.key', 'tls/server.key', 'tls/server.crt'];
        const sourceKeys = await Promise.all(keyFiles.map((f) => readFile(path.join(t.dataDir, f), 'utf8')));
        const signingPublicKey = s.repository.publicKeyPem;
        const packageFiles = (await readdir(path.join(t.dataDir, 'repository'))).filter((f) => !f.startsWith('.'));

        // The source is lost: a restore must bring everything back without it.
        await t.close();
        const target = (dir: string, schema?: string): { db: DatabaseConfig; opt: { database?: { url: string; schema: string } } } =>
          kind.name === 'sqlite' || !schema ? { db: { kind: 'sqlite', file: path.join(dir, 'garrison.db') }, opt: {} } : { db: { kind: 'postgres', url: PG_URL!, schema }, opt: { database: { url: PG_URL!, schema } } };

        // 1. The quiesced backup: a server started on it holds every row, key and secret of the source.
        const dir1 = path.join(await scratch(), 'restored');
        const schema1 = freshSchema();
        if (kind.name === 'postgres') cleanups.push(() => pgQuery(`drop schema if exists ${schema1} cascade`));
        const t1 = target(dir1, schema1);
        const restored = await restoreBackup({ archive: quiet.data.file, dataDir: dir1, ...t1.opt });
        assert.deepEqual(restored.warnings, []);
        assert.deepEqual(await Promise.all(keyFiles.map((f) => readFile(path.join(dir1, f), 'utf8'))), sourceKeys, 'secret-store key, signing key and TLS keys identical');
        assert.deepEqual((await readdir(path.join(dir1, 'repository'))).sort(), packageFiles.sort());
        for (const f of keyFiles) assert.equal((await stat(path.join(dir1, f))).mode & 0o777, 0o600, f);
        const server = await startServer({ dataDir: dir1, database: t1.db, port: 0, logger: pino({ level: 'silent' }), agentBuildDir: path.join(os.tmpdir(), 'garrison-test-agent-builds') });
        try {
          const after = await tables(server.db);
          for (const name of Object.keys(source)) assert.deepEqual(after[name], source[name], `table ${name} identical after restore`);
          assert.deepEqual(Object.keys(after).sort(), Object.keys(source).sort());
          assert.equal((await server.services.secrets.values(['db-pass'])).get('db-pass'), 's3cret-value', 'a secret set before the backup reads back');
          assert.equal(server.services.repository.publicKeyPem, signingPublicKey);
          const pkgs = await server.services.repository.list(systemActor, { product: 'backup-app' });
          assert.ok(existsSync(server.services.repository.archivePath(pkgs[0]!.sha256)), 'the package archive is back');
        } finally {
          await server.close();
        }

        // 2. The backup taken under load: a consistent snapshot (every reference resolves; events are the source's).
        const dir2 = path.join(await scratch(), 'restored');
        const schema2 = freshSchema();
        if (kind.name === 'postgres') cleanups.push(() => pgQuery(`drop schema if exists ${schema2} cascade`));
        const t2 = target(dir2, schema2);
        await restoreBackup({ archive: underLoad.data.file, dataDir: dir2, ...t2.opt });
        await withDb(t2.db, async (db) => {
          const snap = await tables(db);
          const ids = (rows: string[]) => new Set(parsed(rows).map((r) => r.id));
          const [tasks, devices, runs] = [ids(snap.tasks!), ids(snap.devices!), ids(snap.runs!)];
          for (const r of parsed(snap.runs!)) assert.ok(tasks.has(r.task_id) && devices.has(r.device_id), `run ${String(r.id)} refers to its task and device`);
          for (const r of parsed(snap.task_device_state!)) assert.ok(runs.has(r.run_id), 'the latest run of each task and device exists (same transaction)');
          const sourceEvents = new Map(parsed(source.events!).map((e) => [e.id, JSON.stringify(e)]));
          const events = parsed(snap.events!).sort((x, y) => Number(x.id) - Number(y.id));
          assert.ok(events.length > 0 && events.length < sourceEvents.size, `${events.length} events under load, ${sourceEvents.size} in the end`);
          for (const e of events) assert.equal(JSON.stringify(e), sourceEvents.get(e.id), `event ${String(e.id)} identical to the source's`);
          // One SQLite writer commits in id order: a snapshot holds exactly the first events. PostgreSQL's
          // concurrent writers (batched events and audit records) may commit ids out of order.
          if (kind.name === 'sqlite') assert.deepEqual(events.map((e) => Number(e.id)), [...sourceEvents.keys()].map(Number).sort((x, y) => x - y).slice(0, events.length));
          assert.ok(parsed(snap.runs!).length <= source.runs!.length);
        });

        // 3. PostgreSQL's logical dump restores into SQLite (the default target), identical too.
        if (forcedLogical) {
          assert.equal(forcedLogical.method, 'logical');
          const dir3 = path.join(await scratch(), 'restored');
          await restoreBackup({ archive: forcedLogical.file, dataDir: dir3 });
          const snap = await withDb({ kind: 'sqlite', file: path.join(dir3, 'garrison.db') }, tables);
          assert.deepEqual(snap, source);
        }

        // 4. An SQLite backup restores into PostgreSQL too (rows copied from the file).
        if (kind.name === 'sqlite' && PG_URL) {
          const dir4 = path.join(await scratch(), 'restored');
          const schema4 = freshSchema();
          cleanups.push(() => pgQuery(`drop schema if exists ${schema4} cascade`));
          await restoreBackup({ archive: quiet.data.file, dataDir: dir4, database: { url: PG_URL, schema: schema4 } });
          const snap = await withDb({ kind: 'postgres', url: PG_URL, schema: schema4 }, tables);
          assert.deepEqual(snap, source);
        }
      });
    });

    describe(`backup archives (${kind.name})`, { concurrency: 1 }, () => {
      const t = useTestServer(kind, withBackupType);
      before(async () => {
        await t.server.services.secrets.put(systemActor, 'backup-pass', PASSPHRASE);
        await t.server.services.secrets.put(systemActor, 'api-key', 'value-1');
        await uploadPackage(t, 'archive-app', '2.0');
      });

      it('runs through the server-task API with a passphrase secret; the CLI restores it with the right passphrase and refuses a wrong one', async () => {
        const folder = await scratch('garrison-backups-');
        const created = await t.api<ServerTask>('POST', '/api/v1/server-tasks', { name: 'nightly backup', type: 'backup', settings: { folder, keep: 3, passphrase: { $secret: 'backup-pass' } }, schedule: { triggers: [{ type: 'on-demand' }] } });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        const literal = await t.api<{ error: { code: string } }>('POST', '/api/v1/server-tasks', { name: 'literal', type: 'backup', settings: { passphrase: 'in clear' }, schedule: { triggers: [{ type: 'on-demand' }] } });
        assert.equal(literal.body.error.code, 'SECRET_LITERAL_REFUSED', 'a passphrase is only accepted as a secret reference');
        const relative = await t.api<{ error: { code: string; message: string } }>('POST', '/api/v1/server-tasks', { name: 'relative', type: 'backup', settings: { folder: 'backups' }, schedule: { triggers: [{ type: 'on-demand' }] } });
        assert.match(relative.body.error.message, /absolute/);
        const inside = await t.api<{ error: { code: string; message: string } }>('POST', '/api/v1/server-tasks', { name: 'inside', type: 'backup', settings: { folder: path.join(t.dataDir, 'repository', 'bk') }, schedule: { triggers: [{ type: 'on-demand' }] } });
        assert.match(inside.body.error.message, /must not be inside/);

        const started = await t.api<ServerTaskRun>('POST', `/api/v1/server-tasks/${created.body.id}/run`, {});
        assert.equal(started.status, 202, JSON.stringify(started.body));
        const run = await waitFor(async () => {
          const r = (await t.api<Page<ServerTaskRun>>('GET', `/api/v1/server-tasks/${created.body.id}/runs`)).body.items[0];
          return r && ['succeeded', 'succeeded_with_warnings', 'failed', 'timed_out', 'cancelled', 'skipped'].includes(r.state) ? r : null;
        }, { what: 'the backup run to end', timeoutMs: 20_000 });
        assert.equal(run.state, 'succeeded', `${run.summary}\n${run.outputTail}`);
        const file = run.result!.file as string;
        assert.match(path.basename(file), /^garrison-backup-\d{8}-\d{6}-[0-9a-f]{8}-[0-9a-z]{8}\.tar\.gz\.enc$/);
        assert.equal((await stat(file)).mode & 0o777, 0o600);
        assert.equal(run.result!.encrypted, true);
        assert.ok(!JSON.stringify(run).includes(PASSPHRASE), 'the passphrase is in neither the result nor the output');
        assert.match(run.summary ?? '', /encrypted/);

        const dir = path.join(await scratch(), 'restored');
        await assert.rejects(restoreBackup({ archive: file, dataDir: dir, passphrase: 'not the passphrase' }), (err: Error) => err instanceof RestoreError && /passphrase is wrong/.test(err.message));
        assert.deepEqual(await readdir(dir), [], 'nothing restored with a wrong passphrase');
        await assert.rejects(restoreBackup({ archive: file, dataDir: dir }), /encrypted: give its passphrase/);
        const flipped = Buffer.from(await readFile(file));
        flipped[Math.floor(flipped.length / 2)]! ^= 1;
        const damaged = path.join(await scratch(), 'damaged.tar.gz.enc');
        await writeFile(damaged, flipped);
        await assert.rejects(restoreBackup({ archive: damaged, dataDir: dir, passphrase: PASSPHRASE }), /wrong or the archive was altered/);

        // The command itself, with the passphrase in a file.
        const passFile = path.join(await scratch(), 'pass');
        await writeFile(passFile, `${PASSPHRASE}\n`, { mode: 0o600 });
        // PostgreSQL: into a new database, where pg_restore recreates the backed-up schema under its own name.
        const database = kind.name === 'postgres' ? `garrison_restore_${randomBytes(4).toString('hex')}` : null;
        const dbUrl = database ? Object.assign(new URL(PG_URL!), { pathname: `/${database}` }).toString() : null;
        if (database) await pgQuery(`create database ${database}`);
        try {
          const ok = await cli([file, '--data-dir', dir, '--passphrase-file', passFile, ...(dbUrl ? ['--database-url', dbUrl] : [])]);
          assert.equal(ok.code, 0, ok.stderr);
          assert.match(ok.stdout, /Start the server with:\n {2}garrison server --data/);
          assert.ok(!ok.stdout.includes(PASSPHRASE));
          const config: DatabaseConfig | undefined = dbUrl ? { kind: 'postgres', url: dbUrl, schema: (t.database as { schema: string }).schema } : undefined;
          const server = await startServer({ dataDir: dir, ...(config ? { database: config } : {}), port: 0, logger: pino({ level: 'silent' }), agentBuildDir: path.join(os.tmpdir(), 'garrison-test-agent-builds') });
          try {
            assert.equal((await server.services.secrets.values(['api-key'])).get('api-key'), 'value-1');
            assert.equal((await server.services.repository.list(systemActor, { product: 'archive-app' })).length, 1);
            // The run that made the archive is "running" in its snapshot: the restore settles it, so the restored server does not resume it.
            const own = await new ServerTaskStore(server.db).getRun(run.id);
            assert.equal(own?.state, 'succeeded');
          } finally {
            await server.close();
          }
        } finally {
          if (database) await pgQuery(`drop database if exists ${database}`);
        }
      });

      it('keeps the newest N archives of its own task and removes older ones after a successful backup', async () => {
        const folder = await scratch('garrison-backups-');
        let now = Date.parse('2026-03-01T02:00:00Z');
        const clock: Clock = { now: () => new Date((now += 60_000)) };
        const other = `garrison-backup-20200101-000000-${taskTag('another task')}-aaaaaaaa.tar.gz`;
        await writeFile(path.join(folder, other), 'another task');
        await writeFile(path.join(folder, 'notes.txt'), 'not an archive');
        const files: string[] = [];
        for (let i = 0; i < 4; i++) files.push((await backup(t, { folder, keep: 2, includeRepository: false }, { clock, taskId: 'keep-task' })).data.file);
        assert.deepEqual((await readdir(folder)).sort(), [other, 'notes.txt', path.basename(files[2]!), path.basename(files[3]!)].sort());

        // Stopped while writing the archive: the run fails, leaving neither a partial archive nor staging files, and prunes nothing.
        const stop = new AbortController();
        const stopAt60 = (p: number) => void (p >= 60 && stop.abort(new Error('stopped by an administrator')));
        await assert.rejects(backup(t, { folder, keep: 1 }, { clock, taskId: 'keep-task', signal: stop.signal, progress: stopAt60 }), /stopped by an administrator/);
        assert.equal((await readdir(folder)).length, 4);
        assert.deepEqual((await readdir(t.dataDir)).filter((n) => n.startsWith('.backup-staging-')), []);
      });

      it('refuses a damaged or altered archive, a non-empty target and a missing or wrong GARRISON_SECRET_KEY; --force replaces an old garrison.db and its WAL', async () => {
        const folder = await scratch('garrison-backups-');
        const { data } = await backup(t, { folder, includeRepository: false });
        const manifestOf = async (dir: string) => JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as BackupManifest;
        const unpack = async () => {
          const dir = await scratch('garrison-unpacked-');
          await tar.x({ file: data.file, cwd: dir });
          return dir;
        };
        const repack = async (dir: string) => {
          const file = path.join(await scratch(), 'altered.tar.gz');
          await tar.c({ gzip: true, file, cwd: dir }, await readdir(dir));
          return file;
        };
        const refused = async (archive: string, pattern: RegExp, opts: { dataDir?: string; force?: boolean } = {}) => {
          const dataDir = opts.dataDir ?? path.join(await scratch(), 'r');
          await assert.rejects(restoreBackup({ archive, dataDir, force: opts.force ?? false }), (err: Error) => err instanceof RestoreError && pattern.test(err.message));
          return dataDir;
        };

        const altered = await unpack();
        await writeFile(path.join(altered, 'data', 'signing-key.pem'), 'not the key');
        const target = await refused(await repack(altered), /signing-key.pem does not match its SHA-256/);
        assert.deepEqual(await readdir(target), [], 'nothing written');
        const extra = await unpack();
        await writeFile(path.join(extra, 'data', 'planted.js'), 'evil()');
        await refused(await repack(extra), /files its manifest does not list/);
        const missing = await unpack();
        const m = await manifestOf(missing);
        await writeFile(path.join(missing, 'manifest.json'), JSON.stringify({ ...m, files: [...m.files, { path: 'data/gone', size: 1, sha256: '0'.repeat(64) }] }));
        await refused(await repack(missing), /lacks data\/gone/);
        const future = await unpack();
        await writeFile(path.join(future, 'manifest.json'), JSON.stringify({ ...(await manifestOf(future)), version: 2 }));
        await refused(await repack(future), /format version 2/);
        const truncated = path.join(await scratch(), 'truncated.tar.gz');
        await writeFile(truncated, (await readFile(data.file)).subarray(0, 2000));
        await refused(truncated, /not a readable Garrison backup/);

        const busy = await scratch();
        await writeFile(path.join(busy, 'something'), 'x');
        await refused(data.file, /is not empty/, { dataDir: busy });
        if (kind.name === 'sqlite') {
          // --force replaces an old database (and its WAL, which would otherwise be replayed into the restored one).
          await writeFile(path.join(busy, 'garrison.db'), 'an old database');
          await writeFile(path.join(busy, 'garrison.db-wal'), 'an old WAL');
          const out = await restoreBackup({ archive: data.file, dataDir: busy, force: true });
          assert.ok(!existsSync(path.join(busy, 'garrison.db-wal')));
          assert.ok(out.warnings.some((w) => /without the repository: the packages its database lists \(1\)/.test(w)), out.warnings.join('; '));
          await withDb({ kind: 'sqlite', file: path.join(busy, 'garrison.db') }, async (db) => assert.ok((await tables(db)).secrets!.length >= 2));
        } else {
          await refused(data.file, /holds a pg_dump of PostgreSQL/);
        }
        // A key from GARRISON_SECRET_KEY is not in the archive: the restore demands that very key.
        const key = await readFile(path.join(t.dataDir, 'secret.key'), 'utf8');
        const fromEnv = await createBackup({ db: t.server.db, dataDir: t.dataDir, folder, includeRepository: false, runId: 'envkey01', taskId: 'env', clock: systemClock, signal: new AbortController().signal, progress: () => {}, output: () => {}, env: { GARRISON_SECRET_KEY: key.trim() } });
        assert.ok(fromEnv.warnings.some((w) => /GARRISON_SECRET_KEY and is not in the archive/.test(w)));
        await refused(fromEnv.file, /set GARRISON_SECRET_KEY to that key/);
        await assert.rejects(restoreBackup({ archive: fromEnv.file, dataDir: path.join(await scratch(), 'r'), secretKey: randomBytes(32) }), /fingerprint differs/);
        const envDir = path.join(await scratch(), 'r');
        const restoredEnv = await restoreBackup({ archive: fromEnv.file, dataDir: envDir, secretKey: Buffer.from(key, 'base64'), ...(kind.name === 'postgres' ? { database: { url: PG_URL!, schema: freshSchema() } } : {}) }).catch((err: Error) => err);
        if (kind.name === 'sqlite') {
          assert.ok(!(restoredEnv instanceof Error), String(restoredEnv));
          assert.ok(!existsSync(path.join(envDir, 'secret.key')) && existsSync(path.join(envDir, 'signing-key.pem')));
        } else assert.match(String(restoredEnv), /schema "t_\w+" exists in the target database/, 'pg_dump restores under its own schema name, which the live source holds');

        const noDir = await cli([data.file]);
        assert.equal(noDir.code, 2);
        assert.match(noDir.stderr, /--data-dir DIR is required/);
      });
    });
  }
});
