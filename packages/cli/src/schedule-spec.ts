/**
 * The schedule-spec language of `garrison task create --schedule SPEC`: one trigger per spec
 * (several specs may also be joined with ";"), turned into the protocol's Trigger objects, and
 * back again for display.
 *
 *   continuous | check-in | policy-enforcement | agent-start | enrolment | on-demand
 *   after:TASKID[:failed,succeeded,...]
 *   once:2026-12-01T10:00[:SS]
 *   every:15m | every:2h | every:1d
 *   daily:02:30 | daily:02:30/3          (every third day)
 *   weekly:mon,thu@08:00 | weekly:mon-fri@08:00
 *   monthly:15@09:00 | monthly:last@09:00 | monthly:2nd-tue@09:00 | monthly:5th-fri@09:00 | monthly:last-fri@09:00
 *   cron:0 3 * * 1-5 | cron:6/23 * * * * | cron:@daily (and the other cron nicknames)
 *
 * Cron expressions are only checked for their shape here (5 or 6 fields, or a nickname); the
 * server validates the fields and answers SCHEDULE_INVALID naming the field, so the CLI and
 * the API cannot disagree on what a field means.
 */
import type { Trigger, Weekday } from '@garrison/protocol';

export class ScheduleSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScheduleSpecError';
  }
}

export const SCHEDULE_SPEC_HELP = `Schedule SPEC (repeat --schedule for several triggers):
  continuous                      run and restart when it exits
  check-in | policy-enforcement   at each agent check-in / policy enforcement
  agent-start | enrolment         when the agent starts / once after enrolment
  on-demand                       only when run by hand (task run)
  after:TASKID[:failed,succeeded] after another task's run ends (in these final states)
  once:2026-12-01T10:00           once, at this wall-clock time in the time basis
  every:15m | every:2h            at a fixed interval (m, h or d)
  daily:02:30[/N]                 every day (every N days) at 02:30
  weekly:mon,thu@08:00            on these days (ranges like mon-fri allowed)
  monthly:15@09:00                on day 15 (or "last") of each month
  monthly:2nd-tue@09:00           on the 1st-5th or last weekday of each month
                                  (months without a 5th such weekday are skipped)
  cron:'0 3 * * 1-5'              a cron expression (5 fields; 6 with seconds first);
                                  steps like 6/23 mean 6-59/23; when day of month and day
                                  of week are both restricted, a day matching either runs
  cron:@daily                     @yearly @annually @monthly @weekly @daily @midnight @hourly`;

const DAYS: readonly Weekday[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const DAY_ALIASES: Record<string, Weekday> = {
  sun: 'sun', sunday: 'sun',
  mon: 'mon', monday: 'mon',
  tue: 'tue', tues: 'tue', tuesday: 'tue',
  wed: 'wed', wednesday: 'wed',
  thu: 'thu', thur: 'thu', thurs: 'thu', thursday: 'thu',
  fri: 'fri', friday: 'fri',
  sat: 'sat', saturday: 'sat',
};
/** The cron nicknames the server accepts (cronie's, without @reboot: use agent-start). */
export const CRON_NICKNAMES = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'] as const;
const ORDINALS: Record<string, 1 | 2 | 3 | 4 | 5 | 'last'> = {
  '1': 1, '1st': 1, first: 1,
  '2': 2, '2nd': 2, second: 2,
  '3': 3, '3rd': 3, third: 3,
  '4': 4, '4th': 4, fourth: 4,
  '5': 5, '5th': 5, fifth: 5,
  last: 'last',
};
const ORDINAL_NAMES: Record<string, string> = { 1: '1st', 2: '2nd', 3: '3rd', 4: '4th', 5: '5th', last: 'last' };
/** Final run states an after-task trigger may name (hyphens accepted for underscores). */
export const FINAL_STATES = ['succeeded', 'succeeded_with_warnings', 'failed', 'timed_out', 'cancelled', 'skipped'] as const;

/** "8:05" or "08:05" → "08:05"; throws on anything else. */
export function parseTimeOfDay(text: string, spec: string): string {
  const m = /^(\d{1,2}):(\d{2})$/.exec(text.trim());
  if (!m || Number(m[1]) > 23 || Number(m[2]) > 59) throw new ScheduleSpecError(`"${spec}": "${text}" is not a time of day (HH:MM, 00:00 to 23:59)`);
  return `${m[1]!.padStart(2, '0')}:${m[2]}`;
}

function parseDay(text: string, spec: string): Weekday {
  const d = DAY_ALIASES[text.trim().toLowerCase()];
  if (!d) throw new ScheduleSpecError(`"${spec}": "${text}" is not a day of the week (mon, tue, wed, thu, fri, sat, sun)`);
  return d;
}

function parseDays(text: string, spec: string): Weekday[] {
  const out = new Set<Weekday>();
  for (const part of text.split(',')) {
    if (!part.trim()) throw new ScheduleSpecError(`"${spec}": empty day in "${text}"`);
    const range = part.split('-');
    if (range.length === 2) {
      const a = DAYS.indexOf(parseDay(range[0]!, spec));
      const b = DAYS.indexOf(parseDay(range[1]!, spec));
      // Ranges wrap around the week: fri-mon is fri, sat, sun, mon.
      for (let i = a; ; i = (i + 1) % 7) {
        out.add(DAYS[i]!);
        if (i === b) break;
      }
    } else if (range.length === 1) out.add(parseDay(part, spec));
    else throw new ScheduleSpecError(`"${spec}": "${part}" is not a day or a range of days`);
  }
  // In week order, Monday first, as people read a week.
  return [...DAYS.slice(1), 'sun' as const].filter((d) => out.has(d));
}

/** "DAYS@TIME" → [days, time]. */
function splitAt(rest: string, spec: string, what: string): [string, string] {
  const i = rest.lastIndexOf('@');
  if (i < 0) throw new ScheduleSpecError(`"${spec}": expected ${what}@HH:MM`);
  return [rest.slice(0, i), parseTimeOfDay(rest.slice(i + 1), spec)];
}

function isValidLocalDateTime(text: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(text);
  if (!m) return false;
  const [y, mo, d, h, mi, s] = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0)];
  if (mo < 1 || mo > 12 || h > 23 || mi > 59 || s > 59 || d < 1) return false;
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  return d <= daysInMonth;
}

/** Parses one trigger spec. */
export function parseTriggerSpec(input: string): Trigger {
  const spec = input.trim();
  if (!spec) throw new ScheduleSpecError('an empty schedule spec');
  const colon = spec.indexOf(':');
  const kind = (colon < 0 ? spec : spec.slice(0, colon)).trim().toLowerCase();
  const rest = colon < 0 ? '' : spec.slice(colon + 1).trim();
  const noArgument = (t: Trigger): Trigger => {
    if (colon >= 0) throw new ScheduleSpecError(`"${spec}": ${kind} takes no argument`);
    return t;
  };
  const needArgument = (example: string) => {
    if (!rest) throw new ScheduleSpecError(`"${spec}": ${kind} needs an argument, as in ${example}`);
  };

  switch (kind) {
    case 'continuous':
      return noArgument({ type: 'continuous' });
    case 'check-in':
    case 'checkin':
      return noArgument({ type: 'check-in' });
    case 'policy-enforcement':
    case 'policy':
      return noArgument({ type: 'policy-enforcement' });
    case 'agent-start':
    case 'start':
      return noArgument({ type: 'agent-start' });
    case 'enrolment':
    case 'enrollment':
      return noArgument({ type: 'enrolment' });
    case 'repository-content':
    case 'new-content':
      return noArgument({ type: 'repository-content' });
    case 'on-demand':
    case 'manual':
      return noArgument({ type: 'on-demand' });

    case 'after':
    case 'after-task': {
      needArgument('after:TASKID or after:TASKID:failed,timed_out');
      const i = rest.indexOf(':');
      const taskId = (i < 0 ? rest : rest.slice(0, i)).trim();
      if (!taskId) throw new ScheduleSpecError(`"${spec}": after needs a task id`);
      if (i < 0) return { type: 'after-task', taskId };
      const states = rest
        .slice(i + 1)
        .split(',')
        .map((s) => s.trim().toLowerCase().replaceAll('-', '_'));
      for (const s of states) {
        if (!(FINAL_STATES as readonly string[]).includes(s)) {
          throw new ScheduleSpecError(`"${spec}": "${s}" is not a final run state (${FINAL_STATES.join(', ')})`);
        }
      }
      return { type: 'after-task', taskId, states: [...new Set(states)] };
    }

    case 'once':
    case 'at': {
      needArgument('once:2026-12-01T10:00');
      const at = rest.replace(' ', 'T');
      if (!isValidLocalDateTime(at)) throw new ScheduleSpecError(`"${spec}": "${rest}" is not a date-time (YYYY-MM-DDTHH:MM[:SS], no zone: see --time-basis)`);
      return { type: 'once', at };
    }

    case 'every':
    case 'interval': {
      needArgument('every:15m or every:2h');
      const m = /^(\d+)\s*(m|min|mins|minutes?|h|hr|hrs|hours?|d|days?)$/i.exec(rest);
      if (!m) throw new ScheduleSpecError(`"${spec}": "${rest}" is not an interval (a number followed by m, h or d, as in 15m)`);
      const n = Number(m[1]);
      const unit = m[2]!.toLowerCase()[0]!;
      if (n < 1) throw new ScheduleSpecError(`"${spec}": the interval must be at least 1`);
      const every = unit === 'd' ? n * 24 : n;
      if (every > 100000) throw new ScheduleSpecError(`"${spec}": the interval is too long (at most 100000 minutes or hours)`);
      return { type: 'interval', every, unit: unit === 'm' ? 'minutes' : 'hours' };
    }

    case 'daily': {
      needArgument('daily:02:30');
      const slash = rest.indexOf('/');
      const time = parseTimeOfDay(slash < 0 ? rest : rest.slice(0, slash), spec);
      if (slash < 0) return { type: 'daily', time };
      const n = rest.slice(slash + 1).trim();
      if (!/^\d+$/.test(n) || Number(n) < 1 || Number(n) > 365) throw new ScheduleSpecError(`"${spec}": "/${n}" must be a number of days from 1 to 365`);
      return Number(n) === 1 ? { type: 'daily', time } : { type: 'daily', time, everyDays: Number(n) };
    }

    case 'weekly': {
      needArgument('weekly:mon,thu@08:00');
      const [days, time] = splitAt(rest, spec, 'DAYS');
      return { type: 'weekly', days: parseDays(days, spec), time };
    }

    case 'monthly': {
      needArgument('monthly:15@09:00 or monthly:2nd-tue@09:00');
      const [when, time] = splitAt(rest, spec, 'DAY');
      const w = when.trim().toLowerCase();
      if (w === 'last') return { type: 'monthly', day: 'last', time };
      if (/^\d{1,2}$/.test(w)) {
        const day = Number(w);
        if (day < 1 || day > 31) throw new ScheduleSpecError(`"${spec}": day ${day} is not 1 to 31`);
        return { type: 'monthly', day, time };
      }
      const m = /^([a-z0-9]+)[- ]([a-z]+)$/.exec(w);
      const week = m ? ORDINALS[m[1]!] : undefined;
      if (!m || week === undefined) {
        throw new ScheduleSpecError(`"${spec}": "${when}" is not a day of the month (1-31, last) or a weekday of the month (1st-tue, 2nd-mon, 5th-fri, last-fri)`);
      }
      return { type: 'monthly', week, weekday: parseDay(m[2]!, spec), time };
    }

    case 'cron': {
      needArgument("cron:'0 3 * * 1-5'");
      let expression = rest;
      if (/^(['"]).*\1$/.test(expression)) expression = expression.slice(1, -1).trim();
      const fields = expression.split(/\s+/).filter(Boolean);
      if (fields.length === 1 && fields[0]!.startsWith('@')) {
        const nickname = fields[0]!.toLowerCase();
        if (!(CRON_NICKNAMES as readonly string[]).includes(nickname)) {
          const hint = nickname === '@reboot' ? ' (for "at start-up" use the agent-start schedule)' : '';
          throw new ScheduleSpecError(`"${spec}": "${fields[0]}" is not a cron nickname (${CRON_NICKNAMES.join(', ')})${hint}`);
        }
        return { type: 'cron', expression: nickname };
      }
      if (fields.length < 5 || fields.length > 7) {
        throw new ScheduleSpecError(`"${spec}": a cron expression has 5 fields (6 with seconds first, 7 with a year last), or is a nickname such as @daily, not ${fields.length} fields`);
      }
      return { type: 'cron', expression: fields.join(' ') };
    }

    default:
      throw new ScheduleSpecError(
        `"${spec}": unknown schedule "${kind}" (continuous, check-in, policy-enforcement, agent-start, enrolment, on-demand, after:, once:, every:, daily:, weekly:, monthly:, cron:)`,
      );
  }
}

/** Parses every --schedule given; each may hold several specs joined with ";". */
export function parseScheduleSpecs(specs: readonly string[]): Trigger[] {
  const triggers = specs.flatMap((s) => s.split(';')).filter((s) => s.trim() !== '').map(parseTriggerSpec);
  if (triggers.length === 0) throw new ScheduleSpecError('give at least one schedule (--schedule SPEC)');
  if (triggers.length > 20) throw new ScheduleSpecError('a schedule has at most 20 triggers');
  return triggers;
}

/** Days in week order (Monday first), three or more consecutive ones as a range: "mon-fri,sun". */
export function formatDays(days: readonly Weekday[]): string {
  const week: Weekday[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
  const on = week.map((d) => days.includes(d));
  const parts: string[] = [];
  for (let i = 0; i < 7; ) {
    if (!on[i]) {
      i++;
      continue;
    }
    let j = i;
    while (j + 1 < 7 && on[j + 1]) j++;
    if (j - i >= 2) parts.push(`${week[i]}-${week[j]}`);
    else for (let k = i; k <= j; k++) parts.push(week[k]!);
    i = j + 1;
  }
  return parts.join(',');
}

/** The spec of a trigger: the inverse of parseTriggerSpec, for display. */
export function formatTrigger(t: Trigger): string {
  switch (t.type) {
    case 'continuous':
      return t.backoffSeconds || t.maxBackoffSeconds ? `continuous (backoff ${t.backoffSeconds ?? '-'}s, max ${t.maxBackoffSeconds ?? '-'}s)` : 'continuous';
    case 'on-demand':
    case 'check-in':
    case 'policy-enforcement':
    case 'agent-start':
    case 'enrolment':
    case 'repository-content':
      return t.type;
    case 'after-task':
      return `after:${t.taskId}${t.states?.length ? `:${t.states.join(',')}` : ''}`;
    case 'once':
      return `once:${t.at}`;
    case 'interval':
      return `every:${t.every}${t.unit === 'hours' ? 'h' : 'm'}`;
    case 'daily':
      return `daily:${t.time}${t.everyDays && t.everyDays > 1 ? `/${t.everyDays}` : ''}`;
    case 'weekly':
      return `weekly:${formatDays(t.days)}@${t.time}`;
    case 'monthly':
      if (t.day !== undefined) return `monthly:${t.day}@${t.time}${t.months ? ` (months ${t.months.join(',')})` : ''}`;
      return `monthly:${ORDINAL_NAMES[t.week ?? 'last']}-${t.weekday}@${t.time}${t.months ? ` (months ${t.months.join(',')})` : ''}`;
    case 'cron':
      return `cron:${t.expression}`;
    default:
      return JSON.stringify(t);
  }
}
