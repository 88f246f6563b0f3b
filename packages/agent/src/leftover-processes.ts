/**
 * Ending what is left of an interrupted attempt before the next one starts.
 *
 * planLeftoverEnd() is the decision, pure, from a ProcessRecord and what can be observed of
 * its pid now, for every platform (Windows is decided here and unit-tested on Linux):
 *
 * - POSIX, a group leader (the script executor spawns detached): if the leader is the very
 *   process recorded (same start time, same boot), or it is gone but its group still has
 *   members, the group is signalled. A group id cannot be handed out again as a new pid while
 *   any member of the group lives, so living members of a group whose leader is gone are the
 *   attempt's own. A leader pid alive with another start time is a new process: left alone.
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
import { linuxGroupMembers, observeProcess, ProcessVerdict, judgeProcess, type ProcessObservation } from '@garrison/protocol/process-identity';
import type { ProcessRecord } from './process-ledger.ts';

export type LeftoverPlan =
  | { action: 'none'; why: 'gone' | 'reused' | 'other-host' }
  | { action: 'signal-group'; pgid: number }
  | { action: 'signal-process'; pid: number }
  | { action: 'taskkill'; pid: number };

export interface LeftoverObservation {
  /** The recorded pid now. */
  leader: ProcessObservation;
  /** Whether the recorded process group still has living members (POSIX group leaders only; null: unknown). */
  groupAlive: boolean | null;
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
  const ms = Date.parse(startTime);
  return Number.isNaN(ms) ? null : ms;
}

/** Slack between a process's start and its record (lstart has whole seconds). */
const RECORD_SLACK_MS = 2000;

export function planLeftoverEnd(rec: ProcessRecord, obs: LeftoverObservation, platform: NodeJS.Platform = rec.platform): LeftoverPlan {
  let verdict = judgeProcess(rec, obs.leader);
  // Outside Linux the start time is not read in the tick of the spawn, so a record may lack it:
  // a live pid whose process started after the record was written is another process.
  const began = rec.startTime ? null : startTimeMs(obs.leader.startTime, platform);
  if (verdict === ProcessVerdict.same && began !== null && began > Date.parse(rec.recordedAt) + RECORD_SLACK_MS) verdict = ProcessVerdict.reused;
  if (verdict === ProcessVerdict.otherHost) return { action: 'none', why: 'other-host' };
  if (platform === 'win32') {
    if (verdict === ProcessVerdict.same) return { action: 'taskkill', pid: rec.pid };
    return { action: 'none', why: verdict === ProcessVerdict.reused ? 'reused' : 'gone' };
  }
  if (rec.group) {
    if (verdict === ProcessVerdict.same) return { action: 'signal-group', pgid: rec.pid };
    if (verdict === ProcessVerdict.reused) return { action: 'none', why: 'reused' };
    // The leader is gone. A reboot (another boot id) ended the whole group too.
    const rebooted = rec.bootId && obs.leader.bootId && rec.bootId !== obs.leader.bootId;
    if (!rebooted && obs.groupAlive) return { action: 'signal-group', pgid: rec.pid };
    return { action: 'none', why: 'gone' };
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

async function observe(rec: ProcessRecord): Promise<LeftoverObservation> {
  const leader = await observeProcess(rec.pid);
  return { leader, groupAlive: rec.group && process.platform !== 'win32' ? groupAlive(rec.pid) : null };
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
      return `${what} of attempt ${r.record.attempt} is still running and could not be ended${r.detail ? ` (${r.detail})` : ''}`;
  }
}
