/**
 * The bounded tail of a run's output.
 *
 * A script may write gigabytes; a run report carries at most OUTPUT_TAIL_MAX_BYTES of it.
 * We keep a short list of chunks and drop whole chunks from the front as soon as the
 * remaining ones still cover the last `maxBytes` bytes, and copy a chunk that is by itself
 * larger than the limit down to its last `maxBytes` bytes. So memory stays below
 * 2 × maxBytes whatever the stream does, and no byte is copied more than once per push.
 * Decoding happens only in text(): the cut may fall inside a multi-byte UTF-8 character,
 * so the leading continuation bytes are skipped rather than shown as U+FFFD garbage.
 */
import { OUTPUT_TAIL_MAX_BYTES } from '@garrison/protocol';

export class OutputTail {
  readonly maxBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #total = 0;

  constructor(maxBytes: number = OUTPUT_TAIL_MAX_BYTES) {
    if (!Number.isInteger(maxBytes) || maxBytes < 1) throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
    this.maxBytes = maxBytes;
  }

  /** Every byte pushed so far, kept or not. */
  get totalBytes(): number {
    return this.#total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#total += chunk.length;
    if (chunk.length >= this.maxBytes) {
      // Copy, so that a huge chunk's backing memory is not retained by a small view.
      this.#chunks = [Buffer.from(chunk.subarray(chunk.length - this.maxBytes))];
      this.#buffered = this.maxBytes;
      return;
    }
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    while (this.#chunks.length > 1 && this.#buffered - this.#chunks[0].length >= this.maxBytes) {
      this.#buffered -= this.#chunks.shift()!.length;
    }
  }

  /** The kept bytes as UTF-8, prefixed with a marker when bytes were dropped. */
  text(): string {
    let buf = Buffer.concat(this.#chunks, this.#buffered);
    if (buf.length > this.maxBytes) buf = buf.subarray(buf.length - this.maxBytes);
    let dropped = this.#total - buf.length;
    if (dropped > 0) {
      // Skip up to 3 continuation bytes (10xxxxxx) of a character cut by the trim.
      let skip = 0;
      while (skip < 3 && skip < buf.length && (buf[skip] & 0xc0) === 0x80) skip++;
      buf = buf.subarray(skip);
      dropped += skip;
      return `…[truncated ${dropped} bytes]\n${buf.toString('utf8')}`;
    }
    return buf.toString('utf8');
  }
}
