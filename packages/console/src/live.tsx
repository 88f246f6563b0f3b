/**
 * Live updates: one server-sent event stream (GET /api/v1/live, read with fetch so the
 * session token goes in a header) tells which kinds of data changed, and for runs which tasks
 * and devices; the console refreshes the reads on screen that depend on them. Nothing is
 * pushed but topics and ids, so what a page shows always comes from the API and its
 * permission checks.
 *
 * A task's results are the one read that is not refreshed by prefix: with the devices named,
 * the task's page reads only their rows (useLiveRuns), never the whole fleet's results again.
 */
import { createContext, useContext, useEffect, useRef, useState, type ReactNode } from 'react';
import { useQueryClient, type QueryClient } from '@tanstack/react-query';
import type { LiveMessage } from '@garrison/protocol';
import { API, session } from './api.ts';

export type LiveTopic = 'runs' | 'presence' | 'events' | 'config' | 'deployments' | 'repository' | 'push' | 'server-tasks';
export type LiveState = 'connecting' | 'live' | 'offline';

/** Which cached API paths each topic makes stale. */
const STALE: Record<LiveTopic, string[]> = {
  runs: ['/tasks', '/runs', '/devices/'],
  // device.* events, among them a duplicate found or decided.
  presence: ['/devices', '/device-duplicates', '/groups', '/health', '/deployments'],
  events: ['/events'],
  config: ['/'],
  deployments: ['/deployments', '/devices/'],
  repository: ['/repository', '/deployments'],
  push: ['/push-installs', '/devices'],
  // A server task run was queued, progressed or ended (its task's next run moves too).
  'server-tasks': ['/server-tasks', '/server-task-runs'],
};

const LiveContext = createContext<LiveState>('connecting');
export const useLiveState = () => useContext(LiveContext);

/** The run changes of one message: by task, its devices (null: too many to name); `more`: others, unnamed. */
export type LiveRuns = NonNullable<LiveMessage['runs']>;
type RunsListener = (runs: LiveRuns) => void;
const runsListeners = new Set<RunsListener>();

/** Calls `fn` with the run changes of each live message (the task page patches its rows with them). */
export function useLiveRuns(fn: RunsListener): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    const l: RunsListener = (runs) => ref.current(runs);
    runsListeners.add(l);
    return () => {
      runsListeners.delete(l);
    };
  }, []);
}

/** A task's results and targets: kept fresh by its page from the named devices, when the message names them. */
const PAGE_PATCHED = /^\/tasks\/[^/?]+\/(results|targets)/;

function refreshRuns(qc: QueryClient, runs: LiveRuns): void {
  const named = new Set(runs.tasks.map((t) => `/tasks/${encodeURIComponent(t.taskId)}`));
  const devices = new Set(runs.tasks.flatMap((t) => (t.deviceIds ?? []).map((d) => `/devices/${encodeURIComponent(d)}`)));
  const manyDevices = runs.tasks.some((t) => t.deviceIds === null);
  void qc.invalidateQueries({
    predicate: (q) => {
      const key = String(q.queryKey[0]);
      // Lists of tasks (last run, failures) and runs: a page each.
      if (key === '/tasks' || key.startsWith('/tasks?') || key.startsWith('/runs')) return true;
      if (key.startsWith('/tasks/')) {
        if (PAGE_PATCHED.test(key)) return false;
        const task = key.replace(/^(\/tasks\/[^/?]+).*$/, '$1');
        return named.has(task);
      }
      if (key.startsWith('/devices/')) return manyDevices || devices.has(key.replace(/^(\/devices\/[^/?]+).*$/, '$1'));
      return false;
    },
    refetchType: 'active',
  });
  for (const l of runsListeners) l(runs);
}

export function LiveProvider({ children }: { children: ReactNode }) {
  const qc = useQueryClient();
  const [state, setState] = useState<LiveState>('connecting');
  useEffect(() => {
    let stopped = false;
    let ctrl: AbortController | null = null;
    let retry = 1000;
    let fallback: ReturnType<typeof setInterval> | null = null;
    const refresh = (topics: LiveTopic[], runs?: LiveRuns) => {
      // Runs with what changed named: only the reads of those tasks and devices.
      const detailed = runs && !runs.more ? topics.filter((t) => t !== 'runs') : topics;
      if (runs && !runs.more) refreshRuns(qc, runs);
      const prefixes = detailed.flatMap((t) => STALE[t] ?? []);
      if (!prefixes.length) return;
      void qc.invalidateQueries({ predicate: (q) => prefixes.some((p) => String(q.queryKey[0]).startsWith(p)), refetchType: 'active' });
    };
    const connect = async () => {
      while (!stopped) {
        ctrl = new AbortController();
        try {
          const token = session.token();
          if (!token) return;
          const res = await fetch(`${API}/live`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, signal: ctrl.signal, cache: 'no-store' });
          if (res.status === 401) {
            session.clear();
            return;
          }
          if (!res.ok || !res.body) throw new Error(`live stream: HTTP ${res.status}`);
          setState('live');
          if (fallback) clearInterval(fallback);
          fallback = null;
          retry = 1000;
          // Whatever changed while the stream was down is read again.
          refresh(['config']);
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = '';
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += value;
            let i: number;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              const block = buf.slice(0, i);
              buf = buf.slice(i + 2);
              const data = block
                .split('\n')
                .filter((l) => l.startsWith('data:'))
                .map((l) => l.slice(5).trim())
                .join('\n');
              if (!data) continue;
              try {
                const msg = JSON.parse(data) as { topics?: LiveTopic[]; runs?: LiveRuns };
                if (Array.isArray(msg.topics)) refresh(msg.topics, msg.runs && Array.isArray(msg.runs.tasks) ? msg.runs : undefined);
              } catch {
                /* a malformed line is skipped */
              }
            }
          }
        } catch {
          if (stopped) return;
        }
        if (stopped) return;
        setState('offline');
        // While the stream is down, pages still refresh every 15 s.
        fallback ??= setInterval(() => refresh(['config']), 15_000);
        await new Promise((r) => setTimeout(r, retry));
        retry = Math.min(retry * 2, 15_000);
      }
    };
    void connect();
    return () => {
      stopped = true;
      ctrl?.abort();
      if (fallback) clearInterval(fallback);
    };
  }, [qc]);
  return <LiveContext.Provider value={state}>{children}</LiveContext.Provider>;
}
