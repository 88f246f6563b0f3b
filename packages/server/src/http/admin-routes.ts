/**
 * The versioned admin REST API. Handlers are thin: they validate the request against its
 * schema (which also documents it in OpenAPI), call one service method with the caller's
 * actor, and return its result.
 */
import { csvCell } from '../csv.ts';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static, type TSchema } from 'typebox';
import { RunStateSchema, TaskCreate, TaskUpdate, type RunState } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import type { Actor } from '../services/actor.ts';
import { AppError } from '../errors.ts';

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
type IdParams = Static<typeof IdParams>;
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
  { value: Type.String({ minLength: 1, maxLength: 65536 }), description: Type.Optional(Type.String({ maxLength: 500 })) },
  { additionalProperties: false },
);
const SecretParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) });
const ApiTokenCreate = Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });
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
function doc(tag: string, summary: string, parts: { body?: TSchema; params?: TSchema; querystring?: TSchema } = {}) {
  return { schema: { tags: [tag], summary, ...parts } };
}


export function registerAdminRoutes(app: FastifyInstance, s: Services): void {
  const p = '/api/v1';

  // Identity and API tokens
  app.get(`${p}/me`, doc('auth', 'The calling administrator'), async (req) => {
    const a = actor(req);
    if (a.kind !== 'admin') return a;
    const { sessionId, ...me } = a;
    return { ...me, session: sessionId !== undefined };
  });
  app.get(`${p}/api-tokens`, doc('auth', "The caller's API tokens (never their values)"), async (req) => s.auth.listTokens(actor(req)));
  app.post(`${p}/api-tokens`, doc('auth', 'Create an API token; its value is shown once', { body: ApiTokenCreate }), async (req, reply) => {
    const token = await s.auth.createToken(actor(req), (req.body as Static<typeof ApiTokenCreate>).name);
    return reply.status(201).send({ token });
  });
  app.delete(`${p}/api-tokens/:id`, doc('auth', 'Revoke an API token', { params: IdParams }), async (req, reply) => {
    await s.auth.revokeToken(actor(req), (req.params as IdParams).id);
    return reply.status(204).send();
  });

  // Groups
  app.get(`${p}/groups`, doc('groups', 'The group tree, as a flat list with paths and effective policy'), async (req) => s.groups.list(actor(req)));
  app.post(`${p}/groups`, doc('groups', 'Create a group (under the root when parentId is absent)', { body: GroupCreate }), async (req, reply) =>
    reply.status(201).send(await s.groups.create(actor(req), req.body as Static<typeof GroupCreate>)),
  );
  app.get(`${p}/groups/:id`, doc('groups', 'One group', { params: IdParams }), async (req) => s.groups.get(actor(req), (req.params as IdParams).id));
  app.patch(`${p}/groups/:id`, doc('groups', 'Rename, move, set policy or inheritance blocking', { params: IdParams, body: GroupPatch }), async (req) =>
    s.groups.update(actor(req), (req.params as IdParams).id, req.body as Static<typeof GroupPatch>),
  );
  app.delete(`${p}/groups/:id`, doc('groups', 'Delete an empty group', { params: IdParams }), async (req, reply) => {
    await s.groups.remove(actor(req), (req.params as IdParams).id);
    return reply.status(204).send();
  });

  // Devices
  app.get(`${p}/devices`, doc('devices', 'Devices, filtered', { querystring: DeviceQuery }), async (req) => s.devices.list(actor(req), req.query as Static<typeof DeviceQuery>));
  app.get(`${p}/devices/:id`, doc('devices', 'One device with inventory and online state', { params: IdParams }), async (req) => s.devices.get(actor(req), (req.params as IdParams).id));
  app.patch(`${p}/devices/:id`, doc('devices', 'Rename, move to another group, set tags', { params: IdParams, body: DevicePatch }), async (req) =>
    s.devices.update(actor(req), (req.params as IdParams).id, req.body as Static<typeof DevicePatch>),
  );
  app.delete(`${p}/devices/:id`, doc('devices', 'Delete a device and revoke its credential', { params: IdParams }), async (req, reply) => {
    await s.devices.remove(actor(req), (req.params as IdParams).id);
    return reply.status(204).send();
  });
  app.post(`${p}/devices/:id/credential/rotate`, doc('devices', "Ask the agent to rotate its credential (at once if connected, else at its next check-in)", { params: IdParams }), async (req) =>
    s.identity.requestRotation(actor(req), (req.params as IdParams).id),
  );
  app.post(`${p}/devices/:id/credential/revoke`, doc('devices', 'Revoke the device credential and disconnect the agent at once', { params: IdParams }), async (req) =>
    s.identity.revoke(actor(req), (req.params as IdParams).id),
  );
  app.post(`${p}/devices/:id/uninstall`, doc('devices', 'Ask the agent to uninstall itself; the device record and history are kept', { params: IdParams }), async (req) =>
    s.identity.requestUninstall(actor(req), (req.params as IdParams).id),
  );
  app.get(`${p}/devices/:id/tasks`, doc('devices', "The device's effective tasks", { params: IdParams }), async (req) => s.devices.effectiveTasks(actor(req), (req.params as IdParams).id));
  app.get(`${p}/devices/:id/runs`, doc('devices', "The device's runs, newest first", { params: IdParams }), async (req) =>
    s.runs.list(actor(req), { deviceId: (req.params as IdParams).id, limit: 200 }),
  );

  // Enrolment tokens
  app.get(`${p}/enrolment-tokens`, doc('enrolment', 'Enrolment tokens (never their values)'), async (req) => s.enrolment.listTokens(actor(req)));
  app.post(`${p}/enrolment-tokens`, doc('enrolment', 'Create an enrolment token for a group; its value is shown once', { body: TokenCreate }), async (req, reply) =>
    reply.status(201).send(await s.enrolment.createToken(actor(req), req.body as Static<typeof TokenCreate>)),
  );
  app.post(`${p}/enrolment-tokens/:id/revoke`, doc('enrolment', 'Revoke an enrolment token', { params: IdParams }), async (req) =>
    s.enrolment.revokeToken(actor(req), (req.params as IdParams).id),
  );

  // Products and task types
  app.get(`${p}/products`, doc('tasks', 'Installed management plug-ins with their task types and settings schemas'), async (req) => {
    actor(req);
    return s.plugins.list().map((pl) => ({ ...pl.product, taskTypes: pl.taskTypes.map((t) => ({ id: t.id, name: t.name, description: t.description, settingsSchema: t.settingsSchema })) }));
  });

  // Tasks
  app.get(`${p}/tasks`, doc('tasks', 'Tasks', { querystring: TaskQuery }), async (req) => s.tasks.list(actor(req), req.query as Static<typeof TaskQuery>));
  app.post(`${p}/tasks`, doc('tasks', 'Create a task', { body: TaskCreate }), async (req, reply) => reply.status(201).send(await s.tasks.create(actor(req), req.body as TaskCreate)));
  app.get(`${p}/tasks/export`, doc('tasks', 'Export tasks as a portable JSON document (secret references only)', { querystring: ExportQuery }), async (req) => {
    const ids = (req.query as Static<typeof ExportQuery>).ids;
    return s.tasks.export(actor(req), ids ? ids.split(',').filter(Boolean) : undefined);
  });
  app.post(`${p}/tasks/import`, doc('tasks', 'Import tasks from an export document; all or nothing'), async (req, reply) =>
    reply.status(201).send(await s.tasks.import(actor(req), req.body)),
  );
  app.get(`${p}/tasks/:id`, doc('tasks', 'One task', { params: IdParams }), async (req) => s.tasks.get(actor(req), (req.params as IdParams).id));
  app.patch(`${p}/tasks/:id`, doc('tasks', 'Change a task (settings, schedule, scope, name, enabled)', { params: IdParams, body: TaskUpdate }), async (req) =>
    s.tasks.update(actor(req), (req.params as IdParams).id, req.body as TaskUpdate),
  );
  app.delete(`${p}/tasks/:id`, doc('tasks', 'Delete a task; agents drop it at their next contact', { params: IdParams }), async (req, reply) => {
    await s.tasks.remove(actor(req), (req.params as IdParams).id);
    return reply.status(204).send();
  });
  app.post(`${p}/tasks/:id/enable`, doc('tasks', 'Enable a task', { params: IdParams }), async (req) => s.tasks.setEnabled(actor(req), (req.params as IdParams).id, true));
  app.post(`${p}/tasks/:id/disable`, doc('tasks', 'Disable a task', { params: IdParams }), async (req) => s.tasks.setEnabled(actor(req), (req.params as IdParams).id, false));
  app.post(`${p}/tasks/:id/copy`, doc('tasks', 'Copy a task', { params: IdParams, body: CopyBody }), async (req, reply) =>
    reply.status(201).send(await s.tasks.copy(actor(req), (req.params as IdParams).id, (req.body as Static<typeof CopyBody> | undefined)?.name)),
  );
  app.post(`${p}/tasks/:id/run`, doc('tasks', 'Run now on every target; offline targets get it at next contact until expiry', { params: IdParams, body: Type.Optional(RunNowBody) }), async (req, reply) =>
    reply.status(202).send(await s.runs.runNow(actor(req), (req.params as IdParams).id, (req.body as Static<typeof RunNowBody> | undefined) ?? {})),
  );
  app.post(`${p}/tasks/:id/stop`, doc('tasks', 'Stop the task where it runs and cancel undelivered run-nows', { params: IdParams }), async (req) =>
    s.runs.stop(actor(req), (req.params as IdParams).id),
  );
  app.get(`${p}/tasks/:id/progress`, doc('tasks', 'How many target devices are in each state', { params: IdParams }), async (req) => s.runs.progress(actor(req), (req.params as IdParams).id));
  app.get(`${p}/tasks/:id/results`, doc('tasks', 'The latest run on each device, with output tail', { params: IdParams }), async (req) => s.runs.results(actor(req), (req.params as IdParams).id));
  app.get(`${p}/tasks/:id/targets`, doc('tasks', 'The devices the task targets now', { params: IdParams }), async (req) => {
    const t = s.tasks.get(actor(req), (req.params as IdParams).id);
    return s.catalog.targetsOf(t);
  });

  // Runs
  app.get(`${p}/runs`, doc('runs', 'Runs, newest first', { querystring: RunQuery }), async (req) => {
    const q = req.query as Static<typeof RunQuery>;
    return s.runs.list(actor(req), { ...q, state: q.state as RunState | undefined });
  });
  app.get(`${p}/runs/:id`, doc('runs', 'One run', { params: IdParams }), async (req) => s.runs.get(actor(req), (req.params as IdParams).id));

  // Events
  app.get(`${p}/events`, doc('events', 'The event log, newest first; format=csv or jsonl to export', { querystring: EventQuery }), async (req, reply) => {
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
  app.get(`${p}/secrets`, doc('secrets', 'Secret names and descriptions (never values)'), async (req) => s.secrets.list(actor(req)));
  app.put(`${p}/secrets/:name`, doc('secrets', 'Set a secret value (the description is kept when absent)', { params: SecretParams, body: SecretPut }), async (req, reply) => {
    const b = req.body as Static<typeof SecretPut>;
    await s.secrets.put(actor(req), (req.params as Static<typeof SecretParams>).name, b.value, b.description);
    return reply.status(204).send();
  });
  app.delete(`${p}/secrets/:name`, doc('secrets', 'Delete a secret', { params: SecretParams }), async (req, reply) => {
    await s.secrets.remove(actor(req), (req.params as Static<typeof SecretParams>).name);
    return reply.status(204).send();
  });

  // Server settings
  app.get(`${p}/settings`, doc('server', 'Server settings (retention)'), async (req) => {
    actor(req);
    return s.settings.serverSettings();
  });
  app.patch(`${p}/settings`, doc('server', 'Change server settings', { body: ServerSettings }), async (req) => {
    const a = actor(req);
    if (a.kind === 'admin' && a.scopeGroupId !== null) throw new AppError('FORBIDDEN', 'server settings need an unscoped administrator');
    const next = { ...(await s.settings.serverSettings()), ...(req.body as object) };
    await s.settings.set('server', next);
    await s.events.audit(a, 'settings.updated', 'server settings changed', { data: next });
    return next;
  });
}

