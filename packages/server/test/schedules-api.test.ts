/**
 * Schedules through the real HTTP API (issue 13), on every configured database: cron
 * nicknames, steps with a numeric start and the 5th weekday are accepted; a cron expression
 * that can never fire is refused with SCHEDULE_INVALID and nothing is stored; next fires the
 * server computes (a server task's nextRunAt) keep the daylight-saving rule of ADR 0016 and
 * find fires however far away.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from 'typebox';
import type { ServerTask, Task } from '@garrison/protocol';
import { dbKinds, startTestServer, type TestServer } from './helpers.ts';
import { defineServerTaskType } from '../src/server-tasks/server-task.ts';

const noop = defineServerTaskType<Record<string, never>>({
  type: 'noop',
  name: 'No-op',
  description: 'Does nothing (tests only).',
  settingsSchema: Type.Object({}, { additionalProperties: false }),
  async run() {
    return { summary: 'nothing done' };
  },
});

const NICKNAMES = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'];

for (const kind of dbKinds) {
  describe(`schedules over the API (${kind.name})`, () => {
    let t: TestServer;
    let scope: { type: 'group'; groupId: string };
    before(async () => {
      t = await startTestServer(kind, { serverTaskTypes: [noop] });
      const g = await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Schedules' });
      scope = { type: 'group', groupId: g.body.id };
    });
    after(() => t.close());

    const createTask = (name: string, schedule: unknown) =>
      t.api<Task & { error?: { code: string; message: string } }>('POST', '/api/v1/tasks', { name, type: 'script', settings: { command: 'echo hi' }, schedule, scope });
    const nextRunAt = async (schedule: unknown): Promise<string | null> => {
      const r = await t.api<ServerTask>('POST', '/api/v1/server-tasks', { type: 'noop', name: `probe ${Math.random().toString(36).slice(2, 8)}`, settings: {}, schedule });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body.nextRunAt;
    };

    it('accepts every cron nickname, a numeric-start step and the 5th weekday, and stores them as given', async () => {
      const triggers = [
        ...NICKNAMES.map((expression) => ({ type: 'cron', expression })),
        { type: 'cron', expression: '6/23 * * * *' },
        { type: 'cron', expression: '0 9 1,15 * MON' },
        { type: 'monthly', week: 5, weekday: 'fri', time: '09:00' },
      ];
      for (const [i, trigger] of triggers.entries()) {
        const r = await createTask(`accepted ${i}`, { triggers: [trigger] });
        assert.equal(r.status, 201, `${JSON.stringify(trigger)}: ${JSON.stringify(r.body)}`);
        const stored = await t.api<Task>('GET', `/api/v1/tasks/${r.body.id}`);
        assert.deepEqual(stored.body.schedule.triggers, [trigger]);
      }
    });

    it('refuses cron that can never fire and bad fields with SCHEDULE_INVALID, storing nothing', async () => {
      const before = (await t.api<{ items: Task[] }>('GET', '/api/v1/tasks?limit=1000')).body.items.length;
      const cases: [string, RegExp][] = [
        ['0 0 30 2 *', /never fires/],
        ['0 0 31 4,6,9,11 *', /never fires/],
        ['@reboot', /agent-start/],
        ['61 * * * *', /minute: 61 is out of range/],
        ['* * * * MON#6', /#1 to #5/],
      ];
      for (const [expression, message] of cases) {
        const r = await createTask(`refused ${expression}`, { triggers: [{ type: 'cron', expression }] });
        assert.equal(r.status, 422, expression);
        assert.equal(r.body.error?.code, 'SCHEDULE_INVALID', expression);
        assert.match(r.body.error!.message, message);
      }
      const sixth = await createTask('sixth week', { triggers: [{ type: 'monthly', week: 6, weekday: 'fri', time: '09:00' }] });
      assert.equal(sixth.body.error?.code, 'VALIDATION_FAILED');
      assert.equal((await t.api<{ items: Task[] }>('GET', '/api/v1/tasks?limit=1000')).body.items.length, before, 'nothing stored from refused input');
      const st = await t.api<{ error: { code: string } }>('POST', '/api/v1/server-tasks', { type: 'noop', name: 'never', settings: {}, schedule: { triggers: [{ type: 'cron', expression: '0 0 30 2 *' }] } });
      assert.equal(st.body.error.code, 'SCHEDULE_INVALID');
    });

    it('computes next fires by the one daylight-saving rule (Europe/Berlin, 2030)', async () => {
      // 2030-03-31: 02:00 CET → 03:00 CEST at 01:00Z. 2030-10-27: 03:00 CEST → 02:00 CET at 01:00Z.
      const spring = { timeBasis: 'Europe/Berlin', startAt: '2030-03-30T12:00:00Z' };
      const fall = { timeBasis: 'Europe/Berlin', startAt: '2030-10-26T12:00:00Z' };
      const triggers: Record<string, unknown>[] = [
        { type: 'cron', expression: '30 2 * * *' },
        { type: 'cron', expression: '30 1,2 * * 0' },
        { type: 'daily', time: '02:30' },
        { type: 'weekly', days: ['sun'], time: '02:30' },
        { type: 'monthly', week: 'last', weekday: 'sun', time: '02:30' },
      ];
      for (const trigger of triggers) {
        // 30 1,2 on Sundays: its first fire is 01:30, before the gap.
        const sundayOnly = trigger.expression === '30 1,2 * * 0';
        assert.equal(await nextRunAt({ triggers: [trigger], ...spring }), sundayOnly ? '2030-03-31T00:30:00.000Z' : '2030-03-31T01:00:00.000Z', JSON.stringify(trigger));
        if (trigger.type !== 'monthly') {
          assert.equal(await nextRunAt({ triggers: [trigger], ...fall }), sundayOnly ? '2030-10-26T23:30:00.000Z' : '2030-10-27T00:30:00.000Z', JSON.stringify(trigger));
        }
      }
      assert.equal(await nextRunAt({ triggers: [{ type: 'once', at: '2030-03-31T02:30' }], timeBasis: 'Europe/Berlin' }), '2030-03-31T01:00:00.000Z');
      // A wildcard job follows the wall clock: the gap's minutes do not exist.
      assert.equal(await nextRunAt({ triggers: [{ type: 'cron', expression: '*/30 2 * * *' }], ...spring }), '2030-04-01T00:00:00.000Z');
    });

    it('finds far fires: @yearly, a 5th Monday of February (2044), Feb 29 past 2100', async () => {
      assert.equal(await nextRunAt({ triggers: [{ type: 'cron', expression: '@yearly' }], timeBasis: 'UTC', startAt: '2030-03-30T12:00:00Z' }), '2031-01-01T00:00:00.000Z');
      assert.equal(await nextRunAt({ triggers: [{ type: 'monthly', week: 5, weekday: 'mon', months: [2], time: '09:00' }], timeBasis: 'UTC' }), '2044-02-29T09:00:00.000Z');
      assert.equal(await nextRunAt({ triggers: [{ type: 'cron', expression: '0 0 29 2 *' }], timeBasis: 'UTC', startAt: '2097-01-01T00:00:00Z' }), '2104-02-29T00:00:00.000Z');
    });
  });
}
