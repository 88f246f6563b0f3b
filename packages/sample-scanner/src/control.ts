/**
 * Starting, stopping and checking the scanner service of one product folder. Used by the
 * agent plug-in (in process) and by ctl.ts (the package's start, stop and status
 * commands); part of the service's payload, so node:* only.
 *
 * - start: spawns `node service.ts --home DIR` detached (its own process group, stdio to
 *   DIR/log/scanner.log), so it outlives whoever started it, and resolves once the service
 *   answers a ping. A service already running is left alone.
 * - stop: asks politely (`shutdown` over the socket) and waits for the process to be gone;
 *   when the service does not answer, falls back to SIGTERM and then SIGKILL on the pid
 *   of DIR/run/scanner.pid, but only after checking that this pid still runs our
 *   service.ts for DIR: a stale pid file must never make us kill a process that reused
 *   the pid.
 * - "Gone" treats a zombie as gone: when the process that started the service exited
 *   first, the service's parent is PID 1, which in a container may never reap it.
 */
import { spawn, execFile } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pingService, ScannerClient, type PingResult } from './client.ts';
import { scannerPaths } from './paths.ts';

export interface StartOptions {
  /** The service's script; by default service.ts beside this file. */
  serviceScript?: string;
  /** The Node binary; by default the one running this code. */
  nodePath?: string;
  /** How long to wait for the first ping answer. */
  timeoutMs?: number;
}

export interface ServiceStatus {
  running: boolean;
  pid: number | null;
  ping: PingResult | null;
}

/** The log is rotated at start once it is larger than this. */
const MAX_LOG_BYTES = 1024 * 1024;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function readPidFile(home: string): Promise<number | null> {
  try {
    const pid = Number((await readFile(scannerPaths(home).pid, 'utf8')).trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Whether `pid` is a live process (a zombie counts as gone). */
export async function processAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  if (process.platform === 'linux') {
    const st = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (/^ Z /.test(st.slice(st.lastIndexOf(')') + 1))) return false;
  }
  return true;
}

/** The command line of `pid`, as far as the platform tells it. */
async function commandLine(pid: number): Promise<string | null> {
  if (process.platform === 'linux') {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => null);
    return raw === null ? null : raw.split('\0').join(' ');
  }
  if (process.platform === 'win32') return null;
  return new Promise((resolve) => {
    execFile('ps', ['-o', 'command=', '-p', String(pid)], { timeout: 5000 }, (err, stdout) => resolve(err ? null : String(stdout)));
  });
}

/** Whether `pid` runs service.ts for this product folder (unknown on Windows: trusted). */
async function isOurService(pid: number, home: string): Promise<boolean> {
  const cmd = await commandLine(pid);
  if (cmd === null) return process.platform === 'win32';
  return cmd.includes('service.ts') && cmd.includes(scannerPaths(home).home);
}

export async function serviceStatus(home: string, timeoutMs = 1000): Promise<ServiceStatus> {
  const ping = await pingService(home, timeoutMs);
  const pid = ping?.pid ?? (await readPidFile(home));
  return { running: ping !== null, pid, ping };
}

async function rotateLog(log: string): Promise<void> {
  try {
    if ((await stat(log)).size > MAX_LOG_BYTES) await rename(log, `${log}.1`);
  } catch {
    // no log yet
  }
}

/** Starts the service unless it already runs; resolves with its first ping answer. */
export async function startService(home: string, options: StartOptions = {}): Promise<PingResult> {
  const already = await pingService(home, 1000);
  if (already) return already;
  const paths = scannerPaths(home);
  const script = options.serviceScript ?? join(import.meta.dirname, 'service.ts');
  await stat(script).catch(() => {
    throw new Error(`the scanner service is not installed (${script} is missing)`);
  });
  await mkdir(paths.logDir, { recursive: true });
  await rotateLog(paths.log);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const logFd = openSync(paths.log, 'a');
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  let spawnError: Error | null = null;
  let child;
  try {
    child = spawn(options.nodePath ?? process.execPath, [script, '--home', paths.home], {
      cwd: paths.home,
      detached: true,
      stdio: ['ignore', logFd, logFd],
      windowsHide: true,
    });
  } finally {
    closeSync(logFd);
  }
  child.on('error', (err) => {
    spawnError = err;
  });
  child.on('exit', (code, signal) => {
    exited = { code, signal };
  });
  child.unref();

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ping = await pingService(home, 500);
    if (ping) return ping;
    if (spawnError) throw new Error(`cannot start the scanner service: ${(spawnError as Error).message}`);
    if (exited) {
      const { code, signal } = exited;
      // 3: another instance won a race to start; it is the one that answers.
      if (code === 3) {
        const other = await pingService(home, 2000);
        if (other) return other;
      }
      throw new Error(`the scanner service exited at start (${code !== null ? `exit code ${code}` : `signal ${signal}`}); see ${paths.log}: ${await logTail(paths.log)}`);
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the scanner service did not answer within ${timeoutMs} ms; see ${paths.log}`);
    }
    await sleep(100);
  }
}

async function logTail(log: string): Promise<string> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-3).join(' | ');
}

async function waitGone(pid: number | null, home: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    const alive = pid !== null ? await processAlive(pid) : (await pingService(home, 200)) !== null;
    if (!alive) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

/**
 * Stops the service; resolves with whether one was running. Throws when it cannot be
 * stopped.
 */
export async function stopService(home: string, timeoutMs = 10_000): Promise<boolean> {
  const paths = scannerPaths(home);
  let pid: number | null = null;
  let asked = false;
  try {
    const client = await ScannerClient.connect(home, { timeoutMs: 1000 });
    try {
      pid = (await client.ping(1000)).pid;
      await client.shutdown(2000);
      asked = true;
    } finally {
      client.close();
    }
  } catch {
    // not answering: fall back to the pid file
  }
  if (asked && (await waitGone(pid, home, timeoutMs))) return true;

  pid ??= await readPidFile(home);
  if (pid === null || !(await processAlive(pid)) || !(await isOurService(pid, home))) {
    if (asked) throw new Error('the scanner service accepted shutdown but did not exit');
    // Nothing of ours runs: clear what a crashed service left behind.
    if (process.platform !== 'win32') await unlink(paths.socket).catch(() => {});
    await unlink(paths.pid).catch(() => {});
    return false;
  }
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    try {
      process.kill(pid, signal);
    } catch {
      // gone meanwhile
    }
    if (await waitGone(pid, home, signal === 'SIGTERM' ? Math.min(timeoutMs, 5000) : 2000)) {
      if (process.platform !== 'win32') await unlink(paths.socket).catch(() => {});
      await unlink(paths.pid).catch(() => {});
      return true;
    }
  }
  throw new Error(`the scanner service (pid ${pid}) does not stop`);
}
