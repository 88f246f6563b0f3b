/**
 * Cron expressions: syntax, the day-of-month/day-of-week rule, cronie's daylight-saving rule
 * (src/cron.c, find_jobs and the "DST begins"/"DST ends" cases of its main loop; MIN_STAR and
 * HR_STAR set in src/entry.c when a field starts with `*`), and bounded searches.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Schedule, Trigger } from '@garrison/protocol';
import {
  CRON_NICKNAMES,
  cronDayMatches,
  cronNeverFires,
  CronSyntaxError,
  cronNext,
  cronPrevious,
  lastMissedFire,
  nextFireTime,
  parseCron,
  scheduleIssues,
} from '../src/index.ts';

const cron = (expression: string) => ({ type: 'cron', expression }) as Trigger;
const S = (t: unknown): Schedule => ({ triggers: [t] }) as Schedule;

/** The first `n` fires of a trigger after `after`. */
function fires(trigger: unknown, after: string, zone: string, n: number): string[] {
  const out: string[] = [];
  let t: Date | null = new Date(after);
  while (out.length < n) {
    t = nextFireTime(trigger as Trigger, S(trigger), t, zone);
    if (t === null) break;
    out.push(t.toISOString());
  }
  return out;
}
const next = (trigger: unknown, after: string, zone = 'UTC') => fires(trigger, after, zone, 1)[0] ?? null;
const previous = (trigger: unknown, to: string, zone = 'UTC') =>
  lastMissedFire(S(trigger), new Date(Date.parse(to) - 30 * 366 * 86_400_000), new Date(to), zone)?.toISOString() ?? null;

describe('cron syntax', () => {
  it('accepts every nickname, as cronie expands them', () => {
    assert.deepEqual([...CRON_NICKNAMES].sort(), ['@annually', '@daily', '@hourly', '@midnight', '@monthly', '@weekly', '@yearly']);
    const after = '2026-05-13T10:20:00Z'; // a Wednesday
    assert.equal(next(cron('@yearly'), after), '2027-01-01T00:00:00.000Z');
    assert.equal(next(cron('@annually'), after), '2027-01-01T00:00:00.000Z');
    assert.equal(next(cron('@monthly'), after), '2026-06-01T00:00:00.000Z');
    assert.equal(next(cron('@weekly'), after), '2026-05-17T00:00:00.000Z');
    assert.equal(next(cron('@daily'), after), '2026-05-14T00:00:00.000Z');
    assert.equal(next(cron('@midnight'), after), '2026-05-14T00:00:00.000Z');
    assert.equal(next(cron('@hourly'), after), '2026-05-13T11:00:00.000Z');
    assert.equal(next(cron(' @DAILY '), after), '2026-05-14T00:00:00.000Z');
    for (const n of CRON_NICKNAMES) assert.deepEqual(scheduleIssues(S(cron(n))), [], n);
  });
  it('refuses @reboot and unknown nicknames with a reason', () => {
    assert.match(scheduleIssues(S(cron('@reboot')))[0]!, /agent-start/);
    assert.match(scheduleIssues(S(cron('@fortnightly')))[0]!, /unknown nickname/);
  });
  it('reads a step with a numeric start as start-max/step (6/23 is 6,29,52)', () => {
    assert.deepEqual(parseCron('6/23 * * * *').minutes, [6, 29, 52]);
    assert.deepEqual(parseCron('0 6/6 * * *').hours, [6, 12, 18]);
    assert.deepEqual(parseCron('0 0 10/10 * *').dom.flatMap((on, d) => (on ? [d] : [])), [10, 20, 30]);
    assert.deepEqual(parseCron('0 0 * * 1/2').dow.flatMap((on, d) => (on ? [d] : [])), [1, 3, 5]);
    // 7 is Sunday: "7/2" starts there (it read as an empty set, so "0 0 * * 7/2" was refused as never firing).
    assert.deepEqual(parseCron('0 0 * * 7/2').dow.flatMap((on, d) => (on ? [d] : [])), [0]);
    assert.deepEqual(scheduleIssues(S(cron('0 0 * * 7/2'))), []);
    assert.deepEqual(parseCron('0-30/10 * * * *').minutes, [0, 10, 20, 30]);
  });
  it('reads names, 7 as Sunday, and ranges ending on Sunday', () => {
    const days = (e: string) => parseCron(e).dow.flatMap((on, d) => (on ? [d] : []));
    assert.deepEqual(days('0 0 * * 7'), [0]);
    assert.deepEqual(days('0 0 * * FRI-SUN'), [0, 5, 6]);
    assert.deepEqual(days('0 0 * * 5-7'), [0, 5, 6]);
    assert.deepEqual(days('0 0 * * mon,Wed'), [1, 3]);
    assert.deepEqual(parseCron('0 0 1 jan-MAR *').months.flatMap((on, m) => (on ? [m] : [])), [1, 2, 3]);
  });
  it('reads a year field after the day of week (7 fields, seconds first), as croner did', () => {
    assert.equal(next(cron('0 0 12 1 1 * 2030'), '2026-05-01T00:00:00Z'), '2030-01-01T12:00:00.000Z');
    assert.equal(next(cron('0 0 12 1 1 * 2030'), '2030-01-01T12:00:00Z'), null);
    assert.equal(previous(cron('0 0 12 1 1 * 2020-2022'), '2026-05-01T00:00:00Z'), '2022-01-01T12:00:00.000Z');
    assert.equal(next(cron('0 0 0 29 2 * 2030-2031'), '2026-01-01T00:00:00Z'), null);
    assert.match(scheduleIssues(S(cron('0 0 0 29 2 * 2030-2031')))[0]!, /never fires/);
    assert.deepEqual(scheduleIssues(S(cron('0 0 0 29 2 * 2032'))), []);
  });
  it('reads L, W and # in the day fields, # also over a range', () => {
    assert.equal(next(cron('0 0 L * *'), '2026-02-01T00:00:00Z'), '2026-02-28T00:00:00.000Z');
    assert.equal(next(cron('0 0 LW * *'), '2026-05-01T00:00:00Z'), '2026-05-29T00:00:00.000Z'); // the 31st is a Sunday
    assert.equal(next(cron('0 0 1W * *'), '2026-08-01T00:00:00Z'), '2026-08-03T00:00:00.000Z'); // the 1st is a Saturday
    assert.deepEqual(fires(cron('0 0 * * 5-6#L'), '2026-01-01T00:00:00Z', 'UTC', 2), ['2026-01-30T00:00:00.000Z', '2026-01-31T00:00:00.000Z']);
    assert.equal(next(cron('0 0 * * 1L'), '2026-01-01T00:00:00Z'), '2026-01-26T00:00:00.000Z');
  });
  it('refuses bad fields, naming the field', () => {
    const bad = (e: string, re: RegExp) => assert.throws(() => parseCron(e), (err: unknown) => err instanceof CronSyntaxError && re.test(err.message), e);
    bad('60 * * * *', /minute: 60 is out of range/);
    bad('* 24 * * *', /hour/);
    bad('* * 0 * *', /day of month/);
    bad('* * * 13 *', /month/);
    bad('* * * * 8', /day of week/);
    bad('*/0 * * * *', /step/);
    bad('5-1 * * * *', /backwards/);
    bad('1,,2 * * * *', /empty/);
    bad('* * * *', /5 fields/);
    bad('* * * * * * * *', /5 fields/);
    bad('0 0 0 1 1 * 0', /year: 0 is out of range/);
    bad('* * * * MON#6', /#1 to #5/);
    bad('x * * * *', /not a number/);
  });
});

describe('day of month and day of week (cronie/POSIX OR rule)', () => {
  it('both restricted: a day matching either runs', () => {
    // 2026-01-01 is a Thursday; Mondays are the 5th, 12th, 19th.
    assert.deepEqual(fires(cron('0 0 1,15 * MON'), '2025-12-31T12:00:00Z', 'UTC', 5), [
      '2026-01-01T00:00:00.000Z',
      '2026-01-05T00:00:00.000Z',
      '2026-01-12T00:00:00.000Z',
      '2026-01-15T00:00:00.000Z',
      '2026-01-19T00:00:00.000Z',
    ]);
  });
  it('either starting with * (even */2): both must match', () => {
    assert.deepEqual(fires(cron('0 0 * * MON'), '2025-12-31T12:00:00Z', 'UTC', 2), ['2026-01-05T00:00:00.000Z', '2026-01-12T00:00:00.000Z']);
    assert.deepEqual(fires(cron('0 0 1,15 * *'), '2025-12-31T12:00:00Z', 'UTC', 2), ['2026-01-01T00:00:00.000Z', '2026-01-15T00:00:00.000Z']);
    // Odd days that are Mondays: Jan 5, Jan 19, Feb 9.
    assert.deepEqual(fires(cron('0 0 */2 * MON'), '2025-12-31T12:00:00Z', 'UTC', 3), [
      '2026-01-05T00:00:00.000Z',
      '2026-01-19T00:00:00.000Z',
      '2026-02-09T00:00:00.000Z',
    ]);
  });
  it('a leading + asks for AND (croner extension)', () => {
    // The 13th that is a Friday: 2026-02-13, 2026-03-13, 2026-11-13.
    assert.deepEqual(fires(cron('0 0 13 * +FRI'), '2026-01-01T00:00:00Z', 'UTC', 3), [
      '2026-02-13T00:00:00.000Z',
      '2026-03-13T00:00:00.000Z',
      '2026-11-13T00:00:00.000Z',
    ]);
  });
});

describe('cron that can never fire, and far fires', () => {
  it('Feb 30, Apr 31 and friends are refused at validation', () => {
    for (const e of ['0 0 30 2 *', '0 0 31 4,6,9,11 *', '0 0 30,31 2 *', '0 0 1 2 +MON#5']) {
      assert.equal(cronNeverFires(parseCron(e)), true, e);
      const issues = scheduleIssues(S(cron(e)));
      assert.equal(issues.length, 1, e);
      assert.match(issues[0]!, /never fires/);
    }
    for (const e of ['0 0 29 2 *', '0 0 31 * *', '0 0 30 2 MON', '0 0 * 2 MON#5']) assert.equal(cronNeverFires(parseCron(e)), false, e);
  });
  it('with a year field, each year of the 400-year cycle is looked at once (the same answer as walking every allowed year)', () => {
    assert.equal(cronNeverFires(parseCron('0 0 0 29 2 * 2100')), true, '2100 is no leap year');
    assert.equal(cronNeverFires(parseCron('0 0 0 29 2 * 2100,2104')), false);
    assert.equal(cronNeverFires(parseCron('0 0 0 29 2 * 1700-1900/100')), true);
    assert.equal(cronNeverFires(parseCron('0 0 0 29 2 * 1700-2000/100')), false, '2000 is');
    assert.equal(cronNeverFires(parseCron('0 0 0 1-7 * +1#5 1-9999')), true, 'a 5th Monday in the first week: never, in any year');
    assert.equal(cronNeverFires(parseCron('0 0 0 29 2 +MON 1-9999')), false);
  });
  it('an instant that is not one (NaN, Infinity) or an answer past what a Date holds is null, not an endless walk', { timeout: 10_000 }, () => {
    const spec = parseCron('0 3 * * *');
    for (const tz of ['UTC', 'Europe/Berlin']) {
      for (const at of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        assert.equal(cronNext(spec, at, tz), null, `next ${at} ${tz}`);
        assert.equal(cronPrevious(spec, at, tz), null, `previous ${at} ${tz}`);
      }
    }
    assert.equal(cronNext(spec, 8.64e15, 'UTC'), null, 'the next 03:00 is after the last instant a Date holds');
    assert.equal(cronPrevious(spec, -8.64e15, 'UTC'), null);
  });
  it('a stored never-firing expression answers null, promptly, both ways', () => {
    assert.equal(next(cron('0 0 30 2 *'), '2026-01-01T00:00:00Z'), null);
    assert.equal(previous(cron('0 0 30 2 *'), '2026-01-01T00:00:00Z'), null);
  });
  it('Feb 29 is found across the 8-year gap of 2100', () => {
    assert.equal(next(cron('0 0 29 2 *'), '2097-01-01T00:00:00Z'), '2104-02-29T00:00:00.000Z');
    assert.equal(previous(cron('0 0 29 2 *'), '2103-12-31T00:00:00Z'), '2096-02-29T00:00:00.000Z');
  });
  it('rare AND dates match a brute-force search over calendar days', () => {
    for (const e of ['0 0 29 2 +FRI', '0 0 * 2 MON#5', '0 0 31 12 +SUN#5', '0 12 29 2 +SAT']) {
      const spec = parseCron(e);
      let day = Date.UTC(2026, 0, 1);
      while (!cronDayMatches(spec, new Date(day).getUTCFullYear(), new Date(day).getUTCMonth() + 1, new Date(day).getUTCDate())) day += 86_400_000;
      const expected = new Date(day + spec.hours[0]! * 3_600_000).toISOString();
      assert.equal(next(cron(e), '2026-01-01T00:00:00Z'), expected, e);
      assert.ok(Date.parse(expected) - Date.UTC(2026, 0, 1) > 2 * 366 * 86_400_000, `${e} is a far date`);
    }
  });
});

describe("cronie's daylight-saving rule", () => {
  describe('Europe/Berlin spring forward, 2026-03-29 (02:00 CET → 03:00 CEST at 01:00Z)', () => {
    it('fixed-time jobs (values, lists, ranges): a gap time runs once at 03:00', () => {
      assert.deepEqual(fires(cron('30 1,2 * * *'), '2026-03-28T12:00:00Z', 'Europe/Berlin', 4), [
        '2026-03-29T00:30:00.000Z', // 01:30 CET
        '2026-03-29T01:00:00.000Z', // 02:30 does not exist → 03:00 CEST
        '2026-03-29T23:30:00.000Z', // 01:30 CEST on the 30th
        '2026-03-30T00:30:00.000Z', // 02:30 CEST
      ]);
      assert.equal(next(cron('30 2 * * *'), '2026-03-28T12:00:00Z', 'Europe/Berlin'), '2026-03-29T01:00:00.000Z');
      // Several gap times of one job collapse into one run at the gap's end; 03:00 is the same instant.
      assert.deepEqual(fires(cron('0,30 2-3 * * *'), '2026-03-29T00:00:00Z', 'Europe/Berlin', 3), [
        '2026-03-29T01:00:00.000Z',
        '2026-03-29T01:30:00.000Z',
        '2026-03-30T00:00:00.000Z',
      ]);
      assert.equal(next(cron('15 2 * * 0'), '2026-03-28T00:00:00Z', 'Europe/Berlin'), '2026-03-29T01:00:00.000Z');
    });
    it('wildcard jobs (minute or hour starting with *): gap minutes do not exist', () => {
      assert.deepEqual(fires(cron('*/30 * * * *'), '2026-03-29T00:15:00Z', 'Europe/Berlin', 3), [
        '2026-03-29T00:30:00.000Z', // 01:30 CET
        '2026-03-29T01:00:00.000Z', // 03:00 CEST: 02:00 and 02:30 are skipped
        '2026-03-29T01:30:00.000Z',
      ]);
      assert.equal(next(cron('* 2 * * *'), '2026-03-28T12:00:00Z', 'Europe/Berlin'), '2026-03-30T00:00:00.000Z');
      assert.equal(next(cron('30 * * * *'), '2026-03-29T00:45:00Z', 'Europe/Berlin'), '2026-03-29T01:30:00.000Z');
    });
  });
  describe('Europe/Berlin fall back, 2026-10-25 (03:00 CEST → 02:00 CET at 01:00Z)', () => {
    it('fixed-time jobs run once, in the first pass', () => {
      assert.deepEqual(fires(cron('30 1,2 * * *'), '2026-10-24T12:00:00Z', 'Europe/Berlin', 3), [
        '2026-10-24T23:30:00.000Z', // 01:30 CEST
        '2026-10-25T00:30:00.000Z', // 02:30 CEST, not again at 02:30 CET
        '2026-10-26T00:30:00.000Z', // 01:30 CET
      ]);
      assert.deepEqual(fires(cron('0 2-3 * * *'), '2026-10-24T12:00:00Z', 'Europe/Berlin', 3), [
        '2026-10-25T00:00:00.000Z',
        '2026-10-25T02:00:00.000Z',
        '2026-10-26T01:00:00.000Z',
      ]);
    });
    it('wildcard jobs run in both passes', () => {
      assert.deepEqual(fires(cron('*/30 * * * *'), '2026-10-25T00:15:00Z', 'Europe/Berlin', 4), [
        '2026-10-25T00:30:00.000Z', // 02:30 CEST
        '2026-10-25T01:00:00.000Z', // 02:00 CET
        '2026-10-25T01:30:00.000Z', // 02:30 CET
        '2026-10-25T02:00:00.000Z', // 03:00 CET
      ]);
      assert.deepEqual(fires(cron('30 * * * *'), '2026-10-25T00:00:00Z', 'Europe/Berlin', 2), ['2026-10-25T00:30:00.000Z', '2026-10-25T01:30:00.000Z']);
    });
    it('the previous fire mirrors the next', () => {
      assert.equal(previous(cron('30 2 * * *'), '2026-10-25T03:00:00Z', 'Europe/Berlin'), '2026-10-25T00:30:00.000Z');
      assert.equal(previous(cron('30 * * * *'), '2026-10-25T01:45:00Z', 'Europe/Berlin'), '2026-10-25T01:30:00.000Z');
      assert.equal(previous(cron('30 2 * * *'), '2026-03-29T05:00:00Z', 'Europe/Berlin'), '2026-03-29T01:00:00.000Z');
    });
  });
  describe('America/New_York, 2026', () => {
    it('spring forward 2026-03-08 02:00 EST → 03:00 EDT', () => {
      assert.equal(next(cron('30 2 * * *'), '2026-03-07T12:00:00Z', 'America/New_York'), '2026-03-08T07:00:00.000Z');
      assert.equal(next(cron('30 * * * *'), '2026-03-08T06:45:00Z', 'America/New_York'), '2026-03-08T07:30:00.000Z');
    });
    it('fall back 2026-11-01 02:00 EDT → 01:00 EST', () => {
      assert.deepEqual(fires(cron('30 1 * * *'), '2026-10-31T12:00:00Z', 'America/New_York', 2), ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
      assert.deepEqual(fires(cron('30 * * * *'), '2026-11-01T05:00:00Z', 'America/New_York', 2), ['2026-11-01T05:30:00.000Z', '2026-11-01T06:30:00.000Z']);
    });
  });
  describe('Australia/Lord_Howe: 30-minute changes', () => {
    it('spring forward 2026-10-04 02:00 → 02:30 (+10:30 → +11)', () => {
      assert.equal(next(cron('15 2 * * *'), '2026-10-03T12:00:00Z', 'Australia/Lord_Howe'), '2026-10-03T15:30:00.000Z');
      assert.equal(next(cron('*/15 2 * * *'), '2026-10-03T12:00:00Z', 'Australia/Lord_Howe'), '2026-10-03T15:30:00.000Z');
    });
    it('fall back 2026-04-05 02:00 → 01:30 (+11 → +10:30)', () => {
      assert.deepEqual(fires(cron('45 1 * * *'), '2026-04-04T12:00:00Z', 'Australia/Lord_Howe', 2), ['2026-04-04T14:45:00.000Z', '2026-04-05T15:15:00.000Z']);
      assert.deepEqual(fires(cron('45 * * * *'), '2026-04-04T14:00:00Z', 'Australia/Lord_Howe', 2), ['2026-04-04T14:45:00.000Z', '2026-04-04T15:15:00.000Z']);
    });
  });
  describe('America/Santiago: changes at midnight', () => {
    it('0 22,23 runs once in the repeated 23:00 (2026-04-04 24:00 → 23:00)', () => {
      assert.deepEqual(fires(cron('0 22,23 * * *'), '2026-04-04T12:00:00Z', 'America/Santiago', 3), [
        '2026-04-05T01:00:00.000Z', // 22:00 -03
        '2026-04-05T02:00:00.000Z', // 23:00 -03, not again at 23:00 -04
        '2026-04-06T02:00:00.000Z', // 22:00 -04
      ]);
      assert.deepEqual(fires(cron('0 * * * *'), '2026-04-05T01:30:00Z', 'America/Santiago', 2), ['2026-04-05T02:00:00.000Z', '2026-04-05T03:00:00.000Z']);
    });
    it('@midnight on a day without a midnight (2026-09-06 00:00 → 01:00) runs at 01:00', () => {
      assert.equal(next(cron('@midnight'), '2026-09-05T12:00:00Z', 'America/Santiago'), '2026-09-06T04:00:00.000Z');
    });
  });
});

describe('one rule for the same intent, whatever the trigger', () => {
  const intent = [
    { type: 'daily', time: '02:30' },
    { type: 'weekly', days: ['sun'], time: '02:30' },
    { type: 'monthly', week: 'last', weekday: 'sun', time: '02:30' },
    { type: 'cron', expression: '30 2 * * *' },
    { type: 'cron', expression: '30 2 * * 0' },
  ];
  it('a wall time in the gap runs once, at the first instant after it', () => {
    for (const t of intent) assert.deepEqual(fires(t, '2026-03-28T12:00:00Z', 'Europe/Berlin', 1), ['2026-03-29T01:00:00.000Z'], JSON.stringify(t));
    assert.equal(next({ type: 'once', at: '2026-03-29T02:30' }, '2026-03-28T12:00:00Z', 'Europe/Berlin'), '2026-03-29T01:00:00.000Z');
    assert.equal(next({ type: 'daily', time: '02:15' }, '2026-10-03T12:00:00Z', 'Australia/Lord_Howe'), '2026-10-03T15:30:00.000Z');
  });
  it('a repeated wall time runs once, at its first occurrence', () => {
    for (const t of intent) {
      const [first, second] = fires(t, '2026-10-24T12:00:00Z', 'Europe/Berlin', 2);
      assert.equal(first, '2026-10-25T00:30:00.000Z', JSON.stringify(t));
      assert.ok(Date.parse(second!) > Date.parse('2026-10-26T00:00:00Z'), JSON.stringify(t));
    }
    assert.equal(next({ type: 'once', at: '2026-10-25T02:30' }, '2026-10-24T12:00:00Z', 'Europe/Berlin'), '2026-10-25T00:30:00.000Z');
  });
  it('a day that never happened (Pacific/Apia, 2011-12-30) runs once when the clock resumes', () => {
    const want = ['2011-12-29T22:00:00.000Z', '2011-12-30T10:00:00.000Z', '2011-12-30T22:00:00.000Z'];
    assert.deepEqual(fires({ type: 'daily', time: '12:00' }, '2011-12-29T12:00:00Z', 'Pacific/Apia', 3), want);
    assert.deepEqual(fires(cron('0 12 * * *'), '2011-12-29T12:00:00Z', 'Pacific/Apia', 3), want);
  });
});

describe('monthly nth weekday', () => {
  it('the 5th weekday runs only in months that have one', () => {
    // Fifth Fridays in 2026: Jan 30, May 29, Jul 31, Oct 30.
    assert.deepEqual(fires({ type: 'monthly', week: 5, weekday: 'fri', time: '09:00' }, '2026-01-01T00:00:00Z', 'UTC', 4), [
      '2026-01-30T09:00:00.000Z',
      '2026-05-29T09:00:00.000Z',
      '2026-07-31T09:00:00.000Z',
      '2026-10-30T09:00:00.000Z',
    ]);
    assert.deepEqual(scheduleIssues(S({ type: 'monthly', week: 5, weekday: 'fri', time: '09:00' })), []);
  });
  it('is found however far away: a 5th Monday of February', () => {
    // Only in leap years whose February starts on a Monday: 2016, then 2044.
    const t = { type: 'monthly', week: 5, weekday: 'mon', months: [2], time: '09:00' };
    assert.equal(next(t, '2016-03-01T00:00:00Z'), '2044-02-29T09:00:00.000Z');
    assert.equal(previous(t, '2044-01-01T00:00:00Z'), '2016-02-29T09:00:00.000Z');
  });
});
