/**
 * Routes from the protocol's operation definitions (protocol/src/contract.ts, ADR 0021): the
 * definition gives the method, path, request schemas, the success answer's schema and the
 * error answers, so what validates a request, what OpenAPI documents and what the handler must
 * return (checked by the compiler) are the same value.
 *
 * Answers are serialized with JSON.stringify, not compiled from their schema: a compiled
 * serializer silently drops every property the schema does not list, so a field added to a
 * service but not to its schema would vanish from the API without an error. Instead, when
 * GARRISON_CHECK_RESPONSES is set (the test suite sets it), every JSON answer is checked against
 * its schema and one that does not match fails the request: the suite's thousand requests keep
 * the documented schemas true.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { API_PREFIX, ErrorBodySchema, errorCodeInfo, operationErrors, type OperationDef, type OpBody, type OpParams, type OpQuery, type OpResponse } from '@garrison/protocol';
import type { RouteAccess } from './access.ts';

/** Whether answers are checked against their schemas (tests), read once. */
export const checkResponses = process.env.GARRISON_CHECK_RESPONSES === '1';

export type OperationRequest<O extends OperationDef> = FastifyRequest<{ Params: OpParams<O>; Querystring: OpQuery<O>; Body: OpBody<O> }>;
export type OperationHandler<O extends OperationDef> = (req: OperationRequest<O>, reply: FastifyReply) => Promise<OpResponse<O> | FastifyReply>;

/** The Fastify path of an operation: `{id}` becomes `:id`. */
export function routePath(op: Pick<OperationDef, 'path' | 'base'>): string {
  return (op.base ?? API_PREFIX) + op.path.replace(/\{(\w+)\}/g, ':$1');
}

function errorResponses(op: OperationDef, access: RouteAccess): Record<number, unknown> {
  const out: Record<number, unknown> = {};
  for (const [status, codes] of operationErrors(op, access.kind)) {
    out[status] = {
      description: codes.map((c) => `${c}: ${errorCodeInfo[c].summary}`).join(' '),
      content: { 'application/json': { schema: ErrorBodySchema(codes) } },
    };
  }
  return out;
}

const ANY_ERROR = ErrorBodySchema();
const SUCCESS_DESCRIPTION: Record<number, string> = { 200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No content' };

/** Registers one operation's route with who may call it (http/access.ts). */
export function route<O extends OperationDef>(app: FastifyInstance, op: O, access: { access: RouteAccess }, handler: OperationHandler<O>): void {
  const status = op.status ?? 200;
  const success: Record<string, unknown> = { description: SUCCESS_DESCRIPTION[status] };
  const content: Record<string, unknown> = {};
  if (op.response) content['application/json'] = { schema: op.response };
  for (const type of op.produces ?? []) content[type] = { schema: { type: 'string' } };
  if (Object.keys(content).length) success.content = content;
  app.route({
    method: op.method,
    url: routePath(op),
    config: access,
    schema: {
      operationId: op.id,
      tags: [op.tag],
      summary: op.summary,
      ...(access.access.kind === 'public' ? { security: [] } : {}),
      ...(op.params ? { params: op.params } : {}),
      ...(op.query ? { querystring: op.query } : {}),
      ...(op.body ? { body: op.body } : {}),
      response: { [status]: success, ...errorResponses(op, access.access) },
    },
    handler: async (req, reply) => {
      const out = await handler(req as OperationRequest<O>, reply);
      if (out === reply) return reply;
      reply.status(status);
      return status === 204 ? reply.send() : out;
    },
  });
}

/**
 * The serializer of every JSON answer with a schema: JSON.stringify, with the schema check in
 * tests. Installed before the routes (a route keeps the compiler of when it was added).
 */
export function installResponseSerializer(app: FastifyInstance): void {
  app.setSerializerCompiler(({ schema, method, url, httpStatus }) => {
    if (!checkResponses) return (data) => JSON.stringify(data);
    // Error answers are checked for their shape only: which codes an operation documents is a
    // guide for clients (each status lists its codes), not a promise the server can keep for
    // every code a service may raise.
    const check = Compile(Number(httpStatus) >= 400 ? ANY_ERROR : (schema as TSchema));
    return (data) => {
      // What the client receives: Dates and toJSON()s as strings.
      const wire = JSON.parse(JSON.stringify(data) ?? 'null') as unknown;
      if (!check.Check(wire)) {
        const issues = check.Errors(wire).slice(0, 5).map((e) => `${e.instancePath || '/'} ${e.message}`);
        throw new Error(`the ${httpStatus} answer of ${method} ${url} does not match its schema: ${issues.join('; ')}`);
      }
      return JSON.stringify(data);
    };
  });
}
