/**
 * The transport floor of a run-now: what TLS + WebSocket + JSON alone cost for the run-now's
 * message pattern on this machine, with no application logic (no database, no validation, no
 * services), so that the instances report can say how far the server is above it.
 *
 *     node packages/server/bench/transport-floor.ts --agents 10000 --servers 2 [--workers W] [--rounds 3] [--http]
 *
 * (also run by instances.ts after each size of the curve, once that size's processes are gone,
 * with the same N, K and W; `--no-floor` skips it there).
 *
 * Processes (this file, started again with `--floor-server` or `--floor-client`):
 *
 * - K bare servers: node:https (or node:http with `--http`) with the options the real server
 *   gives Fastify (key, certificate chain, minVersion TLSv1.2), an ECDSA P-256 server
 *   certificate issued by an ECDSA P-256 CA, both made with the server's own PKI code
 *   (src/tls/pki.ts) for the server's default names; a `ws` WebSocketServer with the hub's
 *   options (noServer, perMessageDeflate false, maxPayload, clientTracking false), upgraded from
 *   the server's `upgrade` event as app.ts does (no authentication).
 * - W bare client workers holding the N WebSockets, connection i to server i mod K, from several
 *   loopback source addresses (one per 1,000 connections, as agent-worker.ts), with the agent
 *   worker's options (perMessageDeflate false, skipUTF8Validation, only the CA trusted).
 *
 * A round: each server sends every one of its connections a run-now message of the real shape
 * (a distinct runId per connection, one JSON.stringify per message, as AgentConnections.sendEach
 * does; the task is the instances bench's `bench: true` script task). The client JSON.parses
 * it and answers with a `reports` message of the real shape (succeeded, seq 2, with an id: the
 * real agent's running report waits 250 ms and is replaced by the result of a command that
 * ends at once); the server JSON.parses that and answers an `ack` (runIds, rejected, re). Measured: from the
 * first send (the earliest over the servers) until the last client got its last ack; the CPU of
 * the servers and of the workers over the round (process.cpuUsage, over IPC), and of the other
 * processes (/proc/stat). The best of `--rounds` rounds (3) is the floor, as the ingest
 * baseline takes its best of 3. Also the servers' RSS and heap per connection after GC.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket, { WebSocketServer } from 'ws';
import { AGENT_MESSAGE_MAX_BYTES } from '@garrison/protocol';
import { completeTlsKeys, defaultNames, issueServerCertificate } from '../src/tls/pki.ts';
import { IpcChild, fileLimits, machineBusyMs, now, sleep, slices, sourceAddresses, withTimeout, type Mem } from './shared.ts';

const HERE_FILE = fileURLToPath(import.meta.url);
/** Connections per client worker by default (as instances.ts: each holds one socket per connection, under the 20,000-file limit). */
const PER_WORKER = 15_000;

// ---------------------------------------------------------------------------------------------
// IPC

type ToFloorServer =
  | { cmd: 'start'; seq: number; tls: { key: string; cert: string } | null }
  | { cmd: 'mem'; seq: number }
  | { cmd: 'stats'; seq: number; reset: boolean }
  | { cmd: 'run'; seq: number; round: number }
  | { cmd: 'close'; seq: number };
interface FloorServerStats {
  connections: number;
  cpuMs: number;
  wallMs: number;
  elu: number;
  /** Reports received by seq (1: running, 2: succeeded) and acks sent, since the start. */
  reports1: number;
  reports2: number;
  acks: number;
  parseErrors: number;
}
type FromFloorServer =
  | { ev: 'hello' }
  | { ev: 'ready'; seq: number; url: string }
  | { ev: 'mem'; seq: number; mem: Mem }
  | { ev: 'stats'; seq: number; stats: FloorServerStats }
  /** The send loop of a round: when it began and ended, messages and bytes sent. */
  | { ev: 'ran'; seq: number; firstSendAt: number; lastSendAt: number; sent: number; bytes: number }
  | { ev: 'closed'; seq: number }
  | { ev: 'failed'; message: string };

interface FloorTls {
  protocol: string;
  cipher: string;
  keyExchange: string;
  certificateKey: string;
}
type ToFloorClient =
  | { cmd: 'connect'; seq: number; urls: string[]; first: number; count: number; caPem: string | null; addresses: string[]; concurrency: number }
  | { cmd: 'arm'; seq: number; round: number }
  | { cmd: 'status'; seq: number }
  | { cmd: 'stats'; seq: number; reset: boolean }
  | { cmd: 'close'; seq: number };
interface FloorClientStatus {
  open: number;
  received: number;
  finalAcks: number;
  errors: number;
  lastError: string;
}
type FromFloorClient =
  | { ev: 'hello' }
  | { ev: 'connected'; seq: number; ok: number; failed: number; ms: number; firstError: string; tls: FloorTls | null; plainSockets: number }
  | { ev: 'armed'; seq: number }
  | { ev: 'status'; seq: number; status: FloorClientStatus }
  | { ev: 'stats'; seq: number; cpuMs: number; wallMs: number; elu: number }
  /** Every connection of this worker got its second ack: when, and when the last run-now and the last first ack arrived. */
  | { ev: 'all-acked'; round: number; at: number; lastReceivedAt: number; reportBytes: number; ackBytes: number }
  | { ev: 'closed'; seq: number }
  | { ev: 'failed'; message: string };

// ---------------------------------------------------------------------------------------------
// Results

export interface TransportFloorOptions {
  agents: number;
  /** K server processes. */
  servers: number;
  /** W client worker processes. */
  workers: number;
  tls: boolean;
  /** Rounds of the pattern; the best is the floor (default 3). */
  rounds?: number;
  log?: (msg: string) => void;
  /** A set the children are in while they run (the caller kills what is left if it is interrupted). */
  tracked?: Set<ChildProcess>;
}

export interface TransportFloorRound {
  /** First send (the earliest over the servers) → the last second ack received. */
  ms: number;
  /** From the first send: the servers' send loops done, every run-now received, every first ack received. */
  sentMs: number;
  receivedMs: number;
  serversCpuMs: number;
  workersCpuMs: number;
  otherCpuMs: number;
  wallMs: number;
  maxServerElu: number;
}

export interface TransportFloorResult {
  agents: number;
  servers: number;
  workers: number;
  agentsPerServer: number[];
  sourceAddresses: number;
  /** Null on plain HTTP. */
  tls: FloorTls | null;
  connectMs: number;
  memBefore: Mem[];
  memAfter: Mem[];
  /** Sum over the servers, after GC, divided by the connections. */
  rssPerConnection: number;
  heapPerConnection: number;
  rssGrowthPerConnection: number;
  heapGrowthPerConnection: number;
  /** Bytes of JSON per message (means over the fleet). */
  messageBytes: { runNow: number; report: number; ack: number };
  rounds: TransportFloorRound[];
  /** The round with the shortest time: the floor. */
  best: TransportFloorRound;
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : String(n));
const msFmt = (n: number) => `${fmt(n)} ms`;
const kbFmt = (bytes: number) => `${fmt(bytes / 1024, 1)} KB`;

/** Workers by default: one per 15,000 connections, at least 2. */
export function floorWorkersFor(agents: number): number {
  return Math.min(agents, Math.max(2, Math.ceil(agents / PER_WORKER)));
}

// ---------------------------------------------------------------------------------------------
// Orchestrator

type FloorServer = IpcChild<ToFloorServer, FromFloorServer>;
type FloorClient = IpcChild<ToFloorClient, FromFloorClient>;

export async function runTransportFloor(o: TransportFloorOptions): Promise<TransportFloorResult> {
  const { agents: N, servers: K, workers: W } = o;
  const TLS = o.tls;
  const ROUNDS = o.rounds ?? 3;
  const log = o.log ?? (() => {});
  if (K < 1 || W < 1 || N < K || N < W) throw new Error(`transport floor: ${N} connections cannot be spread over ${K} servers and ${W} workers`);
  const fds = fileLimits();
  const usable = Math.max(fds.soft, fds.hard);
  if (Number.isFinite(usable) && (Math.ceil(N / K) + 512 > usable || Math.ceil(N / W) + 512 > usable))
    throw new Error(`transport floor: ${fmt(N)} connections need ${fmt(Math.ceil(N / K) + 512)} open files per server and ${fmt(Math.ceil(N / W) + 512)} per worker (the limit is ${fds.hard}): more servers or workers`);

  const servers: FloorServer[] = [];
  const clients: FloorClient[] = [];
  let failed: string | null = null;
  let rejectFailure: (e: Error) => void = () => {};
  const failurePromise = new Promise<never>((_, reject) => (rejectFailure = reject));
  failurePromise.catch(() => {});
  const childLog: string[] = [];
  const onFailure = (message: string) => {
    if (failed) return;
    failed = message;
    rejectFailure(new Error(`transport floor: ${message}${childLog.length ? `\n${childLog.join('\n')}` : ''}`));
  };
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, failurePromise]);
  const keep = (name: string) => (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      childLog.push(`[${name}] ${line.slice(0, 400)}`);
      if (childLog.length > 20) childLog.shift();
    }
  };
  const start = (role: string, name: string, execArgv: string[]) => {
    const proc = spawn(process.execPath, [...execArgv, HERE_FILE, role], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: 'advanced' });
    proc.stdout!.on('data', keep(name));
    proc.stderr!.on('data', keep(name));
    return proc;
  };

  try {
    // The server's own PKI: an ECDSA P-256 CA and a server certificate for the default names.
    let material: { key: string; cert: string; caPem: string } | null = null;
    if (TLS) {
      const keys = await completeTlsKeys({});
      const certPem = await issueServerCertificate(keys, defaultNames());
      material = { key: keys.serverKeyPem, cert: certPem + keys.caCertPem, caPem: keys.caCertPem };
    }
    for (let i = 0; i < K; i++) servers.push(new IpcChild(`floor server ${i}`, start('--floor-server', `floor server ${i}`, ['--expose-gc']), onFailure, o.tracked));
    for (let i = 0; i < W; i++) clients.push(new IpcChild(`floor worker ${i + 1}`, start('--floor-client', `floor worker ${i + 1}`, []), onFailure, o.tracked));
    await guard(Promise.all([...servers, ...clients].map((c) => (c as IpcChild<{ seq: number }, { ev: string }>).next('hello', 30_000, 'start'))));
    const urls = (await guard(Promise.all(servers.map((s) => s.ask<'ready'>({ cmd: 'start', tls: material ? { key: material.key, cert: material.cert } : null }, 30_000, 'listen'))))).map((r) => r.url);
    const mem = () => guard(Promise.all(servers.map((s) => s.ask<'mem'>({ cmd: 'mem' }, 60_000, 'memory')))).then((ms) => ms.map((m) => m.mem));
    const memBefore = await mem();

    // Connect.
    const addresses = sourceAddresses(Math.max(4, Math.ceil(N / 1000)));
    const parts = slices(N, W);
    log(`transport floor: ${fmt(N)} connections to ${K} bare ${TLS ? 'HTTPS' : 'HTTP'} servers from ${W} workers…`);
    const t0c = now();
    const connected = await guard(
      Promise.all(clients.map((c, i) => c.ask<'connected'>({ cmd: 'connect', urls, first: parts[i]!.first, count: parts[i]!.count, caPem: material?.caPem ?? null, addresses, concurrency: 128 }, 60_000 + N * 20, 'connecting'))),
    );
    const connectMs = now() - t0c;
    const ok = connected.reduce((a, c) => a + c.ok, 0);
    if (ok !== N) throw new Error(`transport floor: only ${ok} of ${N} connected: ${connected.find((c) => c.firstError)?.firstError}`);
    if (TLS && connected.some((c) => c.plainSockets)) throw new Error('transport floor: some WebSockets are not over TLS');
    const serverStats = () => guard(Promise.all(servers.map((s) => s.ask<'stats'>({ cmd: 'stats', reset: false }, 30_000, 'statistics')))).then((r) => r.map((m) => m.stats));
    for (const t = now(); ; ) {
      const st = await serverStats();
      if (st.reduce((a, s) => a + s.connections, 0) === N) break;
      if (now() - t > 30_000) throw new Error(`transport floor: the servers hold ${st.map((s) => s.connections).join(' + ')} connections, expected ${N}`);
      await sleep(20);
    }
    const memAfter = await mem();
    const agentsPerServer = (await serverStats()).map((s) => s.connections);
    log(`transport floor: connected in ${msFmt(connectMs)}`);

    // Rounds.
    const acked: Extract<FromFloorClient, { ev: 'all-acked' }>[] = [];
    let wake: (() => void) | null = null;
    for (const c of clients)
      c.on((m) => {
        if (m.ev === 'all-acked') {
          acked.push(m);
          wake?.();
        }
      });
    const clientStatus = async (): Promise<FloorClientStatus> => {
      const all = (await guard(Promise.all(clients.map((c) => c.ask<'status'>({ cmd: 'status' }, 30_000, 'status'))))).map((m) => m.status);
      return all.reduce((a, s) => ({ open: a.open + s.open, received: a.received + s.received, finalAcks: a.finalAcks + s.finalAcks, errors: a.errors + s.errors, lastError: a.lastError || s.lastError }));
    };
    const rounds: TransportFloorRound[] = [];
    let messageBytes = { runNow: 0, report: 0, ack: 0 };
    for (let r = 1; r <= ROUNDS; r++) {
      acked.length = 0;
      await guard(Promise.all(clients.map((c) => c.ask<'armed'>({ cmd: 'arm', round: r }, 30_000, 'arm'))));
      await sleep(200);
      await guard(Promise.all(servers.map((s) => s.ask<'stats'>({ cmd: 'stats', reset: true }, 30_000, 'statistics'))));
      await guard(Promise.all(clients.map((c) => c.ask<'stats'>({ cmd: 'stats', reset: true }, 30_000, 'statistics'))));
      const machineMark = machineBusyMs();
      const ownMark = process.cpuUsage();
      const wallMark = now();
      const ran = await guard(Promise.all(servers.map((s) => s.ask<'ran'>({ cmd: 'run', round: r }, 60_000 + N, 'the run-now sends'))));
      const deadline = now() + 60_000 + N * 2;
      while (acked.length < W) {
        if (now() > deadline) throw new Error(`transport floor: round ${r} did not complete: ${JSON.stringify(await clientStatus())}`);
        await guard(Promise.race([sleep(250), new Promise<void>((res) => (wake = res))]));
        wake = null;
      }
      const ss = (await guard(Promise.all(servers.map((s) => s.ask<'stats'>({ cmd: 'stats', reset: true }, 30_000, 'statistics'))))).map((m) => m.stats);
      const ws = await guard(Promise.all(clients.map((c) => c.ask<'stats'>({ cmd: 'stats', reset: true }, 30_000, 'statistics'))));
      const wallMs = now() - wallMark;
      const own = process.cpuUsage(ownMark);
      const st = await clientStatus();
      if (st.errors) throw new Error(`transport floor: client errors: ${st.lastError}`);
      const first = Math.min(...ran.map((x) => x.firstSendAt));
      const serversCpuMs = ss.reduce((a, s) => a + s.cpuMs, 0);
      const workersCpuMs = ws.reduce((a, w) => a + w.cpuMs, 0);
      const round: TransportFloorRound = {
        ms: Math.max(...acked.map((a) => a.at)) - first,
        sentMs: Math.max(...ran.map((x) => x.lastSendAt)) - first,
        receivedMs: Math.max(...acked.map((a) => a.lastReceivedAt)) - first,
        serversCpuMs,
        workersCpuMs,
        otherCpuMs: Math.max(0, machineBusyMs() - machineMark - serversCpuMs - workersCpuMs - (own.user + own.system) / 1000),
        wallMs,
        maxServerElu: Math.max(...ss.map((s) => s.elu)),
      };
      rounds.push(round);
      messageBytes = {
        runNow: ran.reduce((a, x) => a + x.bytes, 0) / ran.reduce((a, x) => a + x.sent, 0),
        report: acked.reduce((a, x) => a + x.reportBytes, 0) / (2 * N),
        ack: acked.reduce((a, x) => a + x.ackBytes, 0) / (2 * N),
      };
      log(`transport floor: round ${r}: ${msFmt(round.ms)}, CPU servers ${msFmt(serversCpuMs)}, workers ${msFmt(workersCpuMs)}`);
    }
    const best = rounds.reduce((a, b) => (b.ms < a.ms ? b : a));
    const sum = (m: Mem[], k: keyof Mem) => m.reduce((a, b) => a + b[k], 0);
    return {
      agents: N,
      servers: K,
      workers: W,
      agentsPerServer,
      sourceAddresses: addresses.length,
      tls: connected.find((c) => c.tls)?.tls ?? null,
      connectMs,
      memBefore,
      memAfter,
      rssPerConnection: sum(memAfter, 'rss') / N,
      heapPerConnection: sum(memAfter, 'heapUsed') / N,
      rssGrowthPerConnection: (sum(memAfter, 'rss') - sum(memBefore, 'rss')) / N,
      heapGrowthPerConnection: (sum(memAfter, 'heapUsed') - sum(memBefore, 'heapUsed')) / N,
      messageBytes,
      rounds,
      best,
    };
  } finally {
    const all = [...clients, ...servers] as IpcChild<{ seq: number }, { ev: string }>[];
    for (const c of all) c.exiting = true;
    await Promise.all(
      all.map(async (c) => {
        if (c.proc.exitCode === null && c.proc.signalCode === null && c.proc.connected) await c.ask<'closed'>({ cmd: 'close' } as never, 15_000, 'close').catch(() => {});
        await withTimeout(c.exited, 5_000, 'exit').catch(() => c.proc.kill('SIGKILL'));
      }),
    );
    for (const c of all) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    await Promise.all(all.map((c) => withTimeout(c.exited, 10_000, 'exit').catch(() => {})));
  }
}

/** The floor's lines for a report (label, value). */
export function floorRows(f: TransportFloorResult): [string, string][] {
  const b = f.best;
  return [
    ['conditions', `${f.servers} bare servers (${f.agentsPerServer.map((n) => fmt(n)).join(' / ')} connections), ${f.workers} client workers, ${f.sourceAddresses} source addresses`],
    ['TLS', f.tls ? `${f.tls.protocol}, ${f.tls.cipher}, key exchange ${f.tls.keyExchange}, certificate ${f.tls.certificateKey}` : 'none (plain HTTP)'],
    ['messages (JSON bytes, mean)', `run-now ${fmt(f.messageBytes.runNow)}, report ${fmt(f.messageBytes.report)}, ack ${fmt(f.messageBytes.ack)}`],
    ['connect all', `${msFmt(f.connectMs)} (${fmt((f.agents / f.connectMs) * 1000)}/s)`],
    ['server RSS / heap per connection (after GC)', `${kbFmt(f.rssPerConnection)} / ${kbFmt(f.heapPerConnection)} (growth from connecting ${kbFmt(f.rssGrowthPerConnection)} / ${kbFmt(f.heapGrowthPerConnection)})`],
    ['first send → all acks (best)', `${msFmt(b.ms)} (rounds ${f.rounds.map((r) => fmt(r.ms)).join(', ')} ms)`],
    ['  sent / received 100%', `${msFmt(b.sentMs)} / ${msFmt(b.receivedMs)}`],
    ['  CPU (best round)', `servers ${msFmt(b.serversCpuMs)}, workers ${msFmt(b.workersCpuMs)}, other ${msFmt(b.otherCpuMs)} over ${msFmt(b.wallMs)}; busiest server loop ${fmt(b.maxServerElu * 100)}%`],
    ['  per connection (best round)', `servers ${fmt((b.serversCpuMs * 1000) / f.agents, 1)} µs, workers ${fmt((b.workersCpuMs * 1000) / f.agents, 1)} µs`],
  ];
}

// ---------------------------------------------------------------------------------------------
// Bare server process

/** The instances bench's task (`bench: true`), as TaskService.toAgentTask gives it to agents. */
function agentTask(taskId: string) {
  return { id: taskId, name: 'bench: true', product: 'garrison', type: 'script', settings: { command: 'true' }, schedule: { triggers: [{ type: 'on-demand' }] }, enabled: true, revision: 1, local: false };
}

function serverMain(): void {
  const send = (m: FromFloorServer) => process.send!(m);
  process.on('disconnect', () => process.exit(1));
  // As the hub: no compression, the protocol's payload limit, no client set.
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: AGENT_MESSAGE_MAX_BYTES, clientTracking: false });
  const conns: WebSocket[] = [];
  let server: http.Server | https.Server | null = null;
  const counts = { reports1: 0, reports2: 0, acks: 0, parseErrors: 0 };
  let cpuMark = process.cpuUsage();
  let eluMark: EventLoopUtilization = performance.eventLoopUtilization();
  let wallMark = now();

  const onMessage = (ws: WebSocket, data: Buffer, isBinary: boolean) => {
    if (isBinary) return;
    let msg: { type?: string; id?: string | number; reports?: { runId: string; seq: number }[] };
    try {
      msg = JSON.parse(data.toString('utf8'));
    } catch {
      counts.parseErrors++;
      return;
    }
    if (msg.type !== 'reports' || !Array.isArray(msg.reports)) return;
    for (const r of msg.reports) {
      if (r.seq === 1) counts.reports1++;
      else if (r.seq === 2) counts.reports2++;
    }
    // The hub's answer: the ack, with `re` the request's id.
    const ack = { type: 'ack', runIds: msg.reports.map((r) => r.runId), rejected: [], ...(msg.id !== undefined ? { re: msg.id } : {}) };
    if (ws.readyState === ws.OPEN) {
      ws.send(JSON.stringify(ack));
      counts.acks++;
    }
  };
  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    wss.handleUpgrade(req, socket, head, (ws) => {
      conns.push(ws);
      ws.on('message', (data, isBinary) => onMessage(ws, data as Buffer, isBinary));
      ws.on('error', () => {});
      ws.on('close', () => {
        const i = conns.indexOf(ws);
        if (i >= 0) conns.splice(i, 1);
      });
    });
  };

  process.on('message', (m: ToFloorServer) => {
    void (async () => {
      switch (m.cmd) {
        case 'start': {
          // The options the real server gives Fastify's https server.
          server = m.tls ? https.createServer({ key: m.tls.key, cert: m.tls.cert, minVersion: 'TLSv1.2' }) : http.createServer();
          server.on('upgrade', onUpgrade);
          await new Promise<void>((resolve, reject) => {
            server!.once('error', reject);
            server!.listen(0, '127.0.0.1', () => resolve());
          });
          const port = (server.address() as AddressInfo).port;
          return send({ ev: 'ready', seq: m.seq, url: `${m.tls ? 'wss' : 'ws'}://127.0.0.1:${port}/agent/v1/ws` });
        }
        case 'mem': {
          const gc = (globalThis as { gc?: () => void }).gc;
          // As server-process.ts: several passes, with turns of the loop between.
          if (gc)
            for (let i = 0; i < 4; i++) {
              gc();
              await new Promise((r) => setImmediate(r));
            }
          const u = process.memoryUsage();
          return send({ ev: 'mem', seq: m.seq, mem: { rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external, arrayBuffers: u.arrayBuffers } });
        }
        case 'stats': {
          const cpu = process.cpuUsage(cpuMark);
          const elu = performance.eventLoopUtilization(eluMark);
          send({ ev: 'stats', seq: m.seq, stats: { connections: conns.length, cpuMs: (cpu.user + cpu.system) / 1000, wallMs: now() - wallMark, elu: elu.utilization, ...counts } });
          if (m.reset) {
            cpuMark = process.cpuUsage();
            eluMark = performance.eventLoopUtilization();
            wallMark = now();
          }
          return;
        }
        case 'run': {
          // Ids made before the clock starts (the real server has them from the stored runs).
          const taskId = randomUUID();
          const requestId = randomUUID();
          const expiresAt = new Date(Date.now() + 1440 * 60_000).toISOString();
          const task = agentTask(taskId);
          const runIds = conns.map(() => randomUUID());
          let bytes = 0;
          let sent = 0;
          const firstSendAt = now();
          // As AgentConnections.sendEach: one message, one JSON.stringify per connection.
          for (let i = 0; i < conns.length; i++) {
            const ws = conns[i]!;
            if (ws.readyState !== ws.OPEN) continue;
            const data = JSON.stringify({ type: 'run-now', requests: [{ runId: runIds[i]!, requestId, taskId, expiresAt, task }] });
            ws.send(data);
            bytes += data.length;
            sent++;
          }
          return send({ ev: 'ran', seq: m.seq, firstSendAt, lastSendAt: now(), sent, bytes });
        }
        case 'close': {
          for (const ws of [...conns]) ws.terminate();
          await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
          send({ ev: 'closed', seq: m.seq });
          process.disconnect();
          setTimeout(() => process.exit(0), 100).unref();
          return;
        }
      }
    })().catch((err: unknown) => send({ ev: 'failed', message: (err as Error).stack ?? String(err) }));
  });
  send({ ev: 'hello' });
}

// ---------------------------------------------------------------------------------------------
// Bare client worker process

interface FloorConn {
  ws: WebSocket | null;
  open: boolean;
  nextId: number;
  pending: Map<number, (msg: { type: string; runIds?: string[] }, at: number) => void> | null;
  /** The round whose second ack it got. */
  doneRound: number;
}

function clientMain(): void {
  const send = (m: FromFloorClient) => process.send!(m);
  process.on('disconnect', () => process.exit(1));
  let conns: FloorConn[] = [];
  let round = 0;
  let closing = false;
  const status: FloorClientStatus = { open: 0, received: 0, finalAcks: 0, errors: 0, lastError: '' };
  let lastReceivedAt = 0;
  let reportBytes = 0;
  let ackBytes = 0;
  let tlsSeen: FloorTls | null = null;
  let plainSockets = 0;
  let cpuMark = process.cpuUsage();
  let eluMark: EventLoopUtilization = performance.eventLoopUtilization();
  let wallMark = now();
  const fail = (what: string) => {
    status.errors++;
    status.lastError ||= what;
  };

  /** As agent-worker.ts: a request with an id; the answer carrying it in `re` goes to `reply`. */
  const request = (c: FloorConn, msg: Record<string, unknown>, reply: (msg: { type: string; runIds?: string[] }, at: number) => void) => {
    if (!c.open || !c.ws) return false;
    const id = c.nextId++;
    (c.pending ??= new Map()).set(id, reply);
    const data = JSON.stringify({ ...msg, id });
    reportBytes += data.length;
    c.ws.send(data);
    return true;
  };
  type Req = { runId: string; requestId: string; taskId: string };
  /** As agent-worker.ts for a command that ends at once: only its result (succeeded, seq 2; the running report was coalesced away). */
  const startRun = (c: FloorConn, req: Req, at: number) => {
    const createdAt = new Date(at).toISOString();
    const base = { runId: req.runId, taskId: req.taskId, requestId: req.requestId, attempt: 1, cause: 'run-now', createdAt, startedAt: createdAt };
    const report = (r: Record<string, unknown>, then: (at: number) => void) => {
      const ok = request(c, { type: 'reports', reports: [r] }, (msg, ackAt) => {
        if (msg.type !== 'ack' || !msg.runIds?.includes(req.runId)) return fail(`report answered with ${msg.type}`);
        then(ackAt);
      });
      if (!ok) fail('could not report: socket closed');
    };
    const endedAt = new Date().toISOString();
    report({ ...base, seq: 2, state: 'succeeded', percent: 100, exitCode: 0, endedAt, reason: null, outputTail: '' }, (finalAt) => {
      if (c.doneRound === round) return;
      c.doneRound = round;
      status.finalAcks++;
      if (status.finalAcks === conns.length) send({ ev: 'all-acked', round, at: finalAt, lastReceivedAt, reportBytes, ackBytes });
    });
  };
  const onMessage = (c: FloorConn, data: Buffer) => {
    const at = now();
    let msg: { type: string; re?: number; requests?: Req[]; runIds?: string[] };
    try {
      msg = JSON.parse(data.toString());
    } catch {
      return fail('a server message is not JSON');
    }
    if (msg.re !== undefined) {
      const reply = c.pending?.get(msg.re);
      if (reply) {
        ackBytes += data.length;
        c.pending!.delete(msg.re);
        reply(msg, at);
        return;
      }
    }
    if (msg.type === 'run-now') {
      status.received++;
      if (at > lastReceivedAt) lastReceivedAt = at;
      for (const r of msg.requests ?? []) startRun(c, r, at);
    }
  };
  const connectOne = (c: FloorConn, url: string, localAddress: string, caPem: string | null) =>
    new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(url, {
        // A credential-sized header, as the agents send (the bare server does not check it).
        headers: { authorization: `Bearer ${randomBytes(32).toString('base64url')}` },
        perMessageDeflate: false,
        localAddress,
        handshakeTimeout: 30_000,
        skipUTF8Validation: true,
        ...(caPem ? { ca: caPem } : {}),
      });
      c.ws = ws;
      let settled = false;
      ws.on('upgrade', (res) => {
        const socket = res.socket as TLSSocket;
        if (!socket.encrypted) plainSockets++;
        else if (!tlsSeen) {
          const eph = socket.getEphemeralKeyInfo();
          const cert = socket.getPeerCertificate();
          tlsSeen = {
            protocol: socket.getProtocol() ?? '?',
            cipher: socket.getCipher()?.standardName ?? '?',
            keyExchange: eph && 'name' in eph && eph.name ? String(eph.name) : eph && 'type' in eph ? String(eph.type) : '?',
            certificateKey: cert.asn1Curve ? `ECDSA ${cert.nistCurve ?? cert.asn1Curve}` : cert.bits ? `RSA ${cert.bits}` : '?',
          };
        }
      });
      ws.on('open', () => {
        settled = true;
        c.open = true;
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
      ws.on('message', (data) => onMessage(c, data as Buffer));
      ws.on('close', (code) => {
        if (c.open) {
          c.open = false;
          status.open--;
          if (!closing) fail(`a socket was closed by the server (code ${code})`);
        }
        c.pending = null;
      });
    });

  process.on('message', (m: ToFloorClient) => {
    void (async () => {
      switch (m.cmd) {
        case 'connect': {
          const start = now();
          conns = Array.from({ length: m.count }, () => ({ ws: null, open: false, nextId: 1, pending: null, doneRound: 0 }));
          let ok = 0;
          let failed = 0;
          let firstError = '';
          let next = 0;
          const lane = async () => {
            while (next < m.count) {
              const k = next++;
              const localAddress = m.addresses[k % m.addresses.length]!;
              try {
                await connectOne(conns[k]!, m.urls[(m.first + k) % m.urls.length]!, localAddress, m.caPem);
                ok++;
              } catch (err) {
                failed++;
                firstError ||= `connection ${m.first + k} from ${localAddress}: ${(err as Error).message}`;
              }
            }
          };
          await Promise.all(Array.from({ length: Math.min(m.concurrency, m.count) }, lane));
          return send({ ev: 'connected', seq: m.seq, ok, failed, ms: now() - start, firstError, tls: tlsSeen, plainSockets });
        }
        case 'arm':
          round = m.round;
          status.received = 0;
          status.finalAcks = 0;
          lastReceivedAt = 0;
          reportBytes = 0;
          ackBytes = 0;
          return send({ ev: 'armed', seq: m.seq });
        case 'status':
          return send({ ev: 'status', seq: m.seq, status: { ...status } });
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
        case 'close': {
          closing = true;
          for (const c of conns) c.ws?.terminate();
          send({ ev: 'closed', seq: m.seq });
          process.disconnect();
          setTimeout(() => process.exit(0), 100).unref();
          return;
        }
      }
    })().catch((err: unknown) => send({ ev: 'failed', message: (err as Error).stack ?? String(err) }));
  });
  send({ ev: 'hello' });
}

// ---------------------------------------------------------------------------------------------
// Alone: node packages/server/bench/transport-floor.ts --agents N --servers K

const usage = `usage: node packages/server/bench/transport-floor.ts [options]
  --agents N     connections (default 10000)
  --servers K    bare server processes (default 2)
  --workers W    client worker processes (default: one per ${PER_WORKER.toLocaleString('en-US')} connections, at least 2)
  --rounds R     rounds of the run-now pattern; the best is the floor (default 3)
  --http         plain HTTP (no TLS)`;

async function cliMain(): Promise<number> {
  const { values: opts } = parseArgs({
    options: { agents: { type: 'string' }, servers: { type: 'string' }, workers: { type: 'string' }, rounds: { type: 'string' }, http: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
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
  const N = int('agents', opts.agents, 10_000, 1);
  const K = int('servers', opts.servers, 2, 1);
  const W = Math.min(N, int('workers', opts.workers, floorWorkersFor(N), 1));
  const rounds = int('rounds', opts.rounds, 3, 1);
  const T0 = now();
  const tracked = new Set<ChildProcess>();
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.on(sig, () => {
      for (const c of tracked) c.kill('SIGKILL');
      process.exit(130);
    });
  const f = await runTransportFloor({ agents: N, servers: K, workers: W, tls: !opts.http, rounds, tracked, log: (msg) => process.stderr.write(`[floor +${((now() - T0) / 1000).toFixed(1)}s] ${msg}\n`) });
  const out = [
    `Transport floor (bare TLS+ws+JSON, the run-now pattern) — ${new Date().toISOString()}`,
    `  ${'machine'.padEnd(44)} Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}, load average ${os.loadavg().map((x) => x.toFixed(2)).join(', ')}`,
    `  ${'connections'.padEnd(44)} ${fmt(N)}`,
    ...floorRows(f).map(([label, value]) => `  ${label.padEnd(44)} ${value}`),
  ];
  if (f.best.otherCpuMs > 0.15 * f.best.wallMs) out.splice(1, 0, `  WARNING: other processes used ${msFmt(f.best.otherCpuMs)} of CPU during the ${msFmt(f.best.wallMs)} of the best round: the figures are disturbed`);
  console.log(out.join('\n'));
  return 0;
}

const role = process.argv[2];
const isEntry = process.argv[1] !== undefined && path.resolve(process.argv[1]) === HERE_FILE;
if (isEntry && role === '--floor-server') serverMain();
else if (isEntry && role === '--floor-client') clientMain();
else if (isEntry)
  cliMain().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error((err as Error).stack ?? String(err));
      process.exit(1);
    },
  );
