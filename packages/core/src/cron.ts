/**
 * Cron expressions: parsing and next/previous fire instants in an IANA zone, pure.
 *
 * Why our own and not croner's: the product needs one daylight-saving rule for every time
 * trigger (ADR 0016), and cron's own rule (cronie's, below) depends on how the minute and
 * hour fields are written, which no library exposes; the search for the next fire must also
 * be bounded by a proof rather than a give-up count (a 5th Monday of February or a Feb 29 on
 * a Friday is years away, Feb 30 is never).
 *
 * Syntax (Vixie/cronie, with the croner extensions Garrison accepted before, so stored
 * expressions keep their meaning):
 * - 5 fields `minute hour day-of-month month day-of-week`, 6 with seconds first, or 7 with
 *   seconds first and a year (1-9999) last, as croner reads them;
 * - `*`, `?` (same as `*`), numbers, names (JAN-DEC, SUN-SAT, any case), ranges `a-b`, lists
 *   `a,b`, steps `*\/n`, `a-b/n` and `a/n` (a numeric start: `a` to the field's maximum, as
 *   croner, cron-parser and Quartz read it; cronie refuses it);
 * - day of week 0-7 (0 and 7 are Sunday), a range ending in 0 such as FRI-SUN wraps to 7;
 * - day of month `L` (last day), `LW` (last weekday), `nW` (weekday nearest day n, within the
 *   month); day of week `n#k` (k-th weekday n, k 1-5), `nL` / `n#L` (last weekday n in the
 *   month; `a-b#k` for each weekday of a range), a leading `+` (day-of-month AND day-of-week);
 * - nicknames @yearly @annually @monthly @weekly @daily @midnight @hourly.
 *
 * Day of month and day of week (cronie's find_jobs, and POSIX): when both fields are
 * restricted (neither starts with `*` or `?`), a day matches if EITHER matches:
 * `0 0 1,15 * MON` runs on the 1st, the 15th and every Monday. When either field starts with
 * `*`, both must match, which makes the starred one irrelevant (`*\/2` in day of month
 * still counts as starred, as in cronie). A leading `+` on day of week asks for AND.
 *
 * Daylight saving (cronie's cron.c main loop, "case 2"/"case 3"): a job is a *wildcard* job
 * when its minute or hour field starts with `*` (`*`, `*\/15`; @hourly), else it is a
 * *fixed-time* job (values, lists, ranges, `a-b/n`, `a/n`).
 * - fixed-time: each wall time runs once. A wall time in a spring-forward gap runs at the
 *   first instant after the gap (cronie runs the missed fixed-time jobs as soon as it notices
 *   the jump); a wall time that happens twice runs at its first occurrence only;
 * - wildcard: the job follows the wall clock as it is: minutes in a gap do not exist and are
 *   skipped, and a repeated hour runs in both passes (cronie runs wildcard jobs "for the
 *   current minute" after a jump in either direction).
 * Differences to cronie, deliberate: several fixed-time wall times of one job inside one gap
 * collapse into a single run at the gap's end (cronie queues one run per missed minute); a
 * seconds field does not change a job's kind.
 *
 * Bounds: the Gregorian calendar repeats every 400 years (146097 days, exactly 20871 weeks),
 * so a day-of-month/month/day-of-week combination that matches no day in 146097 consecutive
 * days matches none ever. Searches walk at most that many days (skipping whole months that do
 * not match) and then answer "never"; `cronNeverFires` applies the proof at validation. With
 * a year field the walk instead ends after the last (or before the first) year it allows,
 * skipping the years between: at most 9999 years of at most 366 days, and far less in
 * practice since unmatched months are skipped whole.
 */
import { civilFromDayNumber, DAY_MS, dayNumber, localDayNumber, utcMs, weekdayOfDayNumber, zoneDayModel } from './zoned-time.ts';

/** A cron expression that cannot be parsed; the message says which field and why. */
export class CronSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CronSyntaxError';
  }
}

export interface CronSpec {
  /** Ascending, unique. */
  readonly seconds: readonly number[];
  readonly minutes: readonly number[];
  readonly hours: readonly number[];
  /** Index 1-12. */
  readonly months: readonly boolean[];
  /** Index 1-31. */
  readonly dom: readonly boolean[];
  readonly domLast: boolean;
  readonly domLastWeekday: boolean;
  /** Days n of `nW`. */
  readonly domNearestWeekday: readonly number[];
  /** Index 0-6. */
  readonly dow: readonly boolean[];
  /** [weekday, k] of `n#k`. */
  readonly dowNth: readonly (readonly [number, number])[];
  /** Index 0-6: last such weekday of the month (`nL`, `n#L`). */
  readonly dowLast: readonly boolean[];
  readonly domStar: boolean;
  readonly dowStar: boolean;
  /** `+` on day of week: both day fields must match. */
  readonly domAndDow: boolean;
  /** Minute or hour field starts with `*` (cronie's MIN_STAR | HR_STAR): see the DST rule. */
  readonly wildcard: boolean;
  /** Index 1-9999, or null when the year is unrestricted (5 or 6 fields, or `*`). */
  readonly years: readonly boolean[] | null;
}

const NICKNAMES: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};
export const CRON_NICKNAMES: readonly string[] = Object.keys(NICKNAMES);

const MONTH_NAMES = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DOW_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

interface FieldDef {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
  /** Value of names[0]. */
  nameBase?: number;
}
const SECOND: FieldDef = { name: 'second', min: 0, max: 59 };
const MINUTE: FieldDef = { name: 'minute', min: 0, max: 59 };
const HOUR: FieldDef = { name: 'hour', min: 0, max: 23 };
const DOM: FieldDef = { name: 'day of month', min: 1, max: 31 };
const MONTH: FieldDef = { name: 'month', min: 1, max: 12, names: MONTH_NAMES, nameBase: 1 };
const DOW: FieldDef = { name: 'day of week', min: 0, max: 7, names: DOW_NAMES, nameBase: 0 };
const YEAR: FieldDef = { name: 'year', min: 1, max: 9999 };

function value(text: string, f: FieldDef): number {
  const lower = text.toLowerCase();
  if (f.names) {
    const i = f.names.indexOf(lower);
    if (i >= 0) return i + (f.nameBase ?? 0);
  }
  if (!/^[0-9]+$/.test(text)) throw new CronSyntaxError(`${f.name}: "${text}" is not a number${f.names ? ' or a name' : ''}`);
  const n = Number(text);
  if (n < f.min || n > f.max) throw new CronSyntaxError(`${f.name}: ${n} is out of range ${f.min}-${f.max}`);
  return n;
}

/** One comma-separated item of a plain field (no L/W/#) into `set`. */
function plainItem(item: string, f: FieldDef, set: boolean[]): void {
  const slash = item.indexOf('/');
  const rangeText = slash < 0 ? item : item.slice(0, slash);
  let step = 1;
  if (slash >= 0) {
    const stepText = item.slice(slash + 1);
    if (!/^[0-9]+$/.test(stepText) || Number(stepText) < 1) throw new CronSyntaxError(`${f.name}: step "${stepText}" in "${item}" must be a whole number of at least 1`);
    step = Number(stepText);
    if (step > f.max) throw new CronSyntaxError(`${f.name}: step ${step} in "${item}" is larger than ${f.max}`);
  }
  let lo: number;
  let hi: number;
  if (rangeText === '*' || rangeText === '?') {
    lo = f.min;
    hi = f === DOW ? 6 : f.max;
  } else {
    const dash = rangeText.indexOf('-');
    if (dash < 0) {
      lo = value(rangeText, f);
      // "a/n" runs from a to the field's maximum; a bare number is just itself. Day of week
      // runs to 6 (7 would be Sunday again), except from 7 itself: "7/n" is Sunday, not nothing.
      hi = slash >= 0 ? (f === DOW ? Math.max(lo, 6) : f.max) : lo;
    } else {
      lo = value(rangeText.slice(0, dash), f);
      hi = value(rangeText.slice(dash + 1), f);
      // FRI-SUN is 5-0: cronie reads a range ending in Sunday as ending in 7.
      if (f === DOW && hi === 0 && lo > 0) hi = 7;
      if (lo > hi) throw new CronSyntaxError(`${f.name}: range "${rangeText}" runs backwards`);
    }
  }
  for (let v = lo; v <= hi; v += step) set[f === DOW ? v % 7 : v] = true;
}

function plainField(text: string, f: FieldDef): boolean[] {
  const set: boolean[] = [];
  for (const item of text.split(',')) {
    if (item === '') throw new CronSyntaxError(`${f.name}: empty item in "${text}"`);
    plainItem(item, f, set);
  }
  return set;
}

function sortedValues(set: readonly boolean[], f: FieldDef): number[] {
  const out: number[] = [];
  for (let v = f.min; v <= f.max; v++) if (set[v]) out.push(v);
  return out;
}

const starts = (text: string) => text.startsWith('*') || text.startsWith('?');

/** Parses a cron expression or a nickname; throws CronSyntaxError. */
export function parseCron(expression: string): CronSpec {
  if (typeof expression !== 'string') throw new CronSyntaxError('not a string');
  const trimmed = expression.trim();
  if (trimmed.startsWith('@')) {
    const expanded = NICKNAMES[trimmed.toLowerCase()];
    if (expanded === undefined) {
      throw new CronSyntaxError(
        trimmed.toLowerCase() === '@reboot'
          ? '@reboot is not a time; use the agent-start trigger'
          : `unknown nickname "${trimmed}" (use ${CRON_NICKNAMES.join(', ')})`,
      );
    }
    return parseCron(expanded);
  }
  const fields = trimmed.split(/\s+/).filter(Boolean);
  if (fields.length < 5 || fields.length > 7) {
    throw new CronSyntaxError(`expected 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first (7 with a year last); got ${fields.length}`);
  }
  const [secText, minText, hourText, domText, monText, dowRaw, yearText] = fields.length === 5 ? ['0', ...fields] : fields;
  const years = yearText === undefined || yearText === '*' || yearText === '?' ? null : plainField(yearText, YEAR);
  const seconds = sortedValues(plainField(secText!, SECOND), SECOND);
  const minutes = sortedValues(plainField(minText!, MINUTE), MINUTE);
  const hours = sortedValues(plainField(hourText!, HOUR), HOUR);
  const monthSet = plainField(monText!, MONTH);

  const dom: boolean[] = [];
  let domLast = false;
  let domLastWeekday = false;
  const domNearestWeekday: number[] = [];
  for (const item of domText!.split(',')) {
    const upper = item.toUpperCase();
    if (upper === 'L') domLast = true;
    else if (upper === 'LW') domLastWeekday = true;
    else if (/^[0-9]+W$/.test(upper)) domNearestWeekday.push(value(upper.slice(0, -1), DOM));
    else if (item === '') throw new CronSyntaxError(`day of month: empty item in "${domText}"`);
    else plainItem(item, DOM, dom);
  }

  const domAndDow = dowRaw!.startsWith('+');
  const dowText = domAndDow ? dowRaw!.slice(1) : dowRaw!;
  const dow: boolean[] = [];
  const dowNth: [number, number][] = [];
  const dowLast: boolean[] = [];
  for (const item of dowText.split(',')) {
    const hash = item.indexOf('#');
    if (hash >= 0) {
      // "5#2", "FRI#L", or a range "5-6#L": each weekday of it.
      const days: boolean[] = [];
      plainItem(item.slice(0, hash), DOW, days);
      const k = item.slice(hash + 1).toUpperCase();
      if (k !== 'L' && !/^[1-5]$/.test(k)) throw new CronSyntaxError(`day of week: "#${k}" in "${item}" must be #1 to #5 or #L`);
      for (let day = 0; day < 7; day++) {
        if (!days[day]) continue;
        if (k === 'L') dowLast[day] = true;
        else dowNth.push([day, Number(k)]);
      }
    } else if (/^[^L]+L$/i.test(item)) {
      dowLast[value(item.slice(0, -1), DOW) % 7] = true;
    } else if (item === '') throw new CronSyntaxError(`day of week: empty item in "${dowRaw}"`);
    else plainItem(item, DOW, dow);
  }

  return {
    seconds,
    minutes,
    hours,
    months: monthSet,
    dom,
    domLast,
    domLastWeekday,
    domNearestWeekday,
    dow,
    dowNth,
    dowLast,
    domStar: starts(domText!),
    dowStar: starts(dowText),
    domAndDow,
    wildcard: starts(minText!) || starts(hourText!),
    years,
  };
}

// ---------------------------------------------------------------------------------------------
// Day matching (pure calendar arithmetic, no zone)
// ---------------------------------------------------------------------------------------------

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}
const MONTH_DAYS = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
/** Days in a month, by arithmetic: the walks below call it for every month they visit. */
function monthLength(year: number, month: number): number {
  return month === 2 && isLeapYear(year) ? 29 : MONTH_DAYS[month]!;
}

/**
 * Whether day `day` of a month matches the day fields; `first` is the weekday of the month's
 * 1st (0 = Sunday) and `last` the month's length, so no date arithmetic happens per day.
 */
function dayFieldsMatch(spec: CronSpec, month: number, day: number, first: number, last: number): boolean {
  if (!spec.months[month]) return false;
  const weekdayOf = (n: number) => (first + n - 1) % 7;
  const weekday = weekdayOf(day);
  let d = spec.dom[day] === true || (spec.domLast && day === last);
  if (!d && spec.domLastWeekday) {
    const wd = weekdayOf(last);
    d = day === (wd === 6 ? last - 1 : wd === 0 ? last - 2 : last);
  }
  if (!d) {
    for (const n of spec.domNearestWeekday) {
      if (n > last) continue;
      const wd = weekdayOf(n);
      // Saturday → Friday before (or Monday after when n is the 1st); Sunday → Monday after
      // (or Friday before when n is the month's last day): never leaves the month.
      const target = wd === 6 ? (n === 1 ? n + 2 : n - 1) : wd === 0 ? (n === last ? n - 2 : n + 1) : n;
      if (day === target) {
        d = true;
        break;
      }
    }
  }
  let w = spec.dow[weekday] === true || (spec.dowLast[weekday] === true && day + 7 > last);
  if (!w) for (const [wd, k] of spec.dowNth) if (wd === weekday && Math.ceil(day / 7) === k) w = true;
  // cronie: `(DOM_STAR || DOW_STAR) ? (dow && dom) : (dow || dom)`.
  return spec.domStar || spec.dowStar || spec.domAndDow ? d && w : d || w;
}

/** Whether the expression's day fields match this civil date (month 1-12); the year field is not read. */
export function cronDayMatches(spec: CronSpec, year: number, month: number, day: number): boolean {
  return dayFieldsMatch(spec, month, day, weekdayOfDayNumber(dayNumber(year, month, 1)), monthLength(year, month));
}

/** Days in one Gregorian cycle: the calendar (dates and weekdays) repeats after it. */
export const GREGORIAN_CYCLE_DAYS = 146_097;

/**
 * The first day number from `from` on (step +1) or back (step -1) whose date matches and that
 * `accept` takes, or null. Without a year field the walk covers GREGORIAN_CYCLE_DAYS + 1 days:
 * if no date in them matches, none ever does. With one, it ends past the last allowed year
 * (or before the first), jumping over the years between. Months outside the month field are
 * skipped whole.
 */
function findDay(spec: CronSpec, from: number, step: 1 | -1, accept: (day: number) => boolean): number | null {
  const years = spec.years;
  const limit = years === null ? from + step * (GREGORIAN_CYCLE_DAYS + 1) : step === 1 ? dayNumber(YEAR.max, 12, 31) : dayNumber(YEAR.min, 1, 1);
  const beyond = (dn: number) => (step === 1 ? dn > limit : dn < limit);
  let { year, month, day } = civilFromDayNumber(from);
  let dn = from;
  while (!beyond(dn)) {
    if (years !== null && !years[year]) {
      let y = year;
      do y += step;
      while (y >= YEAR.min && y <= YEAR.max && !years[y]);
      if (y < YEAR.min || y > YEAR.max) return null;
      year = y;
      month = step === 1 ? 1 : 12;
      day = step === 1 ? 1 : 31;
      dn = dayNumber(year, month, day);
      continue;
    }
    const last = monthLength(year, month);
    if (spec.months[month]) {
      const first = weekdayOfDayNumber(dn - (day - 1));
      for (; day >= 1 && day <= last; day += step, dn += step) {
        if (beyond(dn)) return null;
        if (dayFieldsMatch(spec, month, day, first, last) && accept(dn)) return dn;
      }
    } else {
      dn += step === 1 ? last - day + 1 : -day;
    }
    // On to the first day of the next month, or the last day of the previous one.
    month += step;
    if (month > 12) {
      month = 1;
      year++;
    } else if (month < 1) {
      month = 12;
      year--;
    }
    day = step === 1 ? 1 : monthLength(year, month);
  }
  return null;
}

/**
 * True when no date ever matches the day-of-month, month and day-of-week fields (Feb 30), in
 * the years the year field allows. Years 400 apart have the same calendar, so one allowed year
 * of each remainder mod 400 is enough to look at: at most 400 years instead of up to 9999
 * (a refused `0 0 0 1-7 * +1#5 1-9999` walked them all, 0.1 s of CPU for every validation).
 */
export function cronNeverFires(spec: CronSpec): boolean {
  if (spec.years === null) return findDay(spec, dayNumber(1970, 1, 1), 1, () => true) === null;
  const looked = new Set<number>();
  for (let y = YEAR.min; y <= YEAR.max; y++) {
    if (!spec.years[y] || looked.has(y % 400)) continue;
    looked.add(y % 400);
    const only: boolean[] = [];
    only[y] = true;
    if (findDay({ ...spec, years: only }, dayNumber(y, 1, 1), 1, () => true) !== null) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Times of day and instants
// ---------------------------------------------------------------------------------------------

/** Smallest second-of-day >= sod that the time fields allow, or null. */
function nextSecondOfDay(spec: CronSpec, sod: number): number | null {
  const h0 = Math.floor(sod / 3600);
  const m0 = Math.floor((sod % 3600) / 60);
  const s0 = sod % 60;
  for (const h of spec.hours) {
    if (h < h0) continue;
    for (const m of spec.minutes) {
      if (h === h0 && m < m0) continue;
      for (const s of spec.seconds) {
        if (h === h0 && m === m0 && s < s0) continue;
        return h * 3600 + m * 60 + s;
      }
    }
  }
  return null;
}

/** Largest second-of-day <= sod that the time fields allow, or null. */
function previousSecondOfDay(spec: CronSpec, sod: number): number | null {
  const h0 = Math.floor(sod / 3600);
  const m0 = Math.floor((sod % 3600) / 60);
  const s0 = sod % 60;
  for (let i = spec.hours.length - 1; i >= 0; i--) {
    const h = spec.hours[i]!;
    if (h > h0) continue;
    for (let j = spec.minutes.length - 1; j >= 0; j--) {
      const m = spec.minutes[j]!;
      if (h === h0 && m > m0) continue;
      for (let k = spec.seconds.length - 1; k >= 0; k--) {
        const s = spec.seconds[k]!;
        if (h === h0 && m === m0 && s > s0) continue;
        return h * 3600 + m * 60 + s;
      }
    }
  }
  return null;
}

// A transition day splits into wall-time segments, each read with one offset: before the
// transition (wall < aEnd, old offset) and after it (wall >= bStart, new offset). Spring
// forward leaves a gap [aEnd, bStart) in between; fall back makes [bStart, aEnd) happen
// twice. Each segment is monotonic, so a search is a couple of field look-ups per segment,
// never a walk over the day's seconds. Walls are ms after the local midnight.

/** Smallest allowed wall in [lo, hi) (clamped to the day) whose instant is after `from`. */
function firstIn(spec: CronSpec, midnight: number, lo: number, hi: number, offset: number, from: number): number | null {
  const top = Math.min(hi, DAY_MS);
  const x = from + offset - midnight;
  const minSec = Math.max(Math.ceil(Math.max(lo, 0) / 1000), Math.floor(x / 1000) + 1, 0);
  if (minSec * 1000 >= top) return null;
  const sod = nextSecondOfDay(spec, minSec);
  return sod === null || sod * 1000 >= top ? null : midnight + sod * 1000 - offset;
}

/** Largest allowed wall in [lo, hi) (clamped to the day) whose instant is at or before `to`. */
function lastIn(spec: CronSpec, midnight: number, lo: number, hi: number, offset: number, to: number): number | null {
  const bottom = Math.max(lo, 0);
  const x = to + offset - midnight;
  const maxSec = Math.min(Math.ceil(Math.min(hi, DAY_MS) / 1000) - 1, Math.floor(x / 1000), 86_399);
  if (maxSec < 0 || maxSec * 1000 < bottom) return null;
  const sod = previousSecondOfDay(spec, maxSec);
  return sod === null || sod * 1000 < bottom ? null : midnight + sod * 1000 - offset;
}

/** Whether the time fields allow any wall in [lo, hi) of the day. */
function anyIn(spec: CronSpec, lo: number, hi: number): boolean {
  const minSec = Math.ceil(Math.max(lo, 0) / 1000);
  if (minSec >= 86_400) return false;
  const sod = nextSecondOfDay(spec, minSec);
  return sod !== null && sod * 1000 < Math.min(hi, DAY_MS);
}

function dayStart(day: number): number {
  const c = civilFromDayNumber(day);
  return utcMs(c.year, c.month, c.day);
}

/** The first fire strictly after `from` (ms) on local day `day`, or null. */
function firstOnDay(spec: CronSpec, day: number, from: number, timeZone: string): number | null {
  const midnight = dayStart(day);
  const m = zoneDayModel(day, timeZone);
  if (m.transition === null) return firstIn(spec, midnight, 0, DAY_MS, m.offsetBefore, from);
  const aEnd = m.transition + m.offsetBefore - midnight;
  const bStart = m.transition + m.offsetAfter - midnight;
  let best: number | null = null;
  const consider = (at: number | null) => {
    if (at !== null && at > from && (best === null || at < best)) best = at;
  };
  consider(firstIn(spec, midnight, 0, aEnd, m.offsetBefore, from));
  if (bStart > aEnd) {
    // Gap: a fixed-time job's walls in it run once, at the transition.
    if (!spec.wildcard && anyIn(spec, aEnd, bStart)) consider(m.transition);
    consider(firstIn(spec, midnight, bStart, DAY_MS, m.offsetAfter, from));
  } else {
    // Repeated walls: a wildcard job runs them again; a fixed-time job does not.
    consider(firstIn(spec, midnight, spec.wildcard ? bStart : aEnd, DAY_MS, m.offsetAfter, from));
  }
  return best;
}

/** The last fire at or before `to` (ms) on local day `day`, or null. */
function lastOnDay(spec: CronSpec, day: number, to: number, timeZone: string): number | null {
  const midnight = dayStart(day);
  const m = zoneDayModel(day, timeZone);
  if (m.transition === null) return lastIn(spec, midnight, 0, DAY_MS, m.offsetBefore, to);
  const aEnd = m.transition + m.offsetBefore - midnight;
  const bStart = m.transition + m.offsetAfter - midnight;
  let best: number | null = null;
  const consider = (at: number | null) => {
    if (at !== null && at <= to && (best === null || at > best)) best = at;
  };
  consider(lastIn(spec, midnight, 0, aEnd, m.offsetBefore, to));
  if (bStart > aEnd) {
    if (!spec.wildcard && anyIn(spec, aEnd, bStart)) consider(m.transition);
    consider(lastIn(spec, midnight, bStart, DAY_MS, m.offsetAfter, to));
  } else {
    consider(lastIn(spec, midnight, spec.wildcard ? bStart : aEnd, DAY_MS, m.offsetAfter, to));
  }
  return best;
}

/** The instants a Date can hold (±100,000,000 days around 1970). */
const MAX_INSTANT_MS = 8.64e15;
/**
 * An answer that a Date can hold, else null. `from`/`to` must be finite: NaN (an Invalid Date's
 * time) made every day number NaN, and the day walk, whose end test compares with it, never ended.
 */
const inRange = (ms: number | null): number | null => (ms !== null && Math.abs(ms) <= MAX_INSTANT_MS ? ms : null);

/** The first fire strictly after `from` (ms) in `timeZone`, or null when there is none (or `from` is not a finite instant). */
export function cronNext(spec: CronSpec, from: number, timeZone: string): number | null {
  if (!Number.isFinite(from) || Math.abs(from) > MAX_INSTANT_MS) return null;
  let result: number | null = null;
  // From the day before `from`'s local day: a day's instants can reach past its own end only
  // by the length of a repeated hour, never a whole day.
  findDay(spec, localDayNumber(from, timeZone) - 1, 1, (day) => {
    result = firstOnDay(spec, day, from, timeZone);
    return result !== null;
  });
  return inRange(result);
}

/** The last fire at or before `to` (ms) in `timeZone`, or null when there is none (or `to` is not a finite instant). */
export function cronPrevious(spec: CronSpec, to: number, timeZone: string): number | null {
  if (!Number.isFinite(to) || Math.abs(to) > MAX_INSTANT_MS) return null;
  let result: number | null = null;
  findDay(spec, localDayNumber(to, timeZone) + 1, -1, (day) => {
    result = lastOnDay(spec, day, to, timeZone);
    return result !== null;
  });
  return inRange(result);
}
