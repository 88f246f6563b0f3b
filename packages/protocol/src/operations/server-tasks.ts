/**
 * Server tasks (ADR 0021 for the shape of an operation): work the server does itself, managed
 * like client tasks, and their run history. They are server-wide: reading them needs read on
 * the root group, changing them server-tasks:write there.
 */
import { Type, type Static } from 'typebox';
import { operation, Page, PageQuery } from '../contract.ts';
import { ServerTask, ServerTaskCreate, ServerTaskExport, ServerTaskRun, ServerTaskRunStateSchema, ServerTaskTypeInfo, ServerTaskUpdate } from '../server-task.ts';
import { IdParams } from './common.ts';

const tag = 'server-tasks';
export const ServerTaskListQuery = Type.Object({ type: Type.Optional(Type.String({ maxLength: 100 })), ...PageQuery }, { additionalProperties: false });
export type ServerTaskListQuery = Static<typeof ServerTaskListQuery>;
export const ServerTaskRunsQuery = Type.Object({ state: Type.Optional(ServerTaskRunStateSchema), ...PageQuery }, { additionalProperties: false });
export type ServerTaskRunsQuery = Static<typeof ServerTaskRunsQuery>;
export const ServerTaskCopy = Type.Object({ name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }, { additionalProperties: false });
export type ServerTaskCopy = Static<typeof ServerTaskCopy>;
export const ServerTaskExportQuery = Type.Object({ ids: Type.Optional(Type.String({ maxLength: 100_000, description: 'Comma-separated server task ids; all when absent' })) }, { additionalProperties: false });
export const ServerTaskStopResult = Type.Object(
  { cancelled: Type.Integer({ minimum: 0, description: 'Pending runs cancelled' }), stopping: Type.Integer({ minimum: 0, description: 'Running runs asked to stop' }) },
  { additionalProperties: false },
);

const settingsErrors = ['TASK_TYPE_UNKNOWN', 'SETTINGS_INVALID', 'SECRET_LITERAL_REFUSED', 'SECRET_NOT_FOUND', 'SCHEDULE_INVALID'] as const;

export const listServerTaskTypes = operation({
  id: 'listServerTaskTypes',
  method: 'GET',
  path: '/server-task-types',
  tag,
  summary: 'Server task types with their settings schemas (a list fixed by the server: not paged)',
  response: Type.Array(ServerTaskTypeInfo),
});
export const listServerTasks = operation({ id: 'listServerTasks', method: 'GET', path: '/server-tasks', tag, summary: 'Server tasks, by name', query: ServerTaskListQuery, response: Page(ServerTask) });
export const createServerTask = operation({
  id: 'createServerTask',
  method: 'POST',
  path: '/server-tasks',
  tag,
  summary: 'Create a server task. Triggers allowed: once, interval, daily, weekly, monthly, cron, on-demand, after-task (another server task) and repository-content',
  body: ServerTaskCreate,
  status: 201,
  response: ServerTask,
  errors: settingsErrors,
});
export const exportServerTasks = operation({
  id: 'exportServerTasks',
  method: 'GET',
  path: '/server-tasks/export',
  tag,
  summary: 'Export server tasks as a portable JSON document (secret references only)',
  query: ServerTaskExportQuery,
  response: ServerTaskExport,
});
export const importServerTasks = operation({
  id: 'importServerTasks',
  method: 'POST',
  path: '/server-tasks/import',
  tag,
  summary: 'Import server tasks from an export document (exportServerTasks); all or nothing. Answers the tasks created',
  // The document is checked by the service, so that any flaw in it is IMPORT_INVALID (with the
  // task it is in) rather than the generic VALIDATION_FAILED a schema check here would give.
  body: Type.Unknown({ description: 'A server task export document (format garrison.server-tasks, version 1), as exportServerTasks gives it' }),
  status: 201,
  response: Type.Array(ServerTask, { maxItems: 1000 }),
  errors: ['IMPORT_INVALID'],
});
export const getServerTask = operation({ id: 'getServerTask', method: 'GET', path: '/server-tasks/{id}', tag, summary: 'One server task', params: IdParams, response: ServerTask });
export const updateServerTask = operation({
  id: 'updateServerTask',
  method: 'PATCH',
  path: '/server-tasks/{id}',
  tag,
  summary: 'Change a server task (name, settings, schedule, enabled); send revision to detect concurrent changes',
  params: IdParams,
  body: ServerTaskUpdate,
  response: ServerTask,
  errors: settingsErrors,
});
export const deleteServerTask = operation({ id: 'deleteServerTask', method: 'DELETE', path: '/server-tasks/{id}', tag, summary: 'Delete a server task; a running run is stopped', params: IdParams, status: 204, response: null });
export const enableServerTask = operation({ id: 'enableServerTask', method: 'POST', path: '/server-tasks/{id}/enable', tag, summary: 'Enable a server task', params: IdParams, response: ServerTask });
export const disableServerTask = operation({ id: 'disableServerTask', method: 'POST', path: '/server-tasks/{id}/disable', tag, summary: 'Disable a server task', params: IdParams, response: ServerTask });
export const copyServerTask = operation({
  id: 'copyServerTask',
  method: 'POST',
  path: '/server-tasks/{id}/copy',
  tag,
  summary: 'Copy a server task (named "<name> (copy)" unless a name is given)',
  params: IdParams,
  body: ServerTaskCopy,
  status: 201,
  response: ServerTask,
});
export const runServerTask = operation({
  id: 'runServerTask',
  method: 'POST',
  path: '/server-tasks/{id}/run',
  tag,
  summary: 'Run a server task now; CONFLICT when a run is already pending or running',
  params: IdParams,
  status: 202,
  response: ServerTaskRun,
});
export const stopServerTask = operation({
  id: 'stopServerTask',
  method: 'POST',
  path: '/server-tasks/{id}/stop',
  tag,
  summary: 'Stop a server task: pending runs are cancelled, a running one is asked to stop',
  params: IdParams,
  response: ServerTaskStopResult,
});
export const listRunsOfServerTask = operation({
  id: 'listRunsOfServerTask',
  method: 'GET',
  path: '/server-tasks/{id}/runs',
  tag,
  summary: "A server task's runs, newest first, with progress, summary, result and output tail",
  params: IdParams,
  query: ServerTaskRunsQuery,
  response: Page(ServerTaskRun),
});
export const listServerTaskRuns = operation({
  id: 'listServerTaskRuns',
  method: 'GET',
  path: '/server-task-runs',
  tag,
  summary: 'Runs of every server task, newest first',
  query: ServerTaskRunsQuery,
  response: Page(ServerTaskRun),
});
export const getServerTaskRun = operation({ id: 'getServerTaskRun', method: 'GET', path: '/server-task-runs/{id}', tag, summary: 'One server task run', params: IdParams, response: ServerTaskRun });
