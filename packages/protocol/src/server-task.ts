import { Type, type Static } from 'typebox';
import { Schedule } from './schedule.ts';
import { finalRunStates, type RunState } from './run.ts';

/**
 * Server tasks (issue 6): work the administration server does itself (report distribution,
 * downloading updates into the repository, backup, database maintenance, installation
 * packages), scheduled with the same schedule model as client tasks.
 *
 * Of the schedule's triggers, a server task accepts the time triggers (once, interval, daily,
 * weekly, monthly, cron), on-demand, "after-task" (naming another server task) and
 * "repository-content" (new packages arrived in the master repository). "local" as the time
 * basis means the server's own time zone.
 */
export const SERVER_TASK_TRIGGERS = ['once', 'interval', 'daily', 'weekly', 'monthly', 'cron', 'on-demand', 'after-task', 'repository-content'] as const;

/** The run states of client tasks but "scheduled" (a server task run is claimed when due). */
export type ServerTaskRunState = Exclude<RunState, 'scheduled'>;
export const finalServerTaskRunStates: readonly ServerTaskRunState[] = finalRunStates.filter((s): s is ServerTaskRunState => s !== 'scheduled');

const Name = Type.String({ minLength: 1, maxLength: 200 });
const Settings = Type.Record(Type.String(), Type.Unknown(), { description: "Validated by the server task type's schema; credentials only as {\"$secret\": name}" });

export const ServerTask = Type.Object(
  {
    id: Type.String(),
    name: Name,
    description: Type.String(),
    type: Type.String(),
    settings: Settings,
    schedule: Schedule,
    enabled: Type.Boolean(),
    revision: Type.Integer(),
    /** When the schedule fires next (null: only on demand or on events). */
    nextRunAt: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String(),
    updatedAt: Type.String(),
  },
  { additionalProperties: false },
);
export type ServerTask = Static<typeof ServerTask>;

export const ServerTaskCreate = Type.Object(
  {
    name: Name,
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    type: Type.String({ minLength: 1, maxLength: 100 }),
    settings: Settings,
    schedule: Schedule,
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type ServerTaskCreate = Static<typeof ServerTaskCreate>;

export const ServerTaskUpdate = Type.Object(
  {
    name: Type.Optional(Name),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    settings: Type.Optional(Settings),
    schedule: Type.Optional(Schedule),
    enabled: Type.Optional(Type.Boolean()),
    /** Optimistic concurrency: refused with CONFLICT when the task has moved on. */
    revision: Type.Optional(Type.Integer()),
  },
  { additionalProperties: false },
);
export type ServerTaskUpdate = Static<typeof ServerTaskUpdate>;

export const ServerTaskRunStateSchema = Type.Union([
  Type.Literal('pending'),
  Type.Literal('running'),
  Type.Literal('succeeded'),
  Type.Literal('succeeded_with_warnings'),
  Type.Literal('failed'),
  Type.Literal('timed_out'),
  Type.Literal('cancelled'),
  Type.Literal('skipped'),
]);
const NullableString = Type.Union([Type.String(), Type.Null()]);

/** One execution of a server task. */
export const ServerTaskRun = Type.Object(
  {
    id: Type.String(),
    taskId: Type.String(),
    state: ServerTaskRunStateSchema,
    cause: Type.String({ description: 'What started it: a trigger type, "run-now", "retry", "missed" or "resumed"' }),
    attempt: Type.Integer(),
    percent: Type.Union([Type.Number(), Type.Null()]),
    message: Type.Union([Type.String(), Type.Null()], { description: 'The latest progress message' }),
    createdAt: Type.String(),
    startedAt: NullableString,
    endedAt: NullableString,
    summary: Type.Union([Type.String(), Type.Null()], { description: 'One line saying what the run did or why it failed' }),
    result: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()], { description: 'What the task type reports (counts, files written, sizes); never a secret' }),
    outputTail: Type.Union([Type.String(), Type.Null()], { description: "The tail of the run's log lines" }),
    createdBy: NullableString,
  },
  { additionalProperties: false },
);
export type ServerTaskRun = Static<typeof ServerTaskRun>;

export const ServerTaskTypeInfo = Type.Object(
  { type: Type.String(), name: Type.String(), description: Type.String(), settingsSchema: Type.Unknown({ description: "The JSON Schema of the type's settings" }) },
  { additionalProperties: false },
);
export type ServerTaskTypeInfo = Static<typeof ServerTaskTypeInfo>;

export const SERVER_TASK_EXPORT_FORMAT = 'garrison.server-tasks';
export const SERVER_TASK_EXPORT_VERSION = 1;

export const ExportedServerTask = Type.Object(
  {
    name: Name,
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    type: Type.String({ minLength: 1 }),
    settings: Settings,
    /** After-task triggers name the other task by name, re-linked on import. */
    schedule: Schedule,
    enabled: Type.Boolean(),
  },
  { additionalProperties: false },
);
export type ExportedServerTask = Static<typeof ExportedServerTask>;
export const ServerTaskExport = Type.Object(
  {
    format: Type.Literal(SERVER_TASK_EXPORT_FORMAT),
    version: Type.Literal(SERVER_TASK_EXPORT_VERSION),
    exportedAt: Type.String(),
    tasks: Type.Array(ExportedServerTask, { maxItems: 1000 }),
  },
  { additionalProperties: false },
);
export type ServerTaskExport = Static<typeof ServerTaskExport>;
