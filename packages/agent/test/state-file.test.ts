// state-file tests, on real files in a temp folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CorruptJsonError, readJson, writeJsonAtomic } from '../src/state-file.ts';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'garrison-state-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('write then read round-trips, mode 0600, no temp file left', () =>
  withDir(async (dir) => {
    const file = join(dir, 'state.json');
    await writeJsonAtomic(file, { a: 1, b: ['x'] });
    assert.deepEqual(await readJson(file), { a: 1, b: ['x'] });
    if (process.platform !== 'win32') assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ['state.json']);
  }));

test('rewrites replace the content and honour the mode', () =>
  withDir(async (dir) => {
    const file = join(dir, 'state.json');
    await writeJsonAtomic(file, { v: 1 });
    await writeJsonAtomic(file, { v: 2 }, 0o644);
    assert.deepEqual(await readJson(file), { v: 2 });
    if (process.platform !== 'win32') assert.equal((await stat(file)).mode & 0o777, 0o644);
    assert.deepEqual(await readdir(dir), ['state.json']);
  }));

test('concurrent writes leave one complete value', () =>
  withDir(async (dir) => {
    const file = join(dir, 'state.json');
    await Promise.all(Array.from({ length: 20 }, (_, i) => writeJsonAtomic(file, { i, pad: 'x'.repeat(10_000) })));
    const v = await readJson<{ i: number; pad: string }>(file);
    assert.ok(v && v.i >= 0 && v.i < 20 && v.pad.length === 10_000);
    assert.deepEqual(await readdir(dir), ['state.json']);
  }));

test('a missing file reads as undefined', () =>
  withDir(async (dir) => {
    assert.equal(await readJson(join(dir, 'nope.json')), undefined);
  }));

test('corrupt JSON throws a clear error naming the file', () =>
  withDir(async (dir) => {
    const file = join(dir, 'bad.json');
    await writeFile(file, '{"a": 1,');
    await assert.rejects(readJson(file), (err: unknown) => err instanceof CorruptJsonError && err.path === file && err.message.includes(file));
    await writeFile(file, '');
    await assert.rejects(readJson(file), CorruptJsonError);
  }));

test('a value that is not JSON is refused and leaves no temp file', () =>
  withDir(async (dir) => {
    await assert.rejects(writeJsonAtomic(join(dir, 'x.json'), undefined), TypeError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await assert.rejects(writeJsonAtomic(join(dir, 'x.json'), cyclic));
    assert.deepEqual(await readdir(dir), []);
  }));

test('writing into a missing folder fails and leaves nothing', () =>
  withDir(async (dir) => {
    await assert.rejects(writeJsonAtomic(join(dir, 'missing', 'x.json'), {}), { code: 'ENOENT' });
  }));
