// The scanner's policy end to end on one device: the real service process, real files,
// real-time protection over inotify, the agent half's applyPolicy and watch.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { reconcilePolicy } from '@garrison/core';
import type { PolicyApplication, PolicyContext } from '@garrison/agent/plugins';
import { sampleScannerAgentPlugin as plugin } from '../src/agent-plugin.ts';
import { ScannerClient, type Detection } from '../src/client.ts';
import { configProblems, DEFAULT_CONFIG, type ScannerConfig } from '../src/config.ts';
import { EICAR_SIGNATURE_NAME, EICAR_TEST_STRING } from '../src/definitions.ts';
import type { JournalEntry } from '../src/journal.ts';
import { scannerPaths } from '../src/paths.ts';
import { quarantinedBytes } from '../src/quarantine.ts';
import { sampleScannerServerPlugin } from '../src/server-plugin.ts';
import { productHome, sleep, startServiceProcess, tempDir, unix } from './helpers.ts';

const eicar = Buffer.from(EICAR_TEST_STRING, 'latin1');

async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function journal(home: string): Promise<JournalEntry[]> {
  const text = await readFile(scannerPaths(home).journal, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => typeof e.seq === 'number');
}

async function writeConfig(home: string, config: Partial<ScannerConfig>): Promise<void> {
  await writeFile(scannerPaths(home).config, JSON.stringify({ ...DEFAULT_CONFIG, ...config }));
}

async function reconfigure(t: TestContext, home: string): Promise<string[]> {
  const c = await ScannerClient.connect(home);
  t.after(() => c.close());
  return (await c.reconfigure()).notes;
}

const exists = (p: string) => stat(p).then(() => true, () => false);

test('EICAR written into a watched folder is quarantined; excluded paths and links out are not', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const watched = await tempDir(t);
  const outside = await tempDir(t);
  await mkdir(join(watched, 'cache'));
  await writeConfig(home, { watchedFolders: [watched], exclusions: [join(watched, 'cache'), '*.iso'], detectionAction: 'quarantine' });
  const svc = await startServiceProcess(t, home);
  t.after(() => { if (process.env.DEBUG_SS) console.log(svc.stderr()); });
  assert.deepEqual(await reconfigure(t, home), []);

  const started = Date.now();
  await writeFile(join(watched, 'eicar.com'), eicar);
  const [entry] = await waitFor('the detection in the journal', async () => {
    const j = await journal(home);
    return j.length > 0 && j;
  });
  const took = Date.now() - started;
  console.log(`real-time: EICAR detected and quarantined ${took} ms after it was written`);
  assert.equal(entry.path, join(watched, 'eicar.com'));
  assert.equal(entry.signature, EICAR_SIGNATURE_NAME);
  assert.equal(entry.action, 'quarantined');
  assert.equal(await exists(join(watched, 'eicar.com')), false);
  const qdir = scannerPaths(home).quarantine;
  const meta = JSON.parse(await readFile(join(qdir, `${entry.quarantineId}.json`), 'utf8'));
  assert.equal(meta.originalPath, join(watched, 'eicar.com'));
  assert.deepEqual(meta.signatures, [EICAR_SIGNATURE_NAME]);
  assert.match(meta.sha256, /^[0-9a-f]{64}$/);
  assert.equal(meta.sha256, entry.sha256);
  const data = await stat(join(qdir, `${entry.quarantineId}.data`));
  assert.equal(data.mode & 0o111, 0, 'a quarantined file is not executable');
  assert.deepEqual(await quarantinedBytes(qdir, entry.quarantineId!), eicar);
  assert.ok(!(await readFile(join(qdir, `${entry.quarantineId}.data`))).includes(eicar), 'the quarantined bytes are not the threat');

  // Excluded (a folder, a glob), a link to an infected file outside, then one that is detected: once it is, the others were seen too.
  await writeFile(join(watched, 'cache', 'a.com'), eicar);
  await writeFile(join(watched, 'disk.iso'), eicar);
  await writeFile(join(outside, 'target.com'), eicar);
  await symlink(join(outside, 'target.com'), join(watched, 'link.com'));
  await mkdir(join(watched, 'later', 'deep'), { recursive: true });
  await writeFile(join(watched, 'later', 'deep', 'x.com'), eicar);
  const all = await waitFor('the file in a folder created later', async () => {
    const j = await journal(home);
    return j.some((e) => e.path === join(watched, 'later', 'deep', 'x.com')) && j;
  });
  assert.deepEqual(all.map((e) => e.path).sort(), [join(watched, 'eicar.com'), join(watched, 'later', 'deep', 'x.com')].sort());
  assert.ok(await exists(join(watched, 'cache', 'a.com')));
  assert.ok(await exists(join(watched, 'disk.iso')));
  assert.ok(await exists(join(outside, 'target.com')));
  // Nothing from the quarantine comes back in a loop.
  await chmod(join(qdir, `${entry.quarantineId}.data`), 0o600);
  assert.equal((await readdir(qdir)).filter((n) => n.endsWith('.json')).length, 2);
});

test('action "report" leaves the file; on-demand scans honour exclusions and the action', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const watched = await tempDir(t);
  const other = await tempDir(t);
  await writeConfig(home, { watchedFolders: [watched], detectionAction: 'report', exclusions: ['skip-me'] });
  await startServiceProcess(t, home);
  await writeFile(join(watched, 'eicar.txt'), eicar);
  const [e] = await waitFor('the report', async () => {
    const j = await journal(home);
    return j.length > 0 && j;
  });
  assert.equal(e.action, 'reported');
  assert.ok(await exists(join(watched, 'eicar.txt')));
  await chmod(join(watched, 'eicar.txt'), 0o600); // an attribute change with nothing new: not reported again
  await writeFile(join(watched, 'z.com'), eicar);
  await waitFor('the second report', async () => (await journal(home)).length >= 2);
  await sleep(300);
  assert.equal((await journal(home)).length, 2);

  await mkdir(join(other, 'skip-me'));
  await writeFile(join(other, 'skip-me', 'a.com'), eicar);
  await writeFile(join(other, 'b.com'), eicar);
  await writeConfig(home, { watchedFolders: [watched], detectionAction: 'quarantine', exclusions: ['skip-me'] });
  await reconfigure(t, home);
  const client = await ScannerClient.connect(home);
  t.after(() => client.close());
  const found: Detection[] = [];
  const result = await client.scan([other], { onDetection: (d) => found.push(d) });
  assert.equal(result.detections, 1);
  assert.equal(result.skipped, 1);
  assert.equal(found[0].path, join(other, 'b.com'));
  assert.equal(found[0].action, 'quarantined');
  assert.equal(await exists(join(other, 'b.com')), false);
  assert.ok(await exists(join(other, 'skip-me', 'a.com')));
});

function policyContext(home: string): PolicyContext & { events: Parameters<PolicyContext['emit']>[0][] } {
  const events: Parameters<PolicyContext['emit']>[0][] = [];
  return { product: 'sample-scanner', productDir: home, events, emit: async (e) => void events.push(e) };
}

test('applyPolicy writes the configuration, puts back a locked setting changed by hand, keeps an unlocked one', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const watched = await tempDir(t);
  const ctx = policyContext(home);
  const settings = { ...structuredClone(DEFAULT_CONFIG), watchedFolders: [watched], detectionAction: 'quarantine', exclusions: ['*.tmp'] } as Record<string, unknown>;
  const locked = ['detectionAction', 'watchedFolders'];
  // As the agent hands it: reconcile bound to the policy and what was applied last.
  const application = (previous: PolicyApplication['previous']): PolicyApplication => ({
    revision: 'r1', settings, locked, previous, reason: previous ? 'enforcement' : 'changed',
    reconcile: (found) => reconcilePolicy({ settings, locked }, previous, found),
  });
  const first = application(null);

  // Not running: written anyway, and said so.
  const offline = await plugin.applyPolicy!(first, ctx);
  assert.equal(offline.state, 'compliant');
  assert.match(offline.reason!, /not running.*takes effect when it starts/);
  await startServiceProcess(t, home);
  const ping = await ScannerClient.connect(home);
  t.after(() => ping.close());
  assert.equal(((await ping.ping()) as unknown as { configSource: string }).configSource, "file");

  const again = await plugin.applyPolicy!(application({ policy: settings, applied: offline.applied! }), ctx);
  assert.equal(again.state, 'compliant');
  assert.equal(again.reason, undefined);
  assert.deepEqual(again.drift, []);

  // The local user edits the file: a locked setting and an unlocked one.
  const file = scannerPaths(home).config;
  const edited = JSON.parse(await readFile(file, 'utf8'));
  edited.detectionAction = 'report';
  edited.exclusions = ['*.tmp', '/home/me/big'];
  await writeFile(file, JSON.stringify(edited));
  await waitFor('the service to take the hand edit', async () => {
    const p = (await ping.ping()) as unknown as { config: ScannerConfig };
    return p.config.detectionAction === 'report';
  });
  const out = await plugin.applyPolicy!(application({ policy: settings, applied: again.applied! }), ctx);
  assert.equal(out.state, 'drifted');
  assert.deepEqual(out.drift!.slice().sort((a, b) => (a.setting < b.setting ? -1 : 1)), [
    { setting: 'detectionAction', expected: 'quarantine', found: 'report', action: 'restored' },
    { setting: 'exclusions', expected: ['*.tmp'], found: ['*.tmp', '/home/me/big'], action: 'kept-local' },
  ]);
  const restored = ctx.events.filter((e) => e.kind === 'policy.restored');
  assert.equal(restored.length, 1);
  assert.equal(restored[0].severity, 'warning');
  assert.equal(restored[0].data!.setting, 'detectionAction');
  const now = JSON.parse(await readFile(file, 'utf8'));
  assert.equal(now.detectionAction, 'quarantine');
  assert.deepEqual(now.exclusions, ['*.tmp', '/home/me/big']);
  const p = (await ping.ping()) as unknown as { config: ScannerConfig };
  assert.equal(p.config.detectionAction, 'quarantine');
  assert.deepEqual(p.config.exclusions, ['*.tmp', '/home/me/big']);

  // The local change stood: at the next enforcement the device is compliant.
  const next = await plugin.applyPolicy!(application({ policy: settings, applied: out.applied! }), ctx);
  assert.equal(next.state, 'compliant');

  // A value that is not valid is put back even on an unlocked setting.
  await writeFile(file, JSON.stringify({ ...now, exclusions: 'oops' }));
  const fixed = await plugin.applyPolicy!(application({ policy: settings, applied: next.applied! }), ctx);
  assert.equal(fixed.state, 'drifted');
  assert.ok(fixed.drift!.some((d) => d.setting === 'exclusions' && d.action === 'restored'));
  assert.deepEqual(JSON.parse(await readFile(file, 'utf8')).exclusions, ['*.tmp']);
});

test('watch delivers real-time detections from the journal, across a restart, without loss or repeat', { skip: !unix }, async (t) => {
  const home = await productHome(t);
  const watched = await tempDir(t);
  await writeConfig(home, { watchedFolders: [watched], detectionAction: 'quarantine' });
  await startServiceProcess(t, home);
  const ctx = policyContext(home);
  let stop = await plugin.watch!(ctx);
  t.after(() => stop());
  await writeFile(join(watched, 'one.com'), eicar);
  await writeFile(join(watched, 'two.com'), eicar);
  await waitFor('two detection events', async () => ctx.events.length >= 2);
  await stop();
  await writeFile(join(watched, 'three.com'), eicar);
  await waitFor('the third in the journal', async () => (await journal(home)).length >= 3);
  const ctx2 = policyContext(home);
  stop = await plugin.watch!(ctx2);
  await waitFor('the third delivered', async () => ctx2.events.length >= 1);
  await sleep(200);
  const paths = [...ctx.events, ...ctx2.events].map((e) => String(e.data!.path)).sort();
  assert.deepEqual(paths, ['one.com', 'three.com', 'two.com'].map((n) => join(watched, n)));
  assert.equal(ctx2.events.length, 1);
  const e = ctx2.events[0] as typeof ctx2.events[0] & { eventId?: string };
  assert.equal(e.kind, 'detection');
  assert.equal(e.data!.action, 'quarantined');
  assert.equal(e.data!.signature, EICAR_SIGNATURE_NAME);
  assert.match(e.eventId!, /^ssj-[0-9a-f]+-3$/);
});

test('the policy type: complete defaults, every setting lockable, validate() finds cross-setting problems', () => {
  const type = sampleScannerServerPlugin.policyType!;
  assert.deepEqual(Object.keys(type.defaults).sort(), Object.keys(DEFAULT_CONFIG).sort());
  assert.deepEqual([...type.lockable!].sort(), Object.keys(DEFAULT_CONFIG).sort());
  assert.deepEqual(type.validate!(type.defaults), []);
  const v = (s: Record<string, unknown>) => type.validate!({ ...type.defaults, ...s });
  assert.match(v({ watchedFolders: ['relative/dir'] }).join(), /not an absolute path/);
  assert.match(v({ watchedFolders: ['/data', '/data/'] }).join(), /listed twice/);
  assert.match(v({ watchedFolders: ['/data'], quarantineFolder: '/data/q' }).join(), /quarantine folder "\/data\/q" is inside the watched folder/);
  assert.match(v({ watchedFolders: ['/data/x'], quarantineFolder: '/data' }).join(), /inside the quarantine folder/);
  assert.match(v({ exclusions: ['/a/[b'] }).join(), /unclosed/);
  assert.match(v({ detectionAction: 'delete' }).join(), /detectionAction/);
  assert.match(v({ maxFileBytes: 0 }).join(), /maxFileBytes/);
  assert.deepEqual(configProblems({ watchedFolders: ['/data'], quarantineFolder: '/var/q', exclusions: ['*.iso', '/data/cache'] }), []);
});
