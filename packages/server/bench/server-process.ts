/**
 * The server under test, alone in its own process so that its memory is measured alone.
 * Started by bench.ts with an IPC channel: argv[2] is the data folder, argv[3] the database
 * configuration as JSON, argv[4] `tls` (the default: HTTPS with the server's own CA, in
 * `<data>/tls`, kept across the restart) or `http` (plain HTTP, `tls: false`). It answers
 * memory and statistics requests over IPC; its `ready` message carries the CA agents pin.
 * Several of these on one PostgreSQL database (instances.ts) share the GARRISON_SECRET_KEY
 * given in the environment; each has its own data folder.
 *
 * Instrumentation: a few hot functions of the stores, services and hub are wrapped (on their
 * prototypes, from here, without changing the server's code) to count calls, rows and time,
 * so that the report can say where the time goes.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay, performance, type EventLoopUtilization } from 'node:perf_hooks';
import { startServer, type GarrisonServer } from '../src/app.ts';
import type { DatabaseConfig } from '../src/storage/database.ts';
import { RunStore } from '../src/storage/run-store.ts';
import { DeviceStore } from '../src/storage/device-store.ts';
import { EventStore } from '../src/storage/event-store.ts';
import { AgentConnections } from '../src/agent-hub/connections.ts';
import { AgentService } from '../src/services/agent-service.ts';
import { EnrolmentService } from '../src/services/enrolment-service.ts';
import { RunService } from '../src/services/run-service.ts';
import { DeploymentService } from '../src/services/deployment-service.ts';
import { RepositoryService } from '../src/services/repository-service.ts';
import { DeploymentStore } from '../src/storage/deployment-store.ts';
import { PackageStore } from '../src/storage/package-store.ts';
import { AGENT_PACKAGES_PATH } from '@garrison/protocol';
import { now, type FromServer, type OpStat, type ProfileSummary, type ServerStats, type Stall, type ToServer } from './shared.ts';

const send = (m: FromServer) => process.send!(m);
process.on('disconnect', () => process.exit(1));

let ops: Record<string, OpStat> = {};
let dbInFlight = 0;
let totalCalls = 0;
function record(name: string, start: number, rows: number): void {
  if (name.startsWith('db:')) dbInFlight--;
  const end = now();
  const ms = end - start;
  const s = (ops[name] ??= { calls: 0, rows: 0, totalMs: 0, maxMs: 0, maxRows: 0, firstStart: start, lastEnd: end });
  s.calls++;
  s.rows += rows;
  s.totalMs += ms;
  if (ms > s.maxMs) s.maxMs = ms;
  if (rows > s.maxRows) s.maxRows = rows;
  s.lastEnd = end;
  recent.push({ name, start, end, rows });
}

// Stalls: a 10 ms interval timer that fires late means the loop ran no timer meanwhile (it
// was in I/O callbacks, microtasks or synchronous work). The calls that ended since the last
// tick say what it was busy with.
let recent: { name: string; start: number; end: number; rows: number }[] = [];
let stalls: Stall[] = [];
let lastTick = now();
setInterval(() => {
  const t = now();
  const gap = t - lastTick;
  if (gap > 100) {
    const ops: Stall['ops'] = {};
    for (const r of recent) {
      const o = (ops[r.name] ??= { calls: 0, rows: 0, ms: 0 });
      o.calls++;
      o.rows += r.rows;
      o.ms += r.end - Math.max(r.start, lastTick);
    }
    stalls.push({ start: lastTick, ms: gap, ops });
    stalls = stalls.sort((a, b) => b.ms - a.ms).slice(0, 5);
  }
  recent = [];
  lastTick = t;
}, 10).unref();

/** Wraps `proto[method]` to record its duration (to settlement, for promises) and rows. */
function instrument(proto: object, method: string, name: string, rows: (args: unknown[], result: unknown) => number): void {
  const target = proto as Record<string, (...args: unknown[]) => unknown>;
  const original = target[method];
  if (typeof original !== 'function') throw new Error(`cannot instrument ${name}: no method ${method}`);
  target[method] = function (this: unknown, ...args: unknown[]) {
    const start = now();
    totalCalls++;
    if (name.startsWith('db:')) dbInFlight++;
    let result: unknown;
    try {
      result = original.apply(this, args);
    } catch (err) {
      if (name.startsWith('db:')) dbInFlight--;
      record(`failed: ${name}`, start, 0);
      throw err;
    }
    if (result instanceof Promise) {
      return result.then(
        (v: unknown) => {
          record(name, start, rows(args, v));
          return v;
        },
        (err: unknown) => {
          if (name.startsWith('db:')) dbInFlight--;
          record(`failed: ${name}`, start, 0);
          throw err;
        },
      );
    }
    record(name, start, rows(args, result));
    return result;
  };
}
const len = (i: number) => (args: unknown[]) => (Array.isArray(args[i]) ? (args[i] as unknown[]).length : 1);
instrument(RunStore.prototype, 'applyReports', 'db: applyReports (ingest transaction)', len(0));
instrument(RunStore.prototype, 'insertPendingRuns', 'db: insertPendingRuns (run-now)', len(0));
instrument(RunStore.prototype, 'pendingRunsForDevices', 'db: pendingRunsForDevices (a batch of check-ins)', len(0));
instrument(RunStore.prototype, 'latestStates', 'db: latestStates (progress)', (_a, r) => (r instanceof Map ? r.size : 0));
instrument(DeviceStore.prototype, 'recordCheckIns', 'db: recordCheckIns (check-in batch)', len(0));
instrument(DeviceStore.prototype, 'getCredentials', 'db: getCredentials (auth cache misses, batched)', len(0));
instrument(DeviceStore.prototype, 'insertDevice', 'db: insertDevice (enrol)', () => 1);
instrument(EventStore.prototype, 'insertEvents', 'db: insertEvents (event log batch)', len(0));
instrument(AgentService.prototype, 'checkIn', 'svc: AgentService.checkIn', () => 1);
instrument(AgentService.prototype, 'submitReports', 'svc: submitReports → ack (queue+commit)', len(1));
instrument(EnrolmentService.prototype, 'enrol', 'svc: EnrolmentService.enrol', () => 1);
instrument(EnrolmentService.prototype, 'authenticateDevice', 'svc: authenticateDevice', () => 1);
instrument(RunService.prototype, 'runNow', 'svc: RunService.runNow (whole call)', () => 1);
instrument(RunService.prototype, 'progress', 'svc: RunService.progress', () => 1);
// The hub's sockets moved to AgentConnections (issue 14): the sends are counted there.
instrument(AgentConnections.prototype, 'sendEach', 'hub: sendEach (run-now push)', (_a, r) => (typeof r === 'number' ? r : 0));
instrument(AgentConnections.prototype, 'send', 'hub: send (broadcast, e.g. sync)', (_a, r) => (typeof r === 'number' ? r : 0));
// Deployment: the plan at each check-in, state batches, compliance, repository check-in, downloads.
instrument(DeploymentService.prototype, 'planFor', 'svc: DeploymentService.planFor (per check-in)', () => 1);
instrument(DeploymentService.prototype, 'compliance', 'svc: DeploymentService.compliance (API)', () => 1);
instrument(DeploymentStore.prototype, 'putStates', 'db: putStates (deployment states batch)', len(0));
instrument(DeploymentStore.prototype, 'listStates', 'db: listStates (compliance)', (_a, r) => (Array.isArray(r) ? r.length : 0));
instrument(RepositoryService.prototype, 'add', 'svc: RepositoryService.add (package check-in)', () => 1);
instrument(RepositoryService.prototype, 'openArchive', 'svc: openArchive (per download)', () => 1);
instrument(PackageStore.prototype, 'get', 'db: PackageStore.get (per download)', () => 1);
// Server tasks (server-tasks.ts): the purges of the database maintenance, rows removed.
const count = (_a: unknown[], r: unknown) => (typeof r === 'number' ? r : 0);
instrument(EventStore.prototype, 'purgeBefore', 'db: EventStore.purgeBefore (purge)', count);
instrument(RunStore.prototype, 'purgeRunsBefore', 'db: RunStore.purgeRunsBefore (purge)', count);

const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
let eluMark: EventLoopUtilization = performance.eventLoopUtilization();
let cpuMark = process.cpuUsage();
let wallMark = now();

function stats(reset: boolean, server: GarrisonServer): ServerStats {
  const cpu = process.cpuUsage(cpuMark);
  const elu = performance.eventLoopUtilization(eluMark);
  const s: ServerStats = {
    online: server.presence.onlineCount(),
    localOnline: server.presence.local.count(),
    cpuMs: (cpu.user + cpu.system) / 1000,
    wallMs: now() - wallMark,
    elu: elu.utilization,
    maxLoopDelayMs: loopDelay.max / 1e6,
    ops,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    dbInFlight,
    totalCalls,
    stalls,
  };
  if (reset) {
    ops = {};
    stalls = [];
    loopDelay.reset();
    eluMark = performance.eventLoopUtilization();
    cpuMark = process.cpuUsage();
    wallMark = now();
  }
  return s;
}

// CPU profiles of chosen phases (--cpu-prof), through the inspector, so that only the phase is sampled.
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}
let session: Session | null = null;
async function profileStart(): Promise<void> {
  session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 250 });
  await session.post('Profiler.start');
}
const SOCKET_WRITES = new Set(['writev', 'writeUtf8String', 'writeBuffer', 'writeLatin1String', 'writeAsciiString']);
/** Where a frame's code comes from; native frames (no script) are charged to what called them. */
function category(n: ProfileNode, parentOf: Map<number, ProfileNode>): string {
  const { url, functionName: fn } = n.callFrame;
  if (!url) {
    if (fn.startsWith('(')) return fn;
    if (SOCKET_WRITES.has(fn)) return 'socket writes (native)';
    let p = parentOf.get(n.id);
    while (p && !p.callFrame.url && parentOf.has(p.id)) p = parentOf.get(p.id);
    if (!p || !p.callFrame.url) return `native ${fn || '(anonymous)'}`;
    if (p.callFrame.url.includes('/better-sqlite3/') && p.callFrame.functionName === 'prepare') return 'SQLite: prepare statement (native)';
    if (p.callFrame.url.includes('/better-sqlite3/') || p.callFrame.url.includes('/dialect/sqlite/')) return 'SQLite: execute (native)';
    if (p.callFrame.url.includes('/typebox/') || p.callFrame.url.includes('/protocol/')) return 'typebox';
    return `native, from ${category(p, parentOf)}`;
  }
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1]!;
  const ours = /\/packages\/([^/]+)\/(src|bench)\//.exec(url);
  if (ours) return ours[2] === 'bench' ? 'bench instrumentation' : `garrison ${ours[1]}`;
  if (url.startsWith('node:')) return 'node core (net, streams, http, events)';
  return url;
}
async function profileStop(file: string): Promise<ProfileSummary | null> {
  if (!session) return null;
  const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: Profile };
  session.disconnect();
  session = null;
  await writeFile(file, JSON.stringify(profile));
  const parentOf = new Map<number, ProfileNode>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n);
  // Each sample counts the same (the mean interval): a sample followed by a long gap (the
  // process descheduled on a busy machine) must not be charged for the gap.
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const each = samples.length ? (profile.endTime - profile.startTime) / 1000 / samples.length : 0;
  for (const id of samples) self.set(id, (self.get(id) ?? 0) + each);
  const byCat = new Map<string, number>();
  const byFn = new Map<string, number>();
  let total = 0;
  const label = (n: ProfileNode): string => {
    const { functionName, url, lineNumber } = n.callFrame;
    const short = url.replace(/^.*\/(node_modules|packages)\//, '').replace(/^file:\/\//, '');
    return `${functionName || '(anonymous)'}${short ? ` ${short}:${lineNumber + 1}` : ''}`;
  };
  for (const n of profile.nodes) {
    const t = self.get(n.id) ?? 0;
    if (!t) continue;
    const cat = category(n, parentOf);
    byCat.set(cat, (byCat.get(cat) ?? 0) + t);
    const parent = parentOf.get(n.id);
    const key = n.callFrame.url || n.callFrame.functionName.startsWith('(') || !parent ? label(n) : `${label(n)} [native] ← ${label(parent)}`;
    byFn.set(key, (byFn.get(key) ?? 0) + t);
    total += t;
  }
  const top = (m: Map<string, number>, k: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([name, ms]) => ({ name, ms }));
  return { file, totalMs: total, byCategory: top(byCat, 14), byFunction: top(byFn, 25) };
}

async function main(): Promise<void> {
  const dataDir = process.argv[2];
  const database = JSON.parse(process.argv[3] ?? 'null') as DatabaseConfig | null;
  const transport = process.argv[4] ?? 'tls';
  if (!dataDir || !database || (transport !== 'tls' && transport !== 'http')) throw new Error('usage: server-process.ts <dataDir> <database-config-json> [tls|http]');
  const server = await startServer({ dataDir, database, host: '127.0.0.1', port: 0, logLevel: process.env.GARRISON_BENCH_LOG ?? 'warn', ...(transport === 'http' ? { tls: false as const } : process.env.GARRISON_TLS_GROUPS ? { tls: { groups: process.env.GARRISON_TLS_GROUPS } } : {}) });
  if ((transport === 'tls') !== !!server.tls) throw new Error(`asked for ${transport}, but the server ${server.tls ? 'serves HTTPS' : 'serves plain HTTP'}`);
  // An instance that joined a database another one created writes no admin token (the first
  // one's works on every instance): '' then.
  const adminToken = (await readFile(server.adminTokenFile, 'utf8').catch(() => '')).trim();
  // Package downloads, from the request to the last byte handed to the socket (they overlap: a latency).
  server.http.server.on('request', (req, res) => {
    if (!req.url?.startsWith(AGENT_PACKAGES_PATH + '/')) return;
    const start = now();
    totalCalls++;
    // Until the response closes: the agent may close its connection on the last byte, before the server ends the response.
    res.once('close', () => record(res.headersSent && res.statusCode === 200 ? 'http: package download (request → close)' : 'failed: http: package download', start, 1));
  });
  stats(true, server);
  process.on('message', (m: ToServer) => {
    void (async () => {
      if (m.cmd === 'mem') {
        const gc = (globalThis as { gc?: () => void }).gc;
        if (m.gc && gc) {
          // Several passes, with turns of the loop between, so that weak and finalized objects go too.
          for (let i = 0; i < 4; i++) {
            gc();
            await new Promise((r) => setImmediate(r));
          }
        }
        const u = process.memoryUsage();
        send({ ev: 'mem', seq: m.seq, gc: m.gc && !!gc, mem: { rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external, arrayBuffers: u.arrayBuffers } });
      } else if (m.cmd === 'stats') {
        send({ ev: 'stats', seq: m.seq, stats: stats(m.reset, server) });
      } else if (m.cmd === 'profile-start') {
        await profileStart();
        send({ ev: 'profile', seq: m.seq, summary: null });
      } else if (m.cmd === 'profile-stop') {
        send({ ev: 'profile', seq: m.seq, summary: await profileStop(m.file) });
      } else if (m.cmd === 'close') {
        await server.close();
        send({ ev: 'closed', seq: m.seq });
        process.disconnect();
        setTimeout(() => process.exit(0), 100).unref();
      }
    })().catch((err: unknown) => send({ ev: 'failed', message: (err as Error).stack ?? String(err) }));
  });
  send({ ev: 'ready', url: server.url, adminToken, database: database.kind, caPem: server.tls?.caPem ?? null, caFingerprint: server.tls?.caFingerprint ?? null });
}

main().catch((err: unknown) => {
  send({ ev: 'failed', message: (err as Error).stack ?? String(err) });
  setTimeout(() => process.exit(1), 100).unref();
});
