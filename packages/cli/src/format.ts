/** Human-readable output: aligned tables, key-value blocks, times and durations. */
import { UsageError } from './usage-error.ts';

export type Cell = string | number | boolean | null | undefined;

export function cellText(v: Cell): string {
  if (v === null || v === undefined || v === '') return '-';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}

/** An aligned table with a header row; the last column is not padded. */
export function table(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const text = rows.map((r) => headers.map((_, i) => cellText(r[i]).replace(/\s*\n\s*/g, ' ')));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...text.map(line)].join('\n') + '\n';
}

/** "Key:  value" lines, keys aligned. */
export function keyValues(pairs: readonly (readonly [string, Cell])[]): string {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${cellText(v)}`).join('\n') + '\n';
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** An instant as local wall-clock time, "2026-03-01 14:05:09". */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '-';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** "12s ago", "5m ago", "3h ago", "2d ago"; the time itself beyond a week. */
export function formatAgo(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  if (s < 7 * 86400) return `${Math.floor(s / 86400)}d ago`;
  return formatTime(iso);
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** "30m", "1h", "7d", "2w", "90s" → milliseconds, or null if not a duration. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+)\s*([smhdw])$/i.exec(text.trim());
  return m ? Number(m[1]) * UNIT_MS[m[2]!.toLowerCase()]! : null;
}

/** --since / --until: an ISO date-time, a date, or a duration back from now ("1h", "7d"). */
export function parseInstantOption(text: string, option: string, now = Date.now()): string {
  const ms = parseDuration(text);
  if (ms !== null) return new Date(now - ms).toISOString();
  const d = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text.trim()) || Number.isNaN(d.getTime())) {
    throw new UsageError(`${option} "${text}" is neither a date-time (2026-03-01T10:00Z) nor a duration back from now (30m, 1h, 7d)`);
  }
  return d.toISOString();
}

/** A whole number option within bounds. */
export function parseIntOption(text: string | undefined, option: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (!/^-?\d+$/.test(t) || Number(t) < min || Number(t) > max) {
    throw new UsageError(`${option} must be a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}, not "${text}"`);
  }
  return Number(t);
}

/** "0,3" → [0, 3]. */
export function parseIntList(text: string | undefined, option: string): number[] | undefined {
  if (text === undefined) return undefined;
  const parts = text.split(',').map((s) => s.trim());
  if (parts.some((p) => !/^-?\d+$/.test(p))) throw new UsageError(`${option} must be a comma-separated list of whole numbers, not "${text}"`);
  return parts.map(Number);
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** Every line of a text, indented. */
export function indent(text: string, prefix = '  '): string {
  return text
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => `${prefix}${l}`)
    .join('\n');
}
