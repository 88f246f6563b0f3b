/** Server tasks over the API: the same operations as client tasks, and their run history. */
import type { FastifyInstance } from 'fastify';
import { Type, type Static, type TSchema } from 'typebox';
import { ServerTaskCreate, ServerTaskUpdate } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { actor } from './admin-routes.ts';
import { Permission } from '../services/actor.ts';
import { needs } from './access.ts';

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
type IdParams = Static<typeof IdParams>;
const ListQuery = Type.Object({ type: Type.Optional(Type.String({ maxLength: 100 })) }, { additionalProperties: false });
const RunsQuery = Type.Object(
  {
    state: Type.Optional(Type.String({ maxLength: 40 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    before: Type.Optional(Type.String({ maxLength: 40, description: 'Only runs created before this time (paging)' })),
  },
  { additionalProperties: false },
);
const CopyBody = Type.Object({ name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }, { additionalProperties: false });
const ExportQuery = Type.Object({ ids: Type.Optional(Type.String({ description: 'Comma-separated server task ids; all when absent' })) }, { additionalProperties: false });

// Server tasks are server-wide: reading them needs read on the root group (the service checks), changing them server-tasks:write there.
function doc(summary: string, parts: { body?: TSchema; params?: TSchema; querystring?: TSchema; description?: string } = {}, access = needs(Permission.read)) {
  return { config: access, schema: { tags: ['server-tasks'], summary, ...parts } };
}
const write = needs(Permission.manageServerTasks);

export function registerServerTaskRoutes(app: FastifyInstance, s: Pick<Services, 'serverTasks'>): void {
  const p = '/api/v1/server-tasks';
  const st = s.serverTasks;
  app.get('/api/v1/server-task-types', doc('Server task types with their settings schemas'), async (req) => st.types(actor(req)));
  app.get(p, doc('Server tasks', { querystring: ListQuery }), async (req) => st.list(actor(req), req.query as Static<typeof ListQuery>));
  app.post(
    p,
    doc('Create a server task', {
      body: ServerTaskCreate,
      description:
        'Triggers allowed: once, interval, daily, weekly, monthly, cron, on-demand, after-task (another server task) and repository-content. Errors: TASK_TYPE_UNKNOWN, SETTINGS_INVALID, SECRET_LITERAL_REFUSED, SECRET_NOT_FOUND, SCHEDULE_INVALID.',
    }, write),
    async (req, reply) => reply.status(201).send(await st.create(actor(req), req.body as ServerTaskCreate)),
  );
  app.get(`${p}/export`, doc('Export server tasks as a portable JSON document (secret references only)', { querystring: ExportQuery }), async (req) => {
    const ids = (req.query as Static<typeof ExportQuery>).ids;
    return st.export(actor(req), ids ? ids.split(',').filter(Boolean) : undefined);
  });
  app.post(`${p}/import`, doc('Import server tasks from an export document; all or nothing (IMPORT_INVALID)', {}, write), async (req, reply) => reply.status(201).send(await st.import(actor(req), req.body)));
  app.get(`${p}/:id`, doc('One server task', { params: IdParams }), async (req) => st.get(actor(req), (req.params as IdParams).id));
  app.patch(`${p}/:id`, doc('Change a server task (name, settings, schedule, enabled); send revision to detect concurrent changes', { params: IdParams, body: ServerTaskUpdate }, write), async (req) =>
    st.update(actor(req), (req.params as IdParams).id, req.body as ServerTaskUpdate),
  );
  app.delete(`${p}/:id`, doc('Delete a server task; a running run is stopped', { params: IdParams }, write), async (req, reply) => {
    await st.remove(actor(req), (req.params as IdParams).id);
    return reply.status(204).send();
  });
  app.post(`${p}/:id/enable`, doc('Enable a server task', { params: IdParams }, write), async (req) => st.setEnabled(actor(req), (req.params as IdParams).id, true));
  app.post(`${p}/:id/disable`, doc('Disable a server task', { params: IdParams }, write), async (req) => st.setEnabled(actor(req), (req.params as IdParams).id, false));
  app.post(`${p}/:id/copy`, doc('Copy a server task', { params: IdParams, body: CopyBody }, write), async (req, reply) =>
    reply.status(201).send(await st.copy(actor(req), (req.params as IdParams).id, (req.body as Static<typeof CopyBody> | undefined)?.name)),
  );
  app.post(`${p}/:id/run`, doc('Run a server task now; CONFLICT when a run is already pending or running', { params: IdParams }, write), async (req, reply) =>
    reply.status(202).send(await st.runNow(actor(req), (req.params as IdParams).id)),
  );
  app.post(`${p}/:id/stop`, doc('Stop a server task: pending runs are cancelled, a running one is asked to stop', { params: IdParams }, write), async (req) => st.stop(actor(req), (req.params as IdParams).id));
  app.get(`${p}/:id/runs`, doc("A server task's runs, newest first, with progress, summary, result and output tail", { params: IdParams, querystring: RunsQuery }), async (req) =>
    st.runs(actor(req), { taskId: (req.params as IdParams).id, ...(req.query as Static<typeof RunsQuery>) }),
  );
  app.get('/api/v1/server-task-runs', doc('Runs of every server task, newest first', { querystring: RunsQuery }), async (req) => st.runs(actor(req), req.query as Static<typeof RunsQuery>));
  app.get('/api/v1/server-task-runs/:id', doc('One server task run', { params: IdParams }), async (req) => st.run(actor(req), (req.params as IdParams).id));
}
