/**
 * One process of simulated agents. Each agent is enrolled through the real enrolment endpoint
 * (so it has its own device and credential), holds its own WebSocket bound to one of several
 * loopback source addresses (so that no source address runs out of ephemeral ports), and
 * speaks the real agent protocol: check-in with inventory, check-in again on `sync`, and on
 * `run-now` reports `succeeded` (seq 2) and waits for its ack, as the real agent does with a
 * command that ends at once: its `running` report (seq 1) waits 250 ms for a newer one of the
 * run (the agent's report coalescing) and is replaced in the spool before it is sent.
 *
 * TLS: as real agents, the simulated agents trust only the server's own CA (given by bench.ts
 * from the server's `tls.caPem`): enrolment goes through `pinnedFetch(caPem)`, the WebSocket
 * and the package downloads pass the CA as `ca` (host name checked as usual). With `--http`
 * the server serves plain HTTP and no CA is given.
 *
 * Deployment: a check-in result that carries an install step makes the agent download the
 * package archive over HTTPS (GET /agent/v1/packages/<id>, with its own credential, on a new
 * connection from its own source address: a full TLS handshake, no session resumed), hash it as it arrives and verify the SHA-256 and
 * the Ed25519 signature as the real agent does (package-verify.ts), with the key it got at
 * enrolment. It extracts and runs nothing. It then reports a run of the built-in deployment
 * task (running, then succeeded with a `deployment.installed` event) and checks in with the
 * product at its new version in its inventory. Downloads are bounded per worker.
 *
 * Driven by bench.ts over IPC (see shared.ts for the messages).
 */
import { createHash, randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import WebSocket from 'ws';
import {
  AGENT_ENROL_PATH,
  AGENT_PACKAGES_PATH,
  BUILTIN_PRODUCT,
  DEPLOYMENT_TASK_TYPE,
  DeploymentEventKind,
  type AckMessage,
  type CheckInResult,
  type DeploymentInstruction,
  type DeploymentPackageRef,
  type EnrolResponse,
  type Inventory,
  type RunReport,
  type RunRequest,
  type ServerToAgent,
} from '@garrison/protocol';
import { pinnedFetch } from '@garrison/protocol/tls';
import { PackageVerificationError, verifySignedHash } from '../../agent/src/package-verify.ts';
import { emptyStatus, now, type DeployCollected, type FailoverCollected, type FromWorker, type InstanceStatus, type ToWorker, type WorkerStatus } from './shared.ts';

const send = (m: FromWorker) => process.send!(m);
process.on('disconnect', () => process.exit(1));

type Reply = (msg: ServerToAgent, at: number) => void;

interface Agent {
  /** Index in this worker. */
  k: number;
  hostname: string;
  deviceId: string;
  credential: string;
  ws: WebSocket | null;
  open: boolean;
  nextId: number;
  pending: Map<number, Reply> | null;
  etag: string | undefined;
  syncQueued: boolean;
  runIds: Set<string> | null;
  /** The loopback source address of its socket (its downloads come from there too). */
  localAddress: string;
  /** The built-in deployment task, from its task list. */
  deployTaskId: string | null;
  /** Products installed from packages: product → version (reported in its inventory). */
  installed: Map<string, string> | null;
  /** "product@version" being downloaded and installed now. */
  deploying: string | null;
  /** Several instances: its index over all workers, its home instance and the one it is on now (-1: none). */
  g: number;
  home: number;
  instance: number;
  /** Failover mode: reports not acked yet, the latest per run (resent after a reconnect). */
  spool: Map<string, RunReport> | null;
}

let agents: Agent[] = [];
let closing = false;
const status: WorkerStatus = emptyStatus();
let runNowAt = new Float64Array(0);
let runningAckAt = new Float64Array(0);
/** The real agent's wait before it sends a report that is not final (packages/agent/src/agent.ts). */
const REPORT_COALESCE_MS = 250;
let finalAckAt = new Float64Array(0);
let rejected = 0;
let firstRejection = '';
let syncWindow = 64;
/** The server's package-signing key, from the enrolment answer (the same for every agent). */
let signingPublicKey = '';

function fail(what: string): void {
  status.errors++;
  status.lastError = what;
}

function inventory(hostname: string, k: number, installed?: Map<string, string> | null): Inventory {
  return {
    hostname,
    osPlatform: 'linux',
    osName: 'Ubuntu',
    osVersion: '24.04',
    arch: 'x64',
    addresses: [`10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`],
    agentVersion: '0.1.0',
    timeZone: 'UTC',
    products: [{ id: 'garrison', version: '0.1.0', running: true }, ...[...(installed ?? [])].map(([id, version]) => ({ id, version, running: true }))],
  };
}

/** Runs `fn` over 0..count-1 with at most `concurrency` at once. */
async function pool(count: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) await fn(next++);
  });
  await Promise.all(lanes);
}

async function enrol(m: Extract<ToWorker, { cmd: 'enrol' }>): Promise<void> {
  const start = now();
  agents = [];
  let ok = 0;
  let failed = 0;
  let firstError = '';
  const slots: (Agent | undefined)[] = new Array(m.count);
  // The real agent's enrolment: fetch that trusts only the server's CA (plain fetch with --http).
  const fetchPinned = pinnedFetch(m.caPem);
  await pool(m.count, m.concurrency, async (k) => {
    const hostname = `bench-agent-${String(m.first + k).padStart(6, '0')}`;
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await fetchPinned((m.urls ? m.urls[(m.first + k) % m.urls.length]! : m.url) + AGENT_ENROL_PATH, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ token: m.token, inventory: inventory(hostname, m.first + k), name: hostname }),
          signal: AbortSignal.timeout(30_000),
        });
        const body = (await res.json()) as EnrolResponse & { error?: { message: string } };
        if (res.status !== 201) throw new Error(`HTTP ${res.status}: ${body.error?.message ?? JSON.stringify(body)}`);
        if (signingPublicKey && body.signingPublicKey !== signingPublicKey) throw new Error('the server answered enrolments with different signing keys');
        signingPublicKey = body.signingPublicKey;
        slots[k] = {
          k,
          hostname,
          deviceId: body.deviceId,
          credential: body.credential,
          ws: null,
          open: false,
          nextId: 1,
          pending: null,
          etag: undefined,
          syncQueued: false,
          runIds: null,
          localAddress: '127.0.0.1',
          deployTaskId: null,
          installed: null,
          deploying: null,
          g: m.first + k,
          home: m.urls ? (m.first + k) % m.urls.length : 0,
          instance: -1,
          spool: null,
        };
        ok++;
        return;
      } catch (err) {
        // A transient socket error is retried; a refusal is not.
        if (attempt >= 3 || String(err).includes('HTTP 4')) {
          failed++;
          firstError ||= `${hostname}: ${(err as Error).message}`;
          return;
        }
      }
    }
  });
  agents = slots.filter((a): a is Agent => a !== undefined);
  agents.forEach((a, k) => (a.k = k));
  runNowAt = new Float64Array(agents.length).fill(Number.NaN);
  runningAckAt = new Float64Array(agents.length).fill(Number.NaN);
  finalAckAt = new Float64Array(agents.length).fill(Number.NaN);
  send({ ev: 'enrolled', seq: m.seq, ok, failed, ms: now() - start, firstError });
}

/** Sends a request with an id; `reply` gets the answer carrying that id in `re`. */
function request(a: Agent, msg: Record<string, unknown>, reply: Reply): boolean {
  if (!a.open || !a.ws) return false;
  const id = a.nextId++;
  (a.pending ??= new Map()).set(id, reply);
  a.ws.send(JSON.stringify({ ...msg, id }));
  return true;
}

function onMessage(a: Agent, data: WebSocket.RawData): void {
  const at = now();
  let msg: ServerToAgent;
  try {
    msg = JSON.parse(data.toString()) as ServerToAgent;
  } catch {
    fail('a server message is not JSON');
    return;
  }
  const re = 're' in msg ? msg.re : undefined;
  if (re !== undefined) {
    const reply = a.pending?.get(re as number);
    if (reply) {
      a.pending!.delete(re as number);
      reply(msg, at);
      return;
    }
  }
  switch (msg.type) {
    case 'run-now':
      for (const r of msg.requests) startRun(a, r, at);
      break;
    case 'sync':
      status.syncReceived++;
      queueSync(a);
      break;
    case 'error':
      fail(`server error: ${msg.code} ${msg.message}`);
      break;
    default:
      break;
  }
}

/** The TLS of the connections (from the first): protocol and cipher; null on plain HTTP. */
let tlsSeen: { protocol: string; cipher: string } | null = null;
let plainSockets = 0;

function connectOne(a: Agent, wsUrl: string, localAddress: string, caPem: string | null): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, {
      headers: { authorization: `Bearer ${a.credential}` },
      perMessageDeflate: false,
      localAddress,
      handshakeTimeout: 30_000,
      skipUTF8Validation: true,
      // As the real agent's transport: only the server's CA is trusted.
      ...(caPem ? { ca: caPem } : {}),
    });
    a.ws = ws;
    let settled = false;
    ws.on('upgrade', (res) => {
      const socket = res.socket as TLSSocket;
      if (!socket.encrypted) plainSockets++;
      else tlsSeen ??= { protocol: socket.getProtocol() ?? '?', cipher: socket.getCipher()?.standardName ?? '?' };
    });
    ws.on('open', () => {
      settled = true;
      a.open = true;
      status.open++;
      resolve();
    });
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      ws.terminate();
      if (!settled) {
        settled = true;
        reject(new Error(`HTTP ${res.statusCode} at the upgrade`));
      }
    });
    ws.on('error', (err) => {
      if (!settled) {
        settled = true;
        reject(err);
      }
    });
    ws.on('message', (data) => onMessage(a, data));
    ws.on('close', (code) => {
      // A failed attempt's socket closes after the next attempt began.
      if (a.ws !== ws) return;
      if (a.open) {
        a.open = false;
        status.open--;
        if (!closing && failover) onDropped(a);
        else if (!closing) {
          status.unexpectedCloses++;
          fail(`socket of ${a.hostname} closed by the server (code ${code})`);
        }
      }
      a.pending = null;
    });
  });
}

async function connect(m: Extract<ToWorker, { cmd: 'connect' }>): Promise<void> {
  const start = now();
  let ok = 0;
  let failed = 0;
  let firstError = '';
  await pool(agents.length, m.concurrency, async (k) => {
    const a = agents[k]!;
    // Spread over the source addresses by device, so that every address carries its share.
    const localAddress = m.addresses[k % m.addresses.length]!;
    a.localAddress = localAddress;
    if (m.wsUrls) {
      wsUrls = m.wsUrls;
      a.g = (m.firstIndex ?? 0) + k;
      a.home = a.g % m.wsUrls.length;
    }
    wsCa = m.caPem;
    try {
      await connectOne(a, m.wsUrls ? m.wsUrls[a.home]! : m.wsUrl, localAddress, m.caPem);
      a.instance = a.home;
      ok++;
    } catch (err) {
      failed++;
      firstError ||= `${a.hostname} from ${localAddress}: ${(err as Error).message}`;
    }
  });
  if (m.caPem && plainSockets) {
    failed += plainSockets;
    firstError ||= `${plainSockets} WebSockets are not over TLS`;
  }
  send({ ev: 'connected', seq: m.seq, ok, failed, ms: now() - start, firstError, tls: tlsSeen });
}

function checkInMessage(a: Agent): Record<string, unknown> {
  return { type: 'check-in', inventory: inventory(a.hostname, a.k, a.installed), ...(a.etag ? { tasksEtag: a.etag } : {}) };
}
function onCheckInResult(a: Agent, msg: ServerToAgent, at: number): boolean {
  if (msg.type !== 'check-in-result') {
    fail(`check-in answered with ${msg.type}${msg.type === 'error' ? `: ${msg.code} ${msg.message}` : ''}`);
    return false;
  }
  const r = msg as CheckInResult;
  a.etag = r.tasksEtag;
  if (r.tasks) a.deployTaskId = r.tasks.find((t) => t.product === BUILTIN_PRODUCT && t.type === DEPLOYMENT_TASK_TYPE)?.id ?? null;
  for (const req of r.runRequests) startRun(a, req, at);
  if (r.deployment?.steps.length) onDeploymentSteps(a, r.deployment.steps, at);
  return true;
}

/** The measured phase: check-ins as fast as the server answers, `window` in flight per worker. */
function checkInPhase(m: Extract<ToWorker, { cmd: 'check-in' }>): void {
  const latencies: number[] = [];
  let count = 0;
  let errors = 0;
  let inFlight = 0;
  let cursor = 0;
  let done = false;
  const start = now();
  const deadline = start + m.durationMs;
  let end = start;
  const launch = () => {
    let tried = 0;
    while (inFlight < m.window && now() < deadline && tried < agents.length) {
      const a = agents[cursor++ % agents.length]!;
      tried++;
      const sentAt = now();
      const ok = request(a, checkInMessage(a), (msg, at) => {
        inFlight--;
        if (onCheckInResult(a, msg, at)) {
          count++;
          latencies.push(at - sentAt);
        } else errors++;
        end = at;
        launch();
      });
      if (ok) inFlight++;
    }
    if (inFlight === 0 && !done) {
      done = true;
      send({ ev: 'check-ins', seq: m.seq, count, start, end, latenciesMs: Float64Array.from(latencies), errors });
    }
  };
  launch();
}

/** `sync`: the agent checks in at once (its task list changed), within the worker's window. */
const syncQueue: Agent[] = [];
let syncInFlight = 0;
function queueSync(a: Agent): void {
  if (a.syncQueued) return;
  a.syncQueued = true;
  syncQueue.push(a);
  status.checkInsOutstanding++;
  pumpSync();
}
function pumpSync(): void {
  while (syncInFlight < syncWindow && syncQueue.length) {
    const a = syncQueue.shift()!;
    a.syncQueued = false;
    const ok = request(a, checkInMessage(a), (msg, at) => {
      syncInFlight--;
      status.checkInsOutstanding--;
      if (onCheckInResult(a, msg, at)) status.syncCheckInsDone++;
      pumpSync();
    });
    if (ok) syncInFlight++;
    else status.checkInsOutstanding--;
  }
}

function report(a: Agent, r: RunReport, then: (at: number) => void): void {
  const ok = request(a, { type: 'reports', reports: [r] }, (msg, at) => {
    if (msg.type !== 'ack') {
      fail(`reports answered with ${msg.type}${msg.type === 'error' ? `: ${msg.code} ${msg.message}` : ''}`);
      return;
    }
    const ack = msg as AckMessage;
    if (ack.rejected.length) {
      rejected += ack.rejected.length;
      firstRejection ||= `${ack.rejected[0]!.code}: ${ack.rejected[0]!.message}`;
      fail(`a report was rejected: ${firstRejection}`);
      return;
    }
    if (!ack.runIds.includes(r.runId)) {
      fail(`the ack of run ${r.runId} does not name it`);
      return;
    }
    then(at);
  });
  if (!ok) fail(`${a.hostname} could not report: socket closed`);
}

/** What the real agent does for a run-now of a command that ends at once. */
function startRun(a: Agent, req: RunRequest, at: number): void {
  if ((a.runIds ??= new Set()).has(req.runId)) return;
  a.runIds.add(req.runId);
  if (Number.isNaN(runNowAt[a.k]!)) {
    runNowAt[a.k] = at;
    status.runNowReceived++;
    runNowByHome[a.home] = (runNowByHome[a.home] ?? 0) + 1;
  }
  const createdAt = new Date(at).toISOString();
  const base = { runId: req.runId, taskId: req.taskId, requestId: req.requestId, attempt: 1, cause: 'run-now', createdAt, startedAt: createdAt };
  if (failover) {
    startSpooledRun(a, base);
    return;
  }
  // The command ends within the agent's report coalescing (250 ms): the spool holds only the
  // result when it is sent, so the "running" report (seq 1) never goes out.
  const endedAt = new Date().toISOString();
  report(a, { ...base, seq: 2, state: 'succeeded', percent: 100, exitCode: 0, endedAt, reason: null, outputTail: '' }, (finalAt) => {
    if (Number.isNaN(finalAckAt[a.k]!)) {
      finalAckAt[a.k] = finalAt;
      status.finalAcks++;
      if (status.finalAcks === agents.length) send({ ev: 'all-acked', at: finalAt });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Failover (several instances, instances.ts)

/** Set by `failover`: dropped sockets reconnect elsewhere, reports are spooled until acked. */
let failover: { runMs: number } | null = null;
let wsUrls: string[] = [];
let wsCa: string | null = null;
let runNowByHome: number[] = [];
let runsInProgress = 0;
const fo = { dropped: 0, reconnected: 0, attemptsFailed: 0, back: 0, resent: 0, firstAttemptError: '' };
let foMarks = { droppedAt: new Float64Array(0), backAt: new Float64Array(0), drainedAt: new Float64Array(0), heldAtDrop: new Int32Array(0) };

function armFailover(m: Extract<ToWorker, { cmd: 'failover' }>): void {
  failover = { runMs: m.runMs };
  const nan = () => new Float64Array(agents.length).fill(Number.NaN);
  foMarks = { droppedAt: nan(), backAt: nan(), drainedAt: nan(), heldAtDrop: new Int32Array(agents.length) };
  runNowAt = nan();
  runningAckAt = nan();
  finalAckAt = nan();
  status.runNowReceived = 0;
  status.finalAcks = 0;
  runNowByHome = [];
}

type ReportBase = Pick<RunReport, 'runId' | 'taskId' | 'requestId' | 'attempt' | 'cause' | 'createdAt' | 'startedAt'>;
/**
 * The command runs `runMs` whatever the connection does; each report waits in the spool until
 * acked. The "running" report goes out after the agent's 250 ms report coalescing.
 */
function startSpooledRun(a: Agent, base: ReportBase): void {
  spoolReport(a, { ...base, seq: 1, state: 'running', percent: 0 }, REPORT_COALESCE_MS);
  runsInProgress++;
  setTimeout(() => {
    runsInProgress--;
    spoolReport(a, { ...base, seq: 2, state: 'succeeded', percent: 100, exitCode: 0, endedAt: new Date().toISOString(), reason: null, outputTail: '' });
  }, failover!.runMs);
}
function spoolReport(a: Agent, r: RunReport, delayMs = 0): void {
  const spool = (a.spool ??= new Map());
  const held = spool.get(r.runId);
  if (!held || held.seq <= r.seq) spool.set(r.runId, r);
  if (delayMs === 0) {
    if (a.open) sendSpooled(a, [r]);
    return;
  }
  setTimeout(() => {
    if (a.open && a.spool?.get(r.runId) === r) sendSpooled(a, [r]);
  }, delayMs);
}
function sendSpooled(a: Agent, reports: RunReport[]): void {
  request(a, { type: 'reports', reports }, (msg, at) => {
    if (msg.type !== 'ack') {
      fail(`reports answered with ${msg.type}${msg.type === 'error' ? `: ${msg.code} ${msg.message}` : ''}`);
      return;
    }
    const ack = msg as AckMessage;
    if (ack.rejected.length) {
      rejected += ack.rejected.length;
      firstRejection ||= `${ack.rejected[0]!.code}: ${ack.rejected[0]!.message}`;
      fail(`a report was rejected: ${firstRejection}`);
    }
    const acked = new Set(ack.runIds);
    for (const r of reports) {
      if (!acked.has(r.runId)) continue;
      const held = a.spool?.get(r.runId);
      if (held && held.seq <= r.seq) a.spool!.delete(r.runId);
      if (r.seq === 1 && Number.isNaN(runningAckAt[a.k]!)) runningAckAt[a.k] = at;
      if (r.state === 'succeeded' && Number.isNaN(finalAckAt[a.k]!)) {
        finalAckAt[a.k] = at;
        status.finalAcks++;
        if (status.finalAcks === agents.length) send({ ev: 'all-acked', at });
      }
    }
    if (!a.spool?.size && !Number.isNaN(foMarks.droppedAt[a.k]!) && !Number.isNaN(foMarks.backAt[a.k]!) && Number.isNaN(foMarks.drainedAt[a.k]!)) foMarks.drainedAt[a.k] = at;
  });
}

/** The real transport's order after a drop: the next address after 0.5–1 s, the one after at once if that fails, then back-off. */
function onDropped(a: Agent): void {
  fo.dropped++;
  if (Number.isNaN(foMarks.droppedAt[a.k]!)) {
    foMarks.droppedAt[a.k] = now();
    foMarks.heldAtDrop[a.k] = a.spool?.size ?? 0;
  }
  const from = a.instance;
  a.instance = -1;
  setTimeout(() => reconnect(a, from, 0, 1), 500 + Math.random() * 500);
}
/**
 * Each agent's list of addresses is rotated by its index, so that the agents of a lost instance
 * spread over the others (with one order for all, every one of them would go to the same next
 * instance and double its load).
 */
function reconnect(a: Agent, from: number, tried: number, round: number): void {
  if (closing) return;
  const K = wsUrls.length;
  const to = (from + 1 + ((a.g + tried) % (K - 1))) % K;
  connectOne(a, wsUrls[to]!, a.localAddress, wsCa).then(
    () => {
      a.instance = to;
      fo.reconnected++;
      // As the real agent: a check-in first (it brings the runs waiting for it), then the spool.
      request(a, checkInMessage(a), (msg, at) => {
        if (!onCheckInResult(a, msg, at)) return;
        fo.back++;
        if (Number.isNaN(foMarks.backAt[a.k]!)) foMarks.backAt[a.k] = at;
        const held = [...(a.spool?.values() ?? [])];
        if (held.length) {
          fo.resent += held.length;
          sendSpooled(a, held);
        } else if (Number.isNaN(foMarks.drainedAt[a.k]!)) foMarks.drainedAt[a.k] = at;
      });
    },
    (err: unknown) => {
      fo.attemptsFailed++;
      fo.firstAttemptError ||= `${wsUrls[to]}: ${(err as Error).message}`;
      if (tried + 1 < K - 1) reconnect(a, from, tried + 1, round);
      else {
        const base = Math.min(60_000, 1000 * 2 ** Math.min(round, 6));
        setTimeout(() => reconnect(a, from, 0, round + 1), base / 2 + (Math.random() * base) / 2);
      }
    },
  );
}

function instanceStatus(): InstanceStatus {
  const open = new Array<number>(wsUrls.length).fill(0);
  let spooled = 0;
  for (const a of agents) {
    if (a.open && a.instance >= 0) open[a.instance]!++;
    spooled += a.spool?.size ?? 0;
  }
  const runNowReceived = Array.from({ length: wsUrls.length }, (_, i) => runNowByHome[i] ?? 0);
  return { open, runNowReceived, finalAcks: status.finalAcks, spooled, runsInProgress, ...fo, rejected, errors: status.errors, lastError: status.lastError };
}
function collectFailover(): FailoverCollected {
  return {
    home: Int32Array.from(agents.map((a) => a.home)),
    now: Int32Array.from(agents.map((a) => (a.open ? a.instance : -1))),
    ...foMarks,
    finalAckAt,
  };
}

// ---------------------------------------------------------------------------------------------
// Deployment

interface DeployRound {
  url: string;
  caPem: string | null;
  product: string;
  version: string;
  downloadWindow: number;
}
let round: DeployRound | null = null;
let marks: DeployCollected = emptyMarks(0);
function emptyMarks(n: number): DeployCollected {
  const nan = () => new Float64Array(n).fill(Number.NaN);
  return { stepAt: nan(), downloadStartAt: nan(), verifiedAt: nan(), installedAckAt: nan(), checkedInAt: nan(), bytes: 0, downloads: 0, repeatedSteps: 0, stepsAfterInstall: 0, verifyFailures: 0, rejected: 0, firstError: '' };
}
function deployFail(what: string): void {
  marks.firstError ||= what;
  fail(what);
}

/** Install steps wait here for a download slot (at most `downloadWindow` downloads per worker). */
let downloadQueue: { a: Agent; step: DeploymentInstruction & { package: DeploymentPackageRef } }[] = [];
let downloadHead = 0;
let downloadsInFlight = 0;

/** The deployment task's part of a check-in result: each install step is downloaded, verified and reported. */
function onDeploymentSteps(a: Agent, steps: DeploymentInstruction[], at: number): void {
  for (const step of steps) {
    if (step.action !== 'install' || !step.package || !step.version) {
      deployFail(`${a.hostname}: unexpected deployment step ${step.action} ${step.product} ${step.version ?? ''} (${step.reason})`);
      continue;
    }
    if (!round || step.product !== round.product || step.version !== round.version) {
      deployFail(`${a.hostname}: install step for ${step.product} ${step.version} outside its deployment round`);
      continue;
    }
    const key = `${step.product}@${step.version}`;
    if (a.installed?.get(step.product) === step.version) {
      // The server still asks for a version the device reported as installed.
      marks.stepsAfterInstall++;
      continue;
    }
    if (a.deploying === key) {
      // Another check-in while this step is under way (the real agent would not run the task twice at once).
      marks.repeatedSteps++;
      continue;
    }
    a.deploying = key;
    if (Number.isNaN(marks.stepAt[a.k]!)) {
      marks.stepAt[a.k] = at;
      status.deployStepsReceived++;
    }
    status.downloadsOutstanding++;
    downloadQueue.push({ a, step: step as DeploymentInstruction & { package: DeploymentPackageRef } });
  }
  pumpDownloads();
}

function pumpDownloads(): void {
  while (round && downloadsInFlight < round.downloadWindow && downloadHead < downloadQueue.length) {
    const job = downloadQueue[downloadHead++]!;
    if (downloadHead === downloadQueue.length) {
      downloadQueue = [];
      downloadHead = 0;
    }
    downloadsInFlight++;
    void install(job.a, job.step).finally(() => {
      downloadsInFlight--;
      status.downloadsOutstanding--;
      pumpDownloads();
    });
  }
}

/**
 * GET the archive with the agent's credential; hashes it as it arrives (nothing is kept).
 * Over TLS, trusting only the server's CA, on a connection of its own (a full handshake: a
 * real agent's next download comes long after its TLS session expired).
 */
function download(a: Agent, pkg: DeploymentPackageRef): Promise<{ bytes: number; sha256: string }> {
  const url = new URL(`${AGENT_PACKAGES_PATH}/${encodeURIComponent(pkg.id)}`, round!.url);
  const caPem = round!.caPem;
  return new Promise((resolve, reject) => {
    const options: https.RequestOptions = {
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      localAddress: a.localAddress,
      // A connection of its own, as each real agent has.
      agent: false,
      headers: { authorization: `Bearer ${a.credential}` },
      timeout: 120_000,
      ...(caPem ? { ca: caPem } : {}),
    };
    if (caPem && url.protocol !== 'https:') {
      reject(new Error(`${url.origin} is not https, but the server has a CA`));
      return;
    }
    const req = (caPem ? https : http).get(
      options,
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`HTTP ${res.statusCode}`));
          return;
        }
        const expected = Number(res.headers['content-length']);
        const h = createHash('sha256');
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          h.update(chunk);
        });
        res.on('end', () => {
          if (Number.isFinite(expected) && bytes !== expected) reject(new Error(`got ${bytes} of ${expected} bytes`));
          else resolve({ bytes, sha256: h.digest('hex') });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

/** The real agent's checks (verifySignedHash), on the hash of the bytes as they arrived. */
function verifyDownloaded(actualSha256: string, pkg: DeploymentPackageRef, publicKeyPem: string): string | null {
  try {
    verifySignedHash(actualSha256, pkg, publicKeyPem);
    return null;
  } catch (err) {
    return err instanceof PackageVerificationError ? `${err.code}: ${err.message}` : String(err);
  }
}

/** One install step: download and verify (in a download slot), then report and check in. */
async function install(a: Agent, step: DeploymentInstruction & { package: DeploymentPackageRef }): Promise<void> {
  const pkg = step.package;
  let got: { bytes: number; sha256: string } | null = null;
  for (let attempt = 1; !got; attempt++) {
    if (Number.isNaN(marks.downloadStartAt[a.k]!)) marks.downloadStartAt[a.k] = now();
    try {
      got = await download(a, pkg);
    } catch (err) {
      // A transient socket error is retried, as the agent would at its next check-in.
      if (attempt >= 3) {
        a.deploying = null;
        deployFail(`${a.hostname}: download of ${pkg.product} ${pkg.version} failed: ${(err as Error).message}`);
        return;
      }
    }
  }
  marks.bytes += got.bytes;
  marks.downloads++;
  const problem = verifyDownloaded(got.sha256, pkg, signingPublicKey);
  if (problem) {
    marks.verifyFailures++;
    a.deploying = null;
    deployFail(`${a.hostname}: ${problem}`);
    return;
  }
  marks.verifiedAt[a.k] = now();
  status.downloadsVerified++;
  if (!a.deployTaskId) {
    deployFail(`${a.hostname}: no "${BUILTIN_PRODUCT}"/"${DEPLOYMENT_TASK_TYPE}" task in its task list`);
    return;
  }
  // Outside the download slot: the run's reports and the check-in with the new inventory.
  reportInstalled(a, step);
}

/** What the real deployment task reports for one successful install step, then the check-in it triggers. */
function reportInstalled(a: Agent, step: DeploymentInstruction & { package: DeploymentPackageRef }): void {
  const createdAt = new Date().toISOString();
  const label = `install ${step.product} ${step.version}${step.fromVersion ? ` (over ${step.fromVersion})` : ''} [${step.reason}]`;
  const base = { runId: randomUUID(), taskId: a.deployTaskId!, requestId: null, attempt: 1, cause: 'check-in', createdAt, startedAt: createdAt };
  report(a, { ...base, seq: 1, state: 'running', percent: 0 }, () => {
    const final: RunReport = {
      ...base,
      seq: 2,
      state: 'succeeded',
      percent: 100,
      exitCode: 0,
      endedAt: new Date().toISOString(),
      reason: null,
      outputTail: `ok      ${label}\n`,
      events: [{ severity: 'info', kind: DeploymentEventKind.installed, message: `${label}: done`, data: { product: step.product, version: step.version, action: 'install', exitCode: 0 } }],
    };
    report(a, final, (ackAt) => {
      marks.installedAckAt[a.k] = ackAt;
      status.installsAcked++;
      if (status.installsAcked === agents.length) send({ ev: 'all-installed', at: ackAt });
      (a.installed ??= new Map()).set(step.product, step.version!);
      a.deploying = null;
      const ok = request(a, checkInMessage(a), (msg, at) => {
        if (!onCheckInResult(a, msg, at)) return;
        if (!Number.isNaN(marks.checkedInAt[a.k]!)) return;
        marks.checkedInAt[a.k] = at;
        status.deployCheckInsDone++;
        if (status.deployCheckInsDone === agents.length) send({ ev: 'all-deployed', at });
      });
      if (!ok) deployFail(`${a.hostname} could not check in after the install: socket closed`);
    });
  });
}

function armDeployment(m: Extract<ToWorker, { cmd: 'deploy' }>): void {
  round = { url: m.url, caPem: m.caPem, product: m.product, version: m.version, downloadWindow: m.downloadWindow };
  marks = emptyMarks(agents.length);
  status.deployStepsReceived = 0;
  status.downloadsVerified = 0;
  status.installsAcked = 0;
  status.deployCheckInsDone = 0;
  send({ ev: 'deploy-armed', seq: m.seq });
}

let eluMark: EventLoopUtilization = performance.eventLoopUtilization();
let cpuMark = process.cpuUsage();
let wallMark = now();

async function close(seq: number): Promise<void> {
  closing = true;
  const open = agents.filter((a) => a.ws && a.ws.readyState !== WebSocket.CLOSED);
  await Promise.race([
    Promise.all(
      open.map(
        (a) =>
          new Promise<void>((resolve) => {
            a.ws!.once('close', () => resolve());
            a.ws!.close(1000, 'benchmark over');
          }),
      ),
    ),
    new Promise((r) => setTimeout(r, 5000)),
  ]);
  for (const a of agents) a.ws?.terminate();
  send({ ev: 'closed', seq });
  process.disconnect();
  setTimeout(() => process.exit(0), 100).unref();
}

process.on('message', (m: ToWorker) => {
  void (async () => {
    switch (m.cmd) {
      case 'enrol':
        return enrol(m);
      case 'connect':
        return connect(m);
      case 'check-in':
        syncWindow = m.window;
        return checkInPhase(m);
      case 'status':
        return send({ ev: 'status', seq: m.seq, status: { ...status } });
      case 'collect':
        return send({ ev: 'collected', seq: m.seq, runNowAt, runningAckAt, finalAckAt, rejected, firstRejection });
      case 'stats': {
        const cpu = process.cpuUsage(cpuMark);
        const elu = performance.eventLoopUtilization(eluMark);
        send({ ev: 'stats', seq: m.seq, cpuMs: (cpu.user + cpu.system) / 1000, wallMs: now() - wallMark, elu: elu.utilization });
        if (m.reset) {
          cpuMark = process.cpuUsage();
          eluMark = performance.eventLoopUtilization();
          wallMark = now();
        }
        return;
      }
      case 'deploy':
        return armDeployment(m);
      case 'collect-deploy':
        marks.rejected = rejected;
        return send({ ev: 'deploy-collected', seq: m.seq, marks });
      case 'failover':
        armFailover(m);
        return send({ ev: 'status', seq: m.seq, status: { ...status } });
      case 'instance-status':
        return send({ ev: 'instance-status', seq: m.seq, status: instanceStatus() });
      case 'collect-failover':
        return send({ ev: 'failover-collected', seq: m.seq, marks: collectFailover() });
      case 'close':
        return close(m.seq);
    }
  })().catch((err: unknown) => send({ ev: 'failed', message: (err as Error).stack ?? String(err) }));
});
send({ ev: 'hello' });
