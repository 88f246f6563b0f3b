// The folder lock and process identity with real processes: a holder in another process, a
// holder killed with SIGKILL (stale at once), a pid reused by another process (judged by its
// start time), and the pure judgement for what other platforms would observe.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireFolderLock, FolderInUseError, type FolderLockHolder, type FolderLockOptions } from '../src/folder-lock.ts';
import { judgeProcess, parseDarwinBootSession, parseLstart, parseProcStat, ownIdentity, psStartTime, type ProcessIdentity, type ProcessObservation } from '../src/process-identity.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const options = (dir: string): FolderLockOptions => ({
  file: path.join(dir, 'test.lock'),
  program: 'test',
  code: 'TEST_FOLDER_IN_USE',
  inUseMessage: (h) => `in use by pid ${h?.pid}`,
});

const recorded: ProcessIdentity = { pid: 42, startTime: '1000', bootId: 'boot-a', hostname: 'h1' };
const seen = (o: Partial<ProcessObservation>): ProcessObservation => ({ alive: true, startTime: '1000', bootId: 'boot-a', hostname: 'h1', ...o });

test('judgeProcess: same, gone, reused, rebooted, other host, unknown start times', () => {
  assert.equal(judgeProcess(recorded, seen({})), 'same');
  assert.equal(judgeProcess(recorded, seen({ alive: false, startTime: null })), 'gone');
  assert.equal(judgeProcess(recorded, seen({ startTime: '2000' })), 'reused');
  assert.equal(judgeProcess(recorded, seen({ bootId: 'boot-b' })), 'gone', 'a reboot ended every process');
  assert.equal(judgeProcess(recorded, seen({ hostname: 'h2' })), 'other-host');
  // macOS and Windows records have no boot id; a start time that could not be read cannot disprove a live pid.
  assert.equal(judgeProcess({ ...recorded, bootId: null, startTime: null }, seen({ bootId: null, startTime: 'Wed Dec  2 01:00:37 2026' })), 'same');
  assert.equal(judgeProcess({ ...recorded, bootId: null, startTime: '133000000000000000' }, seen({ bootId: null, startTime: '133000000000000001' })), 'reused');
});

test('parseProcStat reads fields after a command with spaces and parentheses', () => {
  const st = parseProcStat('1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10');
  assert.deepEqual(st, { pid: 1234, state: 'S', ppid: 1, pgid: 1234, startTime: '987654' });
  assert.equal(parseProcStat('garbage'), null);
});

test('macOS samples: ps lstart dates are read as UTC (ps runs with TZ=UTC), the boot session UUID is the boot id', () => {
  assert.equal(parseLstart('Wed Dec  2 01:00:37 2026'), Date.UTC(2026, 11, 2, 1, 0, 37));
  assert.equal(parseLstart('Sun Mar 29 01:30:00 2026\n'), Date.UTC(2026, 2, 29, 1, 30, 0), 'an hour a daylight-saving change skips in Europe is still one instant');
  assert.equal(parseLstart('Thu Jan  1 00:00:00 1970'), 0);
  for (const bad of ['', 'Mi  2 Dez 01:00:37 2026', 'Wed Foo  2 01:00:37 2026', 'Wed Dec 32 01:00:37 2026', '2026-12-02T01:00:37Z']) assert.equal(parseLstart(bad), null, bad);
  assert.equal(parseDarwinBootSession('5F6D3A2B-1C4E-4F8A-9B7D-0123456789AB\n'), '5f6d3a2b-1c4e-4f8a-9b7d-0123456789ab');
  assert.equal(parseDarwinBootSession(''), null);
  assert.equal(parseDarwinBootSession('sysctl: unknown oid'), null);
});

test('ps runs in UTC and the C locale whatever the agent’s zone: its date is the real start instant', { skip: process.platform === 'win32' && 'no ps' }, async (t) => {
  // procps prints lstart in the form macOS's ps does: the macOS code path, run here.
  const before = process.env.TZ;
  process.env.TZ = 'Asia/Tokyo';
  t.after(() => (before === undefined ? delete process.env.TZ : (process.env.TZ = before)));
  const text = await psStartTime(process.pid);
  assert.ok(text, 'ps printed a start time');
  const began = Date.now() - process.uptime() * 1000;
  const parsed = parseLstart(text);
  assert.ok(parsed !== null && Math.abs(parsed - began) < 5000, `ps said ${text}, this process started at ${new Date(began).toISOString()}`);
});

test('ownIdentity: this process, with a start time on Linux', { skip: process.platform !== 'linux' && 'Linux only' }, async () => {
  const me = await ownIdentity();
  assert.equal(me.pid, process.pid);
  assert.match(me.startTime ?? '', /^\d+$/);
  assert.match(me.bootId ?? '', /^[0-9a-f-]{36}$/);
});

test('one holder at a time in one process; released, it can be taken again', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'garrison-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const a = await acquireFolderLock(options(dir));
  await assert.rejects(acquireFolderLock(options(dir)), (err: FolderInUseError) => err instanceof FolderInUseError && err.code === 'TEST_FOLDER_IN_USE' && err.holder?.pid === process.pid && /in use by pid/.test(err.message));
  await a.release();
  await a.release();
  assert.equal(existsSync(options(dir).file), false);
  const b = await acquireFolderLock(options(dir));
  // An old holder's release does not remove a newer holder's lock.
  await a.release();
  assert.equal(existsSync(options(dir).file), true);
  await b.release();
});

test('a holder in another process refuses; killed with SIGKILL it is stale at once', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'garrison-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const holderScript = path.join(dir, 'holder.ts');
  await writeFile(holderScript, `import { acquireFolderLock } from ${JSON.stringify(path.join(here, '../src/folder-lock.ts'))};\nawait acquireFolderLock({ file: ${JSON.stringify(options(dir).file)}, program: 'test', code: 'X', inUseMessage: () => 'x' });\nconsole.log('held');\nsetInterval(() => {}, 1000);\n`);
  const child = spawn(process.execPath, [holderScript], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.once('exit', r));
  t.after(() => child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('held') && resolve());
    child.once('exit', (code) => reject(new Error(`holder exited ${code}`)));
  });
  const holder = JSON.parse(await readFile(options(dir).file, 'utf8')) as FolderLockHolder;
  assert.equal(holder.pid, child.pid);
  await assert.rejects(acquireFolderLock(options(dir)), (err: FolderInUseError) => err.holder?.pid === child.pid);
  child.kill('SIGKILL');
  await exited;
  const mine = await acquireFolderLock(options(dir));
  assert.equal(mine.holder.pid, process.pid);
  await mine.release();
});

test('a lock whose pid is alive but started at another time (pid reused) is stale; an unreadable one too', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'garrison-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const me = await ownIdentity();
  if (me.startTime) {
    // Our own pid, "started" at another time: another process that got the pid.
    await writeFile(options(dir).file, JSON.stringify({ ...me, startTime: `${me.startTime}0`, program: 'test', startedAt: 'then', token: 'old' }));
    const lock = await acquireFolderLock(options(dir));
    await lock.release();
  }
  await writeFile(options(dir).file, '{"half');
  const lock = await acquireFolderLock(options(dir));
  await lock.release();
  // A holder on another host cannot be checked: refused.
  await writeFile(options(dir).file, JSON.stringify({ ...me, hostname: 'elsewhere', program: 'test', startedAt: 'then', token: 'x' }));
  await assert.rejects(acquireFolderLock(options(dir)), FolderInUseError);
});

test('a record caught while it is being written (no hard links: an exclusive create, then the write) is not taken for stale', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'garrison-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const me = await ownIdentity();
  // Another taker has created the file and writes its record (a running process: this one) a moment later.
  await writeFile(options(dir).file, '');
  const written = new Promise<void>((resolve) => setTimeout(() => void writeFile(options(dir).file, JSON.stringify({ ...me, program: 'test', startedAt: 'now', token: 'theirs' })).then(resolve), 20));
  await assert.rejects(acquireFolderLock(options(dir)), FolderInUseError);
  await written;
  assert.equal(JSON.parse(await readFile(options(dir).file, 'utf8')).token, 'theirs', 'their lock is still in place');
});

test('two processes racing for a stale lock: exactly one wins', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'garrison-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const me = await ownIdentity();
  const stale = JSON.stringify({ ...me, pid: 2 ** 22 + 12345, program: 'test', startedAt: 'then', token: 'dead' });
  const script = path.join(dir, 'racer.ts');
  await writeFile(script, `import { acquireFolderLock } from ${JSON.stringify(path.join(here, '../src/folder-lock.ts'))};\ntry { await acquireFolderLock({ file: ${JSON.stringify(options(dir).file)}, program: 'test', code: 'X', inUseMessage: () => 'x' }); console.log('won'); setTimeout(() => {}, 3000); } catch (e) { console.log('lost'); }\n`);
  for (let round = 0; round < 3; round++) {
    await writeFile(options(dir).file, stale);
    const racers = [0, 1, 2].map(() => spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] }));
    const results = await Promise.all(
      racers.map(
        (c) =>
          new Promise<string>((resolve) => {
            let out = '';
            c.stdout!.on('data', (d: Buffer) => {
              out += d.toString();
              if (/won|lost/.test(out)) resolve(out.trim());
            });
            c.once('exit', () => resolve(out.trim() || 'exited'));
          }),
      ),
    );
    for (const c of racers) c.kill('SIGKILL');
    await Promise.all(racers.map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once('exit', r)))));
    assert.deepEqual(results.sort(), ['lost', 'lost', 'won'], `round ${round}`);
  }
});
