import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BatchWriter } from '../src/services/batch-writer.ts';

function writer(opts: { fail?: (batch: number[]) => boolean; freshTurn?: boolean } = {}) {
  let queue: number[] = [];
  const written: number[][] = [];
  const failed: number[][] = [];
  const w = new BatchWriter<number[]>({
    delayMs: 5,
    freshTurn: opts.freshTurn,
    take: () => {
      if (!queue.length) return undefined;
      const b = queue;
      queue = [];
      return b;
    },
    write: async (batch) => {
      await new Promise((r) => setImmediate(r));
      if (opts.fail?.(batch)) throw new Error('disk full');
      written.push(batch);
    },
    onError: (_err, batch) => failed.push(batch),
  });
  return { w, written, failed, push: (...n: number[]) => queue.push(...n) };
}

describe('batch writer', () => {
  it('writes what was queued as one batch after the delay, and flush waits for it', async () => {
    const { w, written, push } = writer();
    push(1, 2);
    w.schedule();
    push(3);
    w.schedule();
    await new Promise<void>((resolve) => {
      const check = () => (written.length ? resolve() : setTimeout(check, 2));
      check();
    });
    assert.deepEqual(written, [[1, 2, 3]]);
    push(4);
    await w.flush();
    assert.deepEqual(written, [[1, 2, 3], [4]]);
    await w.flush(); // nothing queued: resolves with nothing written
    assert.equal(written.length, 2);
  });

  it('keeps batches in order, and a failed one neither stops the ones after it nor makes flush reject', async () => {
    for (const freshTurn of [false, true]) {
      const { w, written, failed, push } = writer({ fail: (b) => b.includes(2), freshTurn });
      push(1);
      void w.flush();
      push(2);
      void w.flush();
      push(3);
      await w.flush();
      assert.deepEqual(written, [[1], [3]]);
      assert.deepEqual(failed, [[2]]);
    }
  });
});
