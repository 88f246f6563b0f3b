/**
 * The built-in `script` task type: run a command or a script body and turn what happened
 * into a run outcome.
 *
 * Why it is built this way:
 * - The promise always resolves with an outcome (never rejects for a run failure): a bad
 *   setting, a missing user or folder, a command that cannot start are all results an
 *   administrator must see in the console as `failed` with a reason.
 * - The command line is built by a pure function, buildInvocation(), so the Windows forms
 *   (powershell -File, cmd /d /s /c) are unit-tested on any machine.
 * - A script body (and a command for powershell and cmd, whose "-Command" and "/c" parsing
 *   cannot take arguments safely) is written to a temp file (0700, in ctx.tempDir,
 *   removed afterwards) and run by path, so no quoting of the body is ever needed. A sh or
 *   bash command runs as `sh -c command sh args…`, so args arrive as $1… unquoted.
 * - On Unix the child is spawned detached, i.e. leader of its own process group; timeout
 *   and cancel signal the whole group (SIGTERM, then SIGKILL 5 s later if anything is
 *   left), so a script's children and grandchildren die with it. On Windows the tree is
 *   killed with `taskkill /T /F`.
 * - The started process is handed to ctx.onProcessStarted in the tick of the spawn, which
 *   records it durably (process-ledger.ts): after a kill -9 of the agent, the next start ends
 *   the group before it resumes the run. If the record cannot be written, the process is
 *   killed at once and the run fails.
 * - stdout and stderr go into one bounded OutputTail, in arrival order, so memory does not
 *   grow with the output. Progress lines (`garrison:progress=NN`) are found by a per-stream
 *   line scanner that keeps at most a short partial line.
 * - The outcome waits for the output pipes to close, but not forever: a background process
 *   that inherited the pipes (a daemon started by the script) could hold them for days,
 *   so OUTPUT_DRAIN_MS after the child exits we stop reading.
 * - runAs resolves the user from the passwd database (getent, then /etc/passwd, then id)
 *   and hands uid/gid to spawn, which drops supplementary groups; only a root agent can
 *   switch users, so that is checked up front for a clear reason.
 */
import { spawn, execFile, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { PROGRESS_LINE_PATTERN, type ResolvedScriptSettings } from '@garrison/protocol';
import { PROCESS_TAG_ENV } from '@garrison/protocol/process-identity';
import { OutputTail } from '../output-tail.ts';

export interface ScriptContext {
  signal: AbortSignal;
  timeoutMs?: number;
  onProgress?(percent: number): void;
  tempDir: string;
  platform?: NodeJS.Platform;
  /**
   * Called in the tick of the spawn with the started process, so that the agent records it
   * durably (process-ledger.ts): a killed agent's next start ends what its run left running.
   * If it throws, the process is killed at once and the run fails: a process nobody could end
   * after a crash must not run.
   */
  onProcessStarted?(p: { pid: number; group: boolean; command: string; envTag: string }): void;
  /** The run this is an attempt of: given to the process as GARRISON_RUN_ID, GARRISON_RUN_ATTEMPT and GARRISON_TASK_ID. */
  run?: { runId: string; attempt: number; taskId: string };
}

export interface ScriptOutcome {
  state: 'succeeded' | 'succeeded_with_warnings' | 'failed' | 'timed_out' | 'cancelled';
  exitCode: number | null;
  reason: string | null;
  outputTail: string;
}

export type ScriptShell = NonNullable<ResolvedScriptSettings['shell']>;

/** How to start the process: passed as spawn(file, args, { windowsVerbatimArguments }). */
export interface Invocation {
  file: string;
  args: string[];
  windowsVerbatimArguments?: boolean;
}

export interface InvocationOptions {
  /** For shell "powershell" on Windows: use pwsh (PowerShell 7) instead of Windows PowerShell. */
  pwsh?: boolean;
}

/** After a timeout or cancel, how long the process group gets between SIGTERM and SIGKILL. */
export const KILL_GRACE_MS = 5000;
/** After the child exits, how long we keep reading pipes still held by its descendants. */
export const OUTPUT_DRAIN_MS = 2000;
/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Progress lines are short; a longer partial line is not one. */
const MAX_PROGRESS_LINE = 64;

export function defaultShell(platform: NodeJS.Platform): ScriptShell {
  return platform === 'win32' ? 'powershell' : 'sh';
}

export function effectiveShell(settings: ResolvedScriptSettings, platform: NodeJS.Platform): ScriptShell {
  return settings.shell ?? defaultShell(platform);
}

/** True when the settings run from a temp file: a script body, or a command under powershell or cmd. */
export function needsScriptFile(settings: ResolvedScriptSettings, platform: NodeJS.Platform): boolean {
  const shell = effectiveShell(settings, platform);
  if (shell === 'none') return false;
  return settings.script !== undefined || shell === 'powershell' || shell === 'cmd';
}

export function scriptFileExtension(shell: ScriptShell): string {
  return shell === 'powershell' ? '.ps1' : shell === 'cmd' ? '.cmd' : '.sh';
}

/** The temp file's content: CRLF for cmd (batch label jumps misbehave with LF), a BOM so Windows PowerShell reads UTF-8. */
export function scriptFileContent(body: string, shell: ScriptShell): string {
  if (shell === 'cmd') return body.replace(/\r?\n/g, '\r\n');
  if (shell === 'powershell') return '\uFEFF' + body;
  return body;
}

/** Quotes one argument for a cmd.exe command line (used with /s /c and verbatim arguments). */
export function quoteForCmd(arg: string): string {
  if (arg === '') return '""';
  if (!/[\s"&|<>^%(),;=!]/.test(arg)) return arg;
  return `"${arg.replace(/"/g, '""')}"`;
}

/**
 * The program and arguments for `settings` on `platform`. `scriptPath` is the temp file
 * holding the script body (or the command, for powershell and cmd); it is required exactly
 * when needsScriptFile() is true. Throws on settings that cannot run (no command, both…).
 */
export function buildInvocation(
  settings: ResolvedScriptSettings,
  platform: NodeJS.Platform,
  scriptPath?: string,
  options: InvocationOptions = {},
): Invocation {
  const problem = settingsProblem(settings, platform);
  if (problem) throw new Error(problem);
  const shell = effectiveShell(settings, platform);
  const args = settings.args ?? [];
  if (shell === 'none') return { file: settings.command!, args: [...args] };
  if (needsScriptFile(settings, platform) && !scriptPath) throw new Error(`a script file is needed for shell ${shell}`);
  switch (shell) {
    case 'sh':
    case 'bash':
      if (settings.script !== undefined) return { file: shell, args: [scriptPath!, ...args] };
      // $0 is the shell's name, the args are $1…
      return { file: shell, args: ['-c', settings.command!, shell, ...args] };
    case 'powershell': {
      const file = platform === 'win32' && !options.pwsh ? 'powershell' : 'pwsh';
      return { file, args: ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', scriptPath!, ...args] };
    }
    case 'cmd': {
      // /s: strip exactly the outer quotes, so the inner command line is taken as is.
      const line = [scriptPath!, ...args].map(quoteForCmd).join(' ');
      return { file: 'cmd', args: ['/d', '/s', '/c', `"${line}"`], windowsVerbatimArguments: true };
    }
  }
}

/** Why the settings cannot run, or null. */
export function settingsProblem(settings: ResolvedScriptSettings, platform: NodeJS.Platform): string | null {
  const hasCommand = typeof settings.command === 'string' && settings.command.length > 0;
  const hasScript = typeof settings.script === 'string' && settings.script.length > 0;
  if (hasCommand && hasScript) return 'settings give both command and script: exactly one is required';
  if (!hasCommand && !hasScript) return 'settings give neither command nor script: exactly one is required';
  const shell = effectiveShell(settings, platform);
  if (shell === 'none' && hasScript) return 'shell "none" runs a command, not a script body';
  return null;
}

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** Parses one /etc/passwd line (name:pw:uid:gid:gecos:home:shell). */
export function parsePasswdLine(line: string): PasswdEntry | undefined {
  const f = line.trim().split(':');
  if (f.length < 7) return undefined;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || f[2] === '' || f[3] === '') return undefined;
  return { name: f[0], uid, gid, home: f[5], shell: f[6] };
}

const USER_NAME = /^[A-Za-z0-9_.][A-Za-z0-9_.@-]*\$?$/;

/** Looks a user up by name (or numeric uid); undefined when there is no such user. */
export async function lookupUser(name: string): Promise<PasswdEntry | undefined> {
  if (!USER_NAME.test(name)) return undefined;
  const matches = (e: PasswdEntry | undefined): e is PasswdEntry => !!e && (e.name === name || String(e.uid) === name);
  // getent sees NSS sources (LDAP, sssd…); exit code 2 means "not found".
  const getent = await execText('getent', ['passwd', name]);
  if (getent.ok) {
    const entry = getent.stdout.split('\n').map(parsePasswdLine).find(matches);
    if (entry) return entry;
  } else if (getent.code === 2) {
    return undefined;
  }
  try {
    const text = await readFile('/etc/passwd', 'utf8');
    const entry = text.split('\n').map(parsePasswdLine).find(matches);
    if (entry) return entry;
  } catch {
    // no /etc/passwd: fall through
  }
  // macOS keeps users in Directory Services: ask id.
  const uid = await execText('id', ['-u', name]);
  const gid = await execText('id', ['-g', name]);
  if (uid.ok && gid.ok) {
    const u = Number(uid.stdout.trim());
    const g = Number(gid.stdout.trim());
    if (Number.isInteger(u) && Number.isInteger(g)) return { name, uid: u, gid: g, home: '', shell: '' };
  }
  return undefined;
}

function execText(file: string, args: string[]): Promise<{ ok: boolean; code: number | string | null; stdout: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 10_000, encoding: 'utf8' }, (err, stdout) => {
      if (!err) resolve({ ok: true, code: 0, stdout });
      else resolve({ ok: false, code: (err as NodeJS.ErrnoException & { code?: number | string }).code ?? null, stdout: stdout ?? '' });
    });
  });
}

async function commandOnPath(name: string): Promise<boolean> {
  const exts = process.platform === 'win32' ? (process.env.PATHEXT ?? '.EXE').split(';') : [''];
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      try {
        if ((await stat(join(dir, name + ext))).isFile()) return true;
      } catch {
        // not here
      }
    }
  }
  return false;
}

/** Finds complete lines of one stream and reports progress lines. */
class ProgressScanner {
  #carry: Buffer[] = [];
  #carryLength = 0;
  #overflow = false;
  #onLine: (line: string) => void;

  constructor(onLine: (line: string) => void) {
    this.#onLine = onLine;
  }

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) {
        this.#append(chunk.subarray(start));
        return;
      }
      this.#append(chunk.subarray(start, nl));
      this.end();
      start = nl + 1;
    }
  }

  end(): void {
    if (!this.#overflow && this.#carryLength > 0) this.#onLine(Buffer.concat(this.#carry).toString('latin1'));
    this.#carry = [];
    this.#carryLength = 0;
    this.#overflow = false;
  }

  #append(part: Buffer): void {
    if (this.#overflow || part.length === 0) return;
    if (this.#carryLength + part.length > MAX_PROGRESS_LINE) {
      this.#overflow = true;
      this.#carry = [];
      this.#carryLength = 0;
      return;
    }
    this.#carry.push(Buffer.from(part));
    this.#carryLength += part.length;
  }
}

function formatDuration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

function failed(reason: string, outputTail = ''): ScriptOutcome {
  return { state: 'failed', exitCode: null, reason, outputTail };
}

export async function runScript(settings: ResolvedScriptSettings, ctx: ScriptContext): Promise<ScriptOutcome> {
  const cancelled: ScriptOutcome = { state: 'cancelled', exitCode: null, reason: 'cancelled', outputTail: '' };
  if (ctx.signal.aborted) return cancelled;
  const platform = ctx.platform ?? process.platform;
  const problem = settingsProblem(settings, platform);
  if (problem) return failed(problem);
  const shell = effectiveShell(settings, platform);

  if (settings.workingDirectory !== undefined) {
    try {
      if (!(await stat(settings.workingDirectory)).isDirectory()) return failed(`working directory "${settings.workingDirectory}" is not a directory`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return failed(code === 'ENOENT' ? `working directory "${settings.workingDirectory}" does not exist` : `working directory "${settings.workingDirectory}": ${(err as Error).message}`);
    }
  }

  const env: NodeJS.ProcessEnv = { ...process.env };
  let user: PasswdEntry | undefined;
  if (settings.runAs !== undefined) {
    if (platform === 'win32' || process.platform === 'win32') return failed('run-as is not supported on Windows');
    try {
      user = await lookupUser(settings.runAs);
    } catch (err) {
      return failed(`cannot look up user "${settings.runAs}": ${(err as Error).message}`);
    }
    if (!user) return failed(`unknown user "${settings.runAs}"`);
    const currentUid = process.getuid?.();
    if (currentUid === user.uid) {
      user = undefined; // already that user: nothing to switch
    } else if (currentUid !== 0) {
      return failed('run-as needs an agent running as root');
    } else {
      if (user.home) env.HOME = user.home;
      env.USER = user.name;
      env.LOGNAME = user.name;
      if (user.shell) env.SHELL = user.shell;
    }
  }
  Object.assign(env, settings.env ?? {});
  // After the task's own variables, which cannot replace it: a value of this spawn's own, which
  // the process's children inherit, so that after a crash of the agent a group whose leader is
  // gone can be shown to be this attempt's (leftover-processes.ts).
  env[PROCESS_TAG_ENV] = randomBytes(16).toString('hex');
  if (ctx.run) {
    // Which run and attempt this is, so that a script can make its side effects idempotent.
    env.GARRISON_RUN_ID = ctx.run.runId;
    env.GARRISON_RUN_ATTEMPT = String(ctx.run.attempt);
    env.GARRISON_TASK_ID = ctx.run.taskId;
  }

  let scriptPath: string | undefined;
  try {
    if (needsScriptFile(settings, platform)) {
      const body = settings.script ?? settings.command!;
      try {
        await mkdir(ctx.tempDir, { recursive: true });
        scriptPath = join(ctx.tempDir, `garrison-script-${randomBytes(8).toString('hex')}${scriptFileExtension(shell)}`);
        await writeFile(scriptPath, scriptFileContent(body, shell), { mode: 0o700, flag: 'wx' });
        if (user) await chown(scriptPath, user.uid, user.gid);
      } catch (err) {
        return failed(`cannot write the script file: ${(err as Error).message}`);
      }
    }
    const pwsh = shell === 'powershell' && platform === 'win32' && process.platform === 'win32' ? await commandOnPath('pwsh') : false;
    const invocation = buildInvocation(settings, platform, scriptPath, { pwsh });
    if (ctx.signal.aborted) return cancelled;
    return await execute(invocation, settings, ctx, env, user);
  } finally {
    if (scriptPath) await unlink(scriptPath).catch(() => {});
  }
}

function execute(
  invocation: Invocation,
  settings: ResolvedScriptSettings,
  ctx: ScriptContext,
  env: NodeJS.ProcessEnv,
  user: PasswdEntry | undefined,
): Promise<ScriptOutcome> {
  const windows = process.platform === 'win32';
  const tail = new OutputTail();
  let lastPercent = -1;
  const onLine = (line: string): void => {
    const m = PROGRESS_LINE_PATTERN.exec(line.replace(/\r$/, ''));
    if (!m) return;
    const percent = Number(m[1]);
    if (percent > 100 || percent === lastPercent) return;
    lastPercent = percent;
    try {
      ctx.onProgress?.(percent);
    } catch {
      // a broken progress listener must not break the run
    }
  };
  const scanners = [new ProgressScanner(onLine), new ProgressScanner(onLine)];

  const limits = [settings.timeoutSeconds !== undefined ? settings.timeoutSeconds * 1000 : undefined, ctx.timeoutMs].filter(
    (v): v is number => typeof v === 'number' && Number.isFinite(v),
  );
  const timeoutMs = limits.length > 0 ? Math.min(MAX_TIMER_MS, Math.max(1, Math.min(...limits))) : undefined;

  return new Promise<ScriptOutcome>((resolve) => {
    let child: ChildProcess;
    let settled = false;
    let killReason: 'timeout' | 'cancel' | null = null;
    let unrecorded: string | null = null;
    let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
    let timeoutTimer: NodeJS.Timeout | undefined;
    let drainTimer: NodeJS.Timeout | undefined;
    let escalateTimer: NodeJS.Timeout | undefined;
    let groupPoll: NodeJS.Timeout | undefined;

    const options: SpawnOptions = {
      cwd: settings.workingDirectory,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: !windows,
      windowsHide: true,
      windowsVerbatimArguments: invocation.windowsVerbatimArguments,
    };
    if (user) {
      options.uid = user.uid;
      options.gid = user.gid;
    }

    const finish = (outcome: Omit<ScriptOutcome, 'outputTail'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timeoutTimer);
      clearTimeout(drainTimer);
      ctx.signal.removeEventListener('abort', onAbort);
      scanners.forEach((s) => s.end());
      child?.stdout?.destroy();
      child?.stderr?.destroy();
      resolve({ ...outcome, outputTail: tail.text() });
    };

    const groupAlive = (pid: number): boolean => {
      try {
        process.kill(-pid, 0);
        return true;
      } catch {
        return false;
      }
    };

    const killTree = (signal: NodeJS.Signals): void => {
      const pid = child.pid;
      if (pid === undefined) return;
      if (windows) {
        const k = spawn('taskkill', ['/pid', String(pid), '/T', '/F'], { stdio: 'ignore', windowsHide: true });
        k.on('error', () => child.kill(signal));
        return;
      }
      try {
        process.kill(-pid, signal);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') child.kill(signal);
      }
    };

    const stopEscalation = (): void => {
      clearTimeout(escalateTimer);
      clearInterval(groupPoll);
      escalateTimer = groupPoll = undefined;
    };

    const terminate = (reason: 'timeout' | 'cancel'): void => {
      if (killReason || exited || settled) return;
      killReason = reason;
      killTree('SIGTERM');
      if (windows) return; // taskkill /F is already final
      escalateTimer = setTimeout(() => {
        killTree('SIGKILL');
        stopEscalation();
      }, KILL_GRACE_MS);
    };

    function onAbort(): void {
      terminate('cancel');
    }

    const outcomeOf = (code: number | null, signal: NodeJS.Signals | null): Omit<ScriptOutcome, 'outputTail'> => {
      if (unrecorded) return { state: 'failed', exitCode: code, reason: `the started process could not be recorded, so it was killed: ${unrecorded}` };
      if (killReason === 'timeout') return { state: 'timed_out', exitCode: code, reason: `timed out after ${formatDuration(timeoutMs!)}` };
      if (killReason === 'cancel') return { state: 'cancelled', exitCode: code, reason: 'cancelled' };
      if (code === null) return { state: 'failed', exitCode: null, reason: `killed by signal ${signal ?? 'unknown'}` };
      const success = settings.successExitCodes ?? [0];
      const warning = settings.warningExitCodes ?? [];
      if (warning.includes(code)) return { state: 'succeeded_with_warnings', exitCode: code, reason: `exit code ${code}` };
      if (success.includes(code)) return { state: 'succeeded', exitCode: code, reason: null };
      return { state: 'failed', exitCode: code, reason: `exit code ${code}` };
    };

    try {
      child = spawn(invocation.file, invocation.args, options);
    } catch (err) {
      finish({ state: 'failed', exitCode: null, reason: `cannot start "${invocation.file}": ${(err as Error).message}` });
      return;
    }
    if (child.pid !== undefined && ctx.onProcessStarted) {
      try {
        ctx.onProcessStarted({ pid: child.pid, group: !windows, command: invocation.file, envTag: env[PROCESS_TAG_ENV]! });
      } catch (err) {
        unrecorded = (err as Error).message;
        killTree('SIGKILL');
      }
    }

    child.stdout!.on('data', (chunk: Buffer) => {
      tail.push(chunk);
      scanners[0].push(chunk);
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      tail.push(chunk);
      scanners[1].push(chunk);
    });
    // Reading errors after we destroyed the pipes are expected; never let them throw.
    child.stdout!.on('error', () => {});
    child.stderr!.on('error', () => {});

    child.on('error', (err) => {
      // With no pid, spawn failed (ENOENT, EACCES, EPERM…) and nothing runs. Other errors
      // (a failed kill) leave the child running: its exit decides the outcome.
      if (child.pid === undefined) finish({ state: 'failed', exitCode: null, reason: `cannot start "${invocation.file}": ${err.message}` });
    });

    child.on('exit', (code, signal) => {
      exited = { code, signal };
      clearTimeout(timeoutTimer);
      const pid = child.pid;
      if (escalateTimer && pid !== undefined) {
        // Killed by us: stop the escalation as soon as the whole group is gone.
        groupPoll = setInterval(() => {
          if (!groupAlive(pid)) stopEscalation();
        }, 100);
        if (!groupAlive(pid)) stopEscalation();
      }
      drainTimer = setTimeout(() => finish(outcomeOf(code, signal)), OUTPUT_DRAIN_MS);
    });

    child.on('close', (code, signal) => {
      const c = exited ? exited.code : code;
      const s = exited ? exited.signal : signal;
      finish(outcomeOf(c, s));
    });

    if (timeoutMs !== undefined) timeoutTimer = setTimeout(() => terminate('timeout'), timeoutMs);
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    if (ctx.signal.aborted) onAbort();
  });
}
