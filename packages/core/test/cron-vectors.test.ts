/**
 * Next and previous fires of cron expressions against other implementations' test data
 * (vectors/cron-*.json, each naming its source repository, path and commit). A case's `ours`
 * overrides the source's answer where Garrison deliberately differs; `why` says why, and
 * ADR 0016 lists the differences.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import type { Schedule, Trigger } from '@garrison/protocol';
import { lastMissedFire, nextFireTime, parseCron, scheduleIssues } from '../src/index.ts';

interface VectorCase {
  name: string;
  expression: string;
  zone: string;
  after?: string;
  next?: string[];
  before?: string;
  previous?: string[];
  ours?: string[];
  why?: string;
  /** cronie's entry flags for this line (cron-cronie.json only). */
  cronieFlags?: string[];
}
interface VectorFile {
  source: { repo: string; path: string; commit: string };
  cases: VectorCase[];
  /** Lines cronie refuses that Garrison accepts, and the other way round (cron-cronie.json). */
  refusedByCronie?: { expression: string; why: string }[];
  acceptedByCronie?: { expression: string; why: string }[];
}

const dir = new URL('./vectors/', import.meta.url);
const files = readdirSync(dir).filter((f) => f.startsWith('cron-') && f.endsWith('.json'));
const YEAR_MS = 366 * 86_400_000;

it('finds the cron vector files', () => assert.ok(files.length >= 2, files.join(', ')));

for (const file of files) {
  const data = JSON.parse(readFileSync(new URL(file, dir), 'utf8')) as VectorFile;
  describe(`${file} (${data.source.repo}@${data.source.commit.slice(0, 10)}, ${data.cases.length} cases)`, () => {
    for (const c of data.cases) {
      it(`${c.expression} in ${c.zone}: ${c.name}`, () => {
        assert.ok(c.why === undefined || c.ours !== undefined, 'a why without ours');
        const trigger = { type: 'cron', expression: c.expression } as Trigger;
        const schedule = { triggers: [trigger] } as Schedule;
        assert.deepEqual(scheduleIssues(schedule), []);
        if (c.cronieFlags !== undefined) {
          // cronie's MIN_STAR | HR_STAR decide its DST behaviour; ours must agree line by line.
          const spec = parseCron(c.expression);
          assert.equal(spec.wildcard, c.cronieFlags.includes('MIN_STAR') || c.cronieFlags.includes('HR_STAR'), 'wildcard');
          if (!c.expression.startsWith('@')) {
            assert.equal(spec.domStar, c.cronieFlags.includes('DOM_STAR'), 'DOM_STAR');
            assert.equal(spec.dowStar, c.cronieFlags.includes('DOW_STAR'), 'DOW_STAR');
          }
        }
        const got: string[] = [];
        if (c.next !== undefined) {
          const want = c.ours ?? c.next;
          let t = new Date(c.after!);
          while (got.length < want.length) {
            const n = nextFireTime(trigger, schedule, t, c.zone);
            if (n === null) break;
            got.push(n.toISOString());
            t = n;
          }
          assert.deepEqual(got, want);
        } else {
          const want = c.ours ?? c.previous!;
          // lastMissedFire is the last fire in (from, to]: strictly before `before` is to - 1 ms.
          let to = Date.parse(c.before!) - 1;
          while (got.length < want.length) {
            const p = lastMissedFire(schedule, new Date(to - 20 * YEAR_MS), new Date(to), c.zone);
            if (p === null) break;
            got.push(p.toISOString());
            to = p.getTime() - 1;
          }
          assert.deepEqual(got, want);
        }
      });
    }
    for (const r of data.refusedByCronie ?? []) {
      it(`accepts ${r.expression}, which cronie refuses`, () => assert.deepEqual(scheduleIssues({ triggers: [{ type: 'cron', expression: r.expression }] } as Schedule), []));
    }
    for (const r of data.acceptedByCronie ?? []) {
      it(`refuses ${r.expression}, which cronie accepts`, () => assert.equal(scheduleIssues({ triggers: [{ type: 'cron', expression: r.expression }] } as Schedule).length, 1));
    }
  });
}
