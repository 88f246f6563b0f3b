/**
 * The admin API's contract, operation by operation (ADR 0021): each operation names its id,
 * method, path, parameters, query, body and answer as TypeBox schemas. The server registers its
 * routes from these definitions (server/src/http/operation.ts), so the schema that validates a
 * request, the one that documents it in OpenAPI and the type the handler must return are one
 * value; the typed client (@garrison/client) calls the same definitions, so a CLI or console
 * call that does not match the server's route does not type-check.
 *
 * Lists page one way everywhere: `cursor` and `limit` in the query, `{ items, nextCursor,
 * total? }` in the answer. The cursor is opaque (the server encodes where the page ended); a
 * `nextCursor` of null means the list is complete. `total` is given where it is cheap (the
 * count is in memory or one indexed count), and says how many items match the filters.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { ErrorCode, errorCodeInfo } from './errors.ts';

export const API_PREFIX = '/api/v1';
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
export type SuccessStatus = 200 | 201 | 202 | 204;

export interface OperationDef {
  /** camelCase and unique: the OpenAPI operationId and the client's name for it. */
  readonly id: string;
  readonly method: HttpMethod;
  /** Under /api/v1 (or `base`), with `{name}` for path parameters (OpenAPI's form). */
  readonly path: string;
  /**
   * The root the path is under when it is not API_PREFIX: the agent endpoints are under
   * /agent/v1 (agents call them with their own transport, not with the typed client).
   */
  readonly base?: string;
  readonly tag: string;
  readonly summary: string;
  readonly params?: TSchema;
  readonly query?: TSchema;
  readonly body?: TSchema;
  /** The success status (default 200). */
  readonly status?: SuccessStatus;
  /** The success answer's JSON body; null for none (204, or a stream of another media type). */
  readonly response: TSchema | null;
  /** Media types of the success answer besides JSON (an export's text/csv). */
  readonly produces?: readonly string[];
  /** A raw request body of these media types instead of a JSON `body` (a package archive), streamed by the handler. */
  readonly consumes?: readonly string[];
  /** Error codes particular to this operation, besides those every operation of its kind can answer. */
  readonly errors?: readonly ErrorCode[];
}

/** Declares an operation, keeping its literal types for the client and the server's handler. */
export function operation<const D extends OperationDef>(def: D): D {
  return def;
}

type StaticOr<S, Else> = S extends TSchema ? Static<S> : Else;
export type OpParams<O extends OperationDef> = StaticOr<O['params'], Record<string, never>>;
export type OpQuery<O extends OperationDef> = StaticOr<O['query'], Record<string, never>>;
export type OpBody<O extends OperationDef> = StaticOr<O['body'], undefined>;
export type OpResponse<O extends OperationDef> = O['response'] extends TSchema ? Static<O['response']> : void;

/** A path with its parameters filled in, each escaped as one segment. */
export function operationPath(op: Pick<OperationDef, 'path'>, params: Record<string, string | number> = {}): string {
  return op.path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const v = params[name];
    if (v === undefined) throw new Error(`${op.path}: no value for {${name}}`);
    return encodeURIComponent(String(v));
  });
}

// --- Paging --------------------------------------------------------------------------------

export const PAGE_LIMIT_DEFAULT = 100;
export const PAGE_LIMIT_MAX = 1000;
/** The query members of every list: spread them into its query schema. */
export const PageQuery = {
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: "Where to continue: the previous page's nextCursor" })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: PAGE_LIMIT_MAX, description: `Items per page (default ${PAGE_LIMIT_DEFAULT}, at most ${PAGE_LIMIT_MAX})` })),
};
export interface PageRequest {
  cursor?: string;
  limit?: number;
}
/** One page of a list. */
export function Page<T extends TSchema>(item: T) {
  return Type.Object(
    {
      items: Type.Array(item),
      nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Give it as `cursor` for the next page; null when this is the last' }),
      total: Type.Optional(Type.Integer({ minimum: 0, description: 'How many items match the filters, over every page' })),
    },
    { additionalProperties: false },
  );
}
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
  total?: number;
}

// --- Errors --------------------------------------------------------------------------------

/** The JSON body of every error answer (errors.ts ErrorBody), restricted to some codes. */
export function ErrorBodySchema(codes: readonly ErrorCode[] = Object.values(ErrorCode)) {
  return Type.Object(
    {
      error: Type.Object(
        {
          code: Type.Enum([...codes]),
          message: Type.String(),
          retryable: Type.Boolean(),
          details: Type.Optional(Type.Unknown()),
          requestId: Type.Optional(Type.String()),
        },
        { additionalProperties: false },
      ),
    },
    { additionalProperties: false },
  );
}

/** Codes the server itself may answer: not those only clients or agents raise about themselves. */
export const serverErrorCodes: readonly ErrorCode[] = (Object.keys(errorCodeInfo) as ErrorCode[]).filter((c) => !/^\((client|agent) side\)/.test(errorCodeInfo[c].summary));

/** The error statuses an operation can answer with, and the codes of each. */
export function operationErrors(op: Pick<OperationDef, 'method' | 'params' | 'query' | 'body' | 'errors'>, access: 'admin' | 'public' | 'device'): Map<number, ErrorCode[]> {
  const codes = new Set<ErrorCode>(['BAD_REQUEST', 'INTERNAL', 'UNAVAILABLE', ...(op.errors ?? [])]);
  if (op.params || op.query || op.body) codes.add('VALIDATION_FAILED');
  if (op.params) codes.add('NOT_FOUND');
  if (op.body) for (const c of ['PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE'] as const) codes.add(c);
  if (access === 'admin') for (const c of ['UNAUTHENTICATED', 'FORBIDDEN'] as const) codes.add(c);
  if (access === 'device') codes.add('DEVICE_CREDENTIAL_INVALID');
  if (op.method !== 'GET' && access === 'admin') codes.add('CONFLICT');
  const byStatus = new Map<number, ErrorCode[]>();
  for (const c of serverErrorCodes) {
    if (!codes.has(c)) continue;
    const s = errorCodeInfo[c].status;
    byStatus.set(s, [...(byStatus.get(s) ?? []), c]);
  }
  return new Map([...byStatus].sort((a, b) => a[0] - b[0]));
}
