/**
 * The schedule of a task: its triggers (continuous, events, after another task, once,
 * interval, daily, weekly, monthly, cron, on demand; several per task) and its options
 * (time basis, randomization, missed runs, stop after, retries, start and end, run-now expiry).
 * `runsOn="server"` offers only what a server task accepts (see RUNS_ON).
 */
import { useId, useMemo, useRef } from 'react';
import { listServerTasks, listTasks, PAGE_LIMIT_MAX, SERVER_TASK_TRIGGERS, type Retry, type Schedule, type Trigger, type Weekday } from '@garrison/protocol';
import { useOp } from '../api.ts';
import { Labeled, NumberInput } from './controls.tsx';
import { FINAL_STATES, MONTHS, TRIGGER_TYPES, WEEKDAYS, describeTrigger, isoToLocalInput, localInputToIso, type ScheduleRunsOn } from './model.ts';
import './tasks.css';

export const DEFAULT_SCHEDULE: Schedule = { triggers: [{ type: 'on-demand' }] };

function tomorrowAt(hh: number): string {
  const d = new Date(Date.now() + 86_400_000);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(hh)}:00`;
}

/** A new trigger of a type, with sensible values to start from. */
export function newTrigger(type: Trigger['type']): Trigger {
  switch (type) {
    case 'after-task':
      return { type, taskId: '' };
    case 'once':
      return { type, at: tomorrowAt(9) };
    case 'interval':
      return { type, every: 60, unit: 'minutes' };
    case 'daily':
      return { type, time: '03:00' };
    case 'weekly':
      return { type, days: ['mon'], time: '08:00' };
    case 'monthly':
      return { type, day: 1, time: '09:00' };
    case 'cron':
      return { type, expression: '0 3 * * 1-5' };
    case 'continuous':
      return { type };
    case 'check-in':
    case 'policy-enforcement':
    case 'agent-start':
    case 'enrolment':
    case 'repository-content':
      return { type };
    default:
      return { type: 'on-demand' };
  }
}

const TRIGGER_GROUPS = ['Continuous', 'At events', 'On schedule', 'On demand'] as const;

/**
 * What differs with who runs the schedule: agents on devices (client tasks: every trigger)
 * or the server itself (server tasks: only SERVER_TASK_TRIGGERS, after-task names another
 * server task, "local" is the server's time zone, and run-now waits for no device).
 */
interface RunsOnInfo {
  /** The trigger types offered; null: all of them. */
  triggers: ReadonlySet<string> | null;
  labels: Partial<Record<Trigger['type'], string>>;
  localTime: string;
  afterTaskHint: string;
  repositoryHint: string;
  missedHint: string;
}
const RUNS_ON: Record<ScheduleRunsOn, RunsOnInfo> = {
  devices: {
    triggers: null,
    labels: {},
    localTime: "The device's local time",
    afterTaskHint: "Runs on a device when this other task's run there ends",
    repositoryHint: "When a new version of the task's product, or of its definitions, is installed on the device from the repository.",
    missedHint: "When the device was off at a run's time, run once at start-up",
  },
  server: {
    triggers: new Set<string>(SERVER_TASK_TRIGGERS),
    labels: { 'after-task': 'After another server task finishes', 'repository-content': 'When new packages arrive in the repository' },
    localTime: "The server's local time",
    afterTaskHint: "Runs when this other server task's run ends",
    repositoryHint: 'When new packages arrive in the master repository.',
    missedHint: "When the server was down at a run's time, run once after it starts",
  },
};

export function ScheduleEditor({ value, onChange, taskId, runsOn = 'devices' }: { value: Schedule; onChange: (s: Schedule) => void; taskId?: string | undefined; runsOn?: ScheduleRunsOn }) {
  const on = RUNS_ON[runsOn];
  // Stable keys for the trigger cards (the triggers themselves have no ids).
  const keys = useRef<number[]>([]);
  const counter = useRef(0);
  while (keys.current.length < value.triggers.length) keys.current.push(counter.current++);
  if (keys.current.length > value.triggers.length) keys.current.length = value.triggers.length;

  const needsTasks = value.triggers.some((t) => t.type === 'after-task');
  // The list an after-task trigger picks from: the first page of tasks (a thousand) or of server tasks.
  const clientTasks = useOp(listTasks, needsTasks && runsOn === 'devices' ? { query: { limit: PAGE_LIMIT_MAX } } : null, { staleTime: 30_000 });
  const serverTasks = useOp(listServerTasks, needsTasks && runsOn === 'server' ? {} : null, { staleTime: 30_000 });
  const tasks: { data: NamedTask[] | undefined } = { data: (runsOn === 'server' ? serverTasks : clientTasks).data?.items };
  const set = (patch: Partial<Schedule>) => {
    const next: Schedule = { ...value, ...patch };
    for (const k of Object.keys(next) as (keyof Schedule)[]) if (next[k] === undefined) delete next[k];
    onChange(next);
  };
  const setTrigger = (i: number, t: Trigger) => set({ triggers: value.triggers.map((x, j) => (j === i ? t : x)) });
  const remove = (i: number) => {
    keys.current.splice(i, 1);
    set({ triggers: value.triggers.filter((_, j) => j !== i) });
  };
  const taskNames = useMemo(() => new Map((tasks.data ?? []).map((t) => [t.id, t.name])), [tasks.data]);

  return (
    <div className="schedule-editor">
      <h3>Triggers</h3>
      <p className="muted small">The task runs whenever any of its triggers fires. Run now works with every trigger.</p>
      <ol className="trigger-list">
        {value.triggers.map((t, i) => (
          <li key={keys.current[i]} className="trigger">
            <fieldset>
              <legend>
                Trigger {i + 1}: {describeTrigger(t, taskNames)}
              </legend>
              <div className="trigger-head">
                <Labeled label="Runs">
                  <select value={t.type} onChange={(e) => setTrigger(i, newTrigger(e.target.value as Trigger['type']))}>
                    {TRIGGER_GROUPS.map((g) => {
                      // A trigger the runner does not offer stays shown while it is the one chosen.
                      const offered = TRIGGER_TYPES.filter((x) => x.group === g && (!on.triggers || on.triggers.has(x.type) || x.type === t.type));
                      return offered.length ? (
                        <optgroup key={g} label={g}>
                          {offered.map((x) => (
                            <option key={x.type} value={x.type}>
                              {on.labels[x.type] ?? x.label}
                            </option>
                          ))}
                        </optgroup>
                      ) : null;
                    })}
                  </select>
                </Labeled>
                <button type="button" disabled={value.triggers.length <= 1} onClick={() => remove(i)} aria-label={`Remove trigger ${i + 1}`}>
                  Remove
                </button>
              </div>
              <TriggerFields trigger={t} onChange={(x) => setTrigger(i, x)} tasks={tasks.data} taskId={taskId} on={on} />
            </fieldset>
          </li>
        ))}
      </ol>
      <button type="button" disabled={value.triggers.length >= 20} onClick={() => set({ triggers: [...value.triggers, newTrigger('daily')] })}>
        Add trigger
      </button>
      <ScheduleOptions value={value} set={set} on={on} runsOn={runsOn} />
    </div>
  );
}

/** What the after-task picker needs of a client or server task. */
interface NamedTask {
  id: string;
  name: string;
}

function TriggerFields({ trigger: t, onChange, tasks, taskId, on }: { trigger: Trigger; onChange: (t: Trigger) => void; tasks: NamedTask[] | undefined; taskId?: string | undefined; on: RunsOnInfo }) {
  switch (t.type) {
    case 'continuous':
      return (
        <>
          <p className="hint small">The task is kept running; when it exits it is started again, waiting longer after each quick exit.</p>
          <div className="row">
            <Labeled label="First restart delay (seconds)" hint="1 to 3600; default set by the agent">
              <NumberInput integer min={1} max={3600} value={t.backoffSeconds} onChange={(v) => onChange(omitUndef({ ...t, backoffSeconds: v }))} />
            </Labeled>
            <Labeled label="Longest restart delay (seconds)" hint="1 to 86400; the delay doubles up to this">
              <NumberInput integer min={1} max={86400} value={t.maxBackoffSeconds} onChange={(v) => onChange(omitUndef({ ...t, maxBackoffSeconds: v }))} />
            </Labeled>
          </div>
        </>
      );
    case 'check-in':
      return <p className="hint small">At every agent-server communication (the check-in interval is set per group, 60 minutes by default).</p>;
    case 'policy-enforcement':
      return <p className="hint small">At every policy enforcement on the agent (every 5 minutes by default, set per group).</p>;
    case 'agent-start':
      return <p className="hint small">Each time the agent starts (at device start-up, or after an update).</p>;
    case 'enrolment':
      return <p className="hint small">Once, right after the device enrols.</p>;
    case 'repository-content':
      return <p className="hint small">{on.repositoryHint}</p>;
    case 'on-demand':
      return <p className="hint small">Runs only when someone chooses Run now.</p>;
    case 'after-task':
      return <AfterTaskFields trigger={t} onChange={onChange} tasks={tasks} taskId={taskId} hint={on.afterTaskHint} />;
    case 'once':
      return (
        <Labeled label="Date and time" hint="Wall-clock time in the schedule's time basis">
          <input type="datetime-local" required value={t.at.slice(0, 16)} onChange={(e) => onChange({ ...t, at: e.target.value })} />
        </Labeled>
      );
    case 'interval':
      return (
        <div className="row">
          <Labeled label="Every">
            <NumberInput integer required min={1} max={100000} value={t.every} onChange={(v) => onChange({ ...t, every: blank(v) })} />
          </Labeled>
          <Labeled label="Unit">
            <select value={t.unit} onChange={(e) => onChange({ ...t, unit: e.target.value as 'minutes' | 'hours' })}>
              <option value="minutes">minutes</option>
              <option value="hours">hours</option>
            </select>
          </Labeled>
        </div>
      );
    case 'daily':
      return (
        <div className="row">
          <Labeled label="Time">
            <input type="time" required value={t.time} onChange={(e) => onChange({ ...t, time: e.target.value.slice(0, 5) })} />
          </Labeled>
          <Labeled label="Every N days" hint="Empty or 1: every day">
            <NumberInput integer min={1} max={365} value={t.everyDays} onChange={(v) => onChange(omitUndef({ ...t, everyDays: v }))} />
          </Labeled>
        </div>
      );
    case 'weekly':
      return (
        <>
          <DayChecks days={t.days} onChange={(days) => onChange({ ...t, days })} />
          <Labeled label="Time">
            <input type="time" required value={t.time} onChange={(e) => onChange({ ...t, time: e.target.value.slice(0, 5) })} />
          </Labeled>
        </>
      );
    case 'monthly':
      return <MonthlyFields trigger={t} onChange={onChange} />;
    case 'cron':
      return (
        <Labeled
          label="Cron expression"
          hint="minute hour day-of-month month day-of-week, e.g. 0 3 * * 1-5 (03:00 on weekdays), or @yearly @monthly @weekly @daily @hourly; a leading seconds field is allowed; read in the time basis. When day of month and day of week are both set, a day matching either runs: 0 3 1 * MON is the 1st and every Monday. Jobs with * in the minute or hour follow the clock through daylight-saving changes (skipped minutes do not run, a repeated hour runs twice)"
        >
          <input type="text" className="mono" required minLength={1} maxLength={200} spellCheck={false} value={t.expression} onChange={(e) => onChange({ ...t, expression: e.target.value })} />
        </Labeled>
      );
    default:
      return null;
  }
}

/**
 * A required number the person has emptied while typing: kept empty (the field's `required`
 * stops the save) rather than turned into 0 under their cursor.
 */
function blank(v: number | undefined): number {
  return v as number;
}

function omitUndef<T extends object>(o: T): T {
  const out = { ...o };
  for (const k of Object.keys(out) as (keyof T)[]) if (out[k] === undefined) delete out[k];
  return out;
}

function DayChecks({ days, onChange }: { days: readonly Weekday[]; onChange: (d: Weekday[]) => void }) {
  const id = useId();
  return (
    <div className="field" role="group" aria-labelledby={id}>
      <span className="field-label" id={id}>
        Days
      </span>
      <div className="checks">
        {WEEKDAYS.map((w) => (
          <label key={w.day} className="check">
            <input
              type="checkbox"
              checked={days.includes(w.day)}
              onChange={(e) => onChange(WEEKDAYS.map((x) => x.day).filter((d) => (d === w.day ? e.target.checked : days.includes(d))))}
            />
            <span aria-hidden="true">{w.short}</span>
            <span className="visually-hidden">{w.long}</span>
          </label>
        ))}
      </div>
      {days.length === 0 ? <small className="warn-text">Choose at least one day.</small> : null}
    </div>
  );
}

function AfterTaskFields({ trigger: t, onChange, tasks, taskId, hint }: { trigger: Extract<Trigger, { type: 'after-task' }>; onChange: (t: Trigger) => void; tasks: NamedTask[] | undefined; taskId?: string | undefined; hint: string }) {
  const id = useId();
  const others = (tasks ?? []).filter((x) => x.id !== taskId).sort((a, b) => a.name.localeCompare(b.name));
  const known = others.some((x) => x.id === t.taskId);
  const states = t.states ?? [];
  return (
    <>
      <Labeled label="After task" hint={hint}>
        <select required value={t.taskId} onChange={(e) => onChange({ ...t, taskId: e.target.value })}>
          <option value="">{tasks ? 'Choose a task…' : 'Loading tasks…'}</option>
          {t.taskId && !known && tasks ? <option value={t.taskId}>{t.taskId} (unknown task)</option> : null}
          {others.map((x) => (
            <option key={x.id} value={x.id}>
              {x.name}
            </option>
          ))}
        </select>
      </Labeled>
      <div className="field" role="group" aria-labelledby={id}>
        <span className="field-label" id={id}>
          When its run ends as
        </span>
        <div className="checks">
          {FINAL_STATES.map((s) => (
            <label key={s} className="check">
              <input
                type="checkbox"
                checked={states.includes(s)}
                onChange={(e) => {
                  const next = FINAL_STATES.filter((x) => (x === s ? e.target.checked : states.includes(x)));
                  const { states: _drop, ...rest } = t;
                  onChange(next.length ? { ...rest, states: next } : rest);
                }}
              />
              {s.replaceAll('_', ' ')}
            </label>
          ))}
        </div>
        <small className="hint">None checked: any final state.</small>
      </div>
    </>
  );
}

function MonthlyFields({ trigger: t, onChange }: { trigger: Extract<Trigger, { type: 'monthly' }>; onChange: (t: Trigger) => void }) {
  const monthsId = useId();
  const byWeekday = t.day === undefined;
  const base = { type: 'monthly' as const, time: t.time, ...(t.months ? { months: t.months } : {}) };
  return (
    <>
      <div className="row">
        <Labeled label="On">
          <select value={byWeekday ? 'weekday' : 'day'} onChange={(e) => onChange(e.target.value === 'day' ? { ...base, day: 1 } : { ...base, week: 1, weekday: 'mon' })}>
            <option value="day">a day of the month</option>
            <option value="weekday">a weekday of the month</option>
          </select>
        </Labeled>
        {byWeekday ? (
          <>
            <Labeled label="Week" hint="Months without a fifth such weekday are skipped">
              <select value={String(t.week ?? 1)} onChange={(e) => onChange({ ...t, week: e.target.value === 'last' ? 'last' : Number(e.target.value) })}>
                <option value="1">first</option>
                <option value="2">second</option>
                <option value="3">third</option>
                <option value="4">fourth</option>
                <option value="5">fifth</option>
                <option value="last">last</option>
              </select>
            </Labeled>
            <Labeled label="Weekday">
              <select value={t.weekday ?? 'mon'} onChange={(e) => onChange({ ...t, weekday: e.target.value as Weekday })}>
                {WEEKDAYS.map((w) => (
                  <option key={w.day} value={w.day}>
                    {w.long}
                  </option>
                ))}
              </select>
            </Labeled>
          </>
        ) : (
          <Labeled label="Day" hint="Months without this day run on their last day">
            <select value={String(t.day)} onChange={(e) => onChange({ ...t, day: e.target.value === 'last' ? 'last' : Number(e.target.value) })}>
              {Array.from({ length: 31 }, (_, i) => (
                <option key={i + 1} value={String(i + 1)}>
                  {i + 1}
                </option>
              ))}
              <option value="last">last day</option>
            </select>
          </Labeled>
        )}
        <Labeled label="Time">
          <input type="time" required value={t.time} onChange={(e) => onChange({ ...t, time: e.target.value.slice(0, 5) })} />
        </Labeled>
      </div>
      <div className="field" role="group" aria-labelledby={monthsId}>
        <span className="field-label" id={monthsId}>
          Months
        </span>
        <div className="checks">
          {MONTHS.map((m, i) => (
            <label key={m} className="check">
              <input
                type="checkbox"
                checked={t.months?.includes(i + 1) ?? false}
                onChange={(e) => {
                  const cur = t.months ?? [];
                  const next = Array.from({ length: 12 }, (_, j) => j + 1).filter((x) => (x === i + 1 ? e.target.checked : cur.includes(x)));
                  const { months: _drop, ...rest } = t;
                  onChange(next.length && next.length < 12 ? { ...rest, months: next } : rest);
                }}
              />
              {m}
            </label>
          ))}
        </div>
        <small className="hint">None checked: every month.</small>
      </div>
    </>
  );
}

function timeZones(): string[] {
  try {
    return (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.('timeZone') ?? [];
  } catch {
    return [];
  }
}

/** The browser's zone as a starting point for a named zone (empty when it is UTC or unknown). */
function browserZone(): string {
  const z = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return z && z !== 'UTC' && z !== 'Etc/UTC' ? z : '';
}

function ScheduleOptions({ value: s, set, on, runsOn }: { value: Schedule; set: (p: Partial<Schedule>) => void; on: RunsOnInfo; runsOn: ScheduleRunsOn }) {
  const zonesId = useId();
  const zones = useMemo(timeZones, []);
  const basisKind = s.timeBasis === undefined || s.timeBasis === 'local' ? 'local' : s.timeBasis === 'UTC' ? 'UTC' : 'zone';
  const retry: Retry | undefined = s.retry;
  return (
    <>
      <h3>Options</h3>
      <div className="row">
        <Labeled label="Time basis" hint="How the times of the triggers are read. A time skipped by a daylight-saving change runs once, when the clock resumes; a time that happens twice runs once, the first time">
          <select
            value={basisKind}
            onChange={(e) => set({ timeBasis: e.target.value === 'local' ? undefined : e.target.value === 'UTC' ? 'UTC' : browserZone() })}
          >
            <option value="local">{on.localTime}</option>
            <option value="UTC">UTC</option>
            <option value="zone">A named time zone</option>
          </select>
        </Labeled>
        {basisKind === 'zone' ? (
          <>
            <Labeled label="Time zone" hint="An IANA name such as Europe/Paris">
              <input type="text" list={zonesId} required autoComplete="off" value={s.timeBasis ?? ''} onChange={(e) => set({ timeBasis: e.target.value })} />
            </Labeled>
            <datalist id={zonesId}>
              {zones.map((z) => (
                <option key={z} value={z} />
              ))}
            </datalist>
          </>
        ) : null}
        <Labeled label="Randomize within (minutes)" hint="Each run starts at a random moment up to this long after its time; 0 to 1440">
          <NumberInput integer min={0} max={1440} value={s.randomizeMinutes} onChange={(v) => set({ randomizeMinutes: v })} />
        </Labeled>
        <Labeled label="Stop after (minutes)" hint="A run still going is stopped and marked timed out; 1 to 10080">
          <NumberInput integer min={1} max={10080} value={s.stopAfterMinutes} onChange={(v) => set({ stopAfterMinutes: v })} />
        </Labeled>
      </div>

      <div className="row">
        <Labeled inline label="Run missed runs" hint={on.missedHint}>
          <input type="checkbox" checked={s.runMissed ?? false} onChange={(e) => set({ runMissed: e.target.checked || undefined, missedDelayMinutes: e.target.checked ? s.missedDelayMinutes : undefined })} />
        </Labeled>
        {s.runMissed ? (
          <Labeled label="Delay after start-up (minutes)" hint="0 to 1440">
            <NumberInput integer min={0} max={1440} value={s.missedDelayMinutes} onChange={(v) => set({ missedDelayMinutes: v })} />
          </Labeled>
        ) : null}
      </div>

      <div className="row">
        <Labeled inline label="Retry failed runs">
          <input type="checkbox" checked={retry !== undefined} onChange={(e) => set({ retry: e.target.checked ? { attempts: 3, delaySeconds: 60 } : undefined })} />
        </Labeled>
      </div>
      {retry ? (
        <div className="row">
          <Labeled label="Retries" hint="After the first try; 0 to 20">
            <NumberInput integer required min={0} max={20} value={retry.attempts} onChange={(v) => set({ retry: { ...retry, attempts: blank(v) } })} />
          </Labeled>
          <Labeled label="Delay before a retry (seconds)" hint="1 to 86400">
            <NumberInput integer required min={1} max={86400} value={retry.delaySeconds} onChange={(v) => set({ retry: { ...retry, delaySeconds: blank(v) } })} />
          </Labeled>
          <Labeled label="Back-off factor" hint="Each retry waits delay × factor^(n−1); 1 to 10">
            <NumberInput min={1} max={10} value={retry.factor} onChange={(v) => set({ retry: omitUndef({ ...retry, factor: v }) })} />
          </Labeled>
        </div>
      ) : null}

      <div className="row">
        <Labeled label="Start" hint="The task fires from this moment (your browser's time)">
          <input type="datetime-local" value={isoToLocalInput(s.startAt)} onChange={(e) => set({ startAt: localInputToIso(e.target.value) })} />
        </Labeled>
        <Labeled label="End" hint="…and not after this one">
          <input type="datetime-local" value={isoToLocalInput(s.endAt)} onChange={(e) => set({ endAt: localInputToIso(e.target.value) })} />
        </Labeled>
        {runsOn === 'devices' ? (
          <Labeled label="Run-now expiry (minutes)" hint="How long a run now waits for an offline device; default 1440 (one day)">
            <NumberInput integer min={1} max={525600} value={s.runNowExpiryMinutes} placeholder="1440" onChange={(v) => set({ runNowExpiryMinutes: v })} />
          </Labeled>
        ) : null}
      </div>
    </>
  );
}
