/**
 * The reference implementations' own test vectors, run against Garrison's schemes: node-semver
 * (semver scheme), dpkg (dpkg scheme) and rpm (rpm scheme). The data files in vectors/ name
 * their source repository, path and commit. Every case runs; the few that Garrison orders
 * differently on purpose are listed in EXCLUDED with the reason (also in
 * docs/adr/0015-version-schemes.md), and the test fails if an excluded case starts passing or
 * stops existing, so the list stays honest.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { VersionScheme } from '@garrison/protocol';
import { compareVersions, parseVersion } from '../src/index.ts';

const load = <T,>(file: string): T => JSON.parse(readFileSync(path.join(import.meta.dirname, 'vectors', file), 'utf8')) as T;

interface Pair {
  a: string;
  b: string;
  expected: number | 'ne';
  upstreamDisabled?: boolean;
}

/** "file: a <=> b" → why Garrison's scheme answers otherwise. */
const EXCLUDED: Record<string, string> = {
  'semver-comparisons.json: 1.2.3-r2 <=> 1.2.3-r100':
    'semver compares alphanumeric pre-release identifiers by ASCII ("r100" < "r2"); Garrison compares digit runs inside an identifier as numbers, so r2 < r100 (1.0-rc9 < 1.0-rc10, the order vendors mean)',
};

const key = (file: string, p: Pair) => `${file}: ${p.a} <=> ${p.b}`;

function holds(p: Pair, scheme: VersionScheme): boolean {
  const c = compareVersions(p.a, p.b, scheme);
  const r = compareVersions(p.b, p.a, scheme);
  if (p.expected === 'ne') return c !== 0 && r === -c;
  return c === Math.sign(p.expected) && r === -Math.sign(p.expected);
}

function runPairs(file: string, pairs: Pair[], scheme: VersionScheme): { passed: number; excluded: number } {
  let passed = 0;
  let excluded = 0;
  const failures: string[] = [];
  for (const p of pairs) {
    const k = key(file, p);
    const ok = holds(p, scheme);
    if (k in EXCLUDED) {
      assert.equal(ok, false, `${k} is listed as excluded but passes now: remove it from EXCLUDED and the ADR`);
      excluded++;
    } else if (ok) passed++;
    else failures.push(`${k}: expected ${p.expected}, got ${compareVersions(p.a, p.b, scheme)}`);
  }
  assert.deepEqual(failures, []);
  return { passed, excluded };
}

const counts: Record<string, string> = {};

describe('node-semver vectors (semver scheme)', () => {
  for (const file of ['semver-comparisons.json', 'semver-equality.json']) {
    it(file, () => {
      const doc = load<{ source: { commit: string }; cases: Pair[] }>(file);
      assert.match(doc.source.commit, /^[0-9a-f]{40}$/);
      assert.ok(doc.cases.length > 0);
      const r = runPairs(file, doc.cases, 'semver');
      counts[file] = `${r.passed}/${doc.cases.length} pass, ${r.excluded} excluded`;
    });
  }
});

describe('dpkg vectors (dpkg scheme)', () => {
  it('lib/dpkg/t/t-version.c: comparisons', () => {
    const doc = load<{ compare: Pair[]; notText: unknown[] }>('dpkg-lib-t-version.json');
    const r = runPairs('dpkg-lib-t-version.json', doc.compare, 'dpkg');
    counts['dpkg-lib-t-version.json compare'] = `${r.passed}/${doc.compare.length} pass, ${doc.notText.length} not expressible as text`;
  });
  it('lib/dpkg/t/t-version.c: parsing', () => {
    const doc = load<{ valid: { input: string; expect: { epoch: number; upstream: string; revision: string } }[]; invalid: { input: string }[] }>('dpkg-lib-t-version.json');
    for (const v of doc.valid) {
      const r = parseVersion(v.input, 'dpkg');
      assert.ok(r.ok, `${JSON.stringify(v.input)} parses: ${r.ok ? '' : r.error}`);
      assert.deepEqual(r.version, { scheme: 'dpkg', ...v.expect }, JSON.stringify(v.input));
    }
    for (const v of doc.invalid) {
      const r = parseVersion(v.input, 'dpkg');
      assert.equal(r.ok, false, `${JSON.stringify(v.input)} is refused`);
      if (!r.ok) assert.ok(r.error.length > 0);
    }
    counts['dpkg-lib-t-version.json parse'] = `${doc.valid.length} valid + ${doc.invalid.length} invalid, all pass`;
  });
  it('scripts/t/Dpkg_Version.t: comparisons, sorts and validity', () => {
    const doc = load<{ cases: Pair[]; sorts: { function: string; unsorted: string[]; sorted: string[] }[]; valid: string[]; invalid: string[] }>('dpkg-perl-version.json');
    const r = runPairs('dpkg-perl-version.json', doc.cases, 'dpkg');
    for (const p of doc.cases) for (const v of [p.a, p.b]) assert.ok(parseVersion(v, 'dpkg').ok, `${v} is a valid dpkg version`);
    for (const s of doc.sorts) assert.deepEqual([...s.unsorted].sort((a, b) => compareVersions(a, b, 'dpkg')), s.sorted, s.function);
    for (const v of doc.valid) assert.ok(parseVersion(v, 'dpkg').ok, `${v} is valid`);
    for (const v of doc.invalid) assert.equal(parseVersion(v, 'dpkg').ok, false, `${JSON.stringify(v)} is refused`);
    counts['dpkg-perl-version.json'] = `${r.passed}/${doc.cases.length} pass, ${doc.sorts.length} sorts, ${doc.valid.length + doc.invalid.length} validity checks`;
  });
});

describe('rpm vectors (rpm scheme)', () => {
  it('tests/rpmvercmp.at', () => {
    const doc = load<{ cases: Pair[] }>('rpm-vercmp.json');
    const r = runPairs('rpm-vercmp.json', doc.cases, 'rpm');
    const disabled = doc.cases.filter((c) => c.upstreamDisabled).length;
    counts['rpm-vercmp.json'] = `${r.passed}/${doc.cases.length} pass (${disabled} of them kept commented out upstream as documented oddities), ${r.excluded} excluded`;
  });
});

describe('vector bookkeeping', () => {
  it('every excluded case exists in its file', () => {
    const all = new Set<string>();
    for (const file of ['semver-comparisons.json', 'semver-equality.json', 'dpkg-perl-version.json', 'rpm-vercmp.json']) {
      for (const p of load<{ cases: Pair[] }>(file).cases) all.add(key(file, p));
    }
    for (const p of load<{ compare: Pair[] }>('dpkg-lib-t-version.json').compare) all.add(key('dpkg-lib-t-version.json', p));
    for (const k of Object.keys(EXCLUDED)) assert.ok(all.has(k), `${k} is not a case of its file`);
    if (process.env.GARRISON_VECTOR_COUNTS) console.log(counts);
  });
});
