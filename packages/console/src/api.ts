/**
 * The console's only way to the server: the same versioned REST API as the CLI, with the
 * session token as a bearer token. Errors become ApiError with the API's stable code, so
 * pages show a clear message per code instead of a raw status.
 */
import { useMutation, useQuery, useQueryClient, type UseQueryOptions } from '@tanstack/react-query';
import { errorCodeInfo, isErrorCode, type ErrorBody } from '@garrison/protocol';

const TOKEN_KEY = 'garrison.session';
export const API = '/api/v1';

export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: unknown;
  readonly requestId: string | undefined;
  constructor(code: string, message: string, status: number, details?: unknown, requestId?: string) {
    super(message);
    this.code = code;
    this.status = status;
    this.details = details;
    this.requestId = requestId;
  }
}

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

export async function request<T>(method: string, path: string, body?: unknown, init: { signal?: AbortSignal; raw?: boolean; contentType?: string } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const token = session.token();
  if (token) headers.authorization = `Bearer ${token}`;
  let payload: BodyInit | undefined;
  if (body !== undefined) {
    if (body instanceof Blob || body instanceof ArrayBuffer || body instanceof FormData) payload = body as BodyInit;
    else {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    if (init.contentType) headers['content-type'] = init.contentType;
  }
  const res = await fetch(path.startsWith('/') && !path.startsWith(API) ? `${API}${path}` : path, { method, headers, body: payload, ...(init.signal ? { signal: init.signal } : {}) });
  if (!res.ok) {
    let parsed: ErrorBody | undefined;
    try {
      parsed = (await res.json()) as ErrorBody;
    } catch {
      /* not JSON: a proxy's page */
    }
    const e = parsed?.error;
    const err = new ApiError(e?.code ?? (res.status === 401 ? 'UNAUTHENTICATED' : 'INTERNAL'), e?.message ?? `HTTP ${res.status}`, res.status, e?.details, e?.requestId);
    if (res.status === 401 && token && path !== '/session') session.clear();
    throw err;
  }
  if (init.raw) return res as unknown as T;
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('json') ? await res.json() : await res.text()) as T;
}

export const get = <T,>(path: string, signal?: AbortSignal) => request<T>('GET', path, undefined, signal ? { signal } : {});
export const post = <T,>(path: string, body?: unknown) => request<T>('POST', path, body ?? {});
export const patch = <T,>(path: string, body: unknown) => request<T>('PATCH', path, body);
export const put = <T,>(path: string, body: unknown) => request<T>('PUT', path, body);
export const del = (path: string) => request<void>('DELETE', path);

/**
 * Reads an API path; the path is the cache key, so the live feed can refresh what is on
 * screen by path prefix (see live.ts).
 */
export function useApi<T>(path: string | null, opts: Omit<UseQueryOptions<T, Error, T, string[]>, 'queryKey' | 'queryFn'> = {}) {
  return useQuery<T, Error, T, string[]>({
    queryKey: [path ?? ''],
    queryFn: ({ signal }) => get<T>(path!, signal),
    enabled: path !== null && (opts.enabled ?? true),
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
