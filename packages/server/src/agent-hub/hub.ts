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
import { AGENT_MESSAGE_MAX_BYTES, AgentToServer, MACHINE_IDENTITY_HEADER, checker } from '@garrison/protocol';
import { AppError } from '../errors.ts';
import type { AgentService } from '../services/agent-service.ts';
import type { EnrolmentService } from '../services/enrolment-service.ts';
import type { AgentConnections, Connection } from './connections.ts';

const messageChecker = checker(AgentToServer);
const HEARTBEAT_MS = 30_000;

const IDENTITY = /^[0-9a-f]{64}$/;

export function bearer(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(value);
  return m?.[1];
}

/**
 * The WebSocket side of agent connections: upgrade, authentication, heartbeat and messages.
 * The connections themselves are kept in `AgentConnections`, which the presence layer owns
 * (services send through it without knowing about this hub).
 */
export class AgentHub {
  readonly #wss: WebSocketServer;
  readonly #connections: AgentConnections;
  /** Whether a machine identity is another than the one recorded for the device. */
  readonly #isForeign: (deviceId: string, machineIdentity: string) => boolean;
  readonly #agents: AgentService;
  readonly #enrolment: EnrolmentService;
  readonly #log: Logger;
  readonly #heartbeat: NodeJS.Timeout;

  constructor(deps: { connections: AgentConnections; agents: AgentService; enrolment: EnrolmentService; isForeign: (deviceId: string, machineIdentity: string) => boolean; log: Logger }) {
    this.#connections = deps.connections;
    this.#isForeign = deps.isForeign;
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
    const quarantineKey = identity && this.#isForeign(deviceId, identity) ? `${deviceId}\n${identity}` : undefined;
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      if (quarantineKey) this.#acceptQuarantined(ws, deviceId, req.socket.remoteAddress ?? '', credentialHash, quarantineKey);
      else this.#accept(ws, deviceId, req.socket.remoteAddress ?? '', credentialHash);
    });
  }

  /** A duplicate's connection: it may check in (and is told it is quarantined), nothing else; the device's own connection is untouched. */
  #acceptQuarantined(socket: WebSocket, deviceId: string, remoteAddress: string, credentialHash: string, key: string): void {
    const conn: Connection = { socket, deviceId, alive: true, credentialHash, remoteAddress, quarantineKey: key };
    this.#connections.addQuarantined(conn);
    this.#wire(conn, () => this.#connections.remove(conn));
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
  #accept(socket: WebSocket, deviceId: string, remoteAddress: string, credentialHash: string): void {
    const conn: Connection = { socket, deviceId, alive: true, credentialHash, remoteAddress };
    this.#connections.add(conn);
    this.#agents.connected(deviceId, remoteAddress);
    this.#wire(conn, (code) => {
      if (this.#connections.remove(conn)) this.#agents.disconnected(deviceId, code === 1000 ? 'closed' : `code ${code}`);
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
        this.#connections.sendTo(conn, result);
      } else {
        if (conn.quarantineKey) throw new AppError('DEVICE_QUARANTINED', "this machine presented another device's credential: its reports are not taken until an administrator approves it");
        const ack = msg.type === 'device-events' ? await this.#agents.submitDeviceEvents(conn.deviceId, msg.events) : await this.#agents.submitReports(conn.deviceId, msg.reports);
        this.#connections.sendTo(conn, { ...ack, ...(re !== undefined ? { re } : {}) });
      }
    } catch (err) {
      const e = err instanceof AppError ? err : new AppError('INTERNAL', 'the server could not handle this message');
      if (!(err instanceof AppError)) this.#log.error({ err, deviceId: conn.deviceId }, 'agent message failed');
      this.#connections.sendTo(conn, { type: 'error', ...(re !== undefined ? { re } : {}), code: e.code, message: e.message });
      if (e.code === 'DEVICE_CREDENTIAL_INVALID') conn.socket.close(4001, 'credential no longer valid');
      else if (e.code === 'DEVICE_QUARANTINED' && !conn.quarantineKey) conn.socket.close(4003, 'refused: a duplicate of another device');
    }
  }

  /**
   * Pings every connection once per interval, spread over it in slices, so that 100,000
   * pings (and their pongs) never arrive in one burst that starves the event loop.
   */
  #beat(): void {
    const conns = this.#connections.all();
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

  /** Closes every connection; agents reconnect to another instance or when this one is back. */
  async close(): Promise<void> {
    clearInterval(this.#heartbeat);
    this.#connections.closeAll(1001, 'server shutting down');
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}

