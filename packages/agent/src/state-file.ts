/**
 * Atomic JSON state files.
 *
 * The agent keeps its credential, task list and unsent run reports in small JSON files,
 * and a device may lose power at any moment. Writing in place could leave a half-written
 * file, so we write a temp file in the same folder (a rename is only atomic within one
 * file system), fsync it so its data is on disk before it gets the real name, rename it
 * over the target, and fsync the folder so the rename itself survives a crash. A reader
 * therefore sees either the old or the new content, never a mix. Temp files are named
 * `.<name>.<pid>.<random>.tmp` so that a folder scan can recognise crash leftovers.
 *
 * readJson distinguishes "missing" (undefined: first start) from "corrupt" (a thrown
 * CorruptJsonError): silently treating a damaged credential file as absent would make the
 * agent re-enrol, so the caller must decide.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

export const TEMP_SUFFIX = '.tmp';

export class CorruptJsonError extends Error {
  readonly path: string;
  constructor(path: string, cause: unknown) {
    super(`corrupt JSON in ${path}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'CorruptJsonError';
    this.path = path;
  }
}

/** True for the temp-file names writeJsonAtomic uses (leftovers of a crash mid-write). */
export function isTempFileName(name: string): boolean {
  return name.startsWith('.') && name.endsWith(TEMP_SUFFIX);
}

export async function writeJsonAtomic(path: string, value: unknown, mode: number = 0o600): Promise<void> {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`value for ${path} is not JSON-serialisable`);
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`);
  let renamed = false;
  try {
    const fh = await open(tmp, 'wx', mode);
    try {
      await fh.writeFile(json + '\n', 'utf8');
      await fh.chmod(mode); // open's mode is filtered by the umask; make it exact
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    renamed = true;
    await syncDir(dir);
  } finally {
    if (!renamed) await unlink(tmp).catch(() => {});
  }
}

export async function readJson<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new CorruptJsonError(path, err);
  }
}

/** fsync a folder so a rename or create in it is durable. Windows cannot open folders: skip there. */
export async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch (err) {
    // Some file systems refuse fsync on a folder; the rename has still happened.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EISDIR') throw err;
  } finally {
    await fh.close();
  }
}
