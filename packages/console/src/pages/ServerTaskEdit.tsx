/**
 * Create a server task (POST /server-tasks) or change one (PATCH /server-tasks/:id with its
 * revision): type, name and description, settings from the type's schema, schedule (the
 * triggers a server task accepts), enabled.
 */
import { useRef, useState } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { createServerTask, getServerTask, updateServerTask, type Schedule, type ServerTask, type ServerTaskCreate, type ServerTaskTypeInfo, type ServerTaskUpdate } from '@garrison/protocol';
import { call, useAction, useOp } from '../api.ts';
import { Async, ErrorMessage, Page, Section } from '../ui.tsx';
import { Labeled } from '../tasks/controls.tsx';
import { SettingsEditor } from '../tasks/SettingsEditor.tsx';
import { DEFAULT_SCHEDULE, ScheduleEditor } from '../tasks/ScheduleEditor.tsx';
import { initialValue } from '../tasks/schema.ts';
import { schemaOf, serverTaskPath, useServerTaskTypes } from '../server-tasks/common.tsx';
import '../tasks/tasks.css';

export function ServerTaskEdit({ id }: { id?: string }) {
  const { q: types } = useServerTaskTypes();
  const task = useOp(getServerTask, id ? { params: { id } } : null);
  const title = id ? (task.data ? `Edit server task: ${task.data.name}` : 'Edit server task') : 'New server task';
  return (
    <Page title={title} subtitle={id && task.data ? <Link href={serverTaskPath(id)}>Back to the server task</Link> : <Link href="/server-tasks">Back to server tasks</Link>}>
      <Async q={types}>
        {(list) => (id ? <Async q={task}>{(t) => <ServerTaskForm key={t.id} types={list} current={t} />}</Async> : <ServerTaskForm types={list} />)}
      </Async>
    </Page>
  );
}

function freshSettings(info: ServerTaskTypeInfo | undefined): Record<string, unknown> {
  const schema = schemaOf(info);
  const v = schema ? initialValue(schema) : {};
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function ServerTaskForm({ types, current }: { types: ServerTaskTypeInfo[]; current?: ServerTask }) {
  // The task as it was when the form opened: its revision goes with the change, so that a
  // change made meanwhile elsewhere is refused (CONFLICT) rather than overwritten.
  const [initial] = useState(current);
  const latestRevision = current?.revision;
  const search = useSearch();
  const [, navigate] = useLocation();
  const [type, setType] = useState(() => initial?.type ?? types.find((t) => t.type === new URLSearchParams(search).get('type'))?.type ?? types[0]?.type ?? '');
  const info = types.find((t) => t.type === type);
  const [name, setName] = useState(initial?.name ?? '');
  const [description, setDescription] = useState(initial?.description ?? '');
  const [enabled, setEnabled] = useState(initial?.enabled ?? true);
  const [settings, setSettings] = useState<Record<string, unknown>>(() => initial?.settings ?? freshSettings(info));
  const [schedule, setSchedule] = useState<Schedule>(initial?.schedule ?? DEFAULT_SCHEDULE);
  const [jsonError, setJsonError] = useState<string | null>(null);
  const [localError, setLocalError] = useState<string | null>(null);
  const formRef = useRef<HTMLFormElement>(null);

  const save = useAction(
    async (): Promise<ServerTask> => {
      if (initial) {
        const body: ServerTaskUpdate = { name, description, settings, schedule, enabled, revision: initial.revision };
        return call(updateServerTask, { params: { id: initial.id }, body });
      }
      const body: ServerTaskCreate = { name, description, type, settings, schedule, enabled };
      return call(createServerTask, { body });
    },
    ['/server-tasks', '/server-task-runs'],
  );

  const chooseType = (t: string) => {
    setType(t);
    setSettings(freshSettings(types.find((x) => x.type === t)));
    setJsonError(null);
  };

  const submit = async () => {
    setLocalError(null);
    if (!formRef.current?.reportValidity()) return;
    if (jsonError) return setLocalError('The settings are not valid JSON; correct them before saving.');
    if (!type) return setLocalError('Choose a server task type.');
    try {
      const saved = await save.mutateAsync(undefined);
      navigate(serverTaskPath(saved.id));
    } catch {
      /* shown from save.error */
    }
  };

  return (
    <form
      ref={formRef}
      className="task-form"
      aria-label={initial ? 'Edit server task' : 'New server task'}
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      {initial && latestRevision !== undefined && latestRevision !== initial.revision ? (
        <p className="notice" role="status">
          This server task was changed elsewhere since this page opened (revision {initial.revision} → {latestRevision}). Saving will be refused; reload the page to edit the newest version.
        </p>
      ) : null}
      <Section title="General">
        {initial ? (
          <dl className="props">
            <dt>Type</dt>
            <dd>
              {info?.name ?? type}
              {info ? null : <span className="muted"> (this server does not know the type; settings are edited as JSON)</span>}
            </dd>
          </dl>
        ) : (
          <TypePicker types={types} value={type} onChange={chooseType} />
        )}
        <div className="row">
          <Labeled label="Name">
            <input type="text" required minLength={1} maxLength={200} value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" />
          </Labeled>
          <Labeled inline label="Enabled">
            <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
          </Labeled>
        </div>
        <Labeled label="Description">
          <textarea className="plain" rows={2} maxLength={2000} value={description} onChange={(e) => setDescription(e.target.value)} />
        </Labeled>
      </Section>

      <SettingsEditor key={type} schema={schemaOf(info)} value={settings} onChange={setSettings} onJsonError={setJsonError} onProblem={setLocalError} />

      <Section title="Schedule">
        <ScheduleEditor value={schedule} onChange={setSchedule} taskId={initial?.id} runsOn="server" />
      </Section>

      <div className="form-actions">
        {localError ? (
          <p className="error" role="alert">
            {localError}
          </p>
        ) : null}
        <ErrorMessage error={save.error} onDismiss={() => save.reset()} />
        <div className="actions">
          <button type="button" className="primary" disabled={save.isPending} aria-busy={save.isPending} onClick={() => void submit()}>
            Save server task
          </button>
          {save.isPending ? <span className="muted" role="status">Saving…</span> : null}
          <Link href={initial ? serverTaskPath(initial.id) : '/server-tasks'} className="button">
            Cancel
          </Link>
        </div>
      </div>
    </form>
  );
}

/** The types as radio buttons, each described by what it does. */
function TypePicker({ types, value, onChange }: { types: ServerTaskTypeInfo[]; value: string; onChange: (type: string) => void }) {
  if (types.length === 0) return <p className="error">This server offers no server task types.</p>;
  return (
    <fieldset>
      <legend>Type</legend>
      <ul className="type-choices">
        {types.map((t) => (
          <li key={t.type}>
            <label className="type-choice">
              <input type="radio" name="server-task-type" value={t.type} checked={value === t.type} onChange={() => onChange(t.type)} aria-labelledby={`type-${t.type}-name`} aria-describedby={`type-${t.type}-description`} />
              <span>
                <strong id={`type-${t.type}-name`}>{t.name}</strong>
                <span className="muted" id={`type-${t.type}-description`}>
                  {t.description}
                </span>
              </span>
            </label>
          </li>
        ))}
      </ul>
    </fieldset>
  );
}
