/**
 * The agent's link to the server: one WebSocket kept open (so that a run-now reaches the
 * agent at once), reconnected with exponential back-off and jitter when it drops; and the
 * same requests over plain HTTP when the socket is down, so that check-ins and results
 * still get through from an agent that cannot hold a connection.
 */
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { pinnedFetch, requireHttps, type FetchLike } from '@garrison/protocol/tls';
import {
  AGENT_CHECK_IN_PATH,
  AGENT_REPORTS_PATH,
  MACHINE_IDENTITY_HEADER,
  AGENT_WS_PATH,
  type AckMessage,
  type CheckInRequest,
  type CheckInResult,
  type ReportsRequest,
  type ServerToAgent,
} from '@garrison/protocol';

export class TransportError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  constructor(code: string, message: string, retryable: boolean) {
    super(message);
    this.code = code;
    this.retryable = retryable;
  }
}

export interface TransportEvents {
  message: [ServerToAgent];
  connected: [];
  disconnected: [string];
}

const REQUEST_TIMEOUT_MS = 30_000;

export class Transport extends EventEmitter<TransportEvents> {
  readonly #serverUrl: string;
  #credential: string;
  readonly #caPem: string;
  readonly #fetch: FetchLike;
  readonly #log: (level: 'info' | 'warning' | 'error', msg: string) => void;
  #socket: WebSocket | null = null;
  #open = false;
  #stopped = false;
  #attempt = 0;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #nextId = 1;
  #pending = new Map<string | number, { resolve(v: ServerToAgent): void; reject(e: Error): void; timer: NodeJS.Timeout }>();

  readonly #identityHeader: Record<string, string>;

  constructor(opts: { serverUrl: string; credential: string; caPem: string; machineIdentity?: string | null; log: (level: 'info' | 'warning' | 'error', msg: string) => void }) {
    super();
    this.#identityHeader = opts.machineIdentity ? { [MACHINE_IDENTITY_HEADER]: opts.machineIdentity } : {};
    this.#serverUrl = requireHttps(opts.serverUrl);
    this.#credential = opts.credential;
    this.#caPem = opts.caPem;
    this.#fetch = pinnedFetch(opts.caPem);
    this.#log = opts.log;
  }
  /** Switches to a new credential: the socket reconnects with it at once. */
  setCredential(credential: string): void {
    this.#credential = credential;
    this.#socket?.close(1000, 'credential changed');
  }
  get connected(): boolean {
    return this.#open;
  }
  start(): void {
    this.#stopped = false;
    this.#connect();
  }
  #connect(): void {
    if (this.#stopped) return;
    const url = this.#serverUrl.replace(/^http/, 'ws') + AGENT_WS_PATH;
    // Only the pinned CA is trusted; the host name is checked as usual.
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.#credential}`, ...this.#identityHeader }, perMessageDeflate: false, handshakeTimeout: 15_000, ca: this.#caPem });
    this.#socket = ws;
    let failure = '';
    ws.on('open', () => {
      this.#open = true;
      this.#attempt = 0;
      this.emit('connected');
    });
    ws.on('unexpected-response', (_req, res) => {
      failure = `server refused the connection (HTTP ${res.statusCode})`;
      // A refused credential will not become valid by retrying quickly.
      if (res.statusCode === 401) this.#attempt = Math.max(this.#attempt, 8);
      res.resume();
      ws.terminate();
    });
    ws.on('message', (data) => {
      let msg: ServerToAgent;
      try {
        msg = JSON.parse(data.toString()) as ServerToAgent;
      } catch {
        this.#log('warning', 'ignored a message from the server that is not JSON');
        return;
      }
      const re = 're' in msg ? msg.re : undefined;
      if (re !== undefined && this.#pending.has(re)) {
        const p = this.#pending.get(re)!;
        this.#pending.delete(re);
        clearTimeout(p.timer);
        if (msg.type === 'error') p.reject(new TransportError(msg.code, msg.message, msg.code === 'UNAVAILABLE' || msg.code === 'INTERNAL'));
        else p.resolve(msg);
        return;
      }
      this.emit('message', msg);
    });
    ws.on('error', (err) => {
      failure ||= err.message;
    });
    ws.on('close', (code, reason) => {
      const wasOpen = this.#open;
      this.#open = false;
      this.#socket = null;
      for (const [id, p] of this.#pending) {
        clearTimeout(p.timer);
        p.reject(new TransportError('DISCONNECTED', 'the connection closed before the server answered', true));
        this.#pending.delete(id);
      }
      const why = failure || `closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`;
      if (wasOpen) this.emit('disconnected', why);
      this.#scheduleReconnect(why);
    });
  }
  #scheduleReconnect(why: string): void {
    if (this.#stopped) return;
    this.#attempt++;
    const base = Math.min(60_000, 1000 * 2 ** Math.min(this.#attempt - 1, 6));
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    if (this.#attempt <= 1 || this.#attempt % 10 === 0) this.#log('warning', `server connection: ${why}; retrying in ${Math.round(delay / 1000)} s`);
    this.#reconnectTimer = setTimeout(() => this.#connect(), delay);
  }
  /** Sends a request over the socket if open, else over HTTP; resolves with the reply. */
  async request<T extends ServerToAgent>(msg: CheckInRequest | ReportsRequest): Promise<T> {
    if (this.#open && this.#socket) {
      const id = this.#nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.#pending.delete(id);
          reject(new TransportError('TIMEOUT', 'the server did not answer in time', true));
        }, REQUEST_TIMEOUT_MS);
        this.#pending.set(id, { resolve: resolve as (v: ServerToAgent) => void, reject, timer });
        this.#socket!.send(JSON.stringify({ ...msg, id }));
      });
    }
    return this.#http<T>(msg.type === 'check-in' ? AGENT_CHECK_IN_PATH : AGENT_REPORTS_PATH, msg);
  }
  async #http<T>(path: string, body: unknown): Promise<T> {
    let res: Response;
    try {
      res = await this.#fetch(this.#serverUrl + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.#credential}`, ...this.#identityHeader },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      throw new TransportError('UNREACHABLE', `server unreachable: ${(err as Error).message}`, true);
    }
    const json = (await res.json().catch(() => null)) as { error?: { code: string; message: string; retryable: boolean } } | null;
    if (!res.ok) {
      const e = json?.error;
      throw new TransportError(e?.code ?? `HTTP_${res.status}`, e?.message ?? `HTTP ${res.status}`, e?.retryable ?? res.status >= 500);
    }
    return json as T;
  }
  checkIn(req: Omit<CheckInRequest, 'type' | 'id'>): Promise<CheckInResult> {
    return this.request<CheckInResult>({ type: 'check-in', ...req });
  }
  reports(reports: ReportsRequest['reports']): Promise<AckMessage> {
    return this.request<AckMessage>({ type: 'reports', reports });
  }
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    const ws = this.#socket;
    if (ws) {
      await new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close(1000, 'agent stopping');
        setTimeout(() => {
          ws.terminate();
          resolve();
        }, 2000).unref();
      });
    }
  }
}
