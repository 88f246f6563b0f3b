/** Server tasks over the API: operations of protocol/src/operations/server-tasks.ts. */
import type { FastifyInstance } from 'fastify';
import {
  copyServerTask,
  createServerTask,
  deleteServerTask,
  disableServerTask,
  enableServerTask,
  exportServerTasks,
  getServerTask,
  getServerTaskRun,
  importServerTasks,
  listRunsOfServerTask,
  listServerTaskRuns,
  listServerTasks,
  listServerTaskTypes,
  runServerTask,
  stopServerTask,
  updateServerTask,
} from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { actor } from './admin-routes.ts';
import { Permission } from '../services/actor.ts';
import { needs } from './access.ts';
import { route } from './operation.ts';

// Server tasks are server-wide: reading them needs read on the root group (the service checks), changing them server-tasks:write there.
const read = needs(Permission.read);
const write = needs(Permission.manageServerTasks);

export function registerServerTaskRoutes(app: FastifyInstance, s: Pick<Services, 'serverTasks'>): void {
  const st = s.serverTasks;
  route(app, listServerTaskTypes, read, async (req) => st.types(actor(req)));
  route(app, listServerTasks, read, async (req) => st.list(actor(req), req.query));
  route(app, createServerTask, write, async (req) => st.create(actor(req), req.body));
  route(app, exportServerTasks, read, async (req) => {
    const ids = req.query.ids;
    return st.export(actor(req), ids ? ids.split(',').filter(Boolean) : undefined);
  });
  route(app, importServerTasks, write, async (req) => st.import(actor(req), req.body));
  route(app, getServerTask, read, async (req) => st.get(actor(req), req.params.id));
  route(app, updateServerTask, write, async (req) => st.update(actor(req), req.params.id, req.body));
  route(app, deleteServerTask, write, async (req) => {
    await st.remove(actor(req), req.params.id);
  });
  route(app, enableServerTask, write, async (req) => st.setEnabled(actor(req), req.params.id, true));
  route(app, disableServerTask, write, async (req) => st.setEnabled(actor(req), req.params.id, false));
  route(app, copyServerTask, write, async (req) => st.copy(actor(req), req.params.id, req.body?.name));
  route(app, runServerTask, write, async (req) => st.runNow(actor(req), req.params.id));
  route(app, stopServerTask, write, async (req) => st.stop(actor(req), req.params.id));
  route(app, listRunsOfServerTask, read, async (req) => st.runs(actor(req), { ...req.query, taskId: req.params.id }));
  route(app, listServerTaskRuns, read, async (req) => st.runs(actor(req), req.query));
  route(app, getServerTaskRun, read, async (req) => st.run(actor(req), req.params.id));
}
