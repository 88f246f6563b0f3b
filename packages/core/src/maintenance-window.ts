/**
 * Maintenance windows: weekly wall-clock periods ("Sun 02:00 for 4 hours, device local time")
 * during which installs, updates and window-only tasks may run (the agent policy's
 * `maintenanceWindows`, packages/protocol/src/policy.ts).
 *
 * Why here: the agent defers work to the next window and the server shows each device's next
 * window; both must compute the same instants, so the rule is pure and shared, on top of the
 * same zoned-time helpers schedules use (no clock: `now` comes in).
 *
 * Rules:
 * - a window occurs on each of its `days` at `start` wall time in its zone (`timeBasis`:
 *   absent or "local" = the device's zone, "UTC", or an IANA name, as schedules read it);
 * - DST follows the schedule rules (zoned-time.ts): a start in a spring-forward gap (02:30 on
 *   the day clocks jump 02:00 → 03:00) begins at the gap's end, 03:00; an ambiguous start
 *   (fall-back) is the first pass through the repeated hour;
 * - `durationMinutes` is elapsed time, not wall time: a 4-hour window is 4 real hours even
 *   across a clock change (the trade-off: its wall-clock end moves by an hour twice a year,
 *   but its length — what an administrator budgets an install for — never does);
 * - windows run past midnight and past the end of the week (Sat 22:00 for 6 hours ends Sun
 *   04:00); overlapping or touching occurrences, of one window or several, merge into one
 *   period, so `end` is where the merged period ends;
 * - no windows at all means no restriction: inMaintenanceWindow is true, nextMaintenanceWindow
 *   null.
 * An unknown zone throws a RangeError (validation happens where the policy is saved).
 */
import type { MaintenanceWindow } from '@garrison/protocol';
import { DAY_MS, civilFromDayNumber, localDayNumber, wallTimeToInstant, weekdayOfDayNumber } from './zoned-time.ts';

const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

/** Windows last at most a week (schema maximum 10080 minutes): 8 days back covers any in force. */
const LOOK_BACK_DAYS = 8;
const FIRST_HORIZON_DAYS = 16;
/** Past this, a chain of touching windows is reported as ending here (it never closes). */
const MAX_HORIZON_DAYS = 512;
const ZONE_SLACK_MS = 15 * 3_600_000;

export interface MaintenancePeriod {
  start: Date;
  end: Date;
}

function windowZone(window: MaintenanceWindow, localZone: string): string {
  const basis = window.timeBasis;
  if (basis === undefined || basis === 'local') return localZone;
  return basis;
}

function parseStart(start: string): { hour: number; minute: number } {
  const m = /^([01][0-9]|2[0-3]):([0-5][0-9])$/.exec(start);
  if (m === null) throw new RangeError(`Invalid maintenance window start "${start}" (use HH:MM)`);
  return { hour: Number(m[1]), minute: Number(m[2]) };
}

/** Occurrences [start, end) in ms of every window whose local start day is in [from, to] (day numbers relative to today per zone). */
function occurrences(windows: readonly MaintenanceWindow[], nowMs: number, localZone: string, back: number, ahead: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const w of windows) {
    const zone = windowZone(w, localZone);
    const { hour, minute } = parseStart(w.start);
    const days = new Set<number>(w.days.map((d) => WEEKDAYS.indexOf(d as (typeof WEEKDAYS)[number])));
    const today = localDayNumber(nowMs, zone);
    const durationMs = w.durationMinutes * 60_000;
    for (let day = today - back; day <= today + ahead; day++) {
      if (!days.has(weekdayOfDayNumber(day))) continue;
      const { year, month, day: dom } = civilFromDayNumber(day);
      const start = wallTimeToInstant({ year, month, day: dom, hour, minute, second: 0 }, zone);
      out.push([start, start + durationMs]);
    }
  }
  return out;
}

function merge(intervals: Array<[number, number]>): Array<[number, number]> {
  intervals.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const merged: Array<[number, number]> = [];
  for (const iv of intervals) {
    const last = merged[merged.length - 1];
    if (last !== undefined && iv[0] <= last[1]) last[1] = Math.max(last[1], iv[1]);
    else merged.push([iv[0], iv[1]]);
  }
  return merged;
}

/**
 * The period in force at `now` (start ≤ now < end) or the next one; null when there are no
 * windows. Overlapping and touching windows are merged, so `end` is when the device leaves
 * maintenance time.
 */
export function nextMaintenanceWindow(windows: readonly MaintenanceWindow[], now: Date, localZone: string): MaintenancePeriod | null {
  if (windows.length === 0) return null;
  const nowMs = now.getTime();
  for (let ahead = FIRST_HORIZON_DAYS; ; ahead *= 2) {
    const merged = merge(occurrences(windows, nowMs, localZone, LOOK_BACK_DAYS, ahead));
    const pick = merged.find((iv) => iv[1] > nowMs);
    // Occurrences on days past the horizon start no earlier than this instant: a period ending
    // before it cannot be extended by them, so it is final.
    const unseen = nowMs + (ahead - 1) * DAY_MS - ZONE_SLACK_MS;
    if (pick !== undefined && pick[1] < unseen) return { start: new Date(pick[0]), end: new Date(pick[1]) };
    if (ahead >= MAX_HORIZON_DAYS) {
      if (pick === undefined) return null;
      return { start: new Date(pick[0]), end: new Date(pick[1]) };
    }
  }
}

/** True when `now` is inside a maintenance window, or when there are no windows (no restriction). */
export function inMaintenanceWindow(windows: readonly MaintenanceWindow[], now: Date, localZone: string): boolean {
  if (windows.length === 0) return true;
  const period = nextMaintenanceWindow(windows, now, localZone);
  return period !== null && period.start.getTime() <= now.getTime();
}

/**
 * When work that may only start inside a window can start: `now` when inside one (or when
 * there are no windows), else the next window's start; null when no window ever opens.
 */
export function maintenanceStart(windows: readonly MaintenanceWindow[], now: Date, localZone: string): Date | null {
  if (windows.length === 0) return now;
  const next = nextMaintenanceWindow(windows, now, localZone);
  if (next === null) return null;
  return next.start.getTime() <= now.getTime() ? now : next.start;
}
