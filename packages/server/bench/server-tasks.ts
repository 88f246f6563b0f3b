/**
 * The server-task benchmark (`npm run bench -- --server-tasks`): what "Database maintenance"
 * and "Backup of server data" cost the agents while they run.
 *
 * The real server runs in its own process (server-process.ts) and simulated agents in worker
 * processes (agent-worker.ts) check in over the real protocol and real sockets, as in the
 * fleet benchmark. Old events and old finished runs (past the 90-day retention), recent ones
 * that must survive, and task_device_state rows (each device's latest run of a few client
 * tasks: the runs purge checks every candidate against them) are written straight into the
 * database from this process. Then:
 *
 * 1. baseline: check-in latency and throughput for 5 s;
 * 2. the server's "Database maintenance" task is run through the API while the agents keep
 *    checking in: the run's duration, rows removed per second, the database size before and
 *    after (from the run's result), and check-in latency during the run against the baseline;
 * 3. the old rows are written again (so that the backup copies a database of the size the
 *    purge started from), and a "backup" server task is created and run the same way: its
 *    duration, the archive's size (the archive is checked on disk), and check-in latency.
 *
 * Check-ins are a closed loop (`--window` in flight per worker) in phases of 1 s, back to
 * back, until the run ends; a check-in held up by the server shows as its latency.
 * The server's own figures (event-loop stalls, time in the purge statements) come from the
 * instrumentation in server-process.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { finalServerTaskRunStates, type ServerTask, type ServerTaskRun } from '@garrison/protocol';
import { pinnedFetch, type FetchLike } from '@garrison/protocol/tls';
import type { DatabaseConfig } from '../src/storage/database.ts';
import { IpcChild, now, quantile, sleep, sortedFloat64, withTimeout, type FromServer, type FromWorker, type ServerStats, type ToServer, type ToWorker } from './shared.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../../..');
const DAY = 86400_000;
/** The server's default retention (settings-store.ts): 90 days for events and runs. */
const OLD_MIN_DAYS = 100;
const OLD_SPAN_DAYS = 300;
const TARGET_RATIO = 10;
const TARGET_P99_MS = 1000;

const usage = `usage: npm run bench -- --server-tasks [options]
  --agents N     simulated agents, checking in throughout (default 2000)
  --events N     old events to purge (default 1000000)
  --runs N       old finished runs to purge (default 200000)
  --pg URL       the server on PostgreSQL (default: GARRISON_BENCH_PG_URL, else SQLite)
  --workers W    agent worker processes (default 2)
  --window K     check-ins in flight per worker (default 8)
  --seconds S    length of the baseline (default 5)
  --recent N     recent events and runs, which must survive the purge (default 10000 of each)
  --task-states N  rows of task_device_state (each device's latest run of each client task;
                 default 5 per agent: 5 client tasks run on every device); they point at recent runs
  --batch-size B set the maintenance task's batchSize setting (rows per DELETE) before it runs
                 (default: the task as the server made it, with the server's default batch)
  --strict       exit 2 when a target is missed
  --keep         keep the temporary folders (and the PostgreSQL schema)`;

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : String(n));
const mb = (bytes: number) => `${fmt(bytes / 1048576, 1)} MiB`;
const msf = (n: number, digits = 1) => `${fmt(n, digits)} ms`;

class Failed extends Error {}

/** A child process answering requests over IPC (each request carries a seq). */
type ServerProc = IpcChild<ToServer, FromServer>;
type WorkerProc = IpcChild<ToWorker, FromWorker>;

interface Latency {
  count: number;
  elapsedMs: number;
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
  errors: number;
  /** The worst 1-s phase: its p99, max and start (ms from the phase's clock origin). */
  worst?: { p99: number; max: number; atMs: number };
}

/** CPU in a phase: the server's, the agent workers', and the rest of the machine's (other processes). */
interface PhaseCpu {
  serverMs: number;
  workersMs: number;
  /** The local PostgreSQL's processes (0 on SQLite). */
  postgresMs: number;
  otherMs: number;
  wallMs: number;
}

interface TaskPhase {
  run: ServerTaskRun;
  /** From the run-now call until the poll that saw the run's end. */
  wallMs: number;
  /** From the run's startedAt to its endedAt (the server's clock). */
  runMs: number;
  latency: Latency;
  server: ServerStats;
  /** The run's start on this process's clock, for the offsets of stalls and purges. */
  startedAt: number;
  /** Polls of the run that failed (connection refused or timed out) and were retried. */
  pollErrors: number;
  cpu: PhaseCpu;
}

/**
 * CPU time of the PostgreSQL processes on this machine so far (Linux /proc), ms: so that a
 * local PostgreSQL's work is not counted as disturbance. Backends that exit within a phase
 * take their time with them (an underestimate); a remote server counts 0.
 */
export function postgresCpuMs(): number {
  let total = 0;
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      } catch {
        continue;
      }
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      if (comm !== 'postgres' && comm !== 'pg_dump') continue;
      const f = stat.slice(close + 2).split(' ');
      total += (Number(f[11]) + Number(f[12])) * 10;
    }
  } catch {
    return 0;
  }
  return total;
}

/** CPU time the whole machine spent busy so far (Linux /proc/stat), ms; NaN elsewhere. */
function machineBusyMs(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return (f[0]! + f[1]! + f[2]! + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0)) * 10;
  } catch {
    return Number.NaN;
  }
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<number> {
  const { values: opts } = parseArgs({
    args: argv,
    options: {
      'server-tasks': { type: 'boolean' },
      agents: { type: 'string' },
      events: { type: 'string' },
      runs: { type: 'string' },
      pg: { type: 'string' },
      workers: { type: 'string' },
      window: { type: 'string' },
      seconds: { type: 'string' },
      recent: { type: 'string' },
      'task-states': { type: 'string' },
      'batch-size': { type: 'string' },
      strict: { type: 'boolean' },
      keep: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (opts.help) {
    console.log(usage);
    return 0;
  }
  const int = (name: string, v: string | undefined, dflt: number, min: number) => {
    if (v === undefined) return dflt;
    const n = Number(v.replaceAll('_', '').replaceAll(',', ''));
    if (!Number.isInteger(n) || n < min) throw new Failed(`--${name} must be an integer ≥ ${min}\n\n${usage}`);
    return n;
  };
  let N: number, EVENTS: number, RUNS: number, W: number, WINDOW: number, BASE_MS: number, RECENT: number, BATCH: number | null, TASK_STATES: number;
  try {
    N = int('agents', opts.agents, 2000, 1);
    EVENTS = int('events', opts.events, 1_000_000, 0);
    RUNS = int('runs', opts.runs, 200_000, 0);
    W = Math.min(N, int('workers', opts.workers, 2, 1));
    WINDOW = int('window', opts.window, 8, 1);
    BASE_MS = int('seconds', opts.seconds, 5, 1) * 1000;
    RECENT = int('recent', opts.recent, 10_000, 0);
    TASK_STATES = int('task-states', opts['task-states'], 5 * N, 0);
    BATCH = opts['batch-size'] === undefined ? null : int('batch-size', opts['batch-size'], 0, 100);
  } catch (err) {
    console.error((err as Error).message);
    return 1;
  }
  const PG_URL = opts.pg ?? process.env.GARRISON_BENCH_PG_URL;
  const T0 = now();
  const log = (msg: string) => process.stderr.write(`[bench +${((now() - T0) / 1000).toFixed(1)}s] ${msg}\n`);

  // ---------------------------------------------------------------------------------------------
  // Children, temporary folders and the PostgreSQL schema go away on every exit.
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'garrison-bench-st-'));
  const dataDir = path.join(tmp, 'server');
  const backupDir = path.join(tmp, 'backups');
  mkdirSync(dataDir, { recursive: true });
  const procs: ChildProcess[] = [];
  const serverLog: string[] = [];
  let serverLogLines = 0;
  let failure: string | null = null;
  let rejectFailure: (err: Error) => void = () => {};
  const failed = new Promise<never>((_, reject) => (rejectFailure = reject));
  failed.catch(() => {});
  const fail = (message: string) => {
    if (failure) return;
    failure = message;
    rejectFailure(new Failed(message));
  };
  const killAll = () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  };
  const pgSchema = PG_URL ? `bench_st_${randomBytes(5).toString('hex')}` : null;
  const onExit = () => {
    killAll();
    if (!opts.keep) rmSync(tmp, { recursive: true, force: true });
  };
  process.on('exit', onExit);
  const onSignal = (sig: string) => {
    process.stderr.write(`\nbench interrupted (${sig})\n`);
    killAll();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const dropSchema = async () => {
    if (!PG_URL || !pgSchema || opts.keep) return;
    const c = new pg.Client({ connectionString: PG_URL });
    try {
      await c.connect();
      await c.query(`drop schema if exists ${pgSchema} cascade`);
    } catch (err) {
      process.stderr.write(`could not drop the PostgreSQL schema ${pgSchema}: ${(err as Error).message}\n`);
    } finally {
      await c.end().catch(() => {});
    }
  };
  // The whole run has a deadline: seeding, two tasks, and their slack.
  const watchdogMs = 10 * 60_000 + N * 30 + (EVENTS + RUNS) * 0.5;
  const watchdog = setTimeout(() => fail(`the whole run took more than ${fmt(watchdogMs / 1000)} s`), watchdogMs);
  watchdog.unref();
  /** Awaits `p`, or throws as soon as something failed (a child died, the watchdog). */
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, failed]);

  const database: DatabaseConfig = PG_URL ? { kind: 'postgres', url: PG_URL, schema: pgSchema! } : { kind: 'sqlite', file: path.join(dataDir, 'garrison.db') };
  const conditions = {
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memory: os.totalmem(),
    database: PG_URL ? 'postgresql' : 'sqlite',
    agents: N,
    workers: W,
    windowPerWorker: WINDOW,
    oldEvents: EVENTS,
    oldRuns: RUNS,
    recentEvents: RECENT,
    recentRuns: RECENT,
    taskStates: TASK_STATES,
    loadAverageAtStart: os.loadavg(),
  };

  try {
    log(`${fmt(N)} agents, ${W} workers, ${conditions.database}; ${fmt(EVENTS)} old events and ${fmt(RUNS)} old runs to purge`);

    // 1. The server, in its own process (server-process.ts: HTTPS with its own CA).
    const serverChild = spawn(process.execPath, ['--expose-gc', path.join(HERE, 'server-process.ts'), dataDir, JSON.stringify(database), 'tls'], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    procs.push(serverChild);
    const keepLog = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        serverLogLines++;
        serverLog.push(line.length > 400 ? line.slice(0, 400) + '…' : line);
        if (serverLog.length > 30) serverLog.shift();
      }
    };
    serverChild.stdout!.on('data', keepLog);
    serverChild.stderr!.on('data', keepLog);
    const server: ServerProc = new IpcChild('server process', serverChild, fail);
    const ready = await guard(server.next('ready', 60_000, 'start'));
    const fetchPinned: FetchLike = pinnedFetch(ready.caPem);
    const api = async <T>(method: string, p: string, body?: unknown, timeoutMs = 60_000): Promise<T> => {
      const res = await fetchPinned(ready.url + p, {
        method,
        headers: { authorization: `Bearer ${ready.adminToken}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status} ${text.slice(0, 500)}`);
      return (text ? JSON.parse(text) : null) as T;
    };
    const stats = async (reset: boolean) => (await guard(server.ask<'stats'>({ cmd: 'stats', reset }, 30_000, 'statistics'))).stats;
    log(`server at ${ready.url}`);

    // The simulated agents (agent-worker.ts): enrolled through the API, one WebSocket each.
    const workers: WorkerProc[] = [];
    for (let i = 0; i < W; i++) {
      const child = spawn(process.execPath, [path.join(HERE, 'agent-worker.ts')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
      procs.push(child);
      workers.push(new IpcChild(`agent worker ${i + 1}`, child, fail));
    }
    await guard(Promise.all(workers.map((w) => w.next('hello', 30_000, 'start'))));
    /**
     * What a phase cost (call at its start, then at its end): the CPU of the server, of the
     * workers, and of the rest of the machine (other processes disturb the figures: the report warns).
     */
    const pgLocal = () => (PG_URL ? postgresCpuMs() : 0);
    let marks = { machine: 0, own: process.cpuUsage(), pg: 0 };
    const phaseCpu = async (serverStats: ServerStats | null): Promise<PhaseCpu | null> => {
      const workersMs = (await guard(Promise.all(workers.map((w) => w.ask<'stats'>({ cmd: 'stats', reset: true }, 30_000, 'statistics'))))).reduce((a, x) => a + x.cpuMs, 0);
      const own = process.cpuUsage(marks.own);
      const machine = machineBusyMs() - marks.machine;
      const postgresMs = pgLocal() - marks.pg;
      marks = { machine: machineBusyMs(), own: process.cpuUsage(), pg: pgLocal() };
      if (!serverStats) return null;
      const otherMs = Math.max(0, machine - serverStats.cpuMs - workersMs - postgresMs - (own.user + own.system) / 1000);
      return { serverMs: serverStats.cpuMs, workersMs, postgresMs, otherMs, wallMs: serverStats.wallMs };
    };
    const group = await api<{ id: string }>('POST', '/api/v1/groups', { name: 'bench server tasks' });
    const tok = await api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId: group.id, maxUses: N, expiresInMinutes: 240, name: 'benchmark' });
    const per = (i: number) => Math.floor(N / W) + (i < N % W ? 1 : 0);
    let first = 0;
    const enrolled = await guard(
      Promise.all(
        workers.map((w, i) => {
          const count = per(i);
          const m = { cmd: 'enrol' as const, url: ready.url, caPem: ready.caPem, token: tok.token, first, count, concurrency: 8 };
          first += count;
          return w.ask<'enrolled'>(m, 120_000 + N * 20, 'enrolment');
        }),
      ),
    );
    const enrolOk = enrolled.reduce((a, e) => a + e.ok, 0);
    if (enrolOk !== N) throw new Failed(`only ${enrolOk} of ${N} devices enrolled: ${enrolled.find((e) => e.firstError)?.firstError}`);
    // A random block of 127/8 per run, a few hundred agents per source address (as bench.ts).
    const block = `127.${16 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 256)}`;
    const addresses = os.platform() === 'linux' ? Array.from({ length: Math.min(250, Math.max(4, Math.ceil(N / 500))) }, (_, i) => `${block}.${i + 1}`) : ['127.0.0.1'];
    const wsUrl = ready.url.replace(/^http/, 'ws') + '/agent/v1/ws';
    const connected = await guard(Promise.all(workers.map((w) => w.ask<'connected'>({ cmd: 'connect', wsUrl, caPem: ready.caPem, addresses, concurrency: 128 }, 60_000 + N * 20, 'connecting'))));
    const connectedOk = connected.reduce((a, c) => a + c.ok, 0);
    if (connectedOk !== N) throw new Failed(`only ${connectedOk} of ${N} agents connected: ${connected.find((c) => c.firstError)?.firstError}`);
    log(`${fmt(N)} agents enrolled and connected`);
    await settle(stats, 'connecting');

    // 2. Old rows to purge and recent ones that must survive, straight into the database.
    const seeder = await Seeder.open(database);
    try {
      const t = now();
      await seeder.seed(EVENTS, RUNS, 'old', (m) => log(m));
      await seeder.seed(RECENT, RECENT, 'recent', (m) => log(m));
      await seeder.taskStates(TASK_STATES, RECENT);
      await seeder.analyze();
      const seedMs = now() - t;
      log(`seeded ${fmt(EVENTS + RECENT)} events and ${fmt(RUNS + RECENT)} runs in ${fmt(seedMs / 1000, 1)} s (${fmt(((EVENTS + RUNS + 2 * RECENT) / seedMs) * 1000)} rows/s)`);
    } finally {
      await seeder.close();
    }
    await settle(stats, 'seeding');

    // Check-ins in 1-s phases, back to back, until `until()` says stop.
    const checkInPhase = async (ms: number) =>
      guard(Promise.all(workers.map((w) => w.ask<'check-ins'>({ cmd: 'check-in', durationMs: ms, window: WINDOW }, ms + 120_000, 'check-ins'))));
    const measure = async (until: () => boolean, minMs = 0): Promise<Latency> => {
      const parts: Float64Array[] = [];
      let count = 0;
      let errors = 0;
      let elapsed = 0;
      let worst: Latency['worst'];
      const start = now();
      do {
        const r = await checkInPhase(Math.min(1000, Math.max(250, minMs - (now() - start))));
        const lat = sortedFloat64(r.map((x) => x.latenciesMs));
        parts.push(lat);
        count += r.reduce((a, x) => a + x.count, 0);
        errors += r.reduce((a, x) => a + x.errors, 0);
        const phaseStart = Math.min(...r.map((x) => x.start));
        elapsed += Math.max(...r.map((x) => x.end)) - phaseStart;
        const p99 = quantile(lat, 0.99);
        if (lat.length && (!worst || p99 > worst.p99)) worst = { p99, max: lat.at(-1)!, atMs: phaseStart };
      } while (!until() || now() - start < minMs);
      const all = sortedFloat64(parts);
      return { count, elapsedMs: elapsed, perSecond: (count / elapsed) * 1000, p50: quantile(all, 0.5), p99: quantile(all, 0.99), max: all.at(-1) ?? Number.NaN, errors, ...(worst ? { worst } : {}) };
    };

    // 3. Baseline.
    log(`baseline: check-ins for ${BASE_MS / 1000} s…`);
    await stats(true);
    await phaseCpu(null);
    const baseline = await measure(() => true, BASE_MS);
    const baselineServer = await stats(true);
    const baselineCpu = (await phaseCpu(baselineServer))!;
    log(`baseline: ${fmt(baseline.perSecond)} check-ins/s, p50 ${msf(baseline.p50)}, p99 ${msf(baseline.p99)}, max ${msf(baseline.max)}`);
    await settle(stats, 'the baseline');

    /** Runs a server task now and measures check-ins until the run has ended. */
    const runTask = async (taskId: string, what: string): Promise<TaskPhase> => {
      await stats(true);
      await phaseCpu(null);
      let run: ServerTaskRun | null = null;
      let done = false;
      let pollErrors = 0;
      const t0 = now();
      const started = await api<ServerTaskRun>('POST', `/api/v1/server-tasks/${taskId}/run`);
      const poll = (async () => {
        let lastLog = now();
        let failingSince = 0;
        for (;;) {
          let r: ServerTaskRun;
          try {
            r = await api<ServerTaskRun>('GET', `/api/v1/server-task-runs/${started.id}`, undefined, 600_000);
            failingSince = 0;
          } catch (err) {
            // A server that holds its event loop fails new connections (connect timeout): try again for a while.
            failingSince ||= now();
            pollErrors++;
            if (now() - failingSince > 120_000) throw err;
            await sleep(100);
            continue;
          }
          if (finalServerTaskRunStates.includes(r.state)) {
            run = r;
            done = true;
            return now();
          }
          if (now() - lastLog > 5000) {
            lastLog = now();
            log(`  ${what}: ${r.state} ${r.percent ?? 0}% ${r.message ?? ''}`);
          }
          await sleep(100);
        }
      })();
      poll.catch((err: unknown) => fail(`polling the ${what} run, ${fmt((now() - t0) / 1000, 1)} s after run-now: ${(err as Error).message}${(err as Error).cause ? ` (${String((err as Error).cause)})` : ''}`));
      const latency = await measure(() => done);
      const endAt = await guard(poll);
      const server = await stats(true);
      const cpu = (await phaseCpu(server))!;
      const r = run! as ServerTaskRun;
      const runMs = Date.parse(r.endedAt ?? '') - Date.parse(r.startedAt ?? '');
      const startedAt = r.startedAt ? Date.parse(r.startedAt) : t0;
      if (latency.worst) latency.worst.atMs -= startedAt;
      return { run: r, wallMs: endAt - t0, runMs, latency, server, startedAt, pollErrors, cpu };
    };

    // 4. Database maintenance (the default task of a new server) while the agents check in.
    const tasks = await api<ServerTask[]>('GET', '/api/v1/server-tasks?type=database-maintenance');
    let maintenanceTask = tasks[0];
    if (!maintenanceTask) throw new Failed('the server has no "database-maintenance" server task');
    if (BATCH !== null) maintenanceTask = await api<ServerTask>('PATCH', `/api/v1/server-tasks/${maintenanceTask.id}`, { settings: { ...maintenanceTask.settings, batchSize: BATCH } });
    log(`running "${maintenanceTask.name}" (settings ${JSON.stringify(maintenanceTask.settings)})…`);
    const maint = await runTask(maintenanceTask.id, 'maintenance');
    if (maint.run.state !== 'succeeded' && maint.run.state !== 'succeeded_with_warnings') throw new Failed(`the maintenance run ended ${maint.run.state}: ${maint.run.summary}`);
    const mres = maint.run.result as { removed: { events: number; runs: number; serverTaskRuns: number; sessions: number }; maintenance: string[]; sizeBeforeBytes: number; sizeAfterBytes: number; freeBytesBefore: number; freeBytesAfter: number };
    const after = await Seeder.open(database).then(async (s) => {
      try {
        return await s.counts();
      } finally {
        await s.close();
      }
    });
    if (after.oldEvents !== 0 || after.oldRuns !== 0) throw new Failed(`old rows left after the maintenance: ${after.oldEvents} events, ${after.oldRuns} runs`);
    if (after.recentEvents !== RECENT || after.recentRuns !== RECENT) throw new Failed(`recent rows lost by the maintenance: ${after.recentEvents} of ${RECENT} events, ${after.recentRuns} of ${RECENT} runs left`);
    if (mres.removed.events < EVENTS || mres.removed.runs < RUNS) throw new Failed(`the run reports ${mres.removed.events} events and ${mres.removed.runs} runs removed, expected at least ${EVENTS} and ${RUNS}`);
    log(`maintenance: ${maint.run.summary} in ${fmt(maint.runMs / 1000, 1)} s; check-in p99 ${msf(maint.latency.p99)}, max ${msf(maint.latency.max)}`);
    await settle(stats, 'the maintenance');

    // 5. Backup, of a database as large as the one the purge started from.
    log('seeding the old rows again, so that the backup copies the full-size database…');
    const reseeder = await Seeder.open(database);
    let backupDbBytes = 0;
    try {
      await reseeder.seed(EVENTS, RUNS, 'old', (m) => log(m));
      await reseeder.analyze();
      backupDbBytes = await reseeder.sizeBytes();
    } finally {
      await reseeder.close();
    }
    await settle(stats, 'seeding again');
    const backupTask = await api<ServerTask>('POST', '/api/v1/server-tasks', {
      name: 'bench backup',
      type: 'backup',
      settings: { folder: backupDir, keep: 1 },
      schedule: { triggers: [{ type: 'on-demand' }] },
    });
    log(`running a backup into ${backupDir} (database ${mb(backupDbBytes)})…`);
    const backup = await runTask(backupTask.id, 'backup');
    // "succeeded_with_warnings": an archive without a passphrase says so.
    if (backup.run.state !== 'succeeded' && backup.run.state !== 'succeeded_with_warnings') throw new Failed(`the backup run ended ${backup.run.state}: ${backup.run.summary}\n${backup.run.outputTail ?? ''}`);
    const bres = backup.run.result as { file: string; size: number; method: string; tables: Record<string, number>; files: number; durationMs: number };
    if (!existsSync(bres.file) || statSync(bres.file).size !== bres.size) throw new Failed(`the archive ${bres.file} is not there, or not of the reported ${bres.size} bytes`);
    if (path.dirname(bres.file) !== backupDir) throw new Failed(`the archive ${bres.file} is not in ${backupDir}`);
    const backedUpRows = Object.values(bres.tables).reduce((a, b) => a + b, 0);
    if ((bres.tables.events ?? 0) < EVENTS + RECENT || (bres.tables.runs ?? 0) < RUNS + RECENT) throw new Failed(`the backup holds ${bres.tables.events} events and ${bres.tables.runs} runs, expected at least ${EVENTS + RECENT} and ${RUNS + RECENT}`);
    log(`backup: ${backup.run.summary}; check-in p99 ${msf(backup.latency.p99)}, max ${msf(backup.latency.max)}`);

    // Shut down.
    await Promise.all(workers.map((w) => ((w.exiting = true), w.ask<'closed'>({ cmd: 'close' }, 20_000, 'close').catch(() => w.proc.kill('SIGKILL')))));
    server.exiting = true;
    await server.ask<'closed'>({ cmd: 'close' }, 30_000, 'close').catch(() => server.proc.kill('SIGKILL'));
    await dropSchema();

    // 6. Report.
    const ratio = (x: Latency) => x.p99 / baseline.p99;
    const targets = {
      maintenance: { target: `p99 check-in latency during the maintenance < ${TARGET_RATIO}× baseline and < ${fmt(TARGET_P99_MS)} ms`, met: ratio(maint.latency) < TARGET_RATIO && maint.latency.p99 < TARGET_P99_MS },
      backup: { target: `p99 check-in latency during the backup < ${TARGET_RATIO}× baseline and < ${fmt(TARGET_P99_MS)} ms`, met: ratio(backup.latency) < TARGET_RATIO && backup.latency.p99 < TARGET_P99_MS },
    };
    const lines: string[] = [];
    const out = (s = '') => lines.push(s);
    const row = (label: string, value: string) => out(`  ${label.padEnd(46)} ${value}`);
    const lat = (x: Latency) => `${msf(x.p50)} / ${msf(x.p99)} / ${msf(x.max)}`;
    const versus = (x: Latency) => `p99 ${fmt(ratio(x), 1)}× baseline; ${fmt(x.perSecond)} check-ins/s (${fmt((x.perSecond / baseline.perSecond) * 100)}% of baseline)`;
    const purgeOps = (s: ServerStats) => Object.entries(s.ops).filter(([k]) => k.includes('purge'));
    // The longest stall: the histogram's, or the 10-ms timer's (server-process.ts), whichever saw more.
    const serverLine = (s: ServerStats, c: PhaseCpu) =>
      `CPU ${fmt(s.cpuMs)} ms over ${fmt(s.wallMs)} ms; event loop ${fmt(s.elu * 100)}% busy, longest stall ${msf(Math.max(s.maxLoopDelayMs, s.stalls[0]?.ms ?? 0), 0)}; agent workers ${fmt(c.workersMs)} ms CPU${PG_URL ? `, PostgreSQL ${fmt(c.postgresMs)} ms` : ''}, other processes ${fmt(c.otherMs)} ms`;
    const stallLines = (s: ServerStats, origin: number) => {
      for (const st of s.stalls.slice(0, 3)) {
        const ops = Object.entries(st.ops)
          .sort((a, b) => b[1].ms - a[1].ms)
          .slice(0, 3)
          .map(([op, o]) => `${op.replace(/ \(.*\)$/, '')} ×${o.calls}${o.rows > o.calls ? ` (${fmt(o.rows)} rows)` : ''}`);
        const at = (st.start - origin) / 1000;
        row(`  stall at ${at < 0 ? '−' : '+'}${fmt(Math.abs(at), 1)} s`, `${msf(st.ms, 0)}${ops.length ? `; ended in it: ${ops.join('; ')}` : ''}`);
      }
    };

    out(`Garrison server-task benchmark — ${new Date().toISOString()}`);
    out();
    const phases = [baselineCpu, maint.cpu, backup.cpu];
    const other = phases.reduce((a, c) => a + c.otherMs, 0);
    const wall = phases.reduce((a, c) => a + c.wallMs, 0);
    if (other > 0.15 * wall) {
      out(`WARNING: other processes on this machine used ${fmt(other)} ms of CPU during the ${fmt(wall)} ms of measured phases`);
      out('         (15% of one core or more): the figures below are disturbed; run again on a quiet machine.');
      out();
    }
    out('Conditions');
    row('Node', conditions.node);
    row('OS', conditions.os);
    row('CPUs', `${conditions.cpus} × ${conditions.cpuModel}`);
    row('memory', mb(conditions.memory));
    row('database', PG_URL ? `PostgreSQL (${PG_URL.replace(/\/\/[^@]*@/, '//***@')}, schema ${pgSchema})` : 'SQLite (better-sqlite3, WAL, synchronous=NORMAL)');
    row('transport', `HTTPS with the server's own CA (${ready.caPem ? 'pinned by the agents' : '?'})`);
    row('agents (each its own device and credential)', `${fmt(N)} connected, in ${W} worker processes`);
    row('check-in load', `closed loop, ${WINDOW} in flight per worker (${WINDOW * W} in all), with inventory, in 1-s phases`);
    row('old rows (past the 90-day retention)', `${fmt(EVENTS)} events, ${fmt(RUNS)} finished runs (${OLD_MIN_DAYS}–${OLD_MIN_DAYS + OLD_SPAN_DAYS} days old)`);
    row('recent rows (must survive)', `${fmt(RECENT)} events, ${fmt(RECENT)} runs (and the server's own)`);
    row('task_device_state rows', `${fmt(TASK_STATES)} (${fmt(TASK_STATES / N, 1)} client tasks' latest run per device; the runs purge keeps the runs they name)`);
    row('load average at start (1, 5, 15 min)', conditions.loadAverageAtStart.map((x) => x.toFixed(2)).join(', '));
    out();
    out('Baseline check-ins');
    row('check-ins per second', `${fmt(baseline.perSecond)} (${fmt(baseline.count)} in ${fmt(baseline.elapsedMs / 1000, 1)} s)`);
    row('latency p50 / p99 / max', lat(baseline));
    row('server', serverLine(baselineServer, baselineCpu));
    out();
    out(`Database maintenance ("${maintenanceTask.name}", settings ${JSON.stringify(maintenanceTask.settings)})`);
    row('run (startedAt → endedAt)', `${fmt(maint.runMs / 1000, 2)} s; run-now call → end seen ${fmt(maint.wallMs / 1000, 2)} s`);
    row('removed', `${fmt(mres.removed.events)} events, ${fmt(mres.removed.runs)} runs, ${fmt(mres.removed.serverTaskRuns)} server task runs, ${fmt(mres.removed.sessions)} sessions`);
    const removedRows = mres.removed.events + mres.removed.runs + mres.removed.serverTaskRuns;
    const purgeMs = purgeOps(maint.server).reduce((a, [, o]) => a + o.totalMs, 0);
    row('rows removed per second (whole run)', fmt((removedRows / maint.runMs) * 1000));
    if (purgeMs > 0) row('rows removed per second (purge statements only)', `${fmt((removedRows / purgeMs) * 1000)} (purge ${fmt(purgeMs / 1000, 2)} s; the rest is ${mres.maintenance.join(', ')} and sizes)`);
    for (const [op, o] of purgeOps(maint.server)) row(`  ${op.replace(/^db: /, '')}`, `${fmt(o.rows)} rows in ${fmt(o.totalMs / 1000, 2)} s (+${fmt((o.firstStart - maint.startedAt) / 1000, 1)} s → +${fmt((o.lastEnd - maint.startedAt) / 1000, 1)} s)`);
    row('done after the purge', mres.maintenance.join(', '));
    row('database size before → after', `${mb(mres.sizeBeforeBytes)} (${mb(mres.freeBytesBefore)} free) → ${mb(mres.sizeAfterBytes)} (${mb(mres.freeBytesAfter)} free)`);
    row('check-in latency p50 / p99 / max', `${lat(maint.latency)} (baseline ${lat(baseline)})`);
    row('  vs. baseline', versus(maint.latency));
    if (maint.latency.worst) row('  worst 1-s phase: p99 / max', `${msf(maint.latency.worst.p99)} / ${msf(maint.latency.worst.max)}, at +${fmt(maint.latency.worst.atMs / 1000, 1)} s of the run`);
    row('server', serverLine(maint.server, maint.cpu));
    stallLines(maint.server, maint.startedAt);
    row('check: old rows left / recent rows kept', `0 / ${fmt(after.recentEvents)} events and ${fmt(after.recentRuns)} runs`);
    out();
    out(`Backup (settings { folder: <temp>/backups, keep: 1 }) of a ${mb(backupDbBytes)} database (the old rows written again)`);
    row('run (startedAt → endedAt)', `${fmt(backup.runMs / 1000, 2)} s; run-now call → end seen ${fmt(backup.wallMs / 1000, 2)} s`);
    row('archive', `${mb(bres.size)} (${path.basename(bres.file)}, checked on disk), ${bres.method}, ${fmt(backedUpRows)} rows, ${bres.files} files`);
    row('run state', `${backup.run.state}${backup.run.state === 'succeeded_with_warnings' ? ' (no passphrase set: the archive is not encrypted)' : ''}`);
    row('check-in latency p50 / p99 / max', `${lat(backup.latency)} (baseline ${lat(baseline)})`);
    row('  vs. baseline', versus(backup.latency));
    if (backup.latency.worst) row('  worst 1-s phase: p99 / max', `${msf(backup.latency.worst.p99)} / ${msf(backup.latency.worst.max)}, at +${fmt(backup.latency.worst.atMs / 1000, 1)} s of the run`);
    row('server', serverLine(backup.server, backup.cpu));
    stallLines(backup.server, backup.startedAt);
    out();
    row('check-in errors (baseline / maintenance / backup)', `${baseline.errors} / ${maint.latency.errors} / ${backup.latency.errors}`);
    row('API polls of the run retried (maint. / backup)', `${maint.pollErrors} / ${backup.pollErrors} (a server holding its event loop times new connections out)`);
    row('server log lines (warn and above)', String(serverLogLines));
    out();
    out('Targets');
    for (const t of Object.values(targets)) out(`  ${t.met ? 'MET    ' : 'MISSED '} ${t.target}`);
    console.log(lines.join('\n'));

    const profDir = path.join(ROOT, '.bench');
    mkdirSync(profDir, { recursive: true });
    writeFileSync(
      path.join(profDir, 'server-tasks-last.json'),
      JSON.stringify({ at: new Date().toISOString(), conditions, baseline, baselineServer, baselineCpu, maintenance: { ...maint, result: mres }, backup: { ...backup, result: bres, databaseBytes: backupDbBytes }, targets }, null, 2) + '\n',
    );
    log('figures written to .bench/server-tasks-last.json');
    const errors = baseline.errors + maint.latency.errors + backup.latency.errors;
    if (errors) {
      process.stderr.write(`bench FAILED: ${errors} check-ins failed\n`);
      return 1;
    }
    return opts.strict && Object.values(targets).some((t) => !t.met) ? 2 : 0;
  } catch (err) {
    const message = failure ?? (err instanceof Failed ? err.message : ((err as Error).stack ?? String(err)));
    process.stderr.write(`\nbench FAILED: ${message}\n`);
    if (serverLog.length) process.stderr.write(`--- last lines of the server log (${serverLogLines} lines in all) ---\n${serverLog.join('\n')}\n`);
    killAll();
    await dropSchema();
    return 1;
  } finally {
    clearTimeout(watchdog);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * Waits until the server's batched background writes are done: no instrumented database call
 * under way and no instrumented call at all for 300 ms.
 */
async function settle(stats: (reset: boolean) => Promise<ServerStats>, what: string, timeoutMs = 120_000): Promise<void> {
  const start = now();
  let lastCalls = -1;
  let quietSince = start;
  for (;;) {
    const s = await stats(false);
    const t = now();
    if (s.totalCalls !== lastCalls || s.dbInFlight > 0) {
      lastCalls = s.totalCalls;
      quietSince = t;
    } else if (t - quietSince >= 300) return;
    if (t - start > timeoutMs) throw new Failed(`the server's background writes after ${what} did not finish within ${timeoutMs / 1000} s`);
    await sleep(25);
  }
}

// ---------------------------------------------------------------------------------------------
// Seeding: a connection of its own (SQLite: a second connection to the file, WAL; PostgreSQL:
// a client with the server's schema), bulk inserts in transactions of CHUNK rows.

const CHUNK = 20_000;
const OLD_TASK = 'bench-old-task';
const RECENT_TASK = 'bench-recent-task';
const MESSAGE = 'device bench-agent-000123 checked in: inventory changed (2 products, 1 address)';
const DATA = JSON.stringify({ products: [{ id: 'garrison', version: '0.1.0' }, { id: 'bench-app', version: '1.0.0' }], addresses: ['10.0.0.123'] });
const OUTPUT = 'ok      install bench-app 1.0.0 [assigned]\n'.repeat(4);

class Seeder {
  #sqlite: SQLite.Database | null = null;
  #pg: pg.Client | null = null;
  #batch = 0;
  private constructor() {}

  static async open(config: DatabaseConfig): Promise<Seeder> {
    const s = new Seeder();
    if (config.kind === 'sqlite') {
      s.#sqlite = new SQLite(config.file, { fileMustExist: true });
      s.#sqlite.pragma('busy_timeout = 10000');
      s.#sqlite.pragma('synchronous = NORMAL');
    } else {
      s.#pg = new pg.Client({ connectionString: config.url, ...(config.schema ? { options: `-c search_path=${config.schema}` } : {}) });
      await s.#pg.connect();
    }
    return s;
  }
  async close(): Promise<void> {
    this.#sqlite?.close();
    await this.#pg?.end();
  }

  /**
   * `events` events and `runs` finished runs: 'old' ones between 100 and 400 days old
   * (past the 90-day retention), 'recent' ones of the last hour. Each call writes new rows.
   */
  async seed(events: number, runs: number, age: 'old' | 'recent', log: (m: string) => void): Promise<void> {
    const batch = ++this.#batch;
    const nowMs = Date.now();
    // Old: spread over 300 days from 100 days ago; recent: over the last hour.
    const timeOf = (i: number, n: number) => (age === 'old' ? nowMs - OLD_MIN_DAYS * DAY - Math.floor((i / Math.max(1, n)) * OLD_SPAN_DAYS * DAY) : nowMs - Math.floor((i / Math.max(1, n)) * 3600_000));
    const kind = age === 'old' ? 'bench.old' : 'bench.recent';
    const task = age === 'old' ? OLD_TASK : RECENT_TASK;
    let lastLog = now();
    const progress = (what: string, done: number, n: number) => {
      if (now() - lastLog > 5000) {
        lastLog = now();
        log(`  ${what}: ${fmt(done)} of ${fmt(n)}`);
      }
    };
    if (this.#sqlite) {
      const db = this.#sqlite;
      const ev = db.prepare('insert into events (time, severity, kind, message, actor, device_id, group_id, task_id, run_id, product, data) values (?, ?, ?, ?, null, ?, null, null, null, null, ?)');
      const run = db.prepare(
        'insert into runs (id, task_id, device_id, request_id, state, percent, attempt, seq, cause, created_at, started_at, ended_at, exit_code, reason, output_tail, expires_at, updated_at) values (?, ?, ?, null, ?, 100, 1, 2, ?, ?, ?, ?, 0, null, ?, null, ?)',
      );
      const evChunk = db.transaction((from: number, to: number) => {
        for (let i = from; i < to; i++) ev.run(new Date(timeOf(i, events)).toISOString(), 'info', kind, MESSAGE, `bench-dev-${i % 2000}`, DATA);
      });
      const runChunk = db.transaction((from: number, to: number) => {
        for (let i = from; i < to; i++) {
          const t = new Date(timeOf(i, runs)).toISOString();
          run.run(`${task}-${batch}-${i}`, task, `bench-dev-${i % 2000}`, 'succeeded', 'run-now', t, t, t, OUTPUT, t);
        }
      });
      for (let i = 0; i < events; i += CHUNK) {
        evChunk(i, Math.min(events, i + CHUNK));
        progress(`${age} events`, i, events);
        // Between chunks, the server's writes get the lock.
        await sleep(1);
      }
      for (let i = 0; i < runs; i += CHUNK) {
        runChunk(i, Math.min(runs, i + CHUNK));
        progress(`${age} runs`, i, runs);
        await sleep(1);
      }
      return;
    }
    const c = this.#pg!;
    const PG_CHUNK = 100_000;
    const iso = (ms: string) => `to_char(to_timestamp((${ms}) / 1000.0) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
    const timeSql = (n: number) =>
      age === 'old' ? `${nowMs - OLD_MIN_DAYS * DAY} - floor(i::float8 / ${Math.max(1, n)} * ${OLD_SPAN_DAYS * DAY})` : `${nowMs} - floor(i::float8 / ${Math.max(1, n)} * 3600000)`;
    for (let i = 0; i < events; i += PG_CHUNK) {
      await c.query(
        `insert into events (time, severity, kind, message, device_id, data)
         select ${iso(timeSql(events))}, 'info', $1, $2, 'bench-dev-' || (i % 2000), $3 from generate_series($4::int, $5::int) i`,
        [kind, MESSAGE, DATA, i, Math.min(events, i + PG_CHUNK) - 1],
      );
      progress(`${age} events`, i, events);
    }
    for (let i = 0; i < runs; i += PG_CHUNK) {
      await c.query(
        `insert into runs (id, task_id, device_id, state, percent, attempt, seq, cause, created_at, started_at, ended_at, exit_code, output_tail, updated_at)
         select $1 || '-' || i, $2, 'bench-dev-' || (i % 2000), 'succeeded', 100, 1, 2, 'run-now', t, t, t, 0, $3, t
         from (select i, ${iso(timeSql(runs))} as t from generate_series($4::int, $5::int) i) s`,
        [`${task}-${batch}`, task, OUTPUT, i, Math.min(runs, i + PG_CHUNK) - 1],
      );
      progress(`${age} runs`, i, runs);
    }
  }

  /**
   * `count` rows of task_device_state (a device's latest run of a client task), for tasks of
   * 2,000 devices each, naming recent runs: the table the runs purge checks every candidate against.
   */
  async taskStates(count: number, recentRuns: number): Promise<void> {
    if (count === 0) return;
    const t = new Date().toISOString();
    const runId = (i: number) => (recentRuns > 0 ? `${RECENT_TASK}-${this.#batch}-${i % recentRuns}` : `bench-missing-run-${i}`);
    if (this.#sqlite) {
      const ins = this.#sqlite.prepare("insert into task_device_state (task_id, device_id, run_id, run_created_at, state, updated_at) values (?, ?, ?, ?, 'succeeded', ?)");
      this.#sqlite.transaction(() => {
        for (let i = 0; i < count; i++) ins.run(`bench-task-${Math.floor(i / 2000)}`, `bench-dev-${i % 2000}`, runId(i), t, t);
      })();
      return;
    }
    for (let i = 0; i < count; i += 100_000) {
      const to = Math.min(count, i + 100_000) - 1;
      await this.#pg!.query(
        `insert into task_device_state (task_id, device_id, run_id, run_created_at, state, updated_at)
         select 'bench-task-' || (i / 2000), 'bench-dev-' || (i % 2000), case when $1::int > 0 then $2 || '-' || (i % greatest($1::int, 1)) else 'bench-missing-run-' || i end, $3, 'succeeded', $3
         from generate_series($4::int, $5::int) i`,
        [recentRuns, `${RECENT_TASK}-${this.#batch}`, t, i, to],
      );
    }
  }

  /** Fresh planner statistics, as a database in service has (PostgreSQL's autovacuum; SQLite's ANALYZE). */
  async analyze(): Promise<void> {
    if (this.#sqlite) this.#sqlite.exec('analyze events; analyze runs; analyze task_device_state;');
    else await this.#pg!.query('analyze events; analyze runs; analyze task_device_state;');
  }

  async counts(): Promise<{ oldEvents: number; recentEvents: number; oldRuns: number; recentRuns: number }> {
    const q = async (text: string, arg: string) => {
      if (this.#sqlite) return Number(Object.values(this.#sqlite.prepare(text.replace('$1', '?')).get(arg) as object)[0]);
      return Number(Object.values((await this.#pg!.query(text, [arg])).rows[0] as object)[0]);
    };
    return {
      oldEvents: await q('select count(*) as n from events where kind = $1', 'bench.old'),
      recentEvents: await q('select count(*) as n from events where kind = $1', 'bench.recent'),
      oldRuns: await q('select count(*) as n from runs where task_id = $1', OLD_TASK),
      recentRuns: await q('select count(*) as n from runs where task_id = $1', RECENT_TASK),
    };
  }

  async sizeBytes(): Promise<number> {
    if (this.#sqlite) return Number(this.#sqlite.pragma('page_count', { simple: true })) * Number(this.#sqlite.pragma('page_size', { simple: true }));
    const r = await this.#pg!.query(
      `select sum(pg_total_relation_size(c.oid))::bigint as bytes from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = current_schema() and c.relkind = 'r'`,
    );
    return Number(r.rows[0]?.bytes ?? 0);
  }
}
