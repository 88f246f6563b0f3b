/**
 * `garrison agent`: run the agent, or, with a subcommand, talk to the running agent of this
 * device through its local socket (status, local tasks, local events).
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { open, readdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pinnedFetch, TrustError } from '@garrison/protocol/tls';
import { failoverFetch, parseServerUrls, storedServerUrls, withServerUrls } from './server-urls.ts';
import { Agent, EnrolmentError, confirmUninstall, enrol, markEnrolmentPending, removeAgent, resolveServerCa, type InstallInfo } from './agent.ts';
import { DEVICE_KEY_FILE } from './device-key.ts';
import { readJson, writeJsonAtomic } from './state-file.ts';
import { AgentPluginRegistry } from './plugins.ts';
import { findLocalSocket } from './local-api.ts';
import { FolderInUseError } from '@garrison/protocol/folder-lock';
import { STATE_FOLDER_IN_USE_EXIT_CODE } from './state-folder-lock.ts';
import { LOCAL_TASK_OPTIONS, LOCAL_TASK_USAGE, UsageError, localTaskFields } from './local-task-options.ts';

const USAGE = `usage:
  garrison agent --server https://HOST:PORT TOKEN-SOURCE (--ca-fingerprint SHA256 | --ca FILE) [--state DIR] [--name NAME]
                                                                          enrol (once) and run
  garrison agent [--state DIR] [--server URL ...]                         run an enrolled agent
  garrison agent enrol --server URL TOKEN-SOURCE (--ca-fingerprint FP | --ca FILE) [--name NAME] [--replace]
                                                                          enrol only (installers)
--server URL may be repeated or hold a comma-separated list: the addresses of the server's
  instances, in order, all pinned to the same CA. The agent uses the first that answers, moves
  to the next when its connection fails or drops, and stays on the one that works. Given to an
  enrolled agent, the list replaces the stored one (credential.json); without it the stored
  list is used.
  garrison agent uninstall [--state DIR] [--offline]                      remove the agent from this machine
  garrison agent status [--state DIR]
  garrison agent task list [--state DIR] [--json]
  garrison agent task create --name N --schedule SPEC (--command CMD | --script-file FILE | --settings JSON|@file)
                             [--type script] [--product P] [--disabled] [task options]
  garrison agent task set ID [--name N] [--schedule SPEC] [--command CMD] [--settings JSON] [--enable|--disable] [task options]
  garrison agent task delete ID
  garrison agent task run ID
  garrison agent events [--limit N] [--json]
  garrison agent policy [show]                 the agent's own settings in force, and which are locked
  garrison agent policy enforce                apply every product's policy now (locked settings put back)
  garrison agent policy set KEY=VALUE ...      change unlocked settings (VALUE is JSON, else a string),
                                               e.g. checkInRandomizationMinutes=10 localTasksAllowed=false
TOKEN-SOURCE, where the enrolment token comes from (never the command line, which every user of
the machine can read):
  --token-file PATH   the file's content (trimmed); the file must not be readable or writable by
                      group or others (chmod 600), else it is refused
  --token-stdin       one line read from standard input (pipe it in, or paste it when asked)
  (neither)           the environment variable GARRISON_ENROL_TOKEN
  The token is read only while the agent is not enrolled yet; GARRISON_ENROL_TOKEN is removed
  from the environment at start, so programs the agent runs do not inherit it.
${LOCAL_TASK_USAGE}
State folder: --state, else GARRISON_AGENT_STATE, else ./agent-state.`;

function localRequest(stateDir: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const socketPath = findLocalSocket(stateDir);
    const req = http.request({ socketPath, method, path, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : null });
      });
    });
    req.on('error', (err) => reject(new Error(`the agent is not running in ${stateDir} (${(err as NodeJS.ErrnoException).code ?? err.message} on ${socketPath})`)));
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

/** The environment variable an installer (or a service manager) may pass the enrolment token in. */
export const ENROL_TOKEN_ENV = 'GARRISON_ENROL_TOKEN';
/** Far more than any enrolment token; a bigger file or line is not one. */
const MAX_TOKEN_BYTES = 4096;

/** A wrong way of giving the enrolment token: exit code 2, like the other usage errors. */
class TokenUsageError extends Error {}

/** Checks what was read as an enrolment token. The messages never contain the value. */
function tokenValue(text: string, from: string): string {
  const token = text.trim();
  if (!token) throw new TokenUsageError(`${from} holds no enrolment token`);
  if (/\s/.test(token)) throw new TokenUsageError(`${from} holds more than one word: it must hold the enrolment token only`);
  return token;
}

/**
 * `--token-file PATH`: the file's content, trimmed. On POSIX systems a file that its group or
 * other users may read or write is refused (as OpenSSH refuses such private keys): a token
 * that others could read is already leaked, and one they could write would let them choose
 * the group this machine enrols into. The mode is checked on the opened file, so the file
 * cannot be swapped between the check and the read. Windows has no such mode bits: there the
 * file's ACL is the administrator's business.
 */
async function readTokenFile(file: string): Promise<string> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw new TokenUsageError(`cannot read the token file ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    const st = await handle.stat();
    if (st.isDirectory()) throw new TokenUsageError(`the token file ${file} is a folder`);
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
      throw new TokenUsageError(`the token file ${file} may be read or written by other users (mode ${(st.mode & 0o777).toString(8).padStart(3, '0')}): restrict it to its owner (chmod 600 ${file}) and try again`);
    }
    const buf = Buffer.alloc(MAX_TOKEN_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, length, buf.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_TOKEN_BYTES) throw new TokenUsageError(`the token file ${file} is too big to hold an enrolment token`);
    }
    return tokenValue(buf.subarray(0, length).toString('utf8'), `the token file ${file}`);
  } finally {
    await handle.close();
  }
}

/**
 * `--token-stdin`: one line from standard input (up to its newline, or to its end). Standard
 * input is closed afterwards: nothing else of the agent reads it, and what a pipe sends after
 * the line is not for the agent.
 */
async function readTokenLine(stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  if (stdin.isTTY) process.stderr.write('enrolment token: ');
  const text = await new Promise<string>((resolve, reject) => {
    let got = '';
    const finish = (err: Error | null) => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', onError);
      stdin.pause();
      stdin.destroy();
      if (err) reject(err);
      else resolve(got);
    };
    const onData = (chunk: Buffer | string) => {
      got += chunk.toString();
      const nl = got.indexOf('\n');
      if (nl >= 0) {
        got = got.slice(0, nl);
        finish(null);
      } else if (got.length > MAX_TOKEN_BYTES) finish(new TokenUsageError('the line on standard input is too long to be an enrolment token'));
    };
    const onEnd = () => finish(null);
    const onError = (err: Error) => finish(new TokenUsageError(`cannot read standard input (${err.message})`));
    stdin.on('data', onData);
    stdin.once('end', onEnd);
    stdin.once('error', onError);
  });
  return tokenValue(text, 'standard input (--token-stdin)');
}

/** The enrolment token from --token-file, --token-stdin or the environment (in that order); undefined when none is given. */
async function enrolmentToken(values: { 'token-file'?: string | undefined; 'token-stdin'?: boolean | undefined }, fromEnv: string | undefined): Promise<string | undefined> {
  if (values['token-file'] !== undefined && values['token-stdin']) throw new TokenUsageError('give the enrolment token one way: --token-file or --token-stdin, not both');
  if (values['token-file'] !== undefined) return readTokenFile(values['token-file']);
  if (values['token-stdin']) return readTokenLine();
  return fromEnv === undefined || fromEnv === '' ? undefined : tokenValue(fromEnv, ENROL_TOKEN_ENV);
}

const TOKEN_SOURCES = '--token-file PATH (a file only its owner can read), --token-stdin (one line on standard input) or the environment variable GARRISON_ENROL_TOKEN';

export async function agentMain(argv: string[]): Promise<number> {
  // Read once, then removed from this process's environment: the tasks, product commands and
  // runtimes the agent starts must not inherit the token. (Linux keeps the environment the
  // process was started with in /proc/PID/environ, readable by the same user and root only;
  // --token-file and --token-stdin leave no trace there.)
  const envToken = process.env[ENROL_TOKEN_ENV];
  delete process.env[ENROL_TOKEN_ENV];
  // Before parsing, so that `--token` without a value gets this message too. The value is not
  // repeated: this message may end up in logs.
  const end = argv.indexOf('--');
  if ((end < 0 ? argv : argv.slice(0, end)).some((a) => a === '--token' || a.startsWith('--token='))) {
    console.error(`garrison agent: --token is not accepted: a token on the command line can be read by every user of this machine. Give the enrolment token with ${TOKEN_SOURCES}.`);
    return 2;
  }
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      server: { type: 'string', multiple: true },
      'token-file': { type: 'string' },
      'token-stdin': { type: 'boolean' },
      ca: { type: 'string' },
      'ca-fingerprint': { type: 'string' },
      replace: { type: 'boolean' },
      offline: { type: 'boolean' },
      state: { type: 'string' },
      name: { type: 'string' },
      ...LOCAL_TASK_OPTIONS,
      settings: { type: 'string' },
      type: { type: 'string' },
      product: { type: 'string' },
      enable: { type: 'boolean' },
      disable: { type: 'boolean' },
      disabled: { type: 'boolean' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const token = async (): Promise<string | undefined> => enrolmentToken(values, envToken);
  const stateDir = values.state ?? process.env.GARRISON_AGENT_STATE ?? './agent-state';
  const [cmd, sub, id] = positionals;
  const show = (r: { status: number; json: unknown }, table?: (j: never) => string) => {
    if (r.status >= 400) {
      const e = (r.json as { error?: { code: string; message: string } }).error;
      console.error(`error ${e?.code}: ${e?.message}`);
      return 1;
    }
    console.log(values.json || !table ? JSON.stringify(r.json, null, 2) : table(r.json as never));
    return 0;
  };
  const ca = { ...(values.ca ? { caFile: values.ca } : {}), ...(values['ca-fingerprint'] ? { caFingerprint: values['ca-fingerprint'] } : {}) };
  let servers: string[];
  try {
    servers = parseServerUrls(values.server);
  } catch (err) {
    if (!(err instanceof TrustError)) throw err;
    console.error(`garrison agent: --server: ${err.code}: ${err.message}`);
    return 2;
  }
  if (cmd === 'enrol' || cmd === 'enroll') {
    const credFile = path.join(stateDir, 'credential.json');
    let enrolToken: string | undefined;
    try {
      enrolToken = await token();
    } catch (err) {
      if (!(err instanceof TokenUsageError)) throw err;
      console.error(`garrison agent enrol: ${err.message}`);
      return 2;
    }
    if (!servers.length || !enrolToken) {
      console.error(`garrison agent enrol: --server and the enrolment token are required; give the token with ${TOKEN_SOURCES}`);
      return 2;
    }
    if (existsSync(credFile) && !values.replace) {
      const cur = await readJson<{ serverUrl: string; deviceId: string }>(credFile).catch(() => undefined);
      console.error(`garrison agent enrol: already enrolled as device ${cur?.deviceId ?? '?'} with ${cur?.serverUrl ?? '?'}; --replace enrols anew and discards this state`);
      return 3;
    }
    try {
      const caPem = await resolveServerCa(servers, ca);
      // The enrolment makes a new device key in the state folder and registers its public half.
      const r = await enrol(servers, enrolToken, values.name, await new AgentPluginRegistry(path.join(stateDir, 'products')).installedProducts(), caPem, stateDir);
      if (values.replace) {
        // A new enrolment: nothing of the previous identity may be sent under the new one (the key was just made for it).
        for (const name of await readdir(stateDir).catch(() => [] as string[])) if (name !== 'install.json' && name !== DEVICE_KEY_FILE) await rm(path.join(stateDir, name), { recursive: true, force: true });
      }
      await markEnrolmentPending(stateDir);
      await writeJsonAtomic(credFile, withServerUrls({ deviceId: r.deviceId, credential: r.credential, groupId: r.groupId, signingPublicKey: r.signingPublicKey, caPem }, servers), 0o600);
      console.log(`enrolled device ${r.deviceId}`);
      return 0;
    } catch (err) {
      if (err instanceof EnrolmentError) {
        console.error(`garrison agent: enrolment failed: ${err.code}: ${err.message}`);
        return 1;
      }
      throw err;
    }
  }
  if (cmd === 'uninstall') {
    const cred = await readJson<{ serverUrl: string; serverUrls?: string[]; credential: string; caPem: string }>(path.join(stateDir, 'credential.json')).catch(() => undefined);
    const urls = cred ? storedServerUrls(cred) : [];
    if (cred && urls.length && !values.offline) {
      await confirmUninstall({ serverUrl: urls[0]!, credential: cred.credential }, failoverFetch(pinnedFetch(cred.caPem), () => urls, () => 0)).catch((err: Error) => console.error(`garrison agent uninstall: the server was not told (${err.message}); use --offline to skip`));
    }
    const install = await readJson<InstallInfo>(path.join(stateDir, 'install.json')).catch(() => undefined);
    await removeAgent(stateDir, install);
    console.log(install ? `uninstalling from ${install.installDir}` : `removed the agent state in ${stateDir}`);
    return 0;
  }
  if (cmd === 'status') return show(await localRequest(stateDir, 'GET', '/status'));
  if (cmd === 'events') {
    return show(await localRequest(stateDir, 'GET', `/events?limit=${Number(values.limit ?? 50)}`), (evs: { time: string; severity: string; kind: string; message: string }[]) =>
      evs.map((e) => `${e.time}  ${e.severity.padEnd(7)} ${e.kind.padEnd(24)} ${e.message}`).join('\n'),
    );
  }
  if (cmd === 'policy') {
    if (sub === undefined || sub === 'show') return show(await localRequest(stateDir, 'GET', '/policy/garrison'));
    if (sub === 'enforce') return show(await localRequest(stateDir, 'POST', '/policy/enforce'));
    if (sub === 'set') {
      const pairs = positionals.slice(2);
      if (!pairs.length) {
        console.error('garrison agent policy set: give at least one KEY=VALUE');
        return 2;
      }
      const settings: Record<string, unknown> = {};
      for (const pair of pairs) {
        const eq = pair.indexOf('=');
        if (eq < 1) {
          console.error(`garrison agent policy set: ${pair} is not KEY=VALUE`);
          return 2;
        }
        const raw = pair.slice(eq + 1);
        let value: unknown = raw;
        try {
          value = JSON.parse(raw);
        } catch {
          /* a plain string */
        }
        settings[pair.slice(0, eq)] = value;
      }
      return show(await localRequest(stateDir, 'PUT', '/policy/garrison', { settings }));
    }
    console.error(USAGE);
    return 2;
  }
  if (cmd === 'task') {
    if (sub === 'list') {
      return show(await localRequest(stateDir, 'GET', '/tasks'), (ts: { id: string; name: string; local: boolean; enabled: boolean; pendingSync: boolean }[]) =>
        ['ID                                    SCOPE   ENABLED  NAME', ...ts.map((t) => `${t.id.padEnd(38)}${(t.local ? 'local' : 'server').padEnd(8)}${String(t.enabled).padEnd(9)}${t.name}${t.pendingSync ? '  (not yet synced)' : ''}`)].join('\n'),
      );
    }
    try {
      if (sub === 'create') {
        if (!values.name) throw new UsageError('give the task a name: --name NAME');
        const body = { name: values.name, type: values.type ?? 'script', ...(values.product ? { product: values.product } : {}), ...(await localTaskFields(values)), enabled: !values.disabled };
        return show(await localRequest(stateDir, 'POST', '/tasks', body));
      }
      if ((sub === 'set' || sub === 'delete' || sub === 'run') && id) {
        if (sub === 'delete') return show(await localRequest(stateDir, 'DELETE', `/tasks/${encodeURIComponent(id)}`));
        if (sub === 'run') return show(await localRequest(stateDir, 'POST', `/tasks/${encodeURIComponent(id)}/run`));
        const listed = await localRequest(stateDir, 'GET', '/tasks');
        const current = Array.isArray(listed.json) ? (listed.json as { id: string; settings: unknown; schedule: import('@garrison/protocol').Schedule }[]).find((t) => t.id === id) : undefined;
        if (!current) return show({ status: 404, json: { error: { code: 'NOT_FOUND', message: `no task ${id} on this device` } } });
        const body = {
          ...(values.name ? { name: values.name } : {}),
          ...(await localTaskFields(values, current)),
          ...(values.enable ? { enabled: true } : values.disable ? { enabled: false } : {}),
        };
        if (Object.keys(body).length === 0) throw new UsageError('nothing to change: give at least one option');
        return show(await localRequest(stateDir, 'PATCH', `/tasks/${encodeURIComponent(id)}`, body));
      }
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      console.error(`garrison agent task ${sub}: ${err.message}`);
      return 2;
    }
    console.error(USAGE);
    return 2;
  }
  if (cmd !== undefined && cmd !== 'run') {
    console.error(USAGE);
    return 2;
  }
  // The token is needed (and read) only for the first start. The launcher restarts an agent
  // with the arguments it first had: an enrolled one must not wait for standard input or need
  // a token file that has since been deleted.
  let enrolToken: string | undefined;
  if (!existsSync(path.join(stateDir, 'credential.json'))) {
    try {
      enrolToken = await token();
    } catch (err) {
      if (!(err instanceof TokenUsageError)) throw err;
      console.error(`garrison agent: ${err.message}`);
      return 2;
    }
    if (!servers.length || !enrolToken) {
      console.error(`garrison agent: enrolment failed: NOT_ENROLLED: this agent is not enrolled yet: give --server URL, the enrolment token (${TOKEN_SOURCES}) and --ca-fingerprint SHA256 (or --ca FILE)`);
      return 1;
    }
  }
  const agent = new Agent({ stateDir, ...(servers.length ? { serverUrls: servers } : {}), ...(enrolToken ? { token: enrolToken } : {}), name: values.name, verbose: !values.quiet, ...ca });
  try {
    await agent.start();
  } catch (err) {
    if (err instanceof EnrolmentError) {
      console.error(`garrison agent: enrolment failed: ${err.code}: ${err.message}`);
      return 1;
    }
    if (err instanceof FolderInUseError) {
      console.error(`garrison agent: ${err.code}: ${err.message}`);
      return STATE_FOLDER_IN_USE_EXIT_CODE;
    }
    throw err;
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  await agent.stop();
  return 0;
}
