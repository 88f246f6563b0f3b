/**
 * The typed client of Garrison's admin API (ADR 0021). It calls the protocol's operation
 * definitions, so its inputs and answers have the server's own types:
 *
 *   const api = new GarrisonClient({ baseUrl: 'https://garrison:8420', token });
 *   const group = await api.call(getGroup, { params: { id } });
 *   for await (const d of api.each(listDevices, { query: { online: false } })) …
 *
 * Every failure is an ApiError with a code of the error registry (protocol/src/errors.ts):
 * the server's own, or UNAVAILABLE / SERVER_NOT_TRUSTED for the transport. The CLI and the
 * console use it; it needs only `fetch` (give one that pins a CA, as the CLI does).
 */
import { API_PREFIX, operationPath, type ErrorBody, type OperationDef, type OpBody, type OpParams, type OpQuery, type OpResponse, type Page } from '@garrison/protocol';

export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: unknown;
  readonly requestId: string | undefined;
  constructor(code: string, message: string, status = 0, details?: unknown, requestId?: string) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
    this.details = details;
    this.requestId = requestId;
  }
}

type Query = Record<string, string | number | boolean | undefined | null>;
type Fetch = (url: string, init: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** The server, such as https://garrison.example:8420 (the API is under /api/v1); '' for the page's own origin. */
  baseUrl: string;
  /** The API token or console session, or a function read at each request. */
  token?: string | null | (() => string | null);
  fetch?: Fetch;
  /** Headers sent with every request (the CLI's User-Agent). */
  headers?: Record<string, string>;
  /** Per request, unless the call gives a signal (default 60 s; 0: none). */
  timeoutMs?: number;
  /** Called when the server answers 401 to a request that carried a token. */
  onUnauthenticated?: (err: ApiError) => void;
  /** Turns a fetch failure (no answer) into an ApiError; the default says UNAVAILABLE. */
  transportError?: (err: Error, method: string, path: string) => ApiError;
}

/** What a call of an operation takes: its path parameters, query and body, each only when it has them. */
export type CallInput<O extends OperationDef> = (O['params'] extends object ? { params: OpParams<O> } : { params?: never }) &
  (O['query'] extends object ? { query?: OpQuery<O> } : { query?: never }) &
  (O['body'] extends object ? { body: OpBody<O> } : { body?: never });

export interface CallInit {
  signal?: AbortSignal;
  /** Extra headers (X-Request-Id, say). */
  headers?: Record<string, string>;
}

/** An operation whose answer is a page. */
export type PagedOperation = OperationDef & { response: { properties: { items: unknown; nextCursor: unknown } } };
type ItemOf<O extends OperationDef> = OpResponse<O> extends Page<infer T> ? T : never;

const STATUS_CODES: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  429: 'RATE_LIMITED',
  503: 'UNAVAILABLE',
};

export interface RawRequest {
  query?: Query;
  /** JSON, or a Blob / bytes with `contentType`. */
  body?: unknown;
  contentType?: string;
  accept?: string;
  signal?: AbortSignal;
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** The path prefix (default /api/v1; an operation's own `base`, such as the agent's /agent/v1). */
  base?: string;
}

export class GarrisonClient {
  readonly baseUrl: string;
  readonly #opts: ClientOptions;
  readonly #fetch: Fetch;
  constructor(opts: ClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.#opts = opts;
    this.#fetch = opts.fetch ?? ((url, init) => fetch(url, init));
  }

  /** Calls one operation and returns its answer, typed by its definition. */
  async call<O extends OperationDef>(op: O, input: CallInput<O>, init: CallInit = {}): Promise<OpResponse<O>> {
    const i = input as { params?: Record<string, string>; query?: Query; body?: unknown };
    const res = await this.request(op.method, operationPath(op, i.params), { query: i.query, body: op.body ? (i.body ?? {}) : undefined, ...(op.base ? { base: op.base } : {}), ...init });
    if (op.response === null) {
      await res.body?.cancel();
      return undefined as OpResponse<O>;
    }
    return (await this.#json(res, op.method, op.path)) as OpResponse<O>;
  }

  /** Every page of a list, following nextCursor (the input's cursor is where it starts). */
  async *pages<O extends PagedOperation>(op: O, input: CallInput<O>, init: CallInit = {}): AsyncGenerator<OpResponse<O>> {
    const base = input as { params?: unknown; query?: Query };
    let cursor = base.query?.cursor as string | undefined;
    for (;;) {
      const page = (await this.call(op, { ...base, query: { ...base.query, ...(cursor ? { cursor } : {}) } } as CallInput<O>, init)) as Page<unknown>;
      yield page as OpResponse<O>;
      if (!page.nextCursor) return;
      cursor = page.nextCursor;
    }
  }

  /** Every item of a list, page after page. */
  async *each<O extends PagedOperation>(op: O, input: CallInput<O>, init: CallInit = {}): AsyncGenerator<ItemOf<O>> {
    for await (const page of this.pages(op, input, init)) yield* (page as Page<ItemOf<O>>).items;
  }

  /** Every item of a list in one array (for lists known to be small: groups, roles). */
  async all<O extends PagedOperation>(op: O, input: CallInput<O>, init: CallInit = {}): Promise<ItemOf<O>[]> {
    const out: ItemOf<O>[] = [];
    for await (const item of this.each(op, input, init)) out.push(item);
    return out;
  }

  /**
   * One request to a path under /api/v1 (or `req.base`), for what is not JSON (CSV exports, package archives,
   * uploads): the Response once its status is a success, else the API's error as ApiError.
   */
  async request(method: string, path: string, req: RawRequest = {}): Promise<Response> {
    const url = new URL(`${this.baseUrl || (globalThis as { location?: { origin: string } }).location?.origin}${req.base ?? API_PREFIX}${path}`);
    for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
    const token = typeof this.#opts.token === 'function' ? this.#opts.token() : this.#opts.token;
    const headers: Record<string, string> = { accept: req.accept ?? 'application/json', ...this.#opts.headers, ...req.headers };
    if (token) headers.authorization = `Bearer ${token}`;
    let body: RequestInit['body'];
    if (req.body !== undefined) {
      const b = req.body;
      if (typeof Blob !== 'undefined' && b instanceof Blob) body = b;
      else if (b instanceof ArrayBuffer || ArrayBuffer.isView(b) || (typeof FormData !== 'undefined' && b instanceof FormData)) body = b as RequestInit['body'];
      else {
        body = JSON.stringify(b);
        headers['content-type'] = 'application/json';
      }
      if (req.contentType) headers['content-type'] = req.contentType;
    }
    const timeoutMs = req.timeoutMs ?? this.#opts.timeoutMs ?? 60_000;
    const signal = req.signal ?? (timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined);
    let res: Response;
    try {
      res = await this.#fetch(url.toString(), { method, headers, ...(body !== undefined ? { body } : {}), ...(signal ? { signal } : {}) });
    } catch (err) {
      const e = err as Error;
      if (e.name === 'AbortError' && req.signal?.aborted) throw e;
      if (e.name === 'TimeoutError') throw new ApiError('UNAVAILABLE', `${this.baseUrl || 'the server'} did not answer ${method} ${path} in time`);
      throw this.#opts.transportError?.(e, method, path) ?? new ApiError('UNAVAILABLE', `cannot reach ${this.baseUrl || 'the server'}: ${(e as { cause?: { code?: string } }).cause?.code ?? e.message}`);
    }
    if (res.ok) return res;
    const text = await res.text();
    let parsed: Partial<ErrorBody> | undefined;
    try {
      parsed = JSON.parse(text) as ErrorBody;
    } catch {
      /* not an API error body: a proxy's page */
    }
    const e = parsed?.error;
    const requestId = e?.requestId ?? res.headers.get('x-request-id') ?? undefined;
    const err =
      e && typeof e.code === 'string'
        ? new ApiError(e.code, e.message, res.status, e.details, requestId)
        : new ApiError(STATUS_CODES[res.status] ?? (res.status >= 500 ? 'INTERNAL' : 'BAD_REQUEST'), `HTTP ${res.status} ${res.statusText} from ${method} ${path}${text ? `: ${text.slice(0, 200)}` : ''}`, res.status, undefined, requestId);
    if (res.status === 401 && token) this.#opts.onUnauthenticated?.(err);
    throw err;
  }

  async #json(res: Response, method: string, path: string): Promise<unknown> {
    const text = await res.text();
    if (!text) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new ApiError('INTERNAL', `the server's answer to ${method} ${path} is not JSON`, res.status, undefined, res.headers.get('x-request-id') ?? undefined);
    }
  }
}
