/**
 * The server task list: what the administration server does itself (database maintenance,
 * backup, reports, repository download, installation packages), each with its schedule, next
 * run, last run and actions; creating, importing and exporting server tasks.
 */
import { useMemo, useState } from 'react';
import { Link } from 'wouter';
import { useQueryClient } from '@tanstack/react-query';
import { importServerTasks, listRunsOfServerTask, type ServerTask } from '@garrison/protocol';
import { useOp } from '../api.ts';
import { Permission, useAccess } from '../access.tsx';
import { Async, ConfirmButton, Empty, ErrorMessage, Page, Time, useBusy } from '../ui.tsx';
import { formatAgo } from '../format.ts';
import { describeTriggers } from '../tasks/model.ts';
import { Labeled } from '../tasks/controls.tsx';
import { RunStateBadge, exportFilename, isActiveRun, refreshServerTasks, serverTaskPath, useAllServerTasks, useServerTaskActions, useServerTaskTypes } from '../server-tasks/common.tsx';
import { useImportExport } from '../tasks/ImportExport.tsx';
import '../tasks/tasks.css';

export function ServerTasks() {
  const tasks = useAllServerTasks();
  const { byType } = useServerTaskTypes();
  const [text, setText] = useState('');
  const busy = useBusy();
  const qc = useQueryClient();
  const needle = text.trim().toLowerCase();
  const list = useMemo(
    () =>
      [...(tasks.data ?? [])]
        .filter((t) => !needle || t.name.toLowerCase().includes(needle) || t.description.toLowerCase().includes(needle) || t.type.includes(needle))
        .sort((a, b) => a.name.localeCompare(b.name)),
    [tasks.data, needle],
  );
  const taskNames = useMemo(() => new Map((tasks.data ?? []).map((t) => [t.id, t.name])), [tasks.data]);
  const manage = useAccess().canOnRoot(Permission.manageServerTasks);
  const io = useImportExport<ServerTask>({ busy, noun: 'server task', importOp: importServerTasks, exportPath: '/server-tasks/export', exportFile: exportFilename(), hrefOf: serverTaskPath, refresh: () => refreshServerTasks(qc), canImport: manage });


  return (
    <Page
      title="Server tasks"
      subtitle="Work the administration server does itself: database maintenance, backup, reports, repository download, installation packages."
      actions={
        <>
          {manage ? (
            <Link href="/server-tasks/new" className="button primary">
              New server task
            </Link>
          ) : null}
          {io.actions}
        </>
      }
    >
      <ErrorMessage error={busy.error} onDismiss={() => busy.setError(null)} />
      {io.result}

      <div className="card">
        <div className="toolbar" role="search" aria-label="Filter server tasks">
          <Labeled label="Find">
            <input type="search" value={text} onChange={(e) => setText(e.target.value)} placeholder="Name, description or type" />
          </Labeled>
        </div>
        <Async q={tasks}>
          {() =>
            list.length === 0 ? (
              <Empty>{tasks.data?.length ? 'No server task matches.' : manage ? 'No server tasks yet. Create one with New server task, or import an export file.' : 'No server tasks yet.'}</Empty>
            ) : (
              <div className="table-wrap">
                <table>
                  <caption className="visually-hidden">Server tasks</caption>
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">Type</th>
                      <th scope="col">Schedule</th>
                      <th scope="col">Next run</th>
                      <th scope="col">Last run</th>
                      <th scope="col">Enabled</th>
                      <th scope="col">Actions</th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((t) => (
                      <ServerTaskRow key={t.id} task={t} typeName={byType.get(t.type)?.name ?? t.type} taskNames={taskNames} manage={manage} />
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

function ServerTaskRow({ task, typeName, taskNames, manage }: { task: ServerTask; typeName: string; taskNames: ReadonlyMap<string, string>; manage: boolean }) {
  const [deleting, setDeleting] = useState(false);
  const runs = useOp(listRunsOfServerTask, { params: { id: task.id }, query: { limit: 1 } }, { enabled: !deleting });
  const last = runs.data?.items[0];
  const act = useServerTaskActions(task);
  const active = isActiveRun(last);
  return (
    <tr>
      <td>
        <Link href={serverTaskPath(task.id)} className="task-name">
          {task.name}
        </Link>
        {task.description ? <div className="muted small">{task.description.length > 120 ? `${task.description.slice(0, 117)}…` : task.description}</div> : null}
        {act.error ? <ErrorMessage error={act.error} onDismiss={act.clearError} /> : null}
      </td>
      <td>{typeName}</td>
      <td>{describeTriggers(task.schedule, taskNames)}</td>
      <td className="nowrap">{task.nextRunAt ? <Time iso={task.nextRunAt} /> : <span className="muted">{task.enabled ? 'on demand or events' : 'disabled'}</span>}</td>
      <td className="summary-cell">
        {runs.error ? (
          <span className="muted small">unavailable</span>
        ) : !runs.data ? (
          <span className="muted small">…</span>
        ) : last ? (
          <>
            <RunStateBadge run={last} /> <span className="muted small">{formatAgo(last.endedAt ?? last.startedAt ?? last.createdAt)}</span>
            {last.summary || (active && last.message) ? <div className="small">{active ? last.message : last.summary}</div> : null}
          </>
        ) : (
          <span className="muted small">never run</span>
        )}
      </td>
      <td>{task.enabled ? <span className="badge state-active">enabled</span> : <span className="badge state-cancelled">disabled</span>}</td>
      <td>
        <div className="row-actions">
          {manage ? (
            <>
              <button type="button" disabled={act.busy} aria-label={`Run now: ${task.name}`} onClick={() => void act.runNow()}>
                Run now
              </button>
              <button type="button" disabled={act.busy || !active} aria-label={`Stop ${task.name}`} onClick={() => void act.stop()}>
                Stop
              </button>
              <button type="button" disabled={act.busy} aria-label={`${task.enabled ? 'Disable' : 'Enable'} ${task.name}`} onClick={() => void act.setEnabled(!task.enabled)}>
                {task.enabled ? 'Disable' : 'Enable'}
              </button>
              <button type="button" disabled={act.busy} aria-label={`Copy ${task.name}`} onClick={() => void act.copy()}>
                Copy
              </button>
            </>
          ) : null}
          <button type="button" disabled={act.busy} aria-label={`Export ${task.name}`} onClick={() => void act.exportTask()}>
            Export
          </button>
          {manage ? (
            <ConfirmButton
              label="Delete"
              ariaLabel={`Delete ${task.name}`}
              danger
              disabled={act.busy}
              question={<p>Delete the server task “{task.name}”? A run in progress is stopped; its history stays in the event log.</p>}
              onConfirm={async () => {
                setDeleting(true);
                try {
                  await act.remove();
                } catch (err) {
                  setDeleting(false);
                  throw err;
                }
              }}
            />
          ) : null}
        </div>
      </td>
    </tr>
  );
}
