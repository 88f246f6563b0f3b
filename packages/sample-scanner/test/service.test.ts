// The scanner service as a real process on a real Unix socket, scanning real files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { lstat, mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ScannerClient, ScannerError, type Detection } from '../src/client.ts';
import { EICAR_SIGNATURE_NAME, EICAR_TEST_STRING, SAMPLE_HEX_MARKER, SAMPLE_HEX_SIGNATURE_NAME } from '../src/definitions.ts';
import { scannerPaths } from '../src/paths.ts';
import { CHUNK_BYTES, EXIT_ALREADY_RUNNING, MAX_LINE_BYTES } from '../src/service.ts';
import { processGone, productHome, SERVICE_SCRIPT, RawConnection, sleep, sparseFile, startServiceProcess, tempDir, unix, writeDefinitions } from './helpers.ts';

const eicar = Buffer.from(EICAR_TEST_STRING, 'latin1');

/** A tree with infected, clean, nested and large files; returns the expected detections. */
async function makeTree(root: string): Promise<{ files: number; detections: Detection[] }> {
  await mkdir(join(root, 'nested', 'deeper'), { recursive: true });
  await writeFile(join(root, 'eicar.com'), eicar);
  await writeFile(join(root, 'clean.txt'), 'nothing to see here\n');
  await writeFile(join(root, 'nested', 'deeper', 'report.txt'), Buffer.concat([Buffer.from('header line\n'), eicar, Buffer.from('\ntrailer\n')]));
  await writeFile(join(root, 'nested', 'marker.bin'), Buffer.concat([Buffer.alloc(1000, 1), Buffer.from(SAMPLE_HEX_MARKER), Buffer.alloc(10, 2)]));
  await writeFile(join(root, 'nested', 'clean.bin'), Buffer.alloc(5000, 7));
  // 20 MB, the test string straddling the boundary between the 10th and 11th chunks.
  const big = Buffer.alloc(20 * 1024 * 1024, 0x61);
  eicar.copy(big, 10 * CHUNK_BYTES - 30);
  await writeFile(join(root, 'big.bin'), big);
  // Links are not followed: the infected file is reported once, by its real path.
  if (unix) await symlink(join(root, 'eicar.com'), join(root, 'nested', 'link-to-eicar'));
  return {
    files: 6,
    detections: [
      { path: join(root, 'big.bin'), signature: EICAR_SIGNATURE_NAME },
      { path: join(root, 'eicar.com'), signature: EICAR_SIGNATURE_NAME },
      { path: join(root, 'nested', 'deeper', 'report.txt'), signature: EICAR_SIGNATURE_NAME },
      { path: join(root, 'nested', 'marker.bin'), signature: SAMPLE_HEX_SIGNATURE_NAME },
    ],
  };
}

const byPath = (a: Detection, b: Detection): number => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.signature < b.signature ? -1 : 1);

test('the service starts, writes its pid file, listens on a 0600 socket and answers ping', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const svc = await startServiceProcess(t, home);
  const paths = scannerPaths(home);
  assert.equal((await readFile(paths.pid, 'utf8')).trim(), String(svc.child.pid));
  const st = await lstat(paths.socket);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);
  const client = await ScannerClient.connect(home);
  t.after(() => client.close());
  const ping = await client.ping();
  assert.equal(ping.definitionsVersion, '2026.11.21.1');
  assert.equal(ping.signatures, 2);
  assert.equal(ping.pid, svc.child.pid);
  assert.equal(typeof ping.version, 'string');
});

test('a scan reports progress and exactly the right detections, including across a chunk boundary', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const root = await tempDir(t);
  const expected = await makeTree(root);
  await startServiceProcess(t, home);
  const client = await ScannerClient.connect(home);
  t.after(() => client.close());
  const progress: { percent: number; at: number }[] = [];
  const detections: Detection[] = [];
  const result = await client.scan([root], {
    onProgress: (percent) => progress.push({ percent, at: Date.now() }),
    onDetection: ({ path, signature }) => detections.push({ path, signature }),
  });
  assert.deepEqual(result, { scanned: expected.files, detections: 4, errors: 0, skipped: 0, cancelled: false, definitionsVersion: '2026.11.21.1' });
  assert.deepEqual(detections.sort(byPath), expected.detections.sort(byPath));
  assert.equal(progress[0].percent, 0);
  assert.equal(progress.at(-1)!.percent, 100);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i].percent > progress[i - 1].percent, 'progress only grows');
  // At most one report per 250 ms, apart from the first and the final 100 (some slack for delivery).
  for (let i = 2; i < progress.length - 1; i++) assert.ok(progress[i].at - progress[i - 1].at >= 200);
});

test('a scan of a single file, of a missing path, and with maxFileBytes', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const root = await tempDir(t);
  await makeTree(root);
  await startServiceProcess(t, home);
  const client = await ScannerClient.connect(home);
  t.after(() => client.close());

  const single: Detection[] = [];
  assert.deepEqual(await client.scan([join(root, 'eicar.com')], { onDetection: ({ path, signature }) => single.push({ path, signature }) }), {
    scanned: 1, detections: 1, errors: 0, skipped: 0, cancelled: false, definitionsVersion: '2026.11.21.1',
  });
  assert.deepEqual(single, [{ path: join(root, 'eicar.com'), signature: EICAR_SIGNATURE_NAME }]);

  // A link named as a scan path is followed (only links met inside folders are not).
  const viaLink: Detection[] = [];
  assert.equal((await client.scan([join(root, 'nested', 'link-to-eicar')], { onDetection: ({ path, signature }) => viaLink.push({ path, signature }) })).detections, 1);
  assert.deepEqual(viaLink, [{ path: join(root, 'nested', 'link-to-eicar'), signature: EICAR_SIGNATURE_NAME }]);

  const problems: { path: string; message: string }[] = [];
  const missing = await client.scan([join(root, 'no-such-thing'), join(root, 'clean.txt')], { onProblem: (p) => problems.push(p) });
  assert.equal(missing.scanned, 1);
  assert.equal(missing.errors, 1);
  assert.equal(problems[0].path, join(root, 'no-such-thing'));
  assert.match(problems[0].message, /ENOENT/);

  // The 20 MB file is skipped, so its detection is not made.
  const small: Detection[] = [];
  const limited = await client.scan([root], { maxFileBytes: 1024 * 1024, onDetection: (d) => small.push(d) });
  assert.equal(limited.skipped, 1);
  assert.equal(limited.scanned, 5);
  assert.equal(limited.detections, 3);
  assert.ok(!small.some((d) => d.path.endsWith('big.bin')));
});

test('cancel stops a running scan; a cancel for an unknown scan says so', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const root = await tempDir(t);
  await sparseFile(join(root, 'huge.bin'), 4 * 1024 ** 3);
  await writeFile(join(root, 'later.com'), eicar);
  await startServiceProcess(t, home);
  const conn = await RawConnection.open(t, home);

  conn.send({ id: 'unknown', op: 'cancel', target: 'nope' });
  await conn.until(() => conn.forId('unknown').length > 0);
  assert.deepEqual(conn.forId('unknown'), [{ id: 'unknown', ok: true, cancelled: false }]);

  const started = Date.now();
  conn.send({ id: 's1', op: 'scan', paths: [root] });
  await conn.until(() => conn.forId('s1').some((m) => m.progress === 0));
  conn.send({ id: 'c1', op: 'cancel', target: 's1' });
  await conn.until(() => conn.forId('s1').some((m) => m.done));
  assert.ok(Date.now() - started < 3000, 'a 4 GB scan was cut short');
  assert.deepEqual(conn.forId('c1'), [{ id: 'c1', ok: true, cancelled: true }]);
  const done = conn.forId('s1').find((m) => m.done)!;
  assert.equal(done.cancelled, true);
  assert.ok((done.scanned as number) < 2);

  // A cancel in the same write as its scan is not lost.
  conn.send({ id: 's2', op: 'scan', paths: [root] }, { id: 'c2', op: 'cancel', target: 's2' });
  await conn.until(() => conn.forId('s2').some((m) => m.done));
  assert.equal(conn.forId('s2').find((m) => m.done)!.cancelled, true);

  // Scans with the same id as a running one are refused.
  conn.send({ id: 's3', op: 'scan', paths: [root] }, { id: 's3', op: 'scan', paths: [root] }, { id: 'c3', op: 'cancel', target: 's3' });
  await conn.until(() => conn.forId('s3').some((m) => m.done));
  assert.ok(conn.forId('s3').some((m) => (m.error as { code?: string } | undefined)?.code === 'duplicate_id'));
});

test('closing the connection cancels its scan, and the service keeps serving', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const root = await tempDir(t);
  await sparseFile(join(root, 'huge.bin'), 4 * 1024 ** 3);
  await startServiceProcess(t, home);
  const conn = await RawConnection.open(t, home);
  conn.send({ id: 1, op: 'scan', paths: [root] });
  await conn.until(() => conn.forId(1).length > 0);
  conn.socket.destroy();
  const client = await ScannerClient.connect(home);
  t.after(() => client.close());
  // The abandoned scan is cancelled: the service reports no running scan soon after.
  const deadline = Date.now() + 3000;
  while ((await client.ping()).scans !== 0) {
    assert.ok(Date.now() < deadline, 'the abandoned scan stopped');
    await sleep(20);
  }
});

test('definitions are reloaded when the file changes, and on a reload request', { skip: !unix }, async (t) => {
  const home = await productHome(t, [{ name: 'Only-Hex', kind: 'hex', pattern: Buffer.from(SAMPLE_HEX_MARKER).toString('hex') }], '1');
  const root = await tempDir(t);
  await writeFile(join(root, 'eicar.com'), eicar);
  await startServiceProcess(t, home);
  const client = await ScannerClient.connect(home);
  t.after(() => client.close());

  assert.equal((await client.scan([root])).detections, 0);
  // The definitions package replaces the file: the next scan uses it, no request needed.
  await writeDefinitions(home, { version: '2', signatures: [{ name: EICAR_SIGNATURE_NAME, kind: 'substring', pattern: EICAR_TEST_STRING }] });
  const second = await client.scan([root]);
  assert.equal(second.detections, 1);
  assert.equal(second.definitionsVersion, '2');

  await writeDefinitions(home, { version: '3', signatures: [{ name: EICAR_SIGNATURE_NAME, kind: 'substring', pattern: EICAR_TEST_STRING }, { name: 'Other', kind: 'hex', pattern: 'de ad be ef' }] });
  assert.deepEqual(await client.reload(), { definitionsVersion: '3', signatures: 2, changed: true });
  assert.deepEqual(await client.reload(), { definitionsVersion: '3', signatures: 2, changed: false });

  // A broken file is refused as a whole; the last good set stays in use.
  await writeDefinitions(home, { version: '4', signatures: [{ name: 'Bad', kind: 'hex', pattern: 'xyz' }] });
  await assert.rejects(client.reload(), (err: ScannerError) => err.code === 'definitions_invalid' && /hex/.test(err.message));
  // Found broken at the start of a scan: the scan runs with the last good set.
  await writeDefinitions(home, '{ not json');
  assert.equal((await client.scan([root])).definitionsVersion, '3');
  const ping = await client.ping();
  assert.equal(ping.definitionsVersion, '3');
  assert.match(ping.definitionsError ?? '', /keeping 3: not valid JSON/);
});

test('a scan without definitions is refused', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  await writeDefinitions(home, { version: '0', signatures: [] });
  await startServiceProcess(t, home);
  const client = await ScannerClient.connect(home);
  t.after(() => client.close());
  await assert.rejects(client.scan(['/tmp']), (err: ScannerError) => err.code === 'no_definitions');
});

test('malformed requests are refused with a coded error and never crash the service', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const svc = await startServiceProcess(t, home);
  const conn = await RawConnection.open(t, home);
  conn.send(
    'this is not json',
    '[1, 2]',
    '"a string"',
    { op: 'ping' },
    { id: {}, op: 'ping' },
    { id: 'a', op: 'explode' },
    { id: 'b' },
    { id: 'c', op: 'scan' },
    { id: 'd', op: 'scan', paths: [] },
    { id: 'e', op: 'scan', paths: ['relative/path'] },
    { id: 'f', op: 'scan', paths: ['/tmp'], maxFileBytes: -1 },
    { id: 'g', op: 'scan', paths: ['/tmp'], recursive: false },
    { id: 'h', op: 'cancel' },
    { id: 'i', op: 'ping', extra: 1 },
    '',
    { id: 'j', op: 'ping' },
  );
  const messages = await conn.until((m) => m.some((x) => x.id === 'j'));
  const codes = messages.map((m) => (m.error as { code: string } | undefined)?.code ?? 'ok');
  assert.deepEqual(codes, ['bad_json', 'bad_request', 'bad_request', 'bad_request', 'bad_request', 'unknown_op', 'unknown_op', 'bad_request', 'bad_request', 'bad_request', 'bad_request', 'bad_request', 'bad_request', 'bad_request', 'ok']);
  assert.deepEqual(messages.slice(0, 5).map((m) => m.id), [null, null, null, null, null]);
  for (const m of messages.slice(0, -1)) assert.equal(typeof (m.error as { message: string }).message, 'string');

  // A line without end is cut off: the connection is answered once and closed.
  const flood = await RawConnection.open(t, home);
  flood.socket.write(Buffer.alloc(MAX_LINE_BYTES + 10, 0x61));
  await flood.until(() => flood.closed, 5000).catch(() => {});
  assert.deepEqual(flood.messages.map((m) => (m.error as { code: string }).code), ['too_large']);

  const client = await ScannerClient.connect(home);
  t.after(() => client.close());
  assert.equal((await client.ping()).pid, svc.child.pid);
});

test('shutdown and SIGTERM stop the service cleanly, removing the pid file and socket', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const paths = scannerPaths(home);
  for (const how of ['shutdown', 'SIGTERM'] as const) {
    const svc = await startServiceProcess(t, home);
    if (how === 'shutdown') {
      const client = await ScannerClient.connect(home);
      await client.shutdown();
      client.close();
    } else {
      svc.child.kill('SIGTERM');
    }
    assert.deepEqual(await svc.exited, { code: 0, signal: null }, how);
    await assert.rejects(stat(paths.pid), { code: 'ENOENT' });
    await assert.rejects(stat(paths.socket), { code: 'ENOENT' });
  }
});

test('a stale socket is replaced at start; a second service for the same folder is refused', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const paths = scannerPaths(home);
  // Something left at the socket's path that refuses connections is replaced.
  await mkdir(paths.runDir, { recursive: true });
  await writeFile(paths.socket, '');
  const first = await startServiceProcess(t, home);
  assert.ok((await lstat(paths.socket)).isSocket());

  const second = spawn(process.execPath, [SERVICE_SCRIPT, '--home', home], { stdio: 'ignore' });
  t.after(() => second.kill('SIGKILL'));
  const code = await new Promise<number | null>((r) => second.on('exit', (c) => r(c)));
  assert.equal(code, EXIT_ALREADY_RUNNING);
  const client = await ScannerClient.connect(home);
  t.after(() => client.close());
  assert.equal((await client.ping()).pid, first.child.pid);

  first.child.kill('SIGKILL');
  assert.ok(await processGone(first.child.pid!));
  // After a SIGKILL the socket file stays behind; a new service takes its place.
  assert.ok((await lstat(paths.socket)).isSocket());
  const third = await startServiceProcess(t, home);
  assert.notEqual(third.child.pid, first.child.pid);
});
