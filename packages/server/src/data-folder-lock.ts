/**
 * One server per SQLite data folder. Two servers on one SQLite database would both schedule,
 * dispatch and reap the same work, and agents would flap between them. The server holds
 * `<data>/server.lock` while it runs (see @garrison/protocol/folder-lock: the holder's pid and
 * start time, stale as soon as that process is gone, kill -9 included; released by close()),
 * and a second one is refused with DATA_FOLDER_IN_USE naming the holder.
 *
 * With PostgreSQL the lock is not taken: several instances sharing one database (and, behind
 * a load balancer, possibly one data folder on shared storage for the keys and the
 * repository) is the supported way to scale out (ADR 0003, 0012).
 */
import path from 'node:path';
import { acquireFolderLock, describeHolder, FolderInUseError, type FolderLock } from '@garrison/protocol/folder-lock';
import { AppError } from './errors.ts';

export const DATA_LOCK_FILE = 'server.lock';

/** Takes the data folder's lock (the folder must exist), or throws AppError DATA_FOLDER_IN_USE. */
export async function lockDataFolder(dataDir: string): Promise<FolderLock> {
  try {
    return await acquireFolderLock({
      file: path.join(dataDir, DATA_LOCK_FILE),
      program: 'server',
      code: 'DATA_FOLDER_IN_USE',
      inUseMessage: (holder, file) =>
        `the data folder ${dataDir} is in use by another Garrison server: ${describeHolder(holder)}. ` +
        `Stop that server first (kill ${holder?.pid ?? 'it'}), or give this one another --data folder. ` +
        `If no server runs there${holder ? ` (on host ${holder.hostname})` : ''}, remove ${file}.`,
    });
  } catch (err) {
    if (err instanceof FolderInUseError) throw new AppError('DATA_FOLDER_IN_USE', err.message, { file: err.file, pid: err.holder?.pid ?? null, hostname: err.holder?.hostname ?? null });
    throw err;
  }
}
