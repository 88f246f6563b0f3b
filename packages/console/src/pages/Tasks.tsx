/**
 * The task list: filters (product, scope, group), each task's type, scope, triggers, state
 * and live progress; creating, importing and exporting tasks (all or the selected ones).
 */
import { useMemo, useState } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { useQueryClient } from '@tanstack/react-query';
import { finalRunStates, type DeviceView, type GroupView, type Task, type TaskProgress } from '@garrison/protocol';
import { del, download, post, qs, useApi } from '../api.ts';
import { Permission, useAccess } from '../access.tsx';
import { Async, ConfirmButton, Empty, ErrorMessage, GroupSelect, Page, ProgressBar, useBusy, useGroups, useToast } from '../ui.tsx';
import { plural } from '../format.ts';
import { describeScope, describeTriggers, productLabel, withLifecycleTypes, type ProductInfo } from '../tasks/model.ts';
import { dropDeletedTasks } from '../tasks/cache.ts';
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

  const tasks = useApi<Task[]>(`/tasks${qs({ product, scopeType, groupId })}`);
  const productsQ = useApi<ProductInfo[]>('/products', { staleTime: 60_000 });
  const products = useMemo(() => withLifecycleTypes(productsQ.data ?? []), [productsQ.data]);
  const groups = useGroups();
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const busy = useBusy();
  const toast = useToast();
  const qc = useQueryClient();

  const needle = text.trim().toLowerCase();
  const list = useMemo(
    () =>
      [...(tasks.data ?? [])]
        .filter((t) => !needle || t.name.toLowerCase().includes(needle) || t.description.toLowerCase().includes(needle))
        .sort((a, b) => a.name.localeCompare(b.name)),
    [tasks.data, needle],
  );
  const taskNames = useMemo(() => new Map((tasks.data ?? []).map((t) => [t.id, t.name])), [tasks.data]);
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
  const io = useImportExport<Task>({ busy, noun: 'task', importPath: '/tasks/import', exportPath: '/tasks/export', exportFile: 'garrison-tasks.json', hrefOf: (id) => `/tasks/${encodeURIComponent(id)}`, refresh: refresh, canImport: manage });


  const bulk = (what: 'enable' | 'disable') =>
    busy.run(async () => {
      for (const t of chosen) await post(`/tasks/${encodeURIComponent(t.id)}/${what}`, {});
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
            <input type="search" value={text} onChange={(e) => setText(e.target.value)} placeholder="Name or description" />
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
                        await del(`/tasks/${encodeURIComponent(t.id)}`);
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
                {tasks.data?.length ? 'No task matches.' : product || scopeType || groupId ? 'No task matches these filters.' : manage ? 'No tasks yet. Create one with New task, or import an export file.' : 'No tasks yet.'}
              </Empty>
            ) : (
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
                        <td className="progress-cell">
                          <ProgressCell id={t.id} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )
          }
        </Async>
      </div>
    </Page>
  );
}

function ScopeCell({ task, groups }: { task: Task; groups: GroupView[] | undefined }) {
  const deviceId = task.scope.type === 'local' ? task.scope.deviceId : null;
  const device = useApi<DeviceView>(deviceId ? `/devices/${encodeURIComponent(deviceId)}` : null, { staleTime: 60_000 });
  if (deviceId)
    return (
      <>
        Local: <Link href={`/devices/${encodeURIComponent(deviceId)}`}>{device.data?.name ?? deviceId}</Link>
      </>
    );
  return <>{describeScope(task.scope, groups)}</>;
}

function ProgressCell({ id }: { id: string }) {
  const p = useApi<TaskProgress>(`/tasks/${encodeURIComponent(id)}/progress`);
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
