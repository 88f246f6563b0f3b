/**
 * The quarantine: where a detected file is moved when the policy's detectionAction is
 * "quarantine". Part of the service's payload: node:* only.
 *
 *   FOLDER/<id>.data   the file's bytes, each XORed with 0xA5
 *   FOLDER/<id>.json   { id, originalPath, time, signatures, sha256, size, mode, uid, gid, source, encoding }
 *
 * Why it is built this way:
 * - The bytes are copied (from the file handle the scan read, so what is kept is what was
 *   judged) rather than renamed: the copy is never executable (0600), never the original
 *   bytes (XOR: neither this scanner nor a real anti-virus re-detects it, nor can anyone run
 *   it by mistake), and works across file systems where rename would not.
 * - The original is removed only once the copy and its record are on disk (fsync), and only
 *   if the path still names the same file (device and inode) that was scanned: a file
 *   replaced meanwhile is not deleted on the strength of another file's scan.
 * - The folder is 0700; the service never watches or scans it (service.ts, real-time.ts).
 * - Records older than the policy's retention are purged (at start, hourly, on reconfigure).
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants, existsSync, type Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CHUNK_BYTES } from './matcher.ts';

export const QUARANTINE_XOR = 0xa5;

export interface QuarantineRecord {
  id: string;
  originalPath: string;
  time: string;
  signatures: string[];
  sha256: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  source: 'real-time' | 'on-demand';
  encoding: 'xor-a5';
}

function xor(buf: Buffer): void {
  for (let i = 0; i < buf.length; i++) buf[i] ^= QUARANTINE_XOR;
}

/**
 * Copies the file open as `fh` (stats `st`) into `folder` and removes `path`. Throws when the
 * file cannot be moved; the original then stays where it was.
 */
export async function quarantineFile(options: {
  fh: FileHandle;
  st: Stats;
  path: string;
  folder: string;
  signatures: string[];
  source: QuarantineRecord['source'];
  now?: Date;
}): Promise<QuarantineRecord> {
  const { fh, st, path, folder, signatures, source } = options;
  const now = options.now ?? new Date();
  await mkdir(folder, { recursive: true, mode: 0o700 });
  const id = `${now.toISOString().replace(/[-:.]/g, '').replace('T', '-').replace('Z', '')}-${randomBytes(6).toString('hex')}`;
  const dataPath = join(folder, `${id}.data`);
  const metaPath = join(folder, `${id}.json`);
  const hash = createHash('sha256');
  const out = await open(dataPath, 'wx', 0o600);
  let size = 0;
  try {
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK_BYTES, size);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      hash.update(chunk);
      xor(chunk);
      await out.write(chunk, 0, bytesRead);
      size += bytesRead;
    }
    await out.sync();
  } catch (err) {
    await out.close().catch(() => {});
    await unlink(dataPath).catch(() => {});
    throw err;
  }
  await out.close();
  const record: QuarantineRecord = {
    id,
    originalPath: path,
    time: now.toISOString(),
    signatures,
    sha256: hash.digest('hex'),
    size,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    source,
    encoding: 'xor-a5',
  };
  const tmp = `${metaPath}.tmp`;
  const meta = await open(tmp, 'wx', 0o600);
  try {
    await meta.writeFile(`${JSON.stringify(record, null, 2)}\n`);
    await meta.sync();
  } finally {
    await meta.close();
  }
  await rename(tmp, metaPath);
  const undo = async (): Promise<void> => {
    await unlink(dataPath).catch(() => {});
    await unlink(metaPath).catch(() => {});
  };
  // Remove the original through a handle on its folder, not by its path: between the check
  // and the unlink, a user who can write in a watched folder could swap a folder on the path
  // for a symlink (to /etc, say), and a path-based unlink would delete the file of that name
  // there with the scanner's rights. On Linux the held folder is reached as
  // /proc/self/fd/<fd>/<name>, which no later rename of the path can redirect; elsewhere the
  // folder's identity is checked again right before the unlink (narrower, not closed).
  let dir: FileHandle | null = null;
  try {
    try {
      dir = await openFolder(dirname(path));
    } catch (err) {
      await undo();
      throw new Error(`the file's folder changed while it was scanned: ${(err as Error).message}`);
    }
    const via = dir !== null ? join('/proc/self/fd', String(dir.fd), basename(path)) : path;
    let now2: Stats;
    try {
      now2 = await lstat(via);
    } catch (err) {
      await undo();
      throw new Error(`the file is gone: ${(err as Error).message}`);
    }
    if (now2.dev !== st.dev || now2.ino !== st.ino) {
      await undo();
      throw new Error('the file was replaced while it was scanned; the new one is scanned on its own');
    }
    try {
      await unlink(via);
    } catch (err) {
      await undo();
      throw err;
    }
  } finally {
    await dir?.close();
  }
  return record;
}

/** A handle on a folder (not following a symlink in its last part) where /proc/self/fd reaches through it; null elsewhere. */
async function openFolder(folder: string): Promise<FileHandle | null> {
  if (process.platform !== 'linux' || !existsSync('/proc/self/fd')) return null;
  return open(folder, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
}

/** The records in `folder`, oldest first (unreadable ones skipped). */
export async function listQuarantine(folder: string): Promise<QuarantineRecord[]> {
  let names: string[];
  try {
    names = await readdir(folder);
  } catch {
    return [];
  }
  const out: QuarantineRecord[] = [];
  for (const n of names.filter((x) => x.endsWith('.json')).sort()) {
    try {
      out.push(JSON.parse(await readFile(join(folder, n), 'utf8')) as QuarantineRecord);
    } catch {
      // half-written or foreign: not ours to judge
    }
  }
  return out;
}

/** Deletes records (and their data) older than `days`; 0 keeps everything. Returns how many went. */
export async function purgeQuarantine(folder: string, days: number, now: Date = new Date()): Promise<number> {
  if (days <= 0) return 0;
  const cutoff = now.getTime() - days * 86_400_000;
  let purged = 0;
  for (const r of await listQuarantine(folder)) {
    const at = Date.parse(r.time);
    if (!Number.isFinite(at) || at >= cutoff || !/^[0-9A-Za-z-]+$/.test(r.id)) continue;
    await unlink(join(folder, `${r.id}.data`)).catch(() => {});
    await unlink(join(folder, `${r.id}.json`)).catch(() => {});
    purged++;
  }
  return purged;
}

/** A quarantined file's original bytes (for restoring it by hand, and for tests). */
export async function quarantinedBytes(folder: string, id: string): Promise<Buffer> {
  if (!/^[0-9A-Za-z-]+$/.test(id)) throw new Error('not a quarantine id');
  const data = await readFile(join(folder, `${id}.data`));
  xor(data);
  return data;
}


