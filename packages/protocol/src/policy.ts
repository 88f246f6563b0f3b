/**
 * Product policies: how a product must be configured on a device (PRODUCT.md "Policy",
 * docs/adr/0020-policies.md).
 *
 * - A management plug-in declares its product's **policy type**: a settings schema whose
 *   top-level properties are the settings, complete defaults, and which settings may be
 *   locked. Locks, origins and drift are per top-level setting; a setting's value may be an
 *   object or an array (update sources, maintenance windows), replaced as a whole.
 * - A **policy** is named and revisioned; it sets some of its product's settings (the others
 *   come from the policy above it, or the defaults) and may lock settings it sets.
 * - A policy is **assigned** to a group per product; a group may also block inheritance of
 *   its ancestors' policies for a product (locked settings still come down: a lock cannot be
 *   escaped, which is what a lock is for).
 * - A **profile** is a variant inside a policy, active on the devices that match its
 *   condition (the selection of global tasks: tags, OS, name pattern, product), evaluated
 *   live; several active profiles apply in ascending priority, the highest last.
 *
 * The effective policy of a device, with the origin of every value, is computed by
 * `effectivePolicy` in @garrison/core (policy.ts).
 */
import { Type, type Static } from 'typebox';
import { Selection } from './scope.ts';
import { WeekdaySchema } from './schedule.ts';

const Name = Type.String({ minLength: 1, maxLength: 200 });
/** A setting's name: a top-level property of the product's policy settings schema. */
export const SettingName = Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z][A-Za-z0-9_.-]*$' });
/** Some of a product's settings, each validated against its policy type's schema. */
export const PolicySettings = Type.Record(Type.String(), Type.Unknown(), { description: "Some of the product's settings; the others are inherited" });
export type PolicySettings = Static<typeof PolicySettings>;

export const PolicyProfile = Type.Object(
  {
    /** Unique within its policy. */
    id: Type.String({ minLength: 1, maxLength: 80, pattern: '^[A-Za-z0-9_.-]+$' }),
    name: Name,
    /** Several matching profiles apply in ascending priority: the highest has the last word. */
    priority: Type.Integer({ minimum: 0, maximum: 1000 }),
    enabled: Type.Boolean(),
    /** The devices it is active on; every criterion given must match, an empty condition matches no device. */
    condition: Selection,
    settings: PolicySettings,
    /** Settings this profile locks, on the devices it is active on. */
    locked: Type.Array(SettingName, { maxItems: 200 }),
  },
  { additionalProperties: false },
);
export type PolicyProfile = Static<typeof PolicyProfile>;

/** A policy as the API shows it. */
export const Policy = Type.Object({
  id: Type.String(),
  name: Name,
  description: Type.String(),
  product: Type.String(),
  /** Grows by one with every change; an update names the revision it started from. */
  revision: Type.Integer({ minimum: 1 }),
  settings: PolicySettings,
  /** Settings locked for every group below the one it is assigned to, and for the device's local user. */
  locked: Type.Array(SettingName),
  profiles: Type.Array(PolicyProfile),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export type Policy = Static<typeof Policy>;

export const PolicyInput = Type.Object(
  {
    name: Name,
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    product: Type.String({ minLength: 1, maxLength: 100 }),
    settings: Type.Optional(PolicySettings),
    locked: Type.Optional(Type.Array(SettingName, { maxItems: 200 })),
    profiles: Type.Optional(Type.Array(PolicyProfile, { maxItems: 50 })),
  },
  { additionalProperties: false },
);
export type PolicyInput = Static<typeof PolicyInput>;

export const PolicyPatch = Type.Object(
  {
    /** The revision this change starts from: a policy changed since is refused (POLICY_REVISION_CONFLICT). */
    revision: Type.Integer({ minimum: 1 }),
    name: Type.Optional(Name),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    settings: Type.Optional(PolicySettings),
    locked: Type.Optional(Type.Array(SettingName, { maxItems: 200 })),
    profiles: Type.Optional(Type.Array(PolicyProfile, { maxItems: 50 })),
  },
  { additionalProperties: false },
);
export type PolicyPatch = Static<typeof PolicyPatch>;

/**
 * What a group says about a product's policy: the policy assigned to it (null: none of its
 * own), and whether it blocks the policies of its ancestors (their locked settings still apply).
 */
export const PolicyAssignment = Type.Object(
  {
    groupId: Type.String({ minLength: 1 }),
    product: Type.String({ minLength: 1, maxLength: 100 }),
    policyId: Type.Union([Type.String({ minLength: 1 }), Type.Null()]),
    blockInheritance: Type.Boolean(),
  },
  { additionalProperties: false },
);
export type PolicyAssignment = Static<typeof PolicyAssignment>;

/** Where an effective value comes from. */
export const SettingOrigin = Type.Union([
  Type.Object({ kind: Type.Literal('default') }),
  Type.Object({ kind: Type.Literal('policy'), policyId: Type.String(), policyName: Type.String(), revision: Type.Integer(), groupId: Type.String() }),
  Type.Object({
    kind: Type.Literal('profile'),
    policyId: Type.String(),
    policyName: Type.String(),
    revision: Type.Integer(),
    groupId: Type.String(),
    profileId: Type.String(),
    profileName: Type.String(),
  }),
]);
export type SettingOrigin = Static<typeof SettingOrigin>;

export const EffectiveSetting = Type.Object({
  value: Type.Unknown(),
  origin: SettingOrigin,
  /** Who locked it, when it is locked (the value then comes from the same place). */
  lockedBy: Type.Union([SettingOrigin, Type.Null()]),
  /**
   * What the lock overrode, when a child policy or profile set this setting under an
   * ancestor's lock: "why is my value not used".
   */
  overridden: Type.Array(Type.Object({ origin: SettingOrigin, value: Type.Unknown() })),
});
export type EffectiveSetting = Static<typeof EffectiveSetting>;

/** A device's effective policy for one product, with the origin of every value. */
export const EffectiveProductPolicy = Type.Object({
  product: Type.String(),
  /** A digest of settings and locks: equal digests, equal policy. */
  revision: Type.String(),
  settings: Type.Record(Type.String(), EffectiveSetting),
  /** Profiles active on the device, in the order they applied. */
  profiles: Type.Array(Type.Object({ policyId: Type.String(), profileId: Type.String(), profileName: Type.String() })),
});
export type EffectiveProductPolicy = Static<typeof EffectiveProductPolicy>;

/** The effective policy of one product in the form the agent receives it. */
export const AgentProductPolicy = Type.Object({
  product: Type.String(),
  revision: Type.String(),
  settings: Type.Record(Type.String(), Type.Unknown()),
  locked: Type.Array(Type.String()),
});
export type AgentProductPolicy = Static<typeof AgentProductPolicy>;

export const PolicyComplianceState = { compliant: 'compliant', drifted: 'drifted', failed: 'failed' } as const;
export type PolicyComplianceState = (typeof PolicyComplianceState)[keyof typeof PolicyComplianceState];

/** A setting found different from the policy on the device, and what the agent did about it. */
export const PolicyDrift = Type.Object(
  {
    setting: Type.String({ minLength: 1, maxLength: 100 }),
    expected: Type.Optional(Type.Unknown()),
    found: Type.Optional(Type.Unknown()),
    /** restored: a locked (or administrator-changed) setting was put back; kept-local: an unlocked setting the local user changed stands. */
    action: Type.Union([Type.Literal('restored'), Type.Literal('kept-local')]),
  },
  { additionalProperties: false },
);
export type PolicyDrift = Static<typeof PolicyDrift>;

/**
 * What the agent reports per product after applying its policy: compliant (as the policy
 * says, local changes to unlocked settings allowed), drifted (found different and not put
 * back: see drift), or failed (could not apply: reason).
 */
export const PolicyStatusReport = Type.Object(
  {
    product: Type.String({ minLength: 1, maxLength: 100 }),
    revision: Type.String({ minLength: 1, maxLength: 128 }),
    state: Type.Union([Type.Literal('compliant'), Type.Literal('drifted'), Type.Literal('failed')]),
    at: Type.String({ maxLength: 40 }),
    drift: Type.Optional(Type.Array(PolicyDrift, { maxItems: 200 })),
    reason: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  { additionalProperties: false },
);
export type PolicyStatusReport = Static<typeof PolicyStatusReport>;

/** A device's last report for a product, as the API shows it. */
export const PolicyCompliance = Type.Object({
  deviceId: Type.String(),
  product: Type.String(),
  /** The revision the server wants on the device now; `applied` is the one the agent reported. */
  expectedRevision: Type.Union([Type.String(), Type.Null()]),
  appliedRevision: Type.Union([Type.String(), Type.Null()]),
  state: Type.Union([Type.Literal('compliant'), Type.Literal('drifted'), Type.Literal('failed'), Type.Literal('pending')]),
  drift: Type.Array(PolicyDrift),
  reason: Type.Union([Type.String(), Type.Null()]),
  reportedAt: Type.Union([Type.String(), Type.Null()]),
});
export type PolicyCompliance = Static<typeof PolicyCompliance>;

/** A device-side event that is not a run's (a real-time detection, a locked setting put back). */
export const DeviceEvent = Type.Object(
  {
    /** Made by the agent, unique: the server stores each once however often it is resent. */
    eventId: Type.String({ pattern: '^[A-Za-z0-9_-]{8,80}$' }),
    product: Type.String({ minLength: 1, maxLength: 100 }),
    severity: Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('error')]),
    kind: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' }),
    message: Type.String({ minLength: 1, maxLength: 2000 }),
    time: Type.String({ maxLength: 40 }),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
);
export type DeviceEvent = Static<typeof DeviceEvent>;

/** A planned change of a policy: which devices it would change and how. */
export const PolicyPreview = Type.Object({
  devices: Type.Array(
    Type.Object({
      deviceId: Type.String(),
      deviceName: Type.String(),
      groupId: Type.String(),
      changes: Type.Array(
        Type.Object({ setting: Type.String(), before: Type.Unknown(), after: Type.Unknown(), lockedBefore: Type.Boolean(), lockedAfter: Type.Boolean() }),
      ),
    }),
  ),
  /** Devices the policy reaches, changed or not. */
  reached: Type.Integer(),
  changed: Type.Integer(),
  /** True when `devices` stops before every changed device (it lists at most `limit`). */
  truncated: Type.Boolean(),
});
export type PolicyPreview = Static<typeof PolicyPreview>;

// --- Maintenance windows -------------------------------------------------------------------

/**
 * A recurring window: on each of `days`, from `start` for `durationMinutes` (a window may run
 * past midnight into the next day), in the time basis ("local", "UTC" or an IANA zone), as
 * schedules read theirs.
 */
export const MaintenanceWindow = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 100 })),
    days: Type.Array(WeekdaySchema, { minItems: 1, maxItems: 7 }),
    start: Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$' }),
    durationMinutes: Type.Integer({ minimum: 1, maximum: 10080 }),
    timeBasis: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  },
  { additionalProperties: false },
);
export type MaintenanceWindow = Static<typeof MaintenanceWindow>;

// --- The agent's own policy (product "garrison") -------------------------------------------

export const UpdateSource = Type.Union([
  Type.Object(
    { kind: Type.Literal('server'), bandwidthLimitKBps: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])) },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('url'),
      /** An HTTP(S) mirror holding the server's package archives under the same paths. */
      url: Type.String({ minLength: 1, maxLength: 2000, pattern: '^https?://' }),
      bandwidthLimitKBps: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('folder'),
      /** A folder (local or a mounted share) mirroring the archives as <packageId>.tgz. */
      path: Type.String({ minLength: 1, maxLength: 2000 }),
      bandwidthLimitKBps: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()])),
    },
    { additionalProperties: false },
  ),
]);
export type UpdateSource = Static<typeof UpdateSource>;

/** The agent's policy type: what was two intervals on a group, and more. */
export const AgentPolicySettings = Type.Object(
  {
    /** The agent-server communication interval (ASCI). */
    checkInIntervalMinutes: Type.Integer({ minimum: 1, maximum: 10080 }),
    /** Each check-in comes at a random moment up to this many minutes after its time, so a fleet does not check in at once. */
    checkInRandomizationMinutes: Type.Integer({ minimum: 0, maximum: 1440 }),
    policyEnforcementMinutes: Type.Integer({ minimum: 1, maximum: 10080 }),
    /** The local event log rotates at this size and keeps this many rotated files, none older than logRetentionDays (0: no age limit). */
    logMaxBytes: Type.Integer({ minimum: 65536, maximum: 1073741824 }),
    logKeepFiles: Type.Integer({ minimum: 1, maximum: 100 }),
    logRetentionDays: Type.Integer({ minimum: 0, maximum: 3650 }),
    /** Whether the device's local user may create or change local tasks through the agent. */
    localTasksAllowed: Type.Boolean(),
    /** Where packages come from, tried in order. */
    updateSources: Type.Array(UpdateSource, { minItems: 1, maxItems: 10 }),
    maintenanceWindows: Type.Array(MaintenanceWindow, { maxItems: 50 }),
  },
  { additionalProperties: false },
);
export type AgentPolicySettings = Static<typeof AgentPolicySettings>;

export const DEFAULT_AGENT_POLICY: AgentPolicySettings = {
  checkInIntervalMinutes: 60,
  checkInRandomizationMinutes: 0,
  policyEnforcementMinutes: 5,
  logMaxBytes: 1048576,
  logKeepFiles: 5,
  logRetentionDays: 30,
  localTasksAllowed: true,
  updateSources: [{ kind: 'server' }],
  maintenanceWindows: [],
};
