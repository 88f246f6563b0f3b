/**
 * The agent's link to the server: one WebSocket kept open (so that a run-now reaches the
 * agent at once), reconnected with exponential back-off and jitter when it drops; and the
 * same requests over plain HTTP when the socket is down, so that check-ins and results
 * still get through from an agent that cannot hold a connection.
 *
 * Failover (issue 14): the agent may know several addresses of the fleet's server instances.
 * When the connection to the current one fails or drops, the next address is tried; a round
 * goes through every address once, with no wait between them (a dead instance refuses at
 * once, and a device that waited a back-off per address would be off-line n times longer),
 * and the back-off with jitter comes between rounds, as it did for one address. The agent
 * stays on the address that works, even when an earlier one comes back: moving back would
 * drop a working connection for nothing, and the instances are equals. A drop of an open
 * connection starts a new round at a random other address after the usual short jittered
 * delay, so that the devices of a failed instance spread over the others, not all arriving at
 * the next one in the same second.
 * HTTP requests (the fallback and `fetch`) go to the current address first and to the next
 * ones when no answer comes (see failoverFetch).
 */
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { pinnedFetch, requireHttps, type FetchLike } from '@garrison/protocol/tls';
import { failoverFetch } from './server-urls.ts';
import {
  AGENT_CHECK_IN_PATH,
  AGENT_REPORTS_PATH,
  AGENT_DEVICE_EVENTS_PATH,
  MACHINE_IDENTITY_HEADER,
  AGENT_WS_PATH,
  type AckMessage,
  type CheckInRequest,
  type CheckInResult,
  type DeviceEventsRequest,
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
  readonly #urls: readonly string[];
  /** The address connected to, or the one the next attempt goes to. */
  #index = 0;
  /** Addresses still to try at once in this round, before the back-off. */
  #roundLeft = 0;
  /** Set when the agent itself closes the socket (new credential): reconnect to the same address. */
  #sameAddress = false;
  #credential: string;
  readonly #caPem: string;
  /**
   * fetch() pinned to the server's CA that fails over across the agent's addresses: for every
   * HTTP request the agent makes to its server (packages, credential rotation, uninstall).
   */
  readonly fetch: FetchLike;
  readonly #log: (level: 'info' | 'warning' | 'error', msg: string) => void;
  #socket: WebSocket | null = null;
  #open = false;
  #stopped = false;
  #attempt = 0;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #nextId = 1;
  #pending = new Map<string | number, { resolve(v: ServerToAgent): void; reject(e: Error): void; timer: NodeJS.Timeout }>();

  readonly #identityHeader: Record<string, string>;

  constructor(opts: { serverUrls: readonly string[]; credential: string; caPem: string; machineIdentity?: string | null; log: (level: 'info' | 'warning' | 'error', msg: string) => void }) {
    super();
    if (!opts.serverUrls.length) throw new TypeError('the transport needs at least one server address');
    this.#identityHeader = opts.machineIdentity ? { [MACHINE_IDENTITY_HEADER]: opts.machineIdentity } : {};
    this.#urls = opts.serverUrls.map((u) => requireHttps(u).replace(/\/+$/, ''));
    this.#credential = opts.credential;
    this.#caPem = opts.caPem;
    // An address that answered an HTTP request while the socket is down (waiting for its next
    // attempt) is where the socket tries next; an open or opening socket is left alone.
    this.fetch = failoverFetch(pinnedFetch(opts.caPem), () => this.#urls, () => this.#index, (i) => {
      if (!this.#socket) this.#index = i;
    });
    this.#log = opts.log;
  }
  /** The address in use: the one connected to, or the one the next attempt goes to. */
  get serverUrl(): string {
    return this.#urls[this.#index]!;
  }
  get serverUrls(): readonly string[] {
    return this.#urls;
  }
  /** Switches to a new credential: the socket reconnects with it at once. */
  setCredential(credential: string): void {
    this.#credential = credential;
    if (this.#socket) this.#sameAddress = true;
    this.#socket?.close(1000, 'credential changed');
  }
  get connected(): boolean {
    return this.#open;
  }
  start(): void {
    this.#stopped = false;
    this.#roundLeft = this.#urls.length - 1;
    this.#connect();
  }
  #connect(): void {
    if (this.#stopped) return;
    const url = this.serverUrl.replace(/^http/, 'ws') + AGENT_WS_PATH;
    // Only the pinned CA is trusted; the host name is checked as usual.
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.#credential}`, ...this.#identityHeader }, perMessageDeflate: false, handshakeTimeout: 15_000, ca: this.#caPem });
    this.#socket = ws;
    let failure = '';
    ws.on('open', () => {
      this.#open = true;
      this.#attempt = 0;
      this.#roundLeft = this.#urls.length - 1;
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
      this.#next(why, wasOpen);
    });
  }
  /** After a failed attempt or a drop: the next address now, or, once a round is over, after the back-off. */
  #next(why: string, wasOpen: boolean): void {
    if (this.#stopped) return;
    if (this.#sameAddress) {
      this.#sameAddress = false;
      this.#scheduleReconnect(why);
      return;
    }
    const from = this.serverUrl;
    const n = this.#urls.length;
    // A dropped connection moves to a random other address, so that the agents of an instance
    // that died spread over the others instead of all landing on the next one; a round of
    // failed attempts then goes on in order from there, so it tries every address once.
    this.#index = wasOpen && n > 2 ? (this.#index + 1 + Math.floor(Math.random() * (n - 1))) % n : (this.#index + 1) % n;
    if (!wasOpen && this.#roundLeft > 0) {
      this.#roundLeft--;
      // As quiet as the retry message: a fleet whose every address is down logs a line per ten rounds.
      if (this.#attempt <= 1 || this.#attempt % 10 === 0) this.#log('warning', `server connection to ${from}: ${why}; trying ${this.serverUrl}`);
      this.#connect();
      return;
    }
    this.#roundLeft = this.#urls.length - 1;
    this.#scheduleReconnect(this.#urls.length > 1 ? `${from}: ${why}; next ${this.serverUrl}` : why);
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
  async request<T extends ServerToAgent>(msg: CheckInRequest | ReportsRequest | DeviceEventsRequest): Promise<T> {
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
    return this.#http<T>(msg.type === 'check-in' ? AGENT_CHECK_IN_PATH : msg.type === 'device-events' ? AGENT_DEVICE_EVENTS_PATH : AGENT_REPORTS_PATH, msg);
  }
  async #http<T>(path: string, body: unknown): Promise<T> {
    let res: Response;
    try {
      res = await this.fetch(this.serverUrl + path, {
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
  /** Device events (spooled by the agent); the ack lists the eventIds the server stored. */
  deviceEvents(events: DeviceEventsRequest['events']): Promise<AckMessage> {
    return this.request<AckMessage>({ type: 'device-events', events } as DeviceEventsRequest);
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
