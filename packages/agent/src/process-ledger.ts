/**
 * The durable record of the processes a run started: `<state>/processes/<runId>.<attempt>.<pid>.json`.
 *
 * A killed agent (kill -9, power loss, OOM killer) resumes its interrupted runs as their next
 * attempt; the processes the earlier attempt started are not the agent's children any more
 * but keep running, so the work would happen twice side by side. To end them first, the
 * agent must know, after its own death, what it started: the pid, whether it leads its own
 * process group (POSIX executors spawn detached), and what defeats pid reuse (the start
 * time and boot id, see @garrison/protocol/process-identity, and the GARRISON_PROCESS_TAG
 * value the executor put in the process's environment, which its children inherit).
 *
 * The record is written synchronously in the tick of the spawn, straight to its final name,
 * then fsync'd with its folder: no await sits between the child's start and its record. What
 * a kill -9 of the agent needs is only the write itself (the kernel keeps it whatever happens
 * to the process), so the window left is the microseconds between the fork and that write;
 * the fsyncs are for power loss, which ends the children too, and a record torn by it is
 * unreadable and dropped. Closing the window entirely would need the child to wait for a
 * go-ahead (ADR 0017). A record is removed when the attempt that started the process is over
 * (its executor returned), kept when the agent stops in the middle of it.
 *
 * One file per process, written once and never rewritten: there is no read-modify-write to
 * race with.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { readdir, readFile, rm, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { bootId, linuxStartTime, type ProcessIdentity } from '@garrison/protocol/process-identity';
import { isValidRunId } from './run-spool.ts';
import { isTempFileName, syncDir } from './state-file.ts';

export interface ProcessRecord extends ProcessIdentity {
  runId: string;
  attempt: number;
  taskId: string;
  /** True when the process leads its own process group (pgid = pid), so the group is what to end. */
  group: boolean;
  platform: NodeJS.Platform;
  /** What was started (the program's name, for messages). */
  command: string;
  recordedAt: string;
  /** The value of GARRISON_PROCESS_TAG in the process's environment (leftover-processes.ts); absent in older records. */
  envTag?: string;
}

/** What an executor tells about a process it has just started. */
export interface StartedProcess {
  pid: number;
  /** It was spawned as the leader of its own process group. */
  group: boolean;
  command: string;
  /** The GARRISON_PROCESS_TAG value the executor put in the process's environment, if it did. */
  envTag?: string;
}

export class ProcessLedger {
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
  }

  async init(): Promise<void> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.dir)) {
      if (isTempFileName(name)) await unlink(path.join(this.dir, name)).catch(() => {});
    }
  }

  /** Records, durably and before returning, a process that a run's attempt has just started. */
  recordStarted(run: { runId: string; attempt: number; taskId: string }, p: StartedProcess): ProcessRecord {
    if (!isValidRunId(run.runId)) throw new TypeError(`invalid runId ${JSON.stringify(run.runId)}`);
    const rec: ProcessRecord = {
      runId: run.runId,
      attempt: run.attempt,
      taskId: run.taskId,
      pid: p.pid,
      group: p.group,
      // Linux reads it synchronously. Elsewhere it is not known in this tick: a live pid is then
      // taken for this process only if it started before recordedAt (leftover-processes.ts).
      startTime: linuxStartTime(p.pid),
      bootId: bootId(),
      hostname: os.hostname(),
      platform: process.platform,
      command: p.command,
      recordedAt: new Date().toISOString(),
      ...(p.envTag ? { envTag: p.envTag } : {}),
    };
    const file = path.join(this.dir, `${run.runId}.${run.attempt}.${p.pid}.json`);
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const fd = openSync(file, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(rec) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (process.platform !== 'win32') {
      const dfd = openSync(this.dir, 'r');
      try {
        fsyncSync(dfd);
      } catch {
        // some file systems refuse fsync on a folder; the rename has happened
      } finally {
        closeSync(dfd);
      }
    }
    return rec;
  }

  /** Every recorded process, or those of one run. Unreadable records are removed (nothing can be done with them). */
  async list(runId?: string): Promise<ProcessRecord[]> {
    return (await this.#scan(runId)).map((e) => e.rec);
  }

  /**
   * The records with their file names. A record counts only under the name it was written to
   * (`<runId>.<attempt>.<pid>.json`, from its own fields): one whose name and content disagree
   * was not written by recordStarted, and forget(), which removes by name, could never remove it.
   */
  async #scan(runId?: string): Promise<{ name: string; rec: ProcessRecord }[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: { name: string; rec: ProcessRecord }[] = [];
    for (const name of names) {
      if (!name.endsWith('.json') || isTempFileName(name)) continue;
      if (runId !== undefined && !name.startsWith(`${runId}.`)) continue;
      const file = path.join(this.dir, name);
      try {
        const rec = JSON.parse(await readFile(file, 'utf8')) as ProcessRecord;
        if (!rec || !Number.isInteger(rec.pid) || rec.pid <= 0 || !isValidRunId(rec.runId) || !Number.isInteger(rec.attempt) || typeof rec.group !== 'boolean') throw new Error('not a process record');
        if (name !== `${rec.runId}.${rec.attempt}.${rec.pid}.json`) throw new Error('a record under another name');
        if (runId === undefined || rec.runId === runId) out.push({ name, rec });
      } catch {
        await unlink(file).catch(() => {});
      }
    }
    return out.sort((a, b) => a.rec.attempt - b.rec.attempt || String(a.rec.recordedAt).localeCompare(String(b.rec.recordedAt)));
  }

  /** Forgets the processes of a run (its attempt is over: what it started is no longer the run's). */
  async forget(runId: string): Promise<void> {
    const found = await this.#scan(runId);
    for (const { name } of found) await rm(path.join(this.dir, name), { force: true });
    if (found.length) await syncDir(this.dir).catch(() => {});
  }
}
