/**
 * A bandwidth limit on a stream: bytes pass at most at a given rate, averaged from the first
 * byte, in slices of a tenth of a second's worth so the rate stays even. For the update
 * sources' bandwidthLimitKBps (update-sources.ts; 1 KB = 1024 bytes).
 */
import { Transform, type TransformCallback } from 'node:stream';

/** A stream that passes bytes at most at `bytesPerSecond` (averaged from its first byte). */
export function throttle(bytesPerSecond: number): Transform {
  if (!(bytesPerSecond > 0)) throw new RangeError('bytesPerSecond must be positive');
  const slice = Math.max(1024, Math.floor(bytesPerSecond / 10));
  let started = 0;
  let passed = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      if (!started) started = Date.now();
      void (async () => {
        for (let i = 0; i < chunk.length; i += slice) {
          const part = chunk.subarray(i, i + slice);
          passed += part.length;
          // The time these bytes may leave at: wait until the average rate allows them.
          const due = started + (passed / bytesPerSecond) * 1000;
          const wait = due - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          this.push(part);
        }
      })().then(() => done(), done);
    },
  });
}

/** The stream a limit asks for, or none. */
export function limitStream(kbps: number | null | undefined): Transform[] {
  return kbps && kbps > 0 ? [throttle(kbps * 1024)] : [];
}

