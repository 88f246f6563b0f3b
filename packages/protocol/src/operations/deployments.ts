/**
 * Product deployment (ADR 0007): assignments per group, staged rollouts, and deployment state
 * per device (ADR 0021 for the shape of an operation).
 */
import { Type, type Static } from 'typebox';
import { operation, Page, PageQuery } from '../contract.ts';
import { DeploymentAssign, DeploymentAssignmentView, DeploymentCompliancePage, DeploymentStateSchema, EffectiveDeployment } from '../deployment.ts';
import { IdParams } from './common.ts';
import { GroupProductParams } from './policies.ts';

const tag = 'deployment';

export const DeploymentListQuery = Type.Object({ ...PageQuery, groupId: Type.Optional(Type.String({ maxLength: 100 })) }, { additionalProperties: false });
export type DeploymentListQuery = Static<typeof DeploymentListQuery>;
export const listDeployments = operation({
  id: 'listDeployments',
  method: 'GET',
  path: '/deployments',
  tag,
  summary: 'Product assignments set on the groups the caller reads (all, or those of one group), by group path and product',
  query: DeploymentListQuery,
  response: Page(DeploymentAssignmentView),
});
export const DeploymentComplianceQuery = Type.Object(
  {
    ...PageQuery,
    groupId: Type.Optional(Type.String({ maxLength: 100 })),
    product: Type.Optional(Type.String({ maxLength: 64 })),
    state: Type.Optional(DeploymentStateSchema),
    search: Type.Optional(Type.String({ maxLength: 200, description: 'Part of the device name or host name (case-insensitive); narrows the rows, not the summary' })),
  },
  { additionalProperties: false },
);
export type DeploymentComplianceQuery = Static<typeof DeploymentComplianceQuery>;
export const getDeploymentCompliance = operation({
  id: 'getDeploymentCompliance',
  method: 'GET',
  path: '/deployments/compliance',
  tag,
  summary: 'Deployment state per device and product (by product, then device), with a summary per product over the whole group and product filter',
  query: DeploymentComplianceQuery,
  response: DeploymentCompliancePage,
});
export const listGroupDeployments = operation({
  id: 'listGroupDeployments',
  method: 'GET',
  path: '/groups/{id}/deployments',
  tag,
  summary: "The products that apply to a group: its own and its ancestors' assignments (at most one per product)",
  params: IdParams,
  response: Type.Array(EffectiveDeployment),
});
/** The protocol's DeploymentAssign without the product (it is in the path). */
export const DeploymentAssignBody = Type.Omit(DeploymentAssign, ['product'], { additionalProperties: false });
export type DeploymentAssignBody = Static<typeof DeploymentAssignBody>;
export const assignDeployment = operation({
  id: 'assignDeployment',
  method: 'PUT',
  path: '/groups/{id}/deployments/{product}',
  tag,
  summary: 'Assign a product to a group (install from a branch or a pinned version, or remove it); inherited by subgroups',
  params: GroupProductParams,
  body: DeploymentAssignBody,
  response: DeploymentAssignmentView,
});
export const unassignDeployment = operation({
  id: 'unassignDeployment',
  method: 'DELETE',
  path: '/groups/{id}/deployments/{product}',
  tag,
  summary: "Remove a group's own assignment of a product",
  params: GroupProductParams,
  status: 204,
  response: null,
});
export const resumeRollout = operation({
  id: 'resumeRollout',
  method: 'POST',
  path: '/groups/{id}/deployments/{product}/rollout/resume',
  tag,
  summary: 'Resume a halted staged rollout',
  params: GroupProductParams,
  response: DeploymentAssignmentView,
});
