/**
 * Matching an open file against a signature set: the one loop that on-demand scans and
 * real-time protection share. Part of the service's payload: node:* only.
 *
 * The file is read in CHUNK_BYTES chunks into one buffer whose front holds the last
 * (longest pattern - 1) bytes of the previous chunk, so memory does not grow with file size
 * and a pattern spanning a chunk boundary is still found, without re-reporting one found
 * earlier (a signature is reported at most once per file). Without `hash` the read stops
 * as soon as every signature was found; with it the whole file is read, for its SHA-256
 * (what a detection record names the file by).
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { CompiledDefinitions } from './definitions.ts';

export const CHUNK_BYTES = 1024 * 1024;

export interface MatchResult {
  /** Names of the signatures found, in definition order of discovery. */
  found: string[];
  /** Hex SHA-256 of the whole file, when asked for and the file was read to its end. */
  sha256: string | null;
  /** False when `stop` cut the read short. */
  complete: boolean;
}

export async function matchFile(fh: FileHandle, defs: CompiledDefinitions, options: { hash?: boolean; stop?: () => boolean } = {}): Promise<MatchResult> {
  const { signatures, maxPatternBytes } = defs;
  const hash = options.hash ? createHash('sha256') : null;
  const stop = options.stop ?? (() => false);
  const overlap = Math.max(0, maxPatternBytes - 1);
  const buf = Buffer.allocUnsafe(overlap + CHUNK_BYTES);
  const found: string[] = [];
  let remaining = signatures.slice();
  let carry = 0;
  let position = 0;
  let eof = false;
  while ((remaining.length > 0 || hash) && !stop()) {
    const { bytesRead } = await fh.read(buf, carry, CHUNK_BYTES, position);
    if (bytesRead === 0) {
      eof = true;
      break;
    }
    position += bytesRead;
    hash?.update(buf.subarray(carry, carry + bytesRead));
    const length = carry + bytesRead;
    if (remaining.length > 0) {
      const window = buf.subarray(0, length);
      remaining = remaining.filter((s) => {
        if (window.indexOf(s.bytes) < 0) return true;
        found.push(s.name);
        return false;
      });
    }
    const keep = Math.min(overlap, length);
    buf.copyWithin(0, length - keep, length);
    carry = keep;
  }
  const complete = eof || (!hash && remaining.length === 0);
  return { found, sha256: hash && eof ? hash.digest('hex') : null, complete };
}
