/**
 * The agent's local API for the device's own user (the `garrison agent task …` commands): a
 * small HTTP server on a Unix socket, mode 0600, so that only the user who owns the agent's
 * state (root, for a service) may use it. On Windows, a named pipe.
 */
import http from 'node:http';
import { createHash } from 'node:crypto';
import { lstatSync, realpathSync, statSync, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { scheduleIssues } from '@garrison/core';
import { BUILTIN_PRODUCT, Schedule, checker } from '@garrison/protocol';
import { referenceSettings, type Agent } from './agent.ts';

export interface LocalApi {
  socketPath: string;
  close(): Promise<void>;
}

/**
 * The longest socket path that binds everywhere: sun_path is 108 bytes on Linux and 104 on
 * macOS and the BSDs, the terminating NUL included. A longer one fails with a bare EINVAL.
 */
export const MAX_SOCKET_PATH_BYTES = 103;
/** Where sockets of state folders with long paths go: one private folder per user. */
export const SHORT_SOCKET_ROOT = '/tmp';

/** The state folder as both the agent and the local CLI name it: absolute, symbolic links resolved. */
function canonicalStateDir(stateDir: string, platform: NodeJS.Platform): string {
  const p = platform === 'win32' ? path.win32 : path.posix;
  const abs = p.resolve(stateDir);
  if (platform !== process.platform) return abs;
  try {
    return realpathSync.native(abs);
  } catch {
    return abs;
  }
}
const digest = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 24);

/** The private folder of `uid` for sockets that do not fit in their state folder. */
export function shortSocketDir(uid: number): string {
  return path.posix.join(SHORT_SOCKET_ROOT, `garrison-agent-${uid}`);
}

/**
 * Where the agent of a state folder listens. In the state folder (agent.sock) when that path
 * fits in a socket address; else, as the limit would otherwise bite, in a private folder of
 * the agent's user (/tmp/garrison-agent-UID, mode 0700, checked before use) under a name
 * derived from the state folder, so that the local CLI finds it from the state folder alone.
 * Not a Linux abstract socket: those have no file permissions, and any local user could
 * connect. `uid` is the agent's user: the agent passes its own, the CLI the state folder's
 * owner (it may run as another user, root for one). On Windows a named pipe, named after a
 * hash of the state folder (case-insensitive, as Windows paths are).
 */
export function localSocketPath(stateDir: string, opts: { platform?: NodeJS.Platform; uid?: number } = {}): string {
  const platform = opts.platform ?? process.platform;
  const dir = canonicalStateDir(stateDir, platform);
  if (platform === 'win32') return `\\\\.\\pipe\\garrison-agent-${digest(dir.toLowerCase())}`;
  const inState = path.posix.join(dir, 'agent.sock');
  if (Buffer.byteLength(inState) <= MAX_SOCKET_PATH_BYTES) return inState;
  return path.posix.join(shortSocketDir(opts.uid ?? process.getuid?.() ?? 0), `${digest(dir)}.sock`);
}

/**
 * For the local CLI: the socket of the agent that owns this state folder. A socket outside the
 * state folder (in /tmp, where every user may make things) is trusted only in a real folder of
 * the agent's user with no access for others, and only if the socket there is that user's:
 * another user may have planted the folder before the agent started (the agent then refuses
 * it and runs without its local API), and the CLI would otherwise send that user the tasks
 * (scripts, settings) it is given and show whatever it answers. Missing is fine: the request
 * then fails and says the agent is not running there. The folder cannot be swapped after the
 * check: /tmp is sticky, so only its owner (or root) may rename or remove it.
 */
export function findLocalSocket(stateDir: string): string {
  if (process.platform === 'win32') return localSocketPath(stateDir);
  let uid: number | undefined;
  try {
    uid = statSync(stateDir).uid;
  } catch {
    /* no state folder: the request fails and says the agent is not running there */
  }
  const socketPath = localSocketPath(stateDir, uid === undefined ? {} : { uid });
  const dir = path.dirname(socketPath);
  if (dir === canonicalStateDir(stateDir, process.platform)) return socketPath;
  const owner = uid ?? process.getuid?.() ?? 0;
  const st = lstatIfAny(dir);
  if (st && (!st.isDirectory() || st.uid !== owner || (st.mode & 0o077) !== 0)) {
    throw new LocalSocketError(`the socket folder ${dir} is not a private folder of the agent's user (uid ${owner}, mode 0700): not trusted (another user may have made it); remove it and restart the agent`);
  }
  const sock = st ? lstatIfAny(socketPath) : null;
  if (sock && (!sock.isSocket() || sock.uid !== owner)) {
    throw new LocalSocketError(`${socketPath} is not a socket of the agent's user (uid ${owner}): not trusted`);
  }
  return socketPath;
}

/** Null when there is nothing there, or when this user may not look (connecting then fails and says so). */
function lstatIfAny(file: string): Stats | null {
  try {
    return lstatSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR') return null;
    throw err;
  }
}

/** Thrown when the socket cannot be placed safely; the agent does not start its local API then. */
export class LocalSocketError extends Error {}

/**
 * Makes (or checks) the private folder of a socket outside the state folder. /tmp is shared:
 * a folder there that is not a real folder of this user with no access for others may have
 * been planted by another user to receive the socket, and is refused.
 */
export async function preparePrivateSocketDir(dir: string): Promise<void> {
  const uid = process.getuid?.() ?? 0;
  await mkdir(dir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw new LocalSocketError(`cannot make the socket folder ${dir}: ${err.message}`);
  });
  const st = await lstat(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new LocalSocketError(`the socket folder ${dir} is not a private folder of this user (uid ${uid}, mode 0700): remove it and start the agent again`);
  }
}

const scheduleChecker = checker(Schedule);

class LocalError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function parseTaskBody(body: unknown, partial: boolean) {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new LocalError(400, 'VALIDATION_FAILED', 'the body must be a JSON object');
  const b = body as Record<string, unknown>;
  const allowed = ['name', 'type', 'product', 'settings', 'schedule', 'enabled'];
  const extra = Object.keys(b).filter((k) => !allowed.includes(k));
  if (extra.length) throw new LocalError(400, 'VALIDATION_FAILED', `unknown fields: ${extra.join(', ')}`);
  if ((!partial || b.name !== undefined) && (typeof b.name !== 'string' || b.name.length < 1 || b.name.length > 200)) throw new LocalError(400, 'VALIDATION_FAILED', 'name: 1-200 characters');
  if ((!partial || b.type !== undefined) && (typeof b.type !== 'string' || !b.type)) throw new LocalError(400, 'VALIDATION_FAILED', 'type: a task type such as "script"');
  if (b.settings !== undefined && (typeof b.settings !== 'object' || b.settings === null || Array.isArray(b.settings))) throw new LocalError(400, 'VALIDATION_FAILED', 'settings: an object');
  if ((!partial || b.schedule !== undefined) && !scheduleChecker.check(b.schedule)) {
    throw new LocalError(400, 'SCHEDULE_INVALID', `schedule: ${scheduleChecker.issues(b.schedule, 3).map((i) => `${i.path} ${i.message}`).join('; ')}`);
  }
  if (b.enabled !== undefined && typeof b.enabled !== 'boolean') throw new LocalError(400, 'VALIDATION_FAILED', 'enabled: true or false');
  if (b.product !== undefined && (typeof b.product !== 'string' || !b.product)) throw new LocalError(400, 'VALIDATION_FAILED', 'product: a product id such as "garrison"');
  if (b.schedule !== undefined) {
    const issues = scheduleIssues(b.schedule as Schedule);
    if (issues.length) throw new LocalError(400, 'SCHEDULE_INVALID', `schedule: ${issues.join('; ')}`);
  }
  return b;
}

/**
 * A task the device's user makes is checked here as the server checks an administrator's:
 * for every client of the local API, and before it is accepted, rather than refused later at
 * the sync where the user no longer sees it.
 */
function checkSettings(agent: Agent, product: string, type: string, settings: Record<string, unknown>): void {
  const problem = agent.plugins.checkSettings(product, type, settings);
  if (problem) throw new LocalError(400, problem.code, problem.message);
}

async function readBody(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 1024 * 1024) throw new LocalError(413, 'PAYLOAD_TOO_LARGE', 'body too large');
    chunks.push(c as Buffer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new LocalError(400, 'BAD_REQUEST', 'the body is not valid JSON');
  }
}

export async function startLocalApi(agent: Agent): Promise<LocalApi> {
  const socketPath = localSocketPath(agent.stateDir);
  if (process.platform !== 'win32') {
    if (path.dirname(socketPath) !== canonicalStateDir(agent.stateDir, process.platform)) await preparePrivateSocketDir(path.dirname(socketPath));
    await rm(socketPath, { force: true });
  }
  const server = http.createServer((req, res) => {
    void (async () => {
      try {
        const url = new URL(req.url ?? '/', 'http://agent');
        const parts = url.pathname.split('/').filter(Boolean);
        let out: unknown;
        if (req.method === 'GET' && url.pathname === '/status') out = agent.status();
        else if (req.method === 'GET' && url.pathname === '/tasks') {
          const pending = new Set(agent.pendingLocalChanges().map((c) => c.taskId));
          // Secret values resolved for running are never shown: a local task shows its references.
          out = agent.runner.tasks().map((t) => {
            const { secretPlacements: _placements, ...shown } = t;
            return { ...shown, settings: t.local ? referenceSettings(t) : '[managed by the administrator]', pendingSync: pending.has(t.id) };
          });
        } else if (req.method === 'POST' && url.pathname === '/tasks') {
          const b = parseTaskBody(await readBody(req), false);
          checkSettings(agent, (b.product as string) ?? BUILTIN_PRODUCT, b.type as string, (b.settings as Record<string, unknown>) ?? {});
          const id = agent.newLocalTaskId();
          agent.localTaskChange({
            taskId: id,
            task: { name: b.name as string, product: (b.product as string) ?? BUILTIN_PRODUCT, type: b.type as string, settings: (b.settings as Record<string, unknown>) ?? {}, schedule: b.schedule as Schedule, enabled: (b.enabled as boolean) ?? true },
          });
          res.statusCode = 201;
          out = { id };
        } else if (parts[0] === 'tasks' && parts[1] && (req.method === 'PATCH' || req.method === 'DELETE' || (req.method === 'POST' && parts[2] === 'run'))) {
          const t = agent.runner.task(parts[1]);
          if (!t) throw new LocalError(404, 'NOT_FOUND', `no task ${parts[1]} on this device`);
          if (req.method === 'POST') {
            agent.runner.fire(t.id, 'local-user');
            out = { started: true };
          } else {
            if (!t.local) throw new LocalError(403, 'FORBIDDEN', 'only local tasks can be changed on the device; group and global tasks belong to the administrator');
            if (req.method === 'DELETE') {
              agent.localTaskChange({ taskId: t.id, deleted: true, task: { name: t.name, product: t.product, type: t.type, settings: referenceSettings(t), schedule: t.schedule, enabled: t.enabled } });
              out = { deleted: true };
            } else {
              const b = parseTaskBody(await readBody(req), true);
              if (b.product !== undefined || b.type !== undefined) throw new LocalError(400, 'VALIDATION_FAILED', "a task's product and type cannot change; create a new task");
              if (b.settings !== undefined) checkSettings(agent, t.product, t.type, b.settings as Record<string, unknown>);
              const task = {
                name: (b.name as string) ?? t.name,
                product: t.product,
                type: t.type,
                // The change carries references, never the values the agent resolved them to.
                settings: (b.settings as Record<string, unknown>) ?? referenceSettings(t),
                schedule: (b.schedule as Schedule) ?? t.schedule,
                enabled: (b.enabled as boolean) ?? t.enabled,
              };
              agent.localTaskChange({ taskId: t.id, task });
              out = { id: t.id, ...task };
            }
          }
        } else if (req.method === 'GET' && url.pathname === '/events') {
          out = await agent.events.read({ limit: Number(url.searchParams.get('limit') ?? 100), ...(url.searchParams.get('taskId') ? { taskId: url.searchParams.get('taskId')! } : {}) });
        } else throw new LocalError(404, 'NOT_FOUND', `no route ${req.method} ${url.pathname}`);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(out));
      } catch (err) {
        const e = err instanceof LocalError ? err : new LocalError(500, 'INTERNAL', (err as Error).message);
        res.statusCode = e.status;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ error: { code: e.code, message: e.message } }));
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  if (process.platform !== 'win32') await chmod(socketPath, 0o600);
  return {
    socketPath,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
