/**
 * One running process per folder: the agent's state folder, the server's data folder.
 *
 * Two agents on one state folder share one device credential: the server takes each new
 * connection for the device and closes the other, so the two replace each other's connection
 * for ever, and both run every task. Two servers on one SQLite data folder schedule and
 * dispatch the same work twice. So the process takes a lock file in the folder while it runs,
 * and a second one is refused with a message that names the holder.
 *
 * Why a file of our own and not an npm lock package: proper-lockfile (the common one) keeps a
 * lock alive by touching its mtime and calls it stale only after `stale` ms without a touch,
 * so after a kill -9 the folder stays blocked for that long (a service manager restarting the
 * agent at once would be refused), and it does not say who holds the lock. Here the file
 * names its holder (pid, start time, boot id, host: see process-identity.ts), and a lock
 * whose holder is no longer running is stale at once, whatever way it ended (kill -9, power
 * loss); nothing needs to be refreshed while running.
 *
 * - Taking: the holder record is written to a temp file and hard-linked to the lock's name;
 *   link() fails if the name exists, atomically, and a reader never sees a half-written record.
 * - A stale lock is broken under a second lock file (`<lock>.break`, taken the same way): the
 *   breaker reads the lock again and removes it only if it is still the stale record it
 *   judged, so two processes breaking the same stale lock cannot remove a fresh one. A
 *   breaker that was itself killed in the middle (a window of microseconds) leaves a breaker
 *   file whose holder is gone; it is removed by the next taker, which is the one remaining
 *   race (two takers both finding a dead breaker), accepted.
 * - A holder on another host (a folder on a network file system) cannot be checked: it is
 *   taken as running, and the message says to remove the file if it is not.
 * - release() removes the file only if it still holds our own record (a random token).
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ownIdentity, isSameProcessRunning, ProcessVerdict, type ProcessIdentity } from './process-identity.ts';

export interface FolderLockHolder extends ProcessIdentity {
  /** What holds it: "agent", "server". */
  program: string;
  startedAt: string;
  token: string;
}

export interface FolderLockOptions {
  /** The lock file, e.g. `<state>/agent.lock`. Its folder must exist. */
  file: string;
  program: string;
  /** The refusal's stable code, e.g. STATE_FOLDER_IN_USE. */
  code: string;
  /** The refusal's message, from the holder and the lock file. */
  inUseMessage(holder: FolderLockHolder | null, file: string): string;
}

export interface FolderLock {
  readonly file: string;
  readonly holder: FolderLockHolder;
  /** Removes the lock file if it is still ours; safe to call twice. */
  release(): Promise<void>;
}

/** The folder is held by a running process. `holder` is null when its record cannot be read. */
export class FolderInUseError extends Error {
  readonly code: string;
  readonly file: string;
  readonly holder: FolderLockHolder | null;
  constructor(code: string, message: string, file: string, holder: FolderLockHolder | null) {
    super(message);
    this.name = 'FolderInUseError';
    this.code = code;
    this.file = file;
    this.holder = holder;
  }
}

const ATTEMPTS = 40;
const RETRY_MS = 25;

type Read = { kind: 'missing' } | { kind: 'holder'; holder: FolderLockHolder; text: string } | { kind: 'unreadable'; text: string };

async function readHolder(file: string): Promise<Read> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw err;
  }
  try {
    const h = JSON.parse(text) as FolderLockHolder;
    if (h && typeof h === 'object' && Number.isInteger(h.pid) && typeof h.token === 'string' && typeof h.hostname === 'string') return { kind: 'holder', holder: h, text };
  } catch {
    // fall through: unreadable
  }
  return { kind: 'unreadable', text };
}

/** Creates `file` holding `holder`, or returns false if it exists. The content is complete when the name appears. */
async function createExclusive(file: string, holder: FolderLockHolder): Promise<boolean> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  await writeFile(tmp, JSON.stringify(holder) + '\n', { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    // A file system without hard links (FAT, some network shares): an exclusive create, whose
    // content a reader might see half written for an instant (it would take it for stale).
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') {
      try {
        await writeFile(file, JSON.stringify(holder) + '\n', { mode: 0o600, flag: 'wx' });
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw e;
      }
    }
    throw err;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/**
 * How long a record that cannot be read must stay unchanged to be stale. Through link() a
 * record is complete when its name appears, so an unreadable one is a write torn by a power
 * loss (stale) or, on a file system without hard links, a taker's exclusive create caught
 * between its open and its write: taking that for stale removed a lock being taken, and both
 * processes went on holding it. A torn file never changes; one being written does, at once.
 */
const UNREADABLE_SETTLE_MS = 200;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Stale: missing, unreadable and unchanged over the settle time, or its holder is not running. */
async function isStale(r: Read, file: string): Promise<boolean> {
  if (r.kind === 'missing') return true;
  if (r.kind === 'unreadable') {
    await pause(UNREADABLE_SETTLE_MS);
    const again = await readHolder(file);
    return again.kind === 'unreadable' && again.text === r.text;
  }
  const v = await isSameProcessRunning(r.holder);
  return v === ProcessVerdict.gone || v === ProcessVerdict.reused;
}

/** Takes the folder lock, or throws FolderInUseError naming the running holder. */
export async function acquireFolderLock(o: FolderLockOptions): Promise<FolderLock> {
  const me: FolderLockHolder = { ...(await ownIdentity()), program: o.program, startedAt: new Date().toISOString(), token: randomBytes(16).toString('hex') };
  const breaker = `${o.file}.break`;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (await createExclusive(o.file, me)) return lockOf(o.file, me);
    const seen = await readHolder(o.file);
    if (seen.kind === 'missing') continue;
    if (!(await isStale(seen, o.file))) {
      // An unreadable record that changed meanwhile is being written: look again.
      if (seen.kind === 'unreadable') continue;
      throw new FolderInUseError(o.code, o.inUseMessage(seen.holder, o.file), o.file, seen.holder);
    }
    // Stale: remove it under the breaker, only if it is still the record judged stale.
    if (!(await createExclusive(breaker, me))) {
      const b = await readHolder(breaker);
      if (b.kind !== 'missing' && (await isStale(b, breaker))) await unlink(breaker).catch(() => {});
      await pause(RETRY_MS);
      continue;
    }
    try {
      const again = await readHolder(o.file);
      if (again.kind !== 'missing' && again.text === seen.text) await unlink(o.file).catch(() => {});
    } finally {
      const b = await readHolder(breaker);
      if (b.kind === 'holder' && b.holder.token === me.token) await unlink(breaker).catch(() => {});
    }
  }
  throw new FolderInUseError(o.code, `could not take ${o.file}: it kept changing hands (another ${o.program} is starting at the same time?)`, o.file, null);
}

function lockOf(file: string, holder: FolderLockHolder): FolderLock {
  let released: Promise<void> | null = null;
  return {
    file,
    holder,
    release() {
      released ??= (async () => {
        const r = await readHolder(file).catch(() => ({ kind: 'missing' }) as const);
        if (r.kind === 'holder' && r.holder.token === holder.token) await unlink(file).catch(() => {});
      })();
      return released;
    },
  };
}

/** "pid 123 on host h, running since …" for messages. */
export function describeHolder(h: FolderLockHolder | null): string {
  if (!h) return 'a process whose lock record cannot be read';
  const self = h.pid === process.pid && h.hostname === os.hostname() ? ' (this very process)' : '';
  return `pid ${h.pid}${self} on host ${h.hostname}, running since ${h.startedAt}`;
}
