/**
 * The domain-event bus (ADR 0019): in memory within an instance, over PostgreSQL's
 * LISTEN/NOTIFY between instances on one schema, never between schemas; large events split
 * under NOTIFY's limit; a dropped listening connection comes back and asks for a resync.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import pg from 'pg';
import { DomainBus, type DomainEvent, type Origin } from '../src/services/domain-bus.ts';
import { PgBusTransport } from '../src/storage/pg-bus.ts';
import { openDatabase, type Db } from '../src/storage/database.ts';
import { PG_URL, pgSkip, postgresKind, waitFor } from './helpers.ts';

const log = pino({ level: 'silent' });

function recorder(bus: DomainBus): { seen: [DomainEvent, Origin][] } {
  const seen: [DomainEvent, Origin][] = [];
  for (const type of ['tasks.changed', 'devices.changed', 'device.disconnect', 'live'] as const) bus.on(type, (e, origin) => void seen.push([e, origin]));
  return { seen };
}

describe('domain-event bus, in memory', () => {
  it('delivers to every subscriber at once, and a failing subscriber does not stop the others', () => {
    const bus = new DomainBus({ instanceId: 'i1', log });
    const got: string[] = [];
    bus.on('device.disconnect', () => {
      throw new Error('boom');
    });
    bus.on('device.disconnect', (e, origin) => void got.push(`${e.deviceId}:${origin}`));
    bus.publish({ type: 'device.disconnect', deviceId: 'd1', reason: 'test' });
    assert.deepEqual(got, ['d1:local']);
    assert.equal(bus.shared, false);
  });
});

describe('domain-event bus over PostgreSQL', { skip: pgSkip }, () => {
  async function open(): Promise<{ db: Db; schema: string; cleanup(): Promise<void> }> {
    const made = await postgresKind.make('');
    const db = await openDatabase(made.config);
    return { db, schema: (made.config as { schema: string }).schema, cleanup: async () => (await db.close(), await made.cleanup()) };
  }
  async function joined(db: Db, id: string): Promise<DomainBus> {
    const bus = new DomainBus({ instanceId: id, log });
    await bus.connect(new PgBusTransport(db, log, id));
    return bus;
  }

  it('reaches the other instances on the schema (not itself, not another schema), splits large events, and leaves local-only fields out', async (t) => {
    const one = await open();
    const other = await open();
    const dbB = await openDatabase({ kind: 'postgres', url: PG_URL!, schema: one.schema });
    const a = await joined(one.db, 'a');
    const b = await joined(dbB, 'b');
    const elsewhere = await joined(other.db, 'x');
    t.after(async () => {
      for (const bus of [a, b, elsewhere]) await bus.close();
      await dbB.close();
      await one.cleanup();
      await other.cleanup();
    });
    const ra = recorder(a);
    const rb = recorder(b);
    const rx = recorder(elsewhere);

    a.publish({ type: 'device.disconnect', deviceId: 'd1', reason: 'revoked' });
    await waitFor(async () => rb.seen.length === 1, { what: 'the event at b' });
    assert.deepEqual(rb.seen[0], [{ type: 'device.disconnect', deviceId: 'd1', reason: 'revoked' }, 'remote']);
    assert.deepEqual(ra.seen, [[{ type: 'device.disconnect', deviceId: 'd1', reason: 'revoked' }, 'local']], 'a hears itself once, locally');

    // 2,000 device ids (about 80 KB) cross as several notifications, together all of them.
    const ids = Array.from({ length: 2000 }, (_, i) => `device-${String(i).padStart(6, '0')}-${'x'.repeat(24)}`);
    a.publish({ type: 'devices.changed', deviceIds: ids });
    await waitFor(async () => rb.seen.filter(([e]) => e.type === 'devices.changed').flatMap(([e]) => (e as { deviceIds: string[] }).deviceIds).length === ids.length, { what: 'every id at b' });
    const parts = rb.seen.filter(([e]) => e.type === 'devices.changed');
    assert.ok(parts.length > 1, `split into ${parts.length} notifications`);
    assert.deepEqual(parts.flatMap(([e]) => (e as { deviceIds: string[] }).deviceIds).sort(), [...ids].sort());

    // The devices a task change nudges are the originator's to compute: the others get none.
    a.publish({ type: 'tasks.changed', taskIds: ['t1'], deviceIds: ids });
    await waitFor(async () => rb.seen.some(([e]) => e.type === 'tasks.changed'), { what: 'the task change at b' });
    assert.deepEqual(rb.seen.find(([e]) => e.type === 'tasks.changed')![0], { type: 'tasks.changed', taskIds: ['t1'], deviceIds: [] });
    assert.equal(rb.seen.filter(([e]) => e.type === 'tasks.changed').length, 1, 'one notification');

    // Another schema on the same database hears none of it.
    elsewhere.publish({ type: 'live', topics: ['runs'] });
    await waitFor(async () => rx.seen.length === 1, { what: 'x hears itself' });
    assert.equal(rb.seen.filter(([e]) => e.type === 'live').length, 0);
    assert.equal(rx.seen.filter(([, o]) => o === 'remote').length, 0);
  });

  it('reconnects when its listening connection is killed, and asks for a resync', async (t) => {
    const one = await open();
    const dbB = await openDatabase({ kind: 'postgres', url: PG_URL!, schema: one.schema });
    const a = await joined(one.db, 'a');
    const b = new DomainBus({ instanceId: 'b', log });
    let resyncs = 0;
    b.onResync(() => void resyncs++);
    await b.connect(new PgBusTransport(dbB, log, 'b'));
    t.after(async () => {
      await a.close();
      await b.close();
      await dbB.close();
      await one.cleanup();
    });
    const rb = recorder(b);
    // The administrator (or a failover) ends b's listening backend.
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    const killed = await admin.query(`select pg_terminate_backend(pid) as ok from pg_stat_activity where application_name = 'garrison bus b' and query like 'LISTEN "garrison_bus_${one.schema}"%'`);
    await admin.end();
    assert.equal(killed.rowCount, 1, 'the listening connection was found');
    await waitFor(async () => resyncs === 1, { what: 'the resync after reconnecting' });
    a.publish({ type: 'device.disconnect', deviceId: 'd2', reason: 'after' });
    await waitFor(async () => rb.seen.some(([e]) => e.type === 'device.disconnect'), { what: 'events flow again' });
  });
});
