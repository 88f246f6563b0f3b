import type { ServerToAgent } from '@garrison/protocol';

/**
 * What services need of the live agent connections, without knowing about sockets: the
 * agent hub implements it.
 */
export interface Presence {
  /** Connected to any instance. */
  isOnline(deviceId: string): boolean;
  /** Connected to this instance (only these are reached by `send`). */
  isOnlineHere(deviceId: string): boolean;
  onlineCount(): number;
  /** Sends one message to each device of the list connected here; returns how many were reached. */
  send(deviceIds: Iterable<string>, message: ServerToAgent): number;
  /** Sends a distinct message per device (serialized once each). */
  sendEach(messages: Iterable<readonly [string, ServerToAgent]>): number;
  /** Closes the device's connections on every instance (its credential stopped working). */
  disconnect(deviceId: string, reason: string): void;
  /** Writes what it has queued about connections (with several instances, to agent_presence). */
  flush(): Promise<void>;
  /** Tells a quarantined duplicate of a device to check in now. */
  nudgeDuplicate?(deviceId: string, machineIdentity: string): void;
}
