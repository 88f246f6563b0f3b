/**
 * Wall-clock time in IANA time zones, on top of Intl only.
 *
 * Why this exists: schedules say "daily at 02:30 in Europe/Paris". Turning that into an instant
 * needs the zone's UTC offset at that moment, and the two days a year when the wall clock
 * jumps make the mapping not one-to-one. JavaScript's Date only knows UTC and the process's
 * own zone, so we ask Intl.DateTimeFormat for the zone's wall clock at an instant and derive
 * everything else from that single primitive. No time-zone database of our own, no
 * dependency: the runtime's ICU data is the source of truth.
 *
 * DST rules (the product's rules, applied by every daily/weekly/monthly/once trigger):
 * - a wall time that does not exist (spring-forward gap) maps to the first instant after the
 *   gap: 02:30 in the gap 02:00 → 03:00 becomes 03:00 local time, the same day, as cronie
 *   runs a fixed-time job (ADR 0016; until then it was shifted by the gap's length, 03:30);
 * - an ambiguous wall time (fall-back, the hour happens twice) maps to the earlier instant,
 *   so a schedule fires once, in the first pass through the repeated hour.
 *
 * Trade-offs: Intl.DateTimeFormat#formatToParts is not free (a few microseconds), so the
 * formatters are cached per zone (a module-level memo; it holds no state that changes any
 * result). Transitions are found by sampling the offset one day either side of the wall
 * time, which assumes at most one offset change in that 48-hour window: true of every zone
 * in use today. Offsets are resolved to the second; sub-second offsets (pre-1900 LMT) are
 * not supported.
 */

export const DAY_MS = 86_400_000;

/** A civil date-time, month 1-12. */
export interface WallTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** What a wall time is in a zone: one instant, two (fall-back) or none (spring-forward gap). */
export type WallTimeKind = 'single' | 'ambiguous' | 'gap';

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** True when the runtime knows `timeZone` as an IANA zone name (or "UTC"). */
export function isValidTimeZone(timeZone: string): boolean {
  if (typeof timeZone !== 'string' || timeZone.length === 0) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}

/** Throws a RangeError naming the zone when the runtime does not know it. */
export function assertValidTimeZone(timeZone: string): void {
  if (isUtc(timeZone)) return;
  try {
    formatter(timeZone);
  } catch {
    throw new RangeError(`Unknown time zone "${timeZone}"`);
  }
}

function isUtc(timeZone: string): boolean {
  return timeZone === 'UTC' || timeZone === 'Etc/UTC';
}

/** Date.UTC without the 0-99 → 1900-1999 year mapping. */
export function utcMs(year: number, month: number, day: number, hour = 0, minute = 0, second = 0): number {
  const d = new Date(Date.UTC(2000, month - 1, day, hour, minute, second));
  d.setUTCFullYear(year, month - 1, day);
  return d.getTime();
}

/** The wall clock in `timeZone` at an instant (milliseconds dropped). */
export function instantToWallTime(instantMs: number, timeZone: string): WallTime {
  if (isUtc(timeZone)) {
    const d = new Date(instantMs);
    return {
      year: d.getUTCFullYear(),
      month: d.getUTCMonth() + 1,
      day: d.getUTCDate(),
      hour: d.getUTCHours(),
      minute: d.getUTCMinutes(),
      second: d.getUTCSeconds(),
    };
  }
  const wall: WallTime = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
  for (const part of formatter(timeZone).formatToParts(instantMs)) {
    switch (part.type) {
      case 'year':
        wall.year = Number(part.value);
        break;
      case 'month':
        wall.month = Number(part.value);
        break;
      case 'day':
        wall.day = Number(part.value);
        break;
      case 'hour':
        wall.hour = Number(part.value) % 24;
        break;
      case 'minute':
        wall.minute = Number(part.value);
        break;
      case 'second':
        wall.second = Number(part.value);
        break;
    }
  }
  return wall;
}

/** The zone's offset from UTC at an instant, in milliseconds (east positive). */
export function zoneOffsetMs(instantMs: number, timeZone: string): number {
  if (isUtc(timeZone)) return 0;
  const floored = instantMs - mod(instantMs, 1000);
  const w = instantToWallTime(floored, timeZone);
  return utcMs(w.year, w.month, w.day, w.hour, w.minute, w.second) - floored;
}

/** Classifies a wall time in a zone and picks its instant by the DST rules above. */
export function resolveWallTime(wall: WallTime, timeZone: string): { instant: number; kind: WallTimeKind } {
  const local = utcMs(wall.year, wall.month, wall.day, wall.hour, wall.minute, wall.second);
  if (isUtc(timeZone)) return { instant: local, kind: 'single' };
  const before = zoneOffsetMs(local - DAY_MS, timeZone);
  const after = zoneOffsetMs(local + DAY_MS, timeZone);
  const c1 = local - before;
  const c2 = local - after;
  const v1 = zoneOffsetMs(c1, timeZone) === before;
  const v2 = zoneOffsetMs(c2, timeZone) === after;
  if (v1 && v2) {
    if (c1 === c2) return { instant: c1, kind: 'single' };
    return { instant: Math.min(c1, c2), kind: 'ambiguous' };
  }
  if (v1) return { instant: c1, kind: 'single' };
  if (v2) return { instant: c2, kind: 'single' };
  // Neither offset produces this wall time: it lies in a gap, which ends somewhere in
  // (c2, c1]. It fires at the gap's end, the first instant after it (02:30 → 03:00).
  return { instant: transitionBetween(c2, c1, timeZone), kind: 'gap' };
}

/**
 * The first whole-second instant in (lo, hi] whose offset differs from the offset at lo,
 * given that the offset at hi differs (one transition between them): a binary search, about
 * 18 steps over two days.
 */
function transitionBetween(lo: number, hi: number, timeZone: string): number {
  const base = zoneOffsetMs(lo, timeZone);
  let a = lo - mod(lo, 1000);
  let b = hi - mod(hi, 1000);
  while (b - a > 1000) {
    const mid = a + Math.floor((b - a) / 2000) * 1000;
    if (zoneOffsetMs(mid, timeZone) === base) a = mid;
    else b = mid;
  }
  return b;
}

/**
 * How wall times of one local day map to instants: the offset before and after the day, and
 * the instant the offset changes when it does (null on the ~363 ordinary days of a year).
 * Wall time w (as UTC-based ms) is `w - offsetBefore` when that is before the transition, and
 * `w - offsetAfter` when that is at or after it: both for a repeated time, neither in a gap.
 *
 * The offsets are sampled 15 hours either side of the day (offsets span -12 to +14 hours, so
 * the window holds all of the day's instants), assuming at most one change in that 54-hour
 * window, as resolveWallTime does. A transition found just outside the day still classifies
 * the day's wall times correctly. Memoized per (zone, day): only ever changes speed.
 */
export interface ZoneDayModel {
  offsetBefore: number;
  offsetAfter: number;
  transition: number | null;
}

const dayModels = new Map<string, ZoneDayModel>();
const DAY_MODELS_MAX = 4096;
const UTC_MODEL: ZoneDayModel = { offsetBefore: 0, offsetAfter: 0, transition: null };

export function zoneDayModel(day: number, timeZone: string): ZoneDayModel {
  if (isUtc(timeZone)) return UTC_MODEL;
  const key = `${timeZone}\u0000${day}`;
  let model = dayModels.get(key);
  if (model === undefined) {
    const lo = day * DAY_MS - 15 * 3_600_000;
    const hi = (day + 1) * DAY_MS + 15 * 3_600_000;
    const offsetBefore = zoneOffsetMs(lo, timeZone);
    const offsetAfter = zoneOffsetMs(hi, timeZone);
    model = { offsetBefore, offsetAfter, transition: offsetBefore === offsetAfter ? null : transitionBetween(lo, hi, timeZone) };
    if (dayModels.size >= DAY_MODELS_MAX) dayModels.clear();
    dayModels.set(key, model);
  }
  return model;
}

/** The instant of a wall time in a zone, by the DST rules above. */
export function wallTimeToInstant(wall: WallTime, timeZone: string): number {
  return resolveWallTime(wall, timeZone).instant;
}

// ---- civil day numbers (days since 1970-01-01, proleptic Gregorian) ----

export function dayNumber(year: number, month: number, day: number): number {
  return Math.floor(utcMs(year, month, day) / DAY_MS);
}

export function civilFromDayNumber(n: number): { year: number; month: number; day: number } {
  const d = new Date(n * DAY_MS);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

/** 0 = Sunday … 6 = Saturday (1970-01-01 was a Thursday). */
export function weekdayOfDayNumber(n: number): number {
  return mod(n + 4, 7);
}

export function daysInMonth(year: number, month: number): number {
  // Day 0 of the next month is the last day of this one (month 13 rolls over to January).
  return new Date(utcMs(year, month + 1, 0)).getUTCDate();
}

/** The local calendar day (as a day number) of an instant in a zone. */
export function localDayNumber(instantMs: number, timeZone: string): number {
  const w = instantToWallTime(instantMs, timeZone);
  return dayNumber(w.year, w.month, w.day);
}

export function mod(a: number, n: number): number {
  return ((a % n) + n) % n;
}
