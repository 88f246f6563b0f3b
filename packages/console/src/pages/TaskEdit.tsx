/**
 * Create a task (POST /tasks) or change one (PATCH /tasks/:id): name, product and task type,
 * settings (a form generated from the type's schema, or raw JSON), schedule with a preview of
 * its next fire times, and scope.
 */
import { useDeferredValue, useMemo, useRef, useState } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { useQuery } from '@tanstack/react-query';
import { BUILTIN_PRODUCT, SCRIPT_TASK_TYPE, createTask, getTask, listProducts, previewSchedule, updateTask, type Schedule, type Scope, type Task, type TaskCreate, type TaskUpdate } from '@garrison/protocol';
import { call, useAction, useOp } from '../api.ts';
import { Async, ErrorMessage, Page, Section, Time } from '../ui.tsx';
import { Labeled } from '../tasks/controls.tsx';
import { SettingsEditor } from '../tasks/SettingsEditor.tsx';
import { DEFAULT_SCHEDULE, ScheduleEditor } from '../tasks/ScheduleEditor.tsx';
import { ScopePicker, scopeComplete } from '../tasks/ScopePicker.tsx';
import { withLifecycleTypes, type ProductInfo, type TaskTypeInfo } from '../tasks/model.ts';
import { initialValue, type JsonSchema } from '../tasks/schema.ts';
import '../tasks/tasks.css';

export function TaskEdit({ id }: { id?: string }) {
  // (The contract types a settings schema as unknown; it is a JSON schema: `list as ProductInfo[]`.)
  const products = useOp(listProducts, {}, { staleTime: 60_000 });
  const task = useOp(getTask, id ? { params: { id } } : null);
  const title = id ? (task.data ? `Edit task: ${task.data.name}` : 'Edit task') : 'New task';
  return (
    <Page title={title} subtitle={id && task.data ? <Link href={`/tasks/${encodeURIComponent(id)}`}>Back to the task</Link> : <Link href="/tasks">Back to tasks</Link>}>
      <Async q={products}>
        {(list) =>
          id ? (
            <Async q={task}>{(t) => <TaskForm key={t.id} products={withLifecycleTypes(list as ProductInfo[])} current={t} />}</Async>
          ) : (
            <TaskForm products={withLifecycleTypes(list as ProductInfo[])} />
          )
        }
      </Async>
    </Page>
  );
}

/**
 * Settings of which exactly one must be given, read from the schema: optional string
 * properties it names as alternatives (the script type's command and script).
 */
export function exactlyOneOf(schema: JsonSchema | undefined): string[] | null {
  const props = (schema as { properties?: Record<string, unknown>; required?: string[] } | undefined)?.properties;
  const required = new Set((schema as { required?: string[] } | undefined)?.required ?? []);
  const pair = ['command', 'script'];
  return props && pair.every((k) => k in props && !required.has(k)) ? pair : null;
}

function given(settings: Record<string, unknown>, key: string): boolean {
  return typeof settings[key] === 'string' && settings[key] !== '';
}

/** The next fire times of the schedule being edited, in the browser's zone for a "local" schedule. */
function SchedulePreviewNote({ schedule }: { schedule: Schedule }) {
  const deferred = useDeferredValue(schedule);
  const key = JSON.stringify(deferred);
  const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const q = useQuery({
    queryKey: ['/schedules/preview', key],
    queryFn: ({ signal }) => call(previewSchedule, { body: { schedule: deferred, count: 5, timeZone } }, { signal }),
    staleTime: 30_000,
    retry: false,
  });
  if (!q.data) return q.error ? <p className="muted small">The next run times cannot be shown now.</p> : null;
  const { fires, issues } = q.data;
  return (
    <div className="schedule-preview" aria-live="polite">
      {issues.length ? (
        <p className="error">{issues.join('; ')}</p>
      ) : fires.length ? (
        <>
          <p className="muted small">
            Next runs{(deferred.timeBasis ?? 'local') === 'local' ? ` (on a device in ${q.data.timeZone}; each device uses its own clock)` : ''}:
          </p>
          <ul className="plain-list small">
            {fires.map((f) => (
              <li key={f}>
                <Time iso={f} />
              </li>
            ))}
          </ul>
        </>
      ) : (
        <p className="muted small">No time trigger: it runs on its events or when run now.</p>
      )}
    </div>
  );
}

function typeOf(products: ProductInfo[], product: string, type: string): TaskTypeInfo | undefined {
  return products.find((p) => p.id === product)?.taskTypes.find((t) => t.id === type);
}

function asSettings(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** What a new task starts from; ?product=&type=&groupId=&deviceId= preset it. */
function presets(products: ProductInfo[], search: string) {
  const q = new URLSearchParams(search);
  const wantedProduct = q.get('product');
  const product = products.find((p) => p.id === wantedProduct) ?? products.find((p) => p.id === BUILTIN_PRODUCT) ?? products[0];
  const wantedType = q.get('type');
  const type = product?.taskTypes.find((t) => t.id === wantedType) ?? product?.taskTypes.find((t) => t.id === SCRIPT_TASK_TYPE) ?? product?.taskTypes[0];
  const deviceId = q.get('deviceId');
  const groupId = q.get('groupId');
  const scope: Scope = deviceId ? { type: 'local', deviceId } : { type: 'group', groupId: groupId ?? '' };
  return { product: product?.id ?? BUILTIN_PRODUCT, type: type?.id ?? '', settings: asSettings(type ? initialValue(type.settingsSchema) : {}), scope };
}

function TaskForm({ products, current }: { products: ProductInfo[]; current?: Task }) {
  // The task as it was when the form opened: its revision goes with the change, so that a
  // change made meanwhile elsewhere is refused (CONFLICT) rather than overwritten.
  const [initial] = useState(current);
  const latestRevision = current?.revision;
  const search = useSearch();
  const [, navigate] = useLocation();
  const start = useMemo(() => (initial ? null : presets(products, search)), [initial, products, search]);
  const [name, setName] = useState(initial?.name ?? '');
  const [description, setDescription] = useState(initial?.description ?? '');
  const [enabled, setEnabled] = useState(initial?.enabled ?? true);
  const [product, setProduct] = useState(initial?.product ?? start!.product);
  const [type, setType] = useState(initial?.type ?? start!.type);
  const [settings, setSettings] = useState<Record<string, unknown>>(initial?.settings ?? start!.settings);
  const [schedule, setSchedule] = useState<Schedule>(initial?.schedule ?? DEFAULT_SCHEDULE);
  const [scope, setScope] = useState<Scope>(initial?.scope ?? start!.scope);
  const taskType = typeOf(products, product, type);
  const schema: JsonSchema | undefined = taskType?.settingsSchema;
  const [jsonError, setJsonError] = useState<string | null>(null);
  const [localError, setLocalError] = useState<string | null>(null);
  const formRef = useRef<HTMLFormElement>(null);

  const save = useAction(
    async (): Promise<Task> => {
      if (initial) {
        const body: TaskUpdate = { name, description, settings, schedule, scope, enabled, revision: initial.revision };
        return call(updateTask, { params: { id: initial.id }, body });
      }
      const body: TaskCreate = { name, description, product, type, settings, schedule, scope, enabled };
      return call(createTask, { body });
    },
    ['/tasks', '/devices/'],
  );

  const chooseType = (p: string, t: string) => {
    setProduct(p);
    setType(t);
    const next = typeOf(products, p, t);
    const fresh = asSettings(next ? initialValue(next.settingsSchema) : {});
    setSettings(fresh);
    setJsonError(null);
  };

  const submit = async () => {
    setLocalError(null);
    if (!formRef.current?.reportValidity()) return;
    if (jsonError) return setLocalError('The settings are not valid JSON; correct them before saving.');
    if (!type) return setLocalError('Choose a task type.');
    if (oneOf && oneOf.filter((k) => given(settings, k)).length !== 1) return setLocalError(`Give exactly one of ${oneOf.map((k) => `“${k}”`).join(' and ')} in the settings.`);
    if (!scopeComplete(scope)) return setLocalError(scope.type === 'local' ? 'Choose the device of this local task.' : scope.type === 'group' ? 'Choose a group.' : 'A global task needs devices or a selection.');
    try {
      const saved = await save.mutateAsync(undefined);
      navigate(`/tasks/${encodeURIComponent(saved.id)}`);
    } catch {
      /* shown from save.error */
    }
  };

  const currentProduct = products.find((p) => p.id === product);
  const oneOf = exactlyOneOf(schema);

  return (
    <form
      ref={formRef}
      className="task-form"
      aria-label={initial ? 'Edit task' : 'New task'}
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      {initial && latestRevision !== undefined && latestRevision !== initial.revision ? (
        <p className="notice" role="status">
          This task was changed elsewhere since this page opened (revision {initial.revision} → {latestRevision}). Saving will be refused; reload the page to edit the newest version.
        </p>
      ) : null}
      <Section title="General">
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
        {initial ? (
          <dl className="props">
            <dt>Product</dt>
            <dd>{currentProduct?.name ?? product}</dd>
            <dt>Task type</dt>
            <dd>
              {taskType?.name ?? type}
              {taskType ? null : <span className="muted"> (its plug-in is not installed; settings are edited as JSON)</span>}
            </dd>
          </dl>
        ) : (
          <div className="row top">
            <Labeled label="Product">
              <select
                value={product}
                onChange={(e) => {
                  const p = products.find((x) => x.id === e.target.value);
                  chooseType(e.target.value, p?.taskTypes[0]?.id ?? '');
                }}
              >
                {products.map((p) => (
                  <option key={p.id} value={p.id}>
                    {p.name}
                  </option>
                ))}
              </select>
            </Labeled>
            <Labeled label="Task type" hint={taskType?.description}>
              <select value={type} required onChange={(e) => chooseType(product, e.target.value)}>
                {currentProduct?.taskTypes.length ? null : <option value="">No task types</option>}
                {(currentProduct?.taskTypes ?? []).map((t) => (
                  <option key={t.id} value={t.id}>
                    {t.name}
                  </option>
                ))}
              </select>
            </Labeled>
          </div>
        )}
      </Section>

      {oneOf ? (
        <p className={oneOf.filter((k) => given(settings, k)).length === 1 ? 'muted small' : 'notice'} role="note">
          Required: exactly one of {oneOf.map((k) => `“${k}”`).join(' or ')} (a command line, or a script body run by the shell).
        </p>
      ) : null}
      <SettingsEditor key={`${product}/${type}`} schema={schema} value={settings} onChange={setSettings} onJsonError={setJsonError} onProblem={setLocalError} />

      <Section title="Schedule">
        <ScheduleEditor value={schedule} onChange={setSchedule} taskId={initial?.id} />
        <SchedulePreviewNote schedule={schedule} />
      </Section>

      <Section title="Scope">
        <ScopePicker value={scope} onChange={setScope} products={products} />
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
            Save task
          </button>
          {save.isPending ? <span className="muted" role="status">Saving…</span> : null}
          <Link href={initial ? `/tasks/${encodeURIComponent(initial.id)}` : '/tasks'} className="button">
            Cancel
          </Link>
        </div>
      </div>
    </form>
  );
}
