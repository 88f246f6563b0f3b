import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MaintenanceWindow } from '@garrison/protocol';
import { inMaintenanceWindow, nextMaintenanceWindow } from '../src/index.ts';

const W = (w: unknown): MaintenanceWindow => w as MaintenanceWindow;
const d = (iso: string): Date => new Date(iso);
function next(windows: unknown[], now: string, zone: string): { start: string; end: string } | null {
  const p = nextMaintenanceWindow(windows.map(W), d(now), zone);
  return p === null ? null : { start: p.start.toISOString(), end: p.end.toISOString() };
}

describe('maintenance windows', () => {
  it('no windows means no restriction', () => {
    assert.equal(inMaintenanceWindow([], d('2026-03-01T12:00:00Z'), 'UTC'), true);
    assert.equal(nextMaintenanceWindow([], d('2026-03-01T12:00:00Z'), 'UTC'), null);
  });

  it('finds the window in force and the next one (UTC)', () => {
    const w = [{ days: ['sun'], start: '02:00', durationMinutes: 240 }];
    // 2026-03-01 is a Sunday.
    assert.deepEqual(next(w, '2026-03-01T03:00:00Z', 'UTC'), { start: '2026-03-01T02:00:00.000Z', end: '2026-03-01T06:00:00.000Z' });
    assert.equal(inMaintenanceWindow(w.map(W), d('2026-03-01T03:00:00Z'), 'UTC'), true);
    assert.equal(inMaintenanceWindow(w.map(W), d('2026-03-01T06:00:00Z'), 'UTC'), false, 'end is exclusive');
    assert.equal(inMaintenanceWindow(w.map(W), d('2026-03-01T02:00:00Z'), 'UTC'), true, 'start is inclusive');
    assert.deepEqual(next(w, '2026-03-01T06:00:00Z', 'UTC'), { start: '2026-03-08T02:00:00.000Z', end: '2026-03-08T06:00:00.000Z' });
  });

  it('reads local time in the device zone and honours an explicit timeBasis', () => {
    const local = [{ days: ['mon'], start: '22:00', durationMinutes: 60 }];
    // Monday 2026-01-05 22:00 in Paris (UTC+1) = 21:00Z.
    assert.deepEqual(next(local, '2026-01-05T12:00:00Z', 'Europe/Paris'), { start: '2026-01-05T21:00:00.000Z', end: '2026-01-05T22:00:00.000Z' });
    const utc = [{ days: ['mon'], start: '22:00', durationMinutes: 60, timeBasis: 'UTC' }];
    assert.deepEqual(next(utc, '2026-01-05T12:00:00Z', 'Europe/Paris'), { start: '2026-01-05T22:00:00.000Z', end: '2026-01-05T23:00:00.000Z' });
    const ny = [{ days: ['mon'], start: '22:00', durationMinutes: 60, timeBasis: 'America/New_York' }];
    assert.deepEqual(next(ny, '2026-01-05T12:00:00Z', 'Europe/Paris'), { start: '2026-01-06T03:00:00.000Z', end: '2026-01-06T04:00:00.000Z' });
  });

  it('a start in the spring-forward gap begins at the end of the gap; duration is elapsed time', () => {
    // Europe/Paris jumps 02:00 → 03:00 on Sunday 2026-03-29 (01:00Z).
    const w = [{ days: ['sun'], start: '02:30', durationMinutes: 60 }];
    assert.deepEqual(next(w, '2026-03-28T12:00:00Z', 'Europe/Paris'), { start: '2026-03-29T01:00:00.000Z', end: '2026-03-29T02:00:00.000Z' });
    // The week after, 02:30 CEST = 00:30Z.
    assert.deepEqual(next(w, '2026-03-29T02:00:00Z', 'Europe/Paris'), { start: '2026-04-05T00:30:00.000Z', end: '2026-04-05T01:30:00.000Z' });
    // A window across the jump lasts its real duration: 01:00 CET (00:00Z) for 3 hours ends 03:00Z = 05:00 CEST.
    const across = [{ days: ['sun'], start: '01:00', durationMinutes: 180 }];
    assert.deepEqual(next(across, '2026-03-28T12:00:00Z', 'Europe/Paris'), { start: '2026-03-29T00:00:00.000Z', end: '2026-03-29T03:00:00.000Z' });
  });

  it('an ambiguous start (fall-back) is the first pass through the repeated hour', () => {
    // Europe/Paris falls back 03:00 → 02:00 on Sunday 2026-10-25 (01:00Z); 02:30 first happens at 00:30Z.
    const w = [{ days: ['sun'], start: '02:30', durationMinutes: 30 }];
    assert.deepEqual(next(w, '2026-10-24T12:00:00Z', 'Europe/Paris'), { start: '2026-10-25T00:30:00.000Z', end: '2026-10-25T01:00:00.000Z' });
    assert.equal(inMaintenanceWindow(w.map(W), d('2026-10-25T01:30:00Z'), 'Europe/Paris'), false, 'the second 02:30 is not a new window');
  });

  it('windows past midnight and across the end of the week', () => {
    const w = [{ days: ['sat'], start: '22:00', durationMinutes: 360 }];
    // Saturday 2026-03-07 22:00Z → Sunday 04:00Z.
    assert.equal(inMaintenanceWindow(w.map(W), d('2026-03-08T03:59:00Z'), 'UTC'), true);
    assert.deepEqual(next(w, '2026-03-08T01:00:00Z', 'UTC'), { start: '2026-03-07T22:00:00.000Z', end: '2026-03-08T04:00:00.000Z' });
    assert.equal(inMaintenanceWindow(w.map(W), d('2026-03-08T04:00:00Z'), 'UTC'), false);
    // A week-long window is in force from days back.
    const week = [{ days: ['mon'], start: '00:00', durationMinutes: 10080 - 1 }];
    assert.equal(inMaintenanceWindow(week.map(W), d('2026-03-08T23:58:00Z'), 'UTC'), true);
    assert.equal(inMaintenanceWindow(week.map(W), d('2026-03-08T23:59:30Z'), 'UTC'), false);
  });

  it('merges overlapping and touching windows for end', () => {
    const w = [
      { days: ['tue'], start: '01:00', durationMinutes: 120 },
      { days: ['tue'], start: '02:30', durationMinutes: 60, timeBasis: 'UTC' },
      { days: ['tue'], start: '03:30', durationMinutes: 30 },
    ];
    assert.deepEqual(next(w, '2026-03-02T00:00:00Z', 'UTC'), { start: '2026-03-03T01:00:00.000Z', end: '2026-03-03T04:00:00.000Z' });
    assert.deepEqual(next(w, '2026-03-03T03:45:00Z', 'UTC'), { start: '2026-03-03T01:00:00.000Z', end: '2026-03-03T04:00:00.000Z' });
    // Every day, all day: one period that never closes within the horizon, in force now.
    const always = [{ days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], start: '00:00', durationMinutes: 1440 }];
    const p = nextMaintenanceWindow(always.map(W), d('2026-03-03T12:00:00Z'), 'UTC');
    assert.ok(p !== null && p.start.getTime() <= Date.parse('2026-03-03T12:00:00Z') && p.end.getTime() > Date.parse('2026-06-01T00:00:00Z'));
  });

  it('several days of one window; the next is found across a week gap', () => {
    const w = [{ days: ['wed', 'fri'], start: '23:30', durationMinutes: 45 }];
    assert.deepEqual(next(w, '2026-03-05T00:15:00Z', 'UTC'), { start: '2026-03-06T23:30:00.000Z', end: '2026-03-07T00:15:00.000Z' });
    assert.deepEqual(next(w, '2026-03-07T00:15:00Z', 'UTC'), { start: '2026-03-11T23:30:00.000Z', end: '2026-03-12T00:15:00.000Z' });
  });

  it('an unknown zone is a RangeError', () => {
    assert.throws(() => nextMaintenanceWindow([W({ days: ['mon'], start: '01:00', durationMinutes: 5 })], d('2026-03-01T00:00:00Z'), 'Mars/Olympus'), RangeError);
  });
});
