/**
 * The agent's local API for the device's own user (the `garrison agent task …` commands): a
 * small HTTP server on a Unix socket, mode 0600, so that only the user who owns the agent's
 * state (root, for a service) may use it. On Windows, a named pipe.
 */
import http from 'node:http';
import type net from 'node:net';
import { createHash } from 'node:crypto';
import { lstatSync, realpathSync, statSync, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { scheduleIssues } from '@garrison/core';
import { BUILTIN_PRODUCT, Schedule, checker } from '@garrison/protocol';
import { referenceSettings, type Agent } from './agent.ts';
import { SettingsChangeError } from './agent-settings.ts';

export interface LocalApi {
  socketPath: string;
  close(): Promise<void>;
}

/**
 * The longest socket path that binds everywhere: sun_path is 108 bytes on Linux and 104 on
 * macOS and the BSDs, the terminating NUL included. A longer one fails with a bare EINVAL.
 */
export const MAX_SOCKET_PATH_BYTES = 103;
/** Where sockets of state folders with long paths go when nothing better is there: one private folder per user. */
export const SHORT_SOCKET_ROOT = '/tmp';
/** Root's folder for them: under /run, where only root may make things. */
export const RUN_SOCKET_DIR = '/run/garrison-agent';

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

/** The private folder of `uid` in /tmp for sockets that do not fit in their state folder: the last resort. */
export function shortSocketDir(uid: number): string {
  return path.posix.join(SHORT_SOCKET_ROOT, `garrison-agent-${uid}`);
}

/** What the choice of a folder for a socket outside the state folder depends on. */
export interface SocketDirFacts {
  /** /run is a folder of root's that no one else may write to. */
  run: boolean;
  /** Runtime folders of the agent's user that are its alone (owned by it, mode 0700), best first. */
  runtimeDirs: string[];
}

/**
 * The folders a socket outside the state folder may be in, best first. /tmp comes last: any
 * local user may make /tmp/garrison-agent-UID before the agent does, and the agent then refuses
 * it and runs without its local API. Root's goes under /run (only root may make things there),
 * another user's in its runtime folder ($XDG_RUNTIME_DIR, made by systemd-logind as
 * /run/user/UID, 0700). Pure: the facts come from socketDirFacts().
 */
export function shortSocketDirs(uid: number, facts: SocketDirFacts): string[] {
  const dirs: string[] = [];
  if (uid === 0 && facts.run) dirs.push(RUN_SOCKET_DIR);
  if (uid !== 0) for (const d of facts.runtimeDirs) dirs.push(path.posix.join(d, 'garrison-agent'));
  dirs.push(shortSocketDir(uid));
  return [...new Set(dirs)];
}

/** A real folder (not a link) of `uid` that no one else may use. */
function isPrivateFolderOf(st: Stats | null, uid: number): boolean {
  return !!st && st.isDirectory() && st.uid === uid && (st.mode & 0o077) === 0;
}

/**
 * The facts on this machine for the agent user `uid`. The agent (`forCli` false) knows its own
 * XDG_RUNTIME_DIR. The local CLI cannot know the agent's: it tries its own when it runs as the
 * agent's user, then /run/user/UID (the systemd convention), so root's CLI finds another
 * user's agent there too; an agent with another runtime folder is then looked for in /tmp only.
 */
export function socketDirFacts(uid: number, opts: { forCli?: boolean; env?: NodeJS.ProcessEnv } = {}): SocketDirFacts {
  const env = opts.env ?? process.env;
  const run = lstatIfAny('/run');
  const candidates: string[] = [];
  const ownUid = process.getuid?.();
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && path.posix.isAbsolute(xdg) && ownUid === uid) candidates.push(path.posix.normalize(xdg));
  if (opts.forCli) candidates.push(`/run/user/${uid}`);
  return {
    run: !!run && run.isDirectory() && run.uid === 0 && (run.mode & 0o022) === 0,
    runtimeDirs: [...new Set(candidates)].filter((d) => isPrivateFolderOf(lstatIfAny(d), uid)),
  };
}

/** The socket paths outside the state folder that fit in a socket address, best first; never empty. */
function shortSocketPaths(dir: string, uid: number, facts: SocketDirFacts): string[] {
  const name = `${digest(dir)}.sock`;
  const all = shortSocketDirs(uid, facts).map((d) => path.posix.join(d, name));
  const fit = all.filter((p) => Buffer.byteLength(p) <= MAX_SOCKET_PATH_BYTES);
  return fit.length ? fit : [all[all.length - 1]];
}

/**
 * Where the agent of a state folder listens. In the state folder (agent.sock) when that path
 * fits in a socket address; else, as the limit would otherwise bite, in a private folder of
 * the agent's user (the first of shortSocketDirs() whose path fits: /run/garrison-agent for
 * root, $XDG_RUNTIME_DIR/garrison-agent, else /tmp/garrison-agent-UID; mode 0700, checked
 * before use) under a name derived from the state folder, so that the local CLI finds it from
 * the state folder alone. Not a Linux abstract socket: those have no file permissions, and any
 * local user could connect. `uid` is the agent's user: the agent passes its own, the CLI the
 * state folder's owner (it may run as another user, root for one). `facts` default to this
 * machine's, for the agent (none for another platform). On Windows a named pipe, named after
 * a hash of the state folder (case-insensitive, as Windows paths are).
 */
export function localSocketPath(stateDir: string, opts: { platform?: NodeJS.Platform; uid?: number; facts?: SocketDirFacts } = {}): string {
  const platform = opts.platform ?? process.platform;
  const dir = canonicalStateDir(stateDir, platform);
  if (platform === 'win32') return `\\\\.\\pipe\\garrison-agent-${digest(dir.toLowerCase())}`;
  const inState = path.posix.join(dir, 'agent.sock');
  if (Buffer.byteLength(inState) <= MAX_SOCKET_PATH_BYTES) return inState;
  const uid = opts.uid ?? process.getuid?.() ?? 0;
  const facts = opts.facts ?? (platform === process.platform ? socketDirFacts(uid) : { run: false, runtimeDirs: [] });
  return shortSocketPaths(dir, uid, facts)[0];
}

/**
 * For the local CLI: the socket of the agent that owns this state folder. Outside the state
 * folder it looks in each folder the agent may have chosen, best first (the CLI cannot know
 * the agent's environment), and takes the first that holds a socket. A socket there is trusted
 * only in a real folder of the agent's user with no access for others, and only if the socket
 * is that user's: another user may have planted /tmp/garrison-agent-UID before the agent
 * started (the agent then refuses it and runs without its local API), and the CLI would
 * otherwise send that user the tasks (scripts, settings) it is given and show whatever it
 * answers. /tmp is looked at last, so a planted folder there does not hide an agent listening
 * in a better place. None found is fine: the first path is returned, the request then fails
 * and says the agent is not running there. A folder cannot be swapped after the check: /tmp is
 * sticky, so only its owner (or root) may rename or remove it; /run and runtime folders are
 * root's and the user's alone.
 */
export function findLocalSocket(stateDir: string): string {
  if (process.platform === 'win32') return localSocketPath(stateDir);
  let uid: number | undefined;
  try {
    uid = statSync(stateDir).uid;
  } catch {
    /* no state folder: the request fails and says the agent is not running there */
  }
  const owner = uid ?? process.getuid?.() ?? 0;
  const dir = canonicalStateDir(stateDir, process.platform);
  const inState = path.posix.join(dir, 'agent.sock');
  if (Buffer.byteLength(inState) <= MAX_SOCKET_PATH_BYTES) return inState;
  const candidates = shortSocketPaths(dir, owner, socketDirFacts(owner, { forCli: true }));
  for (const socketPath of candidates) {
    const folder = path.dirname(socketPath);
    const st = lstatIfAny(folder);
    if (!st) continue;
    if (!isPrivateFolderOf(st, owner)) {
      throw new LocalSocketError(`the socket folder ${folder} is not a private folder of the agent's user (uid ${owner}, mode 0700): not trusted (another user may have made it); remove it and restart the agent`);
    }
    const sock = lstatIfAny(socketPath);
    if (!sock) continue;
    if (!sock.isSocket() || sock.uid !== owner) throw new LocalSocketError(`${socketPath} is not a socket of the agent's user (uid ${owner}): not trusted`);
    return socketPath;
  }
  return candidates[0];
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
  if (!isPrivateFolderOf(st, uid)) {
    throw new LocalSocketError(`the socket folder ${dir} is not a private folder of this user (uid ${uid}, mode 0700): remove it and start the agent again`);
  }
}

/**
 * Listens on the Unix socket `socketPath` such that it is never connectable with a wider mode
 * than 0600. listen() makes the socket with the umask's mode, and a chmod after it leaves a
 * moment in which another user may connect (and keep the connection) when the folder is not
 * 0700 and the umask lets others write. So the socket is made in a fresh folder of mode 0700
 * beside it (no one else can reach a socket in there), made 0600, then renamed into place: a
 * bound socket keeps working under its new name (Linux, macOS). Not process.umask(): it is
 * process-wide, and other code may make files meanwhile. The staging name is no longer than
 * the final one (`.gXXXXXX/s`, 10 bytes, as `agent.sock`), so it fits whenever the final path
 * does. Resolves with a close() that stops listening and removes the final name if it is
 * still this socket.
 */
export async function listenOnPrivateSocket(server: net.Server, socketPath: string): Promise<() => Promise<void>> {
  const staging = await mkdtemp(path.join(path.dirname(socketPath), '.g'));
  const stagingSocket = path.join(staging, 's');
  let st: Stats;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(stagingSocket, () => {
        server.off('error', reject);
        resolve();
      });
    });
    try {
      await chmod(stagingSocket, 0o600);
      await rename(stagingSocket, socketPath);
      st = await lstat(socketPath);
    } catch (err) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw err;
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const now = lstatIfAny(socketPath);
    if (now && now.ino === st.ino && now.dev === st.dev) await rm(socketPath, { force: true });
  };
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
/** The agent's policy may forbid the local user's task edits (localTasksAllowed). */
function requireLocalTasksAllowed(agent: Agent): void {
  if (!agent.localTasksAllowed) throw new LocalError(403, 'LOCAL_TASKS_NOT_ALLOWED', "this device's policy does not allow local tasks to be created, changed or deleted");
}

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
          requireLocalTasksAllowed(agent);
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
            requireLocalTasksAllowed(agent);
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
        } else if (url.pathname === '/policy/enforce' && req.method === 'POST') {
          // The device's user asks for an enforcement now (as KSC's and ePO's "enforce policies"):
          // every product's policy is applied again, and the outcomes are returned.
          await agent.policy.enforce('requested');
          out = { statuses: agent.policy.policies().map((p) => agent.policy.status(p.product) ?? { product: p.product, state: null }) };
        } else if (url.pathname === '/policy/garrison' && (req.method === 'GET' || req.method === 'PUT')) {
          // The agent's own settings: the local user may change the unlocked ones.
          if (req.method === 'PUT') {
            const body = await readBody(req);
            const changes = body && typeof body === 'object' && !Array.isArray(body) && 'settings' in body ? (body as { settings: unknown }).settings : body;
            try {
              await agent.agentSettings.setLocal(changes as Record<string, unknown>);
            } catch (err) {
              if (err instanceof SettingsChangeError) throw new LocalError(err.status, err.code, err.message);
              throw err;
            }
          }
          const policy = agent.policy.policy(BUILTIN_PRODUCT);
          out = { settings: agent.agentSettings.current, locked: agent.agentSettings.locked, revision: policy?.revision ?? null, status: agent.policy.status(BUILTIN_PRODUCT) ?? null };
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
  if (process.platform !== 'win32') return { socketPath, close: await listenOnPrivateSocket(server, socketPath) };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    socketPath,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
