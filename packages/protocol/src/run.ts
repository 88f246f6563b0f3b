import { Type, type Static } from 'typebox';

export const RunState = {
  pending: 'pending',
  scheduled: 'scheduled',
  running: 'running',
  succeeded: 'succeeded',
  succeededWithWarnings: 'succeeded_with_warnings',
  failed: 'failed',
  timedOut: 'timed_out',
  cancelled: 'cancelled',
  skipped: 'skipped',
} as const;
export type RunState = (typeof RunState)[keyof typeof RunState];
export const runStates: readonly RunState[] = Object.values(RunState);
export const finalRunStates: readonly RunState[] = ['succeeded', 'succeeded_with_warnings', 'failed', 'timed_out', 'cancelled', 'skipped'];
export function isFinalRunState(state: RunState): boolean {
  return finalRunStates.includes(state);
}
export const RunStateSchema = Type.Union([
  Type.Literal('pending'),
  Type.Literal('scheduled'),
  Type.Literal('running'),
  Type.Literal('succeeded'),
  Type.Literal('succeeded_with_warnings'),
  Type.Literal('failed'),
  Type.Literal('timed_out'),
  Type.Literal('cancelled'),
  Type.Literal('skipped'),
]);

/** What made a run start. */
export const RunCause = Type.String({ minLength: 1, maxLength: 40, description: 'A trigger type, "run-now", or "retry"' });

/** Output tails are bounded on the agent and again on the server. */
export const OUTPUT_TAIL_MAX_BYTES = 16 * 1024;

export const Run = Type.Object({
  id: Type.String(),
  taskId: Type.String(),
  deviceId: Type.String(),
  state: RunStateSchema,
  percent: Type.Union([Type.Integer({ minimum: 0, maximum: 100 }), Type.Null()]),
  attempt: Type.Integer({ minimum: 1 }),
  cause: Type.String(),
  requestId: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
  startedAt: Type.Union([Type.String(), Type.Null()]),
  endedAt: Type.Union([Type.String(), Type.Null()]),
  exitCode: Type.Union([Type.Integer(), Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()]),
  outputTail: Type.Union([Type.String(), Type.Null()]),
  updatedAt: Type.String(),
});
export type Run = Static<typeof Run>;

/** Per task: how many target devices are in each state (by their latest run). */
export const TaskProgress = Type.Object({
  taskId: Type.String(),
  targets: Type.Integer(),
  /** Targets with no run yet. */
  notRun: Type.Integer(),
  states: Type.Record(Type.String(), Type.Integer()),
  /** True when every target's latest run is in a final state. */
  finished: Type.Boolean(),
});
export type TaskProgress = Static<typeof TaskProgress>;

/**
 * The progress of one run-now: the devices it was given to, by the state of the run it gave
 * each (`targets`, `states`, `finished` as in TaskProgress, so that a watch of the task and
 * of a run-now read alike). Devices that are targets of the task now but joined after the
 * run-now are not part of it and are counted apart in `joinedLater`, by their latest run of
 * the task, if any: a watch of the run-now does not wait for them.
 */
export const RunNowProgress = Type.Object({
  taskId: Type.String(),
  requestId: Type.String(),
  createdAt: Type.String(),
  expiresAt: Type.String(),
  targets: Type.Integer(),
  /** Always 0: every device of a run-now has its run from the start. */
  notRun: Type.Integer(),
  states: Type.Record(Type.String(), Type.Integer()),
  finished: Type.Boolean(),
  joinedLater: Type.Object({
    targets: Type.Integer(),
    notRun: Type.Integer(),
    states: Type.Record(Type.String(), Type.Integer()),
  }),
});
export type RunNowProgress = Static<typeof RunNowProgress>;
