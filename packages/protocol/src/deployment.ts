/**
 * Product deployment on the wire: what the admin API shows of assignments and per-device
 * state, and the install/uninstall instructions a check-in hands to the agent's built-in
 * deployment task ("Initial deployment / update"). See docs/adr/0007-repository-and-deployment.md.
 */
import { Type, type Static } from 'typebox';
import { BranchSchema, type Branch, type PackageManifest } from './package.ts';

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

export const DeploymentAssign = Type.Object(
  {
    product: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' }),
    branch: Type.Optional(BranchSchema),
    pinnedVersion: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Null()])),
    action: Type.Optional(Type.Union([Type.Literal('install'), Type.Literal('remove')])),
    removeConflicts: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type DeploymentAssign = Static<typeof DeploymentAssign>;

export interface DeploymentAssignmentView {
  groupId: string;
  groupPath: string;
  product: string;
  branch: Branch;
  pinnedVersion: string | null;
  action: 'install' | 'remove';
  removeConflicts: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface DeviceProductState {
  deviceId: string;
  product: string;
  state: DeploymentState;
  installedVersion: string | null;
  targetVersion: string | null;
  exitCode: number | null;
  detail: string | null;
  outputTail: string | null;
  updatedAt: string;
}

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
}

/** What the agent's deployment task reports per step, as run events (`garrison.deployment.<outcome>`). */
export const DeploymentEventKind = {
  installed: 'deployment.installed',
  uninstalled: 'deployment.uninstalled',
  failed: 'deployment.failed',
  refused: 'deployment.refused',
} as const;
