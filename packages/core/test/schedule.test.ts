import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Schedule, Trigger } from '@garrison/protocol';
import {
  continuousRestartDelayMs,
  hasTrigger,
  isTimeTrigger,
  isWithinWindow,
  lastMissedFire,
  nextFireTime,
  nextScheduledFire,
  randomizedDelayMs,
  resolveTimeZone,
  resolveWallTime,
  retryDelayMs,
  scheduleIssues,
  timeTriggers,
} from '../src/index.ts';

// Weekday fields type poorly in the protocol's static types, so fixtures go through unknown.
const T = (t: unknown): Trigger => t as Trigger;
const S = (triggers: unknown[], extra: Partial<Omit<Schedule, 'triggers'>> = {}): Schedule => ({ triggers, ...extra }) as Schedule;
const d = (iso: string): Date => new Date(iso);
const iso = (x: Date | null): string | null => (x === null ? null : x.toISOString());

/** The next fire after `after`, for a schedule holding just this trigger. */
function next(trigger: unknown, after: string, tz: string, extra: Partial<Omit<Schedule, 'triggers'>> = {}): string | null {
  return iso(nextFireTime(T(trigger), S([trigger], extra), d(after), tz));
}

/** The first `n` fires after `after`. */
function fires(trigger: unknown, after: string, tz: string, n: number, extra: Partial<Omit<Schedule, 'triggers'>> = {}): string[] {
  const schedule = S([trigger], extra);
  const out: string[] = [];
  let t: Date | null = d(after);
  while (out.length < n) {
    t = nextFireTime(T(trigger), schedule, t, tz);
    if (t === null) break;
    out.push(t.toISOString());
  }
  return out;
}

describe('resolveTimeZone', () => {
  it('uses the device zone for undefined and "local"', () => {
    assert.equal(resolveTimeZone(S([{ type: 'on-demand' }]), 'Europe/Paris'), 'Europe/Paris');
    assert.equal(resolveTimeZone(S([{ type: 'on-demand' }], { timeBasis: 'local' }), 'Europe/Paris'), 'Europe/Paris');
  });
  it('uses UTC and named zones as given', () => {
    assert.equal(resolveTimeZone(S([{ type: 'on-demand' }], { timeBasis: 'UTC' }), 'Europe/Paris'), 'UTC');
    assert.equal(resolveTimeZone(S([{ type: 'on-demand' }], { timeBasis: 'Asia/Tokyo' }), 'Europe/Paris'), 'Asia/Tokyo');
  });
});

describe('trigger helpers', () => {
  const schedule = S([{ type: 'check-in' }, { type: 'daily', time: '09:00' }, { type: 'on-demand' }, { type: 'cron', expression: '0 * * * *' }]);
  it('timeTriggers keeps time triggers in order', () => {
    assert.deepEqual(
      timeTriggers(schedule).map((t) => t.type),
      ['daily', 'cron'],
    );
    assert.equal(isTimeTrigger(T({ type: 'once', at: '2026-01-01T00:00' })), true);
    assert.equal(isTimeTrigger(T({ type: 'continuous' })), false);
  });
  it('hasTrigger', () => {
    assert.equal(hasTrigger(schedule, 'check-in'), true);
    assert.equal(hasTrigger(schedule, 'on-demand'), true);
    assert.equal(hasTrigger(schedule, 'agent-start'), false);
  });
});

describe('nextFireTime: event triggers', () => {
  for (const trigger of [
    { type: 'continuous' },
    { type: 'check-in' },
    { type: 'policy-enforcement' },
    { type: 'agent-start' },
    { type: 'enrolment' },
    { type: 'after-task', taskId: 't1' },
    { type: 'on-demand' },
  ]) {
    it(`${trigger.type} has no fire time`, () => {
      assert.equal(next(trigger, '2026-01-01T00:00:00Z', 'UTC'), null);
    });
  }
});

describe('nextFireTime: once', () => {
  const once = { type: 'once', at: '2026-06-01T09:00' };
  it('fires at the wall time in the zone', () => {
    assert.equal(next(once, '2026-01-01T00:00:00Z', 'Europe/Paris'), '2026-06-01T07:00:00.000Z');
    assert.equal(next(once, '2026-01-01T00:00:00Z', 'UTC'), '2026-06-01T09:00:00.000Z');
    assert.equal(next(once, '2026-01-01T00:00:00Z', 'America/New_York'), '2026-06-01T13:00:00.000Z');
  });
  it('reads seconds', () => {
    assert.equal(next({ type: 'once', at: '2026-06-01T09:00:42' }, '2026-01-01T00:00:00Z', 'UTC'), '2026-06-01T09:00:42.000Z');
  });
  it('is null once in the past, and strictly after `after`', () => {
    assert.equal(next(once, '2026-07-01T00:00:00Z', 'UTC'), null);
    assert.equal(next(once, '2026-06-01T09:00:00Z', 'UTC'), null);
    assert.equal(next(once, '2026-06-01T08:59:59.999Z', 'UTC'), '2026-06-01T09:00:00.000Z');
  });
  it('applies the DST rules', () => {
    // Gap: 02:30 does not exist on 2026-03-29 in Paris → the gap's end, 03:00 CEST.
    assert.equal(next({ type: 'once', at: '2026-03-29T02:30' }, '2026-01-01T00:00:00Z', 'Europe/Paris'), '2026-03-29T01:00:00.000Z');
    // Repeated hour: 02:30 happens twice on 2026-10-25 in Paris → the first (CEST).
    assert.equal(next({ type: 'once', at: '2026-10-25T02:30' }, '2026-01-01T00:00:00Z', 'Europe/Paris'), '2026-10-25T00:30:00.000Z');
  });
  it('is null for an invalid date', () => {
    assert.equal(next({ type: 'once', at: '2026-02-30T09:00' }, '2026-01-01T00:00:00Z', 'UTC'), null);
  });
});

describe('nextFireTime: interval', () => {
  it('is anchored at the Unix epoch by default', () => {
    const every15 = { type: 'interval', every: 15, unit: 'minutes' };
    assert.equal(next(every15, '2026-05-05T10:07:12Z', 'Europe/Paris'), '2026-05-05T10:15:00.000Z');
    assert.deepEqual(fires(every15, '2026-05-05T10:15:00Z', 'UTC', 3), [
      '2026-05-05T10:30:00.000Z',
      '2026-05-05T10:45:00.000Z',
      '2026-05-05T11:00:00.000Z',
    ]);
  });
  it('counts hours', () => {
    assert.equal(next({ type: 'interval', every: 6, unit: 'hours' }, '2026-05-05T10:07:12Z', 'UTC'), '2026-05-05T12:00:00.000Z');
  });
  it('is anchored at startAt when given, and fires at startAt', () => {
    const every15 = { type: 'interval', every: 15, unit: 'minutes' };
    const extra = { startAt: '2026-05-05T10:07:00Z' };
    assert.equal(next(every15, '2026-05-01T00:00:00Z', 'UTC', extra), '2026-05-05T10:07:00.000Z');
    assert.equal(next(every15, '2026-05-05T10:07:00Z', 'UTC', extra), '2026-05-05T10:22:00.000Z');
    assert.equal(next(every15, '2026-05-06T00:00:00Z', 'UTC', extra), '2026-05-06T00:07:00.000Z');
  });
  it('is elapsed time across DST, not wall clock', () => {
    const hourly = { type: 'interval', every: 1, unit: 'hours' };
    const got = fires(hourly, '2026-03-28T23:30:00Z', 'Europe/Paris', 4);
    assert.deepEqual(got, ['2026-03-29T00:00:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-29T02:00:00.000Z', '2026-03-29T03:00:00.000Z']);
  });
});

describe('nextFireTime: daily', () => {
  const at = (time: string, extra: object = {}) => ({ type: 'daily', time, ...extra });
  it('fires today when the time is still ahead, else tomorrow', () => {
    assert.equal(next(at('09:00'), '2026-05-05T08:00:00Z', 'UTC'), '2026-05-05T09:00:00.000Z');
    assert.equal(next(at('09:00'), '2026-05-05T09:00:00Z', 'UTC'), '2026-05-06T09:00:00.000Z');
    assert.equal(next(at('00:00'), '2026-12-31T23:59:59Z', 'UTC'), '2027-01-01T00:00:00.000Z');
  });
  it('follows the zone offset through the year', () => {
    assert.equal(next(at('09:00'), '2026-01-10T00:00:00Z', 'Europe/Paris'), '2026-01-10T08:00:00.000Z');
    assert.equal(next(at('09:00'), '2026-07-10T00:00:00Z', 'Europe/Paris'), '2026-07-10T07:00:00.000Z');
    assert.equal(next(at('09:00'), '2026-01-10T00:00:00Z', 'America/New_York'), '2026-01-10T14:00:00.000Z');
    assert.equal(next(at('09:00'), '2026-07-10T00:00:00Z', 'America/New_York'), '2026-07-10T13:00:00.000Z');
  });
  it('fires once at the same wall time through the same day of a zone ahead of UTC', () => {
    // 00:30 in Tokyo is the previous day in UTC.
    assert.equal(next(at('00:30'), '2026-05-05T12:00:00Z', 'Asia/Tokyo'), '2026-05-05T15:30:00.000Z');
  });

  describe('Europe/Paris spring-forward, 2026-03-29 (02:00 CET → 03:00 CEST)', () => {
    it('a time before the gap keeps its wall time', () => {
      assert.deepEqual(fires(at('01:30'), '2026-03-28T12:00:00Z', 'Europe/Paris', 3), [
        '2026-03-29T00:30:00.000Z',
        '2026-03-29T23:30:00.000Z', // 01:30 CEST on the 30th
        '2026-03-30T23:30:00.000Z',
      ]);
    });
    it('a time inside the gap fires at the end of the gap (02:30 → 03:00), once', () => {
      assert.deepEqual(fires(at('02:30'), '2026-03-28T12:00:00Z', 'Europe/Paris', 3), [
        '2026-03-29T01:00:00.000Z', // 03:00 CEST
        '2026-03-30T00:30:00.000Z', // 02:30 CEST
        '2026-03-31T00:30:00.000Z',
      ]);
      assert.equal(next(at('02:00'), '2026-03-28T12:00:00Z', 'Europe/Paris'), '2026-03-29T01:00:00.000Z'); // 03:00 CEST
      assert.equal(next(at('02:59'), '2026-03-28T12:00:00Z', 'Europe/Paris'), '2026-03-29T01:00:00.000Z'); // 03:00 CEST
    });
    it('a time after the gap keeps its wall time', () => {
      assert.equal(next(at('03:30'), '2026-03-28T12:00:00Z', 'Europe/Paris'), '2026-03-29T01:30:00.000Z');
      assert.equal(next(at('09:00'), '2026-03-28T12:00:00Z', 'Europe/Paris'), '2026-03-29T07:00:00.000Z');
    });
  });

  describe('Europe/Paris fall-back, 2026-10-25 (03:00 CEST → 02:00 CET)', () => {
    it('a time in the repeated hour fires once, at the earlier instant', () => {
      assert.deepEqual(fires(at('02:30'), '2026-10-24T12:00:00Z', 'Europe/Paris', 3), [
        '2026-10-25T00:30:00.000Z', // 02:30 CEST, not 01:30Z (02:30 CET)
        '2026-10-26T01:30:00.000Z',
        '2026-10-27T01:30:00.000Z',
      ]);
    });
    it('other times keep their wall time', () => {
      assert.deepEqual(fires(at('09:00'), '2026-10-24T12:00:00Z', 'Europe/Paris', 2), ['2026-10-25T08:00:00.000Z', '2026-10-26T08:00:00.000Z']);
      assert.equal(next(at('01:30'), '2026-10-24T12:00:00Z', 'Europe/Paris'), '2026-10-24T23:30:00.000Z');
    });
  });

  describe('America/New_York spring-forward, 2026-03-08 (02:00 EST → 03:00 EDT)', () => {
    it('02:30 fires at 03:00 EDT, once', () => {
      assert.deepEqual(fires(at('02:30'), '2026-03-07T12:00:00Z', 'America/New_York', 3), [
        '2026-03-08T07:00:00.000Z',
        '2026-03-09T06:30:00.000Z',
        '2026-03-10T06:30:00.000Z',
      ]);
    });
    it('times around the gap', () => {
      assert.equal(next(at('01:59'), '2026-03-07T12:00:00Z', 'America/New_York'), '2026-03-08T06:59:00.000Z');
      assert.equal(next(at('03:00'), '2026-03-07T12:00:00Z', 'America/New_York'), '2026-03-08T07:00:00.000Z');
      assert.equal(next(at('09:00'), '2026-03-07T12:00:00Z', 'America/New_York'), '2026-03-07T14:00:00.000Z');
      assert.equal(next(at('09:00'), '2026-03-07T14:00:00Z', 'America/New_York'), '2026-03-08T13:00:00.000Z');
    });
  });

  describe('America/New_York fall-back, 2026-11-01 (02:00 EDT → 01:00 EST)', () => {
    it('01:30 fires once, at 01:30 EDT', () => {
      assert.deepEqual(fires(at('01:30'), '2026-10-31T12:00:00Z', 'America/New_York', 3), [
        '2026-11-01T05:30:00.000Z',
        '2026-11-02T06:30:00.000Z',
        '2026-11-03T06:30:00.000Z',
      ]);
      // Even asked from inside the repeated hour, it does not fire again at 01:30 EST.
      assert.equal(next(at('01:30'), '2026-11-01T05:45:00Z', 'America/New_York'), '2026-11-02T06:30:00.000Z');
    });
    it('02:30 is not ambiguous', () => {
      assert.equal(next(at('02:30'), '2026-10-31T12:00:00Z', 'America/New_York'), '2026-11-01T07:30:00.000Z');
    });
  });

  it('everyDays counts from the epoch day by default', () => {
    // 2026-01-01 is day 20454 since 1970-01-01, a multiple of 3.
    assert.deepEqual(fires(at('09:00', { everyDays: 3 }), '2025-12-31T12:00:00Z', 'UTC', 3), [
      '2026-01-01T09:00:00.000Z',
      '2026-01-04T09:00:00.000Z',
      '2026-01-07T09:00:00.000Z',
    ]);
    assert.equal(next(at('09:00', { everyDays: 3 }), '2026-01-01T09:00:00Z', 'UTC'), '2026-01-04T09:00:00.000Z');
  });
  it("everyDays counts from startAt's local date", () => {
    const extra = { startAt: '2026-01-01T23:30:00Z' }; // 2026-01-02 00:30 in Paris
    assert.deepEqual(fires(at('09:00', { everyDays: 2 }), '2025-12-01T00:00:00Z', 'Europe/Paris', 3, extra), [
      '2026-01-02T08:00:00.000Z',
      '2026-01-04T08:00:00.000Z',
      '2026-01-06T08:00:00.000Z',
    ]);
    // On its first day, a time before startAt is skipped: the next fire is everyDays later.
    assert.equal(next(at('00:15', { everyDays: 2 }), '2025-12-01T00:00:00Z', 'Europe/Paris', extra), '2026-01-03T23:15:00.000Z');
  });
});

describe('nextFireTime: weekly', () => {
  const mwf = { type: 'weekly', days: ['mon', 'wed', 'fri'], time: '08:00' };
  it('fires on each listed day', () => {
    // 2026-01-04 is a Sunday.
    assert.deepEqual(fires(mwf, '2026-01-04T12:00:00Z', 'UTC', 5), [
      '2026-01-05T08:00:00.000Z',
      '2026-01-07T08:00:00.000Z',
      '2026-01-09T08:00:00.000Z',
      '2026-01-12T08:00:00.000Z',
      '2026-01-14T08:00:00.000Z',
    ]);
  });
  it('fires the same day when the time is ahead', () => {
    assert.equal(next(mwf, '2026-01-05T07:00:00Z', 'UTC'), '2026-01-05T08:00:00.000Z');
    assert.equal(next(mwf, '2026-01-05T08:00:00Z', 'UTC'), '2026-01-07T08:00:00.000Z');
  });
  it('uses the local weekday of the zone', () => {
    // Monday 01:00 in Tokyo is Sunday 16:00 UTC.
    assert.equal(next({ type: 'weekly', days: ['mon'], time: '01:00' }, '2026-01-03T00:00:00Z', 'Asia/Tokyo'), '2026-01-04T16:00:00.000Z');
  });
  it('a single day fires weekly', () => {
    assert.deepEqual(fires({ type: 'weekly', days: ['sun'], time: '23:59' }, '2026-01-01T00:00:00Z', 'UTC', 2), [
      '2026-01-04T23:59:00.000Z',
      '2026-01-11T23:59:00.000Z',
    ]);
  });
  it('applies the gap rule on the DST Sunday', () => {
    assert.equal(next({ type: 'weekly', days: ['sun'], time: '02:15' }, '2026-03-28T00:00:00Z', 'Europe/Paris'), '2026-03-29T01:00:00.000Z');
    assert.equal(next({ type: 'weekly', days: ['sun'], time: '02:15' }, '2026-10-24T00:00:00Z', 'Europe/Paris'), '2026-10-25T00:15:00.000Z');
  });
});

describe('nextFireTime: monthly', () => {
  it('day 31 runs on the last day of shorter months', () => {
    assert.deepEqual(fires({ type: 'monthly', day: 31, time: '10:00' }, '2026-01-31T12:00:00Z', 'UTC', 4), [
      '2026-02-28T10:00:00.000Z',
      '2026-03-31T10:00:00.000Z',
      '2026-04-30T10:00:00.000Z',
      '2026-05-31T10:00:00.000Z',
    ]);
    assert.equal(next({ type: 'monthly', day: 30, time: '10:00' }, '2028-02-01T00:00:00Z', 'UTC'), '2028-02-29T10:00:00.000Z');
  });
  it('day N', () => {
    assert.equal(next({ type: 'monthly', day: 15, time: '10:00' }, '2026-01-15T09:59:00Z', 'UTC'), '2026-01-15T10:00:00.000Z');
    assert.equal(next({ type: 'monthly', day: 15, time: '10:00' }, '2026-01-15T10:00:00Z', 'UTC'), '2026-02-15T10:00:00.000Z');
    assert.equal(next({ type: 'monthly', day: 1, time: '00:00' }, '2026-12-15T00:00:00Z', 'UTC'), '2027-01-01T00:00:00.000Z');
  });
  it('"last" day', () => {
    assert.deepEqual(fires({ type: 'monthly', day: 'last', time: '23:00' }, '2026-01-01T00:00:00Z', 'UTC', 3), [
      '2026-01-31T23:00:00.000Z',
      '2026-02-28T23:00:00.000Z',
      '2026-03-31T23:00:00.000Z',
    ]);
  });
  it('2nd Tuesday', () => {
    assert.deepEqual(fires({ type: 'monthly', week: 2, weekday: 'tue', time: '09:00' }, '2026-01-01T00:00:00Z', 'UTC', 4), [
      '2026-01-13T09:00:00.000Z',
      '2026-02-10T09:00:00.000Z',
      '2026-03-10T09:00:00.000Z',
      '2026-04-14T09:00:00.000Z',
    ]);
  });
  it('1st Monday and 4th Sunday', () => {
    assert.equal(next({ type: 'monthly', week: 1, weekday: 'mon', time: '09:00' }, '2026-06-01T10:00:00Z', 'UTC'), '2026-07-06T09:00:00.000Z');
    assert.equal(next({ type: 'monthly', week: 4, weekday: 'sun', time: '09:00' }, '2026-03-01T00:00:00Z', 'UTC'), '2026-03-22T09:00:00.000Z');
  });
  it('last Friday', () => {
    assert.deepEqual(fires({ type: 'monthly', week: 'last', weekday: 'fri', time: '18:00' }, '2026-01-01T00:00:00Z', 'Europe/Paris', 4), [
      '2026-01-30T17:00:00.000Z',
      '2026-02-27T17:00:00.000Z',
      '2026-03-27T17:00:00.000Z',
      '2026-04-24T16:00:00.000Z',
    ]);
  });
  it('limited to the listed months', () => {
    assert.deepEqual(fires({ type: 'monthly', day: 15, time: '10:00', months: [3, 9] }, '2026-03-15T10:00:00Z', 'UTC', 3), [
      '2026-09-15T10:00:00.000Z',
      '2027-03-15T10:00:00.000Z',
      '2027-09-15T10:00:00.000Z',
    ]);
    assert.equal(next({ type: 'monthly', day: 'last', time: '10:00', months: [2] }, '2027-03-01T00:00:00Z', 'UTC'), '2028-02-29T10:00:00.000Z');
  });
  it('never fires when misconfigured', () => {
    assert.equal(next({ type: 'monthly', day: 1, week: 1, weekday: 'mon', time: '10:00' }, '2026-01-01T00:00:00Z', 'UTC'), null);
    assert.equal(next({ type: 'monthly', time: '10:00' }, '2026-01-01T00:00:00Z', 'UTC'), null);
    assert.equal(next({ type: 'monthly', week: 2, time: '10:00' }, '2026-01-01T00:00:00Z', 'UTC'), null);
  });
});

describe('nextFireTime: cron', () => {
  it('is evaluated in the time zone', () => {
    const weekdays9 = { type: 'cron', expression: '0 9 * * 1-5' };
    // Friday 2026-01-09 10:00 Paris → Monday 2026-01-12 09:00 CET.
    assert.equal(next(weekdays9, '2026-01-09T09:00:00Z', 'Europe/Paris'), '2026-01-12T08:00:00.000Z');
    assert.equal(next(weekdays9, '2026-07-09T09:00:00Z', 'Europe/Paris'), '2026-07-10T07:00:00.000Z');
    assert.equal(next(weekdays9, '2026-01-09T09:00:00Z', 'UTC'), '2026-01-12T09:00:00.000Z');
    assert.equal(next(weekdays9, '2026-01-09T09:00:00Z', 'America/New_York'), '2026-01-09T14:00:00.000Z');
  });
  it('is strictly after `after`', () => {
    const hourly = { type: 'cron', expression: '0 * * * *' };
    assert.equal(next(hourly, '2026-01-01T10:00:00Z', 'UTC'), '2026-01-01T11:00:00.000Z');
    assert.equal(next(hourly, '2026-01-01T09:59:59.999Z', 'UTC'), '2026-01-01T10:00:00.000Z');
  });
  it('accepts seconds and the croner extensions accepted before (L, W, #)', () => {
    assert.equal(next({ type: 'cron', expression: '*/10 * * * * *' }, '2026-01-01T10:00:01Z', 'UTC'), '2026-01-01T10:00:10.000Z');
    assert.equal(next({ type: 'cron', expression: '0 12 * * FRI#L' }, '2026-01-01T00:00:00Z', 'UTC'), '2026-01-30T12:00:00.000Z');
  });
  it("keeps cronie's DST rule for fixed-time jobs (first instant after a gap, once in a repeated hour)", () => {
    assert.equal(next({ type: 'cron', expression: '30 2 * * *' }, '2026-03-28T12:00:00Z', 'Europe/Paris'), '2026-03-29T01:00:00.000Z');
    assert.equal(next({ type: 'cron', expression: '30 2 * * *' }, '2026-10-25T00:30:00Z', 'Europe/Paris'), '2026-10-26T01:30:00.000Z');
  });
  it('is null for an invalid expression', () => {
    assert.equal(next({ type: 'cron', expression: 'not a cron' }, '2026-01-01T00:00:00Z', 'UTC'), null);
    assert.equal(next({ type: 'cron', expression: '2030-01-01T00:00:00' }, '2026-01-01T00:00:00Z', 'UTC'), null);
  });
});

describe('nextFireTime: startAt / endAt', () => {
  const daily = { type: 'daily', time: '09:00' };
  it('nothing before startAt', () => {
    assert.equal(next(daily, '2026-01-01T00:00:00Z', 'UTC', { startAt: '2026-02-01T10:00:00Z' }), '2026-02-02T09:00:00.000Z');
    assert.equal(next(daily, '2026-01-01T00:00:00Z', 'UTC', { startAt: '2026-02-01T09:00:00Z' }), '2026-02-01T09:00:00.000Z');
    assert.equal(next({ type: 'once', at: '2026-01-15T09:00' }, '2026-01-01T00:00:00Z', 'UTC', { startAt: '2026-02-01T00:00:00Z' }), null);
  });
  it('nothing after endAt (a fire exactly at endAt counts)', () => {
    const extra = { endAt: '2026-01-03T09:00:00Z' };
    assert.deepEqual(fires(daily, '2026-01-01T00:00:00Z', 'UTC', 10, extra), [
      '2026-01-01T09:00:00.000Z',
      '2026-01-02T09:00:00.000Z',
      '2026-01-03T09:00:00.000Z',
    ]);
    assert.equal(next(daily, '2026-01-03T09:00:00Z', 'UTC', extra), null);
  });
  it('startAt with an offset is an absolute instant', () => {
    assert.equal(next(daily, '2026-01-01T00:00:00Z', 'UTC', { startAt: '2026-02-01T10:00:00+02:00' }), '2026-02-01T09:00:00.000Z');
  });
  it('isWithinWindow', () => {
    const s = S([{ type: 'check-in' }], { startAt: '2026-01-01T00:00:00Z', endAt: '2026-02-01T00:00:00Z' });
    assert.equal(isWithinWindow(s, d('2025-12-31T23:59:59Z')), false);
    assert.equal(isWithinWindow(s, d('2026-01-01T00:00:00Z')), true);
    assert.equal(isWithinWindow(s, d('2026-02-01T00:00:00Z')), true);
    assert.equal(isWithinWindow(s, d('2026-02-01T00:00:00.001Z')), false);
    assert.equal(isWithinWindow(S([{ type: 'check-in' }]), d('1990-01-01T00:00:00Z')), true);
  });
});

describe('time basis', () => {
  const trigger = { type: 'daily', time: '09:00' };
  it('UTC ignores the device zone', () => {
    const s = S([trigger], { timeBasis: 'UTC' });
    const tz = resolveTimeZone(s, 'America/New_York');
    assert.equal(iso(nextFireTime(T(trigger), s, d('2026-01-10T00:00:00Z'), tz)), '2026-01-10T09:00:00.000Z');
  });
  it('local uses the device zone', () => {
    const s = S([trigger], { timeBasis: 'local' });
    assert.equal(iso(nextFireTime(T(trigger), s, d('2026-01-10T00:00:00Z'), resolveTimeZone(s, 'America/New_York'))), '2026-01-10T14:00:00.000Z');
    assert.equal(iso(nextFireTime(T(trigger), s, d('2026-01-10T00:00:00Z'), resolveTimeZone(s, 'Asia/Kolkata'))), '2026-01-10T03:30:00.000Z');
  });
  it('a named zone overrides the device zone', () => {
    const s = S([trigger], { timeBasis: 'Europe/Paris' });
    assert.equal(iso(nextFireTime(T(trigger), s, d('2026-01-10T00:00:00Z'), resolveTimeZone(s, 'America/New_York'))), '2026-01-10T08:00:00.000Z');
  });
  it('an unknown zone is a RangeError', () => {
    assert.throws(() => nextFireTime(T(trigger), S([trigger]), d('2026-01-10T00:00:00Z'), 'Mars/Olympus'), RangeError);
  });
});

describe('resolveWallTime', () => {
  it('classifies single, gap and ambiguous wall times', () => {
    const w = (month: number, day: number, hour: number, minute: number) => ({ year: 2026, month, day, hour, minute, second: 0 });
    assert.equal(resolveWallTime(w(6, 1, 12, 0), 'Europe/Paris').kind, 'single');
    assert.deepEqual(resolveWallTime(w(3, 29, 2, 30), 'Europe/Paris'), { instant: Date.parse('2026-03-29T01:00:00Z'), kind: 'gap' });
    assert.deepEqual(resolveWallTime(w(10, 25, 2, 30), 'Europe/Paris'), { instant: Date.parse('2026-10-25T00:30:00Z'), kind: 'ambiguous' });
    assert.deepEqual(resolveWallTime(w(11, 1, 1, 30), 'America/New_York'), { instant: Date.parse('2026-11-01T05:30:00Z'), kind: 'ambiguous' });
    // Lord Howe Island moves by 30 minutes: 02:15 in its 02:00-02:30 gap becomes 02:30 (+11:00).
    assert.deepEqual(resolveWallTime(w(10, 4, 2, 15), 'Australia/Lord_Howe'), { instant: Date.parse('2026-10-03T15:30:00Z'), kind: 'gap' });
  });
});

describe('nextScheduledFire', () => {
  it('takes the earliest time trigger and ignores event triggers', () => {
    const s = S([
      { type: 'check-in' },
      { type: 'daily', time: '09:00' },
      { type: 'weekly', days: ['tue'], time: '08:00' },
      { type: 'on-demand' },
    ]);
    // 2026-01-06 is a Tuesday.
    const got = nextScheduledFire(s, d('2026-01-06T00:00:00Z'), 'UTC');
    assert.equal(iso(got?.at ?? null), '2026-01-06T08:00:00.000Z');
    assert.equal(got?.trigger.type, 'weekly');
    const got2 = nextScheduledFire(s, d('2026-01-06T08:00:00Z'), 'UTC');
    assert.equal(iso(got2?.at ?? null), '2026-01-06T09:00:00.000Z');
    assert.equal(got2?.trigger.type, 'daily');
  });
  it('is null without time triggers or when all are spent', () => {
    assert.equal(nextScheduledFire(S([{ type: 'check-in' }, { type: 'continuous' }]), d('2026-01-06T00:00:00Z'), 'UTC'), null);
    assert.equal(nextScheduledFire(S([{ type: 'once', at: '2020-01-01T00:00' }]), d('2026-01-06T00:00:00Z'), 'UTC'), null);
  });
});

describe('lastMissedFire', () => {
  it('is the latest fire in (from, to]', () => {
    const s = S([{ type: 'daily', time: '09:00' }]);
    assert.equal(iso(lastMissedFire(s, d('2026-01-01T00:00:00Z'), d('2026-01-05T12:00:00Z'), 'UTC')), '2026-01-05T09:00:00.000Z');
    assert.equal(iso(lastMissedFire(s, d('2026-01-01T00:00:00Z'), d('2026-01-05T09:00:00Z'), 'UTC')), '2026-01-05T09:00:00.000Z');
    assert.equal(iso(lastMissedFire(s, d('2026-01-01T00:00:00Z'), d('2026-01-05T08:59:59Z'), 'UTC')), '2026-01-04T09:00:00.000Z');
  });
  it('excludes `from` and returns null when nothing was missed', () => {
    const s = S([{ type: 'daily', time: '09:00' }]);
    assert.equal(lastMissedFire(s, d('2026-01-05T09:00:00Z'), d('2026-01-05T12:00:00Z'), 'UTC'), null);
    assert.equal(lastMissedFire(s, d('2026-01-05T10:00:00Z'), d('2026-01-06T08:00:00Z'), 'UTC'), null);
    assert.equal(lastMissedFire(S([{ type: 'check-in' }]), d('2026-01-01T00:00:00Z'), d('2027-01-01T00:00:00Z'), 'UTC'), null);
  });
  it('is arithmetic for an every-minute interval missed for a year', () => {
    const s = S([{ type: 'interval', every: 1, unit: 'minutes' }]);
    const started = performance.now();
    const got = lastMissedFire(s, d('2025-01-01T00:00:00Z'), d('2026-01-01T12:34:56.789Z'), 'UTC');
    assert.equal(iso(got), '2026-01-01T12:34:00.000Z');
    assert.ok(performance.now() - started < 250);
  });
  it('is fast for an every-minute cron missed for a year', () => {
    const s = S([{ type: 'cron', expression: '* * * * *' }]);
    const started = performance.now();
    assert.equal(iso(lastMissedFire(s, d('2025-01-01T00:00:00Z'), d('2026-01-01T12:34:56Z'), 'Europe/Paris')), '2026-01-01T12:34:00.000Z');
    assert.ok(performance.now() - started < 500);
  });
  it('interval anchored at startAt', () => {
    const s = S([{ type: 'interval', every: 7, unit: 'minutes' }], { startAt: '2026-01-01T00:03:00Z' });
    assert.equal(iso(lastMissedFire(s, d('2026-01-01T00:00:00Z'), d('2026-01-01T01:00:00Z'), 'UTC')), '2026-01-01T00:59:00.000Z');
    assert.equal(lastMissedFire(s, d('2025-12-31T00:00:00Z'), d('2026-01-01T00:02:00Z'), 'UTC'), null);
  });
  it('weekly, monthly, once and cron', () => {
    const from = d('2025-06-01T00:00:00Z');
    const to = d('2026-01-08T12:00:00Z'); // a Thursday
    assert.equal(iso(lastMissedFire(S([{ type: 'weekly', days: ['mon', 'fri'], time: '08:00' }]), from, to, 'UTC')), '2026-01-05T08:00:00.000Z');
    assert.equal(iso(lastMissedFire(S([{ type: 'monthly', week: 'last', weekday: 'fri', time: '08:00' }]), from, to, 'UTC')), '2025-12-26T08:00:00.000Z');
    assert.equal(iso(lastMissedFire(S([{ type: 'monthly', day: 31, time: '08:00', months: [11] }]), from, to, 'UTC')), '2025-11-30T08:00:00.000Z');
    assert.equal(iso(lastMissedFire(S([{ type: 'once', at: '2025-07-01T10:00' }]), from, to, 'Europe/Paris')), '2025-07-01T08:00:00.000Z');
    assert.equal(lastMissedFire(S([{ type: 'once', at: '2025-05-01T10:00' }]), from, to, 'UTC'), null);
    assert.equal(iso(lastMissedFire(S([{ type: 'cron', expression: '0 0 1 * *' }]), from, to, 'UTC')), '2026-01-01T00:00:00.000Z');
  });
  it('takes the latest over several triggers', () => {
    const s = S([
      { type: 'daily', time: '06:00' },
      { type: 'weekly', days: ['thu'], time: '11:00' },
      { type: 'check-in' },
    ]);
    assert.equal(iso(lastMissedFire(s, d('2026-01-01T00:00:00Z'), d('2026-01-08T12:00:00Z'), 'UTC')), '2026-01-08T11:00:00.000Z');
  });
  it('respects startAt and endAt', () => {
    const s = S([{ type: 'daily', time: '09:00' }], { startAt: '2026-01-03T00:00:00Z', endAt: '2026-01-05T00:00:00Z' });
    assert.equal(iso(lastMissedFire(s, d('2026-01-01T00:00:00Z'), d('2026-01-10T00:00:00Z'), 'UTC')), '2026-01-04T09:00:00.000Z');
    assert.equal(lastMissedFire(s, d('2026-01-01T00:00:00Z'), d('2026-01-03T08:00:00Z'), 'UTC'), null);
    assert.equal(lastMissedFire(s, d('2026-01-06T00:00:00Z'), d('2026-01-10T00:00:00Z'), 'UTC'), null);
  });
  it('agrees with stepping nextFireTime through both DST changes', () => {
    const triggers = [
      { type: 'daily', time: '02:30' },
      { type: 'daily', time: '01:30', everyDays: 3 },
      { type: 'weekly', days: ['sun', 'wed'], time: '02:15' },
      { type: 'monthly', week: 'last', weekday: 'sun', time: '02:30' },
      { type: 'monthly', day: 'last', time: '23:30' },
      { type: 'interval', every: 7, unit: 'hours' },
      { type: 'cron', expression: '30 2 * * 0' },
    ];
    for (const tz of ['Europe/Paris', 'America/New_York']) {
      for (const trigger of triggers) {
        const s = S([trigger]);
        const all: number[] = [];
        let t: Date | null = d('2026-02-01T00:00:00Z');
        while (t !== null && t.getTime() < Date.parse('2026-12-01T00:00:00Z')) {
          t = nextFireTime(T(trigger), s, t, tz);
          if (t !== null) all.push(t.getTime());
        }
        for (const probe of ['2026-03-08T08:00:00Z', '2026-03-29T03:00:00Z', '2026-03-29T01:30:00Z', '2026-10-25T00:30:00Z', '2026-10-25T01:30:00Z', '2026-11-01T06:00:00Z', '2026-11-01T05:30:00Z', '2026-11-02T12:00:00Z']) {
          const to = Date.parse(probe);
          const expected = all.filter((x) => x <= to).at(-1);
          const got = lastMissedFire(s, d('2026-02-01T00:00:00Z'), new Date(to), tz);
          assert.equal(got?.getTime(), expected, `${tz} ${JSON.stringify(trigger)} at ${probe}`);
        }
      }
    }
  });
});

describe('delays', () => {
  it('randomizedDelayMs scales random over the window', () => {
    const s = S([{ type: 'daily', time: '09:00' }], { randomizeMinutes: 10 });
    assert.equal(randomizedDelayMs(s, 0), 0);
    assert.equal(randomizedDelayMs(s, 0.5), 300_000);
    assert.ok(randomizedDelayMs(s, 0.999999) < 600_000);
    assert.equal(randomizedDelayMs(S([{ type: 'daily', time: '09:00' }]), 0.7), 0);
    assert.equal(randomizedDelayMs(S([{ type: 'daily', time: '09:00' }], { randomizeMinutes: 0 }), 0.7), 0);
  });
  it('retryDelayMs: constant without factor, exponential with it, null when used up', () => {
    const constant = S([{ type: 'check-in' }], { retry: { attempts: 3, delaySeconds: 30 } });
    assert.deepEqual([1, 2, 3, 4].map((n) => retryDelayMs(constant, n)), [30_000, 30_000, 30_000, null]);
    const backoff = S([{ type: 'check-in' }], { retry: { attempts: 4, delaySeconds: 10, factor: 2 } });
    assert.deepEqual([1, 2, 3, 4, 5].map((n) => retryDelayMs(backoff, n)), [10_000, 20_000, 40_000, 80_000, null]);
    const oneAndHalf = S([{ type: 'check-in' }], { retry: { attempts: 2, delaySeconds: 10, factor: 1.5 } });
    assert.equal(retryDelayMs(oneAndHalf, 2), 15_000);
    assert.equal(retryDelayMs(S([{ type: 'check-in' }]), 1), null);
    assert.equal(retryDelayMs(S([{ type: 'check-in' }], { retry: { attempts: 0, delaySeconds: 10 } }), 1), null);
    assert.equal(retryDelayMs(backoff, 0), null);
  });
  it('continuousRestartDelayMs doubles per quick exit up to the cap', () => {
    const t = { type: 'continuous' as const };
    assert.deepEqual([0, 1, 2, 3, 6, 7, 100].map((n) => continuousRestartDelayMs(t, n)), [5_000, 10_000, 20_000, 40_000, 300_000, 300_000, 300_000]);
    const custom = { type: 'continuous' as const, backoffSeconds: 1, maxBackoffSeconds: 10 };
    assert.deepEqual([0, 1, 2, 3, 4].map((n) => continuousRestartDelayMs(custom, n)), [1_000, 2_000, 4_000, 8_000, 10_000]);
  });
});

describe('scheduleIssues', () => {
  it('accepts valid schedules', () => {
    assert.deepEqual(
      scheduleIssues(
        S(
          [
            { type: 'on-demand' },
            { type: 'check-in' },
            { type: 'once', at: '2026-03-29T02:30' },
            { type: 'interval', every: 15, unit: 'minutes' },
            { type: 'daily', time: '09:00', everyDays: 2 },
            { type: 'weekly', days: ['mon'], time: '09:00' },
            { type: 'monthly', day: 'last', time: '09:00' },
            { type: 'monthly', week: 'last', weekday: 'fri', time: '09:00' },
            { type: 'cron', expression: '0 9 * * 1-5' },
            { type: 'after-task', taskId: 'task-1' },
            { type: 'continuous', backoffSeconds: 5, maxBackoffSeconds: 60 },
          ],
          { timeBasis: 'Europe/Paris', startAt: '2026-01-01T00:00:00Z', endAt: '2027-01-01T00:00:00Z' },
        ),
      ),
      [],
    );
    assert.deepEqual(scheduleIssues(S([{ type: 'daily', time: '09:00' }], { timeBasis: 'local' })), []);
    assert.deepEqual(scheduleIssues(S([{ type: 'daily', time: '09:00' }], { timeBasis: 'UTC' })), []);
  });
  const one = (schedule: Schedule, pattern: RegExp) => {
    const issues = scheduleIssues(schedule);
    assert.equal(issues.length, 1, issues.join('; '));
    assert.match(issues[0], pattern);
  };
  it('an unknown time zone', () => one(S([{ type: 'daily', time: '09:00' }], { timeBasis: 'Europe/Atlantis' }), /time zone/));
  it('a bad cron expression', () => {
    one(S([{ type: 'cron', expression: '61 * * * *' }]), /cron/);
    one(S([{ type: 'cron', expression: 'every day at nine' }]), /cron/);
    one(S([{ type: 'cron', expression: '2030-01-01T00:00:00' }]), /invalid cron expression .*5 fields/);
  });
  it('monthly needs exactly one of day or week+weekday', () => {
    one(S([{ type: 'monthly', time: '09:00' }]), /either day/);
    one(S([{ type: 'monthly', time: '09:00', day: 1, week: 1, weekday: 'mon' }]), /not both/);
    one(S([{ type: 'monthly', time: '09:00', week: 1 }]), /go together/);
    one(S([{ type: 'monthly', time: '09:00', weekday: 'mon' }]), /go together/);
  });
  it('startAt after endAt, and unparsable bounds', () => {
    one(S([{ type: 'check-in' }], { startAt: '2026-02-01T00:00:00Z', endAt: '2026-01-01T00:00:00Z' }), /startAt is after endAt/);
    one(S([{ type: 'check-in' }], { startAt: 'tomorrow' }), /startAt/);
  });
  it('after-task without a task', () => one(S([{ type: 'after-task', taskId: '' }]), /taskId/));
  it('once at an invalid date', () => {
    one(S([{ type: 'once', at: '2026-02-30T09:00' }]), /not a valid date/);
    one(S([{ type: 'once', at: 'next tuesday' }]), /not a valid date/);
  });
  it('reports several problems with their trigger index', () => {
    const issues = scheduleIssues(S([{ type: 'check-in' }, { type: 'cron', expression: 'x' }, { type: 'after-task', taskId: ' ' }], { timeBasis: 'Nowhere/Land' }));
    assert.equal(issues.length, 3);
    assert.ok(issues.some((i) => i.startsWith('triggers[1] (cron)')));
    assert.ok(issues.some((i) => i.startsWith('triggers[2] (after-task)')));
  });
});
