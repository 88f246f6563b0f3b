/**
 * One server task: its status (the running run's live progress and message, or the last
 * run), properties, schedule and settings, actions (run now, stop, enable/disable, edit,
 * copy, export, delete) and its run history, each run expandable to its result and output.
 */
import { Fragment, useMemo, useState } from 'react';
import { Link, useLocation } from 'wouter';
import { getServerTask, listRunsOfServerTask, type ServerTask, type ServerTaskRun } from '@garrison/protocol';
import { useOp } from '../api.ts';
import { useMorePages } from '../tasks/queries.ts';
import { Async, ConfirmButton, CopyButton, DefinitionFacts, Empty, ErrorMessage, Page, Section, Time } from '../ui.tsx';
import { Permission, useAccess } from '../access.tsx';
import { formatTime } from '../format.ts';
import { SettingsView } from '../tasks/SettingsView.tsx';
import { describeScheduleOptions, describeTrigger } from '../tasks/model.ts';
import { RunProgress, RunStateBadge, causeLabel, isActiveRun, runDuration, schemaOf, serverTaskPath, useAllServerTasks, useServerTaskActions, useServerTaskTypes } from '../server-tasks/common.tsx';
import '../tasks/tasks.css';

export function ServerTaskDetails({ id }: { id: string }) {
  // While the task is being deleted its reads stop, so that no refresh asks for it after it is gone.
  const [deleting, setDeleting] = useState(false);
  const task = useOp(getServerTask, { params: { id } }, { enabled: !deleting });
  return <Async q={task}>{(t) => <ServerTaskView task={t} live={!deleting} setDeleting={setDeleting} />}</Async>;
}

const PAGE = 50;

function ServerTaskView({ task, live, setDeleting }: { task: ServerTask; live: boolean; setDeleting: (on: boolean) => void }) {
  const [, navigate] = useLocation();
  const path = serverTaskPath(task.id);
  const { byType } = useServerTaskTypes();
  const info = byType.get(task.type);
  // Newest first, PAGE at a time; older pages on request. The reads stop while the task is deleted.
  const runs = useMorePages(listRunsOfServerTask, live ? { params: { id: task.id }, query: { limit: PAGE } } : null);
  const hasAfterTask = task.schedule.triggers.some((t) => t.type === 'after-task');
  const all = useAllServerTasks(hasAfterTask);
  const taskNames = useMemo(() => new Map((all.data ?? []).map((t) => [t.id, t.name])), [all.data]);
  const act = useServerTaskActions(task);
  const latest = runs.items[0];
  const active = isActiveRun(latest);
  const manage = useAccess().canOnRoot(Permission.manageServerTasks);

  return (
    <Page
      title={task.name}
      subtitle={
        <>
          <Link href="/server-tasks">Server tasks</Link> · {info?.name ?? task.type} ·{' '}
          {task.enabled ? <span className="badge state-active">enabled</span> : <span className="badge state-cancelled">disabled</span>}
        </>
      }
      actions={
        <>
          {manage ? (
            <>
              <button type="button" className="primary" disabled={act.busy} onClick={() => void act.runNow()}>
                Run now
              </button>
              <button type="button" disabled={act.busy || !active} onClick={() => void act.stop()}>
                Stop
              </button>
              <button type="button" disabled={act.busy} onClick={() => void act.setEnabled(!task.enabled)}>
                {task.enabled ? 'Disable' : 'Enable'}
              </button>
              <Link href={`${path}/edit`} className="button">
                Edit
              </Link>
              <button
                type="button"
                disabled={act.busy}
                onClick={async () => {
                  const c = await act.copy();
                  if (c) navigate(serverTaskPath(c.id));
                }}
              >
                Copy
              </button>
            </>
          ) : null}
          <button type="button" disabled={act.busy} onClick={() => void act.exportTask()}>
            Export
          </button>
          {manage ? (
            <ConfirmButton
              label="Delete"
              danger
              question={<p>Delete the server task “{task.name}”? A run in progress is stopped; its history stays in the event log.</p>}
              onConfirm={async () => {
                setDeleting(true);
                try {
                  await act.remove();
                } catch (err) {
                  setDeleting(false);
                  throw err;
                }
                navigate('/server-tasks');
              }}
            />
          ) : null}
        </>
      }
    >
      <ErrorMessage error={act.error} onDismiss={act.clearError} />

      <Section title="Status">
        <dl className="props">
          <dt>Next run</dt>
          <dd>{task.nextRunAt ? <Time iso={task.nextRunAt} /> : <span className="muted">{task.enabled ? 'only on demand or at events' : 'none: the task is disabled'}</span>}</dd>
          <dt>{active ? 'Current run' : 'Last run'}</dt>
          <dd>
            {runs.error && !runs.data ? (
              <span className="muted">unavailable</span>
            ) : !runs.data ? (
              <span className="muted">…</span>
            ) : latest ? (
              <>
                <RunStateBadge run={latest} /> <span className="muted small">{causeLabel(latest.cause)}</span>
                {latest.endedAt ? (
                  <span className="muted small">
                    {' '}
                    · ended <Time iso={latest.endedAt} />
                  </span>
                ) : null}
                {!active && latest.summary ? <div>{latest.summary}</div> : null}
              </>
            ) : (
              <span className="muted">never run</span>
            )}
          </dd>
        </dl>
        {latest && active ? <RunProgress run={latest} /> : null}
      </Section>

      <div className="grid">
        <Section title="Properties">
          <dl className="props">
            <dt>Type</dt>
            <dd>
              {info?.name ?? task.type}
              {info?.description ? <div className="muted small">{info.description}</div> : null}
            </dd>
            {task.description ? (
              <>
                <dt>Description</dt>
                <dd>{task.description}</dd>
              </>
            ) : null}
            <dt>Triggers</dt>
            <dd>
              <ul className="plain-list">
                {task.schedule.triggers.map((t, i) => (
                  <li key={i}>{describeTrigger(t, taskNames)}</li>
                ))}
              </ul>
            </dd>
            <dt>Schedule options</dt>
            <dd>{describeScheduleOptions(task.schedule, 'server').join(' · ')}</dd>
            <dt>State</dt>
            <dd>{task.enabled ? 'Enabled' : 'Disabled: runs neither on schedule nor on events'}</dd>
            <DefinitionFacts definition={task} />
          </dl>
        </Section>
        <Section title="Settings">
          <SettingsView settings={task.settings} schema={schemaOf(info)} />
        </Section>
      </div>

      <Section title="Run history">
        <Async q={runs}>
          {() =>
            runs.items.length === 0 ? (
              <Empty>This server task has not run yet.</Empty>
            ) : (
              <>
                <RunHistory task={task} runs={runs.items} />
                {runs.hasNextPage ? (
                  <p>
                    <button type="button" disabled={runs.isFetchingNextPage} onClick={() => void runs.fetchNextPage()}>
                      {runs.isFetchingNextPage ? 'Loading…' : 'Show older runs'}
                    </button>
                  </p>
                ) : null}
              </>
            )
          }
        </Async>
      </Section>
    </Page>
  );
}

function RunHistory({ task, runs }: { task: ServerTask; runs: ServerTaskRun[] }) {
  const [open, setOpen] = useState<ReadonlySet<string>>(new Set());
  const toggle = (id: string) =>
    setOpen((s) => {
      const n = new Set(s);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });
  return (
    <div className="table-wrap">
      <table>
        <caption className="visually-hidden">Runs of “{task.name}”, newest first</caption>
        <thead>
          <tr>
            <th scope="col">State</th>
            <th scope="col">Cause</th>
            <th scope="col" className="num">
              Try
            </th>
            <th scope="col">Started</th>
            <th scope="col">Duration</th>
            <th scope="col">Summary</th>
            <th scope="col">Details</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => {
            const expanded = open.has(r.id);
            const detailsId = `run-${r.id}`;
            return (
              <Fragment key={r.id}>
                <tr>
                  <td className="nowrap">
                    <RunStateBadge run={r} attempt={false} />
                  </td>
                  <td>
                    {causeLabel(r.cause)}
                    {r.createdBy ? <div className="muted small">by {r.createdBy}</div> : null}
                  </td>
                  <td className="num">{r.attempt}</td>
                  <td className="nowrap">
                    <Time iso={r.startedAt ?? r.createdAt} />
                    {r.startedAt ? null : <div className="muted small">queued</div>}
                  </td>
                  <td className="nowrap">{runDuration(r)}</td>
                  <td className="summary-cell">{r.summary ?? (isActiveRun(r) ? (r.message ?? '') : '')}</td>
                  <td>
                    <button type="button" className="link" aria-expanded={expanded} aria-controls={detailsId} aria-label={`${expanded ? 'Hide' : 'Details'}: the run of ${formatTime(r.startedAt ?? r.createdAt)}`} onClick={() => toggle(r.id)}>
                      {expanded ? 'Hide' : 'Details'}
                    </button>
                  </td>
                </tr>
                {expanded ? (
                  <tr className="run-details" id={detailsId}>
                    <td colSpan={7}>
                      <RunDetails run={r} />
                    </td>
                  </tr>
                ) : null}
              </Fragment>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function RunDetails({ run }: { run: ServerTaskRun }) {
  const result = run.result && Object.keys(run.result).length ? JSON.stringify(run.result, null, 2) : null;
  return (
    <div role="region" aria-label={`Run ${run.id}`}>
      {isActiveRun(run) ? <RunProgress run={run} /> : null}
      <dl className="props">
        {run.summary ? (
          <>
            <dt>Summary</dt>
            <dd>{run.summary}</dd>
          </>
        ) : null}
        {run.message ? (
          <>
            <dt>Latest message</dt>
            <dd>{run.message}</dd>
          </>
        ) : null}
        <dt>Queued</dt>
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
        <dt>Run id</dt>
        <dd>
          <code>{run.id}</code>
        </dd>
      </dl>
      <h3>Result</h3>
      {result ? (
        <pre tabIndex={0} aria-label="Result">
          {result}
        </pre>
      ) : (
        <p className="muted">No result.</p>
      )}
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
    </div>
  );
}
