/**
 * What the web console needs beyond the resource API: a scope's devices before a task is
 * saved, the dashboard's summary and the live-update stream (ADR 0021 for the shape).
 * The session operations of the console are in sign-in.ts.
 */
import { Type, type Static } from 'typebox';
import { operation } from '../contract.ts';
import { DashboardSummary } from '../api.ts';
import { Scope } from '../scope.ts';

export const ScopePreviewBody = Type.Object({ scope: Scope, limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'How many devices to list (default 200)' })) }, { additionalProperties: false });
export type ScopePreviewBody = Static<typeof ScopePreviewBody>;
export const ScopePreview = Type.Object(
  {
    /** How many devices the scope targets now. */
    total: Type.Integer({ minimum: 0 }),
    /** The first `limit` of them. */
    devices: Type.Array(Type.Object({ id: Type.String(), groupId: Type.String(), name: Type.String(), hostname: Type.String() }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
export type ScopePreview = Static<typeof ScopePreview>;
export const previewScope = operation({
  id: 'previewScope',
  method: 'POST',
  path: '/scopes/preview',
  tag: 'tasks',
  summary: 'The devices a scope targets now (the first `limit`, default 200) and their total',
  body: ScopePreviewBody,
  response: ScopePreview,
  errors: ['SCOPE_INVALID'],
});

export const SummaryQuery = Type.Object({ hours: Type.Optional(Type.Integer({ minimum: 1, maximum: 720, description: 'The period of the run outcomes (default 24)' })) }, { additionalProperties: false });
export const getDashboardSummary = operation({
  id: 'getDashboardSummary',
  method: 'GET',
  path: '/summary',
  tag: 'server',
  summary: 'The dashboard: devices online and offline, run outcomes of the last hours, deployment compliance, recent failures',
  query: SummaryQuery,
  response: DashboardSummary,
});

/** Past this many devices of one task in one live message, the message says "many" (null) instead of listing them. */
export const LIVE_DEVICES_MAX = 200;
/** Past this many tasks in one live message, it says only that runs changed. */
export const LIVE_TASKS_MAX = 50;
/**
 * One message of the live stream (its `data:` line): the topics that changed, and for `runs`
 * which tasks and devices, when the server knows and they are few. A console re-reads what it
 * shows of those topics; with `runs.tasks`, a task's page reads only the rows of the devices
 * named (all of its current page when `deviceIds` is null).
 */
export const LiveMessage = Type.Object(
  {
    topics: Type.Array(Type.String()),
    runs: Type.Optional(
      Type.Object(
        {
          tasks: Type.Array(Type.Object({ taskId: Type.String(), deviceIds: Type.Union([Type.Array(Type.String(), { maxItems: LIVE_DEVICES_MAX }), Type.Null()]) }, { additionalProperties: false }), {
            maxItems: LIVE_TASKS_MAX,
          }),
          /** Runs of other tasks changed too, or of ones not named (a stop, an expiry): read them all again. */
          more: Type.Boolean(),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type LiveMessage = Static<typeof LiveMessage>;
export const streamLive = operation({
  id: 'streamLive',
  method: 'GET',
  path: '/live',
  tag: 'server',
  summary: 'Server-sent events (LiveMessage as JSON) naming what changed (runs with their tasks and devices, presence, events, config, deployments, repository, push), at most once a second',
  response: null,
  produces: ['text/event-stream'],
});
