/**
 * Builds the single-executable agent: one file, Node.js with the bundled agent injected as a
 * Single Executable Application (SEA), for devices without Node. What it does with its
 * arguments is in sea-entry.ts (the launcher, the agent CLI, and `node script.mjs` for the
 * programs the agent starts with process.execPath).
 *
 * The steps (Node 24's documented procedure, `--experimental-sea-config` + postject):
 *   1. esbuild bundle of sea-entry.ts as CommonJS: Node 24 runs the injected main script as
 *      CommonJS only (`"mainFormat": "module"` came in Node 25). Its require() loads built-in
 *      modules only; import() of files on disk works (used for scripts and plug-ins).
 *   2. the preparation blob: `node --experimental-sea-config sea-config.json`, made by the node
 *      binary that is copied (the blob format belongs to one Node version), with V8's code
 *      cache of the main script (`useCodeCache`: starts in about half the time, e.g. 75 ms
 *      instead of 145 ms for `--version`). Node's docs up to 24 still say import() does not
 *      work with the code cache; that was a V8 bug fixed since (nodejs/node#62678 proposes to
 *      drop the note), and import() does work in Node 24.21's SEA with it: sea.test.ts runs scripts
 *      through it. A blob for a binary of another platform is made without code cache, since
 *      the cache would come from this process's V8 and could be rejected. No snapshot.
 *   3. a copy of the node binary, the blob injected with postject's JS API (resource
 *      NODE_SEA_BLOB, fuse NODE_SEA_FUSE_...); in a child process, because postject reads the
 *      whole binary into WebAssembly memory (about 0.9 GB at its peak for a 125 MB binary),
 *      which this process then never holds.
 *   4. chmod 755, then rename over the output file (the output is complete or absent).
 *
 * Other platforms: a node binary of another platform can be given as `nodeBinary` (its blob
 * is then made by this process's node, which must be the same Node version), but only the
 * host is tested.
 *   - macOS: the Mach-O segment is NODE_SEA, and the binary must be re-signed after injection
 *     (`codesign --remove-signature` before, `codesign --sign -` after, done here when building
 *     on macOS; a darwin binary built elsewhere must be signed on a Mac before it can run).
 *   - Windows: the output should end in .exe; the signature of node.exe must be removed
 *     first (`signtool remove /s node.exe`) and the result signed again if it is to be
 *     trusted. Neither is done here (no signtool on this build host).
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, mkdtemp, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { buildAgentBundle } from './bundle.ts';

/** The fuse a SEA-capable node binary carries once, followed by `:0` (no blob) or `:1`. */
export const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const SEA_RESOURCE = 'NODE_SEA_BLOB';
const MACHO_SEGMENT = 'NODE_SEA';

export interface AgentExecutable {
  file: string;
  sha256: string;
  size: number;
  /** The executable's platform, e.g. linux-x64 (from the node binary's header). */
  platform: string;
}

/** This machine's platform as agent packages name it: linux-x64, darwin-arm64, win32-x64... */
export function hostPlatform(): string {
  return `${process.platform}-${process.arch}`;
}

/**
 * The platform of an executable from its header (ELF, Mach-O, PE), or null when it is none
 * of those or of an unknown architecture.
 */
export async function binaryPlatform(file: string): Promise<string | null> {
  const fh = await open(file, 'r');
  const buf = Buffer.alloc(4096);
  try {
    await fh.read(buf, 0, buf.length, 0);
  } finally {
    await fh.close();
  }
  if (buf.readUInt32BE(0) === 0x7f454c46) {
    const le = buf[5] === 1;
    const machine = le ? buf.readUInt16LE(18) : buf.readUInt16BE(18);
    const arch = ({ 0x3e: 'x64', 0xb7: 'arm64', 0x28: 'arm', 0x03: 'ia32', 0x15: 'ppc64', 0x16: 's390x', 0xf3: 'riscv64' } as Record<number, string>)[machine];
    return arch ? `linux-${arch}` : null;
  }
  if (buf.readUInt32LE(0) === 0xfeedfacf) {
    const arch = ({ 0x01000007: 'x64', 0x0100000c: 'arm64' } as Record<number, string>)[buf.readUInt32LE(4)];
    return arch ? `darwin-${arch}` : null;
  }
  if (buf.toString('latin1', 0, 2) === 'MZ') {
    const pe = buf.readUInt32LE(0x3c);
    if (pe + 6 > buf.length || buf.readUInt32BE(pe) !== 0x50450000) return null;
    const arch = ({ 0x8664: 'x64', 0xaa64: 'arm64', 0x14c: 'ia32' } as Record<number, string>)[buf.readUInt16LE(pe + 4)];
    return arch ? `win32-${arch}` : null;
  }
  return null;
}

/**
 * Whether a node binary can become a SEA: 'available' (the fuse is there, unset), 'used' (it
 * already is one) or 'absent' (a node built without SEA support). Reads the file in chunks.
 */
export async function seaFuseState(binary: string): Promise<'available' | 'used' | 'absent'> {
  const needle = Buffer.from(SEA_FUSE + ':');
  let tail: Buffer = Buffer.alloc(0);
  for await (const chunk of createReadStream(binary, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    const buf = tail.length ? Buffer.concat([tail, chunk]) : chunk;
    const at = buf.indexOf(needle);
    if (at !== -1 && at + needle.length < buf.length) return buf[at + needle.length] === 0x31 ? 'used' : 'available';
    tail = buf.subarray(Math.max(0, buf.length - needle.length));
  }
  return 'absent';
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function run(cmd: string, args: string[], what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${what} failed: ${(stderr || stdout || err.message).trim()}`));
      else resolve(`${stdout}${stderr}`);
    });
  });
}

/** Injects the blob with postject's JS API in a child node process (see the header). */
function inject(exe: string, blob: string, macho: boolean): Promise<void> {
  const job = { postject: createRequire(import.meta.url).resolve('postject'), exe, blob, fuse: SEA_FUSE, resource: SEA_RESOURCE, segment: macho ? MACHO_SEGMENT : undefined };
  const code = `const job = JSON.parse(process.env.GARRISON_SEA_INJECT);
require(job.postject).inject(job.exe, job.resource, require('node:fs').readFileSync(job.blob), { sentinelFuse: job.fuse, machoSegmentName: job.segment })
  .then(() => process.exit(0), (err) => { console.error(err && err.message || err); process.exit(1); });`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code], { env: { ...process.env, GARRISON_SEA_INJECT: JSON.stringify(job) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    // postject (LIEF) prints harmless warnings about unnamed ELF notes; kept for an error only.
    const keep = (d: Buffer) => (out = (out + d.toString()).slice(-8000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`postject failed (${signal ?? `exit ${code}`}): ${out.split('\n').filter((l) => l && !l.startsWith('warning:')).join('\n') || out}`));
    });
  });
}

/**
 * Builds the agent as one executable for the platform of `nodeBinary` (default: the node
 * running this, so the host). Writes `outFile` atomically; temporary files are removed.
 */
export async function buildAgentExecutable(opts: { outFile: string; version: string; nodeBinary?: string }): Promise<AgentExecutable> {
  const nodeBinary = path.resolve(opts.nodeBinary ?? process.execPath);
  const outFile = path.resolve(opts.outFile);
  const platform = await binaryPlatform(nodeBinary);
  if (!platform) throw new Error(`${nodeBinary} is not an executable of a known platform`);
  const fuse = await seaFuseState(nodeBinary);
  if (fuse === 'absent') throw new Error(`${nodeBinary} has no single-executable support (no ${SEA_FUSE} fuse)`);
  if (fuse === 'used') throw new Error(`${nodeBinary} is already a single executable application; give a plain node binary`);
  const host = platform === hostPlatform();
  const darwin = platform.startsWith('darwin-');

  const work = await mkdtemp(path.join(os.tmpdir(), 'garrison-sea-'));
  // Next to the output, so that the final rename does not cross file systems.
  const tmpExe = path.join(path.dirname(outFile), `.${path.basename(outFile)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const main = path.join(work, 'sea-main.cjs');
    const blob = path.join(work, 'sea-prep.blob');
    const config = path.join(work, 'sea-config.json');
    await buildAgentBundle(main, { version: opts.version, format: 'cjs', entry: path.join(import.meta.dirname, 'sea-entry.ts') });
    await writeFile(config, JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, useSnapshot: false, useCodeCache: host }, null, 2));
    // The blob is made by the Node version that will run it: the binary itself when it runs here.
    await run(host ? nodeBinary : process.execPath, ['--experimental-sea-config', config], 'making the SEA blob');
    await rm(main);

    await copyFile(nodeBinary, tmpExe);
    await chmod(tmpExe, 0o755);
    if (darwin && process.platform === 'darwin') await run('codesign', ['--remove-signature', tmpExe], 'codesign --remove-signature');
    await inject(tmpExe, blob, darwin);
    if (darwin && process.platform === 'darwin') await run('codesign', ['--sign', '-', tmpExe], 'codesign --sign');
    await chmod(tmpExe, 0o755);
    const [sha256, { size }] = await Promise.all([sha256File(tmpExe), stat(tmpExe)]);
    await rename(tmpExe, outFile);
    return { file: outFile, sha256, size, platform };
  } finally {
    await rm(work, { recursive: true, force: true });
    await rm(tmpExe, { force: true });
  }
}
