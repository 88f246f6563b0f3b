import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compareVersions, isNewerVersion, maxVersion } from '../src/index.ts';

const lt = (a: string, b: string) => {
  assert.ok(compareVersions(a, b) < 0, `${a} < ${b}`);
  assert.ok(compareVersions(b, a) > 0, `${b} > ${a}`);
};
const eq = (a: string, b: string) => {
  assert.equal(compareVersions(a, b), 0, `${a} == ${b}`);
  assert.equal(compareVersions(b, a), 0, `${b} == ${a}`);
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
