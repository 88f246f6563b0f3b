import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MaintenanceWindow } from '@garrison/protocol';
import { inMaintenanceWindow, maintenanceStart, nextMaintenanceWindow } from '../src/index.ts';

const at = (iso: string) => new Date(iso);
const iso = (d: Date | null | undefined) => d?.toISOString() ?? null;
const win = (w: Partial<MaintenanceWindow> & Pick<MaintenanceWindow, 'days' | 'start' | 'durationMinutes'>): MaintenanceWindow => w;

describe('maintenance windows', () => {
  it('no windows: no restriction, and no next window', () => {
    assert.equal(inMaintenanceWindow([], at('2026-12-02T12:00:00Z'), 'UTC'), true);
    assert.equal(nextMaintenanceWindow([], at('2026-12-02T12:00:00Z'), 'UTC'), null);
    assert.equal(iso(maintenanceStart([], at('2026-12-02T12:00:00Z'), 'UTC')), '2026-12-02T12:00:00.000Z');
  });

  it('in the window, before it and after it (UTC, Wednesday 2026-12-02)', () => {
    const w = [win({ days: ['wed'], start: '22:00', durationMinutes: 120, timeBasis: 'UTC' })];
    assert.equal(inMaintenanceWindow(w, at('2026-12-02T21:59:59Z'), 'Europe/Paris'), false);
    assert.equal(inMaintenanceWindow(w, at('2026-12-02T22:00:00Z'), 'Europe/Paris'), true);
    assert.equal(inMaintenanceWindow(w, at('2026-12-02T23:59:59Z'), 'Europe/Paris'), true);
    assert.equal(inMaintenanceWindow(w, at('2026-12-03T00:00:00Z'), 'Europe/Paris'), false); // past midnight: ended
    const next = nextMaintenanceWindow(w, at('2026-12-02T12:00:00Z'), 'UTC')!;
    assert.deepEqual([iso(next.start), iso(next.end)], ['2026-12-02T22:00:00.000Z', '2026-12-03T00:00:00.000Z']);
    const after = nextMaintenanceWindow(w, at('2026-12-03T00:00:00Z'), 'UTC')!;
    assert.equal(iso(after.start), '2026-12-09T22:00:00.000Z');
    assert.equal(iso(maintenanceStart(w, at('2026-12-02T23:00:00Z'), 'UTC')), '2026-12-02T23:00:00.000Z');
    assert.equal(iso(maintenanceStart(w, at('2026-12-02T12:00:00Z'), 'UTC')), '2026-12-02T22:00:00.000Z');
  });

  it('a window past midnight and across the end of the week is in force on the next day', () => {
    const w = [win({ days: ['sat'], start: '23:00', durationMinutes: 180, timeBasis: 'UTC' })];
    assert.equal(inMaintenanceWindow(w, at('2026-12-06T01:30:00Z'), 'UTC'), true); // Sunday 01:30
    assert.equal(inMaintenanceWindow(w, at('2026-12-06T02:00:00Z'), 'UTC'), false);
    assert.equal(iso(nextMaintenanceWindow(w, at('2026-12-06T01:30:00Z'), 'UTC')!.start), '2026-12-05T23:00:00.000Z');
  });

  it('"local" (and no basis) is the device zone; an IANA basis is its own zone', () => {
    const local = [win({ days: ['wed'], start: '02:00', durationMinutes: 60 })];
    // 02:00 in Paris (winter, UTC+1) is 01:00Z.
    assert.equal(iso(nextMaintenanceWindow(local, at('2026-12-01T12:00:00Z'), 'Europe/Paris')!.start), '2026-12-02T01:00:00.000Z');
    assert.equal(iso(nextMaintenanceWindow(local, at('2026-12-01T12:00:00Z'), 'America/New_York')!.start), '2026-12-02T07:00:00.000Z');
    const tokyo = [win({ days: ['wed'], start: '02:00', durationMinutes: 60, timeBasis: 'Asia/Tokyo' })];
    assert.equal(iso(nextMaintenanceWindow(tokyo, at('2026-12-01T12:00:00Z'), 'Europe/Paris')!.start), '2026-12-01T17:00:00.000Z');
  });

  it('daylight saving: a start in the spring-forward gap begins after it; the duration is elapsed time', () => {
    // Europe/Paris 2026-03-29: 02:00 → 03:00 (UTC+1 → UTC+2).
    const w = [win({ days: ['sun'], start: '02:30', durationMinutes: 60, timeBasis: 'Europe/Paris' })];
    const n = nextMaintenanceWindow(w, at('2026-03-28T12:00:00Z'), 'UTC')!;
    assert.deepEqual([iso(n.start), iso(n.end)], ['2026-03-29T01:00:00.000Z', '2026-03-29T02:00:00.000Z']); // 03:00 CEST, for an hour
    // Fall back 2026-10-25: 03:00 → 02:00; 02:30 happens twice, the earlier one is used.
    const f = nextMaintenanceWindow(w, at('2026-10-24T12:00:00Z'), 'UTC')!;
    assert.equal(iso(f.start), '2026-10-25T00:30:00.000Z');
  });

  it('overlapping and touching windows merge for the end', () => {
    const w = [
      win({ days: ['mon'], start: '20:00', durationMinutes: 120, timeBasis: 'UTC' }),
      win({ days: ['mon'], start: '21:00', durationMinutes: 120, timeBasis: 'UTC' }),
      win({ days: ['mon'], start: '23:00', durationMinutes: 30, timeBasis: 'UTC' }),
    ];
    const n = nextMaintenanceWindow(w, at('2026-11-30T20:30:00Z'), 'UTC')!;
    assert.deepEqual([iso(n.start), iso(n.end)], ['2026-11-30T20:00:00.000Z', '2026-11-30T23:30:00.000Z']);
  });

  it('a week-long window on every day is always in force', () => {
    const w = [win({ days: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'], start: '00:00', durationMinutes: 1440, timeBasis: 'UTC' })];
    for (const t of ['2026-12-02T00:00:00Z', '2026-12-05T23:59:59Z', '2026-12-06T12:00:00Z']) assert.equal(inMaintenanceWindow(w, at(t), 'UTC'), true, t);
  });
});
