import { Type, type Static } from 'typebox';
import { Schedule } from './schedule.ts';
import { Scope } from './scope.ts';

/**
 * Task settings may refer to a secret by name: `{ "$secret": "db-password" }`. The reference is
 * replaced by the value only in the task list handed to the agent that runs the task.
 */
export const SECRET_REF_KEY = '$secret';
export interface SecretRef {
  $secret: string;
}
export function isSecretRef(value: unknown): value is SecretRef {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    Object.keys(value).length === 1 &&
    typeof (value as Record<string, unknown>)[SECRET_REF_KEY] === 'string'
  );
}

/** Where a secret reference sits in settings: the keys and indexes down to it, and the secret's name. */
export interface SecretPlacement {
  path: (string | number)[];
  name: string;
}
export const SecretPlacementSchema = Type.Object({ path: Type.Array(Type.Union([Type.String(), Type.Integer()]), { maxItems: 32 }), name: Type.String() });

/** Every secret reference in `settings`, with its place. */
export function secretPlacements(settings: unknown, path: (string | number)[] = [], out: SecretPlacement[] = []): SecretPlacement[] {
  if (isSecretRef(settings)) out.push({ path, name: settings.$secret });
  else if (Array.isArray(settings)) settings.forEach((v, i) => secretPlacements(v, [...path, i], out));
  else if (settings !== null && typeof settings === 'object') for (const [k, v] of Object.entries(settings)) secretPlacements(v, [...path, k], out);
  return out;
}

/** The value at a path, or undefined. */
export function valueAt(value: unknown, path: readonly (string | number)[]): unknown {
  let v = value;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[k];
  }
  return v;
}

/** A copy of `settings` with the value at each path replaced by `put(placement)`; paths that are absent are left alone. */
export function replaceAt<T>(settings: T, placements: readonly SecretPlacement[], put: (p: SecretPlacement, current: unknown) => unknown): T {
  if (placements.length === 0) return settings;
  const copy = structuredClone(settings);
  for (const p of placements) {
    if (p.path.length === 0) continue;
    const parent = valueAt(copy, p.path.slice(0, -1));
    const key = p.path[p.path.length - 1]!;
    if (parent === null || typeof parent !== 'object' || !Object.hasOwn(parent, key)) continue;
    (parent as Record<string | number, unknown>)[key] = put(p, (parent as Record<string | number, unknown>)[key]);
  }
  return copy;
}

/** Settings with each placement put back as its reference: the form a device shows and sends back, never the values. */
export function withSecretReferences<T>(resolved: T, placements: readonly SecretPlacement[]): T {
  return replaceAt(resolved, placements, (p) => ({ [SECRET_REF_KEY]: p.name }));
}

const Name = Type.String({ minLength: 1, maxLength: 200 });
const Settings = Type.Record(Type.String(), Type.Unknown(), { description: "Validated by the task type's schema" });

export const TaskOrigin = { admin: 'admin', device: 'device' } as const;
export type TaskOrigin = (typeof TaskOrigin)[keyof typeof TaskOrigin];

/** The task as the API shows it. */
export const Task = Type.Object({
  id: Type.String(),
  name: Name,
  description: Type.String(),
  product: Type.String(),
  type: Type.String(),
  settings: Settings,
  schedule: Schedule,
  scope: Scope,
  enabled: Type.Boolean(),
  /** Bumped by every change; agents and exports carry it. */
  revision: Type.Integer(),
  origin: Type.Union([Type.Literal('admin'), Type.Literal('device')]),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});
export type Task = Static<typeof Task>;

export const TaskCreate = Type.Object(
  {
    name: Name,
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    product: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Default "garrison"' })),
    type: Type.String({ minLength: 1, maxLength: 100 }),
    settings: Settings,
    schedule: Schedule,
    scope: Scope,
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type TaskCreate = Static<typeof TaskCreate>;

export const TaskUpdate = Type.Object(
  {
    name: Type.Optional(Name),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    settings: Type.Optional(Settings),
    schedule: Type.Optional(Schedule),
    scope: Type.Optional(Scope),
    enabled: Type.Optional(Type.Boolean()),
    /** Optimistic concurrency: refused with CONFLICT when the task has moved on. */
    revision: Type.Optional(Type.Integer()),
  },
  { additionalProperties: false },
);
export type TaskUpdate = Static<typeof TaskUpdate>;

/** A task as handed to an agent: secrets resolved, scope reduced to what the agent needs. */
export const AgentTask = Type.Object({
  id: Type.String(),
  name: Type.String(),
  product: Type.String(),
  type: Type.String(),
  settings: Settings,
  schedule: Schedule,
  enabled: Type.Boolean(),
  revision: Type.Integer(),
  local: Type.Boolean(),
  /**
   * Where `settings` hold a secret's value instead of its reference (resolved for this agent).
   * The agent runs with the values but shows and sends back only the references
   * (withSecretReferences), so a value never travels back into a task, an event or an export.
   */
  secretPlacements: Type.Optional(Type.Array(SecretPlacementSchema)),
});
export type AgentTask = Static<typeof AgentTask>;

export const TASK_EXPORT_FORMAT = 'garrison.tasks';
export const TASK_EXPORT_VERSION = 1;

/**
 * A portable export: groups are referred to by path ("My Organization/Servers"), devices by
 * name, secrets by reference only. Import resolves them in the target server.
 */
export const ExportedTask = Type.Object(
  {
    name: Name,
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    product: Type.String({ minLength: 1 }),
    type: Type.String({ minLength: 1 }),
    settings: Settings,
    schedule: Schedule,
    enabled: Type.Boolean(),
    scope: Type.Union([
      Type.Object({ type: Type.Literal('group'), groupPath: Type.String({ minLength: 1 }), includeSubgroups: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      Type.Object({ type: Type.Literal('local'), deviceName: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
      Type.Object(
        {
          type: Type.Literal('global'),
          deviceNames: Type.Optional(Type.Array(Type.String())),
          selection: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
        },
        { additionalProperties: false },
      ),
    ]),
  },
  { additionalProperties: false },
);
export type ExportedTask = Static<typeof ExportedTask>;
export const TaskExport = Type.Object(
  {
    format: Type.Literal(TASK_EXPORT_FORMAT),
    version: Type.Literal(TASK_EXPORT_VERSION),
    exportedAt: Type.String(),
    tasks: Type.Array(ExportedTask, { maxItems: 10000 }),
  },
  { additionalProperties: false },
);
export type TaskExport = Static<typeof TaskExport>;
