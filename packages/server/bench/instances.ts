/**
 * The fleet benchmark on several server instances sharing one PostgreSQL database
 * (`npm run bench -- --instances K --pg URL [--curve 10000,25000,50000,100000]`), ADR 0019.
 *
 * For each size of the curve, from scratch (a fresh schema, fresh processes): K server
 * processes (server-process.ts) on the same database config. The first creates its data folder,
 * keys and schema; the others join with their own data folder and the same secret-store key
 * (GARRISON_SECRET_KEY), so they take the signing key, CA and TLS key from the database and
 * present the same CA (checked). The agents are assigned round-robin to the instances: agent i
 * enrols through and connects straight to instance i mod K (no load balancer). Then:
 *
 * 1. connect: time, presence (until every instance counts all agents online), and server
 *    memory per agent: the sum over instances of RSS and heap after GC, divided by the agents
 *    (and the growth from connecting, comparable to the single-instance report);
 * 2. check-ins per second (closed loop, `--window` in flight per worker);
 * 3. a task created through instance 0: the sync storm on every instance's agents;
 * 4. run-now through instance 0 to all agents: 50/95/99/100% started (on instance 0 and on the
 *    others, which get it through the bus once all runs are stored), all results stored (the
 *    progress API), and its ratio to the bare-ingest baseline (baseline.ts) as the single
 *    report has it;
 * 5. failover: a second task, a run-now of a command that takes `--run-ms`; once every agent of
 *    the last instance (which no API call goes to) received it, that instance is SIGKILLed. Its
 *    agents reconnect to the others (agent-worker.ts: the real transport's timing, each agent's
 *    list rotated so that they spread), check in and resend their spool. Measured from the kill:
 *    back online elsewhere (50/95/100%), every instance counting them again, every spool drained
 *    and every result stored (nothing lost).
 * 6. the transport floor (transport-floor.ts, `--no-floor` skips it): once the size's processes
 *    have exited, the run-now's message pattern between K bare TLS + ws servers and W bare
 *    clients (JSON only, no application logic), and "run-now stored / floor".
 *
 * The report is printed per size as soon as it is done, then the curve; figures go to
 * `.bench/instances-last.json`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { TaskProgress } from '@garrison/protocol';
import { pinnedFetch, type FetchLike } from '@garrison/protocol/tls';
import type { DatabaseConfig } from '../src/storage/database.ts';
import { runBaseline, type BaselineResult } from './baseline.ts';
import { runTransportFloor, type TransportFloorResult } from './transport-floor.ts';
import { postgresCpuMs } from './server-tasks.ts';
import {
  fileLimits,
  machineBusyMs,
  now,
  quantile,
  slices,
  sourceAddresses,
  sleep,
  sortedFloat64,
  withTimeout,
  IpcChild,
  type FailoverCollected,
  type FromServer,
  type FromWorker,
  type InstanceStatus,
  type Mem,
  type ServerStats,
  type ToServer,
  type ToWorker,
  type WorkerStatus,
} from './shared.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../../..');
const DEFAULT_CURVE = [10_000, 25_000, 50_000, 100_000];
/** Agents per worker process by default: each holds one socket per agent, under the 20,000-file limit. */
const PER_WORKER = 15_000;

const usage = `usage: npm run bench -- --instances K --pg URL [options]
  --instances K        server processes on the one PostgreSQL database (≥ 2)
  --pg URL             the database (default GARRISON_BENCH_PG_URL); required
  --curve N1,N2,…      fleet sizes, each run from scratch (default ${DEFAULT_CURVE.join(',')}, less the
                       sizes the open-file limit cannot hold with one instance lost)
  --agents N           one size (same as --curve N)
  --workers W          agent worker processes (default: one per ${PER_WORKER.toLocaleString('en-US')} agents, at least 2)
  --checkin-seconds S  length of the check-in phase (default 5)
  --window K           check-ins in flight per worker (default 64)
  --run-ms MS          how long the failover run-now's command runs on each agent (default 2000)
  --tls-groups LIST    the servers' key-exchange groups (the server's --tls-groups; default Node's, X25519MLKEM768 first)
  --http               the servers on plain HTTP (tls: false)
  --cpu-prof           profile instance 0 over the run-now and the failover: .bench/instance0-<phase>.cpuprofile
  --no-floor           skip the transport floor (bare TLS+ws+JSON, the run-now's pattern) after each size
  --keep               keep the temporary folders and the schemas`;

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : String(n));
const ms = (n: number) => `${fmt(n)} ms`;
const kb = (bytes: number) => `${fmt(bytes / 1024, 1)} KB`;
const mb = (bytes: number) => `${fmt(bytes / 1024 / 1024, 1)} MB`;
const T_START = now();
const log = (msg: string) => process.stderr.write(`[bench +${((now() - T_START) / 1000).toFixed(1)}s] ${msg}\n`);

class Failed extends Error {}
/** Every live child, killed if this process is interrupted (they also exit when their IPC channel closes). */
const live = new Set<ChildProcess>();
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.on(sig, () => {
    process.stderr.write(`\nbench interrupted (${sig})\n`);
    for (const c of live) c.kill('SIGKILL');
    process.exit(130);
  });
type Server = IpcChild<ToServer, FromServer>;
type Worker = IpcChild<ToWorker, FromWorker>;

const q = (a: Float64Array, p: number) => quantile(a, p);

interface PhaseCpu {
  wallMs: number;
  /** Sum over the instances. */
  serversCpuMs: number;
  workersCpuMs: number;
  /** The local PostgreSQL's processes (all of them: other users' sessions too). */
  postgresCpuMs: number;
  otherCpuMs: number;
  /** The busiest instance's event loop, and its longest stall. */
  maxElu: number;
  maxStallMs: number;
}

interface SizeResult {
  agents: number;
  instances: number;
  workers: number;
  agentsPerInstance: number[];
  sourceAddresses: number;
  enrolMs: number;
  connect: { ms: number; presenceMs: number; memBefore: Mem[]; memAfter: Mem[]; rssPerAgent: number; heapPerAgent: number; rssGrowthPerAgent: number; heapGrowthPerAgent: number };
  checkIns: { perSecond: number; count: number; ms: number; p50: number; p99: number; max: number };
  syncMs: number;
  runNow: {
    apiMs: number;
    delivered: number;
    started: { p50: number; p95: number; p99: number; p100: number };
    startedAskedP100: number;
    startedOthersP50: number;
    startedOthersP100: number;
    ackedP100: number;
    storedMs: number;
    polls: number;
  };
  /** Null when the survivors could not hold the lost instance's agents (open-file limit): see failoverSkipped. */
  failover: {
    victim: number;
    victimAgents: number;
    runMs: number;
    killAfterRunNowMs: number;
    heldUnacked: number;
    runsInProgressAtKill: number;
    back: { p50: number; p95: number; p100: number };
    allSocketsMs: number;
    serversCountMs: number;
    drainedMs: number;
    storedMs: number;
    spreadOver: Record<string, number>;
    attemptsFailed: number;
    resent: number;
    firstAttemptError: string;
    succeeded: number;
  } | null;
  failoverSkipped: string;
  baseline: BaselineResult;
  baselineRunsMs: number[];
  ingestRatio: number;
  /**
   * The transport floor (transport-floor.ts): the run-now's message pattern on bare servers and
   * clients (TLS + ws + JSON, no application logic), same N, K and W, run once this size's
   * processes are gone. Null when skipped (--no-floor) or failed (floorError).
   */
  floor: TransportFloorResult | null;
  floorError: string;
  /** All results stored (runNow.storedMs) / the floor's time. */
  floorRatio: number;
  phases: Record<string, PhaseCpu>;
  serverLogLines: number;
  agentErrors: number;
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  const { values: opts } = parseArgs({
    args: argv,
    options: {
      instances: { type: 'string' },
      pg: { type: 'string' },
      curve: { type: 'string' },
      agents: { type: 'string' },
      workers: { type: 'string' },
      'checkin-seconds': { type: 'string' },
      window: { type: 'string' },
      'run-ms': { type: 'string' },
      http: { type: 'boolean' },
      'tls-groups': { type: 'string' },
      'no-floor': { type: 'boolean' },
      'cpu-prof': { type: 'boolean' },
      keep: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (opts.help) {
    console.log(usage);
    return 0;
  }
  const int = (name: string, v: string | undefined, dflt: number, min: number): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) {
      console.error(`--${name} must be an integer ≥ ${min}\n\n${usage}`);
      process.exit(1);
    }
    return n;
  };
  const K = int('instances', opts.instances, 2, 2);
  const PG_URL = opts.pg ?? process.env.GARRISON_BENCH_PG_URL;
  if (!PG_URL) {
    console.error(`bench: several instances share one PostgreSQL database: give --pg URL (or GARRISON_BENCH_PG_URL)\n\n${usage}`);
    return 1;
  }
  const CHECKIN_MS = int('checkin-seconds', opts['checkin-seconds'], 5, 1) * 1000;
  const WINDOW = int('window', opts.window, 64, 1);
  const RUN_MS = int('run-ms', opts['run-ms'], 2000, 0);
  const TLS = !opts.http;
  const PROFILE = !!opts['cpu-prof'];
  if (opts['tls-groups']) process.env.GARRISON_TLS_GROUPS = opts['tls-groups'];
  const FLOOR = !opts['no-floor'];
  const fds = fileLimits();
  const usable = Math.max(fds.soft, fds.hard);
  // An instance holds its agents' sockets, and after a failover its share of the lost instance's.
  const fits = (n: number, w: number) => {
    const perInstance = Math.ceil(n / K);
    const afterFailover = perInstance + Math.ceil(perInstance / (K - 1));
    const finite = Number.isFinite(usable);
    return { ok: !finite || (perInstance + 512 <= usable && Math.ceil(n / w) + 512 <= usable), failover: !finite || afterFailover + 512 <= usable, afterFailover };
  };
  const workersFor = (n: number) => Math.min(n, int('workers', opts.workers, Math.max(2, Math.ceil(n / PER_WORKER)), 1));
  let curve: number[];
  if (opts.curve || opts.agents) {
    curve = (opts.curve ?? opts.agents!).split(',').map((s) => int('curve', s.trim(), 0, K));
    for (const n of curve) {
      const f = fits(n, workersFor(n));
      if (!f.ok) {
        console.error(
          `bench: ${fmt(n)} agents on ${K} instances need ${fmt(Math.ceil(n / K) + 512)} open files per server process ` +
            `(the hard limit is ${fds.hard}), and ${fmt(Math.ceil(n / workersFor(n)) + 512)} per worker: use more --instances (or --workers)`,
        );
        return 1;
      }
    }
  } else {
    curve = DEFAULT_CURVE.filter((n) => fits(n, workersFor(n)).failover);
    const skipped = DEFAULT_CURVE.filter((n) => !curve.includes(n));
    if (skipped.length) log(`skipping ${skipped.map((n) => fmt(n)).join(', ')} agents: with ${K} instances a server process would need more than ${fds.hard} open files after a failover`);
  }

  const conditions = {
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memory: os.totalmem(),
    database: PG_URL.replace(/\/\/[^@]*@/, '//***@'),
    transport: TLS ? 'https' : 'http',
    instances: K,
    openFileLimit: fds,
    checkInSeconds: CHECKIN_MS / 1000,
    checkInWindowPerWorker: WINDOW,
    runMs: RUN_MS,
    transportFloor: FLOOR,
    loadAverageAtStart: os.loadavg(),
  };
  log(`${K} instances on ${conditions.database}, curve ${curve.map((n) => fmt(n)).join(', ')} agents, ${TLS ? 'HTTPS' : 'plain HTTP'}`);

  const results: SizeResult[] = [];
  let failure: { agents: number; message: string } | null = null;
  const header = [
    `Garrison fleet benchmark, ${K} instances on one PostgreSQL database — ${new Date().toISOString()}${TLS ? '' : ' — plain HTTP (--http)'}`,
    '',
    'Conditions',
    `  ${'Node'.padEnd(44)} ${conditions.node}`,
    `  ${'OS'.padEnd(44)} ${conditions.os}`,
    `  ${'CPUs'.padEnd(44)} ${conditions.cpus} × ${conditions.cpuModel}`,
    `  ${'memory'.padEnd(44)} ${mb(conditions.memory)}`,
    `  ${'database'.padEnd(44)} PostgreSQL (${conditions.database}), one schema per size, shared by every instance`,
    `  ${'server instances'.padEnd(44)} ${K} processes (server-process.ts), each its own data folder; the first created the keys, the others joined with the secret-store key`,
    `  ${'transport'.padEnd(44)} ${TLS ? "HTTPS, every instance presenting the same CA (checked); agents trust that CA only" : 'plain HTTP'}`,
    `  ${'agents'.padEnd(44)} round-robin: agent i enrols through and connects to instance i mod ${K} (no load balancer)`,
    `  ${'transport floor'.padEnd(44)} ${FLOOR ? `after each size, once its processes have exited: the run-now's messages between ${K} bare ${TLS ? 'HTTPS' : 'HTTP'} servers and the size's worker count of bare clients (transport-floor.ts), best of 3 rounds` : 'skipped (--no-floor)'}`,
    `  ${'open-file limit (soft / hard)'.padEnd(44)} ${fds.soft} / ${fds.hard}`,
    `  ${'load average at start (1, 5, 15 min)'.padEnd(44)} ${conditions.loadAverageAtStart.map((x) => x.toFixed(2)).join(', ')}`,
  ];
  console.log(header.join('\n'));
  for (const n of curve) {
    try {
      const r = await runSize(n);
      results.push(r);
      console.log(sizeReport(r).join('\n'));
    } catch (err) {
      failure = { agents: n, message: err instanceof Error ? err.message : String(err) };
      console.log(`\n${fmt(n)} agents: FAILED — ${failure.message}`);
      break;
    }
  }
  console.log(curveReport(results, failure).join('\n'));
  const profDir = path.join(ROOT, '.bench');
  mkdirSync(profDir, { recursive: true });
  writeFileSync(path.join(profDir, 'instances-last.json'), JSON.stringify({ at: new Date().toISOString(), conditions, curve, results, failure }, null, 2) + '\n');
  log('figures written to .bench/instances-last.json');
  return failure ? 1 : 0;

  // -------------------------------------------------------------------------------------------

  async function runSize(N: number): Promise<SizeResult> {
    const W = workersFor(N);
    const ADDRESSES = sourceAddresses(Math.max(4, Math.ceil(N / 1000)));
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'garrison-bench-instances-'));
    const schema = `bench_${randomBytes(5).toString('hex')}`;
    const database: DatabaseConfig = { kind: 'postgres', url: PG_URL!, schema };
    const secretKey = randomBytes(32).toString('base64');
    const servers: (Server | null)[] = [];
    const workers: Worker[] = [];
    const serverLog: string[] = [];
    let serverLogLines = 0;
    let failed: string | null = null;
    let rejectFailure: (e: Error) => void = () => {};
    const failurePromise = new Promise<never>((_, reject) => (rejectFailure = reject));
    failurePromise.catch(() => {});
    const onFailure = (message: string) => {
      if (failed) return;
      failed = message;
      rejectFailure(new Failed(message + (serverLog.length ? `\n--- last lines of the servers' logs (${serverLogLines} in all) ---\n${serverLog.join('\n')}` : '')));
    };
    /** Every wait of this size also ends when a child fails or exits. */
    const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, failurePromise]);
    const watchdogMs = 10 * 60_000 + N * 40;
    const watchdog = setTimeout(() => onFailure(`the ${fmt(N)}-agent run took more than ${fmt(watchdogMs / 1000)} s`), watchdogMs);
    const fail = (message: string): never => {
      onFailure(message);
      throw new Failed(message);
    };
    let fetchCa: FetchLike = pinnedFetch(null);
    const api = async <T>(url: string, token: string, method: string, p: string, body?: unknown, timeoutMs = 60_000): Promise<T> => {
      const res = await fetchCa(url + p, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status} ${text.slice(0, 500)}`);
      return (text ? JSON.parse(text) : null) as T;
    };

    const startInstance = async (i: number) => {
      const dataDir = path.join(tmp, `instance-${i}`);
      mkdirSync(dataDir, { recursive: true });
      const proc = spawn(process.execPath, ['--expose-gc', path.join(HERE, 'server-process.ts'), dataDir, JSON.stringify(database), TLS ? 'tls' : 'http'], {
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        serialization: 'advanced',
        env: { ...process.env, GARRISON_SECRET_KEY: secretKey },
      });
      const keep = (chunk: Buffer) => {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (!line.trim()) continue;
          serverLogLines++;
          serverLog.push(`[instance ${i}] ${line.length > 400 ? line.slice(0, 400) + '…' : line}`);
          if (serverLog.length > 30) serverLog.shift();
        }
      };
      proc.stdout!.on('data', keep);
      proc.stderr!.on('data', keep);
      const s: Server = new IpcChild(`server instance ${i}`, proc, onFailure, live);
      servers[i] = s;
      const ready = await guard(s.next('ready', 90_000, 'start'));
      return ready;
    };
    const alive = () => servers.filter((s): s is Server => s !== null);
    const stats = (s: Server, reset: boolean) => guard(s.ask<'stats'>({ cmd: 'stats', reset }, 30_000, 'statistics')).then((m) => m.stats);
    // --cpu-prof: instance 0 (the one the API calls go to) is profiled over the run-now and the failover.
    const profile = async (what: 'start' | 'stop', phase = ''): Promise<void> => {
      if (!PROFILE || !servers[0]) return;
      if (what === 'start') await guard(servers[0].ask<'profile'>({ cmd: 'profile-start' }, 30_000, 'profile start'));
      else {
        mkdirSync(path.join(ROOT, '.bench'), { recursive: true });
        await guard(servers[0].ask<'profile'>({ cmd: 'profile-stop', file: path.join(ROOT, '.bench', `instance0-${phase}.cpuprofile`) }, 120_000, 'profile'));
      }
    };
    const mem = (s: Server) => guard(s.ask<'mem'>({ cmd: 'mem', gc: true }, 60_000, 'memory')).then((m) => m.mem);
    const workerStatus = async (): Promise<WorkerStatus> => {
      const all = await guard(Promise.all(workers.map((w) => w.ask<'status'>({ cmd: 'status' }, 30_000, 'status'))));
      const sum = { ...all[0]!.status };
      for (const { status: st } of all.slice(1)) for (const k of Object.keys(sum) as (keyof WorkerStatus)[]) if (k !== 'lastError') (sum[k] as number) += st[k] as number;
      sum.lastError = all.find((a) => a.status.lastError)?.status.lastError ?? '';
      return sum;
    };
    const instanceStatus = async (): Promise<InstanceStatus> => {
      const all = (await guard(Promise.all(workers.map((w) => w.ask<'instance-status'>({ cmd: 'instance-status' }, 30_000, 'instance status'))))).map((m) => m.status);
      const sum: InstanceStatus = { ...all[0]!, open: [...all[0]!.open], runNowReceived: [...all[0]!.runNowReceived] };
      for (const st of all.slice(1)) {
        st.open.forEach((v, i) => (sum.open[i] = (sum.open[i] ?? 0) + v));
        st.runNowReceived.forEach((v, i) => (sum.runNowReceived[i] = (sum.runNowReceived[i] ?? 0) + v));
        for (const k of ['finalAcks', 'spooled', 'runsInProgress', 'dropped', 'reconnected', 'attemptsFailed', 'back', 'resent', 'rejected', 'errors'] as const) sum[k] += st[k];
        sum.lastError ||= st.lastError;
        sum.firstAttemptError ||= st.firstAttemptError;
      }
      return sum;
    };
    /** Until no instance has a database call under way or an instrumented call for 300 ms. */
    const settle = async (what: string, timeoutMs = 180_000) => {
      const start = now();
      const last = new Map<Server, { calls: number; since: number }>();
      for (;;) {
        const t = now();
        let quiet = true;
        for (const s of alive()) {
          const st = await stats(s, false);
          const prev = last.get(s);
          if (!prev || prev.calls !== st.totalCalls || st.dbInFlight > 0) {
            last.set(s, { calls: st.totalCalls, since: t });
            quiet = false;
          } else if (t - prev.since < 300) quiet = false;
        }
        if (quiet) return;
        if (t - start > timeoutMs) fail(`the servers' background writes after ${what} did not finish within ${fmt(timeoutMs / 1000)} s`);
        await sleep(50);
      }
    };
    let machineMark = machineBusyMs();
    let pgMark = postgresCpuMs();
    let ownMark = process.cpuUsage();
    let wallMark = now();
    const begin = async () => {
      await Promise.all(alive().map((s) => stats(s, true)));
      await guard(Promise.all(workers.map((w) => w.ask<'stats'>({ cmd: 'stats', reset: true }, 30_000, 'statistics'))));
      machineMark = machineBusyMs();
      pgMark = postgresCpuMs();
      ownMark = process.cpuUsage();
      wallMark = now();
    };
    const end = async (): Promise<PhaseCpu> => {
      const s = await Promise.all(alive().map((x) => stats(x, true)));
      const w = (await guard(Promise.all(workers.map((x) => x.ask<'stats'>({ cmd: 'stats', reset: true }, 30_000, 'statistics'))))) as { cpuMs: number }[];
      const own = process.cpuUsage(ownMark);
      const serversCpuMs = s.reduce((a, b) => a + b.cpuMs, 0);
      const workersCpuMs = w.reduce((a, b) => a + b.cpuMs, 0);
      // Backends that exit within the phase (other users' too) take their CPU time with them: never below 0.
      const pgCpu = Math.max(0, postgresCpuMs() - pgMark);
      const otherCpuMs = Math.max(0, machineBusyMs() - machineMark - serversCpuMs - workersCpuMs - pgCpu - (own.user + own.system) / 1000);
      return { wallMs: now() - wallMark, serversCpuMs, workersCpuMs, postgresCpuMs: pgCpu, otherCpuMs, maxElu: Math.max(...s.map((x) => x.elu)), maxStallMs: Math.max(...s.map((x) => x.maxLoopDelayMs)) };
    };

    try {
      log(`— ${fmt(N)} agents: ${K} instances, ${W} worker processes, schema ${schema}`);
      // 1. Instances: the first creates the schema and the keys, then the others join.
      const first = await startInstance(0);
      const others = await Promise.all(Array.from({ length: K - 1 }, (_, i) => startInstance(i + 1)));
      const readies = [first, ...others];
      for (const [i, r] of readies.entries()) {
        if (r.caPem !== first.caPem) fail(`instance ${i} presents another CA than instance 0`);
        if (TLS !== r.url.startsWith('https:')) fail(`instance ${i} at ${r.url}, expected ${TLS ? 'HTTPS' : 'HTTP'}`);
      }
      const caPem = first.caPem;
      const adminToken = first.adminToken;
      const urls = readies.map((r) => r.url);
      fetchCa = pinnedFetch(caPem);
      const api0 = <T>(method: string, p: string, body?: unknown, timeoutMs?: number) => guard(api<T>(urls[0]!, adminToken, method, p, body, timeoutMs));
      log(`instances at ${urls.join(', ')}`);

      // 2. Workers
      for (let i = 0; i < W; i++) {
        const proc = spawn(process.execPath, [path.join(HERE, 'agent-worker.ts')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
        workers.push(new IpcChild(`agent worker ${i + 1}`, proc, onFailure, live));
      }
      await guard(Promise.all(workers.map((w) => w.next('hello', 30_000, 'start'))));
      let allAcked = 0;
      let wake: (() => void) | null = null;
      for (const w of workers)
        w.on((m) => {
          if (m.ev === 'all-acked') {
            allAcked++;
            wake?.();
          }
        });
      const parts = slices(N, W);
      // The instance of global agent g is g mod K.
      const homeCounts = Array.from({ length: K }, (_, i) => Math.floor(N / K) + (i < N % K ? 1 : 0));

      // 3. Enrolment (setup), each agent through its own instance.
      const group = await api0<{ id: string }>('POST', '/api/v1/groups', { name: `bench ${new Date().toISOString()}` });
      const tok = await api0<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId: group.id, maxUses: N, expiresInMinutes: 240, name: 'benchmark' });
      log(`enrolling ${fmt(N)} devices through ${K} instances…`);
      const enrolled = await guard(
        Promise.all(parts.map((s, i) => workers[i]!.ask<'enrolled'>({ cmd: 'enrol', url: urls[0]!, urls, caPem, token: tok.token, first: s.first, count: s.count, concurrency: 16 }, 120_000 + N * 20, 'enrolment'))),
      );
      const enrolMs = Math.max(...enrolled.map((e) => e.ms));
      const enrolOk = enrolled.reduce((a, e) => a + e.ok, 0);
      if (enrolOk !== N) fail(`only ${enrolOk} of ${N} devices enrolled: ${enrolled.find((e) => e.firstError)?.firstError}`);
      log(`enrolled ${fmt(N)} in ${ms(enrolMs)} (${fmt((N / enrolMs) * 1000)}/s)`);
      await settle('enrolment');

      // 4. Connect; memory before and after, summed over the instances.
      const memBefore = await Promise.all(alive().map(mem));
      await begin();
      log(`connecting ${fmt(N)} agents…`);
      const wsUrls = urls.map((u) => u.replace(/^http/, 'ws') + '/agent/v1/ws');
      const connectStart = now();
      const connected = await guard(
        Promise.all(workers.map((w, i) => w.ask<'connected'>({ cmd: 'connect', wsUrl: wsUrls[0]!, wsUrls, firstIndex: parts[i]!.first, caPem, addresses: ADDRESSES, concurrency: 128 }, 60_000 + N * 20, 'connecting'))),
      );
      const connectMs = now() - connectStart;
      const connectedOk = connected.reduce((a, c) => a + c.ok, 0);
      if (connectedOk !== N) fail(`only ${connectedOk} of ${N} agents connected: ${connected.find((c) => c.firstError)?.firstError}`);
      // Presence: every instance counts every agent online (its own and the others', from agent_presence).
      let presenceMs = Number.NaN;
      for (;;) {
        const st = await Promise.all(alive().map((s) => stats(s, false)));
        if (st.every((x) => x.online === N)) {
          presenceMs = now() - connectStart;
          break;
        }
        if (now() - connectStart > connectMs + 60_000) fail(`presence did not converge: instances count ${st.map((x) => `${x.localOnline} here / ${x.online} online`).join(', ')}`);
        await sleep(50);
      }
      await settle('connecting');
      const connectCpu = await end();
      const memAfter = await Promise.all(alive().map(mem));
      const sum = (m: Mem[], k: keyof Mem) => m.reduce((a, b) => a + b[k], 0);
      const connect = {
        ms: connectMs,
        presenceMs,
        memBefore,
        memAfter,
        rssPerAgent: sum(memAfter, 'rss') / N,
        heapPerAgent: sum(memAfter, 'heapUsed') / N,
        rssGrowthPerAgent: (sum(memAfter, 'rss') - sum(memBefore, 'rss')) / N,
        heapGrowthPerAgent: (sum(memAfter, 'heapUsed') - sum(memBefore, 'heapUsed')) / N,
      };
      log(`connected in ${ms(connectMs)}, presence everywhere in ${ms(presenceMs)}; ${kb(connect.rssPerAgent)} RSS per agent (all instances)`);

      // 5. Check-ins per second.
      await begin();
      const checkIns = await guard(Promise.all(workers.map((w) => w.ask<'check-ins'>({ cmd: 'check-in', durationMs: CHECKIN_MS, window: WINDOW }, CHECKIN_MS + 60_000, 'check-ins'))));
      const ciCount = checkIns.reduce((a, c) => a + c.count, 0);
      if (checkIns.some((c) => c.errors)) fail(`${checkIns.reduce((a, c) => a + c.errors, 0)} check-ins failed: ${(await workerStatus()).lastError}`);
      const ciElapsed = Math.max(...checkIns.map((c) => c.end)) - Math.min(...checkIns.map((c) => c.start));
      const ciLat = sortedFloat64(checkIns.map((c) => c.latenciesMs));
      await settle('the check-ins');
      const checkInCpu = await end();
      log(`${fmt((ciCount / ciElapsed) * 1000)} check-ins/s`);

      // 6. A task through instance 0: every instance tells its targets to sync.
      const syncStorm = async (name: string): Promise<{ id: string; ms: number }> => {
        const before = (await workerStatus()).syncCheckInsDone;
        const t0 = now();
        const task = await api0<{ id: string }>('POST', '/api/v1/tasks', { name, type: 'script', settings: { command: 'true' }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: group.id } });
        for (;;) {
          const st = await workerStatus();
          if (st.errors) fail(`agent errors during the sync storm: ${st.lastError}`);
          if (st.syncCheckInsDone - before >= N && st.checkInsOutstanding === 0) return { id: task.id, ms: now() - t0 };
          if (now() - t0 > 120_000) fail(`the sync storm did not settle: ${fmt(st.syncCheckInsDone - before)} of ${fmt(N)} synced`);
          await sleep(20);
        }
      };
      await begin();
      const task = await syncStorm('bench: true');
      await settle('the sync storm');
      const syncCpu = await end();
      log(`sync storm: all ${fmt(N)} synced in ${ms(task.ms)}`);

      // 7. Run-now through instance 0 to every agent.
      const awaitStored = async (taskId: string, t0: number, what: string): Promise<{ at: number; polls: number }> => {
        let polls = 0;
        for (;;) {
          const p = await api0<TaskProgress>('GET', `/api/v1/tasks/${taskId}/progress`, undefined, 60_000);
          polls++;
          if ((p.states.succeeded ?? 0) >= N) return { at: now(), polls };
          if (now() - t0 > 120_000 + N * 5) fail(`${what}: not every result was stored: progress ${JSON.stringify(p.states)}; agents ${JSON.stringify(await instanceStatus())}`);
          if (allAcked < W) {
            await Promise.race([sleep(250), new Promise<void>((r) => (wake = r))]);
            wake = null;
          } else await sleep(20);
        }
      };
      await begin();
      log('run-now through instance 0…');
      allAcked = 0;
      await profile('start');
      const t0 = now();
      const rn = await api0<{ targets: number; delivered: number }>('POST', `/api/v1/tasks/${task.id}/run`, {}, 120_000);
      const tApi = now();
      if (rn.targets !== N || rn.delivered !== N) fail(`run-now reached ${rn.delivered} of ${rn.targets} targets, expected ${N}`);
      const stored = await awaitStored(task.id, t0, 'run-now');
      await profile('stop', 'run-now');
      const runNowCpu = await end();
      const collected = await guard(Promise.all(workers.map((w) => w.ask<'collected'>({ cmd: 'collect' }, 30_000, 'results'))));
      if (collected.some((c) => c.rejected)) fail(`${collected.reduce((a, c) => a + c.rejected, 0)} reports were rejected: ${collected.find((c) => c.firstRejection)?.firstRejection}`);
      const rel = (a: Float64Array) => a.map((t) => t - t0);
      const started = sortedFloat64(collected.map((c) => rel(c.runNowAt)));
      if (started.some(Number.isNaN)) fail(`${started.filter(Number.isNaN).length} agents never received the run-now`);
      const byInstance = (asked: boolean) =>
        sortedFloat64(collected.map((c, wi) => rel(c.runNowAt).filter((_, k) => ((parts[wi]!.first + k) % K === 0) === asked)));
      const startedAsked = byInstance(true);
      const startedOthers = byInstance(false);
      const runNow = {
        apiMs: tApi - t0,
        delivered: rn.delivered,
        started: { p50: q(started, 0.5), p95: q(started, 0.95), p99: q(started, 0.99), p100: q(started, 1) },
        startedAskedP100: q(startedAsked, 1),
        startedOthersP50: q(startedOthers, 0.5),
        startedOthersP100: q(startedOthers, 1),
        ackedP100: q(sortedFloat64(collected.map((c) => rel(c.finalAckAt))), 1),
        storedMs: stored.at - t0,
        polls: stored.polls,
      };
      log(`run-now: all started in ${ms(runNow.started.p100)} (instance 0's in ${ms(runNow.startedAskedP100)}, the others' in ${ms(runNow.startedOthersP100)}), all stored in ${ms(runNow.storedMs)}`);
      await settle('the run-now');

      // 8. Failover: a run-now of a command that takes RUN_MS; once the last instance's agents
      // all have it, that instance is SIGKILLed while their runs go on.
      const fit = fits(N, W);
      const failoverSkipped = fit.failover ? '' : `the ${K - 1} other instances would hold ${fmt(fit.afterFailover)} sockets each, over the open-file limit of ${fds.hard}`;
      const failover = fit.failover ? await failoverPhase() : null;
      if (!failover) log(`failover skipped: ${failoverSkipped}`);
      const failoverCpu = failover ? await end() : null;
      const agentErrors = (await workerStatus()).errors;
      async function failoverPhase() {
        const victim = K - 1;
        const foTask = await syncStorm('bench: failover');
        await settle('the second sync storm');
        await guard(Promise.all(workers.map((w) => w.ask<'status'>({ cmd: 'failover', runMs: RUN_MS }, 30_000, 'arm the failover'))));
        await begin();
        log(`failover: run-now of a ${fmt(RUN_MS)}-ms command, then SIGKILL of instance ${victim} (${fmt(homeCounts[victim]!)} agents)…`);
        allAcked = 0;
        const f0 = now();
        await api0('POST', `/api/v1/tasks/${foTask.id}/run`, {}, 120_000);
        for (;;) {
          const st = await instanceStatus();
          if ((st.runNowReceived[victim] ?? 0) >= homeCounts[victim]!) break;
          if (now() - f0 > 60_000 + N * 2) fail(`instance ${victim}'s agents did not all receive the run-now: ${st.runNowReceived[victim]} of ${homeCounts[victim]}`);
          await sleep(10);
        }
        await profile('start');
        const victimServer = servers[victim]!;
        victimServer.exiting = true;
        const tKill = now();
        victimServer.proc.kill('SIGKILL');
        servers[victim] = null;
        await victimServer.exited;
        const atKill = await instanceStatus();
        log(`instance ${victim} killed ${ms(tKill - f0)} after the run-now; ${fmt(atKill.runsInProgress)} runs still running in the agents, ${fmt(atKill.spooled)} reports not yet acked`);
        let allSocketsAt = Number.NaN;
        let serversCountAt = Number.NaN;
        let lastLog = tKill;
        for (;;) {
          const st = await instanceStatus();
          if (st.errors || st.rejected) fail(`agent errors during the failover: ${st.lastError}`);
          const t = now();
          const open = st.open.reduce((a, b) => a + b, 0);
          if (Number.isNaN(allSocketsAt) && open === N && st.back >= homeCounts[victim]!) allSocketsAt = t;
          if (!Number.isNaN(allSocketsAt) && Number.isNaN(serversCountAt)) {
            const ss = await Promise.all(alive().map((s) => stats(s, false)));
            if (ss.reduce((a, x) => a + x.localOnline, 0) === N && ss.every((x) => x.online === N)) serversCountAt = now();
          }
          if (!Number.isNaN(serversCountAt) && st.spooled === 0 && st.runsInProgress === 0 && st.finalAcks === N) break;
          if (t - tKill > 180_000 + N * 2) fail(`the failover did not complete: ${JSON.stringify({ ...st, open })}`);
          if (t - lastLog > 5000) {
            lastLog = t;
            log(`  ${fmt((t - tKill) / 1000, 1)} s after the kill: ${fmt(open)} of ${fmt(N)} open, ${fmt(st.back)} back, ${fmt(st.spooled)} spooled, ${fmt(st.finalAcks)} results acked`);
          }
          await sleep(20);
        }
        const foStored = await awaitStored(foTask.id, tKill, 'failover');
        await profile('stop', 'failover');
        const progress = await api0<TaskProgress>('GET', `/api/v1/tasks/${foTask.id}/progress`);
        const marks = (await guard(Promise.all(workers.map((w) => w.ask<'failover-collected'>({ cmd: 'collect-failover' }, 30_000, 'failover marks'))))).map((m) => m.marks);
        const ofVictim = (pick: (m: FailoverCollected) => Float64Array) => sortedFloat64(marks.map((m) => pick(m).filter((_, k) => m.home[k] === victim).map((t) => t - tKill)));
        const back = ofVictim((m) => m.backAt);
        const drained = ofVictim((m) => m.drainedAt);
        if (back.length !== homeCounts[victim] || back.some(Number.isNaN)) fail(`${back.filter(Number.isNaN).length} of instance ${victim}'s agents never came back`);
        const spreadOver: Record<string, number> = {};
        let heldUnacked = 0;
        for (const m of marks)
          m.home.forEach((h, k) => {
            if (h !== victim) return;
            spreadOver[`instance ${m.now[k]}`] = (spreadOver[`instance ${m.now[k]}`] ?? 0) + 1;
            heldUnacked += m.heldAtDrop[k]!;
          });
        const endSt = await instanceStatus();
        const result = {
          victim,
          victimAgents: homeCounts[victim]!,
          runMs: RUN_MS,
          killAfterRunNowMs: tKill - f0,
          heldUnacked,
          runsInProgressAtKill: atKill.runsInProgress,
          back: { p50: q(back, 0.5), p95: q(back, 0.95), p100: q(back, 1) },
          allSocketsMs: allSocketsAt - tKill,
          serversCountMs: serversCountAt - tKill,
          drainedMs: q(drained, 1),
          storedMs: foStored.at - tKill,
          spreadOver,
          attemptsFailed: endSt.attemptsFailed,
          resent: endSt.resent,
        firstAttemptError: endSt.firstAttemptError,
          succeeded: progress.states.succeeded ?? 0,
        };
        log(`failover: all back in ${ms(result.back.p100)}, every result stored ${ms(result.storedMs)} after the kill`);
        return result;
      }

      // 9. Shut down, then the baseline on a quiet machine.
      for (const s of alive()) s.exiting = true;
      for (const w of workers) w.exiting = true;
      await Promise.all(workers.map((w) => w.ask<'closed'>({ cmd: 'close' }, 20_000, 'close').catch(() => w.proc.kill('SIGKILL'))));
      await Promise.all(alive().map((s) => s.ask<'closed'>({ cmd: 'close' }, 30_000, 'close').catch(() => s.proc.kill('SIGKILL'))));
      log('baseline: raw batched SQLite inserts…');
      const baselineRuns = [0, 1, 2].map((i) => runBaseline(path.join(tmp, `baseline-${i}.db`), 2 * N));
      const baseline = baselineRuns.reduce((a, b) => (b.ms < a.ms ? b : a));

      // 10. The transport floor: the same message pattern on bare servers and clients, never
      // alongside this size's processes (they have exited: waited for here).
      await Promise.all([...alive(), ...workers].map((c) => withTimeout(c.exited, 10_000, `${c.name} to exit`).catch(() => c.proc.kill('SIGKILL'))));
      let floor: TransportFloorResult | null = null;
      let floorError = '';
      if (FLOOR) {
        try {
          floor = await runTransportFloor({ agents: N, servers: K, workers: W, tls: TLS, tracked: live, log });
          log(`transport floor: ${ms(floor.best.ms)}; run-now stored / floor ${fmt(runNow.storedMs / floor.best.ms, 1)}×`);
        } catch (err) {
          floorError = err instanceof Error ? err.message : String(err);
          log(`transport floor failed: ${floorError}`);
        }
      }
      return {
        agents: N,
        instances: K,
        workers: W,
        agentsPerInstance: homeCounts,
        sourceAddresses: ADDRESSES.length,
        enrolMs,
        connect,
        checkIns: { perSecond: (ciCount / ciElapsed) * 1000, count: ciCount, ms: ciElapsed, p50: q(ciLat, 0.5), p99: q(ciLat, 0.99), max: q(ciLat, 1) },
        syncMs: task.ms,
        runNow,
        failover,
        failoverSkipped,
        baseline,
        baselineRunsMs: baselineRuns.map((b) => b.ms),
        ingestRatio: runNow.storedMs / baseline.ms,
        floor,
        floorError,
        floorRatio: floor ? runNow.storedMs / floor.best.ms : Number.NaN,
        phases: { connect: connectCpu, checkIns: checkInCpu, syncStorm: syncCpu, runNow: runNowCpu, ...(failoverCpu ? { failover: failoverCpu } : {}) },
        serverLogLines,
        agentErrors,
      };
    } finally {
      clearTimeout(watchdog);
      for (const s of [...servers, ...workers]) {
        if (!s) continue;
        s.exiting = true;
        if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
      }
      await Promise.all([...servers, ...workers].map((s) => s && withTimeout(s.exited, 10_000, 'exit').catch(() => {})));
      if (opts.keep) log(`kept ${tmp} and schema ${schema}`);
      else {
        rmSync(tmp, { recursive: true, force: true });
        const client = new pg.Client({ connectionString: PG_URL });
        try {
          await client.connect();
          await client.query(`drop schema if exists ${schema} cascade`);
        } catch (err) {
          log(`could not drop schema ${schema}: ${(err as Error).message}`);
        } finally {
          await client.end().catch(() => {});
        }
      }
    }
  }

  function sizeReport(r: SizeResult): string[] {
    const out: string[] = [];
    const row = (label: string, value: string) => out.push(`  ${label.padEnd(44)} ${value}`);
    const phases = Object.values(r.phases);
    const other = phases.reduce((a, p) => a + p.otherCpuMs, 0);
    const wall = phases.reduce((a, p) => a + p.wallMs, 0);
    out.push('');
    out.push(`${fmt(r.agents)} agents on ${r.instances} instances`);
    if (other > 0.15 * wall) out.push(`  WARNING: other processes used ${ms(other)} of CPU during the ${ms(wall)} of measured phases: the figures are disturbed`);
    row('conditions', `${r.workers} agent worker processes, ${r.sourceAddresses} loopback source addresses; agents per instance ${r.agentsPerInstance.map((n) => fmt(n)).join(' / ')}`);
    row('enrolment (setup, through each instance)', `${ms(r.enrolMs)} (${fmt((r.agents / r.enrolMs) * 1000)}/s, 16 in flight per worker)`);
    row('time to connect all', `${ms(r.connect.ms)} (${fmt((r.agents / r.connect.ms) * 1000)}/s); every instance counts all online after ${ms(r.connect.presenceMs)}`);
    const rss = r.connect.memAfter.reduce((a, m) => a + m.rss, 0);
    const heap = r.connect.memAfter.reduce((a, m) => a + m.heapUsed, 0);
    row('servers RSS / heap used, sum (after GC)', `${mb(rss)} / ${mb(heap)} (per instance RSS ${r.connect.memAfter.map((m) => fmt(m.rss / 1048576)).join(' / ')} MB)`);
    row('server memory per agent (sum / agents)', `${kb(r.connect.rssPerAgent)} RSS, ${kb(r.connect.heapPerAgent)} heap`);
    row('  growth from connecting, per agent', `${kb(r.connect.rssGrowthPerAgent)} RSS, ${kb(r.connect.heapGrowthPerAgent)} heap`);
    row('check-ins per second', `${fmt(r.checkIns.perSecond)} (${fmt(r.checkIns.count)} in ${ms(r.checkIns.ms)}, ${WINDOW} in flight per worker); p50 / p99 / max ${fmt(r.checkIns.p50, 1)} / ${fmt(r.checkIns.p99, 1)} / ${fmt(r.checkIns.max, 1)} ms`);
    row('task created on instance 0 → all synced', ms(r.syncMs));
    const rn = r.runNow;
    row('run-now through instance 0: API returned', `${ms(rn.apiMs)} (delivered ${fmt(rn.delivered)})`);
    row('  started 50 / 95 / 99 / 100%', `${ms(rn.started.p50)} / ${ms(rn.started.p95)} / ${ms(rn.started.p99)} / ${ms(rn.started.p100)}`);
    row('  started 100%: instance 0 / others (50%)', `${ms(rn.startedAskedP100)} / ${ms(rn.startedOthersP100)} (${ms(rn.startedOthersP50)})`);
    row('  results acked 100% (one report per run)', ms(rn.ackedP100));
    row('  all results stored (progress API)', `${ms(rn.storedMs)} (${rn.polls} polls)`);
    row('  baseline (SQLite, 2 × N rows, best of 3)', `${ms(r.baseline.ms)} (${fmt(r.baseline.rowsPerSecond)} rows/s; runs ${r.baselineRunsMs.map((x) => fmt(x)).join(', ')} ms)`);
    row('  ingest ratio (all stored / baseline)', `${fmt(r.ingestRatio, 1)}×`);
    const fl = r.floor;
    if (!fl) row('transport floor (bare TLS+ws+JSON, same pattern)', r.floorError ? `FAILED: ${r.floorError.split('\n')[0]}` : 'skipped (--no-floor)');
    else {
      const b = fl.best;
      const rn0 = r.phases.runNow!;
      out.push('  transport floor (bare TLS+ws+JSON, same pattern)');
      row('  first send → all acks', `${ms(b.ms)} (best of ${fl.rounds.length}: ${fl.rounds.map((x) => fmt(x.ms)).join(', ')} ms)`);
      row('  floor CPU', `servers ${ms(b.serversCpuMs)}, workers ${ms(b.workersCpuMs)}, other ${ms(b.otherCpuMs)} over ${ms(b.wallMs)}; busiest server loop ${fmt(b.maxServerElu * 100)}%`);
      row('  floor sent / received 100%', `${ms(b.sentMs)} / ${ms(b.receivedMs)}`);
      row('  floor conditions', `${fl.tls ? `${fl.tls.protocol}, ${fl.tls.cipher}, ${fl.tls.keyExchange}, ${fl.tls.certificateKey}` : 'plain HTTP'}; JSON run-now ${fmt(fl.messageBytes.runNow)} B, report ${fmt(fl.messageBytes.report)} B, ack ${fmt(fl.messageBytes.ack)} B`);
      row('  floor server RSS / heap per connection', `${kb(fl.rssPerConnection)} / ${kb(fl.heapPerConnection)} (after GC; connect all ${ms(fl.connectMs)})`);
      row('  run-now stored / floor', `${fmt(r.floorRatio, 1)}× (results acked / floor ${fmt(rn.ackedP100 / b.ms, 1)}×; servers' CPU ${fmt(rn0.serversCpuMs / b.serversCpuMs, 1)}×, workers' ${fmt(rn0.workersCpuMs / b.workersCpuMs, 1)}×)`);
    }
    const f = r.failover;
    if (!f) row('failover', `skipped: ${r.failoverSkipped}`);
    else {
      row(`failover: SIGKILL of instance ${f.victim}`, `${fmt(f.victimAgents)} agents, killed ${ms(f.killAfterRunNowMs)} after a run-now (command of ${ms(f.runMs)}), once all its agents had it`);
      row('  held by its agents at the kill', `${fmt(f.runsInProgressAtKill)} runs still running (all agents), ${fmt(f.heldUnacked)} reports not yet acked (its agents)`);
      row('  back online elsewhere 50 / 95 / 100%', `${ms(f.back.p50)} / ${ms(f.back.p95)} / ${ms(f.back.p100)} after the kill (reconnected and checked in)`);
      row('  every instance counts all online again', ms(f.serversCountMs));
      row('  every spool drained / all results stored', `${ms(f.drainedMs)} / ${ms(f.storedMs)} (progress: ${fmt(f.succeeded)} of ${fmt(r.agents)} succeeded)`);
      row('  reconnected to', `${Object.entries(f.spreadOver).sort().map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}; ${fmt(f.attemptsFailed)} failed attempts, ${fmt(f.resent)} reports resent`);
      if (f.firstAttemptError) row('  first failed attempt', f.firstAttemptError);
    }
    for (const [name, p] of Object.entries(r.phases))
      row(`CPU: ${name}`, `servers ${ms(p.serversCpuMs)}, workers ${ms(p.workersCpuMs)}, PostgreSQL ${ms(p.postgresCpuMs)}, other ${ms(p.otherCpuMs)} over ${ms(p.wallMs)}; busiest loop ${fmt(p.maxElu * 100)}%, max stall ${ms(p.maxStallMs)}`);
    row('server log lines (warn and above); agent errors', `${r.serverLogLines}; ${r.agentErrors}`);
    return out;
  }

  function curveReport(rs: SizeResult[], failure: { agents: number; message: string } | null): string[] {
    const out = ['', `Scaling curve (${K} instances, one PostgreSQL database)`];
    const cols = ['agents', 'RSS/agent', 'heap/agent', 'check-ins/s', 'sync', 'run-now 50/95/99/100% started', 'stored', '×baseline', 'transport floor (CPU servers/workers)', 'stored/floor', 'failover back 100%', 'failover stored'];
    out.push('  ' + cols.join(' | '));
    for (const r of rs)
      out.push(
        '  ' +
          [
            fmt(r.agents),
            kb(r.connect.rssPerAgent),
            kb(r.connect.heapPerAgent),
            fmt(r.checkIns.perSecond),
            ms(r.syncMs),
            `${fmt(r.runNow.started.p50)}/${fmt(r.runNow.started.p95)}/${fmt(r.runNow.started.p99)}/${fmt(r.runNow.started.p100)} ms`,
            ms(r.runNow.storedMs),
            `${fmt(r.ingestRatio, 1)}×`,
            r.floor ? `${ms(r.floor.best.ms)} (${fmt(r.floor.best.serversCpuMs)}/${fmt(r.floor.best.workersCpuMs)} ms)` : r.floorError ? 'failed' : 'skipped',
            r.floor ? `${fmt(r.floorRatio, 1)}×` : '–',
            r.failover ? ms(r.failover.back.p100) : 'skipped',
            r.failover ? ms(r.failover.storedMs) : 'skipped',
          ].join(' | '),
      );
    if (failure) out.push(`  ${fmt(failure.agents)}: not reached — ${failure.message.split('\n')[0]}`);
    return out;
  }
}
