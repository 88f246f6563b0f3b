/**
 * `task run --watch` and `task progress --watch`: poll a progress until it is finished: for
 * `task progress`, every target's latest run is final; for `task run`, the run-now's own runs
 * on the devices it was given to (devices that joined the targets since are shown apart and
 * not waited for). On a terminal, one line redrawn in place with a bar; otherwise a line
 * each time the counts change, which reads well in CI logs.
 */
import type { RunNowProgress, TaskProgress } from '@garrison/protocol';
import { ApiError } from './client.ts';

/** Display order and labels of the states. */
const STATES: readonly [string, string][] = [
  ['succeeded', 'succeeded'],
  ['succeeded_with_warnings', 'warnings'],
  ['failed', 'failed'],
  ['timed_out', 'timed out'],
  ['cancelled', 'cancelled'],
  ['skipped', 'skipped'],
  ['running', 'running'],
  ['scheduled', 'scheduled'],
  ['pending', 'pending'],
];
const FINAL = ['succeeded', 'succeeded_with_warnings', 'failed', 'timed_out', 'cancelled', 'skipped'];
export const FAILED_STATES = ['failed', 'timed_out', 'cancelled', 'skipped'];

export function finishedCount(p: TaskProgress): number {
  return FINAL.reduce((n, s) => n + (p.states[s] ?? 0), 0);
}

/** "succeeded 3, failed 1, running 2, not run 4": the non-zero counts. */
export function stateCounts(p: TaskProgress): string {
  const parts = STATES.filter(([s]) => (p.states[s] ?? 0) > 0).map(([s, label]) => `${label} ${p.states[s]}`);
  if (p.notRun > 0) parts.push(`not run ${p.notRun}`);
  return parts.join(', ') || 'no runs';
}

export function progressBar(done: number, total: number, width = 24): string {
  const filled = total > 0 ? Math.round((done / total) * width) : 0;
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

/** The line shown for a progress: with a bar on a terminal. */
export function progressLine(p: TaskProgress, opts: { bar?: boolean } = {}): string {
  const done = finishedCount(p);
  const head = `${done}/${p.targets} finished`;
  return `${opts.bar ? `${progressBar(done, p.targets)} ` : ''}${head}: ${stateCounts(p)}`;
}

/** How many devices joined the targets after a run-now, and their states ("succeeded 1, not run 1"). */
export function joinedLater(p: TaskProgress | RunNowProgress): { count: number; states: string } {
  if (!('joinedLater' in p) || p.joinedLater.targets === 0) return { count: 0, states: '' };
  return { count: p.joinedLater.targets, states: stateCounts({ ...p.joinedLater, taskId: p.taskId, finished: false }) };
}

/** " (+2 joined the targets later, not in this run: succeeded 1, not run 1)", or "". */
export function joinedLaterText(p: TaskProgress | RunNowProgress): string {
  const later = joinedLater(p);
  return later.count ? ` (+${later.count} joined the targets later, not in this run: ${later.states})` : '';
}

/** 0 when every target succeeded (warnings included), else 1. */
export function progressExitCode(p: TaskProgress): number {
  if (!p.finished || p.targets === 0) return 1;
  return FAILED_STATES.some((s) => (p.states[s] ?? 0) > 0) ? 1 : 0;
}

export interface WatchOptions {
  tty: boolean;
  out(text: string): void;
  intervalMs?: number;
  timeoutMs: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

export interface WatchResult<P extends TaskProgress = TaskProgress> {
  progress: P;
  timedOut: boolean;
}

/** Polls until finished or timed out; transient API errors (server restarting) are waited out. */
export async function watchProgress<P extends TaskProgress>(fetch: () => Promise<P>, o: WatchOptions): Promise<WatchResult<P>> {
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = o.now ?? Date.now;
  const start = now();
  const deadline = start + o.timeoutMs;
  let last: P | undefined;
  let lastLine = '';
  for (;;) {
    try {
      last = await fetch();
    } catch (err) {
      if (!(err instanceof ApiError) || !['UNAVAILABLE', 'INTERNAL', 'RATE_LIMITED'].includes(err.code) || !last) throw err;
    }
    const p = last!;
    const done = p.finished || p.targets === 0;
    if (o.tty) {
      const secs = Math.floor((now() - start) / 1000);
      o.out(`\r\x1b[K${progressLine(p, { bar: true })}${joinedLaterText(p)}  ${secs}s`);
      if (done) o.out('\n');
    } else {
      const line = progressLine(p) + joinedLaterText(p);
      if (line !== lastLine) o.out(`${line}\n`);
      lastLine = line;
    }
    if (done) return { progress: p, timedOut: false };
    if (now() >= deadline) {
      if (o.tty) o.out('\n');
      return { progress: p, timedOut: true };
    }
    await sleep(Math.min(o.intervalMs ?? 500, Math.max(0, deadline - now())));
  }
}
