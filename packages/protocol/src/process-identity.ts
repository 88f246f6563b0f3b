/**
 * Telling a process apart from a later one that got the same pid.
 *
 * The agent and the server leave records of processes on disk (the holder of a folder lock,
 * the processes a run started) that must be judged after the writer may have died, even
 * after a reboot. A pid alone says little then: pids are reused. So a record holds the pid
 * with the process's start time as the operating system reports it, the boot id (Linux, macOS)
 * and the host name, and a process is "the same" only if all of them still match:
 *
 * - Linux: /proc/<pid>/stat field 22 (start time in clock ticks since boot), read
 *   synchronously (no child process, so it can be recorded in the same tick as a spawn), and
 *   /proc/sys/kernel/random/boot_id; a zombie (state Z) counts as gone, because a killed
 *   process whose parent died may wait a while for init to reap it.
 * - macOS: `ps -o lstart= -p PID`, run with LC_ALL=C and TZ=UTC so that the date is English
 *   and in UTC whatever the agent's locale and zone (a local time is ambiguous in the hour a
 *   daylight-saving change repeats, and another locale's month names do not parse); to the
 *   second. The boot id is `kern.bootsessionuuid`, a UUID made at every boot. Not
 *   `kern.boottime`: XNU moves the boot time when the clock is set (it keeps the uptime), so a
 *   clock step would make every live process (a lock holder) look like one of an earlier boot.
 * - Windows: the process's creation time from PowerShell (a FILETIME, 100 ns units). No boot
 *   id: a record's boot id is read synchronously in the tick of the spawn, where only a cached
 *   value could be had, and Windows' boot time too moves when the clock is set.
 *
 * Node-side helper shared by the agent and the server, like `tls.ts` (an import subpath of
 * protocol, never part of the wire contract). judgeProcess() is the pure decision, tested on
 * any machine with observations made up for other platforms.
 */
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';

/** What a record says about a process. `startTime` null: it could not be read when recorded. */
export interface ProcessIdentity {
  pid: number;
  startTime: string | null;
  bootId: string | null;
  hostname: string;
}

/** What can be seen of a pid now. */
export interface ProcessObservation {
  alive: boolean;
  startTime: string | null;
  bootId: string | null;
  hostname: string;
}

export const ProcessVerdict = {
  /** The recorded process is running. */
  same: 'same',
  /** It has ended (or the machine was rebooted since). */
  gone: 'gone',
  /** Its pid now belongs to another process. */
  reused: 'reused',
  /** Recorded on another host (a shared folder): its liveness cannot be checked from here. */
  otherHost: 'other-host',
} as const;
export type ProcessVerdict = (typeof ProcessVerdict)[keyof typeof ProcessVerdict];

/**
 * Whether `recorded` is the process observed now. A start time missing on either side cannot
 * disprove it: a live pid is then taken for the same process (the cautious answer, for a lock
 * as for processes to end: the record was written by us, right when it started).
 */
export function judgeProcess(recorded: ProcessIdentity, now: ProcessObservation): ProcessVerdict {
  if (recorded.hostname !== now.hostname) return ProcessVerdict.otherHost;
  if (recorded.bootId && now.bootId && recorded.bootId !== now.bootId) return ProcessVerdict.gone;
  if (!now.alive) return ProcessVerdict.gone;
  if (recorded.startTime && now.startTime && recorded.startTime !== now.startTime) return ProcessVerdict.reused;
  return ProcessVerdict.same;
}

/** One /proc/<pid>/stat line split after the command (which may hold spaces and parentheses). */
export interface ProcStat {
  pid: number;
  state: string;
  ppid: number;
  pgid: number;
  startTime: string;
}

export function parseProcStat(line: string): ProcStat | null {
  const close = line.lastIndexOf(')');
  const open = line.indexOf('(');
  if (close < 0 || open < 0) return null;
  const pid = Number(line.slice(0, open).trim());
  const f = line.slice(close + 2).trim().split(/\s+/);
  // f[0] is field 3 (state); field N is f[N - 3].
  if (!Number.isInteger(pid) || f.length < 20) return null;
  return { pid, state: f[0], ppid: Number(f[1]), pgid: Number(f[2]), startTime: f[19] };
}

function readProcStat(pid: number): ProcStat | null {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** `sysctl -n kern.bootsessionuuid` output as a boot id: the UUID, lower case; null for anything else. */
export function parseDarwinBootSession(output: string): string | null {
  const id = output.trim().toLowerCase();
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id) ? id : null;
}

let bootIdCache: string | null | undefined;
/**
 * This boot's id (changes at every boot): Linux's boot_id, macOS's boot session UUID; null
 * elsewhere. Synchronous (a record is written in the tick of a spawn) and read once: on macOS
 * the first call runs sysctl, a few milliseconds.
 */
export function bootId(platform: NodeJS.Platform = process.platform): string | null {
  if (platform !== process.platform || (platform !== 'linux' && platform !== 'darwin')) return null;
  if (bootIdCache === undefined) {
    try {
      bootIdCache =
        platform === 'linux'
          ? readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null
          : parseDarwinBootSession(execFileSync('sysctl', ['-n', 'kern.bootsessionuuid'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }));
    } catch {
      bootIdCache = null;
    }
  }
  return bootIdCache;
}

/** Whether a signal could reach `pid` (EPERM: it exists, owned by someone else). */
export function pidExists(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The start time of `pid` on Linux, synchronously; null when it is gone (or a zombie) or elsewhere. */
export function linuxStartTime(pid: number): string | null {
  if (process.platform !== 'linux') return null;
  const st = readProcStat(pid);
  return st && st.state !== 'Z' ? st.startTime : null;
}

function execText(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 15_000, encoding: 'utf8', windowsHide: true, ...(env ? { env } : {}) }, (err, stdout) => resolve(err ? null : stdout.trim() || null));
  });
}

/** The environment `ps` runs in: English month names, times in UTC (see the top of this file). */
export const PS_ENV_OVERRIDES = { LC_ALL: 'C', TZ: 'UTC' } as const;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/**
 * A `ps -o lstart=` date as printed with PS_ENV_OVERRIDES ("Wed Dec  2 01:00:37 2026", UTC),
 * in ms since the epoch; null for anything else. Parsed by hand rather than by Date.parse,
 * which would read it in the agent's own zone.
 */
export function parseLstart(text: string): number | null {
  const m = /^(?:[A-Z][a-z]{2}\s+)?([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{1,2}):(\d{2}):(\d{2})\s+(\d{4})$/.exec(text.trim());
  if (!m) return null;
  const month = MONTHS.indexOf(m[1]);
  const [day, h, min, sec, year] = [m[2], m[3], m[4], m[5], m[6]].map(Number);
  if (month < 0 || day < 1 || day > 31 || h > 23 || min > 59 || sec > 60) return null;
  return Date.UTC(year, month, day, h, min, sec);
}

/** The start time of `pid` as this platform tells it, or null when it cannot be read (or it is gone). */
export async function processStartTime(pid: number): Promise<string | null> {
  if (process.platform === 'linux') return linuxStartTime(pid);
  if (process.platform === 'win32') {
    return execText('powershell', ['-NoProfile', '-NonInteractive', '-Command', `(Get-Process -Id ${Math.trunc(pid)} -ErrorAction Stop).StartTime.ToFileTimeUtc()`]);
  }
  return psStartTime(pid);
}

/** `ps -o lstart=` of `pid` (macOS's start time; procps prints the same form, so it is tested on Linux). */
export function psStartTime(pid: number): Promise<string | null> {
  return execText('ps', ['-o', 'lstart=', '-p', String(Math.trunc(pid))], { ...process.env, ...PS_ENV_OVERRIDES });
}

/** Observes `pid` now (liveness, start time, boot, host). */
export async function observeProcess(pid: number): Promise<ProcessObservation> {
  const host = os.hostname();
  if (process.platform === 'linux') {
    const st = readProcStat(pid);
    const alive = st ? st.state !== 'Z' : false;
    return { alive, startTime: alive ? st!.startTime : null, bootId: bootId(), hostname: host };
  }
  const alive = pidExists(pid);
  return { alive, startTime: alive ? await processStartTime(pid) : null, bootId: bootId(), hostname: host };
}

/** This process's identity, for records it leaves. */
export async function ownIdentity(): Promise<ProcessIdentity> {
  return { pid: process.pid, startTime: await processStartTime(process.pid), bootId: bootId(), hostname: os.hostname() };
}

/** Whether the process a record describes is still running (judgeProcess says "same"). */
export async function isSameProcessRunning(recorded: ProcessIdentity): Promise<ProcessVerdict> {
  return judgeProcess(recorded, await observeProcess(recorded.pid));
}

/**
 * Linux only: the members of process group `pgid` that are not zombies, with their start
 * times (null elsewhere: callers fall back to signalling the group with signal 0).
 */
export function linuxGroupMembers(pgid: number): ProcStat[] | null {
  if (process.platform !== 'linux') return null;
  const out: ProcStat[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return null;
  }
  for (const name of names) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    const st = readProcStat(Number(name));
    if (st && st.pgid === pgid && st.state !== 'Z') out.push(st);
  }
  return out;
}

/**
 * The variable the agent puts in the environment of every process a run starts, with a value
 * of its own per spawn (recorded with the process): children inherit it, so a living member of
 * a process group whose leader is gone can be shown to belong to the recorded attempt.
 */
export const PROCESS_TAG_ENV = 'GARRISON_PROCESS_TAG';

/**
 * Linux only: whether `pid`'s environment (as it was at its exec, /proc/<pid>/environ) holds
 * `entry` ("NAME=value") exactly; null when it cannot be read (gone, another user's process
 * for a non-root reader, or not Linux).
 */
export function linuxEnvironHas(pid: number, entry: string): boolean | null {
  if (process.platform !== 'linux') return null;
  let raw: Buffer;
  try {
    raw = readFileSync(`/proc/${pid}/environ`);
  } catch {
    return null;
  }
  return raw.toString('utf8').split('\0').includes(entry);
}
