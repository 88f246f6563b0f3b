// RunSpool tests: real files, and "crashes" simulated by opening a new spool on the same folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunReport, RunState } from '@garrison/protocol';
import { RunSpool } from '../src/run-spool.ts';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'garrison-spool-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// `state` is typed through RunState: RunReport's static `state` type currently resolves to never (protocol's RunStateSchema).
function report(runId: string, seq: number, extra: Partial<Omit<RunReport, 'state'>> & { state?: RunState } = {}): RunReport {
  return { runId, taskId: 't1', attempt: 1, seq, state: 'running', cause: 'run-now', createdAt: '2025-01-01T00:00:00.000Z', ...extra } as RunReport;
}

test('a report put before a crash is still pending after restart', () =>
  withDir(async (dir) => {
    const a = new RunSpool(dir);
    await a.init();
    await a.put(report('r1', 0));
    await a.put(report('r1', 1, { state: 'succeeded', exitCode: 0 }));
    assert.equal(a.size, 1);
    const b = new RunSpool(dir); // the agent restarted
    await b.init();
    assert.deepEqual(b.pending(), [report('r1', 1, { state: 'succeeded', exitCode: 0 })]);
    if (process.platform !== 'win32') assert.equal((await stat(join(dir, 'r1.json'))).mode & 0o777, 0o600);
  }));

test('an older report than the stored one is ignored', () =>
  withDir(async (dir) => {
    const s = new RunSpool(dir);
    await s.init();
    await s.put(report('r1', 5, { state: 'failed' }));
    await s.put(report('r1', 3));
    assert.equal(s.pending()[0].seq, 5);
    const again = new RunSpool(dir);
    await again.init();
    assert.equal(again.pending()[0].seq, 5);
  }));

test('ack of an older seq leaves the newer report, ack of its seq removes it', () =>
  withDir(async (dir) => {
    const s = new RunSpool(dir);
    await s.init();
    await s.put(report('r1', 1));
    // Sent seq 1; seq 2 was put before the ack arrived.
    const put2 = s.put(report('r1', 2, { state: 'succeeded' }));
    const ack1 = s.ack('r1', 1);
    await Promise.all([put2, ack1]);
    assert.deepEqual(s.pending().map((r) => r.seq), [2]);
    const after = new RunSpool(dir);
    await after.init();
    assert.deepEqual(after.pending().map((r) => r.seq), [2]);
    await s.ack('r1', 2);
    assert.equal(s.size, 0);
    assert.deepEqual(await readdir(dir), []);
    await s.ack('r1', 2); // twice: harmless
    await s.ack('unknown', 9);
  }));

test('pending is ordered by createdAt then seq', () =>
  withDir(async (dir) => {
    const s = new RunSpool(dir);
    await s.init();
    await s.put(report('c', 1, { createdAt: '2025-01-03T00:00:00.000Z' }));
    await s.put(report('a', 7, { createdAt: '2025-01-01T00:00:00.000Z' }));
    await s.put(report('b', 2, { createdAt: '2025-01-01T00:00:00.000Z' }));
    assert.deepEqual(s.pending().map((r) => r.runId), ['b', 'a', 'c']);
    const again = new RunSpool(dir);
    await again.init();
    assert.deepEqual(again.pending().map((r) => r.runId), ['b', 'a', 'c']);
  }));

test('leftover temp files and corrupt files do not break init', () =>
  withDir(async (dir) => {
    const s = new RunSpool(dir);
    await s.init();
    await s.put(report('good', 1));
    // A crash mid-write leaves a temp file; a damaged disk a partial file.
    await writeFile(join(dir, '.good.json.1234.abcdef.tmp'), '{"runId":"good","se');
    await writeFile(join(dir, 'bad.json'), '{"runId":"bad",');
    await writeFile(join(dir, 'other.json'), JSON.stringify(report('not-other', 1)));
    await writeFile(join(dir, 'README'), 'not a report');
    const corrupt: string[] = [];
    const after = new RunSpool(dir, { onCorrupt: (file) => corrupt.push(file) });
    await after.init();
    assert.deepEqual(after.pending().map((r) => r.runId), ['good']);
    assert.deepEqual(corrupt.sort(), [join(dir, 'bad.json'), join(dir, 'other.json')]);
    assert.deepEqual((await readdir(dir)).sort(), ['README', 'bad.json.corrupt', 'good.json', 'other.json.corrupt']);
    // Still usable.
    await after.put(report('good', 2));
    await after.ack('good', 2);
    assert.equal(after.size, 0);
  }));

test('run ids that could escape the folder are refused', () =>
  withDir(async (dir) => {
    const s = new RunSpool(join(dir, 'spool'));
    await s.init();
    for (const runId of ['../evil', 'a/b', '..', '.', '', 'x'.repeat(81), 'a\\b', 'a b']) {
      await assert.rejects(s.put(report(runId, 1)), TypeError, runId);
    }
    await s.put(report('run-1:a.b_C', 1));
    assert.deepEqual(await readdir(dir), ['spool']);
    assert.equal(s.size, 1);
  }));

test('use before init is a clear error', () =>
  withDir(async (dir) => {
    const s = new RunSpool(dir);
    assert.throws(() => s.pending(), /init/);
    await assert.rejects(s.put(report('r', 1)), /init/);
  }));

test('many concurrent puts of one run keep the highest seq', () =>
  withDir(async (dir) => {
    const s = new RunSpool(dir);
    await s.init();
    const seqs = Array.from({ length: 30 }, (_, i) => i).sort(() => Math.random() - 0.5);
    await Promise.all(seqs.map((seq) => s.put(report('r', seq))));
    assert.equal(s.pending()[0].seq, 29);
    const again = new RunSpool(dir);
    await again.init();
    assert.equal(again.pending()[0].seq, 29);
    assert.deepEqual(await readdir(dir), ['r.json']);
  }));

test("a report's events are carried into the newer report that replaces it unsent, and dropped once a report holding them is acknowledged", () =>
  withDir(async (dir) => {
    const ev = (kind: string) => ({ severity: 'warning' as const, kind, message: kind });
    const s = new RunSpool(dir);
    await s.init();
    await s.put(report('r1', 1, { events: [ev('run.interrupted'), ev('run.resumed')] }));
    await s.put(report('r1', 2, { percent: 50 }));
    assert.deepEqual(s.pending()[0].events?.map((e) => e.kind), ['run.interrupted', 'run.resumed'], 'not lost by the progress report');
    // Sent with seq 2 (carrying them) while seq 3 is put: acknowledging 2 drops them from 3.
    await s.put(report('r1', 3, { state: 'succeeded', events: [ev('sample.detection')] }));
    assert.deepEqual(s.pending()[0].events?.map((e) => e.kind), ['run.interrupted', 'run.resumed', 'sample.detection']);
    await s.ack('r1', 2);
    assert.equal(s.pending()[0].seq, 3);
    assert.deepEqual(s.pending()[0].events?.map((e) => e.kind), ['sample.detection']);
    // Durably: a restart sees the same.
    const again = new RunSpool(dir);
    await again.init();
    assert.deepEqual(again.pending()[0].events?.map((e) => e.kind), ['sample.detection']);
    await again.ack('r1', 3);
    assert.equal(again.size, 0);
  }));
