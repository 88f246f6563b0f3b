/**
 * Storage behaviours that the API does not reach directly: retention purges, run-now
 * expiry, and the batch ingest's idempotency, on every configured database.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { openDatabase } from '../src/storage/database.ts';
import { migrateToLatest, migrationNames } from '../src/storage/migrate.ts';
import { EventStore } from '../src/storage/event-store.ts';
import { RunStore } from '../src/storage/run-store.ts';
import pg from 'pg';
import { dbKinds, PG_URL, tempDir } from './helpers.ts';

for (const kind of dbKinds) {
  describe(`storage (${kind.name})`, () => {
    // Several servers share one database only on PostgreSQL; an embedded SQLite file belongs
    // to one server process, which migrates it before serving.
    it(kind.name === 'postgres' ? 'migrates once, even when two servers ask at the same time' : 'migrates once', async () => {
      const made = await kind.make(await tempDir());
      const a = await openDatabase(made.config);
      const b = await openDatabase(made.config);
      try {
        const [ra, rb] = kind.name === 'postgres' ? await Promise.all([migrateToLatest(a), migrateToLatest(b)]) : [await migrateToLatest(a), await migrateToLatest(b)];
        assert.deepEqual([...ra, ...rb], migrationNames);
        assert.deepEqual(await migrateToLatest(a), []);
      } finally {
        await a.close();
        await b.close();
        await made.cleanup();
      }
    });

    if (kind.name === 'postgres') {
      // Kysely's own introspector read every schema by name, so a schema dropped elsewhere in
      // the database at that moment failed the migration ("schema … does not exist").
      it('migrates while schemas and tables elsewhere in the database are created and dropped', async () => {
        const churner = new pg.Client({ connectionString: PG_URL });
        await churner.connect();
        let stop = false;
        const churn = (async () => {
          for (let i = 0; !stop; i++) {
            const s = `churn_${process.pid}_${i}`;
            await churner.query(`create schema ${s}; create table ${s}.t (id serial primary key, x int)`);
            await churner.query(`drop schema ${s} cascade`);
          }
        })();
        try {
          for (let i = 0; i < 6; i++) {
            const made = await kind.make(await tempDir());
            const db = await openDatabase(made.config);
            try {
              assert.equal((await migrateToLatest(db)).length > 0, true);
            } finally {
              await db.close();
              await made.cleanup();
            }
          }
        } finally {
          stop = true;
          await churn;
          await churner.end();
        }
      });
    }

    it('purges events and finished runs past retention, in batches, keeping the rest', async () => {
      const made = await kind.make(await tempDir(), { migrated: true });
      const db = await openDatabase(made.config);
      try {
        const events = new EventStore(db);
        const old = Array.from({ length: 1200 }, (_, i) => ({ time: new Date(Date.UTC(2020, 0, 1, 0, 0, i)).toISOString(), severity: 'info' as const, kind: 'x', message: `old ${i}` }));
        await events.insertEvents([...old, { time: '2026-11-01T00:00:00.000Z', severity: 'error', kind: 'x', message: 'new' }]);
        assert.equal(await events.purgeBefore('2026-01-01T00:00:00.000Z', 500), 1200);
        const left = await events.queryEvents({ limit: 10 });
        assert.deepEqual(left.map((e) => e.message), ['new']);

        const runs = new RunStore(db);
        const at = '2020-01-01T00:00:00.000Z';
        await runs.insertRunRequest({ id: 'q', taskId: 't', createdBy: 'test', createdAt: at, expiresAt: '2099-01-01T00:00:00.000Z', targetCount: 2 });
        await runs.insertPendingRuns([
          { id: 'r1', taskId: 't', deviceId: 'd1', requestId: 'q', createdAt: at, expiresAt: '2020-01-02T00:00:00.000Z' },
          { id: 'r2', taskId: 't', deviceId: 'd2', requestId: 'q', createdAt: at, expiresAt: '2099-01-01T00:00:00.000Z' },
        ]);
        assert.equal(await runs.expirePendingRuns('2025-01-01T00:00:00.000Z'), 1);
        assert.equal((await runs.getRun('r1'))!.state, 'skipped');
        assert.equal((await runs.latestStates('t')).get('d1'), 'skipped');
        // An older finished run of d1 that is no longer the latest is purged; latest runs stay.
        const report = (runId: string, seq: number, state: 'running' | 'succeeded') => ({ deviceId: 'd1', report: { runId, taskId: 't', attempt: 1, seq, state, cause: 'daily', createdAt: '2020-02-01T00:00:00.000Z' } });
        const first = await runs.applyReports([report('r3', 1, 'running'), report('r3', 2, 'succeeded'), report('r3', 1, 'running')], at);
        assert.equal(first.applied.length, 1);
        assert.equal(first.duplicates.length, 2);
        const again = await runs.applyReports([report('r3', 2, 'succeeded')], at);
        assert.deepEqual([again.applied.length, again.duplicates.length], [0, 1]);
        const purged = await runs.purgeRunsBefore('2026-01-01T00:00:00.000Z');
        assert.equal(purged, 1, 'r1 (superseded by r3 as the latest of d1) is purged');
        assert.ok(await runs.getRun('r3'));
        assert.ok(await runs.getRun('r2'), 'pending runs are never purged');
      } finally {
        await db.close();
        await made.cleanup();
      }
    });

    // PostgreSQL takes a batch as one array per column (unnest): text that array literals
    // quote (quotes, backslashes, braces, commas, the word NULL), empty strings, nulls, and
    // more rows than one statement's slice, must all come back exactly.
    it('stores a batch of awkward text and nulls exactly, whatever its size', async () => {
      const made = await kind.make(await tempDir());
      const db = await openDatabase(made.config);
      try {
        await migrateToLatest(db);
        const awkward = ['plain', '', 'NULL', 'null', '"quoted"', 'back\\slash', '{braces}', 'a,b', ' spaced ', "it's", 'ünïcødé ✓ 𝄞', 'line\nbreak\ttab'];
        const events = Array.from({ length: 20_050 }, (_, i) => ({
          time: `2026-01-01T00:00:${String(i % 60).padStart(2, '0')}.000Z`,
          severity: 'info' as const,
          kind: 'test.bulk',
          message: `${i} ${awkward[i % awkward.length]}`,
          ...(i % 3 === 0 ? { deviceId: awkward[i % awkward.length]! } : {}),
          ...(i % 5 === 0 ? { data: { text: awkward[i % awkward.length], n: i } } : {}),
        }));
        await new EventStore(db).insertEvents(events);
        const rows = await db.kysely.selectFrom('events').select(['message', 'device_id', 'data']).where('kind', '=', 'test.bulk').execute();
        assert.equal(rows.length, events.length);
        const byMessage = new Map(rows.map((r) => [r.message, r]));
        for (const e of events) {
          const r = byMessage.get(e.message);
          assert.ok(r, `stored: ${JSON.stringify(e.message)}`);
          assert.equal(r.device_id, e.deviceId ?? null);
          assert.deepEqual(r.data === null ? undefined : JSON.parse(r.data), e.data);
        }
        // Reports upserted in a batch: the awkward reason and output come back, nulls stay null.
        const runs = new RunStore(db);
        const reports = awkward.map((text, i) => ({ deviceId: `d${i}`, report: { runId: `r${i}`, taskId: 't', attempt: 1, seq: 1, state: 'failed' as const, cause: 'daily', createdAt: '2026-01-01T00:00:00.000Z', reason: text, outputTail: i % 2 ? text : undefined, exitCode: i - 3 } }));
        assert.equal((await runs.applyReports(reports, '2026-01-01T00:00:01.000Z')).applied.length, awkward.length);
        for (const [i, text] of awkward.entries()) {
          const run = (await runs.getRun(`r${i}`))!;
          assert.deepEqual([run.reason, run.outputTail, run.exitCode, run.percent], [text, i % 2 ? text : null, i - 3, null]);
        }
      } finally {
        await db.close();
        await made.cleanup();
      }
    });
  });
}
