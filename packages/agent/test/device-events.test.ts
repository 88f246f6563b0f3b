// DeviceEventSpool: real files; a restart is a new spool on the same folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeviceEvent } from '@garrison/protocol';
import { DeviceEventSpool, newEventId } from '../src/device-events.ts';

const ev = (n: number): DeviceEvent => ({ eventId: newEventId(), product: 'scanner', severity: 'warning', kind: 'detection', message: `found ${n}`, time: new Date().toISOString() });

test('events survive a restart, oldest first, until acknowledged or refused', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'garrison-devev-'));
  try {
    const a = new DeviceEventSpool(dir);
    await a.init();
    const events = [ev(1), ev(2), ev(3)];
    for (const e of events) await a.add(e);
    const b = new DeviceEventSpool(dir); // the agent restarted
    await b.init();
    assert.deepEqual(b.pending().map((e) => e.message), ['found 1', 'found 2', 'found 3']);
    // The server stored the first and refused the second: both leave the spool.
    await b.remove([events[0]!.eventId, events[1]!.eventId]);
    const c = new DeviceEventSpool(dir);
    await c.init();
    assert.deepEqual(c.pending().map((e) => e.eventId), [events[2]!.eventId]);
    await assert.rejects(c.add({ ...ev(4), eventId: '../../etc' }), /invalid event id/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('past its limit the spool drops the oldest and says how many', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'garrison-devev-'));
  try {
    const dropped: DeviceEvent[] = [];
    const s = new DeviceEventSpool(dir, { maxEvents: 3, onDropped: (d) => dropped.push(...d) });
    await s.init();
    for (let i = 1; i <= 5; i++) await s.add(ev(i));
    assert.deepEqual(s.pending().map((e) => e.message), ['found 3', 'found 4', 'found 5']);
    assert.deepEqual(dropped.map((e) => e.message), ['found 1', 'found 2']);
    assert.equal((await readdir(dir)).filter((f) => f.endsWith('.json')).length, 3);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
