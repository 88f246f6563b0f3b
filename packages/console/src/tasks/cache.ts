/** Keeping cached task lists in step with a deletion, so no row asks for a task that is gone. */
import type { QueryClient } from '@tanstack/react-query';
import type { Task } from '@garrison/protocol';

export function dropDeletedTasks(qc: QueryClient, ids: readonly string[]): void {
  const gone = new Set(ids);
  qc.setQueriesData<Task[]>({ predicate: (q) => /^\/tasks(\?|$)/.test(String(q.queryKey[0])) }, (old) => (Array.isArray(old) ? old.filter((t) => !gone.has(t.id)) : old));
  qc.removeQueries({ predicate: (q) => ids.some((id) => String(q.queryKey[0]).startsWith(`/tasks/${encodeURIComponent(id)}`)) });
}
