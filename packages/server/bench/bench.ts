/**
 * The fleet benchmark: a real server in its own process, and thousands of simulated agents in
 * a few worker processes, each agent with its own enrolled device and credential, speaking the
 * real protocol over real sockets from several loopback source addresses.
 *
 *   npm run bench                         10,000 agents on SQLite
 *   npm run bench -- --agents 1000        a quick run
 *   npm run bench -- --pg postgres://...  PostgreSQL (or GARRISON_BENCH_PG_URL)
 *   npm run bench -- --http               the server on plain HTTP, to show what TLS costs
 *   npm run bench -- --server-tasks       what database maintenance and backup cost agents (server-tasks.ts)
 *   npm run bench -- --console            the console's pages in Chromium over 10,000 agents (console-pages.ts)
 *   npm run bench -- --instances K --pg … several instances on one database, a scaling curve (instances.ts)
 *
 * The server serves HTTPS with its own CA, as by default, and the simulated agents trust that
 * CA only, as real agents do (pinnedFetch for enrolment, `ca` for the WebSocket and downloads).
 *
 * It prints, with its conditions: connected agents and server memory per agent; check-ins per
 * second; the time from run-now to 50/95/99/100% of targets started and to all results
 * stored; the time for a new package version to reach every agent, downloads included (an
 * assignment, then a newer version checked into the repository); and a bare SQLite ingest
 * baseline from the same run, so that ingest is also shown as a ratio. The figures go to
 * `.bench/last.json` too. See the `usage` text below for the options.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import tls from 'node:tls';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as tar from 'tar';
import type { DeviceProductState, PackageManifest, RepositoryPackage, TaskProgress } from '@garrison/protocol';
import { pinnedFetch, type FetchLike } from '@garrison/protocol/tls';
import type { DatabaseConfig } from '../src/storage/database.ts';
import { runBaseline, type BaselineResult } from './baseline.ts';
import {
  emptyStatus,
  now,
  quantile,
  sleep,
  sortedFloat64,
  withTimeout,
  type FromServer,
  type FromWorker,
  type Mem,
  type OpStat,
  type ProfileSummary,
  type ServerStats,
  type Stall,
  type ToServer,
  type ToWorker,
  type WorkerStatus,
  type DeployCollected,
} from './shared.ts';

// `--server-tasks`: the server-task benchmark, a mode of its own (server-tasks.ts).
if (process.argv.includes('--server-tasks')) process.exit(await (await import('./server-tasks.ts')).main());
// `--console`: the console's pages in Chromium with a fleet of simulated agents (console-pages.ts).
if (process.argv.includes('--console')) process.exit(await (await import('./console-pages.ts')).main());
// `--instances K`: several server instances on one PostgreSQL database, with a scaling curve (instances.ts).
if (process.argv.includes('--instances')) process.exit(await (await import('./instances.ts')).main());

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../../..');

const TARGET_AGENTS = 10_000;
const TARGET_RUN_NOW_MS = 5_000;
const TARGET_BYTES_PER_AGENT = 50 * 1024;

const usage = `usage: npm run bench -- [options]
  --agents N            simulated agents (default 10000)
  --workers W           agent worker processes (default: one per 10,000 agents, at least 2)
  --pg URL              run the server on PostgreSQL (default: GARRISON_BENCH_PG_URL, else SQLite)
  --tls-groups LIST     the server's key-exchange groups (the server's --tls-groups; default Node's, X25519MLKEM768 first)
  --http                the server on plain HTTP (tls: false) instead of HTTPS with its own CA,
                        to show what TLS costs
  --checkin-seconds S   length of the check-in phase (default 5)
  --window K            check-ins in flight per worker (default 64)
  --addresses A         loopback source addresses, in a random block of 127/8 (default: one per 1,000 agents, at least 4)
  --package-kb N        payload of the deployed package, KB of random bytes (default 256)
  --download-window D   package downloads in flight per worker (default 32)
  --cpu-prof            profile the server process in each phase: .bench/server-<phase>.cpuprofile,
                        and the hottest code in the report (the sampling slows the server a little)
  --strict              exit 2 when a target is missed
  --keep                keep the temporary data folder`;

// ---------------------------------------------------------------------------------------------
// Options and conditions

const { values: opts } = parseArgs({
  options: {
    agents: { type: 'string' },
    workers: { type: 'string' },
    pg: { type: 'string' },
    http: { type: 'boolean' },
    'tls-groups': { type: 'string' },
    'checkin-seconds': { type: 'string' },
    window: { type: 'string' },
    addresses: { type: 'string' },
    'package-kb': { type: 'string' },
    'download-window': { type: 'string' },
    'cpu-prof': { type: 'boolean' },
    strict: { type: 'boolean' },
    keep: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
if (opts.help) {
  console.log(usage);
  process.exit(0);
}
function intOption(name: string, value: string | undefined, dflt: number, min: number): number {
  if (value === undefined) return dflt;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be an integer ≥ ${min}\n\n${usage}`);
    process.exit(1);
  }
  return n;
}
const N = intOption('agents', opts.agents, TARGET_AGENTS, 1);
const W = Math.min(N, intOption('workers', opts.workers, Math.max(2, Math.ceil(N / 10_000)), 1));
const CHECKIN_MS = intOption('checkin-seconds', opts['checkin-seconds'], 5, 1) * 1000;
const WINDOW = intOption('window', opts.window, 64, 1);
const A = intOption('addresses', opts.addresses, Math.max(4, Math.ceil(N / 1000)), 1);
const PG_URL = opts.pg ?? process.env.GARRISON_BENCH_PG_URL;
const PACKAGE_KB = intOption('package-kb', opts['package-kb'], 256, 0);
const DOWNLOAD_WINDOW = intOption('download-window', opts['download-window'], 32, 1);
const DEPLOY_PRODUCT = 'bench-app';
/** HTTPS with the server's own CA (the server's default), or plain HTTP (--http). */
const TLS = !opts.http;
if (opts['tls-groups']) process.env.GARRISON_TLS_GROUPS = opts['tls-groups'];
/**
 * Source addresses: a few hundred to a thousand sockets each, because bind() to an address
 * with port 0 searches its ports linearly, and gets slow (CPU in the worker's kernel time) as
 * the address fills up. The block of 127/8 is chosen at random per run, so that the previous
 * run's sockets in TIME_WAIT (60 s) are on other addresses. On Linux all of 127/8 is local.
 */
function sourceAddresses(count: number): string[] {
  if (os.platform() !== 'linux') return ['127.0.0.1'];
  const out: string[] = [];
  let ip = (127 << 24) + ((16 + Math.floor(Math.random() * 200)) << 16) + (Math.floor(Math.random() * 256) << 8) + 1;
  while (out.length < count) {
    ip++;
    const last = ip & 255;
    if (last === 0 || last === 255) continue;
    out.push([ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, last].join('.'));
  }
  return out;
}
const ADDRESSES = sourceAddresses(A);

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : String(n));
const ms = (n: number) => `${fmt(n)} ms`;
const kb = (bytes: number) => `${fmt(bytes / 1024, 1)} KB`;
const mb = (bytes: number) => `${fmt(bytes / 1024 / 1024, 1)} MB`;
const log = (msg: string) => process.stderr.write(`[bench +${((now() - T_START) / 1000).toFixed(1)}s] ${msg}\n`);
const T_START = now();

// ---------------------------------------------------------------------------------------------
// Children and cleanup: whatever happens, children are killed and the temp folder removed.

const children = new Set<ChildProcess>();
const tempDirs: string[] = [];
let shuttingDown = false;
const serverLog: string[] = [];
let serverLogLines = 0;
let pgSchema: string | null = null;

function killChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
function removeTemp(): void {
  if (opts.keep) {
    for (const d of tempDirs) process.stderr.write(`kept ${d}\n`);
    return;
  }
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
}
process.on('exit', () => {
  killChildren();
  removeTemp();
});
class FatalError extends Error {}
let failing = false;
/** Stops the benchmark: prints why, kills the children, removes the temp folder (at exit), exits 1. */
function fatal(message: string): never {
  if (failing) throw new FatalError(message);
  failing = true;
  shuttingDown = true;
  process.stderr.write(`\nbench FAILED: ${message}\n`);
  if (serverLog.length) process.stderr.write(`--- last lines of the server log (${serverLogLines} lines in all) ---\n${serverLog.join('\n')}\n`);
  killChildren();
  void dropPgSchema().finally(() => process.exit(1));
  setTimeout(() => process.exit(1), 3000).unref();
  throw new FatalError(message);
}
// fatal() may be called from an event handler: its exception is expected there.
process.on('uncaughtException', (err) => {
  if (err instanceof FatalError) return;
  try {
    fatal(err.stack ?? String(err));
  } catch {
    /* exiting */
  }
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    shuttingDown = true;
    process.stderr.write(`\nbench interrupted (${sig})\n`);
    killChildren();
    process.exit(130);
  });
}
// Nothing may hang: the whole run has a deadline too.
// The deployment rounds get more: two rounds of N downloads, at a pessimistic 20 MB/s.
const WATCHDOG_MS = 10 * 60_000 + N * 30 + 2 * (N * PACKAGE_KB * 1024) / (20 * 1024 * 1024) * 1000;
const watchdog = setTimeout(() => fatal(`the whole run took more than ${fmt(WATCHDOG_MS / 1000)} s`), WATCHDOG_MS);

async function dropPgSchema(): Promise<void> {
  if (!PG_URL || !pgSchema) return;
  const schema = pgSchema;
  pgSchema = null;
  try {
    const pg = (await import('pg')).default;
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`drop schema if exists ${schema} cascade`);
    await client.end();
  } catch (err) {
    process.stderr.write(`could not drop the PostgreSQL schema ${schema}: ${(err as Error).message}\n`);
  }
}

/** A child process with request/response over IPC (each request carries a seq). */
class Child<To extends { seq: number }, From extends { ev: string }> {
  readonly proc: ChildProcess;
  readonly name: string;
  #seq = 1;
  #waiting = new Map<number, (m: From) => void>();
  #listeners: ((m: From) => void)[] = [];
  /** Set before asking the child to exit. */
  exiting = false;
  constructor(name: string, proc: ChildProcess) {
    this.name = name;
    this.proc = proc;
    children.add(proc);
    proc.on('message', (m: From) => {
      const seq = (m as { seq?: number }).seq;
      if (m.ev === 'failed') fatal(`${name}: ${(m as unknown as { message: string }).message}`);
      if (seq !== undefined && this.#waiting.has(seq)) {
        const resolve = this.#waiting.get(seq)!;
        this.#waiting.delete(seq);
        resolve(m);
      } else for (const l of this.#listeners) l(m);
    });
    proc.on('exit', (code, signal) => {
      children.delete(proc);
      if (!shuttingDown && !this.exiting) fatal(`${name} exited unexpectedly (${signal ?? `code ${code}`})`);
    });
  }
  on(listener: (m: From) => void): void {
    this.#listeners.push(listener);
  }
  /** Sends a command and resolves with the reply of the same seq. */
  ask<E extends From['ev']>(msg: DistributiveOmit<To, 'seq'>, timeoutMs: number, what: string): Promise<Extract<From, { ev: E }>> {
    const seq = this.#seq++;
    const p = new Promise<From>((resolve) => this.#waiting.set(seq, resolve));
    this.proc.send({ ...msg, seq } as unknown as To);
    return withTimeout(p, timeoutMs, `${this.name}: ${what}`) as Promise<Extract<From, { ev: E }>>;
  }
  /** The first unsolicited message of this kind. */
  next<E extends From['ev']>(ev: E, timeoutMs: number, what: string): Promise<Extract<From, { ev: E }>> {
    return withTimeout(
      new Promise((resolve) => {
        const l = (m: From) => {
          if (m.ev === ev) {
            this.#listeners = this.#listeners.filter((x) => x !== l);
            resolve(m as Extract<From, { ev: E }>);
          }
        };
        this.#listeners.push(l);
      }),
      timeoutMs,
      `${this.name}: ${what}`,
    );
  }
}
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type ServerChild = Child<ToServer, FromServer>;
type WorkerChild = Child<ToWorker, FromWorker>;

// ---------------------------------------------------------------------------------------------
// Preconditions: file descriptors and ephemeral ports

function limits(): { soft: number; hard: number } {
  try {
    const out = execFileSync('/bin/sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' }).trim().split('\n');
    const parse = (s: string | undefined) => (s === 'unlimited' ? Number.POSITIVE_INFINITY : Number(s));
    return { soft: parse(out[0]), hard: parse(out[1]) };
  } catch {
    return { soft: Number.NaN, hard: Number.NaN };
  }
}
function portRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return [lo!, hi!];
  } catch {
    return [49152, 65535];
  }
}
const fds = limits();
// Node raises its soft limit to the hard limit at start, so every Node child can use the hard limit.
const usableFds = Math.max(fds.soft, fds.hard);
const serverFdsNeeded = N + 512;
const workerFdsNeeded = Math.ceil(N / W) + 512;
if (Number.isFinite(usableFds) && (usableFds < serverFdsNeeded || usableFds < workerFdsNeeded)) {
  console.error(
    `bench: the open-file limit is too low for ${fmt(N)} agents.\n` +
      `  ulimit -n: soft ${fds.soft}, hard ${fds.hard}. The server process holds one descriptor per agent (needs ≥ ${fmt(serverFdsNeeded)}),\n` +
      `  each of the ${W} worker processes one per agent it simulates (needs ≥ ${fmt(workerFdsNeeded)}).\n` +
      `  Raise the hard limit (e.g. \`ulimit -Hn 1048576\` as root, /etc/security/limits.conf, or docker --ulimit nofile=1048576),\n` +
      `  or run fewer agents: npm run bench -- --agents ${Math.max(1, Math.floor((usableFds - 512) / 1000) * 1000)}`,
  );
  process.exit(1);
}
const [portLo, portHi] = portRange();
const perAddress = Math.ceil(N / ADDRESSES.length);
if (perAddress > portHi - portLo - 1000) {
  console.error(`bench: ${fmt(perAddress)} agents per source address exceed the ephemeral port range ${portLo}-${portHi}; use --addresses ${Math.ceil(N / ((portHi - portLo) / 2))}`);
  process.exit(1);
}

// ---------------------------------------------------------------------------------------------
// The server process and the admin API

const tmp = mkdtempSync(path.join(os.tmpdir(), 'garrison-bench-'));
tempDirs.push(tmp);
const profDir = path.join(ROOT, '.bench');
const dataDir = path.join(tmp, 'server');
const secretKey = randomBytes(32).toString('base64');

function databaseConfig(): DatabaseConfig {
  mkdirSync(dataDir, { recursive: true });
  if (PG_URL) {
    pgSchema = `bench_${randomBytes(5).toString('hex')}`;
    return { kind: 'postgres', url: PG_URL, schema: pgSchema };
  }
  return { kind: 'sqlite', file: path.join(dataDir, 'garrison.db') };
}

interface StartedServer {
  server: ServerChild;
  url: string;
  adminToken: string;
  /** The CA the agents (and this process) trust; null on plain HTTP. */
  caPem: string | null;
  caFingerprint: string | null;
}
async function startServerProcess(database: DatabaseConfig): Promise<StartedServer> {
  const execArgv = ['--expose-gc'];
  const proc = spawn(process.execPath, [...execArgv, path.join(HERE, 'server-process.ts'), dataDir, JSON.stringify(database), TLS ? 'tls' : 'http'], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    serialization: 'advanced',
    env: { ...process.env, GARRISON_SECRET_KEY: secretKey },
  });
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      serverLogLines++;
      serverLog.push(line.length > 400 ? line.slice(0, 400) + '…' : line);
      if (serverLog.length > 30) serverLog.shift();
    }
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const server: ServerChild = new Child('server process', proc);
  const ready = await server.next('ready', 60_000, 'start');
  if (TLS !== (ready.caPem !== null) || TLS !== ready.url.startsWith('https:')) fatal(`expected the server on ${TLS ? 'HTTPS with a CA' : 'plain HTTP'}, got ${ready.url}${ready.caPem ? ' with a CA' : ''}`);
  return { server, url: ready.url, adminToken: ready.adminToken, caPem: ready.caPem, caFingerprint: ready.caFingerprint };
}

/** One TLS connection trusting only the CA: what the agents negotiate, and the server's key. */
async function tlsProbe(url: string, caPem: string): Promise<{ protocol: string; cipher: string; group: string; key: string }> {
  const u = new URL(url);
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = tls.connect({ host: u.hostname, port: Number(u.port), ca: caPem, servername: u.hostname.match(/^[\d.]+$/) ? undefined : u.hostname }, () => {
        const cert = socket.getPeerCertificate();
        const eph = socket.getEphemeralKeyInfo();
        const r = {
          protocol: socket.getProtocol() ?? '?',
          cipher: socket.getCipher()?.standardName ?? '?',
          group: eph && 'name' in eph && eph.name ? String(eph.name) : eph && 'type' in eph ? String(eph.type) : '?',
          key: cert.asn1Curve ? `ECDSA ${cert.nistCurve ?? cert.asn1Curve}` : cert.bits ? `RSA ${cert.bits}` : '?',
        };
        socket.end();
        resolve(r);
      });
      socket.on('error', reject);
    }),
    10_000,
    'a TLS connection to the server',
  );
}
async function stopServerProcess(server: ServerChild): Promise<void> {
  server.exiting = true;
  const exited = new Promise<void>((resolve) => server.proc.once('exit', () => resolve()));
  await server.ask<'closed'>({ cmd: 'close' }, 30_000, 'close').catch(() => server.proc.kill('SIGKILL'));
  await withTimeout(exited, 10_000, 'the server process to exit').catch(() => server.proc.kill('SIGKILL'));
}

/** This process's fetch: trusting only the server's CA, as the CLI does (plain fetch with --http). */
let benchFetch: FetchLike = pinnedFetch(null);

function makeApi(url: string, token: string) {
  return async function api<T>(method: string, p: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
    const res = await benchFetch(url + p, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status} ${text.slice(0, 500)}`);
    return (text ? JSON.parse(text) : null) as T;
  };
}

async function serverMem(server: ServerChild): Promise<Mem> {
  return (await server.ask<'mem'>({ cmd: 'mem', gc: true }, 30_000, 'memory')).mem;
}
async function serverStats(server: ServerChild, reset = true): Promise<ServerStats> {
  return (await server.ask<'stats'>({ cmd: 'stats', reset }, 30_000, 'statistics')).stats;
}
async function workerCpu(workers: WorkerChild[], reset = true): Promise<{ cpuMs: number; wallMs: number; elu: number }[]> {
  return Promise.all(workers.map(async (w) => (await w.ask<'stats'>({ cmd: 'stats', reset }, 30_000, 'statistics')) as { cpuMs: number; wallMs: number; elu: number }));
}
async function statuses(workers: WorkerChild[]): Promise<WorkerStatus> {
  const all = await Promise.all(workers.map((w) => w.ask<'status'>({ cmd: 'status' }, 30_000, 'status')));
  const sum: WorkerStatus = emptyStatus();
  for (const { status: s } of all) {
    for (const k of Object.keys(sum) as (keyof WorkerStatus)[]) if (k !== 'lastError') (sum[k] as number) += s[k] as number;
    sum.lastError ||= s.lastError;
  }
  return sum;
}

/**
 * Waits until the server's background writes (batched check-ins, events) are done: no
 * database call under way and no instrumented call at all for `quietMs`. Returns how long the
 * writes went on, so that each phase is measured from a quiet server and charged its own tail.
 */
async function settle(server: ServerChild, what: string, quietMs = 300, timeoutMs = 120_000): Promise<number> {
  const start = now();
  let lastCalls = -1;
  let quietSince = start;
  for (;;) {
    const s = await serverStats(server, false);
    const t = now();
    if (s.totalCalls !== lastCalls || s.dbInFlight > 0) {
      lastCalls = s.totalCalls;
      quietSince = t;
    } else if (t - quietSince >= quietMs) return quietSince - start;
    if (t - start > timeoutMs) fatal(`the server's background writes after ${what} did not finish within ${fmt(timeoutMs / 1000)} s`);
    await sleep(25);
  }
}

const PROFILE = !!opts['cpu-prof'];
const profiles: Record<string, ProfileSummary> = {};
async function profileStart(server: ServerChild): Promise<void> {
  if (PROFILE) await server.ask<'profile'>({ cmd: 'profile-start' }, 30_000, 'profile start');
}
async function profileStop(server: ServerChild, phase: string): Promise<void> {
  if (!PROFILE) return;
  mkdirSync(profDir, { recursive: true });
  const r = await server.ask<'profile'>({ cmd: 'profile-stop', file: path.join(profDir, `server-${phase}.cpuprofile`) }, 120_000, 'profile');
  if (r.summary) profiles[phase] = r.summary;
}

/** Splits n into `parts` nearly equal slices. */
function slices(n: number, parts: number): { first: number; count: number }[] {
  const out: { first: number; count: number }[] = [];
  let first = 0;
  for (let i = 0; i < parts; i++) {
    const count = Math.floor(n / parts) + (i < n % parts ? 1 : 0);
    out.push({ first, count });
    first += count;
  }
  return out;
}

interface PhaseCost {
  serverCpuMs: number;
  serverWallMs: number;
  serverElu: number;
  serverMaxLoopDelayMs: number;
  workersCpuMs: number;
  /** CPU the machine spent on other processes meanwhile (other work disturbs the figures). */
  otherCpuMs: number;
  ops: Record<string, OpStat>;
  stalls: Stall[];
  /** When the phase's measured action began (stall times are shown from there). */
  startedAt: number;
}
/** CPU time the whole machine spent busy so far (Linux /proc/stat), ms; NaN elsewhere. */
function machineBusyMs(): number {
  try {
    // cpu  user nice system idle iowait irq softirq steal …, in USER_HZ (100 per second)
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const busy = f[0]! + f[1]! + f[2]! + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
    return busy * 10;
  } catch {
    return Number.NaN;
  }
}
let machineMark = machineBusyMs();
let ownMark = process.cpuUsage();
/** Starts the next phase's accounting: server, workers, this process and the machine. */
async function beginPhase(server: ServerChild, workers: WorkerChild[]): Promise<void> {
  await serverStats(server);
  await workerCpu(workers);
  machineMark = machineBusyMs();
  ownMark = process.cpuUsage();
}
/** Ends a phase: what the server, the workers and the other processes of the machine spent. */
async function endPhase(server: ServerChild, workers: WorkerChild[], startedAt: number): Promise<PhaseCost & { online: number }> {
  const s = await serverStats(server);
  const w = await workerCpu(workers);
  const machine = machineBusyMs() - machineMark;
  const own = process.cpuUsage(ownMark);
  const cost = phaseCost(s, w, startedAt);
  cost.otherCpuMs = Math.max(0, machine - cost.serverCpuMs - cost.workersCpuMs - (own.user + own.system) / 1000);
  machineMark = machineBusyMs();
  ownMark = process.cpuUsage();
  return { ...cost, online: s.online };
}

function phaseCost(s: ServerStats, w: { cpuMs: number }[], startedAt: number): PhaseCost {
  return {
    otherCpuMs: Number.NaN,
    serverCpuMs: s.cpuMs,
    serverWallMs: s.wallMs,
    serverElu: s.elu,
    serverMaxLoopDelayMs: s.maxLoopDelayMs,
    workersCpuMs: w.reduce((a, b) => a + b.cpuMs, 0),
    ops: s.ops,
    stalls: s.stalls,
    startedAt,
  };
}

// ---------------------------------------------------------------------------------------------
// Deployment: a real package archive, checked in through the admin API

interface ComplianceAnswer {
  summary: { product: string; states: Record<string, number>; versions: Record<string, number> }[];
  devices: (DeviceProductState & { deviceName: string })[];
}

/** A real package archive (.tar.gz): the manifest and PACKAGE_KB KB of random bytes, which gzip cannot shrink. */
async function buildPackage(dir: string, version: string): Promise<Buffer> {
  const stage = path.join(dir, `stage-${version}`);
  mkdirSync(stage, { recursive: true });
  const manifest: PackageManifest = {
    product: DEPLOY_PRODUCT,
    name: 'Benchmark application',
    version,
    kind: 'application',
    platforms: ['any'],
    // Never run: the simulated agents verify the package and extract nothing.
    commands: { install: { shell: 'sh', command: 'true' } },
  };
  writeFileSync(path.join(stage, 'garrison-package.json'), JSON.stringify(manifest));
  writeFileSync(path.join(stage, 'payload.bin'), randomBytes(PACKAGE_KB * 1024));
  const file = path.join(dir, `${DEPLOY_PRODUCT}-${version}.tgz`);
  await tar.c({ gzip: true, file, cwd: stage }, ['.']);
  return readFileSync(file);
}

/** POST /api/v1/repository/packages with the archive as the body: into the current branch. */
async function checkInPackage(url: string, token: string, archive: Buffer): Promise<RepositoryPackage> {
  const res = await benchFetch(`${url}/api/v1/repository/packages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/gzip' },
    body: archive,
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`POST /api/v1/repository/packages: HTTP ${res.status} ${text.slice(0, 500)}`);
  return JSON.parse(text) as RepositoryPackage;
}

interface DeployRound {
  version: string;
  trigger: string;
  packageId: string;
  archiveBytes: number;
  /** The API call that started the clock. */
  apiMs: number;
  /** From the API call: the install step reached the agent (check-in result), downloaded + verified, "installed" acked, new inventory checked in. */
  stepMs: { p50: number; p95: number; p100: number };
  verifiedMs: { p50: number; p95: number; p100: number };
  installedAckedMs: { p50: number; p95: number; p100: number };
  checkedInMs: { p50: number; p95: number; p100: number };
  /** The first compliance answer showing every device compliant at the version. */
  allCompliantMs: number;
  compliancePolls: number;
  compliancePollMs: { avg: number; max: number };
  bytes: number;
  downloads: number;
  /** Bytes over the time from the first download request to the last verified archive. */
  downloadBytesPerSecond: number;
  downloadWindowMs: number;
  /** Per download, from its request to the verified archive (queueing in the worker excluded). */
  downloadLatencyMs: { p50: number; p99: number; max: number };
  repeatedSteps: number;
  stepsAfterInstall: number;
  lastSummary: ComplianceAnswer['summary'][number] | undefined;
  cost: PhaseCost & { online: number };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const conditions = {
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memory: os.totalmem(),
    database: PG_URL ? 'postgresql' : 'sqlite',
    transport: TLS ? 'https' : 'http',
    agents: N,
    workerProcesses: W,
    sourceAddresses: ADDRESSES,
    openFileLimit: { soft: fds.soft, hard: fds.hard },
    checkInSeconds: CHECKIN_MS / 1000,
    checkInWindowPerWorker: WINDOW,
    packagePayloadKb: PACKAGE_KB,
    downloadWindowPerWorker: DOWNLOAD_WINDOW,
    loadAverageAtStart: os.loadavg(),
  };
  log(`${fmt(N)} agents, ${W} worker processes, ${conditions.database}, ${TLS ? 'HTTPS (the server\'s own CA, pinned)' : 'plain HTTP (--http)'}, source addresses ${ADDRESSES[0]}…${ADDRESSES.at(-1)}`);

  // 1. Server (for setup)
  const database = databaseConfig();
  const setupServer = await startServerProcess(database);
  benchFetch = pinnedFetch(setupServer.caPem);
  const setupApi = makeApi(setupServer.url, setupServer.adminToken);
  log(`server at ${setupServer.url}`);

  // 2. Workers
  const workers: WorkerChild[] = [];
  for (let i = 0; i < W; i++) {
    const proc = spawn(process.execPath, [path.join(HERE, 'agent-worker.ts')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    const w: WorkerChild = new Child(`agent worker ${i + 1}`, proc);
    workers.push(w);
  }
  await Promise.all(workers.map((w) => w.next('hello', 30_000, 'start')));
  let allAckedWorkers = 0;
  let wake: (() => void) | null = null;
  let allDeployedWorkers = 0;
  let allInstalledWorkers = 0;
  for (const w of workers)
    w.on((m) => {
      if (m.ev === 'all-acked') {
        allAckedWorkers++;
        wake?.();
      } else if (m.ev === 'all-installed') {
        allInstalledWorkers++;
        wake?.();
      } else if (m.ev === 'all-deployed') {
        allDeployedWorkers++;
        wake?.();
      }
    });

  // 3. Group, enrolment token, enrolment (setup, not measured)
  const group = await setupApi<{ id: string }>('POST', '/api/v1/groups', { name: `bench ${new Date().toISOString()}` });
  const tok = await setupApi<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId: group.id, maxUses: N, expiresInMinutes: 240, name: 'benchmark' });
  log(`enrolling ${fmt(N)} devices…`);
  const enrolTimeout = 120_000 + N * 20;
  const enrolled = await Promise.all(
    slices(N, W).map((s, i) => workers[i]!.ask<'enrolled'>({ cmd: 'enrol', url: setupServer.url, caPem: setupServer.caPem, token: tok.token, first: s.first, count: s.count, concurrency: 8 }, enrolTimeout, 'enrolment')),
  );
  const enrolOk = enrolled.reduce((a, e) => a + e.ok, 0);
  const enrolMs = Math.max(...enrolled.map((e) => e.ms));
  if (enrolOk !== N) fatal(`only ${enrolOk} of ${N} devices enrolled: ${enrolled.find((e) => e.firstError)?.firstError}`);
  log(`enrolled ${fmt(N)} devices in ${ms(enrolMs)} (${fmt((N / enrolMs) * 1000)}/s)`);
  // The server is restarted after enrolment, so that the memory measured is that of a server
  // which loaded a fleet of N devices, without what enrolment churned through its heap.
  await stopServerProcess(setupServer.server);
  const { server, url, adminToken, caPem, caFingerprint } = await startServerProcess(database);
  // The CA is kept in the data folder: the restarted server has the one the agents enrolled with.
  if (caPem !== setupServer.caPem) fatal('the restarted server has another CA than the one the agents enrolled with');
  benchFetch = pinnedFetch(caPem);
  const api = makeApi(url, adminToken);
  const probe = caPem ? await tlsProbe(url, caPem) : null;
  log(`server restarted at ${url}${probe ? ` (${probe.protocol} ${probe.cipher}, ${probe.group}, ${probe.key})` : ''}`);

  // 4. Connect, and memory before/after
  const memBefore = await serverMem(server);
  await beginPhase(server, workers);
  await profileStart(server);
  log(`connecting ${fmt(N)} agents…`);
  const connectStart = now();
  const connected = await Promise.all(workers.map((w) => w.ask<'connected'>({ cmd: 'connect', wsUrl: url.replace(/^http/, 'ws') + '/agent/v1/ws', caPem, addresses: ADDRESSES, concurrency: 128 }, 60_000 + N * 20, 'connecting')));
  const connectMs = now() - connectStart;
  const connectedOk = connected.reduce((a, c) => a + c.ok, 0);
  if (connectedOk !== N) fatal(`only ${connectedOk} of ${N} agents connected: ${connected.find((c) => c.firstError)?.firstError}`);
  const wsTls = connected.find((c) => c.tls)?.tls ?? null;
  if (TLS !== !!wsTls) fatal(`the agents' WebSockets are ${wsTls ? '' : 'not '}over TLS`);
  const connectTailMs = await settle(server, 'connecting');
  await profileStop(server, 'connect');
  const connectCost = await endPhase(server, workers, connectStart);
  const memAfter = await serverMem(server);
  if (connectCost.online !== N) fatal(`the server counts ${connectCost.online} agents online, expected ${N}`);
  const perAgent = { rss: (memAfter.rss - memBefore.rss) / N, heapUsed: (memAfter.heapUsed - memBefore.heapUsed) / N, external: (memAfter.external - memBefore.external) / N };
  log(`connected ${fmt(N)} in ${ms(connectMs)}; server +${kb(perAgent.rss)} RSS per agent`);

  // 5. Check-ins per second
  await profileStart(server);
  log(`check-ins for ${CHECKIN_MS / 1000} s…`);
  const checkIns = await Promise.all(workers.map((w) => w.ask<'check-ins'>({ cmd: 'check-in', durationMs: CHECKIN_MS, window: WINDOW }, CHECKIN_MS + 60_000, 'check-ins')));
  const ciCount = checkIns.reduce((a, c) => a + c.count, 0);
  const ciErrors = checkIns.reduce((a, c) => a + c.errors, 0);
  const ciElapsed = Math.max(...checkIns.map((c) => c.end)) - Math.min(...checkIns.map((c) => c.start));
  const ciLat = sortedFloat64(checkIns.map((c) => c.latenciesMs));
  const checkInTailMs = await settle(server, 'the check-ins');
  await profileStop(server, 'check-ins');
  const checkInCost = await endPhase(server, workers, Math.min(...checkIns.map((c) => c.start)));
  if (ciErrors) fatal(`${ciErrors} check-ins failed: ${(await statuses(workers)).lastError}`);
  log(`${fmt(ciCount)} check-ins in ${ms(ciElapsed)}: ${fmt((ciCount / ciElapsed) * 1000)}/s`);

  // 6. The task: its creation tells every connected target to sync (check in) now.
  await profileStart(server);
  const syncStart = now();
  const task = await api<{ id: string }>('POST', '/api/v1/tasks', {
    name: 'bench: true',
    type: 'script',
    settings: { command: 'true' },
    schedule: { triggers: [{ type: 'on-demand' }] },
    scope: { type: 'group', groupId: group.id },
  });
  let synced: WorkerStatus;
  let syncMs = Number.NaN;
  for (;;) {
    synced = await statuses(workers);
    if (synced.syncReceived >= N && synced.checkInsOutstanding === 0) {
      syncMs = now() - syncStart;
      break;
    }
    if (now() - syncStart > 3000 && synced.syncReceived === 0) break; // the server did not push sync: nothing to wait for
    if (now() - syncStart > 60_000) fatal(`the sync storm after the task was created did not settle: ${JSON.stringify(synced)}`);
    await sleep(20);
  }
  if (synced.errors) fatal(`agent errors during the sync storm: ${synced.lastError}`);
  const syncTailMs = await settle(server, 'the sync storm');
  await profileStop(server, 'sync-storm');
  const syncCost = await endPhase(server, workers, syncStart);
  log(Number.isNaN(syncMs) ? 'no sync pushed after task creation' : `task created; all ${fmt(N)} agents synced in ${ms(syncMs)}`);

  // 7. Run now → started → all results stored
  await profileStart(server);
  log('run-now…');
  const t0 = now();
  const runNow = await api<{ targets: number; delivered: number }>('POST', `/api/v1/tasks/${task.id}/run`, {}, 60_000);
  const tApi = now();
  if (runNow.targets !== N || runNow.delivered !== N) fatal(`run-now reached ${runNow.delivered} of ${runNow.targets} targets, expected ${N}`);
  let storedAt = Number.NaN;
  let polls = 0;
  let lastProgress: TaskProgress | null = null;
  const deadline = t0 + 60_000 + N * 5;
  // Progress is polled every 250 ms, and at once when the workers have seen every final ack
  // (each ack is sent after its report is committed); storedAt is the first poll answer
  // showing every target succeeded.
  while (Number.isNaN(storedAt)) {
    const p = await api<TaskProgress>('GET', `/api/v1/tasks/${task.id}/progress`, undefined, 30_000);
    polls++;
    lastProgress = p;
    if ((p.states.succeeded ?? 0) >= N) {
      storedAt = now();
      break;
    }
    if (now() > deadline) {
      const st = await statuses(workers);
      fatal(`not every result was stored within ${fmt((deadline - t0) / 1000)} s: progress ${JSON.stringify(p.states)}; agents: ${JSON.stringify(st)}`);
    }
    if (allAckedWorkers < W) {
      await Promise.race([sleep(250), new Promise<void>((r) => (wake = r))]);
      wake = null;
    } else await sleep(20);
  }
  await profileStop(server, 'run-now');
  const runNowCost = await endPhase(server, workers, t0);
  const collected = await Promise.all(workers.map((w) => w.ask<'collected'>({ cmd: 'collect' }, 30_000, 'results')));
  const rel = (a: Float64Array) => a.map((t) => t - t0);
  const started = sortedFloat64(collected.map((c) => rel(c.runNowAt)));
  const finalAcked = sortedFloat64(collected.map((c) => rel(c.finalAckAt)));
  const rejectedReports = collected.reduce((a, c) => a + c.rejected, 0);
  if (rejectedReports) fatal(`${rejectedReports} reports were rejected: ${collected.find((c) => c.firstRejection)?.firstRejection}`);
  if (started.some(Number.isNaN)) fatal(`${started.filter(Number.isNaN).length} agents never received the run-now`);
  const storedMs = storedAt - t0;
  const lastAckMs = finalAcked.at(-1)!;
  log(`run-now: all started in ${ms(started.at(-1)!)}, all results stored in ${ms(storedMs)}`);

  // 8. Deployment: a package assigned to the group, then a newer version checked in. Each
  // round is timed from the API call that starts it until the compliance API shows every
  // device compliant at the new version.
  const pkgDir = path.join(tmp, 'packages');
  const archives = { '1.0.0': await buildPackage(pkgDir, '1.0.0'), '1.0.1': await buildPackage(pkgDir, '1.0.1') };
  const setupCheckInStart = now();
  const pkg1 = await checkInPackage(url, adminToken, archives['1.0.0']);
  const setupCheckInMs = now() - setupCheckInStart;
  await settle(server, 'the check-in of the first package');
  const deployRound = async (version: '1.0.0' | '1.0.1', phaseName: string, trigger: string, start: () => Promise<RepositoryPackage>): Promise<DeployRound> => {
    const archiveBytes = archives[version].length;
    const roundTimeout = 60_000 + N * 10 + ((N * archiveBytes) / (10 * 1024 * 1024)) * 1000;
    await Promise.all(workers.map((w) => w.ask<'deploy-armed'>({ cmd: 'deploy', url, caPem, product: DEPLOY_PRODUCT, version, downloadWindow: DOWNLOAD_WINDOW }, 30_000, 'arm the deployment')));
    allDeployedWorkers = 0;
    allInstalledWorkers = 0;
    await beginPhase(server, workers);
    await profileStart(server);
    log(`deployment of ${DEPLOY_PRODUCT} ${version} (${trigger})…`);
    const t0 = now();
    const pkg = await start();
    const apiMs = now() - t0;
    if (pkg.version !== version || pkg.size !== archiveBytes) fatal(`the repository has ${pkg.product} ${pkg.version} of ${pkg.size} bytes, expected ${version} of ${archiveBytes}`);
    let allCompliantAt = Number.NaN;
    let polls = 0;
    let pollTotal = 0;
    let pollMax = 0;
    let lastSummary: ComplianceAnswer['summary'][number] | undefined;
    let lastLog = t0;
    let lastPoll = 0;
    // Every compliance answer lists every device, so polls cost the server too: the API is
    // polled every 5 s, and every 20 ms once the workers have seen every "installed" report
    // acked (each ack is sent after its report is committed, so not all can be compliant before).
    for (;;) {
      if (Number.isNaN(allCompliantAt) && (allInstalledWorkers >= W || now() - lastPoll >= 5000)) {
        lastPoll = now();
        const p0 = now();
        const c = await api<ComplianceAnswer>('GET', `/api/v1/deployments/compliance?groupId=${encodeURIComponent(group.id)}&product=${DEPLOY_PRODUCT}`, undefined, 60_000);
        const took = now() - p0;
        polls++;
        pollTotal += took;
        pollMax = Math.max(pollMax, took);
        lastSummary = c.summary.find((x) => x.product === DEPLOY_PRODUCT);
        const rows = lastSummary ? Object.values(lastSummary.states).reduce((a, b) => a + b, 0) : 0;
        if (lastSummary && rows === N && lastSummary.states.compliant === N && lastSummary.versions[version] === N) allCompliantAt = now();
      }
      if (!Number.isNaN(allCompliantAt) && allDeployedWorkers >= W) break;
      const st = await statuses(workers);
      if (st.errors) fatal(`agent errors during the deployment of ${version}: ${st.lastError}`);
      const t = now();
      if (t - t0 > 15_000 && st.deployStepsReceived === 0) fatal(`no agent got an install step of ${DEPLOY_PRODUCT} ${version} within 15 s of the ${trigger}: ${JSON.stringify(st)}`);
      if (t - t0 > roundTimeout) fatal(`the deployment of ${version} did not complete within ${fmt(roundTimeout / 1000)} s: compliance ${JSON.stringify(lastSummary)}; agents ${JSON.stringify(st)}`);
      if (t - lastLog > 5000) {
        lastLog = t;
        log(`  ${fmt((t - t0) / 1000, 1)} s: steps ${fmt(st.deployStepsReceived)}, verified ${fmt(st.downloadsVerified)}, installed ${fmt(st.installsAcked)}, checked in ${fmt(st.deployCheckInsDone)} of ${fmt(N)}`);
      }
      if (allInstalledWorkers < W) {
        await Promise.race([sleep(250), new Promise<void>((r) => (wake = r))]);
        wake = null;
      } else await sleep(20);
    }
    const settleMs = await settle(server, `the deployment of ${version}`);
    await profileStop(server, phaseName);
    const cost = await endPhase(server, workers, t0);
    const got = (await Promise.all(workers.map((w) => w.ask<'deploy-collected'>({ cmd: 'collect-deploy' }, 30_000, 'deployment marks')))).map((c) => c.marks);
    const rel = (pick: (m: DeployCollected) => Float64Array) => sortedFloat64(got.map((m) => pick(m).map((t) => t - t0)));
    const step = rel((m) => m.stepAt);
    const verified = rel((m) => m.verifiedAt);
    const installed = rel((m) => m.installedAckAt);
    const checkedIn = rel((m) => m.checkedInAt);
    for (const [what, a] of [['got the install step', step], ['verified the download', verified], ['had "installed" acked', installed], ['checked in after the install', checkedIn]] as const) {
      const missing = a.filter(Number.isNaN).length;
      if (missing) fatal(`${missing} agents never ${what} of ${version}`);
    }
    const latencies = sortedFloat64(got.map((m) => m.verifiedAt.map((v, i) => v - m.downloadStartAt[i]!)));
    const firstRequest = Math.min(...got.map((m) => m.downloadStartAt.reduce((a, b) => Math.min(a, b), Number.POSITIVE_INFINITY)));
    const lastVerified = Math.max(...got.map((m) => m.verifiedAt.reduce((a, b) => Math.max(a, b), 0)));
    const bytes = got.reduce((a, m) => a + m.bytes, 0);
    const downloads = got.reduce((a, m) => a + m.downloads, 0);
    if (downloads !== N || bytes !== N * archiveBytes) fatal(`${fmt(downloads)} downloads of ${fmt(bytes)} bytes, expected ${fmt(N)} of ${fmt(N * archiveBytes)}`);
    const q3 = (a: Float64Array) => ({ p50: quantile(a, 0.5), p95: quantile(a, 0.95), p100: quantile(a, 1) });
    const r: DeployRound = {
      version,
      trigger,
      packageId: pkg.id,
      archiveBytes,
      apiMs,
      stepMs: q3(step),
      verifiedMs: q3(verified),
      installedAckedMs: q3(installed),
      checkedInMs: q3(checkedIn),
      allCompliantMs: allCompliantAt - t0,
      compliancePolls: polls,
      compliancePollMs: { avg: pollTotal / polls, max: pollMax },
      bytes,
      downloads,
      downloadWindowMs: lastVerified - firstRequest,
      downloadBytesPerSecond: (bytes / (lastVerified - firstRequest)) * 1000,
      downloadLatencyMs: { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), max: quantile(latencies, 1) },
      repeatedSteps: got.reduce((a, m) => a + m.repeatedSteps, 0),
      stepsAfterInstall: got.reduce((a, m) => a + m.stepsAfterInstall, 0),
      lastSummary,
      cost,
    };
    log(`${DEPLOY_PRODUCT} ${version}: all verified in ${ms(r.verifiedMs.p100)}, all compliant in ${ms(r.allCompliantMs)} (${mb(bytes)} at ${mb(r.downloadBytesPerSecond)}/s; writes went on ${ms(settleMs)} more)`);
    return r;
  };
  const deploy1 = await deployRound('1.0.0', 'deploy-assign', 'assignment', async () => {
    await api('PUT', `/api/v1/groups/${group.id}/deployments/${DEPLOY_PRODUCT}`, { branch: 'current' });
    return pkg1;
  });
  const deploy2 = await deployRound('1.0.1', 'deploy-update', 'repository check-in', () => checkInPackage(url, adminToken, archives['1.0.1']));
  const endStatus = await statuses(workers);
  const memEnd = await serverMem(server);
  const finalStats = await serverStats(server, false);

  // 9. Shut down, then the baseline on a quiet machine
  shuttingDown = true;
  await Promise.all(workers.map((w) => w.ask<'closed'>({ cmd: 'close' }, 20_000, 'close').catch(() => w.proc.kill('SIGKILL'))));
  await stopServerProcess(server);
  await dropPgSchema();
  log('baseline: raw batched SQLite inserts…');
  // Best of three, each on a fresh file: the baseline is what SQLite can do.
  const baselineRuns: BaselineResult[] = [0, 1, 2].map((i) => runBaseline(path.join(tmp, `baseline-${i}.db`), 2 * N));
  const baseline = baselineRuns.reduce((a, b) => (b.ms < a.ms ? b : a));
  const ingestRatio = storedMs / baseline.ms;
  const applyOp = runNowCost.ops['db: applyReports (ingest transaction)'];
  const dbIngestRatio = applyOp ? applyOp.totalMs / baseline.ms : Number.NaN;

  // ---------------------------------------------------------------------------------------------
  // Report
  const pct = (q: number) => quantile(started, q);
  const targets = {
    connected: { target: `${fmt(TARGET_AGENTS)} connected agents`, value: connectedOk, met: connectedOk >= TARGET_AGENTS, evaluated: N >= TARGET_AGENTS },
    runNow: { target: `run-now → all results stored < ${fmt(TARGET_RUN_NOW_MS / 1000)} s`, value: storedMs, met: storedMs < TARGET_RUN_NOW_MS, evaluated: true },
    memory: { target: `< ${fmt(TARGET_BYTES_PER_AGENT / 1024)} KB server memory per connected agent`, value: perAgent.rss, met: perAgent.rss < TARGET_BYTES_PER_AGENT, evaluated: true },
  };
  const lines: string[] = [];
  const out = (s = '') => lines.push(s);
  const row = (label: string, value: string) => out(`  ${label.padEnd(44)} ${value}`);
  out(`Garrison fleet benchmark — ${new Date().toISOString()}${TLS ? '' : ' — plain HTTP (--http)'}`);
  out();
  const measured = [connectCost, checkInCost, syncCost, runNowCost, deploy1.cost, deploy2.cost];
  const otherCpu = measured.reduce((a, c) => a + (Number.isNaN(c.otherCpuMs) ? 0 : c.otherCpuMs), 0);
  const measuredWall = measured.reduce((a, c) => a + c.serverWallMs, 0);
  const disturbed = otherCpu > 0.15 * measuredWall;
  if (disturbed) {
    out(`WARNING: other processes on this machine used ${ms(otherCpu)} of CPU during the ${ms(measuredWall)} of measured phases`);
    out('         (15% of one core or more): the figures below are disturbed; run again on a quiet machine.');
    out();
  }
  out('Conditions');
  row('Node', conditions.node);
  row('OS', conditions.os);
  row('CPUs', `${conditions.cpus} × ${conditions.cpuModel}`);
  row('memory', mb(conditions.memory));
  row(
    'transport',
    TLS
      ? `HTTPS (the default): ${wsTls!.protocol} ${wsTls!.cipher}, key exchange ${probe!.group}, ${probe!.key} certificate from the server's own CA; agents trust that CA only (fingerprint ${caFingerprint!.slice(0, 16)}…)`
      : 'plain HTTP (--http: tls: false), no TLS',
  );
  row('database', conditions.database === 'sqlite' ? 'SQLite (better-sqlite3, WAL, synchronous=NORMAL)' : `PostgreSQL (${PG_URL?.replace(/\/\/[^@]*@/, '//***@')})`);
  row('agents (each its own device and credential)', fmt(N));
  row('agent worker processes', `${W} (+ 1 server process, + this one)`);
  row('loopback source addresses', `${ADDRESSES.length} (${ADDRESSES[0]} … ${ADDRESSES.at(-1)}, ≤ ${fmt(perAddress)} agents each) → 127.0.0.1`);
  row('open-file limit (soft / hard)', `${fds.soft} / ${fds.hard}`);
  row('package downloads in flight', `≤ ${DOWNLOAD_WINDOW} per worker (≤ ${fmt(DOWNLOAD_WINDOW * W)} in all), each on a new connection from its agent's source address${TLS ? ' (a full TLS handshake each)' : ''}`);
  row('load average at start (1, 5, 15 min)', conditions.loadAverageAtStart.map((x) => x.toFixed(2)).join(', '));
  out();
  out('Setup (not measured)');
  row('enrolment over POST /agent/v1/enrol', `${fmt(N)} in ${ms(enrolMs)} (${fmt((N / enrolMs) * 1000)}/s, 8 in flight per worker)`);
  out();
  out('Connections and memory');
  row('connected agents', `${fmt(connectedOk)} of ${fmt(N)} (server counts ${fmt(connectCost.online)} online)`);
  row('time to connect all', `${ms(connectMs)} (${fmt((N / connectMs) * 1000)} connections/s; event-log writes went on ${ms(connectTailMs)} more)`);
  row('server RSS before → after connect', `${mb(memBefore.rss)} → ${mb(memAfter.rss)} (after GC)`);
  row('server heap used before → after connect', `${mb(memBefore.heapUsed)} → ${mb(memAfter.heapUsed)} (heap total ${mb(memBefore.heapTotal)} → ${mb(memAfter.heapTotal)})`);
  row('server memory per connected agent', `${kb(perAgent.rss)} RSS (heap ${kb(perAgent.heapUsed)}, external ${kb(perAgent.external)})`);
  out();
  out(`Check-ins (WebSocket${TLS ? ' over TLS' : ''}, with inventory)`);
  row('check-ins per second', `${fmt((ciCount / ciElapsed) * 1000)} (${fmt(ciCount)} in ${ms(ciElapsed)}, ${WINDOW} in flight per worker)`);
  row('check-in latency p50 / p99 / max', `${fmt(quantile(ciLat, 0.5), 1)} / ${fmt(quantile(ciLat, 0.99), 1)} / ${fmt(ciLat.at(-1)!, 1)} ms`);
  row('batched check-in writes went on after the last', ms(checkInTailMs));
  if (!Number.isNaN(syncMs)) row('task created → all agents synced (sync storm)', `${ms(syncMs)} (${fmt(synced.syncCheckInsDone)} check-ins; their writes went on ${ms(syncTailMs)} more)`);
  out();
  out(`Run-now to ${fmt(N)} agents (script "true"; agents report running, then succeeded)`);
  row('run-now API call returned', `${ms(tApi - t0)} (delivered ${fmt(runNow.delivered)})`);
  row('started (received run-now): 50%', ms(pct(0.5)));
  row('                              95%', ms(pct(0.95)));
  row('                              99%', ms(pct(0.99)));
  row('                             100%', ms(pct(1)));
  row('reports per run', '1 (the command ends within the agent\'s 250 ms report coalescing: only its result is sent)');
  row('results stored (acked): 50% / 100%', `${ms(quantile(finalAcked, 0.5))} / ${ms(lastAckMs)}`);
  row('all results stored (progress API shows all)', `${ms(storedMs)} (${polls} polls)`);
  row('ingest rate, end to end', `${fmt(((2 * N) / storedMs) * 1000)} reports/s (${fmt(2 * N)} reports)`);
  out();
  out(`Deployment of "${DEPLOY_PRODUCT}" to ${fmt(N)} agents (downloads included)`);
  row('package', `${kb(deploy1.archiveBytes)} archive (.tar.gz: manifest + ${fmt(PACKAGE_KB)} KB of random bytes); checked in (setup) in ${ms(setupCheckInMs)}`);
  row('agents do', `download over ${TLS ? 'HTTPS (CA pinned)' : 'HTTP'}, SHA-256 + Ed25519 check; no extraction; report "installed"; check in`);
  const deploySection = (r: DeployRound, title: string, api: string) => {
    out(`  ${title}`);
    row(`  ${api}`, ms(r.apiMs));
    row('  got the install step: 50 / 95 / 100%', `${ms(r.stepMs.p50)} / ${ms(r.stepMs.p95)} / ${ms(r.stepMs.p100)} (answer to the check-in on sync)`);
    row('  downloaded + verified: 50%', ms(r.verifiedMs.p50));
    row('                         95%', ms(r.verifiedMs.p95));
    row('                        100%', ms(r.verifiedMs.p100));
    row('  "installed" stored (acked): 50 / 95 / 100%', `${ms(r.installedAckedMs.p50)} / ${ms(r.installedAckedMs.p95)} / ${ms(r.installedAckedMs.p100)}`);
    row('  check-in with the new version: 100%', ms(r.checkedInMs.p100));
    row(`  all compliant (compliance API)`, `${ms(r.allCompliantMs)}: ${fmt(N)} devices at ${r.version} (${r.compliancePolls} polls, avg ${ms(r.compliancePollMs.avg)}, max ${ms(r.compliancePollMs.max)})`);
    row('  downloaded', `${mb(r.bytes)} in ${fmt(r.downloads)} downloads`);
    row('  download throughput', `${mb(r.downloadBytesPerSecond)}/s over ${ms(r.downloadWindowMs)} (first request → last verified)`);
    row('  per download p50 / p99 / max', `${fmt(r.downloadLatencyMs.p50, 1)} / ${fmt(r.downloadLatencyMs.p99, 1)} / ${fmt(r.downloadLatencyMs.max, 1)} ms (request → verified)`);
    row('  server CPU', `${ms(r.cost.serverCpuMs)} over ${ms(r.cost.serverWallMs)} (${fmt((r.cost.serverCpuMs / r.cost.serverWallMs) * 100)}% of a core; event loop ${fmt(r.cost.serverElu * 100)}% busy; max stall ${ms(r.cost.serverMaxLoopDelayMs)})`);
    row('  server CPU per agent', `${fmt(r.cost.serverCpuMs / N, 2)} ms (workers ${fmt(r.cost.workersCpuMs / N, 2)} ms)`);
    if (r.repeatedSteps || r.stepsAfterInstall) row('  install steps repeated / after the install', `${fmt(r.repeatedSteps)} / ${fmt(r.stepsAfterInstall)}`);
  };
  deploySection(deploy1, `Round 1: 1.0.0 assigned to the group; clock from the assignment call`, 'PUT …/deployments/:product returned');
  deploySection(deploy2, `Round 2: 1.0.1 checked in; clock from the check-in call (the server nudges the devices)`, 'POST /api/v1/repository/packages returned');
  out();
  out('Baseline (same run): raw batched inserts into SQLite');
  row('rows (runs-table shape, 17 columns, 3 indexes)', `${fmt(baseline.rows)} in ${baseline.transactions} transactions of ≤ ${fmt(baseline.batch)}`);
  row('time (best of 3)', `${ms(baseline.ms)} (${fmt(baseline.rowsPerSecond)} rows/s; runs: ${baselineRuns.map((b) => fmt(b.ms)).join(', ')} ms)`);
  row('ingest ratio (run-now → all stored) / baseline', `${fmt(ingestRatio, 1)}×`);
  row('DB ratio (time in applyReports) / baseline', `${fmt(dbIngestRatio, 1)}×`);
  out();
  out('Where the time goes (server process; ms are wall time to settle; svc: calls include the db: calls they make)');
  const phase = (name: string, c: PhaseCost, profile?: ProfileSummary) => {
    row(
      name,
      `server CPU ${ms(c.serverCpuMs)} over ${ms(c.serverWallMs)} (event loop ${fmt(c.serverElu * 100)}% busy, max stall ${ms(c.serverMaxLoopDelayMs)}); workers CPU ${ms(c.workersCpuMs)}; other processes ${ms(c.otherCpuMs)}`,
    );
    const entries = Object.entries(c.ops).sort((a, b) => b[1].totalMs - a[1].totalMs);
    for (const [op, s] of entries.slice(0, 8)) {
      // Calls that overlap (many waiting at once) have no meaningful total: their latency is shown.
      const overlapping = s.totalMs > c.serverWallMs;
      out(
        `      ${op.padEnd(46)} ${fmt(s.calls).padStart(7)} calls ${fmt(s.rows).padStart(8)} rows ${overlapping ? 'latency'.padStart(10) : `${ms(s.totalMs).padStart(10)} total,`} avg ${fmt(s.totalMs / s.calls, 2)} ms, max ${ms(s.maxMs)}${s.maxRows > 1 ? ` (largest ${fmt(s.maxRows)} rows)` : ''}`,
      );
    }
    for (const st of c.stalls.slice(0, 3)) {
      const top = Object.entries(st.ops)
        .sort((a, b) => b[1].ms - a[1].ms)
        .slice(0, 4)
        // Overlapping calls (acks waiting for their batch) show a count only.
        .map(([op, o]) => `${op.replace(/ \(.*\)$/, '')} ×${fmt(o.calls)}${o.rows > o.calls ? ` (${fmt(o.rows)} rows)` : ''}${o.ms <= st.ms ? ` ${ms(o.ms)}` : ''}`);
      const at = st.start - c.startedAt;
      out(`      stall of ${ms(st.ms)} at ${at < 0 ? '−' : '+'}${ms(Math.abs(at))}: ${top.length ? top.join('; ') : 'no instrumented call ended in it'}`);
    }
    if (profile) {
      const share = (x: number) => `${fmt((x / profile.totalMs) * 100)}%`;
      out(`      CPU profile (${ms(profile.totalMs)} sampled, ${path.relative(ROOT, profile.file)}), self time by origin:`);
      out(`        ${profile.byCategory.map((c) => `${c.name} ${share(c.ms)}`).join(', ')}`);
      out('      hottest functions (self time):');
      for (const f of profile.byFunction.slice(0, 12)) out(`        ${share(f.ms).padStart(4)}  ${f.name}`);
    }
  };
  if (PROFILE) out('  (profiled run: the figures above include the sampling overhead)');
  phase('connect', connectCost, profiles.connect);
  phase('check-ins', checkInCost, profiles['check-ins']);
  if (!Number.isNaN(syncMs)) phase('task creation + sync storm', syncCost, profiles['sync-storm']);
  phase('run-now → all stored', runNowCost, profiles['run-now']);
  phase(`deploy ${deploy1.version}: assign → all compliant`, deploy1.cost, profiles['deploy-assign']);
  phase(`deploy ${deploy2.version}: check-in → all compliant`, deploy2.cost, profiles['deploy-update']);
  row('server peak RSS (whole run)', `${mb(finalStats.maxRssBytes)}; after the run ${mb(memEnd.rss)} (after GC)`);
  row('server log lines (warn and above)', String(serverLogLines));
  row('agent-side errors / unexpected closes', `${endStatus.errors} / ${endStatus.unexpectedCloses}`);
  out();
  out('Targets');
  for (const t of Object.values(targets)) out(`  ${(t.evaluated ? (t.met ? 'MET    ' : 'MISSED ') : 'n/a    ').padEnd(8)} ${t.target}${t.evaluated ? '' : ` (this run has ${fmt(N)} agents)`}`);
  console.log(lines.join('\n'));

  const json = {
    at: new Date().toISOString(),
    conditions,
    setup: { enrolMs, enrolPerSecond: (N / enrolMs) * 1000 },
    tls: TLS ? { ...wsTls, keyExchange: probe?.group, certificateKey: probe?.key, caFingerprint } : null,
    connect: { connected: connectedOk, ms: connectMs, backgroundWritesAfterMs: connectTailMs, perSecond: (N / connectMs) * 1000, serverMemBefore: memBefore, serverMemAfter: memAfter, bytesPerAgent: perAgent },
    checkIns: {
      count: ciCount,
      ms: ciElapsed,
      perSecond: (ciCount / ciElapsed) * 1000,
      latencyMs: { p50: quantile(ciLat, 0.5), p99: quantile(ciLat, 0.99), max: ciLat.at(-1) },
      backgroundWritesAfterMs: checkInTailMs,
      syncStormMs: syncMs,
      syncStormBackgroundWritesAfterMs: syncTailMs,
    },
    runNow: {
      apiMs: tApi - t0,
      startedMs: { p50: pct(0.5), p95: pct(0.95), p99: pct(0.99), p100: pct(1) },
      resultsAckedMs: { p50: quantile(finalAcked, 0.5), p100: lastAckMs },
      allResultsStoredMs: storedMs,
      progressPolls: polls,
      lastProgress,
    },
    deployment: {
      product: DEPLOY_PRODUCT,
      packagePayloadKb: PACKAGE_KB,
      archiveBytes: deploy1.archiveBytes,
      downloadWindowPerWorker: DOWNLOAD_WINDOW,
      setupCheckInMs,
      rounds: [deploy1, deploy2].map(({ cost: _cost, ...r }) => r),
    },
    baseline,
    baselineRunsMs: baselineRuns.map((b) => b.ms),
    ingestRatio,
    dbIngestRatio,
    phases: { connect: connectCost, checkIns: checkInCost, syncStorm: syncCost, runNow: runNowCost, deployAssign: deploy1.cost, deployUpdate: deploy2.cost },
    serverPeakRss: finalStats.maxRssBytes,
    otherProcessesCpuMs: otherCpu,
    disturbed,
    ...(PROFILE ? { profiles } : {}),
    targets,
  };
  mkdirSync(profDir, { recursive: true });
  writeFileSync(path.join(profDir, 'last.json'), JSON.stringify(json, null, 2) + '\n');
  log(`figures written to ${path.relative(process.cwd(), path.join(profDir, 'last.json')) || '.bench/last.json'}`);
  clearTimeout(watchdog);
  const missed = Object.values(targets).some((t) => t.evaluated && !t.met);
  process.exit(opts.strict && missed ? 2 : 0);
}

main().catch((err: unknown) => {
  if (err instanceof FatalError) return;
  try {
    fatal((err as Error).message ?? String(err));
  } catch {
    /* exiting */
  }
});
