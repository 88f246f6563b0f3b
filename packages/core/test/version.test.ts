import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { VersionScheme } from '@garrison/protocol';
import { compareVersions, isNewerVersion, maxVersion, parseVersion, VERSION_SCHEMES } from '../src/index.ts';

const lt = (a: string, b: string, scheme?: VersionScheme) => {
  assert.ok(compareVersions(a, b, scheme) < 0, `${a} < ${b} (${scheme ?? 'semver'})`);
  assert.ok(compareVersions(b, a, scheme) > 0, `${b} > ${a} (${scheme ?? 'semver'})`);
};
const eq = (a: string, b: string, scheme?: VersionScheme) => {
  assert.equal(compareVersions(a, b, scheme), 0, `${a} == ${b} (${scheme ?? 'semver'})`);
  assert.equal(compareVersions(b, a, scheme), 0, `${b} == ${a} (${scheme ?? 'semver'})`);
};
const ascending = (list: string[], scheme?: VersionScheme) => {
  for (let i = 0; i < list.length - 1; i++) lt(list[i]!, list[i + 1]!, scheme);
};
const valid = (v: string, scheme: VersionScheme) => assert.ok(parseVersion(v, scheme).ok, `${v} is a valid ${scheme} version`);
const invalid = (v: string, scheme: VersionScheme) => {
  const r = parseVersion(v, scheme);
  assert.equal(r.ok, false, `${JSON.stringify(v)} is not a valid ${scheme} version`);
  if (!r.ok) assert.ok(r.error.length > 0);
};

describe('compareVersions', () => {
  it('compares numeric segments numerically', () => {
    lt('1.9', '1.10');
    lt('1.2.3', '1.2.10');
    lt('2.0', '10.0');
    lt('10.7.0.999', '10.7.0.1234');
    lt('10.7.0.1234', '10.7.1');
    eq('1.0.0', '1.0.0');
    eq('01.002', '1.2');
  });
  it('treats missing segments as 0', () => {
    eq('1.2', '1.2.0');
    eq('1', '1.0.0.0');
    lt('1.2', '1.2.0.1');
  });
  it('sorts pre-releases before the release', () => {
    lt('1.0.0-beta', '1.0.0');
    lt('1.0-rc.1', '1.0.0');
    lt('1.0.0', '1.0.1-alpha');
  });
  it('orders pre-release identifiers like semver', () => {
    const ordered = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0'];
    for (let i = 0; i < ordered.length - 1; i++) lt(ordered[i], ordered[i + 1]);
    lt('1.0.0-1', '1.0.0-a'); // numeric before alphanumeric
    lt('1.0.0-2', '1.0.0-10');
    eq('1.0.0-rc.1', '1.0-rc.1');
  });
  it('ignores build metadata', () => {
    eq('1.0.0+build.5', '1.0.0+build.9');
    eq('1.0.0+20260101', '1.0.0');
    lt('1.0.0-beta+exp.sha.5114f85', '1.0.0');
  });
  it('tolerates a leading v and surrounding space', () => {
    eq('v1.2.3', '1.2.3');
    eq(' 1.2 ', '1.2.0');
  });
  it('handles very long numeric segments', () => {
    lt('1.99999999999999999998', '1.99999999999999999999');
  });
  it('sorts a list', () => {
    const list = ['1.10', '1.2', '1.0.0-beta', '1.9.9', '1.0.0', '0.9'];
    assert.deepEqual([...list].sort(compareVersions), ['0.9', '1.0.0-beta', '1.0.0', '1.2', '1.9.9', '1.10']);
  });
});

describe('isNewerVersion and maxVersion', () => {
  it('isNewerVersion is strict', () => {
    assert.equal(isNewerVersion('1.10', '1.9'), true);
    assert.equal(isNewerVersion('1.9', '1.10'), false);
    assert.equal(isNewerVersion('1.2', '1.2.0'), false);
    assert.equal(isNewerVersion('1.0.0', '1.0.0-rc.1'), true);
  });
  it('maxVersion', () => {
    assert.equal(maxVersion(['1.9', '1.10', '1.10.0-rc.1', '1.2']), '1.10');
    assert.equal(maxVersion(['2.0-beta']), '2.0-beta');
    assert.equal(maxVersion(['1.2', '1.2.0']), '1.2');
    assert.equal(maxVersion([]), undefined);
  });
});

describe('semver scheme: digit runs and undashed pre-releases', () => {
  it('compares runs of digits inside a mixed part as numbers', () => {
    lt('1.8.0_99', '1.8.0_100');
    lt('1.8.0', '1.8.0_99');
    lt('5.5p2', '5.5p10');
    lt('5.5', '5.5p1');
    lt('8u202', '8u301');
    ascending(['1.0.2', '1.0.2a', '1.0.2b', '1.0.2z', '1.0.3']); // OpenSSL letter releases come after
    lt('1.0-rc9', '1.0-rc10');
  });
  it('takes a tag without a dash as a pre-release', () => {
    lt('1.0rc1', '1.0');
    lt('128.0b3', '128.0');
    lt('128.0b3', '128.0b10');
    lt('127.0.2', '128.0b3');
    ascending(['3.13.0a1', '3.13.0a2', '3.13.0b1', '3.13.0rc1', '3.13.0', '3.13.1']);
    ascending(['2.0beta', '2.0beta2', '2.0']);
    lt('5.0.0.RC1', '5.0.0');
    lt('1.0.dev1', '1.0');
    eq('1.0rc1', '1.0-rc1');
    eq('1.0.rc1', '1.0rc1');
  });
  it('validates', () => {
    for (const v of ['1', '1.2.3', 'v1.2.3', '10.7.0.1234', '2026.11.21.1', '1.8.0_99', '1.0rc1', '1.0.0-beta.2+build.7', '1.2.3-4-foo']) valid(v, 'semver');
    for (const v of ['', 'abc', '1..2', '1.', '1.0-', '1.0+', '1.0-a..b', '1:2.0', '1.0~rc1', '1.0^git1', '1.0 beta']) invalid(v, 'semver');
  });
});

describe('dpkg scheme', () => {
  it('orders epochs, tildes and revisions', () => {
    lt('1:9.0', '1:10.0', 'dpkg');
    lt('9.0', '1:1.0', 'dpkg');
    lt('2.2~rc-4', '2.2-1', 'dpkg');
    lt('1.2.3', '1.2.3-1ubuntu1', 'dpkg');
    lt('1.2.3-1', '1.2.3-1ubuntu1', 'dpkg');
    lt('1.2.3-1ubuntu1', '1.2.3-2', 'dpkg');
    eq('1.0', '0:1.0', 'dpkg');
    eq('1.0', '1.0-0', 'dpkg');
    ascending(['1.0~~', '1.0~', '1.0', '1.0a', '1.0+b1', '1.0.1'], 'dpkg');
  });
  it('validates', () => {
    for (const v of ['1:2.30-1ubuntu1', '2.2~rc-4', '7.88.1-10+deb12u5']) valid(v, 'dpkg');
    for (const v of ['', 'a1.0', '1.0_1', ':1.0', '1.0-', '1:', 'x:1.0']) invalid(v, 'dpkg');
  });
  it('is not the semver order', () => {
    assert.equal(compareVersions('1:1.0', '9.0', 'dpkg'), 1);
    assert.equal(compareVersions('1.0~rc1', '1.0', 'dpkg'), -1);
    assert.equal(compareVersions('1.0-1', '1.0', 'semver'), -1); // a semver pre-release
    assert.equal(compareVersions('1.0-1', '1.0', 'dpkg'), 1); // a Debian revision
  });
});

describe('rpm scheme', () => {
  it('orders epochs, tilde, caret and releases', () => {
    ascending(['1.0~rc1', '1.0', '1.0^git1', '1.0.1'], 'rpm');
    lt('2.0', '1:1.0', 'rpm');
    lt('1.0', '1.0-1', 'rpm');
    lt('1.0-1.el9', '1.0-2.el9', 'rpm');
    eq('2.0', '2_0', 'rpm');
    lt('5.5p2', '5.5p10', 'rpm');
  });
  it('validates', () => {
    for (const v of ['1.0', '1:2.3.4-5.el9', '1.0~rc1^git2', '2_0']) valid(v, 'rpm');
    for (const v of ['', '1.0-', 'x:1.0', '1.0@2', '1.0-1:2', '99999999999:1']) invalid(v, 'rpm');
  });
});

describe('windows scheme', () => {
  it('orders four numeric parts', () => {
    ascending(['10.0.19041.1', '10.0.19041.1415', '10.0.19045.0', '10.1'], 'windows');
    eq('1.2', '1.2.0.0', 'windows');
  });
  it('validates', () => {
    for (const v of ['1', '10.0.19041.1', '65535.65535.65535.65535']) valid(v, 'windows');
    for (const v of ['', '1.2.3.4.5', '70000', '1.0-beta', 'v1.0', '1..2']) invalid(v, 'windows');
  });
});

describe('compareVersions is a total order under every scheme', () => {
  // Valid and invalid text alike: agents report whatever the software prints.
  const texts = ['1.0', '1.0.0', '1.0-1', '1:1.0', '1.0~rc1', '1.0^git1', '1.0rc1', '1.0a', 'abc', '', '1..0', '2_0', '10.0.19041.1', '1.0-beta', '0:0', '~', 'v2'];
  for (const scheme of VERSION_SCHEMES) {
    it(scheme, () => {
      for (const a of texts) {
        assert.equal(compareVersions(a, a, scheme), 0, `${a} == itself`);
        for (const b of texts) {
          const ab = compareVersions(a, b, scheme);
          assert.equal(compareVersions(b, a, scheme), ab === 0 ? 0 : -ab, `${a} <=> ${b} is antisymmetric`);
          for (const c of texts) {
            if (ab <= 0 && compareVersions(b, c, scheme) <= 0) assert.ok(compareVersions(a, c, scheme) <= 0, `${a} <= ${b} <= ${c} is transitive`);
          }
        }
      }
    });
  }
});
