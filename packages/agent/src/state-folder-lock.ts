/**
 * One agent per state folder. Two agents on one folder share one device credential: the
 * server takes each new connection of the device and closes the older one, so the two would
 * replace each other's connection every second, and both would run every task and write the
 * same spool. The running agent holds `<state>/agent.lock` (see
 * @garrison/protocol/folder-lock: the holder's pid and start time, stale as soon as that
 * process is gone, kill -9 included); a second agent exits with STATE_FOLDER_IN_USE_EXIT_CODE
 * and a message naming the holder, and the launcher does not restart it.
 */
import path from 'node:path';
import { ErrorCode } from '@garrison/protocol';
import { acquireFolderLock, describeHolder, type FolderLock } from '@garrison/protocol/folder-lock';

export const STATE_LOCK_FILE = 'agent.lock';
/** The agent's exit code when its state folder is in use (EX_CANTCREAT of sysexits.h). */
export const STATE_FOLDER_IN_USE_EXIT_CODE = 73;

/** Takes the state folder's lock (the folder must exist), or throws FolderInUseError (code STATE_FOLDER_IN_USE). */
export function lockStateFolder(stateDir: string): Promise<FolderLock> {
  return acquireFolderLock({
    file: path.join(stateDir, STATE_LOCK_FILE),
    program: 'agent',
    code: ErrorCode.STATE_FOLDER_IN_USE,
    inUseMessage: (holder, file) =>
      `the state folder ${stateDir} is in use by another agent: ${describeHolder(holder)}. ` +
      `Stop that agent first (the garrison-agent service, or kill ${holder?.pid ?? 'it'}), or give this one another --state folder. ` +
      `If no agent runs there${holder && holder.hostname ? ` (on host ${holder.hostname})` : ''}, remove ${file}.`,
  });
}
