/**
 * One task: its properties, live progress, actions (run now, run again on the failed devices,
 * stop, enable/disable, edit, copy, export, delete), the latest result on each device a page
 * at a time (by state, by device, exportable as CSV) with its output, and its targets, read
 * when asked for. A live update that names devices reads only their rows.
 */
import { useMemo, useState } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { useQueryClient } from '@tanstack/react-query';
import {
  copyTask,
  deleteTask,
  disableTask,
  enableTask,
  getDevice,
  getRun,
  getTask,
  getTaskProgress,
  isFinalRunState,
  listProducts,
  listRuns,
  listTaskResults,
  listTaskTargets,
  runStates,
  runTaskNow,
  stopTask,
  type Run,
  type RunState,
  type Task,
  type TaskResult,
  type TaskResultPage,
  type TaskTarget,
} from '@garrison/protocol';
import { call, download, qs, useOp } from '../api.ts';
import { useLiveRuns } from '../live.tsx';
import { opKey, useAllTasks, useMorePages } from '../tasks/queries.ts';
import { Permission, taskGroups, useAccess } from '../access.tsx';
import { Async, ConfirmButton, CopyButton, DefinitionFacts, Dialog, Empty, ErrorMessage, Loading, Page, PageNav, ProgressBar, Section, StateBadge, Time, useBusy, useGroups, useToast } from '../ui.tsx';
import { RUN_STATE_ORDER, plural, stateLabel } from '../format.ts';
import { SettingsView } from '../tasks/SettingsView.tsx';
import { Labeled } from '../tasks/controls.tsx';
import { dropDeletedTasks } from '../tasks/cache.ts';
import { describeScheduleOptions, describeScope, describeTrigger, productLabel, withLifecycleTypes, type ProductInfo } from '../tasks/model.ts';
import '../tasks/tasks.css';

export function TaskDetails({ id }: { id: string }) {
  const path = `/tasks/${encodeURIComponent(id)}`;
  // While the task is being deleted its reads stop, so that no refresh asks for it after it is gone.
  const [deleting, setDeleting] = useState(false);
  const task = useOp(getTask, { params: { id } }, { enabled: !deleting });
  return (
    <Async q={task}>
      {(t) => <TaskView task={t} path={path} live={!deleting} setDeleting={setDeleting} />}
    </Async>
  );
}

function filenameFor(name: string): string {
  const slug = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
  return `garrison-task-${slug || 'export'}.json`;
}

function TaskView({ task, path, live, setDeleting }: { task: Task; path: string; live: boolean; setDeleting: (on: boolean) => void }) {
  const [, navigate] = useLocation();
  const qc = useQueryClient();
  const toast = useToast();
  const action = useBusy();
  const progress = useOp(getTaskProgress, { params: { id: task.id } }, { enabled: live });
  const productsQ = useOp(listProducts, {}, { staleTime: 60_000 });
  // The contract types a settings schema as unknown; it is a JSON schema.
  const products = productsQ.data as ProductInfo[] | undefined;
  const hasAfterTask = task.schedule.triggers.some((t) => t.type === 'after-task');
  const allTasks = useAllTasks(hasAfterTask);
  const groups = useGroups();
  const taskNames = useMemo(() => new Map((allTasks.data ?? []).map((t) => [t.id, t.name])), [allTasks.data]);
  const localDevice = task.scope.type === 'local' ? task.scope.deviceId : null;
  const localDeviceView = useOp(getDevice, localDevice ? { params: { id: localDevice } } : null, { staleTime: 60_000 });
  const refresh = () => qc.invalidateQueries({ predicate: (q) => String(q.queryKey[0]).startsWith('/tasks') });
  const typeInfo = withLifecycleTypes(products ?? [])
    .find((p) => p.id === task.product)
    ?.taskTypes.find((t) => t.id === task.type);
  // What the role allows on this task's groups (a global task's are server-wide).
  const access = useAccess();
  const groupsOfTask = taskGroups(task.scope, localDevice ? localDeviceView.data?.groupId : null);
  const mayRun = access.canIn(Permission.runTasks, groupsOfTask);
  const mayChange = access.canIn(Permission.manageTasks, groupsOfTask);

  const runNow = (only: { onlyFailed?: true; deviceIds?: string[] } = {}) =>
    action.run(async () => {
      const r = await call(runTaskNow, { params: { id: task.id }, body: only });
      toast(`${only.onlyFailed ? 'Run again' : 'Run'} on ${plural(r.targets, 'device')} (${r.delivered} connected)`);
      await refresh();
    });
  const stop = () =>
    action.run(async () => {
      const r = await call(stopTask, { params: { id: task.id } });
      toast(`Stop sent to ${plural(r.signalled, 'connected device')}; ${plural(r.cancelledPending, 'waiting run')} cancelled`);
      await refresh();
    });
  const setEnabled = (on: boolean) =>
    action.run(async () => {
      await call(on ? enableTask : disableTask, { params: { id: task.id } });
      toast(on ? `“${task.name}” enabled` : `“${task.name}” disabled`);
      await refresh();
    });
  const copy = () =>
    action.run(async () => {
      const c = await call(copyTask, { params: { id: task.id }, body: {} });
      toast(`Copied as “${c.name}”`);
      await refresh();
      navigate(`/tasks/${encodeURIComponent(c.id)}`);
    });
  const exportTask = () => action.run(() => download(`/tasks/export${qs({ ids: task.id })}`, filenameFor(task.name)));

  return (
    <Page
      title={task.name}
      subtitle={
        <>
          <Link href="/tasks">Tasks</Link> · {productLabel(withLifecycleTypes(products ?? []), task.product, task.type)} ·{' '}
          {task.enabled ? <span className="badge state-active">enabled</span> : <span className="badge state-cancelled">disabled</span>}
        </>
      }
      actions={
        <>
          {mayRun ? (
            <>
              <button type="button" className="primary" disabled={action.busy} onClick={() => void runNow()}>
                Run now
              </button>
              <button type="button" disabled={action.busy} onClick={() => void stop()}>
                Stop
              </button>
            </>
          ) : null}
          {mayChange ? (
            <>
              <button type="button" disabled={action.busy} onClick={() => void setEnabled(!task.enabled)}>
                {task.enabled ? 'Disable' : 'Enable'}
              </button>
              <Link href={`${path}/edit`} className="button">
                Edit
              </Link>
              <button type="button" disabled={action.busy} onClick={() => void copy()}>
                Copy
              </button>
            </>
          ) : null}
          <button type="button" disabled={action.busy} onClick={() => void exportTask()}>
            Export
          </button>
          {mayChange ? (
            <ConfirmButton
              label="Delete"
              danger
              question={
                <p>
                  Delete the task “{task.name}”? Agents drop it at their next contact; its run history stays in the event log.
                </p>
              }
              onConfirm={async () => {
                setDeleting(true);
                try {
                  await call(deleteTask, { params: { id: task.id } });
                } catch (err) {
                  setDeleting(false);
                  throw err;
                }
                toast(`“${task.name}” deleted`);
                dropDeletedTasks(qc, [task.id]);
                navigate('/tasks');
                await qc.invalidateQueries({ predicate: (q) => String(q.queryKey[0]).startsWith('/tasks') });
              }}
            />
          ) : null}
        </>
      }
    >
      <ErrorMessage error={action.error} onDismiss={() => action.setError(null)} />

      <Section title="Progress">
        {progress.data ? (
          <>
            <ProgressBar progress={progress.data} />
            <p className="muted small">
              {plural(progress.data.targets, 'target device')}
              {progress.data.targets > 0 ? (progress.data.finished ? ' · every target has finished its latest run' : ' · runs in progress or waiting') : ''}
            </p>
          </>
        ) : progress.error ? (
          <ErrorMessage error={progress.error} />
        ) : (
          <Loading />
        )}
      </Section>

      <div className="grid">
        <Section title="Properties">
          <dl className="props">
            <dt>Product</dt>
            <dd>{products?.find((p) => p.id === task.product)?.name ?? task.product}</dd>
            <dt>Task type</dt>
            <dd>{typeInfo?.name ?? task.type}</dd>
            {task.description ? (
              <>
                <dt>Description</dt>
                <dd>{task.description}</dd>
              </>
            ) : null}
            <dt>Scope</dt>
            <dd>
              {localDevice ? (
                <>
                  Local: <Link href={`/devices/${encodeURIComponent(localDevice)}`}>{localDeviceView.data?.name ?? localDevice}</Link>
                </>
              ) : (
                describeScope(task.scope, groups.data)
              )}
            </dd>
            <dt>Triggers</dt>
            <dd>
              <ul className="plain-list">
                {task.schedule.triggers.map((t, i) => (
                  <li key={i}>{describeTrigger(t, taskNames)}</li>
                ))}
              </ul>
            </dd>
            <dt>Schedule options</dt>
            <dd>{describeScheduleOptions(task.schedule).join(' · ')}</dd>
            <dt>State</dt>
            <dd>{task.enabled ? 'Enabled' : 'Disabled: runs neither on schedule nor on events'}</dd>
            <dt>Created by</dt>
            <dd>{task.origin === 'device' ? 'the device’s local user' : 'an administrator'}</dd>
            <DefinitionFacts definition={task} />
          </dl>
        </Section>
        <Section title="Settings">
          <SettingsView settings={task.settings} schema={typeInfo?.settingsSchema} />
        </Section>
      </div>

      <Results task={task} live={live} mayRun={mayRun} busy={action.busy} onRunAgain={(only) => void runNow(only)} />
      <Targets task={task} live={live} count={progress.data?.targets} />
    </Page>
  );
}

const PAGE = 100;
/** Device ids per read of their rows (they go in the query string). */
const IDS_PER_READ = 100;

/** The results page: by state (with the count of each over the whole task), by device name, a page at a time. */
function Results({ task, live, mayRun, busy, onRunAgain }: { task: Task; live: boolean; mayRun: boolean; busy: boolean; onRunAgain: (only: { onlyFailed?: true; deviceIds?: string[] }) => void }) {
  const qc = useQueryClient();
  const initialState = new URLSearchParams(useSearch()).get('state') ?? '';
  const [state, setState] = useState<string>(runStates.includes(initialState as RunState) ? initialState : '');
  const [filter, setFilter] = useState('');
  // The cursors of the pages before the current one (previous goes back one).
  const [cursors, setCursors] = useState<string[]>([]);
  const [open, setOpen] = useState<TaskResult | null>(null);
  const search = filter.trim();
  const query = { limit: PAGE, output: false, ...(state ? { state: state as RunState } : {}), ...(search ? { search } : {}), ...(cursors.length ? { cursor: cursors[cursors.length - 1]! } : {}) };
  const input = { params: { id: task.id }, query };
  const results = useOp(listTaskResults, input, { enabled: live, placeholderData: (prev) => prev });
  const key = opKey(listTaskResults, input);
  const page = results.data;
  const reset = () => setCursors([]);

  // A live update that names devices: only their rows are read again, with the counts; the
  // whole current page (a hundred rows) only when it is filtered, is the last page, or too
  // many devices changed to name.
  useLiveRuns((runs) => {
    if (!page || !live) return;
    const entry = runs.tasks.find((t) => t.taskId === task.id);
    if (!entry) return;
    const onPage = new Set(page.items.map((r) => r.deviceId));
    const named = entry.deviceIds ?? [];
    const wholePage = entry.deviceIds === null || state || search || (page.nextCursor === null && named.some((d) => !onPage.has(d)));
    if (wholePage) {
      void qc.invalidateQueries({ queryKey: [key] });
      return;
    }
    const changed = named.filter((d) => onPage.has(d)).slice(0, IDS_PER_READ);
    void call(listTaskResults, { params: { id: task.id }, query: changed.length ? { deviceIds: changed.join(','), output: false, limit: IDS_PER_READ } : { limit: 1, output: false } })
      .then((fresh) => {
        const rows = new Map(changed.length ? fresh.items.map((r) => [r.deviceId, r]) : []);
        qc.setQueryData<TaskResultPage>([key], (old) =>
          old ? { ...old, states: fresh.states, total: Object.values(fresh.states).reduce((a, b) => a + b, 0), items: old.items.map((r) => rows.get(r.deviceId) ?? r) } : old,
        );
      })
      .catch(() => void qc.invalidateQueries({ queryKey: [key] }));
  });

  const states = page?.states ?? {};
  const all = Object.values(states).reduce((a, b) => a + b, 0);
  const failed = (states.failed ?? 0) + (states.timed_out ?? 0);
  const present = RUN_STATE_ORDER.filter((s) => s.state !== 'notRun' && ((states[s.state] ?? 0) > 0 || s.state === state));
  return (
    <Section
      title="Results"
      actions={
        <>
          {mayRun && failed > 0 ? (
            <button type="button" disabled={busy} onClick={() => onRunAgain({ onlyFailed: true })}>
              Run again on {plural(failed, 'failed device')}
            </button>
          ) : null}
          {all > 0 ? (
            <button type="button" onClick={() => void download(`/tasks/${encodeURIComponent(task.id)}/results/export${qs({ state, search })}`, `garrison-results-${task.id}.csv`)}>
              Export CSV
            </button>
          ) : null}
        </>
      }
    >
      <Async q={results}>
        {(r) =>
          all === 0 && !state && !search ? (
            <Empty>No device has run this task yet.</Empty>
          ) : (
            <>
              <div className="toolbar">
                <Labeled label="State">
                  <select
                    value={state}
                    onChange={(e) => {
                      setState(e.target.value);
                      reset();
                    }}
                  >
                    <option value="">All states ({all.toLocaleString()})</option>
                    {present.map((s) => (
                      <option key={s.state} value={s.state}>
                        {s.label} ({(states[s.state] ?? 0).toLocaleString()})
                      </option>
                    ))}
                  </select>
                </Labeled>
                <Labeled label="Device">
                  <input
                    type="search"
                    value={filter}
                    onChange={(e) => {
                      setFilter(e.target.value);
                      reset();
                    }}
                  />
                </Labeled>
                <p className="muted small" aria-live="polite">
                  {r.total !== undefined && r.total !== all ? `${r.total.toLocaleString()} of ${plural(all, 'device')}` : plural(all, 'device')}
                  {r.items.length ? ` · showing ${(cursors.length * PAGE + 1).toLocaleString()}–${(cursors.length * PAGE + r.items.length).toLocaleString()}` : ''}
                </p>
              </div>
              {r.items.length === 0 ? (
                <Empty>No result matches.</Empty>
              ) : (
                <div className="table-wrap">
                  <table>
                    <caption className="visually-hidden">Latest run of “{task.name}” on each device</caption>
                    <thead>
                      <tr>
                        <th scope="col">Device</th>
                        <th scope="col">State</th>
                        <th scope="col" className="num">
                          Done
                        </th>
                        <th scope="col">Started</th>
                        <th scope="col">Ended</th>
                        <th scope="col" className="num">
                          Exit code
                        </th>
                        <th scope="col">Reason</th>
                        <th scope="col">Output</th>
                      </tr>
                    </thead>
                    <tbody>
                      {r.items.map((x) => (
                        <tr key={x.deviceId}>
                          <td>
                            <Link href={`/devices/${encodeURIComponent(x.deviceId)}`}>{x.deviceName}</Link>
                          </td>
                          <td>
                            <StateBadge state={x.state} label={stateLabel(x.state)} />
                            {x.attempt > 1 ? <span className="muted small"> try {x.attempt}</span> : null}
                          </td>
                          <td className="num">{x.percent !== null ? `${x.percent} %` : isFinalRunState(x.state) ? '' : '—'}</td>
                          <td className="nowrap">
                            <Time iso={x.startedAt} />
                          </td>
                          <td className="nowrap">
                            <Time iso={x.endedAt} />
                          </td>
                          <td className="num">{x.exitCode ?? ''}</td>
                          <td>{x.reason ?? ''}</td>
                          <td>
                            <button type="button" className="link" onClick={() => setOpen(x)} aria-label={`Output of ${x.deviceName}`}>
                              Output
                            </button>
                          </td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
              <PageNav label="Result pages" cursors={cursors} setCursors={setCursors} nextCursor={r.nextCursor} />
            </>
          )
        }
      </Async>
      <Dialog wide open={open !== null} title={open ? `${task.name} on ${open.deviceName}` : 'Output'} onClose={() => setOpen(null)}>
        {open ? <RunDetails runId={open.id} /> : null}
      </Dialog>
    </Section>
  );
}

function RunDetails({ runId }: { runId: string }) {
  const q = useOp(getRun, { params: { id: runId } });
  return <Async q={q}>{(run) => <RunFacts run={run} />}</Async>;
}

function RunFacts({ run }: { run: Run }) {
  const history = useOp(listRuns, { query: { taskId: run.taskId, deviceId: run.deviceId, limit: 20 } });
  return (
    <div className="dialog-body">
      <dl className="props">
        <dt>State</dt>
        <dd>
          <StateBadge state={run.state} label={stateLabel(run.state)} />
          {run.percent !== null ? ` ${run.percent} %` : null}
        </dd>
        <dt>Cause</dt>
        <dd>{run.cause}</dd>
        <dt>Try</dt>
        <dd>{run.attempt}</dd>
        <dt>Created</dt>
        <dd>
          <Time iso={run.createdAt} />
        </dd>
        <dt>Started</dt>
        <dd>
          <Time iso={run.startedAt} />
        </dd>
        <dt>Ended</dt>
        <dd>
          <Time iso={run.endedAt} />
        </dd>
        <dt>Exit code</dt>
        <dd>{run.exitCode ?? '—'}</dd>
        {run.reason ? (
          <>
            <dt>Reason</dt>
            <dd>{run.reason}</dd>
          </>
        ) : null}
        <dt>Run id</dt>
        <dd>
          <code>{run.id}</code>
        </dd>
      </dl>
      <h3>Output (last part)</h3>
      {run.outputTail ? (
        <>
          <pre tabIndex={0} aria-label="Output">
            {run.outputTail}
          </pre>
          <CopyButton text={run.outputTail} label="Copy output" />
        </>
      ) : (
        <p className="muted">No output.</p>
      )}
      <h3>Earlier runs on this device</h3>
      <Async q={history}>
        {(list) => {
          const earlier = list.items.filter((r) => r.id !== run.id);
          return earlier.length === 0 ? (
            <p className="muted">None.</p>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">State</th>
                    <th scope="col">Cause</th>
                    <th scope="col">Started</th>
                    <th scope="col">Ended</th>
                    <th scope="col" className="num">
                      Exit code
                    </th>
                    <th scope="col">Reason</th>
                  </tr>
                </thead>
                <tbody>
                  {earlier.map((r) => (
                    <tr key={r.id}>
                      <td>
                        <StateBadge state={r.state} label={stateLabel(r.state)} />
                      </td>
                      <td>{r.cause}</td>
                      <td className="nowrap">
                        <Time iso={r.startedAt ?? r.createdAt} />
                      </td>
                      <td className="nowrap">
                        <Time iso={r.endedAt} />
                      </td>
                      <td className="num">{r.exitCode ?? ''}</td>
                      <td>{r.reason ?? ''}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          );
        }}
      </Async>
    </div>
  );
}

/** The task's targets, read when shown, a page at a time, each with its latest run. */
function Targets({ task, live, count }: { task: Task; live: boolean; count: number | undefined }) {
  const [openList, setOpenList] = useState(false);
  const [filter, setFilter] = useState('');
  const search = filter.trim();
  const targets = useMorePages(listTaskTargets, openList && live ? { params: { id: task.id }, query: { limit: PAGE, ...(search ? { search } : {}) } } : null);
  const pages = (targets.data?.pages ?? []) as { items: TaskTarget[] }[];
  return (
    <Section
      title="Targets"
      actions={
        <button type="button" aria-expanded={openList} onClick={() => setOpenList((o) => !o)}>
          {openList ? 'Hide targets' : 'Show targets'}
        </button>
      }
    >
      <p className="muted">{count === undefined ? 'Counting targets…' : `${plural(count, 'device')} targeted now.`}</p>
      {openList ? (
        <>
          {(count ?? 0) > 10 ? (
            <div className="toolbar">
              <Labeled label="Find a target">
                <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)} />
              </Labeled>
            </div>
          ) : null}
          <Async q={targets}>
            {() =>
              targets.items.length === 0 ? (
                <Empty>{search ? 'No target matches.' : 'No targets.'}</Empty>
              ) : (
                <>
                  <div className="table-wrap">
                    <table>
                      <thead>
                        <tr>
                          <th scope="col">Device</th>
                          <th scope="col">Host name</th>
                          <th scope="col">Group</th>
                          <th scope="col">Latest run</th>
                        </tr>
                      </thead>
                      {pages.map((p, i) => (
                        <TargetRows key={i} task={task} targets={p.items} />
                      ))}
                    </table>
                  </div>
                  {targets.hasNextPage ? (
                    <p>
                      <button type="button" disabled={targets.isFetchingNextPage} onClick={() => void targets.fetchNextPage()}>
                        {targets.isFetchingNextPage ? 'Loading…' : `Show ${PAGE} more`}
                      </button>
                    </p>
                  ) : null}
                </>
              )
            }
          </Async>
        </>
      ) : null}
    </Section>
  );
}

/** One page of targets, with the latest run of each (one read for the page's devices). */
function TargetRows({ task, targets }: { task: Task; targets: TaskTarget[] }) {
  const groups = useGroups();
  const ids = targets.map((d) => d.id).slice(0, IDS_PER_READ);
  const results = useOp(listTaskResults, ids.length ? { params: { id: task.id }, query: { deviceIds: ids.join(','), output: false, limit: IDS_PER_READ } } : null);
  const latest = new Map((results.data?.items ?? []).map((r) => [r.deviceId, r]));
  const groupPath = (id: string) => groups.data?.find((g) => g.id === id)?.path ?? '';
  return (
    <tbody>
      {targets.map((d) => {
        const r = latest.get(d.id);
        return (
          <tr key={d.id}>
            <td>
              <Link href={`/devices/${encodeURIComponent(d.id)}`}>{d.name}</Link>
            </td>
            <td>{d.hostname}</td>
            <td>{groupPath(d.groupId)}</td>
            <td>{r ? <StateBadge state={r.state} label={stateLabel(r.state)} /> : results.data ? <StateBadge state="notRun" label="not run" /> : '…'}</td>
          </tr>
        );
      })}
    </tbody>
  );
}
