import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { packageFolderName } from '../src/products.ts';

describe('package folders', () => {
  it('names a folder for every version the manifest allows that Windows accepts, one per version', () => {
    const versions = ['1:10.0-1ubuntu1', '2.2~rc-4', '1.0^git1', '1.8.0_100', '10.7.0.1234', '1.0.0-beta+exp.sha.5114f85', '1:10.0'];
    const names = versions.map(packageFolderName);
    for (const n of names) assert.doesNotMatch(n, /[<>:"/\\|?*]/, n);
    assert.equal(packageFolderName('1:10.0'), '1%3A10.0');
    assert.equal(new Set(names).size, new Set(versions).size);
  });
});
