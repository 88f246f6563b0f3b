/**
 * The task list: filters (name, product, scope, group), each task's type, scope, triggers,
 * state, last and next run, failures and live progress, a page at a time; creating, importing
 * and exporting tasks (all or the selected ones).
 */
import { useDeferredValue, useMemo, useState } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { useQueryClient } from '@tanstack/react-query';
import { deleteTask, disableTask, enableTask, importTasks, finalRunStates, getDevice, getTaskProgress, listProducts, listTasks, type GroupView, type Task } from '@garrison/protocol';
import { call, download, qs, useOp } from '../api.ts';
import { Permission, useAccess } from '../access.tsx';
import { Async, ConfirmButton, Empty, ErrorMessage, GroupSelect, Page, ProgressBar, Time, useBusy, useGroups, useToast } from '../ui.tsx';
import { plural } from '../format.ts';
import { describeScope, describeTriggers, productLabel, withLifecycleTypes, type ProductInfo } from '../tasks/model.ts';
import { dropDeletedTasks } from '../tasks/cache.ts';
import { useAllTasks, useMorePages } from '../tasks/queries.ts';
import { Labeled } from '../tasks/controls.tsx';
import { useImportExport } from '../tasks/ImportExport.tsx';
import '../tasks/tasks.css';

const SCOPE_TYPES = [
  { value: '', label: 'All scopes' },
  { value: 'local', label: 'Local' },
  { value: 'group', label: 'Group' },
  { value: 'global', label: 'Global' },
];

export function Tasks() {
  const search = useSearch();
  const [location, navigate] = useLocation();
  const params = new URLSearchParams(search);
  const product = params.get('product') ?? '';
  const scopeType = params.get('scopeType') ?? '';
  const groupId = params.get('groupId') ?? '';
  const [text, setText] = useState('');
  const setFilter = (patch: Record<string, string>) => {
    const next = { product, scopeType, groupId, ...patch };
    navigate(`${location}${qs(next)}`, { replace: true });
  };

  const needle = useDeferredValue(text.trim());
  const tasks = useMorePages(listTasks, {
    query: { ...(product ? { product } : {}), ...(scopeType ? { scopeType: scopeType as 'local' | 'group' | 'global' } : {}), ...(groupId ? { groupId } : {}), ...(needle ? { search: needle } : {}) },
  });
  const productsQ = useOp(listProducts, {}, { staleTime: 60_000 });
  // The contract types a settings schema as unknown; it is a JSON schema.
  const products = useMemo(() => withLifecycleTypes((productsQ.data ?? []) as ProductInfo[]), [productsQ.data]);
  const groups = useGroups();
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const busy = useBusy();
  const toast = useToast();
  const qc = useQueryClient();

  // The server sorts by name and pages; what is loaded so far is the list.
  const list = tasks.items;
  const afterTask = list.some((t) => t.schedule.triggers.some((x) => x.type === 'after-task'));
  const allTasks = useAllTasks(afterTask);
  const taskNames = useMemo(() => new Map([...(allTasks.data ?? []), ...list].map((t) => [t.id, t.name])), [allTasks.data, list]);
  // Only what is still listed counts as selected.
  const chosen = list.filter((t) => selected.has(t.id));
  const allChosen = list.length > 0 && chosen.length === list.length;
  const toggle = (id: string, on: boolean) =>
    setSelected((s) => {
      const n = new Set(s);
      if (on) n.add(id);
      else n.delete(id);
      return n;
    });
  const refresh = () => qc.invalidateQueries({ predicate: (q) => String(q.queryKey[0]).startsWith('/tasks') });
  const manage = useAccess().can(Permission.manageTasks);
  const io = useImportExport<Task>({ busy, noun: 'task', importOp: importTasks, exportPath: '/tasks/export', exportFile: 'garrison-tasks.json', hrefOf: (id) => `/tasks/${encodeURIComponent(id)}`, refresh: refresh, canImport: manage });


  const bulk = (what: 'enable' | 'disable') =>
    busy.run(async () => {
      for (const t of chosen) await call(what === 'enable' ? enableTask : disableTask, { params: { id: t.id } });
      toast(`${plural(chosen.length, 'task')} ${what}d`);
      await refresh();
    });

  return (
    <Page
      title="Tasks"
      subtitle="Work run on devices: scripts, scans, updates, start and stop, on schedules, at events or on demand."
      actions={
        <>
          {manage ? (
            <Link href="/tasks/new" className="button primary">
              New task
            </Link>
          ) : null}
          {io.actions}
        </>
      }
    >
      <ErrorMessage error={busy.error} onDismiss={() => busy.setError(null)} />
      {io.result}

      <div className="card">
        <div className="toolbar" role="search" aria-label="Filter tasks">
          <Labeled label="Find">
            <input type="search" value={text} onChange={(e) => setText(e.target.value)} placeholder="Part of the name" />
          </Labeled>
          <Labeled label="Product">
            <select value={product} onChange={(e) => setFilter({ product: e.target.value })}>
              <option value="">All products</option>
              {products.map((p) => (
                <option key={p.id} value={p.id}>
                  {p.name}
                </option>
              ))}
            </select>
          </Labeled>
          <Labeled label="Scope">
            <select value={scopeType} onChange={(e) => setFilter({ scopeType: e.target.value, groupId: e.target.value === 'group' || e.target.value === '' ? groupId : '' })}>
              {SCOPE_TYPES.map((s) => (
                <option key={s.value} value={s.value}>
                  {s.label}
                </option>
              ))}
            </select>
          </Labeled>
          {scopeType === '' || scopeType === 'group' ? <GroupSelect label="Assigned to group" value={groupId} onChange={(g) => setFilter({ groupId: g })} allowEmpty emptyLabel="Any group" /> : null}
        </div>

        {chosen.length ? (
          <div className="toolbar" role="group" aria-label="Selected tasks">
            <span>{plural(chosen.length, 'task')} selected</span>
            <button type="button" disabled={busy.busy} onClick={() => void busy.run(() => download(`/tasks/export${qs({ ids: chosen.map((t) => t.id).join(',') })}`, 'garrison-tasks.json'))}>
              Export selected
            </button>
            {manage ? (
              <>
                <button type="button" disabled={busy.busy} onClick={() => void bulk('enable')}>
                  Enable
                </button>
                <button type="button" disabled={busy.busy} onClick={() => void bulk('disable')}>
                  Disable
                </button>
                <ConfirmButton
                  label="Delete selected"
                  danger
                  disabled={busy.busy}
                  question={
                    <>
                      <p>Delete these {plural(chosen.length, 'task')}? Agents drop them at their next contact.</p>
                      <ul>
                        {chosen.slice(0, 20).map((t) => (
                          <li key={t.id}>{t.name}</li>
                        ))}
                        {chosen.length > 20 ? <li>…and {chosen.length - 20} more</li> : null}
                      </ul>
                    </>
                  }
                  onConfirm={async () => {
                    const done: string[] = [];
                    try {
                      for (const t of chosen) {
                        await call(deleteTask, { params: { id: t.id } });
                        done.push(t.id);
                      }
                    } finally {
                      dropDeletedTasks(qc, done);
                    }
                    toast(`${plural(done.length, 'task')} deleted`);
                    setSelected(new Set());
                    await refresh();
                  }}
                />
              </>
            ) : null}
            <button type="button" className="link" onClick={() => setSelected(new Set())}>
              Clear selection
            </button>
          </div>
        ) : null}

        <Async q={tasks}>
          {() =>
            list.length === 0 ? (
              <Empty>
                {needle ? 'No task matches.' : product || scopeType || groupId ? 'No task matches these filters.' : manage ? 'No tasks yet. Create one with New task, or import an export file.' : 'No tasks yet.'}
              </Empty>
            ) : (
              <>
              <p className="muted small">{tasks.total !== undefined && tasks.total > list.length ? `${list.length} of ${plural(tasks.total, 'task')}` : plural(list.length, 'task')}</p>
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col" className="select-cell">
                        <input
                          type="checkbox"
                          aria-label="Select all tasks"
                          checked={allChosen}
                          ref={(el) => {
                            if (el) el.indeterminate = chosen.length > 0 && !allChosen;
                          }}
                          onChange={(e) => setSelected(e.target.checked ? new Set(list.map((t) => t.id)) : new Set())}
                        />
                      </th>
                      <th scope="col">Name</th>
                      <th scope="col">Product · type</th>
                      <th scope="col">Scope</th>
                      <th scope="col">Triggers</th>
                      <th scope="col">Enabled</th>
                      <th scope="col">Last run</th>
                      <th scope="col">Next run</th>
                      <th scope="col" className="num">
                        Failures
                      </th>
                      <th scope="col">Progress</th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((t) => (
                      <tr key={t.id} className={selected.has(t.id) ? 'selected' : undefined}>
                        <td className="select-cell">
                          <input type="checkbox" aria-label={`Select ${t.name}`} checked={selected.has(t.id)} onChange={(e) => toggle(t.id, e.target.checked)} />
                        </td>
                        <td>
                          <Link href={`/tasks/${encodeURIComponent(t.id)}`} className="task-name">
                            {t.name}
                          </Link>
                          {t.description ? <div className="muted small">{t.description.length > 120 ? `${t.description.slice(0, 117)}…` : t.description}</div> : null}
                        </td>
                        <td>{productLabel(products, t.product, t.type)}</td>
                        <td>
                          <ScopeCell task={t} groups={groups.data} />
                        </td>
                        <td>{describeTriggers(t.schedule, taskNames)}</td>
                        <td>{t.enabled ? <span className="badge state-active">enabled</span> : <span className="badge state-cancelled">disabled</span>}</td>
                        <td className="nowrap">{t.lastRunAt ? <Time iso={t.lastRunAt} /> : <span className="muted small">never</span>}</td>
                        <td className="nowrap">{t.nextRunAt ? <Time iso={t.nextRunAt} /> : <span className="muted small">{t.enabled ? 'on events or on demand' : '—'}</span>}</td>
                        <td className="num">
                          {t.failures > 0 ? (
                            <Link href={`/tasks/${encodeURIComponent(t.id)}?state=failed`} className="badge state-failed" aria-label={`${plural(t.failures, 'failed device')} of ${t.name}`}>
                              {t.failures}
                            </Link>
                          ) : (
                            '0'
                          )}
                        </td>
                        <td className="progress-cell">
                          <ProgressCell id={t.id} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              {tasks.hasNextPage ? (
                <p>
                  <button type="button" disabled={tasks.isFetchingNextPage} onClick={() => void tasks.fetchNextPage()}>
                    {tasks.isFetchingNextPage ? 'Loading…' : 'Load more'}
                  </button>
                </p>
              ) : null}
              </>
            )
          }
        </Async>
      </div>
    </Page>
  );
}

function ScopeCell({ task, groups }: { task: Task; groups: GroupView[] | undefined }) {
  const deviceId = task.scope.type === 'local' ? task.scope.deviceId : null;
  const device = useOp(getDevice, deviceId ? { params: { id: deviceId } } : null, { staleTime: 60_000 });
  if (deviceId)
    return (
      <>
        Local: <Link href={`/devices/${encodeURIComponent(deviceId)}`}>{device.data?.name ?? deviceId}</Link>
      </>
    );
  return <>{describeScope(task.scope, groups)}</>;
}

function ProgressCell({ id }: { id: string }) {
  const p = useOp(getTaskProgress, { params: { id } });
  if (p.error) return <span className="muted small">unavailable</span>;
  if (!p.data) return <span className="muted small">…</span>;
  const { targets, states } = p.data;
  const done = finalRunStates.reduce((n, s) => n + (states[s] ?? 0), 0);
  const running = states.running ?? 0;
  return (
    <>
      <ProgressBar progress={p.data} compact />
      <small className="muted progress-text">
        {targets === 0 ? 'no targets' : `${done}/${targets} finished${running ? ` · ${running} running` : ''}`}
      </small>
    </>
  );
}
