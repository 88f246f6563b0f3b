/** Formatting shared by the pages: times, sizes, run states. */
import type { RunState } from '@garrison/protocol';

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function formatAgo(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const s = Math.round((now - new Date(iso).getTime()) / 1000);
  if (s < 0) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** Run states in the order progress bars show them, with their labels. */
export const RUN_STATE_ORDER: { state: RunState | 'notRun'; label: string }[] = [
  { state: 'succeeded', label: 'Succeeded' },
  { state: 'succeeded_with_warnings', label: 'Warnings' },
  { state: 'failed', label: 'Failed' },
  { state: 'timed_out', label: 'Timed out' },
  { state: 'cancelled', label: 'Cancelled' },
  { state: 'skipped', label: 'Skipped' },
  { state: 'running', label: 'Running' },
  { state: 'scheduled', label: 'Scheduled' },
  { state: 'pending', label: 'Pending' },
  { state: 'notRun', label: 'Not run' },
];

export function stateLabel(state: string): string {
  return RUN_STATE_ORDER.find((s) => s.state === state)?.label ?? state.replaceAll('_', ' ');
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString()} ${n === 1 ? one : many}`;
}

/** A duration in milliseconds, as "850 ms", "4.2 s", "3 min 5 s" or "2 h 10 min". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const total = Math.round(s);
  const m = Math.floor(total / 60);
  if (m < 60) return `${m} min ${total % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
