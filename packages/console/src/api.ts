/**
 * The console's only way to the server: the same versioned REST API as the CLI, with the
 * session token as a bearer token. Errors become ApiError with the API's stable code, so
 * pages show a clear message per code instead of a raw status.
 */
import { useMutation, useQuery, useQueryClient, type UseQueryOptions } from '@tanstack/react-query';
import { errorCodeInfo, isErrorCode, operationPath, type OperationDef, type OpResponse } from '@garrison/protocol';
import { ApiError, GarrisonClient, type CallInput, type PagedOperation } from '@garrison/client';

const TOKEN_KEY = 'garrison.session';
export const API = '/api/v1';

export { ApiError };

type Listener = () => void;
const signedOut = new Set<Listener>();

export const session = {
  token(): string | null {
    return localStorage.getItem(TOKEN_KEY);
  },
  set(token: string): void {
    localStorage.setItem(TOKEN_KEY, token);
  },
  clear(): void {
    const had = localStorage.getItem(TOKEN_KEY) !== null;
    localStorage.removeItem(TOKEN_KEY);
    if (had) for (const l of signedOut) l();
  },
  onSignedOut(l: Listener): () => void {
    signedOut.add(l);
    return () => signedOut.delete(l);
  },
};

/** What a person reads for an error: the server's message, with what the code means. */
export function describeError(err: unknown): { title: string; detail: string; code?: string; issues?: { path: string; message: string }[]; requestId?: string } {
  if (err instanceof ApiError) {
    const info = isErrorCode(err.code) ? errorCodeInfo[err.code] : undefined;
    const issues = Array.isArray((err.details as { issues?: unknown })?.issues) ? ((err.details as { issues: { path: string; message: string }[] }).issues) : undefined;
    return {
      title: info?.summary ?? 'The request failed.',
      detail: err.message,
      code: err.code,
      ...(issues ? { issues } : {}),
      ...(err.requestId ? { requestId: err.requestId } : {}),
    };
  }
  if (err instanceof TypeError) return { title: 'The server cannot be reached.', detail: 'Check the network connection and that the server is running; the page retries on its own.' };
  return { title: 'Something went wrong.', detail: err instanceof Error ? err.message : String(err) };
}

/** The typed client (@garrison/client) on the page's own origin, with the session as its token. */
export const api = new GarrisonClient({ baseUrl: '', token: () => session.token(), timeoutMs: 0 });

export async function request<T>(method: string, path: string, body?: unknown, init: { signal?: AbortSignal; raw?: boolean; contentType?: string } = {}): Promise<T> {
  const rel = path.startsWith(API) ? path.slice(API.length) : path;
  let res: Response;
  try {
    res = await api.request(method, rel, { ...(body !== undefined ? { body } : {}), ...(init.contentType ? { contentType: init.contentType } : {}), ...(init.signal ? { signal: init.signal } : {}) });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && session.token() && rel !== '/session') session.clear();
    throw err;
  }
  if (init.raw) return res as unknown as T;
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('json') ? await res.json() : await res.text()) as T;
}

/** Calls an operation of the contract; a 401 ends the session like any other request. */
export async function call<O extends OperationDef>(op: O, input: CallInput<O>, init: { signal?: AbortSignal } = {}): Promise<OpResponse<O>> {
  try {
    return await api.call(op, input, init);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && session.token() && op.path !== '/session') session.clear();
    throw err;
  }
}

/** Every item of a paged operation (a list known to be small), with the session's 401 handling. */
export async function allPages<O extends PagedOperation>(op: O, input: CallInput<O>, init: { signal?: AbortSignal } = {}) {
  try {
    return await api.all(op, input, init);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && session.token()) session.clear();
    throw err;
  }
}

/**
 * Reads an operation of the contract. The cache key is the operation's filled path and query
 * (`/devices/d1`, `/tasks?limit=1000`), so the live feed refreshes it by path prefix (live.tsx);
 * null input: not yet.
 */
export function useOp<O extends OperationDef>(op: O, input: CallInput<O> | null, opts: Omit<UseQueryOptions<OpResponse<O>, Error, OpResponse<O>, string[]>, 'queryKey' | 'queryFn'> = {}) {
  const i = (input ?? {}) as { params?: Record<string, string>; query?: Record<string, string | number | boolean | undefined | null> };
  const key = input === null ? '' : operationPath(op, i.params) + qs(i.query ?? {});
  return useQuery<OpResponse<O>, Error, OpResponse<O>, string[]>({
    queryKey: [key],
    queryFn: ({ signal }) => call(op, input!, { signal }),
    enabled: input !== null && (opts.enabled ?? true),
    ...opts,
  });
}

/**
 * An action (POST, PATCH, DELETE…): runs it, then refreshes the cached reads whose path starts
 * with one of `refresh`. Its error is kept for the page to show.
 */
export function useAction<A, R = unknown>(fn: (arg: A) => Promise<R>, refresh: string[] = []) {
  const qc = useQueryClient();
  return useMutation<R, Error, A>({
    mutationFn: fn,
    onSuccess: async () => {
      if (refresh.length) await qc.invalidateQueries({ predicate: (q) => refresh.some((p) => String(q.queryKey[0]).startsWith(p)) });
    },
  });
}

/** Saves an API answer as a file (exports): fetched with the session, handed to the browser as a download. */
export async function download(path: string, filename: string): Promise<void> {
  const res = await request<Response>('GET', path, undefined, { raw: true });
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function qs(params: Record<string, string | number | boolean | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}
