import { Type, type Static } from 'typebox';

export const ScopeType = { local: 'local', group: 'group', global: 'global' } as const;
export type ScopeType = (typeof ScopeType)[keyof typeof ScopeType];

export const LocalScope = Type.Object({ type: Type.Literal('local'), deviceId: Type.String({ minLength: 1 }) }, { additionalProperties: false });
export const GroupScope = Type.Object(
  {
    type: Type.Literal('group'),
    groupId: Type.String({ minLength: 1 }),
    /** Default true: the task also applies to every subgroup (unless a subgroup blocks inheritance). */
    includeSubgroups: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
/**
 * A selection is re-evaluated whenever devices change: every given criterion must match.
 * `tags`: the device has all of them; `os`: the device's platform or OS name is one of them
 * (case-insensitive); `namePattern`: a glob (* and ?) on the device name or hostname;
 * `product`: a product id the device reports as installed.
 */
export const Selection = Type.Object(
  {
    tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 50 })),
    os: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 20 })),
    namePattern: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    product: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  },
  { additionalProperties: false },
);
export type Selection = Static<typeof Selection>;
export const GlobalScope = Type.Object(
  {
    type: Type.Literal('global'),
    deviceIds: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { maxItems: 100000 })),
    selection: Type.Optional(Selection),
  },
  { additionalProperties: false },
);
export const Scope = Type.Union([LocalScope, GroupScope, GlobalScope]);
export type Scope = Static<typeof Scope>;
