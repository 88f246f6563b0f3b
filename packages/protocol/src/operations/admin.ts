/**
 * The event log, secrets and server settings (ADR 0021 for the shape of an operation).
 */
import { Type, type Static } from 'typebox';
import { EventSeverity, EventView, SecretMeta, ServerSettings } from '../api.ts';
import { operation, Page, PageQuery } from '../contract.ts';

/** The most events one export (format=csv or jsonl) holds: newest first, the rest is left out. */
export const EVENT_EXPORT_MAX = 100_000;
export const EVENT_EXPORT_FORMATS = ['json', 'jsonl', 'csv'] as const;

/** The event log's filters, as the console keeps them in its URL and in saved selections. */
export const EventFilterQuery = {
  deviceId: Type.Optional(Type.String({ maxLength: 100 })),
  groupId: Type.Optional(Type.String({ maxLength: 100 })),
  recursive: Type.Optional(Type.Boolean({ description: 'With groupId: its subgroups too (default true)' })),
  taskId: Type.Optional(Type.String({ maxLength: 100 })),
  runId: Type.Optional(Type.String({ maxLength: 100 })),
  product: Type.Optional(Type.String({ maxLength: 100 })),
  kind: Type.Optional(
    Type.String({ minLength: 1, maxLength: 500, description: 'A kind, or several separated by commas; * stands for any characters (audit.*: the audit trail; *.detection: every product\'s detections)' }),
  ),
  severity: Type.Optional(Type.Union([EventSeverity], { description: 'The lowest severity shown' })),
  since: Type.Optional(Type.String({ format: 'date-time' })),
  until: Type.Optional(Type.String({ format: 'date-time' })),
};
export const EventListQuery = Type.Object(
  {
    ...EventFilterQuery,
    ...PageQuery,
    format: Type.Optional(
      Type.Union([Type.Literal('json'), Type.Literal('jsonl'), Type.Literal('csv')], {
        description: `csv or jsonl: an export of every matching event (newest first, from the cursor when given, at most ${EVENT_EXPORT_MAX}); limit does not apply`,
      }),
    ),
  },
  { additionalProperties: false },
);
export type EventListQuery = Static<typeof EventListQuery>;
export const EventKindListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });

export const SecretParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) });
export const SecretPut = Type.Object(
  {
    value: Type.String({ minLength: 1, maxLength: 65536 }),
    description: Type.Optional(Type.String({ maxLength: 500 })),
    groupId: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'The group the secret belongs to (default: the root, or the one it has)' })),
  },
  { additionalProperties: false },
);
export type SecretPut = Static<typeof SecretPut>;
export const SecretListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });
export const ServerSettingsPatch = Type.Object(
  {
    eventRetentionDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
    runRetentionDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
  },
  { additionalProperties: false },
);
export type ServerSettingsPatch = Static<typeof ServerSettingsPatch>;

export const listEvents = operation({
  id: 'listEvents',
  method: 'GET',
  path: '/events',
  tag: 'events',
  summary: `The event log of the groups the caller reads, newest first. format=csv or format=jsonl exports every matching event instead of a page (newest first, at most ${EVENT_EXPORT_MAX.toLocaleString('en')}; narrow the filters or the time range for more)`,
  query: EventListQuery,
  response: Page(EventView),
  produces: ['text/csv', 'application/x-ndjson'],
});
export const listEventKinds = operation({
  id: 'listEventKinds',
  method: 'GET',
  path: '/event-kinds',
  tag: 'events',
  summary: 'The kinds of the events in the log that the caller may see, in order (for pick lists)',
  query: EventKindListQuery,
  response: Page(Type.String()),
});
export const listSecrets = operation({
  id: 'listSecrets',
  method: 'GET',
  path: '/secrets',
  tag: 'secrets',
  summary: 'Secret names and descriptions (never values), by name',
  query: SecretListQuery,
  response: Page(SecretMeta),
});
export const putSecret = operation({
  id: 'putSecret',
  method: 'PUT',
  path: '/secrets/{name}',
  tag: 'secrets',
  summary: 'Set a secret value (the description is kept when absent)',
  params: SecretParams,
  body: SecretPut,
  status: 204,
  response: null,
});
export const deleteSecret = operation({ id: 'deleteSecret', method: 'DELETE', path: '/secrets/{name}', tag: 'secrets', summary: 'Delete a secret', params: SecretParams, status: 204, response: null });
export const getServerSettings = operation({ id: 'getServerSettings', method: 'GET', path: '/settings', tag: 'server', summary: 'Server settings (retention)', response: ServerSettings });
export const updateServerSettings = operation({
  id: 'updateServerSettings',
  method: 'PATCH',
  path: '/settings',
  tag: 'server',
  summary: 'Change server settings',
  body: ServerSettingsPatch,
  response: ServerSettings,
});
