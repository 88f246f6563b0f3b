/**
 * What the server task pages share: the task types, the actions on one task (run now, stop,
 * enable, disable, copy, export, delete), and how a run's state, cause, progress and duration
 * are shown.
 */
import { useMemo } from 'react';
import type { QueryClient } from '@tanstack/react-query';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import {
  copyServerTask,
  deleteServerTask,
  disableServerTask,
  enableServerTask,
  listServerTasks,
  listServerTaskTypes,
  PAGE_LIMIT_MAX,
  runServerTask,
  stopServerTask,
  type ServerTask,
  type ServerTaskRun,
  type ServerTaskTypeInfo,
} from '@garrison/protocol';
import { allPages, call, download, qs, useOp } from '../api.ts';
import { StateBadge, useBusy, useToast } from '../ui.tsx';
import { formatDuration, plural, stateLabel } from '../format.ts';
import type { JsonSchema } from '../tasks/schema.ts';
import './server-tasks.css';

export const serverTaskPath = (id: string) => `/server-tasks/${encodeURIComponent(id)}`;

export function useServerTaskTypes() {
  const q = useOp(listServerTaskTypes, {}, { staleTime: 5 * 60_000 });
  const byType = useMemo(() => new Map((q.data ?? []).map((t) => [t.type, t])), [q.data]);
  return { q, byType };
}

/**
 * Every server task (a server has tens of them), read a thousand at a time: the list page
 * filters them in place, and after-task triggers name them. Its cache key is a path under
 * /server-tasks, so the live feed and refreshServerTasks reach it.
 */
export function useAllServerTasks(enabled = true) {
  return useQuery<ServerTask[], Error, ServerTask[], string[]>({
    queryKey: ['/server-tasks?all'],
    queryFn: ({ signal }) => allPages(listServerTasks, { query: { limit: PAGE_LIMIT_MAX } }, { signal }),
    enabled,
    staleTime: 30_000,
  });
}

export const schemaOf = (info: ServerTaskTypeInfo | undefined): JsonSchema | undefined => info?.settingsSchema as JsonSchema | undefined;

export const isActiveRun = (r: ServerTaskRun | undefined): boolean => r?.state === 'pending' || r?.state === 'running';

const CAUSES: Record<string, string> = {
  'run-now': 'run now',
  schedule: 'schedule',
  retry: 'retry',
  missed: 'missed run',
  resumed: 'resumed',
  'after-task': 'after another task',
  'repository-content': 'new repository content',
};
export const causeLabel = (cause: string): string => CAUSES[cause] ?? cause.replaceAll('-', ' ');

/** How long a run took, or has been running. */
export function runDuration(r: ServerTaskRun, now = Date.now()): string {
  if (!r.startedAt) return '';
  const end = r.endedAt ? Date.parse(r.endedAt) : now;
  return formatDuration(end - Date.parse(r.startedAt));
}

export function RunStateBadge({ run, attempt = true }: { run: ServerTaskRun; /** Show "try N" after a retry (off where a column shows it). */ attempt?: boolean }) {
  return (
    <>
      <StateBadge state={run.state} label={stateLabel(run.state)} />
      {run.state === 'running' && run.percent !== null ? <span className="small"> {run.percent} %</span> : null}
      {attempt && run.attempt > 1 ? <span className="muted small"> try {run.attempt}</span> : null}
    </>
  );
}

/** A run's progress as a bar (role progressbar) with its latest message. */
export function RunProgress({ run }: { run: ServerTaskRun }) {
  const pct = run.percent;
  const text = run.state === 'pending' ? 'waiting to start' : pct !== null ? `${pct} %` : 'running';
  return (
    <div className="run-progress">
      <div className="progress-bar" role="progressbar" aria-label="Run progress" aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct ?? undefined} aria-valuetext={run.message ? `${text}: ${run.message}` : text}>
        <span className={`seg state-${run.state} ${pct === null ? 'indeterminate' : ''}`} style={{ width: `${pct ?? (run.state === 'running' ? 100 : 0)}%` }} />
      </div>
      <p className="small" aria-hidden="true">
        <strong>{text}</strong>
        {run.message ? ` · ${run.message}` : null}
      </p>
    </div>
  );
}

export function exportFilename(name?: string): string {
  if (!name) return 'garrison-server-tasks.json';
  const slug = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
  return `garrison-server-task-${slug || 'export'}.json`;
}

const isServerTaskRead = (key: unknown) => /^\/server-task(s|-runs)(\/|\?|$)/.test(String(key));

export const refreshServerTasks = (qc: QueryClient) => qc.invalidateQueries({ predicate: (q) => isServerTaskRead(q.queryKey[0]) });

/** Keeps cached lists in step with a deletion, so that no row asks for a task that is gone. */
export function dropDeletedServerTasks(qc: QueryClient, ids: readonly string[]): void {
  const gone = new Set(ids);
  qc.setQueriesData<ServerTask[]>({ predicate: (q) => /^\/server-tasks(\?|$)/.test(String(q.queryKey[0])) }, (old) => (Array.isArray(old) ? old.filter((t) => !gone.has(t.id)) : old));
  qc.removeQueries({ predicate: (q) => ids.some((id) => String(q.queryKey[0]).startsWith(serverTaskPath(id))) });
}

/** The actions on one server task, each with a toast; errors are kept in `error` (delete throws, for ConfirmButton). */
export function useServerTaskActions(task: ServerTask) {
  const qc = useQueryClient();
  const toast = useToast();
  const busy = useBusy();
  const params = { id: task.id };
  const refresh = () => refreshServerTasks(qc);
  return {
    busy: busy.busy,
    error: busy.error,
    clearError: () => busy.setError(null),
    runNow: () =>
      busy.run(async () => {
        await call(runServerTask, { params });
        toast(`“${task.name}” queued to run`);
        await refresh();
      }),
    stop: () =>
      busy.run(async () => {
        const r = await call(stopServerTask, { params });
        toast(r.cancelled + r.stopping === 0 ? `“${task.name}” had no run to stop` : `“${task.name}”: ${plural(r.stopping, 'running run')} asked to stop, ${plural(r.cancelled, 'waiting run')} cancelled`);
        await refresh();
      }),
    setEnabled: (on: boolean) =>
      busy.run(async () => {
        await call(on ? enableServerTask : disableServerTask, { params });
        toast(on ? `“${task.name}” enabled` : `“${task.name}” disabled`);
        await refresh();
      }),
    copy: () =>
      busy.run(async () => {
        const c = await call(copyServerTask, { params, body: {} });
        toast(`Copied as “${c.name}”`);
        await refresh();
        return c;
      }),
    exportTask: () => busy.run(() => download(`/server-tasks/export${qs({ ids: task.id })}`, exportFilename(task.name))),
    /** Deletes; throws on failure. The caller has stopped its own reads of the task first. */
    remove: async () => {
      await call(deleteServerTask, { params });
      toast(`“${task.name}” deleted`);
      dropDeletedServerTasks(qc, [task.id]);
      await refresh();
    },
  };
}
