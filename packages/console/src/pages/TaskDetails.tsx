/**
 * One task: its properties, live progress, actions (run now, stop, enable/disable, edit,
 * copy, export, delete), the latest result on each device with its output, and its targets.
 */
import { useMemo, useState } from 'react';
import { Link, useLocation } from 'wouter';
import { useQueryClient } from '@tanstack/react-query';
import { isFinalRunState, type DeviceSummary, type DeviceView, type Run, type RunNowResult, type Task, type TaskProgress } from '@garrison/protocol';
import { del, download, post, qs, useApi } from '../api.ts';
import { Permission, taskGroups, useAccess } from '../access.tsx';
import { Async, ConfirmButton, CopyButton, DefinitionFacts, Dialog, Empty, ErrorMessage, Loading, Page, ProgressBar, Section, StateBadge, Time, useBusy, useGroups, useToast } from '../ui.tsx';
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
  const task = useApi<Task>(path, { enabled: !deleting });
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
  const progress = useApi<TaskProgress>(`${path}/progress`, { enabled: live });
  const results = useApi<Run[]>(`${path}/results`, { enabled: live });
  const targets = useApi<DeviceSummary[]>(`${path}/targets`, { enabled: live });
  const products = useApi<ProductInfo[]>('/products', { staleTime: 60_000 });
  const hasAfterTask = task.schedule.triggers.some((t) => t.type === 'after-task');
  const allTasks = useApi<Task[]>(hasAfterTask ? '/tasks' : null, { staleTime: 30_000 });
  const groups = useGroups();
  const taskNames = useMemo(() => new Map((allTasks.data ?? []).map((t) => [t.id, t.name])), [allTasks.data]);
  const names = useMemo(() => new Map((targets.data ?? []).map((d) => [d.id, d.name])), [targets.data]);
  const refresh = () => qc.invalidateQueries({ predicate: (q) => String(q.queryKey[0]).startsWith('/tasks') });
  const typeInfo = withLifecycleTypes(products.data ?? [])
    .find((p) => p.id === task.product)
    ?.taskTypes.find((t) => t.id === task.type);
  const localDevice = task.scope.type === 'local' ? task.scope.deviceId : null;
  // What the role allows on this task's groups (a global task's are server-wide).
  const access = useAccess();
  const groupsOfTask = taskGroups(task.scope, localDevice ? targets.data?.find((d) => d.id === localDevice)?.groupId : null);
  const mayRun = access.canIn(Permission.runTasks, groupsOfTask);
  const mayChange = access.canIn(Permission.manageTasks, groupsOfTask);

  const runNow = () =>
    action.run(async () => {
      const r = await post<RunNowResult>(`${path}/run`, {});
      toast(`Run on ${plural(r.targets, 'device')} (${r.delivered} connected)`);
      await refresh();
    });
  const stop = () =>
    action.run(async () => {
      const r = await post<{ cancelledPending: number; signalled: number }>(`${path}/stop`, {});
      toast(`Stop sent to ${plural(r.signalled, 'connected device')}; ${plural(r.cancelledPending, 'waiting run')} cancelled`);
      await refresh();
    });
  const setEnabled = (on: boolean) =>
    action.run(async () => {
      await post<Task>(`${path}/${on ? 'enable' : 'disable'}`, {});
      toast(on ? `“${task.name}” enabled` : `“${task.name}” disabled`);
      await refresh();
    });
  const copy = () =>
    action.run(async () => {
      const c = await post<Task>(`${path}/copy`, {});
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
          <Link href="/tasks">Tasks</Link> · {productLabel(withLifecycleTypes(products.data ?? []), task.product, task.type)} ·{' '}
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
                  await del(path);
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
            <dd>{products.data?.find((p) => p.id === task.product)?.name ?? task.product}</dd>
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
                  Local: <LocalDeviceLink id={localDevice} known={names.get(localDevice)} />
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

      <Results task={task} results={results} names={names} />
      <Targets targets={targets} results={results.data} />
    </Page>
  );
}

function LocalDeviceLink({ id, known }: { id: string; known?: string | undefined }) {
  const d = useApi<DeviceView>(known ? null : `/devices/${encodeURIComponent(id)}`, { staleTime: 60_000 });
  return <Link href={`/devices/${encodeURIComponent(id)}`}>{known ?? d.data?.name ?? id}</Link>;
}

/** Names of devices that ran the task but are no longer among its targets, read one by one (a few at most). */
function DeviceCell({ id, name, lookup }: { id: string; name: string | undefined; lookup: boolean }) {
  const d = useApi<DeviceView>(!name && lookup ? `/devices/${encodeURIComponent(id)}` : null, { staleTime: 5 * 60_000 });
  return <Link href={`/devices/${encodeURIComponent(id)}`}>{name ?? d.data?.name ?? id}</Link>;
}

const PAGE = 200;
const MAX_LOOKUPS = 50;

function Results({ task, results, names }: { task: Task; results: { data: Run[] | undefined; error: Error | null; isPending: boolean }; names: ReadonlyMap<string, string> }) {
  const [state, setState] = useState('');
  const [filter, setFilter] = useState('');
  const [limit, setLimit] = useState(PAGE);
  const [open, setOpen] = useState<string | null>(null);
  const runs = results.data ?? [];
  const missing = runs.filter((r) => !names.has(r.deviceId)).length;
  const needle = filter.trim().toLowerCase();
  const shown = runs.filter((r) => (!state || r.state === state) && (!needle || (names.get(r.deviceId) ?? r.deviceId).toLowerCase().includes(needle)));
  const openRun = runs.find((r) => r.id === open);
  const present = RUN_STATE_ORDER.filter((s) => s.state !== 'notRun' && runs.some((r) => r.state === s.state));
  return (
    <Section title="Results">
      <Async q={results}>
        {() =>
          runs.length === 0 ? (
            <Empty>No device has run this task yet.</Empty>
          ) : (
            <>
              <div className="toolbar">
                <Labeled label="State">
                  <select value={state} onChange={(e) => setState(e.target.value)}>
                    <option value="">All states</option>
                    {present.map((s) => (
                      <option key={s.state} value={s.state}>
                        {s.label}
                      </option>
                    ))}
                  </select>
                </Labeled>
                <Labeled label="Device">
                  <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)} />
                </Labeled>
                <p className="muted small">
                  {shown.length === runs.length ? plural(runs.length, 'device') : `${shown.length} of ${plural(runs.length, 'device')}`}
                </p>
              </div>
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
                    {shown.slice(0, limit).map((r) => (
                      <tr key={r.id}>
                        <td>
                          <DeviceCell id={r.deviceId} name={names.get(r.deviceId)} lookup={missing <= MAX_LOOKUPS} />
                        </td>
                        <td>
                          <StateBadge state={r.state} label={stateLabel(r.state)} />
                          {r.attempt > 1 ? <span className="muted small"> try {r.attempt}</span> : null}
                        </td>
                        <td className="num">{r.percent !== null ? `${r.percent} %` : isFinalRunState(r.state) ? '' : '—'}</td>
                        <td className="nowrap">
                          <Time iso={r.startedAt} />
                        </td>
                        <td className="nowrap">
                          <Time iso={r.endedAt} />
                        </td>
                        <td className="num">{r.exitCode ?? ''}</td>
                        <td>{r.reason ?? ''}</td>
                        <td>
                          <button type="button" className="link" onClick={() => setOpen(r.id)} aria-label={`Output of ${names.get(r.deviceId) ?? r.deviceId}`}>
                            {r.outputTail ? 'Output' : 'Details'}
                          </button>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              {shown.length > limit ? (
                <p>
                  <button type="button" onClick={() => setLimit((l) => l + PAGE)}>
                    Show {Math.min(PAGE, shown.length - limit)} more
                  </button>
                </p>
              ) : null}
            </>
          )
        }
      </Async>
      <Dialog wide open={openRun !== undefined} title={openRun ? `${task.name} on ${names.get(openRun.deviceId) ?? openRun.deviceId}` : 'Output'} onClose={() => setOpen(null)}>
        {openRun ? <RunDetails run={openRun} /> : null}
      </Dialog>
    </Section>
  );
}

function RunDetails({ run }: { run: Run }) {
  const history = useApi<Run[]>(`/runs${qs({ taskId: run.taskId, deviceId: run.deviceId, limit: 20 })}`);
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
          const earlier = list.filter((r) => r.id !== run.id);
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

function Targets({ targets, results }: { targets: { data: DeviceSummary[] | undefined; error: Error | null; isPending: boolean }; results: Run[] | undefined }) {
  const groups = useGroups();
  const [openList, setOpenList] = useState(false);
  const [limit, setLimit] = useState(PAGE);
  const [filter, setFilter] = useState('');
  const latest = useMemo(() => new Map((results ?? []).map((r) => [r.deviceId, r])), [results]);
  const groupPath = (id: string) => groups.data?.find((g) => g.id === id)?.path ?? '';
  const list = targets.data ?? [];
  const needle = filter.trim().toLowerCase();
  const shown = list.filter((d) => !needle || d.name.toLowerCase().includes(needle) || d.hostname.toLowerCase().includes(needle));
  return (
    <Section
      title="Targets"
      actions={
        <button type="button" aria-expanded={openList} onClick={() => setOpenList((o) => !o)}>
          {openList ? 'Hide targets' : 'Show targets'}
        </button>
      }
    >
      <Async q={targets}>
        {() => (
          <>
            <p className="muted">{plural(list.length, 'device')} targeted now.</p>
            {openList && list.length > 0 ? (
              <>
                {list.length > 10 ? (
                  <div className="toolbar">
                    <Labeled label="Find a target">
                      <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)} />
                    </Labeled>
                  </div>
                ) : null}
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
                    <tbody>
                      {shown.slice(0, limit).map((d) => {
                        const r = latest.get(d.id);
                        return (
                          <tr key={d.id}>
                            <td>
                              <Link href={`/devices/${encodeURIComponent(d.id)}`}>{d.name}</Link>
                            </td>
                            <td>{d.hostname}</td>
                            <td>{groupPath(d.groupId)}</td>
                            <td>{r ? <StateBadge state={r.state} label={stateLabel(r.state)} /> : <StateBadge state="notRun" label="not run" />}</td>
                          </tr>
                        );
                      })}
                    </tbody>
                  </table>
                </div>
                {shown.length > limit ? (
                  <p>
                    <button type="button" onClick={() => setLimit((l) => l + PAGE)}>
                      Show {Math.min(PAGE, shown.length - limit)} more
                    </button>
                  </p>
                ) : null}
              </>
            ) : null}
          </>
        )}
      </Async>
    </Section>
  );
}
