/**
 * Maintenance windows (ADR 0020): recurring periods, from the agent's policy, inside which
 * tasks limited to windows run and deployment installs happen. Pure: the windows, the instant
 * and the device's own zone come in.
 *
 * A window is "on each of `days`, from `start` for `durationMinutes`" in its time basis
 * ("local" or absent: the device's zone; "UTC"; an IANA zone), read as schedules read theirs
 * (zoned-time.ts): a start inside a spring-forward gap begins at the first instant after the
 * gap, an ambiguous one at the earlier instant. The duration is elapsed time, so a window may
 * run past midnight into the next day, and across the end of the week. Overlapping or
 * touching windows count as one for `end`. No windows at all means no restriction.
 */
import type { MaintenanceWindow } from '@garrison/protocol';
import { civilFromDayNumber, DAY_MS, localDayNumber, wallTimeToInstant, weekdayOfDayNumber } from './zoned-time.ts';

const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
const MINUTE_MS = 60_000;
/** The longest window is a week: looking back 8 days and ahead 15 finds every occurrence that matters. */
const BACK_DAYS = 8;
const AHEAD_DAYS = 15;

function zoneOf(window: MaintenanceWindow, localZone: string): string {
  const basis = window.timeBasis;
  return basis === undefined || basis === 'local' ? localZone : basis;
}

/** The occurrences [start, end) of every window that begin between `fromMs - 8 days` and `fromMs + 15 days`, sorted by start. */
function occurrences(windows: readonly MaintenanceWindow[], fromMs: number, localZone: string): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  for (const w of windows) {
    const zone = zoneOf(w, localZone);
    const [hh, mm] = w.start.split(':').map(Number) as [number, number];
    const days = new Set(w.days);
    const today = localDayNumber(fromMs, zone);
    for (let n = today - BACK_DAYS; n <= today + AHEAD_DAYS; n++) {
      if (!days.has(WEEKDAYS[weekdayOfDayNumber(n)]!)) continue;
      const { year, month, day } = civilFromDayNumber(n);
      const start = wallTimeToInstant({ year, month, day, hour: hh, minute: mm, second: 0 }, zone);
      out.push({ start, end: start + w.durationMinutes * MINUTE_MS });
    }
  }
  return out.sort((a, b) => a.start - b.start);
}

/** True when `now` is inside a window, or there are no windows (no restriction). */
export function inMaintenanceWindow(windows: readonly MaintenanceWindow[], now: Date, localZone: string): boolean {
  if (windows.length === 0) return true;
  const t = now.getTime();
  return occurrences(windows, t, localZone).some((o) => o.start <= t && t < o.end);
}

/**
 * The window in force at `now` (start ≤ now < end) or else the next one; overlapping and
 * touching occurrences are merged, so `end` is when the device leaves maintenance. Null when
 * there are no windows.
 */
export function nextMaintenanceWindow(windows: readonly MaintenanceWindow[], now: Date, localZone: string): { start: Date; end: Date } | null {
  if (windows.length === 0) return null;
  const t = now.getTime();
  const all = occurrences(windows, t, localZone);
  // Merge into disjoint periods.
  const merged: { start: number; end: number }[] = [];
  for (const o of all) {
    const last = merged[merged.length - 1];
    if (last !== undefined && o.start <= last.end) last.end = Math.max(last.end, o.end);
    else merged.push({ ...o });
  }
  const hit = merged.find((m) => m.end > t);
  return hit === undefined ? null : { start: new Date(hit.start), end: new Date(hit.end) };
}

/** When a run that may only start inside a window can start: now if inside one, else the next window's start. Null: never within the horizon (no occurrence ahead). */
export function maintenanceStart(windows: readonly MaintenanceWindow[], now: Date, localZone: string): Date | null {
  const next = nextMaintenanceWindow(windows, now, localZone);
  if (windows.length === 0) return now;
  if (next === null) return null;
  return next.start.getTime() <= now.getTime() ? now : next.start;
}

export const MAINTENANCE_HORIZON_MS = AHEAD_DAYS * DAY_MS;
