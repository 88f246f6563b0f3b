/** The server itself (ADR 0021 for the shape of an operation): liveness and the error registry. Both are public. */
import { Type, type Static } from 'typebox';
import { operation } from '../contract.ts';
import { ErrorCodeInfo } from '../errors.ts';

export const Health = Type.Object(
  {
    status: Type.Literal('ok'),
    version: Type.String({ description: "The API's version" }),
    agentsOnline: Type.Integer({ minimum: 0, description: 'Agents connected to this server instance' }),
    caFingerprint: Type.Union([Type.String(), Type.Null()], {
      description: "SHA-256 fingerprint of the server's CA, what agents and the CLI are told to pin; null when the server speaks plain HTTP behind a proxy",
    }),
  },
  { additionalProperties: false },
);
export type Health = Static<typeof Health>;

export const getHealth = operation({ id: 'getHealth', method: 'GET', path: '/health', tag: 'server', summary: 'Liveness and version', response: Health });
export const listErrorCodes = operation({
  id: 'listErrorCodes',
  method: 'GET',
  path: '/error-codes',
  tag: 'server',
  summary: 'The closed list of error codes, each with its HTTP status, whether a retry may succeed, and what it means (a list fixed by the server: not paged)',
  response: Type.Record(Type.String({ pattern: '^[A-Z][A-Z0-9_]*$' }), ErrorCodeInfo),
});
