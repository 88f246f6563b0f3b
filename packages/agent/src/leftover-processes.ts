/**
 * Ending what is left of an interrupted attempt before the next one starts.
 *
 * planLeftoverEnd() is the decision, pure, from a ProcessRecord and what can be observed of
 * its pid now, for every platform (Windows is decided here and unit-tested on Linux):
 *
 * - POSIX, a group leader (the script executor spawns detached): if the leader is the very
 *   process recorded (same start time, same boot), the group is signalled. If the leader is
 *   gone but its group still has members in the same boot, the group is signalled only on
 *   Linux and only if a living member's environment (/proc/<pid>/environ) holds the record's
 *   GARRISON_PROCESS_TAG, which the executor put in the environment of the process it started
 *   and which its children inherit. A group id cannot be handed out again as a new pid while
 *   any member of the group lives, so in principle living members are the attempt's own; but
 *   once every member has exited, pids may wrap round and a new group may take the same id
 *   (a daemon whose first fork led it and exited), which nothing else tells apart. A group
 *   that cannot be shown to be the attempt's (no member carries the tag, the environments
 *   cannot be read, a record without a tag, or not Linux: macOS pids wrap at 99999) is
 *   'unverified': left alone, and the run not resumed. A leader pid alive with another start
 *   time is a new process: left alone.
 * - A live pid that cannot be shown to be the recorded process (no start time on either side)
 *   is never signalled: 'unverified', counted as surviving, so the run is not resumed.
 * - POSIX, not a group leader: the process alone.
 * - Windows: `taskkill /T /F /PID` on the recorded process, if it is still the one recorded
 *   (creation time). Windows finds the tree by parent pid, so children whose parent has
 *   already exited are not found: a weakness of /T that a job object would fix (Node cannot
 *   create one without native code).
 *
 * endLeftover() carries it out: SIGTERM, wait (bounded) for the group to be gone, SIGKILL,
 * wait again (bounded). Zombies count as gone (a killed process whose parent, the dead
 * agent, is gone waits for init to reap it, which may take seconds).
 *
 * Adoption instead of ending: a resumed run could in principle wait for the earlier attempt's
 * process instead of starting a new one, but only a parent learns a child's exit status, and
 * the child's output pipes went with the dead agent (its next write gets SIGPIPE). So no task
 * type can adopt cleanly, and none does: what is left is ended, and the event says so.
 */
import { spawn } from 'node:child_process';
import { linuxEnvironHas, linuxGroupMembers, observeProcess, parseLstart, PROCESS_TAG_ENV, ProcessVerdict, judgeProcess, type ProcessObservation } from '@garrison/protocol/process-identity';
import type { ProcessRecord } from './process-ledger.ts';

export type LeftoverPlan =
  | { action: 'none'; why: 'gone' | 'reused' | 'other-host' | 'unverified' }
  | { action: 'signal-group'; pgid: number }
  | { action: 'signal-process'; pid: number }
  | { action: 'taskkill'; pid: number };

export interface LeftoverObservation {
  /** The recorded pid now. */
  leader: ProcessObservation;
  /** Whether the recorded process group still has living members (POSIX group leaders only; null: unknown). */
  groupAlive: boolean | null;
  /**
   * Whether a living member of the group carries the record's process tag in its environment
   * (Linux group leaders with a tagged record; false: none does, null: not known or unreadable).
   */
  groupTagged?: boolean | null;
}

/**
 * When the observed start time (macOS `ps` lstart, Windows FILETIME) began, in ms since the
 * epoch; null when it cannot be told (Linux clock ticks need the boot time).
 */
export function startTimeMs(startTime: string | null, platform: NodeJS.Platform): number | null {
  if (!startTime) return null;
  if (platform === 'win32') {
    if (!/^\d{1,20}$/.test(startTime)) return null;
    // 100 ns units since 1601-01-01.
    return Number(BigInt(startTime) / 10_000n - 11_644_473_600_000n);
  }
  if (platform === 'linux') return null;
  return parseLstart(startTime);
}

/** Slack between a process's start and its record (lstart has whole seconds). */
const RECORD_SLACK_MS = 2000;

export function planLeftoverEnd(rec: ProcessRecord, obs: LeftoverObservation, platform: NodeJS.Platform = rec.platform): LeftoverPlan {
  let verdict = judgeProcess(rec, obs.leader);
  if (verdict === ProcessVerdict.otherHost) return { action: 'none', why: 'other-host' };
  if (verdict === ProcessVerdict.same && !rec.startTime) {
    // judgeProcess takes a live pid for the recorded process when the record has no start time;
    // signalling on that guess could end an unrelated process (after a reboot outside Linux
    // nothing else tells them apart, and Windows hands pids out again at once), so here the pid
    // must be shown to be it. On Linux the start time is read in the tick of the spawn and is
    // missing only when the process had already exited (a zombie): a live pid now is another
    // process. Elsewhere a live pid is it only if it started by the time of the record; one
    // whose start time cannot be read (ps or PowerShell failed, an unknown date format) is left
    // alone and the run is not resumed ('unverified'), since the work must not happen twice.
    const began = platform === 'linux' ? null : startTimeMs(obs.leader.startTime, platform);
    if (platform === 'linux' || (began !== null && began > Date.parse(rec.recordedAt) + RECORD_SLACK_MS)) verdict = ProcessVerdict.reused;
    else if (began === null || Number.isNaN(Date.parse(rec.recordedAt))) return { action: 'none', why: 'unverified' };
  }
  if (platform === 'win32') {
    if (verdict === ProcessVerdict.same) return { action: 'taskkill', pid: rec.pid };
    return { action: 'none', why: verdict === ProcessVerdict.reused ? 'reused' : 'gone' };
  }
  if (rec.group) {
    if (verdict === ProcessVerdict.same) return { action: 'signal-group', pgid: rec.pid };
    if (verdict === ProcessVerdict.reused) return { action: 'none', why: 'reused' };
    // The leader is gone. A reboot (another boot id) ended the whole group too.
    const rebooted = rec.bootId && obs.leader.bootId && rec.bootId !== obs.leader.bootId;
    if (rebooted || !obs.groupAlive) return { action: 'none', why: 'gone' };
    // Without boot ids a reboot cannot be told: after one, a group with this id is some other
    // program's. Within one boot, pids may have wrapped round since the group's last member
    // of the attempt exited: only a member carrying the attempt's tag (Linux) shows the group
    // is still the attempt's. Otherwise it is left alone, and the run is not resumed.
    if (!rec.bootId || !obs.leader.bootId) return { action: 'none', why: 'unverified' };
    if (platform !== 'linux' || !rec.envTag || obs.groupTagged !== true) return { action: 'none', why: 'unverified' };
    return { action: 'signal-group', pgid: rec.pid };
  }
  if (verdict === ProcessVerdict.same) return { action: 'signal-process', pid: rec.pid };
  return { action: 'none', why: verdict === ProcessVerdict.reused ? 'reused' : 'gone' };
}

export type LeftoverOutcome =
  /** Nothing of it was running any more. */
  | 'already-gone'
  /** The pid belongs to another process now: left alone. */
  | 'pid-reused'
  /** Recorded on another host: cannot be checked from here. */
  | 'other-host'
  /** Ended by SIGTERM (or taskkill). */
  | 'ended'
  /** Needed SIGKILL. */
  | 'killed'
  /** Still running after SIGKILL (or the signal was refused). */
  | 'survived';

export interface LeftoverResult {
  record: ProcessRecord;
  plan: LeftoverPlan;
  outcome: LeftoverOutcome;
  detail?: string;
}

export interface EndOptions {
  /** Between SIGTERM and SIGKILL. */
  graceMs?: number;
  /** After SIGKILL, how long to wait for the group to be gone before calling it survived. */
  killWaitMs?: number;
}

/** Whether process group `pgid` has living members (zombies excluded where that can be seen). */
export function groupAlive(pgid: number): boolean {
  const members = linuxGroupMembers(pgid);
  if (members) return members.length > 0;
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Linux: whether a living member of group `pgid` has `NAME=tag` in its environment; null when
 * none has it and some could not be read (another user's process for a non-root agent).
 */
export function groupCarriesTag(pgid: number, tag: string): boolean | null {
  const members = linuxGroupMembers(pgid);
  if (!members) return null;
  const entry = `${PROCESS_TAG_ENV}=${tag}`;
  let unreadable = false;
  for (const m of members) {
    const has = linuxEnvironHas(m.pid, entry);
    if (has) return true;
    if (has === null) unreadable = true;
  }
  return unreadable ? null : false;
}

async function observe(rec: ProcessRecord): Promise<LeftoverObservation> {
  const leader = await observeProcess(rec.pid);
  const alive = rec.group && process.platform !== 'win32' ? groupAlive(rec.pid) : null;
  // Read only where the plan needs it: a group whose leader is gone.
  const tagged = alive && !leader.alive && rec.envTag && process.platform === 'linux' ? groupCarriesTag(rec.pid, rec.envTag) : null;
  return { leader, groupAlive: alive, groupTagged: tagged };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() >= deadline) return false;
    await pause(50);
  }
}

function signal(plan: LeftoverPlan, sig: NodeJS.Signals): string | null {
  const target = plan.action === 'signal-group' ? -plan.pgid : plan.action === 'signal-process' ? plan.pid : null;
  if (target === null) return null;
  try {
    process.kill(target, sig);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ESRCH' ? null : `${sig} refused: ${code ?? (err as Error).message}`;
  }
}

function taskkill(pid: number): Promise<string | null> {
  return new Promise((resolve) => {
    const k = spawn('taskkill', ['/T', '/F', '/PID', String(pid)], { stdio: 'ignore', windowsHide: true });
    k.on('error', (err) => resolve(`taskkill failed: ${err.message}`));
    k.on('exit', () => resolve(null));
  });
}

/** Ends what is left of one recorded process (its group on POSIX, its tree on Windows). */
export async function endLeftover(rec: ProcessRecord, opts: EndOptions = {}): Promise<LeftoverResult> {
  const graceMs = opts.graceMs ?? 5000;
  const killWaitMs = opts.killWaitMs ?? 5000;
  const plan = planLeftoverEnd(rec, await observe(rec), process.platform);
  if (plan.action === 'none' && plan.why === 'unverified') {
    // Not ended, and not known to be gone: counted as surviving, so the run is not resumed beside it.
    return { record: rec, plan, outcome: 'survived', detail: 'its pid or process group is in use, but nothing tells whether by the recorded process (its start time or the boot cannot be read, or no member of its group carries the attempt\'s GARRISON_PROCESS_TAG): left alone' };
  }
  if (plan.action === 'none') return { record: rec, plan, outcome: plan.why === 'gone' ? 'already-gone' : plan.why === 'reused' ? 'pid-reused' : 'other-host' };
  if (plan.action === 'taskkill') {
    const problem = await taskkill(plan.pid);
    const gone = await waitUntil(async () => judgeProcess(rec, await observeProcess(rec.pid)) !== ProcessVerdict.same, killWaitMs);
    return { record: rec, plan, outcome: gone ? 'ended' : 'survived', ...(problem ? { detail: problem } : {}) };
  }
  const isGone = async () => (plan.action === 'signal-group' ? !groupAlive(plan.pgid) : judgeProcess(rec, await observeProcess(plan.pid)) !== ProcessVerdict.same);
  const termProblem = signal(plan, 'SIGTERM');
  if (await waitUntil(isGone, graceMs)) return { record: rec, plan, outcome: 'ended' };
  const killProblem = signal(plan, 'SIGKILL');
  if (await waitUntil(isGone, killWaitMs)) return { record: rec, plan, outcome: 'killed' };
  const detail = killProblem ?? termProblem;
  return { record: rec, plan, outcome: 'survived', ...(detail ? { detail } : {}) };
}

/** One line for events and reasons: what was found of an earlier attempt and what was done. */
export function describeLeftover(r: LeftoverResult): string {
  const what = r.record.group ? `process group ${r.record.pid} (${r.record.command})` : `process ${r.record.pid} (${r.record.command})`;
  switch (r.outcome) {
    case 'already-gone':
      return `${what} of attempt ${r.record.attempt} had already ended`;
    case 'pid-reused':
      return `${what} of attempt ${r.record.attempt} had ended (its pid now belongs to another process, left alone)`;
    case 'other-host':
      return `${what} of attempt ${r.record.attempt} was started on host ${r.record.hostname}: not checked`;
    case 'ended':
      return `${what} of attempt ${r.record.attempt} was still running: ended`;
    case 'killed':
      return `${what} of attempt ${r.record.attempt} was still running: killed (it ignored SIGTERM)`;
    case 'survived':
      if (r.plan.action === 'none') return `${what} of attempt ${r.record.attempt} may still be running and was not ended${r.detail ? ` (${r.detail})` : ''}`;
      return `${what} of attempt ${r.record.attempt} is still running and could not be ended${r.detail ? ` (${r.detail})` : ''}`;
  }
}
