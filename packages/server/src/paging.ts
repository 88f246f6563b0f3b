/**
 * The one paging convention of the API (protocol/src/contract.ts, ADR 0021): an opaque cursor
 * that holds the sort key of the last item of the page, and a limit. Keyset, not offset: a page
 * stays right while devices are added or removed before it, and costs the same at item 100,000
 * as at item 0.
 *
 * The cursor carries only the sort key, never a filter or a permission: the request's filters
 * and the caller's reach apply again to every page, so a forged cursor can only skip items.
 */
import { PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, type Page, type PageRequest } from '@garrison/protocol';
import { AppError } from './errors.ts';

export type CursorKey = readonly (string | number | null)[];

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/** The sort key a cursor holds, or null without one; VALIDATION_FAILED for one this server could not have given. */
export function decodeCursor(cursor: string | undefined, arity: number | null): CursorKey | null {
  if (cursor === undefined) return null;
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    key = undefined;
  }
  if (!Array.isArray(key) || (arity !== null && key.length !== arity) || !key.every((k) => k === null || typeof k === 'string' || (typeof k === 'number' && Number.isFinite(k)))) {
    throw new AppError('VALIDATION_FAILED', 'cursor is not one this list gave: pass the nextCursor of the previous page unchanged', { issues: [{ path: '/cursor', message: 'not a cursor of this list' }] });
  }
  return key as CursorKey;
}

export function pageLimit(req: PageRequest): number {
  return Math.min(Math.max(1, Math.trunc(req.limit ?? PAGE_LIMIT_DEFAULT)), PAGE_LIMIT_MAX);
}

/** Compares two sort keys member by member (null first, numbers before strings). */
export function compareKeys(a: CursorKey, b: CursorKey): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i] ?? null;
    const y = b[i] ?? null;
    if (x === y) continue;
    if (x === null) return -1;
    if (y === null) return 1;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    if (typeof x === 'number') return -1;
    if (typeof y === 'number') return 1;
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

export interface SortSpec<T> {
  /** The item's sort key; its last member must make it unique (the id). */
  key(item: T): CursorKey;
  /** Descending order (newest first). */
  descending?: boolean;
}

/**
 * One page of a list held in memory (the catalog's groups, tasks, devices): the items are
 * sorted by the key, those after the cursor taken. `total` is the filtered list's length.
 */
export function pageOf<T, V = T>(items: readonly T[], sort: SortSpec<T>, req: PageRequest, view?: (item: T) => V): Page<V> {
  const limit = pageLimit(req);
  // An empty list has no key to compare arity with: any well-formed cursor reads as its end.
  const after = decodeCursor(req.cursor, items.length ? sort.key(items[0]!).length : null);
  const sign = sort.descending ? -1 : 1;
  const keyed = items.map((item) => ({ item, key: sort.key(item) }));
  keyed.sort((a, b) => sign * compareKeys(a.key, b.key));
  let start = 0;
  if (after) {
    // The first item strictly after the cursor, by binary search over the sorted keys.
    let lo = 0;
    let hi = keyed.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sign * compareKeys(keyed[mid]!.key, after) <= 0) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  const slice = keyed.slice(start, start + limit);
  const more = start + limit < keyed.length;
  return {
    items: slice.map((k) => (view ? view(k.item) : (k.item as unknown as V))),
    nextCursor: more && slice.length ? encodeCursor(slice[slice.length - 1]!.key) : null,
    total: keyed.length,
  };
}
