/**
 * One process of simulated agents. Each agent is enrolled through the real enrolment endpoint
 * (so it has its own device and credential), holds its own WebSocket bound to one of several
 * loopback source addresses (so that no source address runs out of ephemeral ports), and
 * speaks the real agent protocol: check-in with inventory, check-in again on `sync`, and on
 * `run-now` reports `running` (seq 1), waits for the ack, reports `succeeded` (seq 2) and waits
 * for that ack, as the real agent does with a command that ends at once.
 *
 * Driven by bench.ts over IPC (see shared.ts for the messages).
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import WebSocket from 'ws';
import { AGENT_ENROL_PATH, type AckMessage, type CheckInResult, type EnrolResponse, type Inventory, type RunReport, type RunRequest, type ServerToAgent } from '@garrison/protocol';
import { now, type FromWorker, type ToWorker, type WorkerStatus } from './shared.ts';

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
}

let agents: Agent[] = [];
let closing = false;
const status: WorkerStatus = {
  open: 0,
  unexpectedCloses: 0,
  syncReceived: 0,
  syncCheckInsDone: 0,
  checkInsOutstanding: 0,
  runNowReceived: 0,
  finalAcks: 0,
  errors: 0,
  lastError: '',
};
let runNowAt = new Float64Array(0);
let runningAckAt = new Float64Array(0);
let finalAckAt = new Float64Array(0);
let rejected = 0;
let firstRejection = '';
let syncWindow = 64;

function fail(what: string): void {
  status.errors++;
  status.lastError = what;
}

function inventory(hostname: string, k: number): Inventory {
  return {
    hostname,
    osPlatform: 'linux',
    osName: 'Ubuntu',
    osVersion: '24.04',
    arch: 'x64',
    addresses: [`10.${(k >> 16) & 255}.${(k >> 8) & 255}.${k & 255}`],
    agentVersion: '0.1.0',
    timeZone: 'UTC',
    products: [{ id: 'garrison', version: '0.1.0', running: true }],
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
  await pool(m.count, m.concurrency, async (k) => {
    const hostname = `bench-agent-${String(m.first + k).padStart(6, '0')}`;
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await fetch(m.url + AGENT_ENROL_PATH, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ token: m.token, inventory: inventory(hostname, m.first + k), name: hostname }),
          signal: AbortSignal.timeout(30_000),
        });
        const body = (await res.json()) as EnrolResponse & { error?: { message: string } };
        if (res.status !== 201) throw new Error(`HTTP ${res.status}: ${body.error?.message ?? JSON.stringify(body)}`);
        slots[k] = { k, hostname, deviceId: body.deviceId, credential: body.credential, ws: null, open: false, nextId: 1, pending: null, etag: undefined, syncQueued: false, runIds: null };
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

function connectOne(a: Agent, wsUrl: string, localAddress: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, {
      headers: { authorization: `Bearer ${a.credential}` },
      perMessageDeflate: false,
      localAddress,
      handshakeTimeout: 30_000,
      skipUTF8Validation: true,
    });
    a.ws = ws;
    let settled = false;
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
      if (a.open) {
        a.open = false;
        status.open--;
        if (!closing) {
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
    try {
      await connectOne(a, m.wsUrl, localAddress);
      ok++;
    } catch (err) {
      failed++;
      firstError ||= `${a.hostname} from ${localAddress}: ${(err as Error).message}`;
    }
  });
  send({ ev: 'connected', seq: m.seq, ok, failed, ms: now() - start, firstError });
}

function checkInMessage(a: Agent): Record<string, unknown> {
  return { type: 'check-in', inventory: inventory(a.hostname, a.k), ...(a.etag ? { tasksEtag: a.etag } : {}) };
}
function onCheckInResult(a: Agent, msg: ServerToAgent, at: number): boolean {
  if (msg.type !== 'check-in-result') {
    fail(`check-in answered with ${msg.type}${msg.type === 'error' ? `: ${msg.code} ${msg.message}` : ''}`);
    return false;
  }
  const r = msg as CheckInResult;
  a.etag = r.tasksEtag;
  for (const req of r.runRequests) startRun(a, req, at);
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
  }
  const createdAt = new Date(at).toISOString();
  const base = { runId: req.runId, taskId: req.taskId, requestId: req.requestId, attempt: 1, cause: 'run-now', createdAt, startedAt: createdAt };
  report(a, { ...base, seq: 1, state: 'running', percent: 0 }, (ackAt) => {
    runningAckAt[a.k] = ackAt;
    const endedAt = new Date().toISOString();
    report(a, { ...base, seq: 2, state: 'succeeded', percent: 100, exitCode: 0, endedAt, reason: null, outputTail: '' }, (finalAt) => {
      if (Number.isNaN(finalAckAt[a.k]!)) {
        finalAckAt[a.k] = finalAt;
        status.finalAcks++;
        if (status.finalAcks === agents.length) send({ ev: 'all-acked', at: finalAt });
      }
    });
  });
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
      case 'close':
        return close(m.seq);
    }
  })().catch((err: unknown) => send({ ev: 'failed', message: (err as Error).stack ?? String(err) }));
});
send({ ev: 'hello' });
