/**
 * Pieces shared by the administration pages (repository, deployments, installers, push
 * installation, secrets): a stacked bar of counts by state, accessible tabs, expiry choices.
 */
import { useQuery } from '@tanstack/react-query';
import { PAGE_LIMIT_MAX, type OpResponse } from '@garrison/protocol';
import type { CallInput, PagedOperation } from '@garrison/client';
import { allPages, ApiError } from '../api.ts';
import { StackedBar, useGroups } from '../ui.tsx';
import './admin.css';

export { Field } from '../ui.tsx';

export const BRANCHES = ['current', 'previous', 'evaluation'] as const;

export interface BarItem {
  state: string;
  label: string;
  n: number;
}

/** Counts by state as one stacked bar with a legend (ui.tsx's StackedBar, fed by state). */
export function StateBar({ items, compact, what = 'items' }: { items: BarItem[]; compact?: boolean; what?: string }) {
  return <StackedBar label={what} segments={items.map((i) => ({ key: i.state, label: i.label, n: i.n }))} compact={compact} what={what} />;
}

export { Tabs, tabPanelProps } from '../ui.tsx';

/** The root group's id ("My Organization"), once the groups are read. */
export function useRootGroupId(): string {
  const groups = useGroups();
  return groups.data?.find((g) => g.parentId === null)?.id ?? groups.data?.[0]?.id ?? '';
}

/** Expiry choices in minutes ('' for none). */
export const EXPIRY_CHOICES: { value: string; label: string }[] = [
  { value: '60', label: '1 hour' },
  { value: '1440', label: '1 day' },
  { value: '10080', label: '7 days' },
  { value: '43200', label: '30 days' },
  { value: '131400', label: '3 months' },
  { value: '525600', label: '1 year' },
];

/** An optional whole number from a text field: undefined when empty, NaN when not a number. */
export function optionalInt(text: string): number | undefined {
  const t = text.trim();
  if (!t) return undefined;
  return /^-?\d+$/.test(t) ? Number(t) : Number.NaN;
}

/**
 * A check made before sending, as the error the server would answer, so that ErrorMessage
 * shows it the same way (with the code the server would use).
 */
export function checkError(message: string, code: 'VALIDATION_FAILED' | 'HOSTS_INVALID' | 'CREDENTIALS_INVALID' = 'VALIDATION_FAILED'): ApiError {
  return new ApiError(code, message, 400);
}

/** `host:port`, with brackets for IPv6. */
export function hostTarget(h: { address: string; port: number }): string {
  return `${h.address.includes(':') ? `[${h.address}]` : h.address}:${h.port}`;
}

/**
 * Every item of a small paged list (administrators, roles, API tokens, secrets), as one
 * react-query read whose key is the list's path, so that actions refreshing that path
 * (useAction's `refresh`, the live feed) reload it.
 */
export function useAllPages<O extends PagedOperation>(op: O, opts: { enabled?: boolean; staleTime?: number } = {}) {
  return useQuery<ItemsOf<O>, Error, ItemsOf<O>, string[]>({
    queryKey: [op.path],
    queryFn: ({ signal }) => allPages(op, { query: { limit: PAGE_LIMIT_MAX } } as CallInput<O>, { signal }) as Promise<ItemsOf<O>>,
    ...(opts.staleTime !== undefined ? { staleTime: opts.staleTime } : {}),
    enabled: opts.enabled ?? true,
  });
}
type ItemsOf<O extends PagedOperation> = OpResponse<O> extends { items: infer T } ? T : never;
