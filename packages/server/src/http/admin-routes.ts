/**
 * The versioned admin REST API. Handlers are thin: they validate the request against its
 * schema (which also documents it in OpenAPI), call one service method with the caller's
 * actor, and return its result.
 */
import { csvCell } from '../csv.ts';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static, type TSchema } from 'typebox';
import { ALL_PERMISSIONS, AdminCreate, AdminUpdate, ApiTokenCreate, RoleCreate, RoleUpdate, RunStateSchema, TaskCreate, TaskUpdate, permissionInfo, SERVER_WIDE_PERMISSIONS, type Me, type RunState } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { accessOf, authorize, inReach, Permission, reachOf, type Actor } from '../services/actor.ts';
import { PASSWORD_MIN_LENGTH } from '../services/auth-service.ts';
import { AppError } from '../errors.ts';
import { anyAdmin, needs, type RouteAccess } from './access.ts';

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
type IdParams = Static<typeof IdParams>;
const RunRequestParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }), requestId: Type.String({ minLength: 1, maxLength: 100 }) });
type RunRequestParams = Static<typeof RunRequestParams>;
const NullableMinutes = Type.Union([Type.Integer({ minimum: 1, maximum: 10080 }), Type.Null()]);
const GroupCreate = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    parentId: Type.Optional(Type.String()),
    blockInheritance: Type.Optional(Type.Boolean()),
    checkInIntervalMinutes: Type.Optional(NullableMinutes),
    policyEnforcementMinutes: Type.Optional(NullableMinutes),
  },
  { additionalProperties: false },
);
const GroupPatch = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    parentId: Type.Optional(Type.String()),
    blockInheritance: Type.Optional(Type.Boolean()),
    checkInIntervalMinutes: Type.Optional(NullableMinutes),
    policyEnforcementMinutes: Type.Optional(NullableMinutes),
  },
  { additionalProperties: false },
);
const DeviceQuery = Type.Object(
  {
    groupId: Type.Optional(Type.String()),
    recursive: Type.Optional(Type.Boolean()),
    search: Type.Optional(Type.String({ maxLength: 200 })),
    tag: Type.Optional(Type.String({ maxLength: 64 })),
    online: Type.Optional(Type.Boolean()),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000 })),
    offset: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
const DevicePatch = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    groupId: Type.Optional(Type.String()),
    tags: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 100 })),
  },
  { additionalProperties: false },
);
const TokenCreate = Type.Object(
  {
    groupId: Type.String(),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    expiresInMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 5256000 })),
    maxUses: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000000 })),
  },
  { additionalProperties: false },
);
const TaskQuery = Type.Object(
  {
    product: Type.Optional(Type.String()),
    scopeType: Type.Optional(Type.Union([Type.Literal('local'), Type.Literal('group'), Type.Literal('global')])),
    groupId: Type.Optional(Type.String()),
    deviceId: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
const RunNowBody = Type.Object({ expiryMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 525600 })) }, { additionalProperties: false });
const CopyBody = Type.Object({ name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }, { additionalProperties: false });
const ExportQuery = Type.Object({ ids: Type.Optional(Type.String({ description: 'Comma-separated task ids; all tasks when absent' })) }, { additionalProperties: false });
const RunQuery = Type.Object(
  {
    taskId: Type.Optional(Type.String()),
    deviceId: Type.Optional(Type.String()),
    requestId: Type.Optional(Type.String()),
    state: Type.Optional(RunStateSchema),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
  },
  { additionalProperties: false },
);
const EventQuery = Type.Object(
  {
    deviceId: Type.Optional(Type.String()),
    groupId: Type.Optional(Type.String()),
    recursive: Type.Optional(Type.Boolean()),
    taskId: Type.Optional(Type.String()),
    runId: Type.Optional(Type.String()),
    product: Type.Optional(Type.String()),
    kind: Type.Optional(Type.String()),
    severity: Type.Optional(Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('error')])),
    since: Type.Optional(Type.String({ format: 'date-time' })),
    until: Type.Optional(Type.String({ format: 'date-time' })),
    beforeId: Type.Optional(Type.Integer({ minimum: 1 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
    format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('jsonl'), Type.Literal('csv')])),
  },
  { additionalProperties: false },
);
const SecretPut = Type.Object(
  {
    value: Type.String({ minLength: 1, maxLength: 65536 }),
    description: Type.Optional(Type.String({ maxLength: 500 })),
    groupId: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'The group the secret belongs to (default: the root, or the one it has)' })),
  },
  { additionalProperties: false },
);
const SecretParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) });
const CodeBody = Type.Object({ code: Type.String({ pattern: '^[0-9]{6}$' }) }, { additionalProperties: false });
const PasswordReset = Type.Object({ password: Type.String({ minLength: PASSWORD_MIN_LENGTH, maxLength: 1024 }) }, { additionalProperties: false });
const DuplicateQuery = Type.Object({ state: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('approved'), Type.Literal('rejected')])) }, { additionalProperties: false });
const ServerSettings = Type.Object(
  {
    eventRetentionDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
    runRetentionDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
  },
  { additionalProperties: false },
);
export { DEFAULT_SERVER_SETTINGS as DEFAULT_SETTINGS } from '../storage/settings-store.ts';

/** The authenticated caller (the onRequest hook set it), or UNAUTHENTICATED. */
export function actor(req: FastifyRequest): Actor {
  if (!req.actor) throw new AppError('UNAUTHENTICATED', 'no API token');
  return req.actor;
}
function doc(tag: string, summary: string, access: { access: RouteAccess }, parts: { body?: TSchema; params?: TSchema; querystring?: TSchema } = {}) {
  return { config: access, schema: { tags: [tag], summary, ...parts } };
}
const read = needs(Permission.read);


export function registerAdminRoutes(app: FastifyInstance, s: Pick<Services, 'admins' | 'auth' | 'catalog' | 'devices' | 'enrolment' | 'events' | 'groups' | 'identity' | 'limits' | 'plugins' | 'runs' | 'secrets' | 'settings' | 'tasks'>): void {
  const p = '/api/v1';

  // Identity and API tokens
  app.get(`${p}/me`, doc('auth', 'The calling administrator: grants, the permissions they give, and how this request was authenticated', anyAdmin), async (req): Promise<Me> => {
    const a = actor(req);
    if (a.kind !== 'admin') return { kind: 'system', name: a.name };
    const view = await s.admins.me(a);
    const summary = accessOf(a, s.catalog.tree).summary(ALL_PERMISSIONS);
    return { kind: 'admin', adminId: a.adminId, name: a.name, displayName: view.displayName, grants: view.grants, permissions: summary.anywhere, rootPermissions: summary.root, via: a.via, session: a.sessionId !== undefined, totpEnabled: view.totpEnabled };
  });
  app.get(`${p}/api-tokens`, doc('auth', "The caller's API tokens (never their values), with when each was last used", anyAdmin), async (req) => s.auth.listTokens(actor(req)));
  app.post(`${p}/api-tokens`, doc('auth', 'Create an API token (optionally expiring); its value is shown once', anyAdmin, { body: ApiTokenCreate }), async (req, reply) => {
    const a = actor(req);
    const b = req.body as ApiTokenCreate;
    const { token, view } = await s.auth.createToken(a, b.name, b.expiresInDays);
    await s.events.audit(a, 'api-token.created', `API token "${b.name}" created`, { data: { tokenId: view.id, expiresAt: view.expiresAt } });
    return reply.status(201).send({ token, ...view });
  });
  app.delete(`${p}/api-tokens/:id`, doc('auth', 'Revoke an API token', anyAdmin, { params: IdParams }), async (req, reply) => {
    const a = actor(req);
    await s.auth.revokeToken(a, (req.params as IdParams).id);
    await s.events.audit(a, 'api-token.revoked', 'API token revoked', { data: { tokenId: (req.params as IdParams).id } });
    return reply.status(204).send();
  });
  // Second factor (TOTP) for password sign-ins.
  app.post(`${p}/me/totp`, doc('auth', 'Start setting a second factor: a TOTP secret and its otpauth:// URI for an authenticator app; confirm with a code', anyAdmin), async (req, reply) =>
    reply.status(201).send(await s.auth.beginTotp(actor(req))),
  );
  app.post(`${p}/me/totp/confirm`, doc('auth', 'Put the second factor in force with a current code', anyAdmin, { body: CodeBody }), async (req, reply) => {
    const a = actor(req);
    await s.auth.confirmTotp(a, (req.body as Static<typeof CodeBody>).code);
    await s.events.audit(a, 'admin.second-factor-set', `${a.name} set a second factor`, {});
    return reply.status(204).send();
  });
  app.delete(`${p}/me/totp`, doc('auth', 'Remove your second factor (with a current code)', anyAdmin, { body: CodeBody }), async (req, reply) => {
    const a = actor(req);
    if (a.kind !== 'admin') throw new AppError('FORBIDDEN', 'administrators only');
    await s.auth.removeTotp(a.adminId, (req.body as Static<typeof CodeBody>).code);
    await s.events.audit(a, 'admin.second-factor-removed', `${a.name} removed their second factor`, {});
    return reply.status(204).send();
  });

  // Administrators and roles (admins:write on the root group to change; read on the root to see)
  app.get(`${p}/permissions`, doc('admins', 'Every permission with what it allows, and which only take effect on the root group', anyAdmin), async () =>
    ALL_PERMISSIONS.map((id) => ({ id, description: permissionInfo[id], serverWide: SERVER_WIDE_PERMISSIONS.includes(id) })),
  );
  app.get(`${p}/roles`, doc('admins', 'Roles: the built-in ones and custom ones, with their permissions', anyAdmin), async (req) => s.admins.listRoles(actor(req)));
  app.post(`${p}/roles`, doc('admins', 'Create a custom role', needs(Permission.manageAdmins), { body: RoleCreate }), async (req, reply) => reply.status(201).send(await s.admins.createRole(actor(req), req.body as RoleCreate)));
  app.patch(`${p}/roles/:id`, doc('admins', "Change a custom role's name, description or permissions (takes effect at once)", needs(Permission.manageAdmins), { params: IdParams, body: RoleUpdate }), async (req) =>
    s.admins.updateRole(actor(req), (req.params as IdParams).id, req.body as RoleUpdate),
  );
  app.delete(`${p}/roles/:id`, doc('admins', 'Delete a custom role that nobody holds', needs(Permission.manageAdmins), { params: IdParams }), async (req, reply) => {
    await s.admins.deleteRole(actor(req), (req.params as IdParams).id);
    return reply.status(204).send();
  });
  app.get(`${p}/admins`, doc('admins', 'Administrators with their grants', read), async (req) => s.admins.list(actor(req)));
  app.post(`${p}/admins`, doc('admins', 'Create an administrator with grants (a role on a group subtree each) and optionally a password', needs(Permission.manageAdmins), { body: AdminCreate }), async (req, reply) =>
    reply.status(201).send(await s.admins.create(actor(req), req.body as AdminCreate)),
  );
  app.get(`${p}/admins/:id`, doc('admins', 'One administrator', read, { params: IdParams }), async (req) => s.admins.get(actor(req), (req.params as IdParams).id));
  app.patch(`${p}/admins/:id`, doc('admins', 'Change grants, disable (its tokens and sessions are revoked) or enable, name details', needs(Permission.manageAdmins), { params: IdParams, body: AdminUpdate }), async (req) =>
    s.admins.update(actor(req), (req.params as IdParams).id, req.body as AdminUpdate),
  );
  app.delete(`${p}/admins/:id`, doc('admins', 'Delete an administrator, its grants and tokens (the audit trail keeps its name)', needs(Permission.manageAdmins), { params: IdParams }), async (req, reply) => {
    await s.admins.remove(actor(req), (req.params as IdParams).id);
    return reply.status(204).send();
  });
  app.post(`${p}/admins/:id/password`, doc('admins', "Reset an administrator's password; their console sessions end", needs(Permission.manageAdmins), { params: IdParams, body: PasswordReset }), async (req, reply) => {
    await s.admins.resetPassword(actor(req), (req.params as IdParams).id, (req.body as Static<typeof PasswordReset>).password);
    return reply.status(204).send();
  });
  app.delete(`${p}/admins/:id/totp`, doc('admins', "Remove an administrator's second factor (a lost phone)", needs(Permission.manageAdmins), { params: IdParams }), async (req, reply) => {
    await s.admins.removeSecondFactor(actor(req), (req.params as IdParams).id);
    return reply.status(204).send();
  });

  // Groups
  app.get(`${p}/groups`, doc('groups', 'The group tree, as a flat list with paths and effective policy', read), async (req) => s.groups.list(actor(req)));
  app.post(`${p}/groups`, doc('groups', 'Create a group (under the root when parentId is absent)', needs(Permission.manageGroups), { body: GroupCreate }), async (req, reply) =>
    reply.status(201).send(await s.groups.create(actor(req), req.body as Static<typeof GroupCreate>)),
  );
  app.get(`${p}/groups/:id`, doc('groups', 'One group', read, { params: IdParams }), async (req) => s.groups.get(actor(req), (req.params as IdParams).id));
  app.patch(`${p}/groups/:id`, doc('groups', 'Rename, move, set policy or inheritance blocking', needs(Permission.manageGroups), { params: IdParams, body: GroupPatch }), async (req) =>
    s.groups.update(actor(req), (req.params as IdParams).id, req.body as Static<typeof GroupPatch>),
  );
  app.delete(`${p}/groups/:id`, doc('groups', 'Delete an empty group', needs(Permission.manageGroups), { params: IdParams }), async (req, reply) => {
    await s.groups.remove(actor(req), (req.params as IdParams).id);
    return reply.status(204).send();
  });

  // Devices
  app.get(`${p}/devices`, doc('devices', 'Devices, filtered', read, { querystring: DeviceQuery }), async (req) => s.devices.list(actor(req), req.query as Static<typeof DeviceQuery>));
  app.get(`${p}/devices/:id`, doc('devices', 'One device with inventory and online state', read, { params: IdParams }), async (req) => s.devices.get(actor(req), (req.params as IdParams).id));
  app.patch(`${p}/devices/:id`, doc('devices', 'Rename, move to another group, set tags', needs(Permission.manageDevices), { params: IdParams, body: DevicePatch }), async (req) =>
    s.devices.update(actor(req), (req.params as IdParams).id, req.body as Static<typeof DevicePatch>),
  );
  app.delete(`${p}/devices/:id`, doc('devices', 'Delete a device and revoke its credential', needs(Permission.manageDevices), { params: IdParams }), async (req, reply) => {
    await s.devices.remove(actor(req), (req.params as IdParams).id);
    return reply.status(204).send();
  });
  app.post(`${p}/devices/:id/credential/rotate`, doc('devices', "Ask the agent to rotate its credential (at once if connected, else at its next check-in)", needs(Permission.manageDevices), { params: IdParams }), async (req) =>
    s.identity.requestRotation(actor(req), (req.params as IdParams).id),
  );
  app.post(`${p}/devices/:id/credential/revoke`, doc('devices', 'Revoke the device credential and disconnect the agent at once', needs(Permission.manageDevices), { params: IdParams }), async (req) =>
    s.identity.revoke(actor(req), (req.params as IdParams).id),
  );
  app.post(`${p}/devices/:id/uninstall`, doc('devices', 'Ask the agent to uninstall itself; the device record and history are kept', needs(Permission.manageDevices), { params: IdParams }), async (req) =>
    s.identity.requestUninstall(actor(req), (req.params as IdParams).id),
  );
  app.get(`${p}/devices/:id/tasks`, doc('devices', "The device's effective tasks", read, { params: IdParams }), async (req) => {
    const a = actor(req);
    return s.devices.effectiveTasks(a, (req.params as IdParams).id, (t) => s.tasks.canSee(a, t));
  });
  app.get(`${p}/devices/:id/runs`, doc('devices', "The device's runs, newest first", read, { params: IdParams }), async (req) =>
    s.runs.list(actor(req), { deviceId: (req.params as IdParams).id, limit: 200 }),
  );

  // Machines presenting another device's credential, quarantined until approved or rejected.
  app.get(`${p}/device-duplicates`, doc('devices', "Machines that presented another device's credential with another machine identity", read, { querystring: DuplicateQuery }), async (req) =>
    s.identity.listDuplicates(actor(req), req.query as Static<typeof DuplicateQuery>),
  );
  app.post(`${p}/device-duplicates/:id/approve`, doc('devices', 'Approve a duplicate as a new device in the original\'s group; it takes its identity at its next check-in', needs(Permission.manageDevices), { params: IdParams }), async (req) =>
    s.identity.approveDuplicate(actor(req), (req.params as IdParams).id),
  );
  app.post(`${p}/device-duplicates/:id/reject`, doc('devices', 'Reject a duplicate: that machine is refused from now on', needs(Permission.manageDevices), { params: IdParams }), async (req) =>
    s.identity.rejectDuplicate(actor(req), (req.params as IdParams).id),
  );
  // What the device boundary refused (per-device limits, reports for runs a device was not given, secret references), since the server started.
  app.get(`${p}/security/refusals`, doc('server', 'Agent messages refused at the device boundary since this server instance started, by code and by device', read), async (req) => {
    authorize(actor(req), Permission.read, s.catalog.tree);
    return s.limits.counts();
  });

  // Enrolment tokens
  app.get(`${p}/enrolment-tokens`, doc('enrolment', 'Enrolment tokens (never their values)', read), async (req) => s.enrolment.listTokens(actor(req)));
  app.post(`${p}/enrolment-tokens`, doc('enrolment', 'Create an enrolment token for a group; its value is shown once', needs(Permission.manageTokens), { body: TokenCreate }), async (req, reply) =>
    reply.status(201).send(await s.enrolment.createToken(actor(req), req.body as Static<typeof TokenCreate>)),
  );
  app.post(`${p}/enrolment-tokens/:id/revoke`, doc('enrolment', 'Revoke an enrolment token', needs(Permission.manageTokens), { params: IdParams }), async (req) =>
    s.enrolment.revokeToken(actor(req), (req.params as IdParams).id),
  );

  // Products and task types
  app.get(`${p}/products`, doc('tasks', 'Installed management plug-ins with their task types and settings schemas', anyAdmin), async (req) => {
    actor(req);
    return s.plugins.list().map((pl) => ({ ...pl.product, taskTypes: pl.taskTypes.map((t) => ({ id: t.id, name: t.name, description: t.description, settingsSchema: t.settingsSchema })) }));
  });

  // Tasks
  app.get(`${p}/tasks`, doc('tasks', 'Tasks', read, { querystring: TaskQuery }), async (req) => s.tasks.list(actor(req), req.query as Static<typeof TaskQuery>));
  app.post(`${p}/tasks`, doc('tasks', 'Create a task', needs(Permission.manageTasks), { body: TaskCreate }), async (req, reply) => reply.status(201).send(await s.tasks.create(actor(req), req.body as TaskCreate)));
  app.get(`${p}/tasks/export`, doc('tasks', 'Export tasks as a portable JSON document (secret references only)', read, { querystring: ExportQuery }), async (req) => {
    const ids = (req.query as Static<typeof ExportQuery>).ids;
    return s.tasks.export(actor(req), ids ? ids.split(',').filter(Boolean) : undefined);
  });
  app.post(`${p}/tasks/import`, doc('tasks', 'Import tasks from an export document; all or nothing', needs(Permission.manageTasks)), async (req, reply) =>
    reply.status(201).send(await s.tasks.import(actor(req), req.body)),
  );
  app.get(`${p}/tasks/:id`, doc('tasks', 'One task', read, { params: IdParams }), async (req) => s.tasks.get(actor(req), (req.params as IdParams).id));
  app.patch(`${p}/tasks/:id`, doc('tasks', 'Change a task (settings, schedule, scope, name, enabled)', needs(Permission.manageTasks), { params: IdParams, body: TaskUpdate }), async (req) =>
    s.tasks.update(actor(req), (req.params as IdParams).id, req.body as TaskUpdate),
  );
  app.delete(`${p}/tasks/:id`, doc('tasks', 'Delete a task; agents drop it at their next contact', needs(Permission.manageTasks), { params: IdParams }), async (req, reply) => {
    await s.tasks.remove(actor(req), (req.params as IdParams).id);
    return reply.status(204).send();
  });
  app.post(`${p}/tasks/:id/enable`, doc('tasks', 'Enable a task', needs(Permission.manageTasks), { params: IdParams }), async (req) => s.tasks.setEnabled(actor(req), (req.params as IdParams).id, true));
  app.post(`${p}/tasks/:id/disable`, doc('tasks', 'Disable a task', needs(Permission.manageTasks), { params: IdParams }), async (req) => s.tasks.setEnabled(actor(req), (req.params as IdParams).id, false));
  app.post(`${p}/tasks/:id/copy`, doc('tasks', 'Copy a task', needs(Permission.manageTasks), { params: IdParams, body: CopyBody }), async (req, reply) =>
    reply.status(201).send(await s.tasks.copy(actor(req), (req.params as IdParams).id, (req.body as Static<typeof CopyBody> | undefined)?.name)),
  );
  app.post(`${p}/tasks/:id/run`, doc('tasks', 'Run now on every target; offline targets get it at next contact until expiry', needs(Permission.runTasks), { params: IdParams, body: Type.Optional(RunNowBody) }), async (req, reply) =>
    reply.status(202).send(await s.runs.runNow(actor(req), (req.params as IdParams).id, (req.body as Static<typeof RunNowBody> | undefined) ?? {})),
  );
  app.post(`${p}/tasks/:id/stop`, doc('tasks', 'Stop the task where it runs and cancel undelivered run-nows', needs(Permission.runTasks), { params: IdParams }), async (req) =>
    s.runs.stop(actor(req), (req.params as IdParams).id),
  );
  app.get(`${p}/tasks/:id/progress`, doc('tasks', 'How many target devices are in each state', read, { params: IdParams }), async (req) => s.runs.progress(actor(req), (req.params as IdParams).id));
  app.get(`${p}/tasks/:id/run-requests/:requestId/progress`, doc('tasks', 'Progress of one run-now (its requestId): the devices it was given to by state, and apart those that joined the targets since', read, { params: RunRequestParams }), async (req) => {
    const params = req.params as RunRequestParams;
    return s.runs.runNowProgress(actor(req), params.id, params.requestId);
  });
  app.get(`${p}/tasks/:id/results`, doc('tasks', 'The latest run on each device, with output tail', read, { params: IdParams }), async (req) => s.runs.results(actor(req), (req.params as IdParams).id));
  app.get(`${p}/tasks/:id/targets`, doc('tasks', 'The devices the task targets now', read, { params: IdParams }), async (req) => {
    const a = actor(req);
    const t = s.tasks.get(a, (req.params as IdParams).id);
    const reach = reachOf(a, Permission.read, s.catalog.tree);
    return s.catalog.targetsOf(t).filter((d) => inReach(reach, d.groupId));
  });

  // Runs
  app.get(`${p}/runs`, doc('runs', 'Runs, newest first', read, { querystring: RunQuery }), async (req) => {
    const q = req.query as Static<typeof RunQuery>;
    return s.runs.list(actor(req), { ...q, state: q.state as RunState | undefined });
  });
  app.get(`${p}/runs/:id`, doc('runs', 'One run', read, { params: IdParams }), async (req) => s.runs.get(actor(req), (req.params as IdParams).id));

  // Events
  app.get(`${p}/events`, doc('events', 'The event log, newest first; format=csv or jsonl to export', read, { querystring: EventQuery }), async (req, reply) => {
    const { format, ...q } = req.query as Static<typeof EventQuery>;
    const events = await s.events.query(actor(req), q);
    if (format === 'csv') {
      const cols = ['id', 'time', 'severity', 'kind', 'message', 'actor', 'deviceId', 'groupId', 'taskId', 'runId', 'product', 'data'] as const;
      const lines = [cols.join(','), ...events.map((e) => cols.map((c) => csvCell(e[c])).join(','))];
      return reply.type('text/csv').send(`${lines.join('\n')}\n`);
    }
    if (format === 'jsonl') return reply.type('application/x-ndjson').send(events.map((e) => JSON.stringify(e)).join('\n') + '\n');
    return events;
  });

  // Secrets: names only; values are write-only.
  app.get(`${p}/secrets`, doc('secrets', 'Secret names and descriptions (never values)', read), async (req) => s.secrets.list(actor(req)));
  app.put(`${p}/secrets/:name`, doc('secrets', 'Set a secret value (the description is kept when absent)', needs(Permission.manageSecrets), { params: SecretParams, body: SecretPut }), async (req, reply) => {
    const b = req.body as Static<typeof SecretPut>;
    await s.secrets.put(actor(req), (req.params as Static<typeof SecretParams>).name, b.value, b.description, b.groupId);
    return reply.status(204).send();
  });
  app.delete(`${p}/secrets/:name`, doc('secrets', 'Delete a secret', needs(Permission.manageSecrets), { params: SecretParams }), async (req, reply) => {
    await s.secrets.remove(actor(req), (req.params as Static<typeof SecretParams>).name);
    return reply.status(204).send();
  });

  // Server settings
  app.get(`${p}/settings`, doc('server', 'Server settings (retention)', anyAdmin), async (req) => {
    actor(req);
    return s.settings.serverSettings();
  });
  app.patch(`${p}/settings`, doc('server', 'Change server settings', needs(Permission.manageSettings), { body: ServerSettings }), async (req) => {
    const a = actor(req);
    authorize(a, Permission.manageSettings, s.catalog.tree);
    const next = { ...(await s.settings.serverSettings()), ...(req.body as object) };
    await s.settings.set('server', next);
    await s.events.audit(a, 'settings.updated', 'server settings changed', { data: next });
    return next;
  });
}

