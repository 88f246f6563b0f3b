/**
 * The shapes of the admin API's answers that are not tasks, runs or schedules (those are in
 * task.ts, run.ts, schedule.ts). The server returns them and the CLI and console read them,
 * so they live here, in the wire contract.
 */
import type { InstalledProduct } from './inventory.ts';
import type { Run } from './run.ts';
import type { ComplianceSummary } from './deployment.ts';
import type { ActorVia, GrantView, Permission } from './access.ts';

export interface Me {
  kind: 'admin' | 'system';
  adminId?: string;
  name: string;
  displayName?: string | null;
  /** Roles held and the group subtrees they are held on. */
  grants?: GrantView[];
  /** Permissions held on at least one group: what the console offers at all. */
  permissions?: Permission[];
  /** Permissions held on the root group: server-wide objects and the whole tree. */
  rootPermissions?: Permission[];
  /** How this request was authenticated. */
  via?: ActorVia;
  /** True for a console session (it can be ended by signing out). */
  session?: boolean;
  totpEnabled?: boolean;
}

export interface GroupView {
  id: string;
  parentId: string | null;
  name: string;
  blockInheritance: boolean;
  checkInIntervalMinutes: number | null;
  policyEnforcementMinutes: number | null;
  createdAt: string;
  updatedAt: string;
  path: string;
  effectivePolicy: { checkInIntervalMinutes: number; policyEnforcementMinutes: number };
}

export interface DeviceView {
  id: string;
  groupId: string;
  name: string;
  hostname: string;
  osPlatform: string;
  osName: string;
  osVersion: string;
  arch: string;
  addresses: string[];
  agentVersion: string;
  timeZone: string;
  products: InstalledProduct[];
  tags: string[];
  enrolledAt: string;
  lastContactAt: string | null;
  credentialRevoked: boolean;
  /** When the device's credential was last rotated. */
  credentialRotatedAt: string | null;
  /** A rotation was asked for and waits for the agent's next check-in. */
  rotateRequested: boolean;
  /** An uninstall was asked for and waits for the agent. */
  uninstallRequested: boolean;
  /** When the agent confirmed it uninstalled itself (its credential is then revoked). */
  uninstalledAt: string | null;
  /** The device this one was split from when a cloned machine was detected (ADR 0009). */
  clonedFrom: string | null;
  /** SHA-256 of the machine's identity (machine-id, hardware UUID) as the agent reports it. */
  machineIdentity: string | null;
  updatedAt: string;
  online: boolean;
  groupPath: string;
}

/** What GET /tasks/:id/targets returns per device. */
export interface DeviceSummary {
  id: string;
  groupId: string;
  name: string;
  hostname: string;
}

export interface EnrolmentTokenView {
  id: string;
  groupId: string;
  name: string;
  expiresAt: string | null;
  maxUses: number | null;
  uses: number;
  revokedAt: string | null;
  createdAt: string;
  createdBy: string;
  groupPath: string;
  state: 'active' | 'expired' | 'revoked' | 'exhausted';
  token?: string;
}

export interface EventView {
  id: number;
  time: string;
  severity: 'info' | 'warning' | 'error';
  kind: string;
  message: string;
  actor?: string | null;
  deviceId?: string | null;
  groupId?: string | null;
  taskId?: string | null;
  runId?: string | null;
  product?: string | null;
  data?: Record<string, unknown> | null;
  /** For audit events: the administrator's id, how the request came (console, cli, api-token) and from which address. */
  actorId?: string | null;
  via?: string | null;
  address?: string | null;
}

export interface SecretMeta {
  name: string;
  description: string;
  /** The group the secret belongs to (null: the root): who may use it, and which devices may receive it. */
  groupId: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface RunNowResult {
  requestId: string;
  taskId: string;
  targets: number;
  delivered: number;
  expiresAt: string;
}

export interface ServerSettings {
  eventRetentionDays: number;
  runRetentionDays: number;
}

/** The platforms installer links have a script for. */
export const INSTALL_PLATFORMS = ['linux', 'macos', 'windows'] as const;
export type InstallPlatform = (typeof INSTALL_PLATFORMS)[number];

/** What POST /installers answers (the token's value is only inside `url` and `commands`). */
export interface InstallerView {
  token: EnrolmentTokenView;
  /** The link itself: its scripts are `<url>/linux.sh`, `<url>/macos.sh`, `<url>/windows.ps1`. */
  url: string;
  caFingerprint: string;
  certFingerprint: string;
  publicKeyPin: string;
  /** One command per platform, to paste on the machine (as root / administrator). */
  commands: Record<InstallPlatform, string>;
  /** Agent builds this server can hand out. */
  agentPlatforms: string[];
}

/** GET /summary: the console's dashboard. */
export interface DashboardSummary {
  devices: { total: number; online: number; offline: number };
  runs: { since: string; states: Record<string, number>; failures: (Run & { taskName: string; deviceName: string })[] };
  compliance: ComplianceSummary[];
}
