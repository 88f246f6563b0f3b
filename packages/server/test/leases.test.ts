/**
 * The lease helper (storage/leases.ts) on real databases: a table of its own, with lease
 * columns named unlike the real ones, so that nothing here depends on push jobs or server
 * tasks. Several owners are several connections (on PostgreSQL, several pools: as several
 * server instances would be). Times are given to the statements, so expiry needs no waiting;
 * only the keeper's loop runs on the real clock.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Kysely } from 'kysely';
import { pino } from 'pino';
import { openDatabase, type Db } from '../src/storage/database.ts';
import { LeaseKeeper, LeaseTable } from '../src/storage/leases.ts';
import { systemClock } from '../src/clock.ts';
import { dbKinds, tempDir } from './helpers.ts';

interface ProbeRowsTable {
  row_id: string;
  state: string;
  holder: string | null;
  held_until: string | null;
  note: string | null;
}
type ProbeDb = { probe_rows: ProbeRowsTable };

const log = pino({ level: 'silent' });
const T0 = Date.parse('2030-01-01T00:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();

function leaseOn(db: Db): { k: Kysely<ProbeDb>; lease: LeaseTable<ProbeDb, 'probe_rows'> } {
  const k = db.kysely.withTables<ProbeDb>() as unknown as Kysely<ProbeDb>;
  return { k, lease: new LeaseTable(k, { table: 'probe_rows', id: 'row_id', owner: 'holder', expiresAt: 'held_until', held: (eb) => eb('state', '=', 'running') }) };
}

/** Compile-time only: the spec accepts only columns of the right kind. Never called. */
export function specIsTyped(k: Kysely<ProbeDb>): void {
  // @ts-expect-error -- not a column of the table
  new LeaseTable(k, { table: 'probe_rows', id: 'row_id', owner: 'owner', expiresAt: 'held_until' });
  // @ts-expect-error -- `row_id` is never null: it cannot hold a lease's owner
  new LeaseTable(k, { table: 'probe_rows', id: 'row_id', owner: 'row_id', expiresAt: 'held_until' });
}

for (const kind of dbKinds) {
  describe(`leases (${kind.name})`, () => {
    let cleanup: () => Promise<void>;
    /** Four owners, each on its own connection (pool). */
    const dbs: Db[] = [];
    let owners: { name: string; k: Kysely<ProbeDb>; lease: LeaseTable<ProbeDb, 'probe_rows'> }[] = [];

    before(async () => {
      const made = await kind.make(await tempDir());
      cleanup = made.cleanup;
      for (let i = 0; i < 4; i++) dbs.push(await openDatabase(made.config));
      await dbs[0]!.kysely.schema
        .createTable('probe_rows')
        .addColumn('row_id', 'text', (c) => c.primaryKey())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('holder', 'text')
        .addColumn('held_until', 'text')
        .addColumn('note', 'text')
        .execute();
      owners = dbs.map((db, i) => ({ name: `owner-${i}`, ...leaseOn(db) }));
    });
    after(async () => {
      for (const db of dbs) await db.close();
      await cleanup();
    });

    let seq = 0;
    async function row(state = 'pending', holder: string | null = null, until: string | null = null): Promise<string> {
      const id = `row-${++seq}`;
      await owners[0]!.k.insertInto('probe_rows').values({ row_id: id, state, holder, held_until: until, note: null }).execute();
      return id;
    }
    async function read(id: string): Promise<ProbeRowsTable> {
      return (await owners[0]!.k.selectFrom('probe_rows').selectAll().where('row_id', '=', id).executeTakeFirstOrThrow()) as ProbeRowsTable;
    }
    const claim = (o: (typeof owners)[number], id: string, now: number, leaseMs = 1000) =>
      o.lease.claim(id, { owner: o.name, now: at(now), until: at(now + leaseMs) }, { set: { state: 'running' }, where: (eb) => eb('state', 'in', ['pending', 'running']) });

    it('of owners racing for a row, exactly one gets it: many rounds, all at once', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 100; i++) ids.push(await row());
      // Every owner claims every row at the same time; on PostgreSQL these run on 4 pools at once.
      const results = await Promise.all(ids.map((id) => Promise.all(owners.map((o) => claim(o, id, 0)))));
      for (const [i, id] of ids.entries()) {
        const winners = owners.filter((_, j) => results[i]![j]);
        assert.equal(winners.length, 1, `row ${id}: ${JSON.stringify(results[i])}`);
        const r = await read(id);
        assert.equal(r.holder, winners[0]!.name);
        assert.equal(r.state, 'running');
        assert.equal(r.held_until, at(1000));
      }
    });

    it('of owners racing to take over an expired row, exactly one gets it', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 50; i++) ids.push(await row('running', 'dead-owner', at(500)));
      const results = await Promise.all(ids.map((id) => Promise.all(owners.map((o) => claim(o, id, 600)))));
      for (const r of results) assert.equal(r.filter(Boolean).length, 1, JSON.stringify(r));
    });

    it('a held lease is not taken before it expires, and is taken once it has', async () => {
      const [a, b] = owners as [(typeof owners)[number], (typeof owners)[number]];
      const id = await row();
      assert.equal(await claim(a, id, 0), true);
      assert.equal(await claim(b, id, 999), false, 'still held');
      assert.equal(await claim(a, id, 999), false, 'not even by its holder: a claim is for a free lease');
      assert.equal(await claim(b, id, 1001), true, 'expired: taken over');
      assert.equal((await read(id)).holder, b.name);
    });

    it('renewal keeps the lease; a stale owner can neither renew, update nor release after a takeover', async () => {
      const [a, b] = owners as [(typeof owners)[number], (typeof owners)[number]];
      const id = await row();
      const other = await row();
      assert.equal(await claim(a, id, 0), true);
      assert.equal(await claim(b, other, 0), true);
      // Renewing a set: only what this owner holds is renewed, and said to be.
      assert.deepEqual(await a.lease.renew([id, other, 'no-such-row'], a.name, at(3000)), [id]);
      assert.equal((await read(other)).held_until, at(1000), "another owner's row is not touched");
      assert.equal(await claim(b, id, 2000), false, 'renewed: still held');
      assert.equal(await claim(b, id, 3001), true, 'taken over once the renewal ran out too');

      assert.deepEqual(await a.lease.renew([id], a.name, at(9000)), [], 'the stale owner cannot renew');
      assert.equal(await a.lease.updateHeld(id, a.name, { set: { note: 'stale' } }), false);
      assert.equal(await a.lease.release(id, a.name, { set: { state: 'done' } }), false);
      const r = await read(id);
      assert.deepEqual([r.holder, r.held_until, r.state, r.note], [b.name, at(4001), 'running', null]);
      assert.equal(await b.lease.updateHeld(id, b.name, { set: { note: 'progress' } }), true);
      assert.equal((await read(id)).note, 'progress');
    });

    it('release frees the row at once, writing its end with it', async () => {
      const [a, b] = owners as [(typeof owners)[number], (typeof owners)[number]];
      const id = await row();
      assert.equal(await claim(a, id, 0), true);
      assert.equal(await a.lease.release(id, a.name, { set: { state: 'pending', note: 'handed back' } }), true);
      const r = await read(id);
      assert.deepEqual([r.holder, r.held_until, r.state, r.note], [null, null, 'pending', 'handed back']);
      assert.equal(await claim(b, id, 1), true, 'free again long before the old lease would have run out');
      assert.equal(await a.lease.release(id, a.name), false, 'released once');
    });

    it('finds expired leases of held rows only, and ends each once even when reapers race', async () => {
      const [a] = owners as [(typeof owners)[number]];
      const expired = await row('running', 'dead-owner', at(100));
      const broken = await row('running', 'dead-owner', null); // nobody vouches for it
      const live = await row('running', a.name, at(10_000));
      const finished = await row('done', 'dead-owner', at(100)); // a lease left on a finished row does not count
      const found = (await a.lease.expired(at(5000))).map((r) => r.row_id).filter((id) => [expired, broken, live, finished].includes(id));
      assert.deepEqual(found.sort(), [expired, broken].sort());

      const ends = await Promise.all(owners.map((o) => o.lease.endExpired(expired, at(5000), { set: { state: 'pending', note: `resumed by ${o.name}` } })));
      assert.equal(ends.filter(Boolean).length, 1, JSON.stringify(ends));
      const r = await read(expired);
      assert.deepEqual([r.holder, r.held_until, r.state], [null, null, 'pending']);
      assert.equal(await a.lease.endExpired(live, at(5000)), false, 'not expired');
      assert.equal(await a.lease.endExpired(finished, at(5000)), false, 'not held');
      // An owner that renews in time keeps its row from the reaper.
      const late = await row('running', a.name, at(100));
      assert.deepEqual(await a.lease.renew([late], a.name, at(10_000)), [late]);
      assert.equal(await a.lease.endExpired(late, at(5000)), false);
    });

    it('works inside a transaction, and a rolled-back claim leaves the row free', async () => {
      const [a, b] = owners as [(typeof owners)[number], (typeof owners)[number]];
      const id = await row();
      await assert.rejects(
        a.k.transaction().execute(async (tx) => {
          assert.equal(await a.lease.on(tx).claim(id, { owner: a.name, now: at(0), until: at(1000) }), true);
          throw new Error('roll back');
        }),
        /roll back/,
      );
      assert.equal(await claim(b, id, 0), true);
    });

    it('a keeper renews what it holds every third of the lease, reports what it lost, and stops', async () => {
      const [a, b] = owners as [(typeof owners)[number], (typeof owners)[number]];
      const leaseMs = 600;
      const lost: string[][] = [];
      const keeper = new LeaseKeeper({ name: 'test-leases', owner: a.name, leaseMs, renew: (ids, owner, until) => a.lease.renew(ids, owner, until), clock: systemClock, log, onLost: (ids) => lost.push(ids) });
      try {
        const kept = await row();
        const taken = await row();
        const released = await row();
        for (const id of [kept, taken, released]) {
          assert.equal(await a.lease.claim(id, { owner: a.name, now: new Date().toISOString(), until: keeper.until() }, { set: { state: 'running' } }), true);
          keeper.hold(id);
        }
        // Well past the first lease: renewed meanwhile, so nobody else may take it now.
        await new Promise((r) => setTimeout(r, leaseMs * 2));
        assert.equal(await b.lease.claim(kept, { owner: b.name, now: new Date().toISOString(), until: at(0) }), false, 'kept alive by the keeper');
        assert.ok(Date.parse((await read(kept)).held_until!) > Date.now(), 'renewed into the future');

        // Released the right way (forget, then release): not reported as lost.
        keeper.forget(released);
        assert.equal(await a.lease.release(released, a.name), true);
        // Taken over behind the keeper's back (as if this process had stalled past its lease).
        assert.equal(await b.lease.claim(taken, { owner: b.name, now: at(10 * 365 * 86_400_000), until: at(20 * 365 * 86_400_000) }), true);
        await keeper.renewNow();
        assert.deepEqual(lost, [[taken]]);
        assert.deepEqual(keeper.held(), [kept]);
        await keeper.renewNow();
        assert.equal(lost.length, 1, 'reported once');
      } finally {
        await keeper.stop();
      }
      const after = (await read(keeper.held()[0]!)).held_until;
      await new Promise((r) => setTimeout(r, leaseMs));
      assert.equal((await read(keeper.held()[0]!)).held_until, after, 'no renewal after stop');
    });
  });
}
