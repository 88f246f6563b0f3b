/**
 * Devices, their runs and effective tasks, duplicates of cloned machines, boundary refusals,
 * enrolment tokens, the group tree's statuses and bulk actions on devices (ADR 0021 for the
 * shape of an operation).
 */
import { Type, type Static } from 'typebox';
import { DeviceDuplicateView, RefusalCounts } from '../access.ts';
import { DeviceView, EnrolmentTokenView } from '../api.ts';
import { operation, Page, PageQuery } from '../contract.ts';
import { Run } from '../run.ts';
import { Task } from '../task.ts';
import { IdParams } from './common.ts';

/** What the device list sorts by (`group` is the group's path). */
export const DEVICE_SORTS = ['name', 'lastContact', 'osName', 'agentVersion', 'enrolledAt', 'group'] as const;
export type DeviceSort = (typeof DEVICE_SORTS)[number];
/**
 * A device's status as the list filters it: `online` and `offline` for devices with a working
 * credential, `revoked` for those whose credential was revoked (or that uninstalled), and
 * `duplicate` for devices another machine presented the credential of, waiting for a decision.
 */
export const DEVICE_STATUSES = ['online', 'offline', 'revoked', 'duplicate'] as const;
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];

const Days = (description: string) => Type.Integer({ minimum: 1, maximum: 36500, description });
/** The filters of the device list; a bulk action takes the same to act on everything they match. */
const deviceFilterMembers = {
  groupId: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  recursive: Type.Optional(Type.Boolean({ description: 'With groupId: include its subgroups (default true)' })),
  search: Type.Optional(Type.String({ maxLength: 200, description: 'Part of the name or host name, literal' })),
  tag: Type.Optional(Type.String({ maxLength: 64 })),
  online: Type.Optional(Type.Boolean()),
  status: Type.Optional(Type.Enum([...DEVICE_STATUSES])),
  osPlatform: Type.Optional(Type.String({ maxLength: 32, description: 'linux, darwin, win32, ... (exact)' })),
  osName: Type.Optional(Type.String({ maxLength: 128, description: 'The OS name, case-insensitive (exact)' })),
  agentVersion: Type.Optional(Type.String({ maxLength: 64 })),
  notSeenForDays: Type.Optional(Days('Only devices whose last contact is older than this many days (or never)')),
  seenWithinDays: Type.Optional(Days('Only devices in contact within this many days')),
  enrolledSince: Type.Optional(Type.String({ format: 'date-time', description: 'Only devices enrolled at or after this time' })),
  enrolledUntil: Type.Optional(Type.String({ format: 'date-time', description: 'Only devices enrolled before this time' })),
};
export const DeviceFilter = Type.Object(deviceFilterMembers, { additionalProperties: false });
export type DeviceFilter = Static<typeof DeviceFilter>;
export const DeviceListQuery = Type.Object(
  {
    ...deviceFilterMembers,
    sort: Type.Optional(Type.Enum([...DEVICE_SORTS], { description: 'Sort key (default name); ties are broken by id' })),
    order: Type.Optional(Type.Enum(['asc', 'desc'], { description: 'Default asc' })),
    ...PageQuery,
  },
  { additionalProperties: false },
);
export type DeviceListQuery = Static<typeof DeviceListQuery>;

export const DevicePatch = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    groupId: Type.Optional(Type.String()),
    tags: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 100 })),
  },
  { additionalProperties: false },
);
export type DevicePatch = Static<typeof DevicePatch>;

export const DEVICE_BULK_ACTIONS = ['addTags', 'removeTags', 'move', 'delete', 'checkIn', 'runTask'] as const;
export type DeviceBulkActionName = (typeof DEVICE_BULK_ACTIONS)[number];
/** At most this many explicit device ids in one bulk action. */
export const DEVICE_BULK_IDS_MAX = 10_000;
export const DeviceBulkAction = Type.Object(
  {
    action: Type.Enum([...DEVICE_BULK_ACTIONS]),
    deviceIds: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { minItems: 1, maxItems: DEVICE_BULK_IDS_MAX, description: 'The devices to act on; or give filter' })),
    filter: Type.Optional(Type.Object(deviceFilterMembers, { additionalProperties: false, description: 'Act on every device the list would show with these filters; or give deviceIds' })),
    tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 100, description: 'For addTags and removeTags' })),
    groupId: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'For move: the group to move to' })),
    taskId: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'For runTask: the task to run now on these devices' })),
  },
  { additionalProperties: false },
);
export type DeviceBulkAction = Static<typeof DeviceBulkAction>;
export const DeviceBulkResult = Type.Object(
  {
    action: Type.Enum([...DEVICE_BULK_ACTIONS]),
    matched: Type.Integer({ minimum: 0, description: 'Devices selected that the caller can see' }),
    done: Type.Integer({ minimum: 0, description: 'Devices acted on (for checkIn: connected agents told to check in now)' }),
    refused: Type.Integer({ minimum: 0, description: "Devices left untouched because the caller lacks the permission on their group" }),
    notFound: Type.Integer({ minimum: 0, description: 'Given ids of devices that do not exist or that the caller cannot see' }),
    unchanged: Type.Integer({ minimum: 0, description: 'Devices that needed no change (already tagged, already in the group, not connected for checkIn)' }),
    refusedDeviceIds: Type.Array(Type.String(), { maxItems: 100, description: 'The first refused devices' }),
    runRequestId: Type.Optional(Type.String({ description: 'For runTask: the run-now request' })),
  },
  { additionalProperties: false },
);
export type DeviceBulkResult = Static<typeof DeviceBulkResult>;

export const listDevices = operation({
  id: 'listDevices',
  method: 'GET',
  path: '/devices',
  tag: 'devices',
  summary: 'Devices the caller may see, filtered and sorted, with the total that match',
  query: DeviceListQuery,
  response: Page(DeviceView),
});
export const getDevice = operation({ id: 'getDevice', method: 'GET', path: '/devices/{id}', tag: 'devices', summary: 'One device with inventory and online state', params: IdParams, response: DeviceView });
export const updateDevice = operation({
  id: 'updateDevice',
  method: 'PATCH',
  path: '/devices/{id}',
  tag: 'devices',
  summary: 'Rename, move to another group, set tags',
  params: IdParams,
  body: DevicePatch,
  response: DeviceView,
});
export const deleteDevice = operation({
  id: 'deleteDevice',
  method: 'DELETE',
  path: '/devices/{id}',
  tag: 'devices',
  summary: 'Delete a device and revoke its credential',
  params: IdParams,
  status: 204,
  response: null,
});
export const bulkDevices = operation({
  id: 'bulkDevices',
  method: 'POST',
  path: '/devices/bulk',
  tag: 'devices',
  summary: 'Tag, untag, move, delete, check in now or run a task now on many devices: given ids or everything a filter matches; devices out of the caller\'s reach are refused and counted',
  body: DeviceBulkAction,
  response: DeviceBulkResult,
});
export const rotateDeviceCredential = operation({
  id: 'rotateDeviceCredential',
  method: 'POST',
  path: '/devices/{id}/credential/rotate',
  tag: 'devices',
  summary: 'Ask the agent to rotate its credential (at once if connected, else at its next check-in)',
  params: IdParams,
  response: DeviceView,
});
export const revokeDeviceCredential = operation({
  id: 'revokeDeviceCredential',
  method: 'POST',
  path: '/devices/{id}/credential/revoke',
  tag: 'devices',
  summary: 'Revoke the device credential and disconnect the agent at once',
  params: IdParams,
  response: DeviceView,
});
export const uninstallDeviceAgent = operation({
  id: 'uninstallDeviceAgent',
  method: 'POST',
  path: '/devices/{id}/uninstall',
  tag: 'devices',
  summary: 'Ask the agent to uninstall itself; the device record and history are kept',
  params: IdParams,
  response: DeviceView,
});
export const listDeviceTasks = operation({
  id: 'listDeviceTasks',
  method: 'GET',
  path: '/devices/{id}/tasks',
  tag: 'devices',
  summary: "The device's effective tasks the caller may see, by name",
  params: IdParams,
  query: Type.Object({ ...PageQuery }, { additionalProperties: false }),
  response: Page(Task),
});
export const listDeviceRuns = operation({
  id: 'listDeviceRuns',
  method: 'GET',
  path: '/devices/{id}/runs',
  tag: 'devices',
  summary: "The device's runs, newest first",
  params: IdParams,
  query: Type.Object({ ...PageQuery }, { additionalProperties: false }),
  response: Page(Run),
});

// Machines presenting another device's credential, quarantined until approved or rejected.
export const DuplicateListQuery = Type.Object({ state: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('approved'), Type.Literal('rejected')])), ...PageQuery }, { additionalProperties: false });
export const listDeviceDuplicates = operation({
  id: 'listDeviceDuplicates',
  method: 'GET',
  path: '/device-duplicates',
  tag: 'devices',
  summary: "Machines that presented another device's credential with another machine identity, newest first",
  query: DuplicateListQuery,
  response: Page(DeviceDuplicateView),
});
export const approveDeviceDuplicate = operation({
  id: 'approveDeviceDuplicate',
  method: 'POST',
  path: '/device-duplicates/{id}/approve',
  tag: 'devices',
  summary: "Approve a duplicate as a new device in the original's group; it takes its identity at its next check-in",
  params: IdParams,
  response: DeviceDuplicateView,
});
export const rejectDeviceDuplicate = operation({
  id: 'rejectDeviceDuplicate',
  method: 'POST',
  path: '/device-duplicates/{id}/reject',
  tag: 'devices',
  summary: 'Reject a duplicate: that machine is refused from now on',
  params: IdParams,
  response: DeviceDuplicateView,
});
export const getRefusalCounts = operation({
  id: 'getRefusalCounts',
  method: 'GET',
  path: '/security/refusals',
  tag: 'server',
  summary: 'Agent messages refused at the device boundary since this server instance started, by code and by device',
  response: RefusalCounts,
});

// Enrolment tokens
export const TokenCreate = Type.Object(
  {
    groupId: Type.String(),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    expiresInMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 5256000 })),
    maxUses: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000000 })),
  },
  { additionalProperties: false },
);
export type TokenCreate = Static<typeof TokenCreate>;
export const TokenListQuery = Type.Object(
  { state: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('expired'), Type.Literal('revoked'), Type.Literal('exhausted')])), ...PageQuery },
  { additionalProperties: false },
);
export const listEnrolmentTokens = operation({
  id: 'listEnrolmentTokens',
  method: 'GET',
  path: '/enrolment-tokens',
  tag: 'enrolment',
  summary: 'Enrolment tokens (never their values), newest first',
  query: TokenListQuery,
  response: Page(EnrolmentTokenView),
});
export const createEnrolmentToken = operation({
  id: 'createEnrolmentToken',
  method: 'POST',
  path: '/enrolment-tokens',
  tag: 'enrolment',
  summary: 'Create an enrolment token for a group; its value is shown once',
  body: TokenCreate,
  status: 201,
  response: EnrolmentTokenView,
});
export const revokeEnrolmentToken = operation({
  id: 'revokeEnrolmentToken',
  method: 'POST',
  path: '/enrolment-tokens/{id}/revoke',
  tag: 'enrolment',
  summary: 'Revoke an enrolment token',
  params: IdParams,
  response: EnrolmentTokenView,
});

// The group tree's statuses, as KSC shows them (OK / Warning / Critical with the reason).
export const GROUP_STATUS_LEVELS = ['ok', 'warning', 'critical'] as const;
export type GroupStatusLevel = (typeof GROUP_STATUS_LEVELS)[number];
export const GroupStatusQuery = Type.Object(
  { offlineDays: Type.Optional(Type.Integer({ minimum: 2, maximum: 365, description: 'Devices offline for more than this many days make a group Critical (default 7); more than one day makes it Warning' })), ...PageQuery },
  { additionalProperties: false },
);
const Count = Type.Integer({ minimum: 0 });
export const GroupStatus = Type.Object(
  {
    groupId: Type.String(),
    path: Type.String(),
    devices: Type.Integer({ minimum: 0, description: 'Devices in the group itself' }),
    devicesWithSubgroups: Count,
    online: Type.Integer({ minimum: 0, description: 'Online devices in the group itself' }),
    onlineWithSubgroups: Count,
    status: Type.Enum([...GROUP_STATUS_LEVELS], { description: 'The worst status of the devices of the group and its subgroups' }),
    reason: Type.Union([Type.String(), Type.Null()], { description: 'What makes the status, worst first; null when ok' }),
    counts: Type.Object(
      {
        offlineCritical: Type.Integer({ minimum: 0, description: 'Devices offline for more than offlineDays' }),
        offlineWarning: Type.Integer({ minimum: 0, description: 'Devices offline for more than a day, and not more than offlineDays' }),
        failedDeployments: Type.Integer({ minimum: 0, description: 'Devices with a failed product deployment' }),
        failedRuns: Type.Integer({ minimum: 0, description: 'Devices with a failed or timed out task run in the last 24 hours' }),
        detections: Type.Integer({ minimum: 0, description: 'Devices with a detection in the last 24 hours' }),
      },
      { additionalProperties: false, description: 'Over the group and its subgroups' },
    ),
  },
  { additionalProperties: false },
);
export type GroupStatus = Static<typeof GroupStatus>;
export const listGroupStatuses = operation({
  id: 'listGroupStatuses',
  method: 'GET',
  path: '/groups/statuses',
  tag: 'groups',
  summary: 'For each group the caller may see, sorted by path: its device counts and its worst status (OK, Warning, Critical) with the reason',
  query: GroupStatusQuery,
  response: Page(GroupStatus),
});
