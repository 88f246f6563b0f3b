/**
 * Raw protocol clients for tests that play a hostile device: real HTTP and a real WebSocket
 * with a device credential, sending what a real agent never would.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import WebSocket from 'ws';
import { AGENT_WS_PATH, credentialRotationPayload, MACHINE_IDENTITY_HEADER } from '@garrison/protocol';
import type { TestServer } from '../helpers.ts';

export const inventory = (hostname: string, products: { id: string; version: string }[] = [{ id: 'garrison', version: '0.1.0' }]) => ({
  hostname,
  osPlatform: 'linux',
  osName: 'Linux',
  osVersion: '6.1',
  arch: 'x64',
  addresses: ['10.0.0.1'],
  agentVersion: '0.1.0',
  timeZone: 'UTC',
  products,
});

export async function enrolRaw(t: TestServer, token: string, hostname: string, extra: Record<string, unknown> = {}) {
  const res = await t.fetch(`${t.server.url}/agent/v1/enrol`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, inventory: inventory(hostname), ...extra }) });
  return { status: res.status, body: (await res.json()) as { deviceId: string; credential: string; groupId: string; error?: { code: string } } };
}

/** An enrolment token for a group, and a raw device enrolled with it (with a device key of its own). */
export async function hostileDevice(t: TestServer, groupId: string, hostname: string): Promise<{ deviceId: string; credential: string; key: KeyObject; publicKey: string }> {
  const tok = await t.api<{ token: string }>('POST', '/api/v1/enrolment-tokens', { groupId, maxUses: 1 });
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pub = publicKey.export({ format: 'der', type: 'spki' }).toString('base64url');
  const r = await enrolRaw(t, tok.body.token, hostname, { publicKey: pub });
  if (r.status !== 201) throw new Error(`enrolment failed: ${JSON.stringify(r.body)}`);
  return { deviceId: r.body.deviceId, credential: r.body.credential, key: privateKey, publicKey: pub };
}

export function signRotation(key: KeyObject, deviceId: string, challenge: string, secret: string): string {
  return sign(null, Buffer.from(credentialRotationPayload(deviceId, challenge, secret)), key).toString('base64url');
}

/** POSTs to an agent endpoint with a device credential. */
export async function agentPost<T = Record<string, unknown>>(t: TestServer, credential: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: T }> {
  const res = await t.fetch(`${t.server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}`, ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
}

export interface RawSocket {
  ws: WebSocket;
  next(): Promise<Record<string, unknown>>;
  send(m: unknown): void;
  /** Resolves with the close code once the server closes the socket. */
  closed: Promise<number>;
}

export function openSocket(t: TestServer, credential: string, machineIdentity?: string): Promise<RawSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(t.server.url.replace('http', 'ws') + AGENT_WS_PATH, {
      headers: { authorization: `Bearer ${credential}`, ...(machineIdentity ? { [MACHINE_IDENTITY_HEADER]: machineIdentity } : {}) },
      ca: t.server.tls!.caPem,
    });
    const queue: Record<string, unknown>[] = [];
    const waiters: ((m: Record<string, unknown>) => void)[] = [];
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString()) as Record<string, unknown>;
      const w = waiters.shift();
      if (w) w(m);
      else queue.push(m);
    });
    ws.once('open', () =>
      resolve({
        ws,
        closed,
        next: () => (queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => waiters.push(r))),
        send: (m) => ws.send(typeof m === 'string' ? m : JSON.stringify(m)),
      }),
    );
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

/** Waits for the next message of a type (skipping nudges and the like). */
export async function nextOf(s: RawSocket, type: string): Promise<Record<string, unknown>> {
  for (;;) {
    const m = await s.next();
    if (m.type === type || (type === 'error' && m.code)) return m;
  }
}

export const report = (runId: string, taskId: string, extra: Record<string, unknown> = {}) => ({
  runId,
  taskId,
  attempt: 1,
  seq: 1,
  state: 'succeeded',
  cause: 'schedule',
  createdAt: new Date().toISOString(),
  startedAt: new Date().toISOString(),
  endedAt: new Date().toISOString(),
  exitCode: 0,
  ...extra,
});
