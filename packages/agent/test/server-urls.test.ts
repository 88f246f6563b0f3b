// The agent's server address list: --server parsing, credential files old and new, and the
// failover fetch (over a fake fetcher: the outside world here is the network).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrustError } from '@garrison/protocol/tls';
import { failoverFetch, parseServerUrls, storedServerUrls, withServerUrls } from '../src/server-urls.ts';
import { readJson, writeJsonAtomic } from '../src/state-file.ts';

test('--server may be repeated and hold comma-separated lists: order kept, slashes trimmed, duplicates dropped', () => {
  assert.deepEqual(parseServerUrls(undefined), []);
  assert.deepEqual(parseServerUrls('https://a:8420/'), ['https://a:8420']);
  assert.deepEqual(parseServerUrls(['https://a:1, https://b:2/', 'https://c:3', 'https://a:1', ' , ']), ['https://a:1', 'https://b:2', 'https://c:3']);
});

test('an address that is not https:// is refused with TLS_REQUIRED', () => {
  assert.throws(() => parseServerUrls(['https://a:1,http://b:2']), (err: TrustError) => err instanceof TrustError && err.code === 'TLS_REQUIRED' && /http:\/\/b:2/.test(err.message));
  assert.throws(() => parseServerUrls('not a url'), (err: TrustError) => err.code === 'TLS_REQUIRED');
});

test('a credential file with serverUrl only (before the list) reads as a list of one; the new one writes both fields', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'garrison-urls-'));
  try {
    const file = join(dir, 'credential.json');
    await writeJsonAtomic(file, { serverUrl: 'https://old:8420/', deviceId: 'd1', credential: 'c', groupId: 'g', caPem: 'PEM' });
    const old = (await readJson<{ serverUrl: string; serverUrls?: string[] }>(file))!;
    assert.deepEqual(storedServerUrls(old), ['https://old:8420']);
    const next = withServerUrls(old, ['https://a:1', 'https://b:2']);
    await writeJsonAtomic(file, next);
    const back = (await readJson<{ serverUrl: string; serverUrls: string[]; deviceId: string; caPem: string }>(file))!;
    // An older agent reads serverUrl: the first address.
    assert.equal(back.serverUrl, 'https://a:1');
    assert.deepEqual(back.serverUrls, ['https://a:1', 'https://b:2']);
    assert.deepEqual([back.deviceId, back.caPem], ['d1', 'PEM']);
    assert.deepEqual(storedServerUrls(back), ['https://a:1', 'https://b:2']);
    // An empty or damaged list falls back to serverUrl.
    assert.deepEqual(storedServerUrls({ serverUrl: 'https://a:1', serverUrls: [] }), ['https://a:1']);
    assert.deepEqual(storedServerUrls({ serverUrl: 'https://a:1', serverUrls: 'x' }), ['https://a:1']);
    assert.deepEqual(storedServerUrls({}), []);
    assert.throws(() => withServerUrls(old, []));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('failoverFetch starts at the current address, moves on only when no answer comes, and says who answered', async () => {
  const urls = ['https://a:1', 'https://b:2', 'https://c:3'];
  const down = new Set(['https://a:1', 'https://b:2']);
  const calls: string[] = [];
  const fake = async (url: string): Promise<Response> => {
    calls.push(url);
    if ([...down].some((d) => url.startsWith(d))) throw new TypeError('fetch failed');
    return new Response('ok', { status: url.includes('/missing') ? 404 : 200 });
  };
  let current = 0;
  const answered: number[] = [];
  const f = failoverFetch(fake, () => urls, () => current, (i) => answered.push(i));
  assert.equal((await f('https://a:1/api/x?y=1')).status, 200);
  assert.deepEqual(calls, ['https://a:1/api/x?y=1', 'https://b:2/api/x?y=1', 'https://c:3/api/x?y=1']);
  assert.deepEqual(answered, [2]);
  // The URL's base does not matter: the current address is tried first.
  calls.length = 0;
  current = 2;
  await f('https://a:1/api/x');
  assert.deepEqual(calls, ['https://c:3/api/x']);
  // An HTTP error is an answer: no failover.
  calls.length = 0;
  down.clear();
  current = 0;
  assert.equal((await f('https://b:2/missing')).status, 404);
  assert.deepEqual(calls, ['https://a:1/missing']);
  // Every address down: the last error.
  down.add('https://a:1').add('https://b:2').add('https://c:3');
  await assert.rejects(f('https://a:1/x'), /fetch failed/);
  // A URL of no known address is fetched as given.
  calls.length = 0;
  assert.equal((await f('https://elsewhere:9/x')).status, 200);
  assert.deepEqual(calls, ['https://elsewhere:9/x']);
  // The caller's abort ends it everywhere.
  calls.length = 0;
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(f('https://a:1/x', { signal: ac.signal }));
  assert.deepEqual(calls, ['https://a:1/x']);
});
