// The agent half of the plug-in, driven as the agent drives it: a ProductContext for the
// product folder, an ExecutionContext built here, and the real service behind the socket.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentTask } from '@garrison/protocol';
import type { ExecutionContext, ProductContext } from '@garrison/agent/plugins';
import { MAX_RUN_EVENTS, sampleScannerAgentPlugin as plugin } from '../src/agent-plugin.ts';
import { writeApplicationFiles } from '../src/build-packages.ts';
import { EICAR_SIGNATURE_NAME, EICAR_TEST_STRING } from '../src/definitions.ts';
import { scannerPaths } from '../src/paths.ts';
import { readPidFile } from '../src/control.ts';
import { processGone, productHome, sparseFile, startServiceProcess, tempDir, unix, writeDefinitions } from './helpers.ts';

const eicar = Buffer.from(EICAR_TEST_STRING, 'latin1');

function task(type: string, settings: Record<string, unknown>): AgentTask {
  return {
    id: 't1',
    name: 'scan',
    product: 'sample-scanner',
    type,
    settings,
    schedule: { triggers: [{ type: 'on-demand' }] },
    enabled: true,
    revision: 1,
    local: false,
  };
}

function execution(t: TestContext, home: string, extra: Partial<ExecutionContext> = {}): ExecutionContext & { progress: number[] } {
  const progress: number[] = [];
  return {
    product: 'sample-scanner',
    productDir: home,
    signal: new AbortController().signal,
    tempDir: home,
    onProgress: (p) => progress.push(p),
    progress,
    ...extra,
  };
}

const scan = plugin.taskTypes.scan;
const updateDefinitions = plugin.taskTypes['update-definitions'];

test('the plug-in is for product sample-scanner with the scan and update-definitions task types', () => {
  assert.equal(plugin.product, 'sample-scanner');
  assert.deepEqual(Object.keys(plugin.taskTypes).sort(), ['scan', 'update-definitions']);
});

test('detect reads the installed version from VERSION', async (t) => {
  const home = await productHome(t);
  const ctx: ProductContext = { product: 'sample-scanner', productDir: home };
  assert.equal(await plugin.detect!(ctx), null);
  await writeFile(scannerPaths(home).version, '');
  assert.equal(await plugin.detect!(ctx), null);
  await writeFile(scannerPaths(home).version, '1.2.3\n');
  assert.deepEqual(await plugin.detect!(ctx), { version: '1.2.3' });
  assert.equal(await plugin.detect!({ product: 'sample-scanner', productDir: join(home, 'nowhere') }), null);
});

test('start, isRunning and stop manage the installed service', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const ctx: ProductContext = { product: 'sample-scanner', productDir: home };
  assert.equal(await plugin.isRunning!(ctx), false);
  await assert.rejects(plugin.start!(ctx), /not installed/);

  await writeApplicationFiles(scannerPaths(home).app, '9.9.9');
  await plugin.start!(ctx);
  assert.equal(await plugin.isRunning!(ctx), true);
  const pid = (await readPidFile(home))!;
  assert.ok(pid > 0);
  await plugin.start!(ctx); // already running: nothing changes
  assert.equal(await readPidFile(home), pid);

  await plugin.stop!(ctx);
  assert.equal(await plugin.isRunning!(ctx), false);
  assert.ok(await processGone(pid));
  await plugin.stop!(ctx); // not running: nothing to do
});

test('a scan with detections completes with warnings and reports each detection as an event', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const root = await tempDir(t);
  await mkdir(join(root, 'sub'));
  await writeFile(join(root, 'eicar.com'), eicar);
  await writeFile(join(root, 'sub', 'eicar.txt'), Buffer.concat([Buffer.from('x'), eicar]));
  await writeFile(join(root, 'clean.txt'), 'clean');
  await startServiceProcess(t, home);
  const ctx = execution(t, home);
  const out = await scan.run(task('scan', { paths: [root] }), ctx);
  assert.equal(out.state, 'succeeded_with_warnings');
  assert.equal(out.reason, '2 detections');
  assert.equal(out.exitCode, null);
  const events = out.events!.map((e) => ({ ...e, time: undefined })).sort((a, b) => (a.message < b.message ? -1 : 1));
  assert.deepEqual(events, [
    { severity: 'warning', kind: 'detection', message: `${EICAR_SIGNATURE_NAME} in ${join(root, 'eicar.com')}`, time: undefined, data: { path: join(root, 'eicar.com'), signature: EICAR_SIGNATURE_NAME, action: 'reported' } },
    { severity: 'warning', kind: 'detection', message: `${EICAR_SIGNATURE_NAME} in ${join(root, 'sub', 'eicar.txt')}`, time: undefined, data: { path: join(root, 'sub', 'eicar.txt'), signature: EICAR_SIGNATURE_NAME, action: 'reported' } },
  ]);
  assert.ok(out.events!.every((e) => typeof e.time === 'string'));
  assert.equal(ctx.progress[0], 0);
  assert.equal(ctx.progress.at(-1), 100);
  assert.match(out.outputTail, /DETECTED EICAR-Test-File in .*eicar\.com/);
  assert.match(out.outputTail, /Scanned 3 files in .* with definitions 2026\.11\.21\.1: 2 detections, 0 errors, 0 files skipped\n$/);
});

test('a clean scan succeeds; unreadable paths give a warning; bad settings fail', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const root = await tempDir(t);
  await writeFile(join(root, 'clean.txt'), 'clean');
  await startServiceProcess(t, home);
  const clean = await scan.run(task('scan', { paths: [root], maxFileBytes: 1000 }), execution(t, home));
  assert.equal(clean.state, 'succeeded');
  assert.equal(clean.reason, null);
  assert.equal(clean.events, undefined);

  const missing = await scan.run(task('scan', { paths: [join(root, 'gone')] }), execution(t, home));
  assert.equal(missing.state, 'succeeded_with_warnings');
  assert.equal(missing.reason, '1 file or folder could not be read');
  assert.match(missing.outputTail, /cannot read .*gone: ENOENT/);

  for (const settings of [{}, { paths: [] }, { paths: ['relative'] }, { paths: [root], maxFileBytes: 0 }]) {
    const bad = await scan.run(task('scan', settings), execution(t, home));
    assert.equal(bad.state, 'failed');
    assert.match(bad.reason!, /^invalid settings: /);
  }
});

test('a scan fails with a reason when the service is not running', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const out = await scan.run(task('scan', { paths: ['/tmp'] }), execution(t, home));
  assert.equal(out.state, 'failed');
  assert.match(out.reason!, /scanner service is not running/);
  const upd = await updateDefinitions.run(task('update-definitions', {}), execution(t, home));
  assert.equal(upd.state, 'failed');
  assert.match(upd.reason!, /scanner service is not running/);
});

test('cancel and timeout stop a long scan and keep what it found', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const root = await tempDir(t);
  await writeFile(join(root, 'a-eicar.com'), eicar);
  await sparseFile(join(root, 'b-huge.bin'), 4 * 1024 ** 3);
  await startServiceProcess(t, home);

  const controller = new AbortController();
  const ctx = execution(t, home, { signal: controller.signal });
  const started = Date.now();
  const running = scan.run(task('scan', { paths: [root] }), ctx);
  setTimeout(() => controller.abort(), 300);
  const cancelled = await running;
  assert.equal(cancelled.state, 'cancelled');
  assert.equal(cancelled.reason, 'cancelled');
  assert.ok(Date.now() - started < 3000);
  // Files are scanned in listing order: the small infected one came before the cut.
  assert.equal(cancelled.events?.length, 1);
  assert.match(cancelled.outputTail, /stopped before the end/);

  const timedOut = await scan.run(task('scan', { paths: [root] }), execution(t, home, { timeoutMs: 300 }));
  assert.equal(timedOut.state, 'timed_out');
  assert.equal(timedOut.reason, 'timed out after 300 ms');

  const early = new AbortController();
  early.abort();
  assert.equal((await scan.run(task('scan', { paths: [root] }), execution(t, home, { signal: early.signal }))).state, 'cancelled');
});

test('more detections than a report holds: the last event says how many were left out', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const root = await tempDir(t);
  for (let i = 0; i < 120; i++) await writeFile(join(root, `e${i}.com`), eicar);
  await startServiceProcess(t, home);
  const out = await scan.run(task('scan', { paths: [root] }), execution(t, home));
  assert.equal(out.reason, '120 detections');
  assert.equal(out.events!.length, MAX_RUN_EVENTS);
  assert.equal(out.events!.filter((e) => e.kind === 'detection').length, MAX_RUN_EVENTS - 1);
  assert.deepEqual(out.events!.at(-1)!.data, { total: 120 });
  assert.match(out.events!.at(-1)!.message, /^21 more detections not listed/);
});

test('update-definitions loads the installed definitions and reports their version', { skip: !unix }, async (t) => {
  const home = await productHome(t, undefined, '1');
  await startServiceProcess(t, home);
  const same = await updateDefinitions.run(task('update-definitions', {}), execution(t, home));
  assert.equal(same.state, 'succeeded');
  assert.match(same.outputTail, /Definitions 1 loaded \(2 signatures\)/);

  await writeDefinitions(home, { version: '2', signatures: [{ name: 'X', kind: 'substring', pattern: 'xyz' }] });
  const updated = await updateDefinitions.run(task('update-definitions', {}), execution(t, home));
  assert.equal(updated.state, 'succeeded');
  assert.match(updated.outputTail, /^Definitions updated from 1 to 2 \(1 signature\)\n$/);

  await writeDefinitions(home, { version: '3', signatures: 'nope' });
  const refused = await updateDefinitions.run(task('update-definitions', {}), execution(t, home));
  assert.equal(refused.state, 'failed');
  assert.match(refused.reason!, /installed definitions were refused: "signatures" must be an array/);
});
