import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BatchReader } from '../src/services/batch-reader.ts';

describe('BatchReader', () => {
  it('reads the keys asked for together in one call, each once, and answers each caller', async () => {
    const calls: string[][] = [];
    const reader = new BatchReader<string, number>({
      read: async (keys) => {
        calls.push(keys);
        return new Map(keys.filter((k) => k !== 'missing').map((k) => [k, k.length]));
      },
    });
    const answers = await Promise.all(['a', 'bb', 'a', 'missing', 'ccc'].map((k) => reader.load(k)));
    assert.deepEqual(answers, [1, 2, 1, undefined, 3]);
    assert.deepEqual(calls, [['a', 'bb', 'missing', 'ccc']]);
    assert.equal(await reader.load('dddd'), 4);
    assert.equal(calls.length, 2, 'a later key is a new batch');
  });

  it('reads at once when a batch is full, and a failed read fails only its own callers', async () => {
    const calls: number[][] = [];
    const reader = new BatchReader<number, number>({
      maxBatch: 3,
      read: async (keys) => {
        calls.push(keys);
        if (keys.includes(4)) throw new Error('database down');
        return new Map(keys.map((k) => [k, k * 10]));
      },
    });
    const first = [1, 2, 3].map((k) => reader.load(k));
    assert.deepEqual(calls, [[1, 2, 3]], 'the full batch is read without waiting for the delay');
    const failed = reader.load(4);
    assert.deepEqual(await Promise.all(first), [10, 20, 30]);
    await assert.rejects(failed, /database down/);
    assert.equal(await reader.load(5), 50);
  });
});
