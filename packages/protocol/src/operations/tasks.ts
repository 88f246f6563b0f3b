/**
 * Products and their task types, tasks, run-now, stop, progress, results, targets and runs
 * (ADR 0021 for the shape of an operation).
 */
import { Type, type Static } from 'typebox';
import { operation, Page, PageQuery } from '../contract.ts';
import { RunNowResult } from '../api.ts';
import { Run, RunNowProgress, RunStateSchema, TaskProgress } from '../run.ts';
import { Schedule } from '../schedule.ts';
import { Task, TaskCreate, TaskExport, TaskUpdate } from '../task.ts';
import { IdParams } from './common.ts';

// --- Products -------------------------------------------------------------------------------

export const TaskTypeView = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    description: Type.String(),
    /** JSON Schema of the settings (it drives the console's settings form). */
    settingsSchema: Type.Unknown(),
  },
  { additionalProperties: false },
);
export type TaskTypeView = Static<typeof TaskTypeView>;
export const ProductView = Type.Object(
  { id: Type.String(), name: Type.String(), description: Type.String(), taskTypes: Type.Array(TaskTypeView) },
  { additionalProperties: false },
);
export type ProductView = Static<typeof ProductView>;

export const listProducts = operation({
  id: 'listProducts',
  method: 'GET',
  path: '/products',
  tag: 'tasks',
  summary: 'Installed management plug-ins with their task types and settings schemas',
  response: Type.Array(ProductView),
});

// --- Tasks ----------------------------------------------------------------------------------

export const TaskListQuery = Type.Object(
  {
    ...PageQuery,
    product: Type.Optional(Type.String({ maxLength: 100 })),
    scopeType: Type.Optional(Type.Union([Type.Literal('local'), Type.Literal('group'), Type.Literal('global')])),
    groupId: Type.Optional(Type.String({ maxLength: 100 })),
    deviceId: Type.Optional(Type.String({ maxLength: 100 })),
    search: Type.Optional(Type.String({ maxLength: 200, description: 'Part of the task name (case-insensitive)' })),
  },
  { additionalProperties: false },
);
export type TaskListQuery = Static<typeof TaskListQuery>;

/** A task in the list, with what an administrator scans the list for. */
export const TaskListItem = Type.Object({
  ...Task.properties,
  /** When the latest run on any device the caller may see was made; null: never run. */
  lastRunAt: Type.Union([Type.String(), Type.Null()]),
  /**
   * The next fire of its time triggers, read in UTC for a schedule on the devices' local time
   * (each device fires at its own wall-clock time); null for a disabled task or one with event
   * triggers only.
   */
  nextRunAt: Type.Union([Type.String(), Type.Null()]),
  /** Devices (that the caller may see) whose latest run failed or timed out. */
  failures: Type.Integer({ minimum: 0 }),
});
export type TaskListItem = Static<typeof TaskListItem>;

export const listTasks = operation({
  id: 'listTasks',
  method: 'GET',
  path: '/tasks',
  tag: 'tasks',
  summary: 'Tasks the caller may see, by name, with their last and next run and failures',
  query: TaskListQuery,
  response: Page(TaskListItem),
});
export const createTask = operation({
  id: 'createTask',
  method: 'POST',
  path: '/tasks',
  tag: 'tasks',
  summary: 'Create a task',
  body: TaskCreate,
  status: 201,
  response: Task,
  errors: ['PRODUCT_NOT_INSTALLED', 'TASK_TYPE_UNKNOWN', 'SETTINGS_INVALID', 'SCHEDULE_INVALID', 'SCOPE_INVALID', 'SECRET_LITERAL_REFUSED', 'SECRET_NOT_FOUND', 'SECRET_REFERENCE_REFUSED'],
});
export const TaskExportQuery = Type.Object({ ids: Type.Optional(Type.String({ maxLength: 100_000, description: 'Comma-separated task ids; all tasks when absent' })) }, { additionalProperties: false });
export const exportTasks = operation({
  id: 'exportTasks',
  method: 'GET',
  path: '/tasks/export',
  tag: 'tasks',
  summary: 'Export tasks as a portable JSON document (secret references only)',
  query: TaskExportQuery,
  response: TaskExport,
});
export const importTasks = operation({
  id: 'importTasks',
  method: 'POST',
  path: '/tasks/import',
  tag: 'tasks',
  summary: 'Import tasks from an export document; all or nothing',
  // Checked by the service against TaskExport, so that a wrong document gets IMPORT_INVALID with its issues.
  body: Type.Unknown({ description: 'A document of exportTasks' }),
  status: 201,
  response: Type.Array(Task),
  errors: ['IMPORT_INVALID'],
});
export const getTask = operation({ id: 'getTask', method: 'GET', path: '/tasks/{id}', tag: 'tasks', summary: 'One task', params: IdParams, response: Task });
export const updateTask = operation({
  id: 'updateTask',
  method: 'PATCH',
  path: '/tasks/{id}',
  tag: 'tasks',
  summary: 'Change a task (settings, schedule, scope, name, enabled)',
  params: IdParams,
  body: TaskUpdate,
  response: Task,
  errors: ['SETTINGS_INVALID', 'SCHEDULE_INVALID', 'SCOPE_INVALID', 'SECRET_LITERAL_REFUSED', 'SECRET_NOT_FOUND', 'SECRET_REFERENCE_REFUSED'],
});
export const deleteTask = operation({ id: 'deleteTask', method: 'DELETE', path: '/tasks/{id}', tag: 'tasks', summary: 'Delete a task; agents drop it at their next contact', params: IdParams, status: 204, response: null });
export const enableTask = operation({ id: 'enableTask', method: 'POST', path: '/tasks/{id}/enable', tag: 'tasks', summary: 'Enable a task', params: IdParams, response: Task });
export const disableTask = operation({ id: 'disableTask', method: 'POST', path: '/tasks/{id}/disable', tag: 'tasks', summary: 'Disable a task', params: IdParams, response: Task });
export const TaskCopyBody = Type.Object({ name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) }, { additionalProperties: false });
export const copyTask = operation({ id: 'copyTask', method: 'POST', path: '/tasks/{id}/copy', tag: 'tasks', summary: 'Copy a task', params: IdParams, body: TaskCopyBody, status: 201, response: Task });

/** How many devices one run-now may name. */
export const RUN_NOW_DEVICES_MAX = 10_000;
export const RunNowBody = Type.Object(
  {
    expiryMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 525600 })),
    deviceIds: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 100 }), {
        minItems: 1,
        maxItems: RUN_NOW_DEVICES_MAX,
        description: 'Run only on these devices; each must be a current target the caller may reach (else DEVICE_NOT_TARGETED)',
      }),
    ),
    onlyFailed: Type.Optional(Type.Boolean({ description: 'Run only on targets whose latest run failed or timed out (with deviceIds: those of them)' })),
  },
  { additionalProperties: false },
);
export type RunNowBody = Static<typeof RunNowBody>;
export const runTaskNow = operation({
  id: 'runTaskNow',
  method: 'POST',
  path: '/tasks/{id}/run',
  tag: 'tasks',
  summary: 'Run now on every target (or the devices given, or those whose latest run failed); offline targets get it at next contact until expiry',
  params: IdParams,
  body: RunNowBody,
  status: 202,
  response: RunNowResult,
  errors: ['DEVICE_NOT_TARGETED'],
});
export const StopResult = Type.Object({ cancelledPending: Type.Integer({ minimum: 0 }), signalled: Type.Integer({ minimum: 0 }) }, { additionalProperties: false });
export type StopResult = Static<typeof StopResult>;
export const stopTask = operation({ id: 'stopTask', method: 'POST', path: '/tasks/{id}/stop', tag: 'tasks', summary: 'Stop the task where it runs and cancel undelivered run-nows', params: IdParams, response: StopResult });
export const getTaskProgress = operation({ id: 'getTaskProgress', method: 'GET', path: '/tasks/{id}/progress', tag: 'tasks', summary: 'How many target devices are in each state', params: IdParams, response: TaskProgress });
export const RunRequestParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }), requestId: Type.String({ minLength: 1, maxLength: 100 }) });
export const getRunNowProgress = operation({
  id: 'getRunNowProgress',
  method: 'GET',
  path: '/tasks/{id}/run-requests/{requestId}/progress',
  tag: 'tasks',
  summary: 'Progress of one run-now (its requestId): the devices it was given to by state, and apart those that joined the targets since',
  params: RunRequestParams,
  response: RunNowProgress,
});

// --- Results and targets ------------------------------------------------------------------

/** How many device ids one read of results may name. */
export const RESULT_DEVICE_IDS_MAX = 1000;
export const ResultListQuery = Type.Object(
  {
    ...PageQuery,
    state: Type.Optional(RunStateSchema),
    search: Type.Optional(Type.String({ maxLength: 200, description: 'Part of the device name or host name (case-insensitive)' })),
    deviceIds: Type.Optional(Type.String({ minLength: 1, maxLength: 110_000, description: `Comma-separated device ids (at most ${RESULT_DEVICE_IDS_MAX}): only their results (the rows a live update names)` })),
    output: Type.Optional(Type.Boolean({ description: 'Include output tails (default true); a list on screen leaves them out and reads one run for its output' })),
  },
  { additionalProperties: false },
);
export type ResultListQuery = Static<typeof ResultListQuery>;
/** The latest run of a task on one device, with the device's names. */
export const TaskResult = Type.Object({ ...Run.properties, deviceName: Type.String(), hostname: Type.String() }, { additionalProperties: false });
export type TaskResult = Static<typeof TaskResult>;
const ResultPageBase = Page(TaskResult);
export const TaskResultPage = Type.Object(
  {
    ...ResultPageBase.properties,
    /** How many devices of the whole task (not only this page or filter) have their latest run in each state. */
    states: Type.Record(Type.String(), Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export type TaskResultPage = Static<typeof TaskResultPage>;
export const listTaskResults = operation({
  id: 'listTaskResults',
  method: 'GET',
  path: '/tasks/{id}/results',
  tag: 'tasks',
  summary: 'The latest run on each device, with output tail, by device name; with the count of each state over the whole task',
  params: IdParams,
  query: ResultListQuery,
  response: TaskResultPage,
});
export const ResultExportQuery = Type.Object({ state: Type.Optional(RunStateSchema), search: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false });
export const exportTaskResults = operation({
  id: 'exportTaskResults',
  method: 'GET',
  path: '/tasks/{id}/results/export',
  tag: 'tasks',
  summary: 'Every result the filter matches, as CSV (streamed; no output tails)',
  params: IdParams,
  query: ResultExportQuery,
  response: null,
  produces: ['text/csv'],
});

export const TargetListQuery = Type.Object(
  { ...PageQuery, search: Type.Optional(Type.String({ maxLength: 200, description: 'Part of the device name or host name (case-insensitive)' })) },
  { additionalProperties: false },
);
export const TaskTarget = Type.Object(
  {
    id: Type.String(),
    groupId: Type.String(),
    name: Type.String(),
    hostname: Type.String(),
    osPlatform: Type.String(),
    osName: Type.String(),
    tags: Type.Array(Type.String()),
    products: Type.Array(Type.String()),
  },
  { additionalProperties: false },
);
export type TaskTarget = Static<typeof TaskTarget>;
export const listTaskTargets = operation({
  id: 'listTaskTargets',
  method: 'GET',
  path: '/tasks/{id}/targets',
  tag: 'tasks',
  summary: 'The devices the task targets now (that the caller may see), by name',
  params: IdParams,
  query: TargetListQuery,
  response: Page(TaskTarget),
});

// --- Schedules ------------------------------------------------------------------------------

export const SchedulePreviewBody = Type.Object(
  {
    schedule: Schedule,
    count: Type.Optional(Type.Integer({ minimum: 1, maximum: 50, description: 'How many fire times (default 5)' })),
    timeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'The zone of a "local" schedule (default UTC): the browser\'s, say' })),
  },
  { additionalProperties: false },
);
export type SchedulePreviewBody = Static<typeof SchedulePreviewBody>;
export const SchedulePreview = Type.Object(
  {
    /** The next fire times of the time triggers, earliest first (ISO instants). */
    fires: Type.Array(Type.String({ format: 'date-time' })),
    /** The zone the wall-clock fields were read in. */
    timeZone: Type.String(),
    /** What is wrong with the schedule (empty when it is valid). */
    issues: Type.Array(Type.String()),
  },
  { additionalProperties: false },
);
export type SchedulePreview = Static<typeof SchedulePreview>;
export const previewSchedule = operation({
  id: 'previewSchedule',
  method: 'POST',
  path: '/schedules/preview',
  tag: 'tasks',
  summary: 'The next fire times of a schedule (before the task is saved), and what is wrong with it',
  body: SchedulePreviewBody,
  response: SchedulePreview,
});

// --- Runs -----------------------------------------------------------------------------------

export const RunListQuery = Type.Object(
  {
    ...PageQuery,
    taskId: Type.Optional(Type.String({ maxLength: 100 })),
    deviceId: Type.Optional(Type.String({ maxLength: 100 })),
    requestId: Type.Optional(Type.String({ maxLength: 100 })),
    state: Type.Optional(RunStateSchema),
  },
  { additionalProperties: false },
);
export type RunListQuery = Static<typeof RunListQuery>;
export const listRuns = operation({ id: 'listRuns', method: 'GET', path: '/runs', tag: 'runs', summary: 'Runs, newest first', query: RunListQuery, response: Page(Run) });
export const getRun = operation({ id: 'getRun', method: 'GET', path: '/runs/{id}', tag: 'runs', summary: 'One run', params: IdParams, response: Run });
