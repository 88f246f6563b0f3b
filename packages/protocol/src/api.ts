/**
 * The shapes of the admin API's answers that are not tasks, runs or schedules (those are in
 * task.ts, run.ts, schedule.ts). The server returns them and the CLI and console read them,
 * so they live here, in the wire contract.
 */
import type { InstalledProduct } from './inventory.ts';
import type { Run } from './run.ts';
import type { ComplianceSummary } from './deployment.ts';
import type { ActorVia, GrantView, Permission } from './access.ts';
import { Type, type Static } from 'typebox';
import { PolicyProfile, PolicySettings, SettingName, type EffectiveProductPolicy, type Policy, type PolicyAssignment, type PolicyCompliance } from './policy.ts';

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

// --- Policies (ADR 0020): the API's request and answer shapes around policy.ts -------------

/** `format` of a policy export document. */
export const POLICY_EXPORT_FORMAT = 'garrison-policy';
export const POLICY_EXPORT_VERSION = 1;

/** GET /policies/:id/export; POST /policies/import takes it (with an optional top-level `name` override). */
export const PolicyExport = Type.Object(
  {
    format: Type.Literal(POLICY_EXPORT_FORMAT),
    formatVersion: Type.Literal(POLICY_EXPORT_VERSION),
    policy: Type.Object(
      {
        name: Type.String({ minLength: 1, maxLength: 200 }),
        description: Type.Optional(Type.String({ maxLength: 2000 })),
        product: Type.String({ minLength: 1, maxLength: 100 }),
        settings: PolicySettings,
        locked: Type.Array(SettingName, { maxItems: 200 }),
        profiles: Type.Array(PolicyProfile, { maxItems: 50 }),
      },
      { additionalProperties: false },
    ),
    /** On import: the name to give the policy instead of the document's. */
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  },
  { additionalProperties: false },
);
export type PolicyExport = Static<typeof PolicyExport>;

/** GET /policy-types: what each installed plug-in's policy type is. */
export interface PolicyTypeView {
  product: string;
  productName: string;
  settingsSchema: unknown;
  defaults: Record<string, unknown>;
  /** The settings a policy may lock (every setting when the type does not say). */
  lockable: string[];
}

/** GET /policies/:id: the policy and the groups it is assigned to. */
/** `assignedTo` lists the groups the caller may read; `assignedElsewhere` counts the others (their ids and paths are not shown). */
export type PolicyView = Policy & { assignedTo: { groupId: string; path: string }[]; assignedElsewhere: number };

export interface PolicyList {
  items: Policy[];
  nextCursor: string | null;
  total: number;
}

export interface PolicyRevisionView {
  revision: number;
  changedAt: string;
  changedBy: string;
  document: PolicyExport;
}

/** PUT /groups/:id/policies/:product and its preview. */
export const PolicyAssignmentInput = Type.Object(
  { policyId: Type.Union([Type.String({ minLength: 1, maxLength: 100 }), Type.Null()]), blockInheritance: Type.Boolean() },
  { additionalProperties: false },
);
export type PolicyAssignmentInput = Static<typeof PolicyAssignmentInput>;

/** POST /policies/:id/preview: the change to preview (a PolicyPatch whose revision may be left out). */
export const PolicyPreviewInput = Type.Object(
  {
    revision: Type.Optional(Type.Integer({ minimum: 1 })),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    settings: Type.Optional(PolicySettings),
    locked: Type.Optional(Type.Array(SettingName, { maxItems: 200 })),
    profiles: Type.Optional(Type.Array(PolicyProfile, { maxItems: 50 })),
  },
  { additionalProperties: false },
);
export type PolicyPreviewInput = Static<typeof PolicyPreviewInput>;

export type GroupPolicyAssignmentView = PolicyAssignment & { policyName: string | null };

export type PolicyComplianceItem = PolicyCompliance & { deviceName: string; groupId: string };
export interface PolicyComplianceList {
  items: PolicyComplianceItem[];
  counts: { compliant: number; drifted: number; failed: number; pending: number };
  nextCursor: string | null;
}

/** GET /devices/:id/policy: the device's effective policies with origins, and what it reported. */
export interface DevicePolicyView {
  products: EffectiveProductPolicy[];
  compliance: PolicyCompliance[];
  nextMaintenanceWindow: { start: string; end: string } | null;
}
