// The repository packages: built with the system tar, extracted into temp folders outside
// the repository, and their commands run with sh in the environment the agent gives them.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checker, PACKAGE_MANIFEST_FILE, PackageManifest } from '@garrison/protocol';
import { buildScannerPackages, DEFAULT_DEFINITIONS_VERSION, payloadFiles } from '../src/build-packages.ts';
import { ScannerClient, type Detection } from '../src/client.ts';
import { EICAR_TEST_STRING } from '../src/definitions.ts';
import { scannerPaths } from '../src/paths.ts';
import { killFromPidFile, processGone, tempDir, unix } from './helpers.ts';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(file, args, { ...options, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

async function extract(t: TestContext, archive: string): Promise<{ dir: string; manifest: PackageManifest }> {
  const dir = await tempDir(t, 'gss-pkg-');
  const r = await run('tar', ['-xzf', archive, '-C', dir]);
  assert.equal(r.code, 0, r.stderr);
  return { dir, manifest: JSON.parse(await readFile(join(dir, PACKAGE_MANIFEST_FILE), 'utf8')) as PackageManifest };
}

/** A product folder whose service, if any, is killed after the test. */
async function productDir(t: TestContext): Promise<string> {
  const dir = await tempDir(t, 'gss-prod-');
  t.after(() => killFromPidFile(dir));
  return dir;
}

/** Runs one of the package's commands as the agent does: sh, in the extracted folder, with the GARRISON_* environment. */
async function command(pkg: { dir: string; manifest: PackageManifest }, name: keyof PackageManifest['commands'], env: Record<string, string>): Promise<Result> {
  const cmd = pkg.manifest.commands[name];
  assert.ok(cmd?.script, `the package has a ${name} script`);
  assert.equal(cmd.shell, 'sh');
  const scriptFile = join(pkg.dir, `.${name}.sh`);
  await writeFile(scriptFile, cmd.script);
  return run('sh', [scriptFile], {
    cwd: pkg.dir,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      GARRISON_PACKAGE_DIR: pkg.dir,
      GARRISON_PRODUCT: pkg.manifest.product,
      GARRISON_VERSION: pkg.manifest.version,
      GARRISON_NODE: process.execPath,
      ...env,
    },
  });
}

test('both archives hold a valid manifest at their root; the payload imports node:* only', { skip: !unix }, async (t) => {
  const out = await tempDir(t);
  const built = await buildScannerPackages(out);
  assert.equal(built.application, join(out, 'sample-scanner-1.0.0.tar.gz'));
  assert.equal(built.definitions, join(out, `sample-scanner-definitions-${DEFAULT_DEFINITIONS_VERSION}.tar.gz`));
  const listing = (await run('tar', ['-tzf', built.application])).stdout.split('\n').filter(Boolean).sort();
  assert.ok(listing.includes(PACKAGE_MANIFEST_FILE));
  for (const f of ['app/service.ts', 'app/ctl.ts', 'app/control.ts', 'app/client.ts', 'app/paths.ts', 'app/definitions.ts', 'app/package.json', 'app/initial-definitions.json']) {
    assert.ok(listing.includes(f), f);
  }
  assert.deepEqual((await run('tar', ['-tzf', built.definitions])).stdout.split('\n').filter(Boolean).sort(), ['definitions.json', PACKAGE_MANIFEST_FILE]);

  const check = checker(PackageManifest);
  const app = await extract(t, built.application);
  const defs = await extract(t, built.definitions);
  assert.ok(check.check(app.manifest), JSON.stringify(check.issues(app.manifest)));
  assert.ok(check.check(defs.manifest), JSON.stringify(check.issues(defs.manifest)));
  assert.deepEqual(
    { product: app.manifest.product, version: app.manifest.version, kind: app.manifest.kind, platforms: app.manifest.platforms, order: app.manifest.order },
    { product: 'sample-scanner', version: '1.0.0', kind: 'application', platforms: ['linux-*', 'darwin-*'], order: 30 },
  );
  assert.deepEqual(Object.keys(app.manifest.commands).sort(), ['detect', 'install', 'start', 'status', 'stop', 'uninstall']);
  assert.deepEqual(
    { product: defs.manifest.product, kind: defs.manifest.kind, contentFor: defs.manifest.contentFor, platforms: defs.manifest.platforms },
    { product: 'sample-scanner-definitions', kind: 'definitions', contentFor: 'sample-scanner', platforms: ['any'] },
  );
  // Every script parses.
  for (const pkg of [app, defs]) {
    for (const [name, cmd] of Object.entries(pkg.manifest.commands)) {
      const file = join(pkg.dir, `.${name}.sh`);
      await writeFile(file, cmd!.script!);
      assert.equal((await run('sh', ['-n', file])).code, 0, `${pkg.manifest.product} ${name}`);
    }
  }
  // The payload is the closure of service.ts and ctl.ts, and the definitions file does not
  // hold the EICAR string itself (a real anti-virus would quarantine it).
  assert.deepEqual(await payloadFiles(), ['client.ts', 'config.ts', 'control.ts', 'ctl.ts', 'definitions.ts', 'journal.ts', 'matcher.ts', 'paths.ts', 'quarantine.ts', 'real-time.ts', 'service.ts']);
  assert.ok(!(await readFile(join(defs.dir, 'definitions.json'), 'utf8')).includes('EICAR-STANDARD'));
});

test('install, status, detect, stop, start and uninstall run the service from the installed copy', { skip: !unix }, async (t) => {
  const out = await tempDir(t);
  const built = await buildScannerPackages(out, { extraSignatures: [{ name: 'Extra-Test', kind: 'substring', pattern: 'GARRISON-EXTRA-SIGNATURE' }] });
  const app = await extract(t, built.application);
  const defs = await extract(t, built.definitions);
  const home = await productDir(t);
  const env = { GARRISON_PRODUCT_DIR: home };
  const paths = scannerPaths(home);

  let r = await command(app, 'detect', env);
  assert.notEqual(r.code, 0, 'not installed yet');
  assert.equal((await command(app, 'status', env)).code, 3);

  r = await command(app, 'install', env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /sample-scanner 1\.0\.0 installed/);
  r = await command(app, 'status', env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /running \(pid \d+, definitions 1\.0\.0-initial, 1 signature\)/);
  assert.deepEqual(await command(app, 'detect', env), { code: 0, stdout: '1.0.0\n', stderr: '' });

  // The service runs from the installed copy, with the agent's Node.
  const pid = Number((await readFile(paths.pid, 'utf8')).trim());
  if (process.platform === 'linux') {
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    assert.deepEqual(cmdline.slice(0, 4), [process.execPath, join(home, 'app', 'service.ts'), '--home', home]);
  }
  const client = await ScannerClient.connect(home);
  t.after(() => client.close());
  assert.equal((await client.ping()).version, '1.0.0');

  // The definitions package: its detect ignores the application's initial set.
  const content = { GARRISON_CONTENT_DIR: home, GARRISON_PRODUCT_DIR: join(home, '..', 'definitions-product') };
  assert.notEqual((await command(defs, 'detect', content)).code, 0);
  r = await command(defs, 'install', content);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await command(defs, 'detect', content), { code: 0, stdout: `${DEFAULT_DEFINITIONS_VERSION}\n`, stderr: '' });
  assert.deepEqual(await readdir(paths.definitionsDir), ['definitions.json'], 'no temp file left');
  const ping = await client.ping();
  assert.equal(ping.definitionsVersion, DEFAULT_DEFINITIONS_VERSION);
  assert.equal(ping.signatures, 3);

  const files = await tempDir(t);
  await writeFile(join(files, 'eicar.com'), EICAR_TEST_STRING);
  await writeFile(join(files, 'extra.txt'), 'xx GARRISON-EXTRA-SIGNATURE xx');
  const found: Detection[] = [];
  const result = await client.scan([files], { onDetection: (d) => found.push(d) });
  assert.equal(result.detections, 2);
  assert.deepEqual(found.map((d) => d.signature).sort(), ['EICAR-Test-File', 'Extra-Test']);
  client.close();

  r = await command(app, 'stop', env);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(await processGone(pid));
  assert.equal((await command(app, 'status', env)).code, 3);
  await assert.rejects(stat(paths.pid), { code: 'ENOENT' });

  r = await command(app, 'start', env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await command(app, 'status', env)).code, 0);
  const pid2 = Number((await readFile(paths.pid, 'utf8')).trim());

  r = await command(app, 'uninstall', env);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(await processGone(pid2));
  assert.notEqual((await command(app, 'detect', env)).code, 0);
  assert.equal((await command(app, 'status', env)).code, 3);
  assert.equal((await command(app, 'stop', env)).code, 0);
  assert.notEqual((await command(app, 'start', env)).code, 0);
  assert.deepEqual((await readdir(home)).sort(), ['definitions', 'journal', 'log']);

  r = await command(defs, 'uninstall', content);
  assert.equal(r.code, 0, r.stderr);
  assert.notEqual((await command(defs, 'detect', content)).code, 0);
});

test('installing a newer version replaces the running service and keeps the definitions', { skip: !unix }, async (t) => {
  const [v1, v2] = [await tempDir(t), await tempDir(t)];
  const first = await extract(t, (await buildScannerPackages(v1, { version: '1.0.0' })).application);
  const second = await extract(t, (await buildScannerPackages(v2, { version: '1.1.0' })).application);
  const home = await productDir(t);
  const env = { GARRISON_PRODUCT_DIR: home };
  assert.equal((await command(first, 'install', env)).code, 0);
  const pid1 = Number((await readFile(scannerPaths(home).pid, 'utf8')).trim());
  const definitionsBefore = await readFile(scannerPaths(home).definitions, 'utf8');

  const r = await command(second, 'install', env);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(await processGone(pid1));
  assert.deepEqual(await command(second, 'detect', env), { code: 0, stdout: '1.1.0\n', stderr: '' });
  const client = await ScannerClient.connect(home);
  t.after(() => client.close());
  assert.equal((await client.ping()).version, '1.1.0');
  assert.equal(await readFile(scannerPaths(home).definitions, 'utf8'), definitionsBefore);
  assert.equal((await command(second, 'uninstall', env)).code, 0);
});
