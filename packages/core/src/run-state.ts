/**
 * Run state rules shared by the server (which stores runs) and the agent (which reports them).
 *
 * Agents report a run's state with a per-run sequence number that grows with every report.
 * Reports can arrive twice (a resend after a reconnect) or out of order (a queued "running"
 * flushed after the final result), so the server applies a report only if it is newer than what
 * it has and the run is not already final. Final states are terminal: once a run has
 * succeeded, failed, timed out, been cancelled or skipped, no later report changes it — a
 * retry is a new run (attempt + 1), not a state change of the old one. The trade-off: a
 * late, genuinely newer final report (say the agent finished just as an administrator
 * cancelled) loses to the one recorded first; the event log keeps both.
 *
 * Exit codes map to results through the task type's lists of success and warning codes;
 * no exit code at all (killed by a signal, never started) is a failure.
 *
 * Progress per task counts target devices by the state of their latest run, the view an
 * ePO/KSC administrator expects: "120 succeeded, 3 failed, 17 not run yet".
 */
import { isFinalRunState, runStates, type RunState, type TaskProgress } from '@garrison/protocol';

export interface RunStateReport {
  state: RunState;
  seq: number;
}

/**
 * Should `incoming` replace `current`? Yes when there is no current state; otherwise only when
 * incoming is strictly newer (a report with an equal sequence number is a duplicate) and the
 * current state is not final (final states are terminal, so nothing regresses).
 */
export function shouldApplyReport(current: RunStateReport | null, incoming: RunStateReport): boolean {
  if (current === null) return true;
  if (!(incoming.seq > current.seq)) return false;
  return !isFinalRunState(current.state);
}

export type ExitClassification = 'succeeded' | 'succeeded_with_warnings' | 'failed';

/**
 * Classifies a process exit. Success codes win over warning codes when a code is in both; an
 * empty success list means the usual convention, [0]; a null exit code is a failure.
 */
export function classifyExit(exitCode: number | null, success: readonly number[], warning: readonly number[]): ExitClassification {
  if (exitCode === null) return 'failed';
  const successCodes = success.length > 0 ? success : [0];
  if (successCodes.includes(exitCode)) return 'succeeded';
  if (warning.includes(exitCode)) return 'succeeded_with_warnings';
  return 'failed';
}

/**
 * Counts a task's target devices by the state of their latest run. Devices in the map that are
 * not targets (no longer in scope) are ignored; duplicate target ids count once. `finished`
 * is true when there is at least one target and every target has a latest run in a final
 * state (a target that has not run yet is not finished).
 */
/**
 * The progress of one run-now: `given` holds the state of the run it gave each device, and
 * `targetsNow` the task's targets today; those of them it was not given (they joined later)
 * are counted apart by their latest run of the task.
 */
export function summarizeRunNowProgress(
  taskId: string,
  given: ReadonlyMap<string, RunState>,
  targetsNow: readonly string[],
  latestStateByDevice: ReadonlyMap<string, RunState>,
): TaskProgress & { joinedLater: Omit<TaskProgress, 'taskId' | 'finished'> } {
  const own = summarizeProgress(taskId, [...given.keys()], given);
  const later = summarizeProgress(taskId, targetsNow.filter((d) => !given.has(d)), latestStateByDevice);
  return { ...own, joinedLater: { targets: later.targets, notRun: later.notRun, states: later.states } };
}

export function summarizeProgress(
  taskId: string,
  targetDeviceIds: readonly string[],
  latestStateByDevice: ReadonlyMap<string, RunState>,
): TaskProgress {
  const states: Record<string, number> = {};
  for (const s of runStates) states[s] = 0;
  const targets = new Set(targetDeviceIds);
  let notRun = 0;
  let allFinal = true;
  for (const deviceId of targets) {
    const state = latestStateByDevice.get(deviceId);
    if (state === undefined) {
      notRun++;
      allFinal = false;
      continue;
    }
    states[state] = (states[state] ?? 0) + 1;
    if (!isFinalRunState(state)) allFinal = false;
  }
  return { taskId, targets: targets.size, notRun, states, finished: targets.size > 0 && allFinal };
}
