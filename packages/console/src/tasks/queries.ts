/**
 * Reads of tasks and their lists. Cache keys start with the API path (and its query), as
 * useOp's do, so that the live feed's prefix invalidation reaches them (live.tsx).
 */
import { useInfiniteQuery, useQuery, type InfiniteData } from '@tanstack/react-query';
import { listTasks, operationPath, PAGE_LIMIT_MAX, type OperationDef, type OpResponse, type Page, type TaskListItem } from '@garrison/protocol';
import type { CallInput, PagedOperation } from '@garrison/client';
import { allPages, call, qs } from '../api.ts';

/** Every task the caller may see (after-task names and pickers), read a thousand at a time. */
export function useAllTasks(enabled = true) {
  return useQuery<TaskListItem[], Error, TaskListItem[], string[]>({
    queryKey: ['/tasks?all'],
    queryFn: ({ signal }) => allPages(listTasks, { query: { limit: PAGE_LIMIT_MAX } }, { signal }),
    enabled,
    staleTime: 30_000,
  });
}

type Query = Record<string, string | number | boolean | undefined | null>;

/** The cache key of an operation's read, as useOp makes it. */
export function opKey<O extends OperationDef>(op: O, input: CallInput<O>): string {
  const i = input as { params?: Record<string, string>; query?: Query };
  return operationPath(op, i.params) + qs(i.query ?? {});
}

/**
 * A list read page after page as the user asks for more ("Load more"): the pages read so far
 * stay, and a live refresh reads them again (only those shown, each a bounded page).
 */
export function useMorePages<O extends PagedOperation>(op: O, input: CallInput<O> | null) {
  const i = (input ?? {}) as { params?: Record<string, string>; query?: Query };
  const q = useInfiniteQuery<OpResponse<O>, Error, InfiniteData<OpResponse<O>, string | null>, string[], string | null>({
    queryKey: [input === null ? '' : opKey(op, input)],
    queryFn: ({ pageParam, signal }) => call(op, { ...i, query: { ...i.query, ...(pageParam ? { cursor: pageParam } : {}) } } as CallInput<O>, { signal }),
    initialPageParam: null,
    getNextPageParam: (last) => (last as Page<unknown>).nextCursor,
    enabled: input !== null,
  });
  const pages = (q.data?.pages ?? []) as Page<ItemOf<O>>[];
  return {
    ...q,
    items: pages.flatMap((p) => p.items),
    total: pages[0]?.total,
    first: q.data?.pages[0],
  };
}
type ItemOf<O extends OperationDef> = OpResponse<O> extends Page<infer T> ? T : never;
