// The single-executable agent (sea.ts, sea-entry.ts): built once from this node binary into a
// temporary folder (about 130 MB, removed at the end), then run as a person and the agent's
// own programs would: --version and help, script mode (`exe script.mjs args`, as package
// commands and services run "$GARRISON_NODE", and the launcher runs downloaded runtimes), the
// agent CLI, the bundled agent.mjs, and the launcher on state folders: bootstrapping the
// built-in agent, starting a downloaded runtime, and rolling a broken update back to the
// built-in agent. No server is involved: the agents stop at "not enrolled".
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildAgentBundle } from '../src/bundle.ts';
import { buildAgentExecutable, hostPlatform, seaFuseState, type AgentExecutable } from '../src/sea.ts';

const VERSION = '7.7.7-sea';
const fuse = await seaFuseState(process.execPath);
const skip = fuse === 'available' ? false : `this node binary (${process.execPath}) cannot make a single executable: SEA fuse ${fuse}`;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}
function runExe(exe: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(exe, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: unknown }).code as number | null) ?? null : 0, stdout, stderr });
    });
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, output: () => string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; output:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs the executable as the launcher of `state` until `ready` says so, then stops it with SIGTERM. */
async function runLauncherUntil(exe: string, args: string[], what: string, ready: (output: string) => Promise<boolean> | boolean): Promise<string> {
  const child = spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    await until(what, () => ready(output), () => output);
    return output;
  } finally {
    child.kill('SIGTERM');
    assert.equal(await exited, 0, `the launcher stops cleanly on SIGTERM; output:\n${output}`);
  }
}

async function readJsonFile<T = Record<string, unknown>>(file: string): Promise<T | undefined> {
  return JSON.parse(await readFile(file, 'utf8').catch(() => 'null')) ?? undefined;
}

const re = (s: string) => new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));

describe('single-executable agent', { skip, timeout: 120_000 }, () => {
  let dir: string;
  let built: AgentExecutable;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'garrison-sea-test-'));
    const started = Date.now();
    built = await buildAgentExecutable({ outFile: path.join(dir, 'garrison-agent'), version: VERSION });
    console.log(`# built ${built.file}: ${(built.size / 1e6).toFixed(1)} MB, ${built.platform}, in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('is one executable file for this platform, written with its sha256', async () => {
    const st = await stat(built.file);
    assert.equal(st.size, built.size);
    assert.equal(st.mode & 0o777, 0o755);
    assert.equal(built.platform, hostPlatform());
    assert.match(built.sha256, /^[0-9a-f]{64}$/);
    const { createHash } = await import('node:crypto');
    assert.equal(createHash('sha256').update(await readFile(built.file)).digest('hex'), built.sha256);
    assert.equal(await seaFuseState(built.file), 'used');
    // Only the executable is left: no blob, bundle or temporary executable next to it.
    const { readdir } = await import('node:fs/promises');
    assert.deepEqual(await readdir(dir), ['garrison-agent']);
  });

  it('answers --version and help', async () => {
    const v = await runExe(built.file, ['--version']);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout.trim(), VERSION);
    assert.equal(v.stderr, '', 'no experimental-SEA warning');
    const h = await runExe(built.file, ['help']);
    assert.equal(h.code, 0, h.stderr);
    assert.match(h.stdout, new RegExp(`garrison-agent ${VERSION.replace(/\./g, '\\.')}`));
    assert.match(h.stdout, /SCRIPT\.mjs/);
    assert.match(h.stdout, /garrison agent task list/);
  });

  it('runs scripts as node would: ESM, CommonJS and TypeScript, with import(), require() and child scripts', async () => {
    const s = path.join(dir, 'scripts');
    await mkdir(path.join(s, 'lib'), { recursive: true });
    await writeFile(path.join(s, 'lib', 'dep.mjs'), 'export const answer = 42;\n');
    await writeFile(path.join(s, 'lib', 'util.cjs'), 'module.exports = { twice: (x) => x * 2 };\n');
    await writeFile(path.join(s, 'child.cjs'), 'console.log(JSON.stringify({ child: process.argv.slice(2), exe: process.execPath }));\n');
    await writeFile(
      path.join(s, 'main.mjs'),
      `import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { answer } from './lib/dep.mjs';
const again = await import('./lib/dep.mjs');
const { twice } = createRequire(import.meta.url)('./lib/util.cjs');
const child = JSON.parse(execFileSync(process.execPath, [new URL('./child.cjs', import.meta.url).pathname, 'x y'], { encoding: 'utf8' }));
console.log(JSON.stringify({ argv: process.argv, answer, again: again.answer, twice: twice(21), child, url: import.meta.url }));
process.exitCode = 7;
`,
    );
    await writeFile(path.join(s, 'typed.ts'), 'const n: number = 5;\nconsole.log(`typed ${n * 2} ${process.argv.slice(2).join(",")}`);\n');
    await writeFile(path.join(s, 'fails.mjs'), 'throw new Error("this script fails");\n');

    const r = await runExe(built.file, ['scripts/main.mjs', 'a', '--b', 'c d'], { cwd: dir });
    assert.equal(r.code, 7, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(out.argv, [built.file, path.join(s, 'main.mjs'), 'a', '--b', 'c d']);
    assert.equal(out.answer, 42);
    assert.equal(out.again, 42);
    assert.equal(out.twice, 42);
    assert.deepEqual(out.child, { child: ['x y'], exe: built.file });
    assert.equal(out.url, `file://${path.join(s, 'main.mjs')}`);

    const t = await runExe(built.file, [path.join(s, 'typed.ts'), 'p', 'q']);
    assert.equal(t.code, 0, t.stderr);
    assert.equal(t.stdout.trim(), 'typed 10 p,q');

    const f = await runExe(built.file, [path.join(s, 'fails.mjs')]);
    assert.equal(f.code, 1);
    assert.match(f.stderr, /this script fails/);

    // Top-level await: pending when the loop runs dry is exit code 13, as with node; an
    // explicit process.exit() meanwhile is not.
    await writeFile(path.join(s, 'pending.mjs'), 'await new Promise(() => {});\n');
    await writeFile(path.join(s, 'exits.mjs'), 'await new Promise((r) => setTimeout(r, 10));\nprocess.exit();\n');
    assert.equal((await runExe(built.file, [path.join(s, 'pending.mjs')])).code, 13);
    assert.equal((await runExe(built.file, [path.join(s, 'exits.mjs')])).code, 0);

    const missing = await runExe(built.file, [path.join(s, 'missing.mjs')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot find the script .*missing\.mjs/);
  });

  it('runs the agent CLI, which fails cleanly without an agent or a server', async () => {
    const state = path.join(dir, 'cli-state');
    const status = await runExe(built.file, ['--state', state, 'status']);
    assert.equal(status.code, 1);
    assert.match(status.stderr, /the agent is not running in/);
    const run = await runExe(built.file, ['run', '--state', state]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /enrolment failed: NOT_ENROLLED: this agent is not enrolled yet/);
  });

  it('runs the bundled agent (agent.mjs) in script mode', async () => {
    const bundle = path.join(dir, 'agent-2.0.0.mjs');
    await buildAgentBundle(bundle, { version: '2.0.0' });
    const r = await runExe(built.file, [bundle, 'run', '--state', path.join(dir, 'bundle-state')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not enrolled yet/);
  });

  it('starts the built-in agent as the launcher on an empty state folder', async () => {
    const state = path.join(dir, 'state-bootstrap');
    const output = await runLauncherUntil(built.file, ['--state', state], 'the built-in agent to start and exit', (out) => /launcher: agent exited \(1\); restarting/.test(out));
    assert.match(output, re(`launcher: no agent runtime in ${state} yet: starting the built-in agent ${VERSION}`));
    // The agent itself ran and said why it stopped: it has no server to enrol with.
    assert.match(output, /garrison agent: enrolment failed: NOT_ENROLLED: .*--server URL/);
    assert.deepEqual(await readJsonFile(path.join(state, 'runtime', 'current.json')), { version: VERSION, previous: null });
  });

  it('runs downloaded runtimes through script mode and rolls a broken update back to the built-in agent', async () => {
    // A state folder whose current runtime is a downloaded agent.mjs of another version; this
    // one records how it was started and runs until stopped.
    const downloaded = path.join(dir, 'state-downloaded');
    await mkdir(path.join(downloaded, 'runtime', '2.0.0'), { recursive: true });
    await writeFile(
      path.join(downloaded, 'runtime', '2.0.0', 'agent.mjs'),
      `import { writeFileSync } from 'node:fs';
writeFileSync(new URL('../started.json', import.meta.url), JSON.stringify({ argv: process.argv, execPath: process.execPath, launcher: process.env.GARRISON_LAUNCHER }));
const keep = setInterval(() => {}, 1000);
process.on('SIGTERM', () => clearInterval(keep));
`,
    );
    await writeFile(path.join(downloaded, 'runtime', 'current.json'), JSON.stringify({ version: '2.0.0', previous: VERSION }));
    // A state folder in the middle of an update from the built-in agent to one that dies.
    const broken = path.join(dir, 'state-broken');
    await mkdir(path.join(broken, 'runtime', '3.0.0'), { recursive: true });
    await writeFile(path.join(broken, 'runtime', '3.0.0', 'agent.mjs'), 'process.stderr.write("broken agent\\n"); process.exit(3);\n');
    await writeFile(path.join(broken, 'runtime', 'current.json'), JSON.stringify({ version: '3.0.0', previous: VERSION }));
    await writeFile(path.join(broken, 'update-pending.json'), JSON.stringify({ from: VERSION, to: '3.0.0', deadline: Date.now() + 60_000 }));

    const [, b] = await Promise.all([
      runLauncherUntil(built.file, ['--state', downloaded, '--', '--name', 'dl'], 'the downloaded runtime to start', () => readJsonFile(path.join(downloaded, 'runtime', 'started.json')).then(Boolean)),
      runLauncherUntil(built.file, ['--state', broken], 'the rollback to the built-in agent', (out) => /rolling back[^]*enrolment failed: NOT_ENROLLED/.test(out)),
    ]);
    const started = (await readJsonFile<{ argv: string[]; execPath: string; launcher: string }>(path.join(downloaded, 'runtime', 'started.json')))!;
    assert.deepEqual(started, { argv: [built.file, path.join(downloaded, 'runtime', '2.0.0', 'agent.mjs'), '--state', downloaded, '--name', 'dl'], execPath: built.file, launcher: '1' });

    assert.match(b, /broken agent/);
    assert.match(b, re(`launcher: agent 3.0.0 `));
    assert.match(b, re(`; rolling back to ${VERSION}`));
    assert.equal((await readJsonFile(path.join(broken, 'runtime', 'current.json')))!.version, VERSION);
    assert.equal((await readJsonFile(path.join(broken, 'update-failed.json')))!.version, '3.0.0');
  });
});
