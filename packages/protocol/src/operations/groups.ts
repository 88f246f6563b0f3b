/** The group tree (ADR 0021 for the shape of an operation). */
import { Type, type Static } from 'typebox';
import { GroupView } from '../api.ts';
import { operation, Page, PageQuery } from '../contract.ts';
import { IdParams } from './common.ts';

const NullableMinutes = Type.Union([Type.Integer({ minimum: 1, maximum: 10080 }), Type.Null()]);
export const GroupCreate = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    parentId: Type.Optional(Type.String()),
    blockInheritance: Type.Optional(Type.Boolean()),
    checkInIntervalMinutes: Type.Optional(NullableMinutes),
    policyEnforcementMinutes: Type.Optional(NullableMinutes),
  },
  { additionalProperties: false },
);
export type GroupCreate = Static<typeof GroupCreate>;
export const GroupPatch = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    parentId: Type.Optional(Type.String()),
    blockInheritance: Type.Optional(Type.Boolean()),
    checkInIntervalMinutes: Type.Optional(NullableMinutes),
    policyEnforcementMinutes: Type.Optional(NullableMinutes),
  },
  { additionalProperties: false },
);
export type GroupPatch = Static<typeof GroupPatch>;
export const GroupListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });

export const listGroups = operation({
  id: 'listGroups',
  method: 'GET',
  path: '/groups',
  tag: 'groups',
  summary: 'The group tree the caller may see, as a flat list with paths and effective policy, sorted by path',
  query: GroupListQuery,
  response: Page(GroupView),
});
export const createGroup = operation({
  id: 'createGroup',
  method: 'POST',
  path: '/groups',
  tag: 'groups',
  summary: 'Create a group (under the root when parentId is absent)',
  body: GroupCreate,
  status: 201,
  response: GroupView,
  errors: ['GROUP_CYCLE'],
});
export const getGroup = operation({ id: 'getGroup', method: 'GET', path: '/groups/{id}', tag: 'groups', summary: 'One group', params: IdParams, response: GroupView });
export const updateGroup = operation({
  id: 'updateGroup',
  method: 'PATCH',
  path: '/groups/{id}',
  tag: 'groups',
  summary: 'Rename, move, set policy or inheritance blocking',
  params: IdParams,
  body: GroupPatch,
  response: GroupView,
  errors: ['GROUP_CYCLE', 'ROOT_GROUP_IMMUTABLE'],
});
export const deleteGroup = operation({
  id: 'deleteGroup',
  method: 'DELETE',
  path: '/groups/{id}',
  tag: 'groups',
  summary: 'Delete an empty group',
  params: IdParams,
  status: 204,
  response: null,
  errors: ['GROUP_NOT_EMPTY', 'ROOT_GROUP_IMMUTABLE'],
});
