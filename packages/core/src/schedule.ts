/**
 * When does a task fire? Pure schedule arithmetic shared by the server (to show "next run",
 * to plan server tasks) and the agent (which runs its tasks on their schedules while offline).
 *
 * Everything here is a function of its arguments: the current time comes in as `after`,
 * randomness as a number in [0,1), the zone as a string. That keeps the agent's scheduler
 * loop and the server's preview identical and makes every DST case testable.
 *
 * Trigger kinds:
 * - time triggers (once, interval, daily, weekly, monthly, cron) have fire instants, which
 *   `nextFireTime` computes;
 * - event triggers (continuous, check-in, policy-enforcement, agent-start, enrolment,
 *   after-task, on-demand) fire when something happens; they have no fire instant here.
 *
 * Time basis: wall-clock fields (`time` "HH:MM", once.at) are read in the zone given by
 * `resolveTimeZone` — the device's zone for "local" (the default), "UTC", or an IANA name.
 *
 * DST rules (one rule for daily, weekly, monthly, once and fixed-time cron; ADR 0016):
 * - a wall time that does not exist (spring-forward gap) fires once, at the first instant
 *   after the gap: 02:30 in the gap 02:00 → 03:00 fires at 03:00 local, the same day;
 * - an ambiguous wall time (fall-back) fires once, at its first occurrence.
 * This is cronie's rule for fixed-time jobs; cron.ts applies it to cron expressions whose
 * minute and hour fields are values, lists or ranges. Cron jobs whose minute or hour field
 * starts with `*` follow the wall clock instead (cronie's wildcard jobs): their gap minutes
 * do not exist, and a repeated hour runs twice.
 *
 * Interval triggers are elapsed time, not wall clock: "every 15 minutes" fires every 900 s
 * through DST changes, anchored at startAt when given, else at the Unix epoch (so it fires
 * at :00 :15 :30 :45 UTC and is the same on every device and the server).
 *
 * startAt/endAt are absolute instants bounding fires: nothing before startAt, nothing after
 * endAt (both inclusive). An unparsable startAt/endAt is ignored here (scheduleIssues
 * reports it; validation refuses such schedules before they reach a scheduler).
 *
 * Trade-offs: daily/weekly/monthly are computed by walking local calendar days or months
 * (a handful of steps, bounded), not by generating cron patterns, which keeps each trigger's
 * meaning obvious. Going backwards (`lastMissedFire`) uses the same walk in reverse and
 * interval arithmetic, so it costs the same whether the device was off for a minute or a
 * year. Walks that may have to go far (a monthly 5th weekday in chosen months, a cron Feb 29
 * on a Friday) are bounded by the Gregorian 400-year cycle, after which nothing new can
 * happen: past it, the answer is "never".
 */
import type { Schedule, Trigger, TriggerType, Weekday } from '@garrison/protocol';
import { CronSyntaxError, cronNeverFires, cronNext, cronPrevious, parseCron, type CronSpec } from './cron.ts';
import {
  assertValidTimeZone,
  civilFromDayNumber,
  dayNumber,
  daysInMonth,
  isValidTimeZone,
  localDayNumber,
  mod,
  wallTimeToInstant,
  weekdayOfDayNumber,
} from './zoned-time.ts';

export type OnceTrigger = Extract<Trigger, { type: 'once' }>;
export type IntervalTrigger = Extract<Trigger, { type: 'interval' }>;
export type DailyTrigger = Extract<Trigger, { type: 'daily' }>;
export type WeeklyTrigger = Extract<Trigger, { type: 'weekly' }>;
export type MonthlyTrigger = Extract<Trigger, { type: 'monthly' }>;
export type CronTrigger = Extract<Trigger, { type: 'cron' }>;
export type ContinuousTrigger = Extract<Trigger, { type: 'continuous' }>;
export type TimeTrigger = OnceTrigger | IntervalTrigger | DailyTrigger | WeeklyTrigger | MonthlyTrigger | CronTrigger;

const TIME_TRIGGER_TYPES: ReadonlySet<string> = new Set(['once', 'interval', 'daily', 'weekly', 'monthly', 'cron']);
const WEEKDAY_INDEX: Readonly<Record<Weekday, number>> = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };

/**
 * 0 (Sunday) … 6, or undefined for anything else. Takes `unknown` on purpose: the protocol's
 * weekday schema is built from a runtime array, which its static type does not carry through
 * (the fields type as never/undefined), so weekday fields are read defensively.
 */
function weekdayIndex(value: unknown): number | undefined {
  return typeof value === 'string' && Object.hasOwn(WEEKDAY_INDEX, value) ? WEEKDAY_INDEX[value as Weekday] : undefined;
}

function weekdaySet(days: unknown): Set<number> {
  const set = new Set<number>();
  if (Array.isArray(days)) for (const d of days) {
    const i = weekdayIndex(d);
    if (i !== undefined) set.add(i);
  }
  return set;
}

export const DEFAULT_CONTINUOUS_BACKOFF_SECONDS = 5;
export const DEFAULT_CONTINUOUS_MAX_BACKOFF_SECONDS = 300;

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

export function isTimeTrigger(trigger: Trigger): trigger is TimeTrigger {
  return TIME_TRIGGER_TYPES.has(trigger.type);
}

/** The schedule's time triggers (once, interval, daily, weekly, monthly, cron), in order. */
export function timeTriggers(schedule: Schedule): TimeTrigger[] {
  return schedule.triggers.filter(isTimeTrigger);
}

export function hasTrigger(schedule: Schedule, type: TriggerType): boolean {
  return schedule.triggers.some((t) => t.type === type);
}

/** The zone wall-clock fields are read in: the device's for "local" (default), else the basis. */
export function resolveTimeZone(schedule: Schedule, deviceTimeZone: string): string {
  const basis = schedule.timeBasis;
  if (basis === undefined || basis === 'local') return deviceTimeZone;
  if (basis === 'UTC') return 'UTC';
  return basis;
}

interface Window {
  start: number | null;
  end: number | null;
}

function parseInstant(value: string | undefined): number | null {
  if (value === undefined) return null;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : null;
}

function windowOf(schedule: Schedule): Window {
  return { start: parseInstant(schedule.startAt), end: parseInstant(schedule.endAt) };
}

/** startAt <= at <= endAt (each bound only when given). Event triggers honour it too. */
export function isWithinWindow(schedule: Schedule, at: Date): boolean {
  const w = windowOf(schedule);
  const t = at.getTime();
  return (w.start === null || t >= w.start) && (w.end === null || t <= w.end);
}

const TIME_RE = /^([01][0-9]|2[0-3]):([0-5][0-9])$/;
const LOCAL_DATE_TIME_RE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?$/;

function parseTime(time: string): { hour: number; minute: number } | null {
  const m = TIME_RE.exec(time);
  return m ? { hour: Number(m[1]), minute: Number(m[2]) } : null;
}

function parseLocalDateTime(value: string) {
  const m = LOCAL_DATE_TIME_RE.exec(value);
  if (!m) return null;
  const [year, month, day, hour, minute] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])];
  const second = m[6] === undefined ? 0 : Number(m[6]);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  return { year, month, day, hour, minute, second };
}

// An expression is parsed once; a small memo keeps scheduler loops over thousands of tasks
// from re-parsing. It is bounded and only ever changes speed.
const cronCache = new Map<string, CronSpec | null>();
const CRON_CACHE_MAX = 1000;

function cronFor(expression: string): CronSpec | null {
  let spec = cronCache.get(expression);
  if (spec === undefined) {
    try {
      // One that can never fire (stored before validation refused it) costs one proof, here,
      // rather than a bounded but long search on every call.
      const parsed = parseCron(expression);
      spec = cronNeverFires(parsed) ? null : parsed;
    } catch {
      spec = null;
    }
    if (cronCache.size >= CRON_CACHE_MAX) cronCache.clear();
    cronCache.set(expression, spec);
  }
  return spec;
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/** Semantic problems the JSON schema cannot see. An empty array means the schedule is valid. */
export function scheduleIssues(schedule: Schedule): string[] {
  const issues: string[] = [];
  const basis = schedule.timeBasis;
  if (basis !== undefined && basis !== 'local' && basis !== 'UTC' && !isValidTimeZone(basis)) {
    issues.push(`timeBasis: unknown time zone "${basis}" (use "local", "UTC" or an IANA name such as "Europe/Paris")`);
  }
  const start = parseInstant(schedule.startAt);
  const end = parseInstant(schedule.endAt);
  if (schedule.startAt !== undefined && start === null) issues.push(`startAt: "${schedule.startAt}" is not a valid date-time`);
  if (schedule.endAt !== undefined && end === null) issues.push(`endAt: "${schedule.endAt}" is not a valid date-time`);
  if (start !== null && end !== null && start > end) issues.push('startAt is after endAt');
  if (!Array.isArray(schedule.triggers) || schedule.triggers.length === 0) {
    issues.push('triggers: at least one trigger is required');
    return issues;
  }
  schedule.triggers.forEach((trigger, i) => {
    const at = `triggers[${i}] (${trigger.type})`;
    switch (trigger.type) {
      case 'once':
        if (parseLocalDateTime(trigger.at) === null) issues.push(`${at}: "${trigger.at}" is not a valid date-time (YYYY-MM-DDTHH:MM[:SS])`);
        break;
      case 'interval':
        if (!Number.isInteger(trigger.every) || trigger.every < 1) issues.push(`${at}: every must be a whole number of at least 1`);
        break;
      case 'daily':
        if (parseTime(trigger.time) === null) issues.push(`${at}: time "${trigger.time}" is not HH:MM`);
        if (trigger.everyDays !== undefined && (!Number.isInteger(trigger.everyDays) || trigger.everyDays < 1)) {
          issues.push(`${at}: everyDays must be a whole number of at least 1`);
        }
        break;
      case 'weekly':
        if (parseTime(trigger.time) === null) issues.push(`${at}: time "${trigger.time}" is not HH:MM`);
        if (weekdaySet(trigger.days).size === 0) issues.push(`${at}: at least one day of the week is required`);
        break;
      case 'monthly': {
        if (parseTime(trigger.time) === null) issues.push(`${at}: time "${trigger.time}" is not HH:MM`);
        const byDay = trigger.day !== undefined;
        const byWeek = trigger.week !== undefined || trigger.weekday !== undefined;
        if (byDay && byWeek) issues.push(`${at}: give either day, or week and weekday, not both`);
        else if (!byDay && !byWeek) issues.push(`${at}: give either day, or week and weekday`);
        else if (byWeek && (trigger.week === undefined || weekdayIndex(trigger.weekday) === undefined)) issues.push(`${at}: week and weekday go together`);
        break;
      }
      case 'cron':
        try {
          // Refused rather than stored: a task that can never run is a mistake nobody would
          // notice (cronie accepts "0 0 30 2 *" and silently never runs it).
          if (cronNeverFires(parseCron(trigger.expression))) {
            issues.push(`${at}: cron expression "${trigger.expression}" never fires: no date matches its day-of-month, month and day-of-week fields`);
          }
        } catch (err) {
          const reason = err instanceof CronSyntaxError ? err.message : String(err);
          issues.push(`${at}: invalid cron expression "${trigger.expression}": ${reason}`);
        }
        break;
      case 'after-task':
        if (typeof trigger.taskId !== 'string' || trigger.taskId.trim() === '') issues.push(`${at}: taskId is required`);
        break;
      case 'continuous':
        if (trigger.backoffSeconds !== undefined && trigger.maxBackoffSeconds !== undefined && trigger.maxBackoffSeconds < trigger.backoffSeconds) {
          issues.push(`${at}: maxBackoffSeconds is less than backoffSeconds`);
        }
        break;
      default:
        break;
    }
  });
  return issues;
}

// ---------------------------------------------------------------------------------------------
// Fire times
// ---------------------------------------------------------------------------------------------

function intervalPeriodMs(trigger: IntervalTrigger): number | null {
  if (!Number.isFinite(trigger.every) || trigger.every < 1) return null;
  return trigger.every * (trigger.unit === 'hours' ? 3_600_000 : 60_000);
}

function atTime(day: number, time: { hour: number; minute: number }, timeZone: string): number {
  const { year, month, day: d } = civilFromDayNumber(day);
  return wallTimeToInstant({ year, month, day: d, hour: time.hour, minute: time.minute, second: 0 }, timeZone);
}

/** Day of the month a monthly trigger fires on in (year, month), or null when misconfigured. */
function monthlyDay(trigger: MonthlyTrigger, year: number, month: number): number | null {
  const last = daysInMonth(year, month);
  const anyWeek = trigger.week !== undefined || trigger.weekday !== undefined;
  const fullWeek = trigger.week !== undefined && trigger.weekday !== undefined;
  // Exactly one of `day` or (`week` and `weekday`); anything else never fires.
  if (trigger.day !== undefined ? anyWeek : !fullWeek) return null;
  if (trigger.day !== undefined) {
    if (trigger.day === 'last') return last;
    return trigger.day >= 1 ? Math.min(trigger.day, last) : null;
  }
  const target = weekdayIndex(trigger.weekday);
  if (target === undefined) return null;
  if (trigger.week === 'last') {
    return last - mod(weekdayOfDayNumber(dayNumber(year, month, last)) - target, 7);
  }
  const week = trigger.week as number;
  if (!(week >= 1 && week <= 5)) return null;
  const first = 1 + mod(target - weekdayOfDayNumber(dayNumber(year, month, 1)), 7);
  const day = first + 7 * (week - 1);
  return day <= last ? day : null;
}

function monthlyCandidate(trigger: MonthlyTrigger, year: number, month: number, time: { hour: number; minute: number }, timeZone: string): number | null {
  if (trigger.months !== undefined && !trigger.months.includes(month)) return null;
  const day = monthlyDay(trigger, year, month);
  if (day === null) return null;
  return wallTimeToInstant({ year, month, day, hour: time.hour, minute: time.minute, second: 0 }, timeZone);
}

function addMonths(year: number, month: number, delta: number): { year: number; month: number } {
  const index = year * 12 + (month - 1) + delta;
  return { year: Math.floor(index / 12), month: mod(index, 12) + 1 };
}

/**
 * How many months a monthly walk may look at. Weekdays of dates repeat every 400 years (4800
 * months), so a month that can match (a 5th Monday in February: only some leap years) does
 * so within 4800 months of any start, and one that does not within them never will. The
 * walk is cheap arithmetic per month; it only gets long for such rare triggers.
 */
const MONTH_WALK = 4800 + 2;

/**
 * First fire strictly after `from` (ms), ignoring the window's end; `anchor` is the window's
 * start (interval and everyDays anchoring). Null when the trigger has no such fire.
 */
function nextRaw(trigger: TimeTrigger, from: number, timeZone: string, anchor: number | null): number | null {
  switch (trigger.type) {
    case 'once': {
      const wall = parseLocalDateTime(trigger.at);
      if (wall === null) return null;
      const at = wallTimeToInstant(wall, timeZone);
      return at > from ? at : null;
    }
    case 'interval': {
      const period = intervalPeriodMs(trigger);
      if (period === null) return null;
      const base = anchor ?? 0;
      return base + (Math.floor((from - base) / period) + 1) * period;
    }
    case 'daily': {
      const time = parseTime(trigger.time);
      if (time === null) return null;
      const every = trigger.everyDays ?? 1;
      if (!(every >= 1)) return null;
      const base = anchor === null ? 0 : localDayNumber(anchor, timeZone);
      // Start the day before `from`'s local day: a shifted (gap) time can cross midnight.
      let day = localDayNumber(from, timeZone) - 1;
      day += mod(base - day, every);
      for (let i = 0; i < 4; i++, day += every) {
        const at = atTime(day, time, timeZone);
        if (at > from) return at;
      }
      return null;
    }
    case 'weekly': {
      const time = parseTime(trigger.time);
      if (time === null) return null;
      const days = weekdaySet(trigger.days);
      const today = localDayNumber(from, timeZone);
      for (let day = today - 1; day <= today + 8; day++) {
        if (!days.has(weekdayOfDayNumber(day))) continue;
        const at = atTime(day, time, timeZone);
        if (at > from) return at;
      }
      return null;
    }
    case 'monthly': {
      const time = parseTime(trigger.time);
      if (time === null) return null;
      const start = civilFromDayNumber(localDayNumber(from, timeZone) - 1);
      for (let i = 0; i < MONTH_WALK; i++) {
        const { year, month } = addMonths(start.year, start.month, i);
        const at = monthlyCandidate(trigger, year, month, time, timeZone);
        if (at !== null && at > from) return at;
      }
      return null;
    }
    case 'cron': {
      const spec = cronFor(trigger.expression);
      return spec === null ? null : cronNext(spec, from, timeZone);
    }
  }
}

/** Latest fire at or before `to` (ms), ignoring the window's start; mirror of nextRaw. */
function previousRaw(trigger: TimeTrigger, to: number, timeZone: string, anchor: number | null): number | null {
  switch (trigger.type) {
    case 'once': {
      const wall = parseLocalDateTime(trigger.at);
      if (wall === null) return null;
      const at = wallTimeToInstant(wall, timeZone);
      return at <= to ? at : null;
    }
    case 'interval': {
      const period = intervalPeriodMs(trigger);
      if (period === null) return null;
      const base = anchor ?? 0;
      return base + Math.floor((to - base) / period) * period;
    }
    case 'daily': {
      const time = parseTime(trigger.time);
      if (time === null) return null;
      const every = trigger.everyDays ?? 1;
      if (!(every >= 1)) return null;
      const base = anchor === null ? 0 : localDayNumber(anchor, timeZone);
      let day = localDayNumber(to, timeZone) + 1;
      day -= mod(day - base, every);
      for (let i = 0; i < 4; i++, day -= every) {
        const at = atTime(day, time, timeZone);
        if (at <= to) return at;
      }
      return null;
    }
    case 'weekly': {
      const time = parseTime(trigger.time);
      if (time === null) return null;
      const days = weekdaySet(trigger.days);
      const today = localDayNumber(to, timeZone);
      for (let day = today + 1; day >= today - 8; day--) {
        if (!days.has(weekdayOfDayNumber(day))) continue;
        const at = atTime(day, time, timeZone);
        if (at <= to) return at;
      }
      return null;
    }
    case 'monthly': {
      const time = parseTime(trigger.time);
      if (time === null) return null;
      const start = civilFromDayNumber(localDayNumber(to, timeZone) + 1);
      for (let i = 0; i < MONTH_WALK; i++) {
        const { year, month } = addMonths(start.year, start.month, -i);
        const at = monthlyCandidate(trigger, year, month, time, timeZone);
        if (at !== null && at <= to) return at;
      }
      return null;
    }
    case 'cron': {
      const spec = cronFor(trigger.expression);
      return spec === null ? null : cronPrevious(spec, to, timeZone);
    }
  }
}

/**
 * The first fire of a time trigger strictly after `after`, within the schedule's window, with
 * wall-clock fields read in `timeZone`. Null for event triggers, and when there is none.
 */
export function nextFireTime(trigger: Trigger, schedule: Schedule, after: Date, timeZone: string): Date | null {
  if (!isTimeTrigger(trigger)) return null;
  assertValidTimeZone(timeZone);
  const w = windowOf(schedule);
  let from = after.getTime();
  if (!Number.isFinite(from)) return null;
  // A fire exactly at startAt is allowed, hence "strictly after startAt - 1 ms".
  if (w.start !== null && from < w.start) from = w.start - 1;
  const next = nextRaw(trigger, from, timeZone, w.start);
  if (next === null || (w.end !== null && next > w.end)) return null;
  return new Date(next);
}

/** The earliest next fire over the schedule's time triggers (the first listed wins a tie). */
export function nextScheduledFire(schedule: Schedule, after: Date, timeZone: string): { at: Date; trigger: Trigger } | null {
  let best: { at: Date; trigger: Trigger } | null = null;
  for (const trigger of timeTriggers(schedule)) {
    const at = nextFireTime(trigger, schedule, after, timeZone);
    if (at !== null && (best === null || at.getTime() < best.at.getTime())) best = { at, trigger };
  }
  return best;
}

/**
 * The latest fire instant in (from, to] over all time triggers, within the window; null if
 * none. Used for "run missed runs" when a device comes back after being off: only the latest
 * missed fire matters (one catch-up run, not one per miss).
 *
 * Cost does not depend on the gap's length: intervals are computed arithmetically, daily,
 * weekly walk back at most a few days from `to`, monthly month by month (a few months but
 * for rare triggers), and cron day by day over matching days only. An every-minute schedule missed for a year is a handful of steps.
 */
export function lastMissedFire(schedule: Schedule, from: Date, to: Date, timeZone: string): Date | null {
  assertValidTimeZone(timeZone);
  const w = windowOf(schedule);
  const lower = from.getTime();
  let upper = to.getTime();
  if (!Number.isFinite(lower) || !Number.isFinite(upper)) return null;
  if (w.end !== null && upper > w.end) upper = w.end;
  if (upper <= lower) return null;
  let best: number | null = null;
  for (const trigger of timeTriggers(schedule)) {
    const at = previousRaw(trigger, upper, timeZone, w.start);
    if (at === null || at <= lower || (w.start !== null && at < w.start)) continue;
    if (best === null || at > best) best = at;
  }
  return best === null ? null : new Date(best);
}

// ---------------------------------------------------------------------------------------------
// Delays
// ---------------------------------------------------------------------------------------------

/** The randomization delay for one fire: `random` in [0,1) scaled to the schedule's window. */
export function randomizedDelayMs(schedule: Schedule, random: number): number {
  const minutes = schedule.randomizeMinutes ?? 0;
  if (!(minutes > 0)) return 0;
  const r = Number.isFinite(random) ? Math.min(Math.max(random, 0), 1) : 0;
  return Math.floor(r * minutes * 60_000);
}

/**
 * The wait before retrying after attempt `failedAttempt` (1-based: 1 is the first try) failed:
 * delaySeconds * factor^(failedAttempt-1) seconds. Factor defaults to 1 (a constant delay).
 * Null when the schedule has no retry policy or the retries are used up.
 */
export function retryDelayMs(schedule: Schedule, failedAttempt: number): number | null {
  const retry = schedule.retry;
  if (retry === undefined || !Number.isInteger(failedAttempt) || failedAttempt < 1 || failedAttempt > retry.attempts) return null;
  const factor = retry.factor ?? 1;
  return Math.round(retry.delaySeconds * 1000 * factor ** (failedAttempt - 1));
}

/**
 * The wait before restarting a continuous task: backoffSeconds (default 5) doubled for each
 * consecutive quick exit before this restart (0 quick exits → the base delay), capped at
 * maxBackoffSeconds (default 300).
 */
export function continuousRestartDelayMs(trigger: ContinuousTrigger, consecutiveQuickExits: number): number {
  const base = trigger.backoffSeconds ?? DEFAULT_CONTINUOUS_BACKOFF_SECONDS;
  const cap = trigger.maxBackoffSeconds ?? DEFAULT_CONTINUOUS_MAX_BACKOFF_SECONDS;
  const n = Number.isFinite(consecutiveQuickExits) ? Math.min(Math.max(Math.floor(consecutiveQuickExits), 0), 40) : 0;
  return Math.min(base * 2 ** n, cap) * 1000;
}
