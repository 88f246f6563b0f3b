/** The API's answer shapes come from the protocol package; these names are the CLI's. */
export type {
  Me,
  GroupView,
  DeviceView,
  DeviceSummary as DeviceFacts,
  EnrolmentTokenView,
  EventView as StoredEvent,
  SecretMeta,
  RunNowResult,
  ServerSettings,
  AdminView,
  AdminCreate,
  AdminUpdate,
  RoleView,
  RoleCreate,
  RoleUpdate,
  GrantInput,
  GrantView,
  ApiTokenView,
  Permission,
} from '@garrison/protocol';
import type { Inventory } from '@garrison/protocol';

// Answers the protocol package does not describe (yet): the server's own shapes, as the API sends them.

/** GET /api/v1/permissions: one permission, what it allows, and whether it only counts on the root group. */
export interface PermissionInfo {
  id: string;
  description: string;
  serverWide: boolean;
}

/** POST /api/v1/me/totp: the secret of a second factor being set, for an authenticator app. */
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

/** GET /api/v1/security/refusals: agent messages refused at the device boundary since the server started. */
export interface RefusalCounts {
  since: string;
  total: number;
  byCode: Record<string, number>;
  devices: { deviceId: string; total: number; byCode: Record<string, number>; lastAt: string }[];
}
