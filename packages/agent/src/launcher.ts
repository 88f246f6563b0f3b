/**
 * The agent launcher: the small, version-independent process the service manager runs. It
 * starts the current agent runtime (`<state>/runtime/<version>/agent.mjs`), restarts it with
 * back-off when it dies, and carries out self-updates: when the agent exits with code 75
 * after staging a new runtime (`update.json`), the launcher switches to it and waits for the
 * new agent to confirm a successful check-in (`update-confirmed.json`); if it dies or stays
 * silent past the deadline, the launcher goes back to the previous runtime and records why
 * (`update-failed.json`), which the old agent reports. The state folder (credential, spool,
 * tasks) is shared by every runtime, so no result is lost across an update.
 *
 *   node launcher-main.ts --state DIR [--bootstrap agent.mjs --bootstrap-version V] [-- agent args]
 *
 * A single-executable agent (sea-entry.ts) is its own launcher and carries an agent runtime
 * built in (`embedded`): it is the bootstrap runtime of an empty state folder and the runtime
 * of its version (so also the one a failed update rolls back to), run as
 * `process.execPath ...embedded.args --state DIR [agent args]`; downloaded runtimes run as
 * `process.execPath <state>/runtime/<version>/agent.mjs ...`, which the executable runs as
 * node would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readJson, writeJsonAtomic } from './state-file.ts';
import { STATE_FOLDER_IN_USE_EXIT_CODE } from './state-folder-lock.ts';

export const UPDATE_EXIT_CODE = 75;
/** The agent removed itself from this machine: the launcher stops too, without restarting it. */
export const UNINSTALLED_EXIT_CODE = 76;
export const RUNTIME_DIR = 'runtime';
const CONFIRM_DEADLINE_MS = Number(process.env.GARRISON_UPDATE_CONFIRM_MS ?? 90_000);

export interface CurrentRuntime {
  version: string;
  previous: string | null;
}
export interface UpdateRequest {
  from: string;
  to: string;
}
export interface PendingUpdate extends UpdateRequest {
  deadline: number;
}

export function runtimeFile(stateDir: string, version: string): string {
  return path.join(stateDir, RUNTIME_DIR, version, 'agent.mjs');
}

export async function installRuntime(stateDir: string, version: string, bundle: string): Promise<void> {
  await mkdir(path.dirname(runtimeFile(stateDir, version)), { recursive: true, mode: 0o700 });
  await copyFile(bundle, runtimeFile(stateDir, version));
}

/** An agent runtime built into the launcher's own executable (see sea-entry.ts). */
export interface EmbeddedRuntime {
  version: string;
  /** What to give process.execPath to run it, before `--state DIR` and the agent arguments. */
  args: string[];
}

export interface LauncherOptions {
  embedded?: EmbeddedRuntime;
}

/** The arguments to process.execPath that start a runtime version (before `--state DIR`). */
export function runtimeArgs(stateDir: string, version: string, embedded?: EmbeddedRuntime): string[] {
  return embedded && version === embedded.version ? [...embedded.args] : [runtimeFile(stateDir, version)];
}

export async function runLauncher(argv: string[], opts: LauncherOptions = {}): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { state: { type: 'string' }, bootstrap: { type: 'string' }, 'bootstrap-version': { type: 'string' } },
  });
  const stateDir = path.resolve(values.state ?? process.env.GARRISON_AGENT_STATE ?? './agent-state');
  const currentFile = path.join(stateDir, RUNTIME_DIR, 'current.json');
  const log = (msg: string) => process.stderr.write(`${new Date().toISOString()} launcher: ${msg}\n`);
  let current = await readJson<CurrentRuntime>(currentFile);
  if (!current && opts.embedded && !values.bootstrap) {
    log(`no agent runtime in ${stateDir} yet: starting the built-in agent ${opts.embedded.version}`);
    current = { version: opts.embedded.version, previous: null };
    await mkdir(path.dirname(currentFile), { recursive: true, mode: 0o700 });
    await writeJsonAtomic(currentFile, current);
  }
  if (!current) {
    if (!values.bootstrap || !values['bootstrap-version']) {
      log(`no agent runtime in ${stateDir}; give --bootstrap agent.mjs --bootstrap-version V`);
      return 2;
    }
    await installRuntime(stateDir, values['bootstrap-version'], values.bootstrap);
    current = { version: values['bootstrap-version'], previous: null };
    await writeJsonAtomic(currentFile, current);
  }

  let child: ChildProcess | null = null;
  let stopping = false;
  const stop = () => {
    stopping = true;
    child?.kill('SIGTERM');
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  let backoff = 1000;
  for (;;) {
    const pending = await readJson<PendingUpdate>(path.join(stateDir, 'update-pending.json'));
    const startedAt = Date.now();
    child = spawn(process.execPath, [...runtimeArgs(stateDir, current.version, opts.embedded), '--state', stateDir, ...positionals], {
      stdio: 'inherit',
      env: { ...process.env, GARRISON_LAUNCHER: '1' },
    });
    let deadline: NodeJS.Timeout | null = null;
    const confirmed = new Promise<boolean>((resolve) => {
      if (!pending || pending.to !== current!.version) return resolve(true);
      const check = setInterval(async () => {
        const c = await readJson<{ version: string }>(path.join(stateDir, 'update-confirmed.json')).catch(() => undefined);
        if (c?.version === pending.to) {
          clearInterval(check);
          if (deadline) clearTimeout(deadline);
          resolve(true);
        }
      }, 250);
      deadline = setTimeout(() => {
        clearInterval(check);
        resolve(false);
      }, Math.max(1000, pending.deadline - Date.now()));
      child!.once('exit', () => {
        clearInterval(check);
        if (deadline) clearTimeout(deadline);
        resolve(false);
      });
    });
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    const ok = await Promise.race([confirmed, exited.then(() => null)]);
    if (pending && pending.to === current.version) {
      if (ok === true) {
        await rm(path.join(stateDir, 'update-pending.json'), { force: true });
        log(`agent ${current.version} confirmed`);
      } else {
        // The new agent died or stayed silent: back to the one that worked.
        child.kill('SIGKILL');
        await exited;
        const reason = ok === false ? `agent ${pending.to} did not confirm a check-in in time` : `agent ${pending.to} exited before confirming a check-in`;
        log(`${reason}; rolling back to ${pending.from}`);
        await writeJsonAtomic(path.join(stateDir, 'update-failed.json'), { version: pending.to, reason, at: new Date().toISOString() });
        await rm(path.join(stateDir, 'update-pending.json'), { force: true });
        current = { version: pending.from, previous: null };
        await writeJsonAtomic(currentFile, current);
        continue;
      }
    }
    const code = await exited;
    if (stopping) return 0;
    if (code === UNINSTALLED_EXIT_CODE) {
      log('the agent was uninstalled; stopping');
      return 0;
    }
    if (code === STATE_FOLDER_IN_USE_EXIT_CODE) {
      // Another agent (another launcher) runs on this state folder. Restarting at once would
      // only be refused again, but giving up for good would leave this machine without an
      // agent when the holder could merely not be proven gone (a start time unreadable at
      // boot, a renamed host): try again once a minute, quietly.
      log(`another agent runs on ${stateDir} (see the message above); trying again in 60 s`);
      await new Promise((r) => setTimeout(r, 60_000));
      if (stopping) return 0;
      continue;
    }
    if (code === UPDATE_EXIT_CODE) {
      const req = await readJson<UpdateRequest>(path.join(stateDir, 'update.json')).catch(() => undefined);
      if (req && req.from === current.version) {
        log(`updating the agent from ${req.from} to ${req.to}`);
        await writeJsonAtomic(path.join(stateDir, 'update-pending.json'), { ...req, deadline: Date.now() + CONFIRM_DEADLINE_MS } satisfies PendingUpdate);
        await rm(path.join(stateDir, 'update.json'), { force: true });
        await rm(path.join(stateDir, 'update-confirmed.json'), { force: true });
        current = { version: req.to, previous: req.from };
        await writeJsonAtomic(currentFile, current);
        backoff = 1000;
        continue;
      }
    }
    const ran = Date.now() - startedAt;
    backoff = ran > 60_000 ? 1000 : Math.min(backoff * 2, 60_000);
    log(`agent exited (${code}); restarting in ${Math.round(backoff / 1000)} s`);
    await new Promise((r) => setTimeout(r, backoff));
    if (stopping) return 0;
  }
}

