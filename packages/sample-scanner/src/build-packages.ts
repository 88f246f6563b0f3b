/**
 * Builds the two repository packages of the sample scanner:
 *
 * - `sample-scanner` (kind "application", linux and macOS): the service and its control
 *   script, copied into $GARRISON_PRODUCT_DIR/app by the install command and run with the
 *   agent's Node ($GARRISON_NODE). The payload is the import closure of service.ts and
 *   ctl.ts, checked here to use node:* only, so it runs without this repository or any
 *   node_modules.
 * - `sample-scanner-definitions` (kind "definitions", contentFor "sample-scanner"): one
 *   definitions.json that the install command puts, atomically, in
 *   $GARRISON_CONTENT_DIR/definitions/.
 *
 * Each archive is a .tar.gz with garrison-package.json at its root, made with the system
 * `tar` (no npm dependency). Usage from a shell:
 *
 *   node packages/sample-scanner/src/build-packages.ts OUT_DIR [--version 1.0.0] [--definitions-version 2026.11.21.1]
 *
 * Commands are sh scripts with `set -eu`. They are written for the environment the agent
 * gives package commands: GARRISON_PACKAGE_DIR, GARRISON_PRODUCT_DIR, GARRISON_CONTENT_DIR
 * (definitions only), GARRISON_PRODUCT, GARRISON_VERSION and GARRISON_NODE (falling back
 * to `node` on the PATH when unset).
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checker, PACKAGE_MANIFEST_FILE, PackageManifest } from '@garrison/protocol';
import { compileDefinitions, defaultSignatures, EICAR_SIGNATURE_NAME, type DefinitionsFile, type SignatureDefinition } from './definitions.ts';
import { DEFINITIONS_PRODUCT, SAMPLE_SCANNER_PRODUCT } from './task-types.ts';

export const DEFAULT_APPLICATION_VERSION = '1.0.0';
export const DEFAULT_DEFINITIONS_VERSION = '2026.11.21.1';
/** Marks a definitions file installed by the definitions package (not the application's initial one). */
export const DEFINITIONS_SOURCE = DEFINITIONS_PRODUCT;
/** The payload's entry points; everything they import (relatively) is copied with them. */
const PAYLOAD_ENTRIES = ['service.ts', 'ctl.ts'];

export interface BuildOptions {
  version?: string;
  definitionsVersion?: string;
  /** Signatures added to the default set (EICAR and a harmless hex marker). */
  extraSignatures?: SignatureDefinition[];
}

export interface BuiltPackages {
  application: string;
  definitions: string;
}

const SRC_DIR = import.meta.dirname;
const manifestChecker = checker(PackageManifest);

/**
 * The payload's files: the relative-import closure of the entry points. Throws when a
 * payload file imports anything other than node:* or another file of this folder.
 */
export async function payloadFiles(): Promise<string[]> {
  const seen = new Set<string>();
  const queue = [...PAYLOAD_ENTRIES];
  const importPattern = /(?:^|\n)\s*(?:import|export)\s(?:[^'";]*?\sfrom\s*)?['"]([^'"]+)['"]/g;
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = await readFile(join(SRC_DIR, file), 'utf8');
    for (const m of text.matchAll(importPattern)) {
      const spec = m[1];
      if (spec.startsWith('node:')) continue;
      if (!/^\.\/[a-z0-9-]+\.ts$/.test(spec)) throw new Error(`${file} imports "${spec}": the service's payload may import node:* and ./*.ts files only`);
      queue.push(spec.slice(2));
    }
  }
  return [...seen].sort();
}

/** Writes the service's files into `dir` (the package's app/ folder), with a package.json carrying `version`. */
export async function writeApplicationFiles(dir: string, version: string = DEFAULT_APPLICATION_VERSION): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files = await payloadFiles();
  for (const f of files) {
    await copyFile(join(SRC_DIR, f), join(dir, f));
    await chmod(join(dir, f), 0o644);
  }
  // "type": "module" so Node runs the .ts files as ES modules; the version is the service's own.
  await writeFile(join(dir, 'package.json'), `${JSON.stringify({ name: 'sample-scanner-service', version, private: true, type: 'module' }, null, 2)}\n`);
  await writeFile(join(dir, 'initial-definitions.json'), `${JSON.stringify(initialDefinitions(version), null, 2)}\n`);
  return [...files, 'package.json', 'initial-definitions.json'];
}

/** The minimal set the application installs when no definitions are there yet: EICAR only. */
export function initialDefinitions(applicationVersion: string): DefinitionsFile & { source: string } {
  return {
    version: `${applicationVersion}-initial`,
    source: SAMPLE_SCANNER_PRODUCT,
    signatures: defaultSignatures().filter((s) => s.name === EICAR_SIGNATURE_NAME),
  };
}

/** The definitions package's file; validated, so a bad extra signature fails the build, not the devices. */
export function definitionsFile(version: string, extraSignatures: SignatureDefinition[] = []): DefinitionsFile & { source: string } {
  const doc = { version, source: DEFINITIONS_SOURCE, signatures: [...defaultSignatures(), ...extraSignatures] };
  compileDefinitions(doc);
  return doc;
}

const SH_PREAMBLE = `set -eu
: "\${GARRISON_PRODUCT_DIR:?GARRISON_PRODUCT_DIR is not set}"
NODE="\${GARRISON_NODE:-node}"
P="$GARRISON_PRODUCT_DIR"
`;

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function applicationManifest(version: string = DEFAULT_APPLICATION_VERSION): PackageManifest {
  const v = shQuote(version);
  const install = `${SH_PREAMBLE}: "\${GARRISON_PACKAGE_DIR:?GARRISON_PACKAGE_DIR is not set}"
mkdir -p "$P"
# An update: stop the running version with its own control script first.
if [ -f "$P/app/ctl.ts" ]; then "$NODE" "$P/app/ctl.ts" stop --home "$P"; fi
# VERSION is written last: until then the product does not count as installed.
rm -f "$P/VERSION"
rm -rf "$P/app.new"
cp -R "$GARRISON_PACKAGE_DIR/app" "$P/app.new"
rm -rf "$P/app"
mv "$P/app.new" "$P/app"
mkdir -p "$P/definitions"
if [ ! -f "$P/definitions/definitions.json" ]; then
  cp "$P/app/initial-definitions.json" "$P/definitions/.definitions.json.$$"
  mv -f "$P/definitions/.definitions.json.$$" "$P/definitions/definitions.json"
fi
"$NODE" "$P/app/ctl.ts" start --home "$P"
printf '%s\\n' ${v} > "$P/VERSION.$$"
mv -f "$P/VERSION.$$" "$P/VERSION"
echo "sample-scanner "${v}" installed in $P"
`;
  const uninstall = `${SH_PREAMBLE}if [ -f "$P/app/ctl.ts" ]; then "$NODE" "$P/app/ctl.ts" stop --home "$P"; fi
rm -f "$P/VERSION"
rm -rf "$P/app" "$P/app.new" "$P/run"
# definitions/ belongs to the definitions package and log/ to the administrator: both stay.
echo "sample-scanner removed from $P"
`;
  // Without the application's files: start fails, stop has nothing to do, status says "not running" (3).
  const notInstalled: Record<string, string> = {
    start: 'echo "sample-scanner is not installed in $P" >&2; exit 1',
    stop: 'echo "sample-scanner is not installed"; exit 0',
    status: 'echo "sample-scanner is not installed"; exit 3',
  };
  const ctl = (command: 'start' | 'stop' | 'status'): string =>
    `${SH_PREAMBLE}[ -f "$P/app/ctl.ts" ] || { ${notInstalled[command]}; }\nexec "$NODE" "$P/app/ctl.ts" ${command} --home "$P"\n`;
  const detect = `${SH_PREAMBLE}[ -f "$P/app/service.ts" ] && [ -s "$P/VERSION" ] || exit 1
cat "$P/VERSION"
`;
  const manifest: PackageManifest = {
    product: SAMPLE_SCANNER_PRODUCT,
    name: 'Sample Scanner',
    version,
    kind: 'application',
    description: 'Sample security application: a file-scanner service (needs the agent\'s Node) whose signatures come from the sample-scanner-definitions package.',
    platforms: ['linux-*', 'darwin-*'],
    order: 30,
    commands: {
      install: { shell: 'sh', script: install, timeoutSeconds: 120 },
      uninstall: { shell: 'sh', script: uninstall, timeoutSeconds: 60 },
      start: { shell: 'sh', script: ctl('start'), timeoutSeconds: 60 },
      stop: { shell: 'sh', script: ctl('stop'), timeoutSeconds: 60 },
      status: { shell: 'sh', script: ctl('status'), timeoutSeconds: 30 },
      detect: { shell: 'sh', script: detect, timeoutSeconds: 30 },
    },
  };
  assertManifest(manifest);
  return manifest;
}

export function definitionsManifest(version: string = DEFAULT_DEFINITIONS_VERSION): PackageManifest {
  const pre = `set -eu
: "\${GARRISON_CONTENT_DIR:?GARRISON_CONTENT_DIR is not set}"
NODE="\${GARRISON_NODE:-node}"
C="$GARRISON_CONTENT_DIR"
F="$C/definitions/definitions.json"
`;
  const install = `${pre}: "\${GARRISON_PACKAGE_DIR:?GARRISON_PACKAGE_DIR is not set}"
mkdir -p "$C/definitions"
# Copy next to the target, then rename: the scanner never reads a half-written file.
T="$C/definitions/.definitions.json.$$"
trap 'rm -f "$T"' EXIT
cp "$GARRISON_PACKAGE_DIR/definitions.json" "$T"
mv -f "$T" "$F"
# A running scanner would load the file at its next scan; have it load them now.
if [ -f "$C/app/ctl.ts" ] && "$NODE" "$C/app/ctl.ts" status --home "$C" >/dev/null 2>&1; then
  "$NODE" "$C/app/ctl.ts" reload --home "$C"
fi
echo "sample-scanner definitions "${shQuote(version)}" installed"
`;
  const uninstall = `${pre}rm -f "$F"
echo "sample-scanner definitions removed"
`;
  // Only a file this package installed counts: the application's initial set is not ours.
  const detect = `${pre}[ -f "$F" ] || exit 1
exec "$NODE" -e 'const d = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8")); if (d.source !== ${JSON.stringify(DEFINITIONS_SOURCE)} || typeof d.version !== "string") process.exit(1); console.log(d.version);' "$F"
`;
  const manifest: PackageManifest = {
    product: DEFINITIONS_PRODUCT,
    name: 'Sample Scanner definitions',
    version,
    kind: 'definitions',
    contentFor: SAMPLE_SCANNER_PRODUCT,
    description: 'Signature definitions of the Sample Scanner (EICAR test file and a harmless hex marker, plus any extra signatures).',
    platforms: ['any'],
    order: 31,
    commands: {
      install: { shell: 'sh', script: install, timeoutSeconds: 60 },
      uninstall: { shell: 'sh', script: uninstall, timeoutSeconds: 30 },
      detect: { shell: 'sh', script: detect, timeoutSeconds: 30 },
    },
  };
  assertManifest(manifest);
  return manifest;
}

function assertManifest(manifest: PackageManifest): void {
  const issues = manifestChecker.issues(manifest);
  if (issues.length > 0) throw new Error(`invalid package manifest for ${manifest.product}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
}

function tar(archive: string, stagingDir: string, entries: string[]): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    // COPYFILE_DISABLE: macOS tar would otherwise add ._* metadata files.
    execFile('tar', ['-czf', archive, '-C', stagingDir, ...entries], { env: { ...process.env, COPYFILE_DISABLE: '1' } }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`tar failed: ${String(stderr).trim() || err.message}`));
      else resolvePromise();
    });
  });
}

async function archive(staging: string, out: string): Promise<void> {
  // Entries are named without a leading "./", so garrison-package.json is exactly at the root.
  const entries = (await readdir(staging)).sort();
  await rm(out, { force: true });
  await tar(out, staging, entries);
}

/** Builds both archives into `outDir`; resolves with their paths. */
export async function buildScannerPackages(outDir: string, opts: BuildOptions = {}): Promise<BuiltPackages> {
  const version = opts.version ?? DEFAULT_APPLICATION_VERSION;
  const definitionsVersion = opts.definitionsVersion ?? DEFAULT_DEFINITIONS_VERSION;
  const appManifest = applicationManifest(version);
  const defsManifest = definitionsManifest(definitionsVersion);
  const defs = definitionsFile(definitionsVersion, opts.extraSignatures);
  await mkdir(outDir, { recursive: true });
  const staging = await mkdtemp(join(tmpdir(), 'garrison-sample-scanner-build-'));
  try {
    const appDir = join(staging, 'application');
    await mkdir(appDir);
    await writeFile(join(appDir, PACKAGE_MANIFEST_FILE), `${JSON.stringify(appManifest, null, 2)}\n`);
    await writeApplicationFiles(join(appDir, 'app'), version);
    const application = resolve(outDir, `${SAMPLE_SCANNER_PRODUCT}-${version}.tar.gz`);
    await archive(appDir, application);

    const defsDir = join(staging, 'definitions');
    await mkdir(defsDir);
    await writeFile(join(defsDir, PACKAGE_MANIFEST_FILE), `${JSON.stringify(defsManifest, null, 2)}\n`);
    await writeFile(join(defsDir, 'definitions.json'), `${JSON.stringify(defs, null, 2)}\n`);
    const definitions = resolve(outDir, `${DEFINITIONS_PRODUCT}-${definitionsVersion}.tar.gz`);
    await archive(defsDir, definitions);
    return { application, definitions };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

function isMain(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(resolve(process.argv[1])) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const args = process.argv.slice(2);
  let outDir: string | undefined;
  const opts: BuildOptions = {};
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--version' && i + 1 < args.length) opts.version = args[++i];
    else if (args[i] === '--definitions-version' && i + 1 < args.length) opts.definitionsVersion = args[++i];
    else if (!args[i].startsWith('--') && !outDir) outDir = args[i];
    else {
      process.stderr.write(`unknown argument "${args[i]}"\n`);
      outDir = undefined;
      break;
    }
  }
  if (!outDir) {
    process.stderr.write('usage: node build-packages.ts OUT_DIR [--version 1.0.0] [--definitions-version 2026.11.21.1]\n');
    process.exitCode = 2;
  } else {
    const built = await buildScannerPackages(outDir, opts);
    process.stdout.write(`${built.application}\n${built.definitions}\n`);
  }
}
