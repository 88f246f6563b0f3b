/**
 * Test support: real databases (SQLite always; PostgreSQL when GARRISON_TEST_PG_URL is set,
 * each test in a fresh schema), a real server on port 0, and real agent processes.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { pino } from 'pino';
import pg from 'pg';
import { pinnedFetch, type FetchLike } from '@garrison/protocol/tls';
import { startServer, type GarrisonServer } from '../src/app.ts';
import type { DatabaseConfig } from '../src/storage/database.ts';
import type { ServerTaskContext, ServerTaskType } from '../src/server-tasks/server-task.ts';
import { systemClock } from '../src/clock.ts';
import { serverTaskEnvironment } from '../src/server-tasks/server-task-environment.ts';
import { DeploymentStore } from '../src/storage/deployment-store.ts';
import { DeviceStore } from '../src/storage/device-store.ts';
import { EventStore } from '../src/storage/event-store.ts';
import { PackageStore } from '../src/storage/package-store.ts';
import { RunStore } from '../src/storage/run-store.ts';
import { ServerTaskStore } from '../src/storage/server-task-store.ts';
import { SettingsStore } from '../src/storage/settings-store.ts';
import { copyMigratedSqlite, makeMigratedSchema } from './support/template-databases.ts';

export const PG_URL = process.env.GARRISON_TEST_PG_URL;
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = path.join(ROOT, 'bin/garrison.js');

export interface DbKind {
  name: 'sqlite' | 'postgres';
  /**
   * A fresh database for one test; `cleanup` drops it. Empty unless `migrated`: then a copy of
   * one migrated once (support/template-databases.ts), the same as migrateToLatest makes it,
   * its bookkeeping rows included. Tests of the migrations themselves take an empty one.
   */
  make(dataDir: string, opts?: { migrated?: boolean }): Promise<{ config: DatabaseConfig; cleanup(): Promise<void> }>;
}

export const sqliteKind: DbKind = {
  name: 'sqlite',
  async make(dataDir, opts = {}) {
    const file = path.join(dataDir, 'garrison.db');
    if (opts.migrated) await copyMigratedSqlite(file);
    return { config: { kind: 'sqlite', file }, cleanup: async () => {} };
  },
};
export const postgresKind: DbKind = {
  name: 'postgres',
  async make(_dataDir, opts = {}) {
    const schema = opts.migrated ? await makeMigratedSchema(PG_URL!) : `t_${randomBytes(6).toString('hex')}`;
    return {
      // A small pool: the suite runs many servers (and instances) on one PostgreSQL at once, within its 100 connections.
      config: { kind: 'postgres', url: PG_URL!, schema, poolSize: 4 },
      async cleanup() {
        const client = new pg.Client({ connectionString: PG_URL });
        await client.connect();
        await client.query(`drop schema if exists ${schema} cascade`);
        await client.end();
      },
    };
  },
};

/** The databases every storage-touching test runs against. */
export const dbKinds: DbKind[] = PG_URL ? [sqliteKind, postgresKind] : [sqliteKind];
/** For `describe(..., { skip })` of PostgreSQL-only tests. */
export const pgSkip = PG_URL ? false : 'GARRISON_TEST_PG_URL is not set: PostgreSQL tests skipped';

export async function tempDir(prefix = 'garrison-test-'): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix));
}

export interface TestServer {
  server: GarrisonServer;
  dataDir: string;
  database: DatabaseConfig;
  token: string;
  /** fetch() that trusts this server's CA. */
  fetch: FetchLike;
  /** The server's CA certificate file, which agents are given with --ca. */
  caFile: string;
  api<T = unknown>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T; text: string }>;
  /** Closes the server and removes its database and data folder. */
  close(): Promise<void>;
  /** Removes the database and data folder only (after server.close()). */
  cleanup(): Promise<void>;
}

/**
 * Starts a server on a fresh database (a copy of a migrated one: see DbKind.make). `restartOf`
 * starts a new server process-in-process on the same data folder and database as a closed one
 * (its close() then cleans up both).
 */
export async function startTestServer(kind: DbKind = sqliteKind, opts: { port?: number; restartOf?: TestServer; plugins?: string[]; rolloutIntervalMs?: number; agentBuildDir?: string; serverTaskTypes?: ServerTaskType[]; serverTaskLeaseMs?: number; webhookAllow?: string[] } = {}): Promise<TestServer> {
  const dataDir = opts.restartOf?.dataDir ?? (await tempDir());
  const db = opts.restartOf ? { config: opts.restartOf.database, cleanup: opts.restartOf.cleanup } : await kind.make(dataDir, { migrated: true });
  const server = await startServer({
    dataDir,
    database: db.config,
    port: opts.port ?? 0,
    ...(opts.plugins ? { plugins: opts.plugins } : {}),
    ...(opts.rolloutIntervalMs ? { rolloutIntervalMs: opts.rolloutIntervalMs } : {}),
    ...(opts.serverTaskTypes ? { serverTaskTypes: opts.serverTaskTypes } : {}),
    ...(opts.serverTaskLeaseMs ? { serverTaskLeaseMs: opts.serverTaskLeaseMs } : {}),
    ...(opts.webhookAllow ? { webhookAllow: opts.webhookAllow } : {}),
    // Server task schedules are checked often so that tests of "once" triggers finish quickly.
    serverTaskTickMs: 200,
    logger: pino({ level: process.env.GARRISON_TEST_LOG ?? 'silent' }),
    // One single-executable agent build shared by every test server (it is keyed by its sources).
    agentBuildDir: opts.agentBuildDir ?? path.join(os.tmpdir(), 'garrison-test-agent-builds'),
  });
  const { readFile } = await import('node:fs/promises');
  const token = (await readFile(server.adminTokenFile, 'utf8')).trim();
  const tfetch = pinnedFetch(server.tls!.caPem);
  const api = apiClient(tfetch, server.url, token);
  const cleanup = async () => {
    await db.cleanup();
    await rm(dataDir, { recursive: true, force: true });
  };
  return {
    server,
    dataDir,
    database: db.config,
    token,
    fetch: tfetch,
    caFile: server.tls!.caFile,
    api,
    cleanup,
    async close() {
      await server.close();
      await cleanup();
    },
  };
}

/** The server of one describe block (see useTestServer), with the agents its tests start. */
export interface SuiteServer extends TestServer {
  /** Kills `agent` with SIGKILL once the block's tests are done, before the server closes; returns it. */
  track<A extends AgentProcess>(agent: A): A;
}

/**
 * Registers hooks in the current describe block: `before` starts a server (startTestServer(kind, opts)),
 * `after` kills the tracked agents with SIGKILL and closes the server, unless a test closed it already.
 * Hooks the block registers later run after these. The returned object stands for the server from
 * the `before` hook on; reading it earlier throws.
 */
export function useTestServer(kind: DbKind = sqliteKind, opts: Parameters<typeof startTestServer>[1] = {}): SuiteServer {
  let current: TestServer | undefined;
  let closed = false;
  const agents: AgentProcess[] = [];
  before(async () => {
    current = await startTestServer(kind, opts);
  });
  after(async () => {
    await Promise.all(agents.map((a) => a.kill('SIGKILL')));
    if (current && !closed) await current.close();
  });
  const live = (): TestServer => {
    if (!current) throw new Error('the test server is not started yet: use it in a test or a later hook');
    return current;
  };
  return {
    get server() { return live().server; },
    get dataDir() { return live().dataDir; },
    get database() { return live().database; },
    get token() { return live().token; },
    get fetch() { return live().fetch; },
    get caFile() { return live().caFile; },
    api: <T>(method: string, url: string, body?: unknown) => live().api<T>(method, url, body),
    async close() {
      await live().close();
      closed = true;
    },
    cleanup: () => live().cleanup(),
    track: (agent) => {
      agents.push(agent);
      return agent;
    },
  };
}

/**
 * Calls the API as the holder of `token`: the status, the body parsed when it is JSON (as
 * text otherwise: CSV exports, PEM), and the raw text.
 */
export function apiClient(fetch: FetchLike, baseUrl: string, token: string) {
  return async <T = unknown>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T; text: string }> => {
    const res = await fetch(baseUrl + url, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed as T, text };
  };
}

/** Runs a shell command line in a folder; resolves with its exit code and output. */
export function sh(command: string, cwd: string, env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => resolve({ code: code ?? -1, out }));
  });
}

export interface AgentProcess {
  child: ChildProcess;
  stateDir: string;
  output(): string;
  /** SIGTERM and wait (a clean stop); `kill('SIGKILL')` for a crash. */
  stop(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `garrison agent --state DIR ARGS`; `opts.stdin` is written to its standard input (else it has none). */
export function spawnAgent(args: string[], stateDir: string, env: Record<string, string> = {}, opts: { stdin?: string } = {}): AgentProcess {
  const child = spawn(process.execPath, [BIN, 'agent', '--state', stateDir, ...args], { stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  if (opts.stdin !== undefined) {
    child.stdin!.on('error', () => {});
    child.stdin!.end(opts.stdin);
  }
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return { child, stateDir, output: () => out, stop: () => kill('SIGTERM'), kill };
}

/** Enrols and starts a real agent process into the group; resolves with its device id once it is online. */
export async function startAgent(t: TestServer, groupId: string, name: string, opts: { stateDir?: string; serverUrl?: string; env?: Record<string, string> } = {}): Promise<AgentProcess & { deviceId: string }> {
  const dir = opts.stateDir ?? (await tempDir('garrison-agent-'));
  const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId, maxUses: 1, expiresInMinutes: 10 });
  // The token in a file only its owner can read (the agent refuses others), never on the command line.
  const tokenDir = await tempDir('garrison-enrol-');
  const tokenFile = path.join(tokenDir, 'enrolment-token');
  await writeFile(tokenFile, `${tok.body.token}\n`, { mode: 0o600 });
  const agent = spawnAgent(['--server', opts.serverUrl ?? t.server.url, '--token-file', tokenFile, '--name', name, '--ca', t.caFile], dir, opts.env);
  try {
    const device = await waitFor(async () => {
      const r = await t.api<{ items: { id: string; online: boolean }[] }>('GET', `/api/v1/devices?search=${encodeURIComponent(name)}`);
      return r.body.items.find((d) => d.online);
    }, { what: `agent ${name} online`, output: agent.output });
    return { ...agent, deviceId: device.id };
  } finally {
    // Read at the first start only: a restart of the enrolled agent does not need it.
    await rm(tokenDir, { recursive: true, force: true });
  }
}

/** Calls `fn` until it gives a truthy value (every `intervalMs`, 100 by default); throws after `timeoutMs` (15 s). */
export async function waitFor<T>(fn: () => Promise<T | undefined | null | false>, opts: { timeoutMs?: number; intervalMs?: number; what?: string; output?: () => string } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${opts.what ?? 'a condition'}${last ? `: ${(last as Error).message}` : ''}${opts.output ? `\n--- agent output ---\n${opts.output()}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}

/**
 * A TCP proxy between agents and the server that a test can cut and restore: a real network
 * outage without stopping the server.
 */
export interface CuttableProxy {
  url: string;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}
export async function startProxy(targetPort: number): Promise<CuttableProxy> {
  const net = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  let up = true;
  const server = net.createServer((client) => {
    if (!up) return client.destroy();
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as import('node:net').AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    cut() {
      up = false;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore() {
      up = true;
    },
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

/** Runs `garrison agent …` local subcommands against a running agent's state folder. */
export async function agentCli(stateDir: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'agent', ...args, '--state', stateDir], (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/**
 * The context a server task type's run() gets, on a test server: for calling a type directly.
 * The environment is built by the function the server builds its own with, from the server's
 * services and stores on its database (stores hold no state of their own). Its output lines
 * are collected in `lines`.
 */
export function serverTaskContext(t: Pick<TestServer, 'server' | 'dataDir'>, overrides: Partial<ServerTaskContext> = {}): ServerTaskContext & { lines: string[] } {
  const lines: string[] = [];
  const { db, services: s } = t.server;
  const env = serverTaskEnvironment({
    db,
    stores: { runs: new RunStore(db), events: new EventStore(db), devices: new DeviceStore(db), deployments: new DeploymentStore(db), serverTasks: new ServerTaskStore(db), settings: new SettingsStore(db), packages: new PackageStore(db) },
    catalog: s.catalog,
    groups: s.groups,
    devices: s.devices,
    deployments: s.deployments,
    repository: s.repository,
    enrolment: s.enrolment,
    installers: s.installers,
    auth: s.auth,
    trust: s.trust,
    dataDir: t.dataDir,
    clock: systemClock,
    log: pino({ level: 'silent' }),
    publicUrl: () => t.server.url,
  });
  return {
    ...env,
    taskId: 'test',
    taskName: 'test',
    runId: `r-${randomBytes(3).toString('hex')}`,
    signal: new AbortController().signal,
    progress: () => {},
    output: (l: string) => lines.push(l),
    ...overrides,
    lines,
  };
}
