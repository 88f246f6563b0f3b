/**
 * Product policies (ADR 0020): policy types, policies, their revisions, export and import,
 * previews and compliance; a group's assignments; a device's effective policy with origins
 * (ADR 0021 for the shape of an operation).
 */
import { Type, type Static } from 'typebox';
import { operation, Page, PageQuery, PAGE_LIMIT_MAX } from '../contract.ts';
import {
  DevicePolicyView,
  GroupPolicyAssignmentView,
  PolicyAssignmentInput,
  PolicyComplianceCounts,
  PolicyCompliancePage,
  PolicyExport,
  PolicyPreviewInput,
  PolicyRevisionView,
  PolicyTypeView,
  PolicyView,
} from '../api.ts';
import { Policy, PolicyAssignment, PolicyInput, PolicyPatch, PolicyPreview } from '../policy.ts';
import { IdParams } from './common.ts';

const tag = 'policies';
export const GroupProductParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }), product: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' }) });
export type GroupProductParams = Static<typeof GroupProductParams>;

export const PolicyTypeList = Type.Object({ items: Type.Array(PolicyTypeView) }, { additionalProperties: false });
export const listPolicyTypes = operation({
  id: 'listPolicyTypes',
  method: 'GET',
  path: '/policy-types',
  tag,
  summary: "The installed plug-ins' policy types: settings schema, defaults, lockable settings (one per product, so never many)",
  response: PolicyTypeList,
});

export const PolicyListQuery = Type.Object(
  {
    ...PageQuery,
    product: Type.Optional(Type.String({ maxLength: 100 })),
    search: Type.Optional(Type.String({ maxLength: 200, description: 'Part of the policy name (case-insensitive)' })),
    compliance: Type.Optional(Type.Boolean({ description: 'Add the count of devices in each compliance state to every policy of the page (one read of reports per policy)' })),
  },
  { additionalProperties: false },
);
export type PolicyListQuery = Static<typeof PolicyListQuery>;
/** A policy in the list, with the groups it is assigned to (as getPolicy shows them) and, when asked, its compliance counts. */
export const PolicyListItem = Type.Object(
  {
    ...PolicyView.properties,
    compliance: Type.Optional(PolicyComplianceCounts),
  },
  { additionalProperties: false },
);
export type PolicyListItem = Static<typeof PolicyListItem>;
export const listPolicies = operation({ id: 'listPolicies', method: 'GET', path: '/policies', tag, summary: 'Policies, by name, each with the groups it is assigned to (and, when asked, its compliance counts)', query: PolicyListQuery, response: Page(PolicyListItem) });
export const createPolicy = operation({
  id: 'createPolicy',
  method: 'POST',
  path: '/policies',
  tag,
  summary: 'Create a policy',
  body: PolicyInput,
  status: 201,
  response: Policy,
  errors: ['POLICY_INVALID', 'POLICY_TYPE_UNKNOWN'],
});
export const importPolicy = operation({
  id: 'importPolicy',
  method: 'POST',
  path: '/policies/import',
  tag,
  summary: 'Import a policy from its export document (with an optional top-level name)',
  // Checked by the service against PolicyExport, so that a wrong document gets POLICY_IMPORT_INVALID with its issues.
  body: Type.Unknown({ description: 'A document of exportPolicy' }),
  status: 201,
  response: Policy,
  errors: ['POLICY_IMPORT_INVALID', 'POLICY_TYPE_UNKNOWN'],
});
export const getPolicy = operation({ id: 'getPolicy', method: 'GET', path: '/policies/{id}', tag, summary: 'One policy and the groups it is assigned to', params: IdParams, response: PolicyView });
export const updatePolicy = operation({
  id: 'updatePolicy',
  method: 'PATCH',
  path: '/policies/{id}',
  tag,
  summary: 'Change a policy (from the revision named: POLICY_REVISION_CONFLICT otherwise)',
  params: IdParams,
  body: PolicyPatch,
  response: Policy,
  errors: ['POLICY_INVALID', 'POLICY_REVISION_CONFLICT'],
});
export const deletePolicy = operation({
  id: 'deletePolicy',
  method: 'DELETE',
  path: '/policies/{id}',
  tag,
  summary: 'Delete a policy that no group has assigned',
  params: IdParams,
  status: 204,
  response: null,
  errors: ['POLICY_IN_USE'],
});
export const PolicyCopyBody = Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });
export const copyPolicy = operation({ id: 'copyPolicy', method: 'POST', path: '/policies/{id}/copy', tag, summary: 'Copy a policy (revision 1, not assigned)', params: IdParams, body: PolicyCopyBody, status: 201, response: Policy });

export const PolicyRevisionQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });
export const listPolicyRevisions = operation({
  id: 'listPolicyRevisions',
  method: 'GET',
  path: '/policies/{id}/revisions',
  tag,
  summary: "A policy's revisions, newest first, each as its export document",
  params: IdParams,
  query: PolicyRevisionQuery,
  response: Page(PolicyRevisionView),
});
export const exportPolicy = operation({ id: 'exportPolicy', method: 'GET', path: '/policies/{id}/export', tag, summary: 'A policy as a portable document', params: IdParams, response: PolicyExport });

export const PreviewQuery = Type.Object(
  { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: PAGE_LIMIT_MAX, description: 'How many changed devices to list (default 200); `truncated` says when there are more' })) },
  { additionalProperties: false },
);
export const previewPolicy = operation({
  id: 'previewPolicy',
  method: 'POST',
  path: '/policies/{id}/preview',
  tag,
  summary: 'Which devices a change of the policy would change, and how',
  params: IdParams,
  query: PreviewQuery,
  body: PolicyPreviewInput,
  response: PolicyPreview,
  errors: ['POLICY_INVALID', 'POLICY_REVISION_CONFLICT'],
});

export const PolicyComplianceStateSchema = Type.Union([Type.Literal('compliant'), Type.Literal('drifted'), Type.Literal('failed'), Type.Literal('pending')]);
export const PolicyComplianceQuery = Type.Object(
  {
    ...PageQuery,
    state: Type.Optional(PolicyComplianceStateSchema),
    search: Type.Optional(Type.String({ maxLength: 200, description: 'Part of the device name (case-insensitive)' })),
  },
  { additionalProperties: false },
);
export type PolicyComplianceQuery = Static<typeof PolicyComplianceQuery>;
export const getPolicyCompliance = operation({
  id: 'getPolicyCompliance',
  method: 'GET',
  path: '/policies/{id}/compliance',
  tag,
  summary: 'What the devices the policy reaches reported, by device name; with the count of each state over all of them',
  params: IdParams,
  query: PolicyComplianceQuery,
  response: PolicyCompliancePage,
});

export const GroupPolicyAssignmentList = Type.Object({ items: Type.Array(GroupPolicyAssignmentView) }, { additionalProperties: false });
export const listGroupPolicies = operation({
  id: 'listGroupPolicies',
  method: 'GET',
  path: '/groups/{id}/policies',
  tag,
  summary: "A group's own policy assignments (at most one per product)",
  params: IdParams,
  response: GroupPolicyAssignmentList,
});
export const assignGroupPolicy = operation({
  id: 'assignGroupPolicy',
  method: 'PUT',
  path: '/groups/{id}/policies/{product}',
  tag,
  summary: "Assign a policy to a group for a product, or block its ancestors' policies",
  params: GroupProductParams,
  body: PolicyAssignmentInput,
  response: PolicyAssignment,
  errors: ['POLICY_TYPE_UNKNOWN'],
});
export const unassignGroupPolicy = operation({
  id: 'unassignGroupPolicy',
  method: 'DELETE',
  path: '/groups/{id}/policies/{product}',
  tag,
  summary: "Remove a group's policy assignment for a product",
  params: GroupProductParams,
  status: 204,
  response: null,
});
export const previewGroupPolicy = operation({
  id: 'previewGroupPolicy',
  method: 'POST',
  path: '/groups/{id}/policies/{product}/preview',
  tag,
  summary: 'Which devices an assignment would change, and how',
  params: GroupProductParams,
  query: PreviewQuery,
  body: PolicyAssignmentInput,
  response: PolicyPreview,
  errors: ['POLICY_TYPE_UNKNOWN'],
});
export const getDevicePolicy = operation({
  id: 'getDevicePolicy',
  method: 'GET',
  path: '/devices/{id}/policy',
  tag,
  summary: "A device's effective policy of every product, with the origin of every value, what it reported, and its next maintenance window",
  params: IdParams,
  response: DevicePolicyView,
});
