/**
 * The --schedule spec language accepts what the API accepts: cron nicknames, steps with a
 * numeric start, the 5th weekday of a month. Unit tests, no server: the server side of the
 * same inputs is in packages/server/test/schedules-api.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Value } from 'typebox/value';
import { Trigger } from '@garrison/protocol';
import { CRON_NICKNAMES, formatTrigger, parseTriggerSpec, SCHEDULE_SPEC_HELP, ScheduleSpecError } from '../src/schedule-spec.ts';

const refuses = (spec: string, message: RegExp) =>
  assert.throws(() => parseTriggerSpec(spec), (e: Error) => e instanceof ScheduleSpecError && message.test(e.message), spec);

describe('schedule spec: cron', () => {
  it('accepts every cron nickname, in any case, and the API schema accepts the result', () => {
    for (const nickname of CRON_NICKNAMES) {
      for (const spec of [`cron:${nickname}`, `cron:${nickname.toUpperCase()}`, `cron:'${nickname}'`, `cron: ${nickname} `]) {
        const t = parseTriggerSpec(spec);
        assert.deepEqual(t, { type: 'cron', expression: nickname }, spec);
        assert.ok(Value.Check(Trigger, t), spec);
        assert.deepEqual(parseTriggerSpec(formatTrigger(t)), t);
      }
    }
  });
  it('refuses @reboot and unknown nicknames, saying what to use', () => {
    refuses('cron:@reboot', /agent-start/);
    refuses('cron:@fortnightly', /not a cron nickname.*@yearly/);
    refuses('cron:@daily 0', /5 fields.*nickname/);
  });
  it('passes steps with a numeric start through to the server', () => {
    assert.deepEqual(parseTriggerSpec('cron:6/23 * * * *'), { type: 'cron', expression: '6/23 * * * *' });
    assert.deepEqual(parseTriggerSpec("cron:'0 6/6 * * *'"), { type: 'cron', expression: '0 6/6 * * *' });
    assert.ok(Value.Check(Trigger, parseTriggerSpec('cron:6/23 * * * *')));
  });
  it('still refuses the wrong number of fields', () => {
    refuses('cron:0 3 * *', /5 fields/);
    refuses('cron:0 0 0 0 * * * *', /5 fields/);
    assert.deepEqual(parseTriggerSpec('cron:0 0 12 1 1 * 2030'), { type: 'cron', expression: '0 0 12 1 1 * 2030' });
  });
});

describe('schedule spec: monthly 5th weekday', () => {
  it('accepts 5th, fifth and 5, which the API schema accepts', () => {
    for (const w of ['5th', 'fifth', '5']) {
      const t = parseTriggerSpec(`monthly:${w}-fri@09:00`);
      assert.deepEqual(t, { type: 'monthly', week: 5, weekday: 'fri', time: '09:00' });
      assert.ok(Value.Check(Trigger, t));
    }
    assert.equal(formatTrigger({ type: 'monthly', week: 5, weekday: 'fri', time: '09:00' } as Trigger), 'monthly:5th-fri@09:00');
    assert.deepEqual(parseTriggerSpec('monthly:5th-fri@09:00'), { type: 'monthly', week: 5, weekday: 'fri', time: '09:00' });
  });
  it('refuses a 6th week', () => refuses('monthly:6th-fri@09:00', /5th-fri/));
  it('the help says so, and explains the day-of-month/day-of-week rule', () => {
    assert.match(SCHEDULE_SPEC_HELP, /1st-5th/);
    assert.match(SCHEDULE_SPEC_HELP, /@midnight/);
    assert.match(SCHEDULE_SPEC_HELP, /matching either/);
  });
});
