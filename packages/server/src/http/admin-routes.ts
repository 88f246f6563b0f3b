/**
 * The admin API's event log, secrets and server settings: operations of
 * protocol/src/operations/admin.ts; and the helper every admin route file shares (`actor`).
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { deleteSecret, getServerSettings, listEventKinds, listEvents, listSecrets, putSecret, updateServerSettings, type EventView } from '@garrison/protocol';
import { csvCell } from '../csv.ts';
import type { Services } from '../services/services.ts';
import { authorize, Permission, type Actor } from '../services/actor.ts';
import { AppError } from '../errors.ts';
import { pageOf } from '../paging.ts';
import { anyAdmin, needs } from './access.ts';
import { route } from './operation.ts';

export { DEFAULT_SERVER_SETTINGS as DEFAULT_SETTINGS } from '../storage/settings-store.ts';

/** The authenticated caller (the onRequest hook set it), or UNAUTHENTICATED. */
export function actor(req: FastifyRequest): Actor {
  if (!req.actor) throw new AppError('UNAUTHENTICATED', 'no API token');
  return req.actor;
}
const read = needs(Permission.read);
const CSV_COLUMNS = ['id', 'time', 'severity', 'kind', 'message', 'actor', 'deviceId', 'groupId', 'taskId', 'runId', 'product', 'data', 'deviceName', 'taskName'] as const satisfies readonly (keyof EventView)[];

/** An export's lines, produced as the events are read (never the whole export in memory). */
async function* exportLines(events: AsyncGenerator<EventView>, format: 'csv' | 'jsonl', first: EventView | undefined): AsyncGenerator<string> {
  const line = format === 'csv' ? (e: EventView) => `${CSV_COLUMNS.map((c) => csvCell(e[c])).join(',')}\n` : (e: EventView) => `${JSON.stringify(e)}\n`;
  if (format === 'csv') yield `${CSV_COLUMNS.join(',')}\n`;
  if (first) yield line(first);
  for await (const e of events) yield line(e);
}

export function registerAdminRoutes(app: FastifyInstance, s: Pick<Services, 'catalog' | 'events' | 'secrets' | 'settings'>): void {
  // Events
  route(app, listEvents, read, async (req, reply) => {
    const { format, cursor, limit, ...filter } = req.query;
    const a = actor(req);
    if (format === 'csv' || format === 'jsonl') {
      const events = s.events.exportAll(a, filter, cursor);
      // The first event is read before answering, so that a refused filter (an unknown group) is an error answer, not a cut stream.
      const first = await events.next();
      const type = format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson';
      return reply
        .type(type)
        .header('content-disposition', `attachment; filename="garrison-events.${format}"`)
        .send(Readable.from(exportLines(events, format, first.done ? undefined : first.value)));
    }
    return s.events.page(a, filter, { ...(cursor ? { cursor } : {}), ...(limit ? { limit } : {}) });
  });
  route(app, listEventKinds, read, async (req) => s.events.kinds(actor(req), req.query));

  // Secrets: names only; values are write-only.
  route(app, listSecrets, read, async (req) => pageOf(await s.secrets.list(actor(req)), { key: (m) => [m.name] }, req.query));
  route(app, putSecret, needs(Permission.manageSecrets), async (req) => {
    await s.secrets.put(actor(req), req.params.name, req.body.value, req.body.description, req.body.groupId);
  });
  route(app, deleteSecret, needs(Permission.manageSecrets), async (req) => {
    await s.secrets.remove(actor(req), req.params.name);
  });

  // Server settings
  route(app, getServerSettings, anyAdmin, async (req) => {
    actor(req);
    return s.settings.serverSettings();
  });
  route(app, updateServerSettings, needs(Permission.manageSettings), async (req) => {
    const a = actor(req);
    authorize(a, Permission.manageSettings, s.catalog.tree);
    const next = { ...(await s.settings.serverSettings()), ...req.body };
    await s.settings.set('server', next);
    await s.events.audit(a, 'settings.updated', 'server settings changed', { data: next });
    return next;
  });
}
