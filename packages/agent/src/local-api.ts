/**
 * The agent's local API for the device's own user (the `garrison agent task …` commands): a
 * small HTTP server on a Unix socket in the state folder, mode 0600, so that only the user
 * who owns the agent's state (root, for a service) may use it. On Windows, a named pipe.
 */
import http from 'node:http';
import { chmod, rm } from 'node:fs/promises';
import path from 'node:path';
import { BUILTIN_PRODUCT, Schedule, checker } from '@garrison/protocol';
import { referenceSettings, type Agent } from './agent.ts';

export interface LocalApi {
  socketPath: string;
  close(): Promise<void>;
}

export function localSocketPath(stateDir: string): string {
  return process.platform === 'win32' ? `\\\\.\\pipe\\garrison-agent-${Buffer.from(path.resolve(stateDir)).toString('hex').slice(-32)}` : path.join(stateDir, 'agent.sock');
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
  return b;
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
  if (process.platform !== 'win32') await rm(socketPath, { force: true });
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
