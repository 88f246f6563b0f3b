import { Type, type Static } from 'typebox';

export const InstalledProduct = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 100 }), version: Type.String({ maxLength: 64 }), running: Type.Optional(Type.Boolean()) },
  { additionalProperties: false },
);
export type InstalledProduct = Static<typeof InstalledProduct>;

/** What an agent reports of its device at enrolment and every check-in. */
export const Inventory = Type.Object(
  {
    hostname: Type.String({ minLength: 1, maxLength: 255 }),
    osPlatform: Type.String({ maxLength: 32, description: 'linux, darwin, win32, ...' }),
    osName: Type.String({ maxLength: 128 }),
    osVersion: Type.String({ maxLength: 128 }),
    arch: Type.String({ maxLength: 32 }),
    addresses: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 64 }),
    agentVersion: Type.String({ maxLength: 64 }),
    timeZone: Type.String({ maxLength: 64 }),
    products: Type.Array(InstalledProduct, { maxItems: 500 }),
  },
  { additionalProperties: false },
);
export type Inventory = Static<typeof Inventory>;
