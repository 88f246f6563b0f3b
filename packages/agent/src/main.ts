/**
 * `garrison agent`: run the agent, or, with a subcommand, talk to the running agent of this
 * device through its local socket (status, local tasks, local events).
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { readFile, readdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pinnedFetch } from '@garrison/protocol/tls';
import { Agent, EnrolmentError, confirmUninstall, enrol, removeAgent, resolveServerCa, type InstallInfo } from './agent.ts';
import { readJson, writeJsonAtomic } from './state-file.ts';
import { AgentPluginRegistry } from './plugins.ts';
import { localSocketPath } from './local-api.ts';

const USAGE = `usage:
  garrison agent --server https://HOST:PORT --token TOKEN (--ca-fingerprint SHA256 | --ca FILE) [--state DIR] [--name NAME]
                                                                          enrol (once) and run
  garrison agent [--state DIR]                                            run an enrolled agent
  garrison agent enrol --server URL --token TOKEN (--ca-fingerprint FP | --ca FILE) [--name NAME] [--replace]
                                                                          enrol only (installers); the token may
                                                                          come from GARRISON_ENROL_TOKEN instead
  garrison agent uninstall [--state DIR] [--offline]                      remove the agent from this machine
  garrison agent status [--state DIR]
  garrison agent task list [--state DIR] [--json]
  garrison agent task create --name N --schedule JSON|@file [--settings JSON|@file] [--type script] [--disabled]
  garrison agent task set ID [--name N] [--schedule JSON] [--settings JSON] [--enable|--disable]
  garrison agent task delete ID
  garrison agent task run ID
  garrison agent events [--limit N] [--json]
State folder: --state, else GARRISON_AGENT_STATE, else ./agent-state.`;

function localRequest(stateDir: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: localSocketPath(stateDir), method, path, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : null });
      });
    });
    req.on('error', (err) => reject(new Error(`the agent is not running in ${stateDir} (${(err as NodeJS.ErrnoException).code ?? err.message})`)));
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

async function jsonArg(value: string | undefined, what: string): Promise<unknown> {
  if (value === undefined) return undefined;
  const text = value.startsWith('@') ? await readFile(value.slice(1), 'utf8') : value;
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`--${what} is not valid JSON`);
  }
}

export async function agentMain(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      server: { type: 'string' },
      token: { type: 'string' },
      ca: { type: 'string' },
      'ca-fingerprint': { type: 'string' },
      replace: { type: 'boolean' },
      offline: { type: 'boolean' },
      state: { type: 'string' },
      name: { type: 'string' },
      schedule: { type: 'string' },
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
  const token = values.token ?? process.env.GARRISON_ENROL_TOKEN;
  const ca = { ...(values.ca ? { caFile: values.ca } : {}), ...(values['ca-fingerprint'] ? { caFingerprint: values['ca-fingerprint'] } : {}) };
  if (cmd === 'enrol' || cmd === 'enroll') {
    const credFile = path.join(stateDir, 'credential.json');
    if (!values.server || !token) {
      console.error('garrison agent enrol: --server and --token (or GARRISON_ENROL_TOKEN) are required');
      return 2;
    }
    if (existsSync(credFile) && !values.replace) {
      const cur = await readJson<{ serverUrl: string; deviceId: string }>(credFile).catch(() => undefined);
      console.error(`garrison agent enrol: already enrolled as device ${cur?.deviceId ?? '?'} with ${cur?.serverUrl ?? '?'}; --replace enrols anew and discards this state`);
      return 3;
    }
    try {
      const caPem = await resolveServerCa(values.server, ca);
      const r = await enrol(values.server, token, values.name, await new AgentPluginRegistry(path.join(stateDir, 'products')).installedProducts(), caPem);
      if (values.replace) {
        // A new enrolment: nothing of the previous identity may be sent under the new one.
        for (const name of await readdir(stateDir).catch(() => [] as string[])) if (name !== 'install.json') await rm(path.join(stateDir, name), { recursive: true, force: true });
      }
      await writeJsonAtomic(credFile, { serverUrl: values.server.replace(/\/+$/, ''), deviceId: r.deviceId, credential: r.credential, groupId: r.groupId, signingPublicKey: r.signingPublicKey, caPem }, 0o600);
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
    const cred = await readJson<{ serverUrl: string; credential: string; caPem: string }>(path.join(stateDir, 'credential.json')).catch(() => undefined);
    if (cred && !values.offline) {
      await confirmUninstall(cred, pinnedFetch(cred.caPem)).catch((err: Error) => console.error(`garrison agent uninstall: the server was not told (${err.message}); use --offline to skip`));
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
  if (cmd === 'task') {
    if (sub === 'list') {
      return show(await localRequest(stateDir, 'GET', '/tasks'), (ts: { id: string; name: string; local: boolean; enabled: boolean; pendingSync: boolean }[]) =>
        ['ID                                    SCOPE   ENABLED  NAME', ...ts.map((t) => `${t.id.padEnd(38)}${(t.local ? 'local' : 'server').padEnd(8)}${String(t.enabled).padEnd(9)}${t.name}${t.pendingSync ? '  (not yet synced)' : ''}`)].join('\n'),
      );
    }
    if (sub === 'create') {
      const body = { name: values.name, type: values.type ?? 'script', ...(values.product ? { product: values.product } : {}), settings: (await jsonArg(values.settings, 'settings')) ?? {}, schedule: await jsonArg(values.schedule, 'schedule'), enabled: !values.disabled };
      return show(await localRequest(stateDir, 'POST', '/tasks', body));
    }
    if ((sub === 'set' || sub === 'delete' || sub === 'run') && id) {
      if (sub === 'delete') return show(await localRequest(stateDir, 'DELETE', `/tasks/${encodeURIComponent(id)}`));
      if (sub === 'run') return show(await localRequest(stateDir, 'POST', `/tasks/${encodeURIComponent(id)}/run`));
      const body = {
        ...(values.name ? { name: values.name } : {}),
        ...(values.schedule ? { schedule: await jsonArg(values.schedule, 'schedule') } : {}),
        ...(values.settings ? { settings: await jsonArg(values.settings, 'settings') } : {}),
        ...(values.enable ? { enabled: true } : values.disable ? { enabled: false } : {}),
      };
      return show(await localRequest(stateDir, 'PATCH', `/tasks/${encodeURIComponent(id)}`, body));
    }
    console.error(USAGE);
    return 2;
  }
  if (cmd !== undefined && cmd !== 'run') {
    console.error(USAGE);
    return 2;
  }
  const agent = new Agent({ stateDir, serverUrl: values.server, token, name: values.name, verbose: !values.quiet, ...ca });
  try {
    await agent.start();
  } catch (err) {
    if (err instanceof EnrolmentError) {
      console.error(`garrison agent: enrolment failed: ${err.code}: ${err.message}`);
      return 1;
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
