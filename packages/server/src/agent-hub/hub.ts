/**
 * The agents' persistent connections. One WebSocket per device, authenticated by its device
 * credential at the upgrade; messages are validated before they reach a service, and nothing
 * an agent sends can throw out of here. Broadcasts serialize a message once and write the
 * same buffer to every socket, so that a run-now to 100,000 agents costs one JSON.stringify.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from 'pino';
import { AGENT_MESSAGE_MAX_BYTES, AgentToServer, MACHINE_IDENTITY_HEADER, checker, type ServerToAgent } from '@garrison/protocol';
import { AppError } from '../errors.ts';
import type { AgentService } from '../services/agent-service.ts';
import type { EnrolmentService } from '../services/enrolment-service.ts';
import type { Presence } from '../services/presence.ts';

const messageChecker = checker(AgentToServer);
const HEARTBEAT_MS = 30_000;

interface Connection {
  socket: WebSocket;
  deviceId: string;
  alive: boolean;
  /** The hash of the credential secret the connection was opened with: closed when that secret stops working. */
  credentialHash: string;
  remoteAddress: string;
  /**
   * Set for a machine that presented this device's credential with another machine identity
   * (a duplicate waiting for approval): kept apart, never the device's connection, never online.
   */
  quarantineKey?: string;
}

const IDENTITY = /^[0-9a-f]{64}$/;

export function bearer(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(value);
  return m?.[1];
}

export class AgentHub implements Presence {
  readonly #wss: WebSocketServer;
  readonly #connections = new Map<string, Connection>();
  readonly #quarantined = new Map<string, Connection>();
  /** Whether a machine identity is another than the one recorded for the device (set by the composition root). */
  isForeign: (deviceId: string, machineIdentity: string) => boolean = () => false;
  readonly #agents: AgentService;
  readonly #enrolment: EnrolmentService;
  readonly #log: Logger;
  readonly #heartbeat: NodeJS.Timeout;

  constructor(deps: { agents: AgentService; enrolment: EnrolmentService; log: Logger }) {
    this.#agents = deps.agents;
    this.#enrolment = deps.enrolment;
    this.#log = deps.log;
    // No compression: per-connection zlib contexts cost ~300 KB each at 100k agents.
    this.#wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: AGENT_MESSAGE_MAX_BYTES, clientTracking: false });
    this.#heartbeat = setInterval(() => this.#beat(), HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** Called for an HTTP upgrade on the agent path. */
  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    let deviceId: string;
    const credential = bearer(req.headers.authorization);
    try {
      deviceId = await this.#enrolment.authenticateDevice(credential);
    } catch (err) {
      const e = err instanceof AppError ? err : new AppError('INTERNAL', 'authentication failed');
      if (!(err instanceof AppError)) this.#log.error({ err }, 'agent authentication failed');
      const body = JSON.stringify(e.toBody());
      socket.end(`HTTP/1.1 ${e.status} ${e.code}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      return;
    }
    const credentialHash = this.#enrolment.credentialHash(credential)!;
    const header = req.headers[MACHINE_IDENTITY_HEADER];
    const identity = typeof header === 'string' && IDENTITY.test(header) ? header : null;
    const quarantineKey = identity && this.isForeign(deviceId, identity) ? `${deviceId}\n${identity}` : undefined;
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      if (quarantineKey) this.#acceptQuarantined(ws, deviceId, req.socket.remoteAddress ?? '', credentialHash, quarantineKey);
      else this.#accept(ws, deviceId, req.socket.remoteAddress ?? '', credentialHash);
    });
  }

  /** A duplicate's connection: it may check in (and is told it is quarantined), nothing else; the device's own connection is untouched. */
  #acceptQuarantined(socket: WebSocket, deviceId: string, remoteAddress: string, credentialHash: string, key: string): void {
    this.#quarantined.get(key)?.socket.close(4000, 'replaced by a newer connection');
    const conn: Connection = { socket, deviceId, alive: true, credentialHash, remoteAddress, quarantineKey: key };
    this.#quarantined.set(key, conn);
    this.#wire(conn, () => {
      if (this.#quarantined.get(key) === conn) this.#quarantined.delete(key);
    });
  }
  /** Heartbeat, messages and errors of a connection; `onClose` forgets it. */
  #wire(conn: Connection, onClose: (code: number) => void): void {
    conn.socket.on('pong', () => {
      conn.alive = true;
    });
    conn.socket.on('message', (data, isBinary) => {
      conn.alive = true;
      void this.#onMessage(conn, data as Buffer, isBinary);
    });
    conn.socket.on('error', (err) => this.#log.debug({ err, deviceId: conn.deviceId, quarantined: !!conn.quarantineKey }, 'agent socket error'));
    conn.socket.on('close', onClose);
  }
  /** Tells a quarantined machine to check in now (an administrator decided about it). */
  nudgeDuplicate(deviceId: string, machineIdentity: string): void {
    const c = this.#quarantined.get(`${deviceId}\n${machineIdentity}`);
    if (c) this.#sendTo(c, { type: 'sync' });
  }

  #accept(socket: WebSocket, deviceId: string, remoteAddress: string, credentialHash: string): void {
    const previous = this.#connections.get(deviceId);
    if (previous) previous.socket.close(4000, 'replaced by a newer connection');
    const conn: Connection = { socket, deviceId, alive: true, credentialHash, remoteAddress };
    this.#connections.set(deviceId, conn);
    this.#agents.connected(deviceId, remoteAddress);
    this.#wire(conn, (code) => {
      if (this.#connections.get(deviceId) === conn) {
        this.#connections.delete(deviceId);
        this.#agents.disconnected(deviceId, code === 1000 ? 'closed' : `code ${code}`);
      }
    });
  }

  async #onMessage(conn: Connection, data: Buffer, isBinary: boolean): Promise<void> {
    let re: string | number | undefined;
    try {
      if (isBinary) throw new AppError('BAD_REQUEST', 'messages are JSON text');
      let msg: unknown;
      try {
        msg = JSON.parse(data.toString('utf8'));
      } catch {
        throw new AppError('BAD_REQUEST', 'the message is not valid JSON');
      }
      if (msg && typeof msg === 'object' && 'id' in msg && (typeof msg.id === 'string' || typeof msg.id === 'number')) re = msg.id;
      if (!messageChecker.check(msg)) throw new AppError('VALIDATION_FAILED', 'the message does not match the agent protocol', { issues: messageChecker.issues(msg, 5) });
      if (msg.type === 'check-in') {
        const result = await this.#agents.checkIn(conn.deviceId, msg, conn.remoteAddress);
        this.#sendTo(conn, result);
      } else {
        if (conn.quarantineKey) throw new AppError('DEVICE_QUARANTINED', "this machine presented another device's credential: its reports are not taken until an administrator approves it");
        const ack = await this.#agents.submitReports(conn.deviceId, msg.reports);
        this.#sendTo(conn, { ...ack, ...(re !== undefined ? { re } : {}) });
      }
    } catch (err) {
      const e = err instanceof AppError ? err : new AppError('INTERNAL', 'the server could not handle this message');
      if (!(err instanceof AppError)) this.#log.error({ err, deviceId: conn.deviceId }, 'agent message failed');
      this.#sendTo(conn, { type: 'error', ...(re !== undefined ? { re } : {}), code: e.code, message: e.message });
      if (e.code === 'DEVICE_CREDENTIAL_INVALID') conn.socket.close(4001, 'credential no longer valid');
      else if (e.code === 'DEVICE_QUARANTINED' && !conn.quarantineKey) conn.socket.close(4003, 'refused: a duplicate of another device');
    }
  }

  #sendTo(conn: Connection, message: ServerToAgent): void {
    if (conn.socket.readyState === conn.socket.OPEN) conn.socket.send(JSON.stringify(message));
  }

  /**
   * Pings every connection once per interval, spread over it in slices, so that 100,000
   * pings (and their pongs) never arrive in one burst that starves the event loop.
   */
  #beat(): void {
    const conns = [...this.#connections.values(), ...this.#quarantined.values()];
    const slices = 20;
    const per = Math.ceil(conns.length / slices);
    for (let i = 0; i < slices && i * per < conns.length; i++) {
      const slice = conns.slice(i * per, (i + 1) * per);
      setTimeout(() => {
        for (const conn of slice) {
          if (conn.socket.readyState !== conn.socket.OPEN) continue;
          if (!conn.alive) {
            conn.socket.terminate();
            continue;
          }
          conn.alive = false;
          conn.socket.ping();
        }
      }, (i * HEARTBEAT_MS) / slices).unref();
    }
  }

  isOnline(deviceId: string): boolean {
    return this.#connections.has(deviceId);
  }
  onlineCount(): number {
    return this.#connections.size;
  }
  send(deviceIds: Iterable<string>, message: ServerToAgent): number {
    const data = JSON.stringify(message);
    let n = 0;
    for (const id of deviceIds) {
      const c = this.#connections.get(id);
      if (c && c.socket.readyState === c.socket.OPEN) {
        c.socket.send(data);
        n++;
      }
    }
    return n;
  }
  sendEach(messages: Iterable<readonly [string, ServerToAgent]>): number {
    let n = 0;
    for (const [id, message] of messages) {
      const c = this.#connections.get(id);
      if (c && c.socket.readyState === c.socket.OPEN) {
        c.socket.send(JSON.stringify(message));
        n++;
      }
    }
    return n;
  }
  /** The device now uses a rotated credential: a connection opened with the previous secret is closed at once. */
  closeSuperseded(deviceId: string, currentHash: string): void {
    const c = this.#connections.get(deviceId);
    if (c && c.credentialHash !== currentHash) c.socket.close(4001, 'credential rotated: the previous secret no longer works');
  }
  disconnect(deviceId: string, reason: string): void {
    this.#enrolment.forgetCredential(deviceId);
    this.#connections.get(deviceId)?.socket.close(4001, reason);
    for (const c of this.#quarantined.values()) if (c.deviceId === deviceId) c.socket.close(4001, reason);
  }
  /** Closes every connection; agents reconnect to another instance or when this one is back. */
  async close(): Promise<void> {
    clearInterval(this.#heartbeat);
    for (const c of [...this.#connections.values(), ...this.#quarantined.values()]) c.socket.close(1001, 'server shutting down');
    this.#connections.clear();
    this.#quarantined.clear();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}

