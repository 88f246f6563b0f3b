// LocalEventLog tests, on real files in a temp folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalEventLog, redact, type LocalEvent } from '../src/event-log.ts';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'garrison-events-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function ev(i: number, extra: Partial<LocalEvent> = {}): LocalEvent {
  return { time: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(), severity: 'info', kind: 'test', message: `event ${i}`, ...extra };
}

test('writes JSON lines, mode 0600, read back in order', () =>
  withDir(async (dir) => {
    const log = new LocalEventLog(join(dir, 'logs'));
    await log.write(ev(1));
    await log.write(ev(2, { taskId: 't', runId: 'r', data: { n: 1 } }));
    const text = await readFile(join(dir, 'logs', 'events.log'), 'utf8');
    assert.equal(text.split('\n').filter(Boolean).length, 2);
    assert.deepEqual(JSON.parse(text.split('\n')[1]), ev(2, { taskId: 't', runId: 'r', data: { n: 1 } }));
    if (process.platform !== 'win32') assert.equal((await stat(join(dir, 'logs', 'events.log'))).mode & 0o777, 0o600);
    assert.deepEqual((await log.read()).map((e) => e.message), ['event 1', 'event 2']);
  }));

test('rotation keeps at most keep+1 files and reads across them in order', () =>
  withDir(async (dir) => {
    const log = new LocalEventLog(dir, { maxBytes: 500, keep: 3 });
    // Not awaited one by one: appends must still be serialized.
    await Promise.all(Array.from({ length: 200 }, (_, i) => log.write(ev(i))));
    const files = (await readdir(dir)).sort();
    assert.deepEqual(files, ['events.log', 'events.log.1', 'events.log.2', 'events.log.3']);
    for (const f of files) {
      assert.ok((await stat(join(dir, f))).size <= 500, f);
      if (process.platform !== 'win32') assert.equal((await stat(join(dir, f))).mode & 0o777, 0o600);
      // every line is whole JSON
      for (const line of (await readFile(join(dir, f), 'utf8')).split('\n').filter(Boolean)) JSON.parse(line);
    }
    const events = await log.read();
    const ids = events.map((e) => Number(e.message.split(' ')[1]));
    assert.ok(ids.length > 0 && ids.length < 200);
    assert.equal(ids.at(-1), 199);
    for (let i = 1; i < ids.length; i++) assert.equal(ids[i], ids[i - 1] + 1, 'contiguous, oldest first');
    // A new instance on the same folder continues where the old one stopped.
    const again = new LocalEventLog(dir, { maxBytes: 500, keep: 3 });
    await again.write(ev(200));
    assert.equal((await again.read({ limit: 1 }))[0].message, 'event 200');
    assert.equal((await readdir(dir)).length, 4);
  }));

test('filters by since, severity, taskId and limit', () =>
  withDir(async (dir) => {
    const log = new LocalEventLog(dir);
    await log.write(ev(1, { severity: 'info', taskId: 'a' }));
    await log.write(ev(2, { severity: 'error', taskId: 'b' }));
    await log.write(ev(3, { severity: 'warning', taskId: 'a' }));
    await log.write(ev(4, { severity: 'error', taskId: 'a' }));
    const msgs = (events: LocalEvent[]) => events.map((e) => e.message);
    assert.deepEqual(msgs(await log.read({ severity: 'error' })), ['event 2', 'event 4']);
    assert.deepEqual(msgs(await log.read({ taskId: 'a' })), ['event 1', 'event 3', 'event 4']);
    assert.deepEqual(msgs(await log.read({ since: ev(3).time })), ['event 3', 'event 4']);
    assert.deepEqual(msgs(await log.read({ taskId: 'a', limit: 2 })), ['event 3', 'event 4']);
    assert.deepEqual(msgs(await log.read({ severity: 'error', taskId: 'a', since: ev(2).time })), ['event 4']);
    assert.deepEqual(await log.read({ limit: 0 }), []);
    await assert.rejects(log.read({ since: 'not a date' }), RangeError);
  }));

test('a torn line is skipped, not fatal', () =>
  withDir(async (dir) => {
    const log = new LocalEventLog(dir);
    await log.write(ev(1));
    await appendFile(join(dir, 'events.log'), '{"time":"2025-');
    const again = new LocalEventLog(dir);
    await again.write(ev(2));
    // The torn fragment and the next line share a line: that line is lost, the rest reads.
    assert.deepEqual((await again.read()).map((e) => e.message), ['event 1']);
    await again.write(ev(3));
    assert.deepEqual((await again.read()).map((e) => e.message), ['event 1', 'event 3']);
  }));

test('redact masks secret-looking keys at any depth', () => {
  const input = {
    user: 'alice',
    password: 'p1',
    Passwd: 'p2',
    nested: { apiKey: 'k', api_key: 'k2', private_key: 'pk', PrivateKey: 'pk2', list: [{ token: 't', ok: 1 }] },
    clientSecret: { deep: 'x' },
    credentials: ['a', 'b'],
    accessToken: 't2',
    path: '/tmp',
  };
  assert.deepEqual(redact(input), {
    user: 'alice',
    password: '***',
    Passwd: '***',
    nested: { apiKey: '***', api_key: '***', private_key: '***', PrivateKey: '***', list: [{ token: '***', ok: 1 }] },
    clientSecret: '***',
    credentials: '***',
    accessToken: '***',
    path: '/tmp',
  });
  assert.equal(input.password, 'p1', 'the input is not changed');
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  assert.deepEqual(redact(cyclic), { a: 1, self: '[circular]' });
  assert.equal(redact('plain'), 'plain');
});

test('write never stores secret values from data', () =>
  withDir(async (dir) => {
    const log = new LocalEventLog(dir);
    await log.write(ev(1, { data: { env: { DB_PASSWORD: 'hunter2', HOME: '/root' }, token: 'abc123' } }));
    const text = await readFile(join(dir, 'events.log'), 'utf8');
    assert.ok(!text.includes('hunter2') && !text.includes('abc123'));
    assert.deepEqual((await log.read())[0].data, { env: { DB_PASSWORD: '***', HOME: '/root' }, token: '***' });
  }));
