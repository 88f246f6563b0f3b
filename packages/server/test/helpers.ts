/**
 * Test support: real databases (SQLite always; PostgreSQL when GARRISON_TEST_PG_URL is set,
 * each test in a fresh schema), a real server on port 0, and real agent processes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import pg from 'pg';
import { startServer, type GarrisonServer } from '../src/app.ts';
import type { DatabaseConfig } from '../src/storage/database.ts';

export const PG_URL = process.env.GARRISON_TEST_PG_URL;
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = path.join(ROOT, 'bin/garrison.js');

export interface DbKind {
  name: 'sqlite' | 'postgres';
  /** A fresh database for one test; `cleanup` drops it. */
  make(dataDir: string): Promise<{ config: DatabaseConfig; cleanup(): Promise<void> }>;
}

export const sqliteKind: DbKind = {
  name: 'sqlite',
  make: async (dataDir) => ({ config: { kind: 'sqlite', file: path.join(dataDir, 'garrison.db') }, cleanup: async () => {} }),
};
export const postgresKind: DbKind = {
  name: 'postgres',
  async make() {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    return {
      config: { kind: 'postgres', url: PG_URL!, schema },
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
  token: string;
  api<T = unknown>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

export async function startTestServer(kind: DbKind = sqliteKind, opts: { dataDir?: string; port?: number } = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? (await tempDir());
  const db = await kind.make(dataDir);
  const server = await startServer({
    dataDir,
    database: db.config,
    port: opts.port ?? 0,
    logger: pino({ level: process.env.GARRISON_TEST_LOG ?? 'silent' }),
  });
  const { readFile } = await import('node:fs/promises');
  const token = (await readFile(server.adminTokenFile, 'utf8')).trim();
  const api = async <T>(method: string, url: string, body?: unknown) => {
    const res = await fetch(server.url + url, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON (csv export) */
    }
    return { status: res.status, body: parsed as T };
  };
  return {
    server,
    dataDir,
    token,
    api,
    async close() {
      await server.close();
      await db.cleanup();
      if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface AgentProcess {
  child: ChildProcess;
  stateDir: string;
  output(): string;
  /** SIGTERM and wait (a clean stop); `kill('SIGKILL')` for a crash. */
  stop(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function spawnAgent(args: string[], stateDir: string): AgentProcess {
  const child = spawn(process.execPath, [BIN, 'agent', '--state', stateDir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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
export async function startAgent(t: TestServer, groupId: string, name: string, stateDir?: string): Promise<AgentProcess & { deviceId: string }> {
  const dir = stateDir ?? (await tempDir('garrison-agent-'));
  const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId, maxUses: 1, expiresInMinutes: 10 });
  const agent = spawnAgent(['--server', t.server.url, '--token', tok.body.token, '--name', name], dir);
  const device = await waitFor(async () => {
    const r = await t.api<{ id: string; online: boolean }[]>('GET', `/api/v1/devices?search=${encodeURIComponent(name)}`);
    return r.body.find((d) => d.online);
  }, { what: `agent ${name} online`, output: agent.output });
  return { ...agent, deviceId: device.id };
}

export async function waitFor<T>(fn: () => Promise<T | undefined | null | false>, opts: { timeoutMs?: number; what?: string; output?: () => string } = {}): Promise<T> {
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
    await new Promise((r) => setTimeout(r, 100));
  }
}
