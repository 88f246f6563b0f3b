/**
 * What the benchmark's processes share: the clock, the IPC messages between the orchestrator
 * (bench.ts), the server process (server-process.ts) and the agent workers (agent-worker.ts),
 * and small statistics helpers.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

/**
 * Wall-clock milliseconds with sub-millisecond resolution. All the benchmark's processes run
 * on one machine, so this clock is comparable between them (timeOrigin is taken from the
 * system clock at process start; performance.now() is monotonic from there).
 */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export interface Mem {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

/** Time and rows spent in one instrumented server function. */
export interface OpStat {
  calls: number;
  rows: number;
  totalMs: number;
  maxMs: number;
  maxRows: number;
  firstStart: number;
  lastEnd: number;
}

/** A stretch in which the server's event loop ran no timer, and the instrumented calls that ended in it. */
export interface Stall {
  start: number;
  ms: number;
  ops: Record<string, { calls: number; rows: number; ms: number }>;
}

export interface ServerStats {
  /** Connected to any instance (this one's view of the fleet). */
  online: number;
  /** Connected to this instance. */
  localOnline: number;
  /** Process CPU (user+system) since the last reset, ms. */
  cpuMs: number;
  /** Wall time since the last reset, ms. */
  wallMs: number;
  /** Event-loop utilization since the last reset (0..1). */
  elu: number;
  /** Longest event-loop stall seen (ms). */
  maxLoopDelayMs: number;
  ops: Record<string, OpStat>;
  maxRssBytes: number;
  /** Instrumented database calls under way now, and all instrumented calls so far. */
  dbInFlight: number;
  totalCalls: number;
  /** The longest stalls (over 100 ms) since the last reset, longest first. */
  stalls: Stall[];
}

/** Self time of a CPU profile, by function and by where the code comes from. */
export interface ProfileSummary {
  file: string;
  totalMs: number;
  byCategory: { name: string; ms: number }[];
  byFunction: { name: string; ms: number }[];
}

// Orchestrator → server process
export type ToServer =
  | { cmd: 'mem'; gc: boolean; seq: number }
  | { cmd: 'stats'; reset: boolean; seq: number }
  | { cmd: 'profile-start'; seq: number }
  | { cmd: 'profile-stop'; seq: number; file: string }
  | { cmd: 'close'; seq: number };
// Server process → orchestrator
export type FromServer =
  /** caPem: the server's CA, which agents pin (null when the server serves plain HTTP). */
  | { ev: 'ready'; url: string; adminToken: string; database: string; caPem: string | null; caFingerprint: string | null }
  | { ev: 'failed'; message: string }
  | { ev: 'mem'; seq: number; mem: Mem; gc: boolean }
  | { ev: 'stats'; seq: number; stats: ServerStats }
  | { ev: 'profile'; seq: number; summary: ProfileSummary | null }
  | { ev: 'closed'; seq: number };

// Orchestrator → agent worker
export type ToWorker =
  /** urls (several instances): agent `first + k` enrols through urls[(first + k) % urls.length] instead of url. */
  | { cmd: 'enrol'; seq: number; url: string; urls?: string[]; caPem: string | null; token: string; first: number; count: number; concurrency: number }
  /** wsUrls (several instances): agent k of this worker connects to wsUrls[(firstIndex + k) % wsUrls.length], its home instance. */
  | { cmd: 'connect'; seq: number; wsUrl: string; wsUrls?: string[]; firstIndex?: number; caPem: string | null; addresses: string[]; concurrency: number }
  /**
   * Failover mode (instances.ts): from now on an agent whose socket drops reconnects to another
   * instance (as the real transport: 0.5–1 s, then the next address at once on failure), checks
   * in and resends its spool (reports not yet acked). A run-now's command takes runMs, its
   * reports are spooled until acked. Resets the run-now marks.
   */
  | { cmd: 'failover'; seq: number; runMs: number }
  | { cmd: 'instance-status'; seq: number }
  | { cmd: 'collect-failover'; seq: number }
  | { cmd: 'check-in'; seq: number; durationMs: number; window: number }
  | { cmd: 'status'; seq: number }
  | { cmd: 'collect'; seq: number }
  | { cmd: 'stats'; seq: number; reset: boolean }
  | { cmd: 'deploy'; seq: number; url: string; caPem: string | null; product: string; version: string; downloadWindow: number }
  | { cmd: 'collect-deploy'; seq: number }
  | { cmd: 'close'; seq: number };

export interface WorkerStatus {
  open: number;
  /** Sockets that closed while the benchmark still needed them. */
  unexpectedCloses: number;
  syncReceived: number;
  syncCheckInsDone: number;
  /** Check-ins queued or in flight (the sync storm). */
  checkInsOutstanding: number;
  runNowReceived: number;
  finalAcks: number;
  /** Deployment round: agents whose check-in result carried the install step of the round's version. */
  deployStepsReceived: number;
  /** Downloads queued or under way. */
  downloadsOutstanding: number;
  /** Downloaded and verified (hash and signature). */
  downloadsVerified: number;
  /** "deployment.installed" reports acknowledged. */
  installsAcked: number;
  /** Check-ins with the new inventory answered. */
  deployCheckInsDone: number;
  errors: number;
  lastError: string;
}

/** A status with every counter at zero: a worker's start, and the sum over workers. */
export function emptyStatus(): WorkerStatus {
  return {
    open: 0,
    unexpectedCloses: 0,
    syncReceived: 0,
    syncCheckInsDone: 0,
    checkInsOutstanding: 0,
    runNowReceived: 0,
    finalAcks: 0,
    deployStepsReceived: 0,
    downloadsOutstanding: 0,
    downloadsVerified: 0,
    installsAcked: 0,
    deployCheckInsDone: 0,
    errors: 0,
    lastError: '',
  };
}

/** One worker's marks of a deployment round (ms since the epoch, NaN where not reached). */
export interface DeployCollected {
  /** The check-in result carrying the install step arrived. */
  stepAt: Float64Array;
  /** The download started (its request was sent). */
  downloadStartAt: Float64Array;
  /** The archive was downloaded whole and its hash and signature verified. */
  verifiedAt: Float64Array;
  /** The "succeeded" report carrying the deployment.installed event was acknowledged. */
  installedAckAt: Float64Array;
  /** The check-in with the new inventory was answered. */
  checkedInAt: Float64Array;
  bytes: number;
  downloads: number;
  /** Install steps received again for a version already being installed or installed. */
  repeatedSteps: number;
  /** Check-in results after the install that still asked for an install of the round's version. */
  stepsAfterInstall: number;
  verifyFailures: number;
  rejected: number;
  firstError: string;
}

export type FromWorker =
  | { ev: 'hello' }
  | { ev: 'enrolled'; seq: number; ok: number; failed: number; ms: number; firstError: string }
  | { ev: 'connected'; seq: number; ok: number; failed: number; ms: number; firstError: string; tls: { protocol: string; cipher: string } | null }
  | { ev: 'check-ins'; seq: number; count: number; start: number; end: number; latenciesMs: Float64Array; errors: number }
  | { ev: 'status'; seq: number; status: WorkerStatus }
  | { ev: 'collected'; seq: number; runNowAt: Float64Array; finalAckAt: Float64Array; runningAckAt: Float64Array; rejected: number; firstRejection: string }
  | { ev: 'stats'; seq: number; cpuMs: number; wallMs: number; elu: number }
  | { ev: 'all-acked'; at: number }
  | { ev: 'deploy-armed'; seq: number }
  | { ev: 'deploy-collected'; seq: number; marks: DeployCollected }
  | { ev: 'all-installed'; at: number }
  | { ev: 'all-deployed'; at: number }
  | { ev: 'closed'; seq: number }
  | { ev: 'instance-status'; seq: number; status: InstanceStatus }
  | { ev: 'failover-collected'; seq: number; marks: FailoverCollected }
  | { ev: 'failed'; message: string };

/** A worker's agents by instance (failover mode, several instances). */
export interface InstanceStatus {
  /** Open sockets per instance index. */
  open: number[];
  /** Agents that received the current run-now, by their home instance. */
  runNowReceived: number[];
  finalAcks: number;
  /** Reports not acked yet (spooled), and runs whose command is still running. */
  spooled: number;
  runsInProgress: number;
  /** Sockets dropped by the server, reconnected, connection attempts that failed, back (reconnected and checked in). */
  dropped: number;
  reconnected: number;
  attemptsFailed: number;
  back: number;
  /** Reports sent again after a reconnect. */
  resent: number;
  /** Why the first failed reconnection attempt failed. */
  firstAttemptError: string;
  rejected: number;
  errors: number;
  lastError: string;
}

/** One worker's failover marks, per agent (ms since the epoch, NaN where not reached). */
export interface FailoverCollected {
  /** The instance each agent was first connected to. */
  home: Int32Array;
  /** The instance it is on now (-1: none). */
  now: Int32Array;
  droppedAt: Float64Array;
  /** Reconnected elsewhere, and its check-in there answered. */
  backAt: Float64Array;
  /** Its spool empty again (every report acked) after the reconnect. */
  drainedAt: Float64Array;
  /** Reports it held (unacked or not yet sent) when its socket dropped. */
  heldAtDrop: Int32Array;
  finalAckAt: Float64Array;
}

/** The value below which `q` (0..1) of the sorted values fall (nearest rank). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

export function sortedFloat64(parts: ArrayLike<number>[]): Float64Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Float64Array(n);
  let i = 0;
  for (const p of parts) {
    out.set(p as ArrayLike<number>, i);
    i += p.length;
  }
  return out.sort();
}

/** A promise that rejects after `ms` with a message naming what was awaited. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${(ms / 1000).toFixed(0)} s waiting for ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A bench child process with request/response over IPC: each request carries a seq and the reply
 * the same one; other messages go to listeners. A `failed` message or an unexpected exit is
 * reported to `onFailure`.
 */
export type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A child process answering requests over IPC (each request carries a seq). */
export class IpcChild<To extends { seq: number }, From extends { ev: string }> {
  #seq = 1;
  #waiting = new Map<number, (m: From) => void>();
  #listeners: ((m: From) => void)[] = [];
  /** Set before the child is asked to exit, or killed on purpose. */
  exiting = false;
  readonly exited: Promise<void>;
  readonly name: string;
  readonly proc: ChildProcess;
  /** `tracked`: a set the child is in while it runs (to kill what is left when the bench stops). */
  constructor(name: string, proc: ChildProcess, onFailure: (message: string) => void, tracked?: Set<ChildProcess>) {
    this.name = name;
    this.proc = proc;
    tracked?.add(proc);
    proc.on('message', (m: From) => {
      if (m.ev === 'failed') onFailure(`${name}: ${(m as unknown as { message: string }).message}`);
      const seq = (m as { seq?: number }).seq;
      const w = seq !== undefined ? this.#waiting.get(seq) : undefined;
      if (w) {
        this.#waiting.delete(seq!);
        w(m);
      } else for (const l of this.#listeners) l(m);
    });
    this.exited = new Promise((resolve) =>
      proc.on('exit', (code, signal) => {
        tracked?.delete(proc);
        if (!this.exiting) onFailure(`${name} exited unexpectedly (${signal ?? `code ${code}`})`);
        resolve();
      }),
    );
  }
  on(l: (m: From) => void): void {
    this.#listeners.push(l);
  }
  ask<E extends From['ev']>(msg: DistributiveOmit<To, 'seq'>, timeoutMs: number, what: string): Promise<Extract<From, { ev: E }>> {
    const seq = this.#seq++;
    const p = new Promise<From>((resolve) => this.#waiting.set(seq, resolve));
    this.proc.send({ ...msg, seq } as unknown as To);
    return withTimeout(p, timeoutMs, `${this.name}: ${what}`) as Promise<Extract<From, { ev: E }>>;
  }
  next<E extends From['ev']>(ev: E, timeoutMs: number, what: string): Promise<Extract<From, { ev: E }>> {
    return withTimeout(
      new Promise((resolve) => {
        const l = (m: From) => {
          if (m.ev !== ev) return;
          this.#listeners = this.#listeners.filter((x) => x !== l);
          resolve(m as Extract<From, { ev: E }>);
        };
        this.#listeners.push(l);
      }),
      timeoutMs,
      `${this.name}: ${what}`,
    );
  }
}

/** The open-file limits of this shell (soft and hard; NaN when unknown). */
export function fileLimits(): { soft: number; hard: number } {
  try {
    const out = execFileSync('/bin/sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' }).trim().split('\n');
    const parse = (s: string | undefined) => (s === 'unlimited' ? Number.POSITIVE_INFINITY : Number(s));
    return { soft: parse(out[0]), hard: parse(out[1]) };
  } catch {
    return { soft: Number.NaN, hard: Number.NaN };
  }
}

/** `count` loopback source addresses in a random block of 127/8 (bind() slows as an address fills: one per 1,000 sockets). */
export function sourceAddresses(count: number): string[] {
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

/** CPU time the whole machine spent busy (user, nice, system, irq, softirq, steal), ms, from /proc/stat (NaN elsewhere). */
export function machineBusyMs(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return (f[0]! + f[1]! + f[2]! + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0)) * 10;
  } catch {
    return Number.NaN;
  }
}

/** 0..n-1 cut into `parts` consecutive slices of nearly equal size. */
export function slices(n: number, parts: number): { first: number; count: number }[] {
  const out: { first: number; count: number }[] = [];
  let first = 0;
  for (let i = 0; i < parts; i++) {
    const count = Math.floor(n / parts) + (i < n % parts ? 1 : 0);
    out.push({ first, count });
    first += count;
  }
  return out;
}
