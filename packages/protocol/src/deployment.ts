/**
 * Product deployment on the wire: what the admin API shows of assignments and per-device
 * state, and the install/uninstall instructions a check-in hands to the agent's built-in
 * deployment task ("Initial deployment / update"). See docs/adr/0007-repository-and-deployment.md.
 */
import { Type, type Static } from 'typebox';
import { BranchSchema, type PackageManifest } from './package.ts';

export const DEPLOYMENT_TASK_TYPE = 'deployment';
export const DEPLOYMENT_TASK_NAME = 'Initial deployment / update';

export const DeploymentState = {
  compliant: 'compliant',
  pending: 'pending',
  installing: 'installing',
  failed: 'failed',
  unavailable: 'unavailable',
} as const;
export type DeploymentState = (typeof DeploymentState)[keyof typeof DeploymentState];

/**
 * A staged rollout of new versions: first the devices of a pilot group (and its subgroups),
 * then growing percentages of the others (each device falls in a stable bucket by its id).
 * A phase opens when every device of the previous one runs the new version; the rollout
 * halts by itself when the share of failed installs passes the threshold. A rollout may
 * also (or only) cap how many of the devices install at the same time.
 */
export const Rollout = Type.Object(
  {
    pilotGroupId: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    percentages: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 100 }), { minItems: 1, maxItems: 10 })),
    failureThresholdPercent: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
    /**
     * At most this many devices governed by the assignment install or update the product at
     * the same time; the others wait (state "pending") and get their steps at a later check-in.
     */
    maxConcurrentInstalls: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000 })),
  },
  { additionalProperties: false },
);
export type Rollout = Static<typeof Rollout>;

export const RolloutStateSchema = Type.Object(
  {
    targetVersion: Type.String(),
    phase: Type.Integer({ minimum: 0 }),
    phases: Type.Array(Type.String()),
    state: Type.Union([Type.Literal('active'), Type.Literal('halted'), Type.Literal('completed')]),
    reason: Type.Union([Type.String(), Type.Null()]),
    startedAt: Type.String(),
    updatedAt: Type.String(),
  },
  { additionalProperties: false },
);
export type RolloutState = Static<typeof RolloutStateSchema>;

export const DeploymentAssign = Type.Object(
  {
    product: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' }),
    branch: Type.Optional(BranchSchema),
    pinnedVersion: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Null()])),
    action: Type.Optional(Type.Union([Type.Literal('install'), Type.Literal('remove')])),
    removeConflicts: Type.Optional(Type.Boolean()),
    /** Null: every device gets a new version at once. */
    rollout: Type.Optional(Type.Union([Rollout, Type.Null()])),
    /** Install (or remove) at once, outside the devices' maintenance windows too (default false). */
    urgent: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type DeploymentAssign = Static<typeof DeploymentAssign>;

export const DeploymentAssignmentView = Type.Object(
  {
    groupId: Type.String(),
    groupPath: Type.String(),
    product: Type.String(),
    branch: BranchSchema,
    pinnedVersion: Type.Union([Type.String(), Type.Null()]),
    action: Type.Union([Type.Literal('install'), Type.Literal('remove')]),
    removeConflicts: Type.Boolean(),
    rollout: Type.Union([Rollout, Type.Null()]),
    /** Its steps (and those of the dependencies and conflicts it brings) ignore the devices' maintenance windows. */
    urgent: Type.Boolean(),
    /** The rollout of the branch's newest version, when a rollout is configured. */
    rolloutState: Type.Union([RolloutStateSchema, Type.Null()]),
    createdAt: Type.String(),
    updatedAt: Type.String(),
  },
  { additionalProperties: false },
);
export type DeploymentAssignmentView = Static<typeof DeploymentAssignmentView>;

export const DeploymentStateSchema = Type.Union([Type.Literal('compliant'), Type.Literal('pending'), Type.Literal('installing'), Type.Literal('failed'), Type.Literal('unavailable')]);
export const DeviceProductState = Type.Object(
  {
    deviceId: Type.String(),
    product: Type.String(),
    state: DeploymentStateSchema,
    installedVersion: Type.Union([Type.String(), Type.Null()]),
    targetVersion: Type.Union([Type.String(), Type.Null()]),
    exitCode: Type.Union([Type.Integer(), Type.Null()]),
    detail: Type.Union([Type.String(), Type.Null()]),
    outputTail: Type.Union([Type.String(), Type.Null()]),
    updatedAt: Type.String(),
  },
  { additionalProperties: false },
);
export type DeviceProductState = Static<typeof DeviceProductState>;

/** Per product: how many devices are in each deployment state and which versions they have. */
export const ComplianceSummary = Type.Object(
  { product: Type.String(), states: Type.Record(Type.String(), Type.Integer({ minimum: 0 })), versions: Type.Record(Type.String(), Type.Integer({ minimum: 0 })) },
  { additionalProperties: false },
);
export type ComplianceSummary = Static<typeof ComplianceSummary>;

/** A row of GET /deployments/compliance: one device and product. */
export const DeploymentComplianceItem = Type.Object({ ...DeviceProductState.properties, deviceName: Type.String() }, { additionalProperties: false });
export type DeploymentComplianceItem = Static<typeof DeploymentComplianceItem>;
/**
 * GET /deployments/compliance: a page of device-product rows (by product, then device id),
 * and the per-product summary over every row the group and product filters match (the state
 * filter narrows the rows, not the summary, so a page can show the count of each state).
 */
export const DeploymentCompliancePage = Type.Object(
  {
    items: Type.Array(DeploymentComplianceItem),
    nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Give it as `cursor` for the next page; null when this is the last' }),
    total: Type.Optional(Type.Integer({ minimum: 0, description: 'How many rows match the filters, over every page' })),
    summary: Type.Array(ComplianceSummary),
  },
  { additionalProperties: false },
);
export type DeploymentCompliancePage = Static<typeof DeploymentCompliancePage>;

/** GET /groups/:id/deployments: an assignment that applies to the group, and the group it is set on. */
export const EffectiveDeployment = Type.Object({ ...DeploymentAssignmentView.properties, inheritedFrom: Type.String() }, { additionalProperties: false });
export type EffectiveDeployment = Static<typeof EffectiveDeployment>;
export interface DeploymentPackageRef {
  id: string;
  product: string;
  version: string;
  sha256: string;
  signature: string;
  manifest: PackageManifest;
}

/** One step for the agent, in order: uninstalls first, then installs in dependency order. */
export interface DeploymentInstruction {
  action: 'install' | 'uninstall';
  product: string;
  version: string | null;
  fromVersion: string | null;
  reason: string;
  package?: DeploymentPackageRef;
  /** Carried out at once, even outside the device's maintenance windows (the assignment says urgent). */
  urgent?: boolean;
}

/** What the agent's deployment task reports per step, as run events (`garrison.deployment.<outcome>`). */
export const DeploymentEventKind = {
  installed: 'deployment.installed',
  uninstalled: 'deployment.uninstalled',
  failed: 'deployment.failed',
  refused: 'deployment.refused',
} as const;
