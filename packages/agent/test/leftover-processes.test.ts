// What the agent does with the processes an interrupted attempt left running: the decision
// for every platform from made-up observations (Windows and macOS cannot run here), and the
// real thing on this machine's process groups, recorded through a real ProcessLedger.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ProcessObservation } from '@garrison/protocol/process-identity';
import { describeLeftover, endLeftover, groupAlive, groupCarriesTag, planLeftoverEnd } from '../src/leftover-processes.ts';
import { runScript } from '../src/executors/script.ts';
import { ProcessLedger, type ProcessRecord } from '../src/process-ledger.ts';

const rec = (o: Partial<ProcessRecord> = {}): ProcessRecord => ({
  runId: 'run-1',
  attempt: 1,
  taskId: 'task-1',
  pid: 4242,
  group: true,
  startTime: '777',
  bootId: 'boot-a',
  hostname: 'host',
  platform: 'linux',
  command: 'sh',
  recordedAt: '2026-01-01T00:00:00.000Z',
  ...o,
});
const leader = (o: Partial<ProcessObservation> = {}): ProcessObservation => ({ alive: true, startTime: '777', bootId: 'boot-a', hostname: 'host', ...o });

test('POSIX group leader: the group is ended when the leader is the recorded one, or gone with members left that carry the attempt’s tag', () => {
  assert.deepEqual(planLeftoverEnd(rec(), { leader: leader(), groupAlive: true }), { action: 'signal-group', pgid: 4242 });
  const goneLeader = leader({ alive: false, startTime: null });
  assert.deepEqual(planLeftoverEnd(rec({ envTag: 'tag-1' }), { leader: goneLeader, groupAlive: true, groupTagged: true }), { action: 'signal-group', pgid: 4242 });
  // Members without the tag (pids wrapped round: another program's group took the id), members
  // whose environment cannot be read, a record without a tag: left alone, the run not resumed.
  assert.deepEqual(planLeftoverEnd(rec({ envTag: 'tag-1' }), { leader: goneLeader, groupAlive: true, groupTagged: false }), { action: 'none', why: 'unverified' });
  assert.deepEqual(planLeftoverEnd(rec({ envTag: 'tag-1' }), { leader: goneLeader, groupAlive: true, groupTagged: null }), { action: 'none', why: 'unverified' });
  assert.deepEqual(planLeftoverEnd(rec(), { leader: goneLeader, groupAlive: true, groupTagged: true }), { action: 'none', why: 'unverified' });
  assert.deepEqual(planLeftoverEnd(rec(), { leader: leader({ alive: false, startTime: null }), groupAlive: false }), { action: 'none', why: 'gone' });
  // The pid leads another process now: the old group cannot exist (its id would still be taken).
  assert.deepEqual(planLeftoverEnd(rec(), { leader: leader({ startTime: '999' }), groupAlive: true }), { action: 'none', why: 'reused' });
  // After a reboot nothing of it runs, whatever holds the number now.
  assert.deepEqual(planLeftoverEnd(rec(), { leader: leader({ bootId: 'boot-b', alive: false }), groupAlive: true }), { action: 'none', why: 'gone' });
  assert.deepEqual(planLeftoverEnd(rec(), { leader: leader({ hostname: 'other' }), groupAlive: true }), { action: 'none', why: 'other-host' });
});

test('POSIX process that is not a group leader: the process alone', () => {
  assert.deepEqual(planLeftoverEnd(rec({ group: false }), { leader: leader(), groupAlive: null }), { action: 'signal-process', pid: 4242 });
  assert.deepEqual(planLeftoverEnd(rec({ group: false }), { leader: leader({ alive: false }), groupAlive: null }), { action: 'none', why: 'gone' });
});

test('macOS: no boot id, start time from ps; a record without a start time needs the live pid to have started by the record', () => {
  const mac = rec({ platform: 'darwin', bootId: null, startTime: 'Wed Dec  2 01:00:37 2026' });
  assert.deepEqual(planLeftoverEnd(mac, { leader: leader({ bootId: null, startTime: 'Wed Dec  2 01:00:37 2026' }), groupAlive: true }, 'darwin'), { action: 'signal-group', pgid: 4242 });
  assert.deepEqual(planLeftoverEnd(mac, { leader: leader({ bootId: null, startTime: 'Wed Dec  2 03:00:00 2026' }), groupAlive: true }, 'darwin'), { action: 'none', why: 'reused' });
  // ps printed a date it cannot read (another locale): the pid may be anything now, so it is left alone (and the run not resumed).
  assert.deepEqual(planLeftoverEnd(rec({ platform: 'darwin', bootId: null, startTime: null }), { leader: leader({ bootId: null, startTime: 'x' }), groupAlive: true }, 'darwin'), { action: 'none', why: 'unverified' });
});

test('outside Linux a record without a start time: a live pid whose process started after the record is another one', () => {
  const at = '2026-12-02T01:00:00.000Z';
  const win = rec({ platform: 'win32', group: false, bootId: null, startTime: null, recordedAt: at });
  const filetime = (iso: string) => String((BigInt(Date.parse(iso)) + 11_644_473_600_000n) * 10_000n);
  assert.deepEqual(planLeftoverEnd(win, { leader: leader({ bootId: null, startTime: filetime('2026-12-02T00:59:59.500Z') }), groupAlive: null }, 'win32'), { action: 'taskkill', pid: 4242 });
  assert.deepEqual(planLeftoverEnd(win, { leader: leader({ bootId: null, startTime: filetime('2026-12-02T01:05:00.000Z') }), groupAlive: null }, 'win32'), { action: 'none', why: 'reused' });
  // ps runs with TZ=UTC: its dates are UTC whatever the agent's zone.
  const mac = rec({ platform: 'darwin', bootId: null, startTime: null, recordedAt: '2026-12-02T01:00:00.000Z' });
  assert.deepEqual(planLeftoverEnd(mac, { leader: leader({ bootId: null, startTime: 'Wed Dec  2 01:00:00 2026' }), groupAlive: true }, 'darwin'), { action: 'signal-group', pgid: 4242 });
  assert.deepEqual(planLeftoverEnd(mac, { leader: leader({ bootId: null, startTime: 'Wed Dec  2 02:00:00 2026' }), groupAlive: true }, 'darwin'), { action: 'none', why: 'reused' });
});

test('Windows: taskkill /T /F on the recorded process when its creation time matches; nothing otherwise', () => {
  const win = rec({ platform: 'win32', group: false, bootId: null, startTime: '133900000000000000' });
  assert.deepEqual(planLeftoverEnd(win, { leader: leader({ bootId: null, startTime: '133900000000000000' }), groupAlive: null }, 'win32'), { action: 'taskkill', pid: 4242 });
  assert.deepEqual(planLeftoverEnd(win, { leader: leader({ bootId: null, startTime: '133900000000000999' }), groupAlive: null }, 'win32'), { action: 'none', why: 'reused' });
  assert.deepEqual(planLeftoverEnd(win, { leader: leader({ bootId: null, alive: false, startTime: null }), groupAlive: null }, 'win32'), { action: 'none', why: 'gone' });
});

test('a live pid whose identity cannot be checked is never signalled: the record had no start time and none can be read now', () => {
  // Windows records never hold a start time; PowerShell failing (slow at boot, blocked) left the
  // observation without one. After a reboot Windows has long since given the pid to another
  // process: taskkill /T /F on it would end that process and its tree.
  const win = rec({ platform: 'win32', group: false, bootId: null, startTime: null });
  assert.deepEqual(planLeftoverEnd(win, { leader: leader({ bootId: null, startTime: null }), groupAlive: null }, 'win32'), { action: 'none', why: 'unverified' });
  const mac = rec({ platform: 'darwin', bootId: null, startTime: null });
  assert.deepEqual(planLeftoverEnd(mac, { leader: leader({ bootId: null, startTime: null }), groupAlive: true }, 'darwin'), { action: 'none', why: 'unverified' });
  assert.deepEqual(planLeftoverEnd(rec({ platform: 'darwin', group: false, bootId: null, startTime: null }), { leader: leader({ bootId: null, startTime: null }), groupAlive: null }, 'darwin'), { action: 'none', why: 'unverified' });
  // Linux reads the start time in the tick of the spawn: a record without one is of a process
  // that had already exited (a zombie), so a live pid now is another process.
  assert.deepEqual(planLeftoverEnd(rec({ startTime: null }), { leader: leader(), groupAlive: true }, 'linux'), { action: 'none', why: 'reused' });
  assert.deepEqual(planLeftoverEnd(rec({ group: false, startTime: null }), { leader: leader(), groupAlive: null }, 'linux'), { action: 'none', why: 'reused' });
  // Gone is still gone, and its group's tagged members are still ended.
  assert.deepEqual(planLeftoverEnd(rec({ startTime: null, envTag: 't' }), { leader: leader({ alive: false, startTime: null }), groupAlive: true, groupTagged: true }, 'linux'), { action: 'signal-group', pgid: 4242 });
  // A record without a boot id (older macOS records): a group whose leader is gone may be another program's after a reboot.
  const macGone = { leader: leader({ bootId: null, alive: false, startTime: null }), groupAlive: true };
  assert.deepEqual(planLeftoverEnd(rec({ platform: 'darwin', bootId: null, startTime: null }), macGone, 'darwin'), { action: 'none', why: 'unverified' });
  assert.deepEqual(planLeftoverEnd(rec({ platform: 'darwin', bootId: null, startTime: null }), { ...macGone, groupAlive: false }, 'darwin'), { action: 'none', why: 'gone' });
  // macOS with boot ids now: a reboot ends the group; in the same boot, no environment can be
  // checked and pids wrap at 99999, so a group whose leader is gone stays unverified.
  const macBoot = rec({ platform: 'darwin', bootId: 'b6c3d1e0-1111-2222-3333-444455556666', startTime: null, envTag: 't' });
  assert.deepEqual(planLeftoverEnd(macBoot, { leader: leader({ bootId: 'b6c3d1e0-1111-2222-3333-444455556666', alive: false, startTime: null }), groupAlive: true, groupTagged: true }, 'darwin'), { action: 'none', why: 'unverified' });
  assert.deepEqual(planLeftoverEnd(macBoot, { leader: leader({ bootId: 'another-boot', alive: false, startTime: null }), groupAlive: true }, 'darwin'), { action: 'none', why: 'gone' });
});

// --- real process groups (POSIX) ---

const posix = process.platform === 'win32' ? 'POSIX only' : false;

async function withLedger(fn: (ledger: ProcessLedger) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'garrison-ledger-'));
  try {
    const ledger = new ProcessLedger(dir);
    await ledger.init();
    await fn(ledger);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A detached shell (its own process group) running `script`; resolves once it printed "ready". */
async function startGroup(script: string): Promise<ChildProcess> {
  const child = spawn('sh', ['-c', script], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`exited ${code} before it was ready`)));
  });
  return child;
}

test('a running group (leader and a grandchild) is ended by SIGTERM; its record round-trips through the ledger', { skip: posix }, () =>
  withLedger(async (ledger) => {
    const child = await startGroup('sleep 30 & echo ready; wait');
    const started = ledger.recordStarted({ runId: 'run-1', attempt: 1, taskId: 't' }, { pid: child.pid!, group: true, command: 'sh' });
    const [listed] = await ledger.list('run-1');
    assert.deepEqual(listed, started);
    if (process.platform === 'linux') assert.match(listed.startTime ?? '', /^\d+$/);
    const result = await endLeftover(listed, { graceMs: 3000, killWaitMs: 3000 });
    assert.equal(result.outcome, 'ended');
    assert.equal(groupAlive(child.pid!), false);
    assert.match(describeLeftover(result), /process group \d+ \(sh\) of attempt 1 was still running: ended/);
    await ledger.forget('run-1');
    assert.deepEqual(await ledger.list(), []);
  }));

test('a group that ignores SIGTERM is killed after the grace time', { skip: posix }, () =>
  withLedger(async (ledger) => {
    const child = await startGroup(`trap '' TERM; sleep 30 & echo ready; wait; wait`);
    const r = ledger.recordStarted({ runId: 'run-2', attempt: 1, taskId: 't' }, { pid: child.pid!, group: true, command: 'sh' });
    const result = await endLeftover(r, { graceMs: 200, killWaitMs: 3000 });
    assert.equal(result.outcome, 'killed');
    assert.equal(groupAlive(child.pid!), false);
  }));

const linux = process.platform !== 'linux' ? 'needs /proc/<pid>/environ' : false;

test('a group whose leader exited still has its background child, started by the script executor: the group is ended (its member carries the attempt’s tag)', { skip: linux }, () =>
  withLedger(async (ledger) => {
    // The real executor: it puts GARRISON_PROCESS_TAG in the environment and hands it to the recorder.
    let r: ProcessRecord | undefined;
    const outcome = await runScript(
      { command: 'sleep 30 >/dev/null 2>&1 & exit 0' },
      { signal: new AbortController().signal, tempDir: ledger.dir, onProcessStarted: (p) => void (r = ledger.recordStarted({ runId: 'run-3', attempt: 1, taskId: 't' }, p)) },
    );
    assert.equal(outcome.state, 'succeeded', outcome.reason ?? '');
    assert.ok(r, 'the started process was recorded');
    assert.match(r.envTag ?? '', /^[0-9a-f]{32}$/);
    assert.deepEqual((await ledger.list('run-3'))[0], r, 'the tag round-trips through the ledger');
    assert.equal(groupAlive(r.pid), true, 'the background sleep is left in the group');
    assert.equal(groupCarriesTag(r.pid, r.envTag!), true);
    const result = await endLeftover(r, { graceMs: 3000, killWaitMs: 3000 });
    assert.equal(result.outcome, 'ended');
    assert.equal(groupAlive(r.pid), false);
  }));

test('a group whose leader exited, whose members do not carry the record’s tag (another program’s group with the same id), is not signalled', { skip: linux }, () =>
  withLedger(async (ledger) => {
    // A group with the record's id but started without its tag: what a pid that wrapped round would look like.
    const child = spawn('sh', ['-c', 'sleep 30 & exit 0'], { detached: true, stdio: 'ignore', env: { ...process.env, GARRISON_PROCESS_TAG: 'another-attempts-tag' } });
    const exited = new Promise((res) => child.once('exit', res));
    const r = ledger.recordStarted({ runId: 'run-5', attempt: 1, taskId: 't' }, { pid: child.pid!, group: true, command: 'sh', envTag: 'the-recorded-tag' });
    await exited;
    try {
      assert.equal(groupAlive(child.pid!), true, 'the background sleep is left in the group');
      assert.equal(groupCarriesTag(child.pid!, 'the-recorded-tag'), false);
      const result = await endLeftover(r, { graceMs: 100, killWaitMs: 100 });
      assert.deepEqual(result.plan, { action: 'none', why: 'unverified' });
      assert.equal(result.outcome, 'survived', 'counted as surviving: the run is not resumed beside what may be its process');
      assert.match(describeLeftover(result), /may still be running and was not ended .*GARRISON_PROCESS_TAG/);
      assert.equal(groupAlive(child.pid!), true, 'left running');
      // A record without a tag (an older agent's) is not signalled either.
      const untagged = { ...r, envTag: undefined };
      assert.equal((await endLeftover(untagged, { graceMs: 100, killWaitMs: 100 })).outcome, 'survived');
      assert.equal(groupAlive(child.pid!), true, 'still left running');
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
    }
  }));

test('a pid that now belongs to another process (another start time) is left alone; a gone one is reported gone', { skip: process.platform !== 'linux' && 'needs /proc start times' }, () =>
  withLedger(async (ledger) => {
    const child = await startGroup('echo ready; sleep 30');
    try {
      const r = ledger.recordStarted({ runId: 'run-4', attempt: 1, taskId: 't' }, { pid: child.pid!, group: true, command: 'sh' });
      const result = await endLeftover({ ...r, startTime: `${r.startTime}1` }, { graceMs: 100, killWaitMs: 100 });
      assert.equal(result.outcome, 'pid-reused');
      assert.equal(groupAlive(child.pid!), true, 'left running');
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
      await new Promise((res) => (child.exitCode !== null || child.signalCode !== null ? res(null) : child.once('exit', res)));
    }
    // The leader's exit is seen first; the group's other member (sleep) dies a moment later.
    for (const until = Date.now() + 10_000; groupAlive(child.pid!) && Date.now() < until; ) await new Promise((res) => setTimeout(res, 20));
    const gone = await endLeftover(rec({ pid: child.pid!, startTime: null, bootId: null, hostname: os.hostname() }), { graceMs: 100, killWaitMs: 100 });
    assert.equal(gone.outcome, 'already-gone');
  }));

test('the ledger lists a record only under the name it was written to, so forget() removes every record it lists', () =>
  withLedger(async (ledger) => {
    const { writeFile, readdir } = await import('node:fs/promises');
    const put = (name: string, r: object) => writeFile(path.join(ledger.dir, name), JSON.stringify(r));
    const ok = ledger.recordStarted({ runId: 'run-1', attempt: 1, taskId: 'task-1' }, { pid: process.pid, group: false, command: 'sh' });
    await put('run-1.1.77.json', { ...ok, attempt: 2, pid: 77 }); // content and name disagree
    await put('run-1.3.78.json', { ...ok, runId: '../run-1', attempt: 3, pid: 78 }); // a run id that names another folder
    await put('run-1.4.79.json', { ...ok, attempt: '4', pid: 79 }); // not a whole number
    assert.deepEqual((await ledger.list('run-1')).map((r) => r.pid), [process.pid]);
    await ledger.forget('run-1');
    assert.deepEqual(await ledger.list(), []);
    assert.deepEqual(await readdir(ledger.dir), []);
  }));
