/**
 * Administrators, roles and permissions (issue 12, ADR 0013): the wire contract shared by the
 * server, the CLI and the console. A role is a named set of permissions; an administrator
 * holds grants, each of one role on one group subtree. What a grant allows applies to that
 * group and everything below it. Permissions marked server-wide concern objects that belong
 * to no group (the master repository, server tasks, server settings, administrators): they
 * take effect only from a grant on the root group.
 */
import { Type, type Static } from 'typebox';
import { Inventory } from './inventory.ts';

export const Permission = {
  /** See the groups, devices, tasks, runs, events, deployments and installers of the subtree. */
  read: 'read',
  manageGroups: 'groups:write',
  /** Rename, move, tag, delete devices; rotate, revoke, uninstall; approve duplicates. */
  manageDevices: 'devices:write',
  manageTasks: 'tasks:write',
  /** Create, change, assign and delete product policies (ADR 0020). */
  managePolicies: 'policies:write',
  /** Run now and stop tasks (without changing them). */
  runTasks: 'tasks:run',
  /** Assign products to groups, roll out, roll back. */
  manageDeployments: 'deployments:write',
  /** Enrolment tokens and installer links. */
  manageTokens: 'tokens:write',
  /** Push installation over SSH. */
  pushInstall: 'push:run',
  /** Set and delete secrets, and refer to them in task settings. */
  manageSecrets: 'secrets:write',
  manageRepository: 'repository:write',
  /** Create, change, test and delete notification rules (ADR 0022). */
  manageNotifications: 'notifications:write',
  manageServerTasks: 'server-tasks:write',
  manageSettings: 'settings:write',
  /** Administrators, roles and grants; sign-in settings. */
  manageAdmins: 'admins:write',
} as const;
export type Permission = (typeof Permission)[keyof typeof Permission];
export const ALL_PERMISSIONS: readonly Permission[] = Object.values(Permission);
/** Permissions on objects outside the group tree: effective only when granted on the root group. */
export const SERVER_WIDE_PERMISSIONS: readonly Permission[] = [Permission.manageRepository, Permission.manageServerTasks, Permission.manageSettings, Permission.manageAdmins];

export const permissionInfo: Record<Permission, string> = {
  read: 'See groups, devices, tasks, runs, events, deployments and installers',
  'groups:write': 'Create, change and delete groups and their policy',
  'devices:write': 'Rename, move, tag and delete devices; rotate, revoke and uninstall agents; approve duplicates',
  'tasks:write': 'Create, change, copy, import and delete tasks',
  'tasks:run': 'Run tasks now and stop them',
  'policies:write': 'Create, change, assign and delete policies',
  'deployments:write': 'Assign products to groups, stage rollouts and roll back',
  'tokens:write': 'Create and revoke enrolment tokens and installer links',
  'push:run': 'Install agents by push installation',
  'secrets:write': 'Set and delete secrets and refer to them in settings',
  'notifications:write': 'Create, change, test and delete notification rules and their automatic responses',
  'repository:write': 'Check packages into the master repository, promote and remove them (server-wide)',
  'server-tasks:write': 'Create, change, run and delete server tasks (server-wide)',
  'settings:write': 'Change server settings (server-wide)',
  'admins:write': 'Manage administrators, roles and sign-in settings (server-wide)',
};

/** The built-in roles, with fixed ids; they cannot be changed or deleted. */
export const BuiltinRole = {
  mainAdministrator: 'main-administrator',
  administrator: 'administrator',
  operator: 'operator',
  installer: 'installer',
  auditor: 'auditor',
} as const;
export type BuiltinRole = (typeof BuiltinRole)[keyof typeof BuiltinRole];

const P = Permission;
export const BUILTIN_ROLES: readonly { id: BuiltinRole; name: string; description: string; permissions: readonly Permission[] }[] = [
  { id: 'main-administrator', name: 'Main administrator', description: 'Everything, including administrators, roles and server settings.', permissions: ALL_PERMISSIONS },
  {
    id: 'administrator',
    name: 'Administrator',
    description: 'Everything in the subtree: groups, devices, tasks, policies, deployments, installers, secrets; on the root group also the repository and server tasks.',
    permissions: [P.read, P.manageGroups, P.manageDevices, P.manageTasks, P.runTasks, P.managePolicies, P.manageDeployments, P.manageTokens, P.pushInstall, P.manageSecrets, P.manageNotifications, P.manageRepository, P.manageServerTasks],
  },
  { id: 'operator', name: 'Operator', description: 'Sees the subtree and runs and stops its tasks, but changes nothing.', permissions: [P.read, P.runTasks] },
  { id: 'installer', name: 'Installer', description: 'Sees the subtree, enrols machines (enrolment tokens, installer links) and installs agents by push.', permissions: [P.read, P.manageTokens, P.pushInstall] },
  { id: 'auditor', name: 'Auditor', description: 'Reads everything in the subtree, including the audit trail; changes nothing.', permissions: [P.read] },
];

// Listed literally so that RoleCreate's static type is Permission[] (a mapped union widens to never).
export const PermissionSchema = Type.Union([
  Type.Literal('read'),
  Type.Literal('groups:write'),
  Type.Literal('devices:write'),
  Type.Literal('tasks:write'),
  Type.Literal('tasks:run'),
  Type.Literal('policies:write'),
  Type.Literal('deployments:write'),
  Type.Literal('tokens:write'),
  Type.Literal('push:run'),
  Type.Literal('secrets:write'),
  Type.Literal('notifications:write'),
  Type.Literal('repository:write'),
  Type.Literal('server-tasks:write'),
  Type.Literal('settings:write'),
  Type.Literal('admins:write'),
]);

export const RoleView = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    description: Type.String(),
    permissions: Type.Array(PermissionSchema),
    builtin: Type.Boolean(),
    // Empty for the built-in roles, which were never created.
    createdAt: Type.String(),
    updatedAt: Type.String(),
  },
  { additionalProperties: false },
);
export type RoleView = Static<typeof RoleView>;
export const RoleCreate = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    description: Type.Optional(Type.String({ maxLength: 500 })),
    permissions: Type.Array(PermissionSchema, { minItems: 1, maxItems: ALL_PERMISSIONS.length, uniqueItems: true }),
  },
  { additionalProperties: false },
);
export type RoleCreate = Static<typeof RoleCreate>;
export const RoleUpdate = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    description: Type.Optional(Type.String({ maxLength: 500 })),
    permissions: Type.Optional(Type.Array(PermissionSchema, { minItems: 1, maxItems: ALL_PERMISSIONS.length, uniqueItems: true })),
  },
  { additionalProperties: false },
);
export type RoleUpdate = Static<typeof RoleUpdate>;

/** One role on one group subtree. */
export const GrantInput = Type.Object({ roleId: Type.String({ minLength: 1, maxLength: 100 }), groupId: Type.String({ minLength: 1, maxLength: 100 }) }, { additionalProperties: false });
export type GrantInput = Static<typeof GrantInput>;
export const GrantView = Type.Object({ roleId: Type.String(), roleName: Type.String(), groupId: Type.String(), groupPath: Type.String() }, { additionalProperties: false });
export type GrantView = Static<typeof GrantView>;

export const AdminView = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    displayName: Type.Union([Type.String(), Type.Null()]),
    email: Type.Union([Type.String(), Type.Null()]),
    grants: Type.Array(GrantView),
    disabled: Type.Boolean(),
    hasPassword: Type.Boolean(),
    totpEnabled: Type.Boolean(),
    oidcSubject: Type.Union([Type.String(), Type.Null()], { description: 'Set for administrators who sign in through the OpenID provider' }),
    createdAt: Type.String(),
    lastSignInAt: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false },
);
export type AdminView = Static<typeof AdminView>;
export const ADMIN_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$';
export const AdminCreate = Type.Object(
  {
    name: Type.String({ pattern: ADMIN_NAME_PATTERN }),
    displayName: Type.Optional(Type.String({ maxLength: 200 })),
    email: Type.Optional(Type.String({ maxLength: 320 })),
    password: Type.Optional(Type.String({ minLength: 10, maxLength: 1024 })),
    grants: Type.Array(GrantInput, { maxItems: 100 }),
  },
  { additionalProperties: false },
);
export type AdminCreate = Static<typeof AdminCreate>;
export const AdminUpdate = Type.Object(
  {
    displayName: Type.Optional(Type.Union([Type.String({ maxLength: 200 }), Type.Null()])),
    email: Type.Optional(Type.Union([Type.String({ maxLength: 320 }), Type.Null()])),
    grants: Type.Optional(Type.Array(GrantInput, { maxItems: 100 })),
    disabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type AdminUpdate = Static<typeof AdminUpdate>;

/** How a caller reached the API: what the audit trail records beside who and from where. */
export const ActorVia = { console: 'console', cli: 'cli', apiToken: 'api-token', agent: 'agent', system: 'system' } as const;
export type ActorVia = (typeof ActorVia)[keyof typeof ActorVia];
export const ActorViaSchema = Type.Union([Type.Literal('console'), Type.Literal('cli'), Type.Literal('api-token'), Type.Literal('agent'), Type.Literal('system')]);

const NullableTime = Type.Union([Type.String(), Type.Null()]);
export const ApiTokenView = Type.Object(
  { id: Type.String(), name: Type.String(), createdAt: Type.String(), lastUsedAt: NullableTime, expiresAt: NullableTime, revokedAt: NullableTime },
  { additionalProperties: false },
);
export type ApiTokenView = Static<typeof ApiTokenView>;
/** A new API token: its view and, this once, its value. */
export const ApiTokenCreated = Type.Object({ ...ApiTokenView.properties, token: Type.String({ description: 'The value (gat.…), shown only now' }) }, { additionalProperties: false });
export type ApiTokenCreated = Static<typeof ApiTokenCreated>;
export const ApiTokenCreate = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 200 }), expiresInDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })) },
  { additionalProperties: false },
);
export type ApiTokenCreate = Static<typeof ApiTokenCreate>;

/** GET /api/v1/permissions: a permission, what it allows, and whether it counts only on the root group. */
export const PermissionInfo = Type.Object({ id: PermissionSchema, description: Type.String(), serverWide: Type.Boolean() }, { additionalProperties: false });
export type PermissionInfo = Static<typeof PermissionInfo>;

/** POST /api/v1/me/totp: the secret of a second factor being set up, for an authenticator app. */
export const TotpSetup = Type.Object({ secret: Type.String(), uri: Type.String({ description: 'otpauth:// URI for an authenticator app' }) }, { additionalProperties: false });
export type TotpSetup = Static<typeof TotpSetup>;

/** GET /api/v1/device-duplicates: a machine that presented another device's credential with another machine identity. */
export const DeviceDuplicateView = Type.Object(
  {
    id: Type.String(),
    deviceId: Type.String({ description: 'The device whose credential it presented' }),
    machineIdentity: Type.String(),
    hostname: Type.String(),
    inventory: Inventory,
    remoteAddress: Type.Union([Type.String(), Type.Null()]),
    state: Type.Union([Type.Literal('pending'), Type.Literal('approved'), Type.Literal('rejected')]),
    firstSeenAt: Type.String({ format: 'date-time' }),
    lastSeenAt: Type.String({ format: 'date-time' }),
    seenCount: Type.Integer({ minimum: 0 }),
    newDeviceId: Type.Union([Type.String(), Type.Null()], { description: 'The device it became when approved' }),
    decidedBy: Type.Union([Type.String(), Type.Null()]),
    decidedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { additionalProperties: false },
);
export type DeviceDuplicateView = Static<typeof DeviceDuplicateView>;

/** GET /api/v1/security/refusals: what the device boundary refused since this server instance started. */
const CountsByCode = Type.Record(Type.String(), Type.Integer({ minimum: 0 }));
export const RefusalCounts = Type.Object(
  {
    since: Type.String({ format: 'date-time' }),
    total: Type.Integer({ minimum: 0 }),
    byCode: CountsByCode,
    devices: Type.Array(Type.Object({ deviceId: Type.String(), total: Type.Integer({ minimum: 0 }), byCode: CountsByCode, lastAt: Type.String({ format: 'date-time' }) }, { additionalProperties: false }), {
      description: 'The devices with the most refusals, most first (at most 100)',
    }),
  },
  { additionalProperties: false },
);
export type RefusalCounts = Static<typeof RefusalCounts>;
