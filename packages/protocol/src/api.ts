/**
 * The shapes of the admin API's answers that are not tasks, runs or schedules (those are in
 * task.ts, run.ts, schedule.ts). The server returns them and the CLI and console read them,
 * so they live here, in the wire contract.
 */
import { InstalledProduct } from './inventory.ts';
import { Run as RunSchema } from './run.ts';
import { ActorViaSchema, GrantView, PermissionSchema } from './access.ts';
import { Type, type Static } from 'typebox';
import { EffectiveProductPolicy, Policy, PolicyAssignment, PolicyCompliance, PolicyProfile, PolicySettings, SettingName } from './policy.ts';
import { Page } from './contract.ts';

export const Me = Type.Object(
  {
    kind: Type.Union([Type.Literal('admin'), Type.Literal('system')]),
    adminId: Type.Optional(Type.String()),
    name: Type.String(),
    displayName: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    grants: Type.Optional(Type.Array(GrantView, { description: 'Roles held and the group subtrees they are held on' })),
    permissions: Type.Optional(Type.Array(PermissionSchema, { description: 'Permissions held on at least one group: what the console offers at all' })),
    rootPermissions: Type.Optional(Type.Array(PermissionSchema, { description: 'Permissions held on the root group: server-wide objects and the whole tree' })),
    via: Type.Optional(ActorViaSchema),
    session: Type.Optional(Type.Boolean({ description: 'True for a console session (it can be ended by signing out)' })),
    totpEnabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type Me = Static<typeof Me>;

export const GroupView = Type.Object(
  {
    id: Type.String(),
    parentId: Type.Union([Type.String(), Type.Null()]),
    name: Type.String(),
    blockInheritance: Type.Boolean(),
    checkInIntervalMinutes: Type.Union([Type.Integer(), Type.Null()]),
    policyEnforcementMinutes: Type.Union([Type.Integer(), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
    path: Type.String({ description: 'The full path from the root, such as My Organization/Servers/Web' }),
    effectivePolicy: Type.Object({ checkInIntervalMinutes: Type.Integer(), policyEnforcementMinutes: Type.Integer() }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);
export type GroupView = Static<typeof GroupView>;

export const DeviceView = Type.Object(
  {
    id: Type.String(),
    groupId: Type.String(),
    name: Type.String(),
    hostname: Type.String(),
    osPlatform: Type.String(),
    osName: Type.String(),
    osVersion: Type.String(),
    arch: Type.String(),
    addresses: Type.Array(Type.String()),
    agentVersion: Type.String(),
    timeZone: Type.String(),
    products: Type.Array(InstalledProduct),
    tags: Type.Array(Type.String()),
    enrolledAt: Type.String({ format: 'date-time' }),
    lastContactAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    credentialRevoked: Type.Boolean(),
    credentialRotatedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: "When the device's credential was last rotated" }),
    rotateRequested: Type.Boolean({ description: "A rotation was asked for and waits for the agent's next check-in" }),
    uninstallRequested: Type.Boolean({ description: 'An uninstall was asked for and waits for the agent' }),
    uninstalledAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'When the agent confirmed it uninstalled itself (its credential is then revoked)' }),
    clonedFrom: Type.Union([Type.String(), Type.Null()], { description: 'The device this one was split from when a cloned machine was detected (ADR 0009)' }),
    machineIdentity: Type.Union([Type.String(), Type.Null()], { description: "SHA-256 of the machine's identity (machine-id, hardware UUID) as the agent reports it" }),
    updatedAt: Type.String({ format: 'date-time' }),
    online: Type.Boolean(),
    groupPath: Type.String(),
  },
  { additionalProperties: false },
);
export type DeviceView = Static<typeof DeviceView>;

/** What GET /tasks/:id/targets returns per device. */
export const DeviceSummary = Type.Object({ id: Type.String(), groupId: Type.String(), name: Type.String(), hostname: Type.String() }, { additionalProperties: false });
export type DeviceSummary = Static<typeof DeviceSummary>;

export const EnrolmentTokenView = Type.Object(
  {
    id: Type.String(),
    groupId: Type.String(),
    name: Type.String(),
    expiresAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    maxUses: Type.Union([Type.Integer(), Type.Null()]),
    uses: Type.Integer({ minimum: 0 }),
    revokedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
    createdBy: Type.String(),
    groupPath: Type.String(),
    state: Type.Union([Type.Literal('active'), Type.Literal('expired'), Type.Literal('revoked'), Type.Literal('exhausted')]),
    token: Type.Optional(Type.String({ description: 'The secret value, only in the answer that created it' })),
  },
  { additionalProperties: false },
);
export type EnrolmentTokenView = Static<typeof EnrolmentTokenView>;

export const EVENT_SEVERITIES = ['info', 'warning', 'error'] as const;
export const EventSeverity = Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('error')]);
export type EventSeverity = Static<typeof EventSeverity>;
const NullableString = Type.Union([Type.String(), Type.Null()]);
export const EventView = Type.Object(
  {
    id: Type.Integer(),
    // Plain strings: device events carry the time the agent gave.
    time: Type.String(),
    severity: EventSeverity,
    kind: Type.String(),
    message: Type.String(),
    actor: Type.Optional(NullableString),
    deviceId: Type.Optional(NullableString),
    groupId: Type.Optional(NullableString),
    taskId: Type.Optional(NullableString),
    runId: Type.Optional(NullableString),
    product: Type.Optional(NullableString),
    data: Type.Optional(Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()])),
    actorId: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: "For audit events: the administrator's id" })),
    via: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'For audit events: how the request came (console, cli, api-token, system)' })),
    address: Type.Optional(Type.Union([Type.String(), Type.Null()], { description: 'For audit events: the address the request came from' })),
    deviceName: Type.Optional(Type.String({ description: "The device's name now, when it still exists (answers of the event log only)" })),
    taskName: Type.Optional(Type.String({ description: "The task's name now, when it still exists (answers of the event log only)" })),
  },
  { additionalProperties: false },
);
export type EventView = Static<typeof EventView>;

export const SecretMeta = Type.Object(
  {
    name: Type.String(),
    description: Type.String(),
    groupId: Type.Union([Type.String(), Type.Null()], { description: 'The group the secret belongs to (null: the root): who may use it, and which devices may receive it' }),
    createdAt: Type.String(),
    updatedAt: Type.String(),
  },
  { additionalProperties: false },
);
export type SecretMeta = Static<typeof SecretMeta>;

export const RunNowResult = Type.Object(
  {
    requestId: Type.String(),
    taskId: Type.String(),
    /** The devices the run was given to. */
    targets: Type.Integer({ minimum: 0 }),
    /** Of them, those connected now (the others get it at their next contact). */
    delivered: Type.Integer({ minimum: 0 }),
    expiresAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);
export type RunNowResult = Static<typeof RunNowResult>;

export const ServerSettings = Type.Object({ eventRetentionDays: Type.Integer(), runRetentionDays: Type.Integer() }, { additionalProperties: false });
export type ServerSettings = Static<typeof ServerSettings>;

/** The platforms installer links have a script for. */
export const INSTALL_PLATFORMS = ['linux', 'macos', 'windows'] as const;
export type InstallPlatform = (typeof INSTALL_PLATFORMS)[number];

/** What POST /installers answers (the token's value is only inside `url` and `commands`). */
export const InstallerView = Type.Object(
  {
    token: EnrolmentTokenView,
    url: Type.String({ description: 'The link itself: its scripts are `<url>/linux.sh`, `<url>/macos.sh`, `<url>/windows.ps1`' }),
    caFingerprint: Type.String(),
    certFingerprint: Type.String(),
    publicKeyPin: Type.String(),
    commands: Type.Object(
      { linux: Type.String(), macos: Type.String(), windows: Type.String() },
      { additionalProperties: false, description: 'One command per platform, to paste on the machine (as root / administrator)' },
    ),
    agentPlatforms: Type.Array(Type.String(), { description: 'Agent builds this server can hand out' }),
  },
  { additionalProperties: false },
);
export type InstallerView = Static<typeof InstallerView>;

/** GET /summary: the console's dashboard. */
export const DashboardSummary = Type.Object(
  {
    devices: Type.Object({ total: Type.Integer(), online: Type.Integer(), offline: Type.Integer() }, { additionalProperties: false }),
    runs: Type.Object(
      {
        since: Type.String({ format: 'date-time' }),
        /** How many runs ended in each final state since `since`. */
        states: Type.Record(Type.String(), Type.Integer()),
        /** The latest failures (at most 10), newest first. */
        failures: Type.Array(Type.Object({ ...RunSchema.properties, taskName: Type.String(), deviceName: Type.String() }, { additionalProperties: false })),
      },
      { additionalProperties: false },
    ),
    /** Per product: devices in each deployment state and by version (ComplianceSummary). */
    compliance: Type.Array(
      Type.Object({ product: Type.String(), states: Type.Record(Type.String(), Type.Integer()), versions: Type.Record(Type.String(), Type.Integer()) }, { additionalProperties: false }),
    ),
  },
  { additionalProperties: false },
);
export type DashboardSummary = Static<typeof DashboardSummary>;

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
export const PolicyTypeView = Type.Object(
  {
    product: Type.String(),
    productName: Type.String(),
    settingsSchema: Type.Unknown({ description: 'JSON Schema of the settings' }),
    defaults: Type.Record(Type.String(), Type.Unknown()),
    /** The settings a policy may lock (every setting when the type does not say). */
    lockable: Type.Array(Type.String()),
  },
  { additionalProperties: false },
);
export type PolicyTypeView = Static<typeof PolicyTypeView>;

/** GET /policies/:id: the policy and the groups it is assigned to. */
/** `assignedTo` lists the groups the caller may read; `assignedElsewhere` counts the others (their ids and paths are not shown). */
export const PolicyView = Type.Object(
  {
    ...Policy.properties,
    assignedTo: Type.Array(Type.Object({ groupId: Type.String(), path: Type.String() }, { additionalProperties: false })),
    assignedElsewhere: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);
export type PolicyView = Static<typeof PolicyView>;

export const PolicyRevisionView = Type.Object(
  { revision: Type.Integer({ minimum: 1 }), changedAt: Type.String(), changedBy: Type.String(), document: PolicyExport },
  { additionalProperties: false },
);
export type PolicyRevisionView = Static<typeof PolicyRevisionView>;

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

export const GroupPolicyAssignmentView = Type.Object({ ...PolicyAssignment.properties, policyName: Type.Union([Type.String(), Type.Null()]) }, { additionalProperties: false });
export type GroupPolicyAssignmentView = Static<typeof GroupPolicyAssignmentView>;

/** A device the policy reaches, with what it reported. */
export const PolicyComplianceItem = Type.Object({ ...PolicyCompliance.properties, deviceName: Type.String(), groupId: Type.String() }, { additionalProperties: false });
export type PolicyComplianceItem = Static<typeof PolicyComplianceItem>;
/** The devices of each compliance state over every device the policy reaches (that the caller may see), whatever the state filter. */
export const PolicyComplianceCounts = Type.Object(
  { compliant: Type.Integer({ minimum: 0 }), drifted: Type.Integer({ minimum: 0 }), failed: Type.Integer({ minimum: 0 }), pending: Type.Integer({ minimum: 0 }) },
  { additionalProperties: false },
);
export type PolicyComplianceCounts = Static<typeof PolicyComplianceCounts>;
const PolicyCompliancePageBase = Page(PolicyComplianceItem);
/** GET /policies/:id/compliance: a page of devices (by name) and the count of each state. */
export const PolicyCompliancePage = Type.Object({ ...PolicyCompliancePageBase.properties, states: PolicyComplianceCounts }, { additionalProperties: false });
export type PolicyCompliancePage = Static<typeof PolicyCompliancePage>;

/** GET /devices/:id/policy: the device's effective policies with origins, and what it reported. */
export const DevicePolicyView = Type.Object(
  {
    products: Type.Array(EffectiveProductPolicy),
    compliance: Type.Array(PolicyCompliance),
    nextMaintenanceWindow: Type.Union([Type.Object({ start: Type.String(), end: Type.String() }, { additionalProperties: false }), Type.Null()]),
  },
  { additionalProperties: false },
);
export type DevicePolicyView = Static<typeof DevicePolicyView>;
