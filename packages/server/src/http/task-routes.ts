/**
 * Products and their task types, tasks, run-now, progress, results, targets and runs: the
 * operations of protocol/src/operations/tasks.ts. Handlers are thin: they call one service
 * method with the caller's actor and return its result.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import {
  copyTask,
  createTask,
  deleteTask,
  disableTask,
  enableTask,
  exportTaskResults,
  exportTasks,
  getRun,
  getRunNowProgress,
  getTask,
  getTaskProgress,
  importTasks,
  listProducts,
  listRuns,
  listTaskResults,
  listTasks,
  listTaskTargets,
  previewSchedule,
  runTaskNow,
  stopTask,
  updateTask,
} from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { inReach, Permission, reachOf } from '../services/actor.ts';
import { pageOf } from '../paging.ts';
import { csvCell } from '../csv.ts';
import { anyAdmin, needs } from './access.ts';
import { route } from './operation.ts';
import { actor } from './admin-routes.ts';

const read = needs(Permission.read);
const manage = needs(Permission.manageTasks);
const run = needs(Permission.runTasks);
const RESULT_COLUMNS = ['deviceId', 'deviceName', 'hostname', 'state', 'percent', 'attempt', 'cause', 'createdAt', 'startedAt', 'endedAt', 'exitCode', 'reason', 'runId'] as const;

export function registerTaskRoutes(app: FastifyInstance, s: Pick<Services, 'catalog' | 'plugins' | 'runs' | 'tasks'>): void {
  // Products and task types
  route(app, listProducts, anyAdmin, async (req) => {
    actor(req);
    return s.plugins.list().map((pl) => ({ ...pl.product, taskTypes: pl.taskTypes.map((t) => ({ id: t.id, name: t.name, description: t.description, settingsSchema: t.settingsSchema })) }));
  });

  // Tasks
  route(app, listTasks, read, async (req) => {
    const a = actor(req);
    return s.runs.taskListItems(a, s.tasks.page(a, req.query));
  });
  route(app, createTask, manage, async (req) => s.tasks.create(actor(req), req.body));
  route(app, exportTasks, read, async (req) => s.tasks.export(actor(req), req.query.ids ? req.query.ids.split(',').filter(Boolean) : undefined));
  route(app, importTasks, manage, async (req) => s.tasks.import(actor(req), req.body));
  route(app, getTask, read, async (req) => s.tasks.get(actor(req), req.params.id));
  route(app, updateTask, manage, async (req) => s.tasks.update(actor(req), req.params.id, req.body));
  route(app, deleteTask, manage, async (req) => {
    await s.tasks.remove(actor(req), req.params.id);
  });
  route(app, enableTask, manage, async (req) => s.tasks.setEnabled(actor(req), req.params.id, true));
  route(app, disableTask, manage, async (req) => s.tasks.setEnabled(actor(req), req.params.id, false));
  route(app, copyTask, manage, async (req) => s.tasks.copy(actor(req), req.params.id, req.body?.name));
  route(app, runTaskNow, run, async (req) => s.runs.runNow(actor(req), req.params.id, req.body ?? {}));
  route(app, stopTask, run, async (req) => s.runs.stop(actor(req), req.params.id));
  route(app, getTaskProgress, read, async (req) => s.runs.progress(actor(req), req.params.id));
  route(app, getRunNowProgress, read, async (req) => s.runs.runNowProgress(actor(req), req.params.id, req.params.requestId));
  route(app, previewSchedule, read, async (req) => s.tasks.previewSchedule(actor(req), req.body));

  // Results and targets
  route(app, listTaskResults, read, async (req) => s.runs.results(actor(req), req.params.id, req.query));
  route(app, exportTaskResults, read, async (req, reply) => {
    const a = actor(req);
    const task = s.tasks.get(a, req.params.id);
    const pages = s.runs.eachResult(a, task.id, req.query);
    // Streamed a thousand rows at a time: a 100,000-device task is exported in bounded memory.
    const body = Readable.from(
      (async function* () {
        yield `${RESULT_COLUMNS.join(',')}\n`;
        for await (const rows of pages) {
          yield rows.map((r) => RESULT_COLUMNS.map((c) => csvCell(c === 'runId' ? r.id : r[c])).join(',')).join('\n') + '\n';
        }
      })(),
    );
    const slug = task.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'task';
    return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="garrison-results-${slug}.csv"`).send(body);
  });
  route(app, listTaskTargets, read, async (req) => {
    const a = actor(req);
    const t = s.tasks.get(a, req.params.id);
    const reach = reachOf(a, Permission.read, s.catalog.tree);
    const needle = req.query.search?.trim().toLowerCase();
    const targets = s.catalog.targetsOf(t).filter((d) => inReach(reach, d.groupId) && (!needle || d.name.toLowerCase().includes(needle) || d.hostname.toLowerCase().includes(needle)));
    return pageOf(targets, { key: (d) => [d.name, d.id] }, req.query, (d) => ({ id: d.id, groupId: d.groupId, name: d.name, hostname: d.hostname, osPlatform: d.osPlatform, osName: d.osName, tags: [...d.tags], products: [...d.products] }));
  });

  // Runs
  route(app, listRuns, read, async (req) => s.runs.page(actor(req), req.query));
  route(app, getRun, read, async (req) => s.runs.get(actor(req), req.params.id));
}
