/**
 * The agents connected to this instance: one connection per device, plus the quarantined
 * connections of machines that presented another device's credential. The hub adds and
 * removes them; services reach them through the presence layer (services/fleet-presence.ts).
 * Broadcasts serialize a message once and write the same buffer to every socket, so that a
 * run-now to 100,000 agents costs one JSON.stringify.
 */
import type { WebSocket } from 'ws';
import type { ServerToAgent } from '@garrison/protocol';

export interface Connection {
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

export class AgentConnections {
  readonly #online = new Map<string, Connection>();
  readonly #quarantined = new Map<string, Connection>();
  readonly #onChange: (deviceId: string, online: boolean) => void;

  /** `onChange` hears every device that comes online here or leaves (not quarantined machines). */
  constructor(onChange: (deviceId: string, online: boolean) => void = () => {}) {
    this.#onChange = onChange;
  }

  /** The device's connection; one it replaces is closed. */
  add(conn: Connection): void {
    const previous = this.#online.get(conn.deviceId);
    this.#online.set(conn.deviceId, conn);
    if (previous) previous.socket.close(4000, 'replaced by a newer connection');
    this.#onChange(conn.deviceId, true);
  }
  addQuarantined(conn: Connection): void {
    const key = conn.quarantineKey!;
    this.#quarantined.get(key)?.socket.close(4000, 'replaced by a newer connection');
    this.#quarantined.set(key, conn);
  }
  /** Forgets a closed connection; true when it was the device's current one (the device went offline). */
  remove(conn: Connection): boolean {
    if (conn.quarantineKey) {
      if (this.#quarantined.get(conn.quarantineKey) === conn) this.#quarantined.delete(conn.quarantineKey);
      return false;
    }
    if (this.#online.get(conn.deviceId) !== conn) return false;
    this.#online.delete(conn.deviceId);
    this.#onChange(conn.deviceId, false);
    return true;
  }
  all(): Connection[] {
    return [...this.#online.values(), ...this.#quarantined.values()];
  }
  deviceIds(): IterableIterator<string> {
    return this.#online.keys();
  }

  isOnline(deviceId: string): boolean {
    return this.#online.has(deviceId);
  }
  count(): number {
    return this.#online.size;
  }
  sendTo(conn: Connection, message: ServerToAgent): void {
    if (conn.socket.readyState === conn.socket.OPEN) conn.socket.send(JSON.stringify(message));
  }
  send(deviceIds: Iterable<string>, message: ServerToAgent): number {
    const data = JSON.stringify(message);
    let n = 0;
    for (const id of deviceIds) {
      const c = this.#online.get(id);
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
      const c = this.#online.get(id);
      if (c && c.socket.readyState === c.socket.OPEN) {
        c.socket.send(JSON.stringify(message));
        n++;
      }
    }
    return n;
  }
  /** Tells a quarantined machine to check in now (an administrator decided about it). */
  nudgeDuplicate(deviceId: string, machineIdentity: string): void {
    const c = this.#quarantined.get(`${deviceId}\n${machineIdentity}`);
    if (c) this.sendTo(c, { type: 'sync' });
  }
  /** The device now uses a rotated credential: a connection opened with the previous secret is closed at once. */
  closeSuperseded(deviceId: string, currentHash: string): void {
    const c = this.#online.get(deviceId);
    if (c && c.credentialHash !== currentHash) c.socket.close(4001, 'credential rotated: the previous secret no longer works');
  }
  /** Closes the device's connections here (its credential stopped working). */
  disconnect(deviceId: string, reason: string): void {
    this.#online.get(deviceId)?.socket.close(4001, reason);
    for (const c of this.#quarantined.values()) if (c.deviceId === deviceId) c.socket.close(4001, reason);
  }
  closeAll(code: number, reason: string): void {
    for (const c of this.all()) c.socket.close(code, reason);
    this.#online.clear();
    this.#quarantined.clear();
  }
}
