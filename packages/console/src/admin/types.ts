/**
 * Answers of the API that the wire contract (@garrison/protocol) does not describe yet, as the
 * server sends them; the CLI has the same ones. They belong in protocol, beside AdminView.
 */
import type { Inventory, Permission } from '@garrison/protocol';

/** GET /api/v1/permissions: a permission, what it allows, and whether it counts only on the root group. */
export interface PermissionInfo {
  id: Permission;
  description: string;
  serverWide: boolean;
}

/** POST /api/v1/me/totp: the secret of a second factor being set up, for an authenticator app. */
export interface TotpSetup {
  secret: string;
  uri: string;
}

/** GET /api/v1/device-duplicates: a machine that presented another device's credential with another machine identity. */
export interface DeviceDuplicateView {
  id: string;
  /** The device whose credential it presented. */
  deviceId: string;
  machineIdentity: string;
  hostname: string;
  inventory: Inventory;
  remoteAddress: string | null;
  state: 'pending' | 'approved' | 'rejected';
  firstSeenAt: string;
  lastSeenAt: string;
  seenCount: number;
  /** The device it became when approved. */
  newDeviceId: string | null;
  decidedBy: string | null;
  decidedAt: string | null;
}
