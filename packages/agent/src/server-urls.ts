/**
 * The server addresses an agent knows (issue 14: several server instances on one database).
 *
 * An agent keeps an ordered list of addresses of the same fleet. All of them are pinned to
 * the one CA received at enrolment: instances of a fleet share their data folder's TLS
 * material, so a second address is another way to the same servers, never another trust.
 *
 * credential.json keeps the list in `serverUrls` and its first entry in `serverUrl` as well,
 * so that an older agent (a rollback of a self-update) and the tools that read `serverUrl`
 * still find an address; a file with `serverUrl` alone (written before the list existed) is a
 * list of one.
 */
import { requireHttps, type FetchLike } from '@garrison/protocol/tls';

/**
 * The addresses given with `--server`, which may be repeated and may hold comma-separated
 * lists: in order, trailing slashes removed, duplicates dropped (the first place is kept).
 * Throws TrustError (TLS_REQUIRED) for an address that is not https://.
 */
export function parseServerUrls(values: readonly string[] | string | undefined): string[] {
  const given = values === undefined ? [] : typeof values === 'string' ? [values] : values;
  const out: string[] = [];
  for (const value of given) {
    for (const part of value.split(',')) {
      const url = part.trim().replace(/\/+$/, '');
      if (!url) continue;
      requireHttps(url);
      if (!out.includes(url)) out.push(url);
    }
  }
  return out;
}

/** The stored addresses of a credential: `serverUrls` when it has a list, else its one `serverUrl`. */
export function storedServerUrls(cred: { serverUrl?: unknown; serverUrls?: unknown }): string[] {
  const list = Array.isArray(cred.serverUrls) ? cred.serverUrls.filter((u): u is string => typeof u === 'string' && u !== '') : [];
  if (list.length) return [...new Set(list.map((u) => u.replace(/\/+$/, '')))];
  return typeof cred.serverUrl === 'string' && cred.serverUrl ? [cred.serverUrl.replace(/\/+$/, '')] : [];
}

/** The credential with this list: `serverUrls`, and its first address as `serverUrl` for older readers. */
export function withServerUrls<T extends object>(cred: T, urls: readonly string[]): T & { serverUrl: string; serverUrls: string[] } {
  if (!urls.length) throw new Error('a server address list cannot be empty');
  return { ...cred, serverUrl: urls[0]!, serverUrls: [...urls] };
}

/**
 * A fetch() over the list: a request to one of the addresses (the base followed by a path) is
 * sent to the address `current()` names first, then to the next ones in order, moving on only
 * when no answer came at all (connection refused or reset, TLS failure, time-out). An HTTP
 * answer, even an error, is the server's and is returned. `answered(i)` learns which address
 * answered. Other URLs are fetched as given.
 *
 * Retrying on another address is safe for what the agent sends: reports are idempotent by run
 * id and sequence, check-ins are, a credential rotation sent twice is refused by its one-time
 * challenge (the agent then keeps its current credential, as after any refused rotation), and
 * downloads are reads. A request body must be a string or buffer (it is sent again).
 */
export function failoverFetch(fetcher: FetchLike, urls: () => readonly string[], current: () => number, answered: (index: number) => void = () => {}): FetchLike {
  return async (url, init) => {
    const list = urls();
    const base = list.find((b) => url === b || url.startsWith(`${b}/`) || url.startsWith(`${b}?`));
    if (base === undefined || list.length < 2) return fetcher(url, init);
    const rest = url.slice(base.length);
    const c = current();
    const start = c >= 0 && c < list.length ? c : list.indexOf(base);
    let last: unknown;
    for (let k = 0; k < list.length; k++) {
      const i = (start + k) % list.length;
      try {
        const res = await fetcher(list[i]! + rest, init);
        answered(i);
        return res;
      } catch (err) {
        // The caller's own deadline or cancellation ends the request everywhere (an address
        // that does not answer at all uses up the caller's time-out; a refused one does not).
        if (init?.signal?.aborted) throw err;
        last = err;
      }
    }
    throw last;
  };
}
