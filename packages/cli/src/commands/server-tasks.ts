/**
 * `garrison server-task …`: work the administration server does itself (database
 * maintenance, backup, reports, repository download, installation packages), managed like
 * client tasks: create, change, enable and disable, run now (and wait for the run), stop,
 * copy, export, import, delete, and the run history. The schedule options and their spec
 * language are the client tasks' own (task-options.ts, schedule-spec.ts).
 */
import { Option, type Command } from 'commander';
import {
  SERVER_TASK_TRIGGERS,
  copyServerTask,
  createServerTask,
  deleteServerTask,
  disableServerTask,
  enableServerTask,
  exportServerTasks,
  finalServerTaskRunStates,
  getServerTask,
  getServerTaskRun,
  importServerTasks,
  listRunsOfServerTask,
  listServerTasks,
  listServerTaskTypes,
  runServerTask,
  stopServerTask,
  updateServerTask,
  type Schedule,
  type ServerTask,
  type ServerTaskCreate,
  type ServerTaskExport,
  type ServerTaskRun,
  type ServerTaskRunsQuery,
  type ServerTaskUpdate,
  type Trigger,
} from '@garrison/protocol';
import { ApiError, UsageError, type Client } from '../client.ts';
import { act, type Io, type Opts, type RunState } from '../context.ts';
import { formatTime, indent, keyValues, parseIntOption, table, type Cell } from '../format.ts';
import { jsonOrFile, readJson, writeText } from '../files.ts';
import { SCHEDULE_SPEC_HELP } from '../schedule-spec.ts';
import { buildSchedule, scheduleOptionsText, type TaskOptionValues } from '../task-options.ts';
import { scheduleText } from './tasks.ts';

export const SERVER_TASK_HEADERS = ['NAME', 'TYPE', 'SCHEDULE', 'ENABLED', 'NEXT RUN', 'LAST RUN', 'ID'];
export const SERVER_TASK_RUN_HEADERS = ['STATE', 'CAUSE', 'ATTEMPT', 'STARTED', 'DURATION', 'SUMMARY', 'ID'];

const RUN_STATES = ['pending', 'running', ...finalServerTaskRunStates];
/** Final states that count as success for `run --wait`'s exit code. */
const SUCCESS_STATES: readonly string[] = ['succeeded', 'succeeded_with_warnings'];

const collect = (v: string, prev?: string[]) => [...(prev ?? []), v];

const SERVER_SCHEDULE_HELP = `${SCHEDULE_SPEC_HELP}
  repository-content              when new packages arrive in the master repository

A server task takes only once, every, daily, weekly, monthly, cron, on-demand, after and
repository-content; after:TASK names another server task (id or name). The time basis
"local" is the server's time zone.`;

// ---------------------------------------------------------------------------------------------
// Resolving names
// ---------------------------------------------------------------------------------------------

/** Every server task, page after page (a server has tens of them). */
function allServerTasks(client: Client, type?: string): Promise<ServerTask[]> {
  return client.api.all(listServerTasks, { query: type !== undefined ? { type } : {} });
}

/** The newest `limit` runs of a server task (one page: at most 1,000). */
async function newestRuns(client: Client, taskId: string, limit: number, state?: string): Promise<ServerTaskRun[]> {
  const page = await client.api.call(listRunsOfServerTask, { params: { id: taskId }, query: { limit, ...(state ? { state: state as ServerTaskRunsQuery['state'] } : {}) } });
  return page.items;
}

/** A server task among `list` by id, else by exact name; CONFLICT when a name is ambiguous. */
export function findServerTask(list: readonly ServerTask[], ref: string): ServerTask | undefined {
  const byId = list.find((t) => t.id === ref);
  if (byId) return byId;
  const named = list.filter((t) => t.name === ref);
  if (named.length > 1) throw new ApiError('CONFLICT', `${named.length} server tasks are named "${ref}" (${named.map((t) => t.id).join(', ')}); give the id`);
  return named[0];
}

/** A server task by id or name (one listing: there are few); the API's NOT_FOUND when neither. */
async function resolveServerTask(client: Client, ref: string, list?: readonly ServerTask[]): Promise<ServerTask> {
  const found = findServerTask(list ?? (await allServerTasks(client)), ref);
  if (found) return found;
  const t = await client.api.call(getServerTask, { params: { id: ref } });
  // "export" is a route of its own: whatever else answers is not this task.
  if (t?.id !== ref) throw new ApiError('NOT_FOUND', `there is no server task "${ref}"`, 404);
  return t;
}

/** after:NAME works too: server task names in after-task triggers become ids. */
async function linkAfterTriggers(client: Client, triggers: Trigger[] | undefined): Promise<void> {
  if (!triggers?.some((t) => t.type === 'after-task')) return;
  const list = await allServerTasks(client);
  for (const t of triggers) if (t.type === 'after-task') t.taskId = findServerTask(list, t.taskId)?.id ?? t.taskId;
}

/** Names of server tasks by id, for after-task triggers shown by name. */
function uniqueNames(list: readonly ServerTask[]): Map<string, string> {
  const count = new Map<string, number>();
  for (const t of list) count.set(t.name, (count.get(t.name) ?? 0) + 1);
  return new Map(list.filter((t) => count.get(t.name) === 1).map((t) => [t.id, t.name]));
}

// ---------------------------------------------------------------------------------------------
// Display
// ---------------------------------------------------------------------------------------------

/** "0.4s", "12s", "3m 05s", "1h 02m". */
export function formatDuration(ms: number): string {
  if (ms < 0 || !Number.isFinite(ms)) return '-';
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function runDuration(r: Pick<ServerTaskRun, 'startedAt' | 'endedAt'>, now = Date.now()): string {
  if (!r.startedAt) return '-';
  const end = r.endedAt ? new Date(r.endedAt).getTime() : now;
  return `${formatDuration(end - new Date(r.startedAt).getTime())}${r.endedAt ? '' : ' so far'}`;
}

function runStateText(r: Pick<ServerTaskRun, 'state' | 'percent'>): string {
  return r.state === 'running' && r.percent !== null ? `running ${r.percent}%` : r.state;
}

export function serverRunRows(runs: readonly ServerTaskRun[]): Cell[][] {
  return runs.map((r) => [runStateText(r), r.cause, r.attempt, formatTime(r.startedAt), runDuration(r), r.summary ?? r.message, r.id]);
}

/** A settings schema's fields as rows, nested objects flattened to dotted paths. */
export function settingsFields(schema: unknown, prefix = ''): { field: string; type: string; required: boolean; description: string }[] {
  const s = schema as { properties?: Record<string, unknown>; required?: string[] } | null;
  if (!s || typeof s !== 'object' || !s.properties) return [];
  const out: { field: string; type: string; required: boolean; description: string }[] = [];
  for (const [key, prop] of Object.entries(s.properties)) {
    const p = prop as { properties?: Record<string, unknown>; description?: string };
    const field = `${prefix}${key}`;
    const required = (s.required ?? []).includes(key);
    if (p.properties && !isSecretRefSchema(p)) {
      out.push({ field, type: 'object', required, description: p.description ?? '' });
      out.push(...settingsFields(p, `${field}.`));
    } else out.push({ field, type: schemaType(p), required, description: p.description ?? '' });
  }
  return out;
}

function isSecretRefSchema(s: unknown): boolean {
  const p = (s as { properties?: Record<string, unknown> }).properties;
  return !!p && Object.keys(p).length === 1 && '$secret' in p;
}

/** A short type for a JSON schema: "integer 1..36500", "auto|always|never", "string[]", "secret". */
export function schemaType(schema: unknown): string {
  const s = schema as Record<string, unknown>;
  if (!s || typeof s !== 'object') return '?';
  if (isSecretRefSchema(s)) return 'secret {"$secret": NAME}';
  if ('const' in s) return JSON.stringify(s.const);
  if (Array.isArray(s.enum)) return s.enum.map((v) => JSON.stringify(v)).join('|');
  const union = (s.anyOf ?? s.oneOf) as unknown[] | undefined;
  if (Array.isArray(union)) {
    const parts = union.map((u) => {
      const c = u as Record<string, unknown>;
      return 'const' in c && typeof c.const === 'string' ? c.const : schemaType(u);
    });
    return parts.join('|');
  }
  if (s.type === 'array') {
    const item = schemaType(s.items);
    return item.includes('|') ? `(${item})[]` : `${item}[]`;
  }
  if (s.type === 'integer' || s.type === 'number') {
    const min = s.minimum as number | undefined;
    const max = s.maximum as number | undefined;
    return min !== undefined || max !== undefined ? `${s.type} ${min ?? ''}..${max ?? ''}` : String(s.type);
  }
  if (Array.isArray(s.type)) return s.type.join('|');
  return typeof s.type === 'string' ? s.type : 'any';
}

async function lastRuns(client: Client, tasks: readonly ServerTask[]): Promise<Map<string, ServerTaskRun>> {
  const out = new Map<string, ServerTaskRun>();
  await Promise.all(
    tasks.map(async (t) => {
      const [r] = await newestRuns(client, t.id, 1);
      if (r) out.set(t.id, r);
    }),
  );
  return out;
}

async function taskRows(client: Client, tasks: readonly ServerTask[], all: readonly ServerTask[]): Promise<Cell[][]> {
  const last = await lastRuns(client, tasks);
  const names = uniqueNames(all);
  return tasks.map((t) => {
    const r = last.get(t.id);
    return [t.name, t.type, scheduleText(t, names), t.enabled, t.enabled ? formatTime(t.nextRunAt) : '-', r ? `${runStateText(r)} ${formatTime(r.createdAt)}` : '-', t.id];
  });
}

function taskDetails(t: ServerTask, names: ReadonlyMap<string, string>, runs: readonly ServerTaskRun[]): string {
  const options = scheduleOptionsText(t.schedule);
  return (
    keyValues([
      ['Server task', t.name],
      ['ID', t.id],
      ...(t.description ? [['Description', t.description] as const] : []),
      ['Type', t.type],
      ['Enabled', t.enabled],
      ['Schedule', scheduleText(t, names)],
      ...(options.length ? [['Options', options.join('; ')] as const] : []),
      ['Next run', t.enabled ? (t.nextRunAt ? formatTime(t.nextRunAt) : 'on demand or on events only') : 'disabled'],
      ['Revision', t.revision],
      ['Created', formatTime(t.createdAt)],
      ['Updated', formatTime(t.updatedAt)],
    ]) +
    `Settings:\n${indent(JSON.stringify(t.settings, null, 2))}\n` +
    (runs.length ? `Last runs:\n${indent(table(SERVER_TASK_RUN_HEADERS, serverRunRows(runs)))}\n` : 'Last runs: none\n')
  );
}

function runDetails(r: ServerTaskRun, task: ServerTask | undefined): string {
  return (
    keyValues([
      ['Run', r.id],
      ['Server task', task ? `${task.name} (${r.taskId})` : r.taskId],
      ['State', runStateText(r)],
      ['Cause', r.cause],
      ['Attempt', r.attempt],
      ['Created', formatTime(r.createdAt)],
      ['Started', formatTime(r.startedAt)],
      ['Ended', formatTime(r.endedAt)],
      ['Duration', runDuration(r)],
      ...(r.createdBy ? [['Created by', r.createdBy] as const] : []),
      ...(r.message && !r.endedAt ? [['Progress', r.message] as const] : []),
      ['Summary', r.summary],
    ]) +
    (r.result ? `Result:\n${indent(JSON.stringify(r.result, null, 2))}\n` : 'Result: (none)\n') +
    (r.outputTail ? `Output (tail):\n${r.outputTail.replace(/\n?$/, '\n')}` : 'Output: (none)\n')
  );
}

// ---------------------------------------------------------------------------------------------
// Options → API bodies
// ---------------------------------------------------------------------------------------------

const SCHEDULE_KEYS = ['schedule', 'timeBasis', 'randomize', 'runMissed', 'missedDelay', 'stopAfter', 'retries', 'retryDelay', 'start', 'end'] as const;
const CREATE_KEYS = ['name', 'description', 'type', 'settings', 'secret', 'disabled', ...SCHEDULE_KEYS] as const;

function scheduleValues(opts: Opts): TaskOptionValues {
  const o: Record<string, unknown> = {};
  for (const k of SCHEDULE_KEYS) if (opts[k] !== undefined) o[k] = opts[k];
  return o as TaskOptionValues;
}
function hasScheduleOption(opts: Opts): boolean {
  return SCHEDULE_KEYS.some((k) => opts[k] !== undefined);
}

/** The schedule from the options (over `base` for update); triggers a server task cannot use are usage errors. */
function serverSchedule(opts: Opts, base?: Schedule): Schedule {
  const s = buildSchedule(scheduleValues(opts), base);
  const allowed: readonly string[] = SERVER_TASK_TRIGGERS;
  for (const t of s.triggers) {
    if (!allowed.includes(t.type)) {
      throw new UsageError(`--schedule: a server task cannot use the "${t.type}" trigger (it takes once, every, daily, weekly, monthly, cron, on-demand, after or repository-content)`);
    }
  }
  return s;
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown, option: string): void {
  const keys = path.split('.');
  if (keys.some((k) => !k)) throw new UsageError(`${option}: "${path}" is not a settings path (keys joined with ".", as in delivery.email.smtp.password)`);
  let o = obj;
  for (const k of keys.slice(0, -1)) {
    const next = o[k];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) o[k] = {};
    else o[k] = { ...(next as Record<string, unknown>) };
    o = o[k] as Record<string, unknown>;
  }
  o[keys[keys.length - 1]!] = value;
}

/**
 * --settings (merged over `base`, top-level keys; null removes a key) then --secret PATH=NAME.
 * Undefined when neither is given.
 */
async function buildSettings(opts: Opts, base: Record<string, unknown> = {}): Promise<Record<string, unknown> | undefined> {
  if (opts.settings === undefined && opts.secret === undefined) return undefined;
  const s: Record<string, unknown> = { ...base };
  if (opts.settings !== undefined) {
    const given = await jsonOrFile(opts.settings, '--settings');
    if (typeof given !== 'object' || given === null || Array.isArray(given)) throw new UsageError('--settings must be a JSON object');
    for (const [k, v] of Object.entries(given)) {
      if (v === null) delete s[k];
      else s[k] = v;
    }
  }
  for (const e of (opts.secret as string[] | undefined) ?? []) {
    const eq = e.indexOf('=');
    if (eq < 1 || eq === e.length - 1) throw new UsageError(`--secret "${e}" is not PATH=SECRET (as in passphrase=backup-key)`);
    setPath(s, e.slice(0, eq), { $secret: e.slice(eq + 1) }, '--secret');
  }
  return s;
}

function addSettingsOptions(cmd: Command, forUpdate: boolean): Command {
  return cmd
    .option(
      '--settings <json|@file>',
      forUpdate ? 'settings as JSON, merged over the current ones by top-level key (null removes a key)' : 'settings as JSON (see "garrison server-task types")',
    )
    .option('--secret <PATH=SECRET>', 'a setting (dotted path) that refers to a stored secret, as {"$secret": SECRET} (repeatable)', collect);
}

function addScheduleOptions(cmd: Command): Command {
  return cmd
    .option('--schedule <spec>', 'when to run (repeatable; see below)', collect)
    .option('--time-basis <basis>', "local (the server's zone), UTC, or a zone like Europe/Paris")
    .option('--randomize <min>', 'start at a random moment within this many minutes')
    .option('--run-missed', 'run once at start-up when the server was down at a fire time')
    .option('--no-run-missed', 'do not run missed fire times')
    .option('--missed-delay <min>', 'with --run-missed: wait this long after start-up')
    .option('--stop-after <min>', 'stop a run (timed out) after this many minutes')
    .option('--retries <n>', 'retry a failed run this many times')
    .option('--retry-delay <sec>', 'seconds between retries (default 60)')
    .option('--start <iso>', 'do not fire before this date-time')
    .option('--end <iso>', 'do not fire after this date-time')
    .addHelpText('after', `\n${SERVER_SCHEDULE_HELP}\n`);
}

// ---------------------------------------------------------------------------------------------
// run --wait
// ---------------------------------------------------------------------------------------------

function isFinal(state: string): boolean {
  return (finalServerTaskRunStates as readonly string[]).includes(state);
}

/** Polls the run until it is final or the time is up; a line each time its progress changes. */
async function waitForRun(io: Io, client: Client, run: ServerTaskRun, timeoutMs: number, sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))): Promise<{ run: ServerTaskRun; timedOut: boolean }> {
  const deadline = Date.now() + timeoutMs;
  let last = run;
  let lastLine = '';
  const show = (r: ServerTaskRun) => {
    if (io.json || isFinal(r.state)) return;
    const line = `${runStateText(r)}${r.message ? `: ${r.message}` : ''}`;
    if (line !== lastLine) io.out(`  ${line}\n`);
    lastLine = line;
  };
  show(last);
  for (let polls = 0; !isFinal(last.state); polls++) {
    if (Date.now() >= deadline) return { run: last, timedOut: true };
    await sleep(Math.min(250 + polls * 50, 2000));
    try {
      last = await client.api.call(getServerTaskRun, { params: { id: run.id } });
    } catch (err) {
      // A server restarting is waited out; the run resumes there.
      if (!(err instanceof ApiError) || !['UNAVAILABLE', 'INTERNAL', 'RATE_LIMITED'].includes(err.code)) throw err;
    }
    show(last);
  }
  return { run: last, timedOut: false };
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

export function registerServerTaskCommands(program: Command, state: RunState): void {
  const st = program
    .command('server-task')
    .alias('server-tasks')
    .description('Server tasks: work the server does itself (maintenance, backup, reports, downloads), scheduled like tasks');

  act(st.command('types').description("Server task types, with each type's settings fields"), state, async (io) => {
    const client = await io.client();
    const types = await client.api.call(listServerTaskTypes, {});
    if (io.json) return io.print(types, () => '');
    if (types.length === 0) return io.out('no server task types\n');
    io.out(
      types
        .map((t) => {
          const fields = settingsFields(t.settingsSchema);
          const head = `${t.type}: ${t.name}\n${indent(t.description)}\n`;
          const body = fields.length
            ? indent(table(['FIELD', 'TYPE', 'REQUIRED', 'DESCRIPTION'], fields.map((f) => [f.field, f.type, f.required, f.description])))
            : '  (no settings)';
          return `${head}${body}\n`;
        })
        .join('\n'),
    );
  });

  act(st.command('list').description('Server tasks, with their next and last runs').option('--type <type>', 'only server tasks of this type'), state, async (io, opts) => {
    const client = await io.client();
    const tasks = await allServerTasks(client, opts.type);
    if (io.json) return io.print(tasks, () => '');
    if (tasks.length === 0) return io.out('no server tasks\n');
    const all = opts.type !== undefined ? await allServerTasks(client) : tasks;
    io.out(table(SERVER_TASK_HEADERS, await taskRows(client, tasks, all)));
  });

  act(
    st.command('show').description('One server task, with its next run and last runs').argument('<task>', 'id or name').option('--runs <n>', 'how many of the last runs (default 5)'),
    state,
    async (io, opts, [ref]) => {
      const limit = parseIntOption(opts.runs ?? '5', '--runs', 0, 1000)!;
      const client = await io.client();
      const all = await allServerTasks(client);
      const t = await resolveServerTask(client, ref!, all);
      const runs = limit > 0 ? await newestRuns(client, t.id, limit) : [];
      io.print({ ...t, lastRuns: runs }, () => taskDetails(t, uniqueNames(all), runs));
    },
  );

  act(
    addScheduleOptions(
      addSettingsOptions(
        st
          .command('create')
          .description('Create a server task from options, or from a JSON body with --file')
          .option('--name <name>', 'server task name')
          .option('--description <text>', 'description')
          .option('--type <type>', 'the server task type (see "garrison server-task types")'),
        false,
      )
        .option('--disabled', 'the server task is disabled')
        .option('--file <task.json>', 'create from a JSON ServerTaskCreate body instead of options ("-": standard input)'),
    ),
    state,
    async (io, opts) => {
      let body: ServerTaskCreate;
      if (opts.file !== undefined) {
        const given = CREATE_KEYS.filter((k) => opts[k] !== undefined);
        if (given.length) throw new UsageError(`--file gives the whole server task; drop --${given[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
        const doc = await readJson(opts.file, '--file');
        if (typeof doc === 'object' && doc !== null && 'format' in doc) {
          throw new UsageError(`${opts.file} is an export document: use "garrison ${(doc as { format?: unknown }).format === 'garrison.tasks' ? 'task' : 'server-task'} import ${opts.file}"`);
        }
        body = doc as ServerTaskCreate;
      } else {
        // Usage errors first, before any request.
        if (!opts.name?.trim()) throw new UsageError('give the server task a name: --name NAME');
        if (!opts.type?.trim()) throw new UsageError('give the server task type: --type TYPE (see garrison server-task types)');
        const schedule = serverSchedule(opts);
        body = { name: opts.name, type: opts.type, settings: (await buildSettings(opts)) ?? {}, schedule };
        if (opts.description !== undefined) body.description = opts.description;
        if (opts.disabled) body.enabled = false;
      }
      const client = await io.client();
      await linkAfterTriggers(client, body.schedule?.triggers);
      const t = await client.api.call(createServerTask, { body });
      io.print(t, () => `created server task "${t.name}" (${t.id})${t.nextRunAt ? `, next run ${formatTime(t.nextRunAt)}` : ''}\n`);
    },
  );

  act(
    addScheduleOptions(
      addSettingsOptions(
        st
          .command('update')
          .alias('set')
          .description('Change a server task: any subset of the create options (refused with CONFLICT when it changed meanwhile)')
          .argument('<task>', 'id or name')
          .option('--name <name>', 'new name')
          .option('--description <text>', 'description'),
        true,
      )
        .option('--enabled', 'the server task is enabled')
        .option('--disabled', 'the server task is disabled')
        .option('--revision <n>', 'change only if the server task is still at this revision (default: the one just read)'),
    ),
    state,
    async (io, opts, [ref]) => {
      if (opts.enabled && opts.disabled) throw new UsageError('give --enabled or --disabled, not both');
      if (opts.name !== undefined && !opts.name.trim()) throw new UsageError('--name is empty');
      const revision = parseIntOption(opts.revision, '--revision', 1);
      const client = await io.client();
      const cur = await resolveServerTask(client, ref!);
      const patch: ServerTaskUpdate = {};
      if (opts.name !== undefined) patch.name = opts.name;
      if (opts.description !== undefined) patch.description = opts.description;
      const settings = await buildSettings(opts, cur.settings);
      if (settings !== undefined) patch.settings = settings;
      if (hasScheduleOption(opts)) {
        patch.schedule = serverSchedule(opts, cur.schedule);
        await linkAfterTriggers(client, patch.schedule.triggers);
      }
      if (opts.enabled) patch.enabled = true;
      if (opts.disabled) patch.enabled = false;
      if (Object.keys(patch).length === 0) throw new UsageError('nothing to change: give at least one option (see garrison server-task update --help)');
      // The revision read above: a change made in between is refused rather than overwritten.
      patch.revision = revision ?? cur.revision;
      const t = await client.api.call(updateServerTask, { params: { id: cur.id }, body: patch });
      io.print(t, () => `changed server task "${t.name}" (revision ${t.revision})\n`);
    },
  );

  for (const [verb, what] of [
    ['enable', 'Enable a server task'],
    ['disable', 'Disable a server task: its schedule stops firing'],
  ] as const) {
    act(st.command(verb).description(what).argument('<task>', 'id or name'), state, async (io, _opts, [ref]) => {
      const client = await io.client();
      const cur = await resolveServerTask(client, ref!);
      const t = await client.api.call(verb === 'enable' ? enableServerTask : disableServerTask, { params: { id: cur.id } });
      io.print(t, () => `server task "${t.name}" ${verb}d\n`);
    });
  }

  act(
    st
      .command('run')
      .description('Run a server task now (refused with CONFLICT while a run is pending or running)')
      .argument('<task>', 'id or name')
      .option('--wait', "wait for the run's final state, showing its progress; exit 1 unless it succeeded")
      .option('--wait-timeout <sec>', 'with --wait: give up after this many seconds (exit 1)', '3600'),
    state,
    async (io, opts, [ref]) => {
      const timeoutSec = parseIntOption(opts.waitTimeout, '--wait-timeout', 1, 7 * 86400)!;
      const client = await io.client();
      const cur = await resolveServerTask(client, ref!);
      const run = await client.api.call(runServerTask, { params: { id: cur.id } });
      if (!opts.wait) {
        io.print(run, () => `server task "${cur.name}": run ${run.id} ${run.state}; see: garrison server-task run-show ${run.id}\n`);
        return 0;
      }
      if (!io.json) io.out(`server task "${cur.name}": run ${run.id} started\n`);
      const res = await waitForRun(io, client, run, timeoutSec * 1000);
      const r = res.run;
      if (io.json) io.out(`${JSON.stringify({ ...r, timedOut: res.timedOut }, null, 2)}\n`);
      if (res.timedOut) {
        io.err(`stopped waiting after ${timeoutSec}s: run ${r.id} is still ${r.state} (garrison server-task stop ${cur.id} stops it)\n`);
        return 1;
      }
      if (!io.json) io.out(`${r.state} in ${runDuration(r)}${r.summary ? `: ${r.summary}` : ''}\n`);
      if (SUCCESS_STATES.includes(r.state)) return 0;
      if (!io.json) io.err(`the run did not succeed (${r.state}); see: garrison server-task run-show ${r.id}\n`);
      return 1;
    },
  );

  act(st.command('stop').description('Stop a server task: pending runs are cancelled, a running one is asked to stop').argument('<task>', 'id or name'), state, async (io, _opts, [ref]) => {
    const client = await io.client();
    const cur = await resolveServerTask(client, ref!);
    const r = await client.api.call(stopServerTask, { params: { id: cur.id } });
    io.print(r, () =>
      r.cancelled + r.stopping === 0
        ? `server task "${cur.name}" has no pending or running run\n`
        : `server task "${cur.name}" stopped: ${r.cancelled} pending run${r.cancelled === 1 ? '' : 's'} cancelled, ${r.stopping} running run${r.stopping === 1 ? '' : 's'} asked to stop\n`,
    );
  });

  act(
    st.command('copy').description('Copy a server task').argument('<task>', 'id or name').option('--name <name>', 'name of the copy (default: "NAME (copy)")'),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const cur = await resolveServerTask(client, ref!);
      const t = await client.api.call(copyServerTask, { params: { id: cur.id }, body: opts.name !== undefined ? { name: opts.name } : {} });
      io.print(t, () => `copied to server task "${t.name}" (${t.id})\n`);
    },
  );

  act(
    st
      .command('export')
      .description('Export server tasks (all, or those given) as a portable JSON document; secrets by reference only')
      .argument('[tasks...]', 'ids or names')
      .option('-o, --output <file>', 'write to this file instead of standard output'),
    state,
    async (io, opts, refs) => {
      const client = await io.client();
      let ids: string[] | undefined;
      if (refs.length) {
        const all = await allServerTasks(client);
        ids = await Promise.all(refs.map(async (r) => (await resolveServerTask(client, r, all)).id));
      }
      const doc: ServerTaskExport = await client.api.call(exportServerTasks, { query: ids ? { ids: ids.join(',') } : {} });
      const text = `${JSON.stringify(doc, null, 2)}\n`;
      if (opts.output && opts.output !== '-') {
        await writeText(opts.output, text, '--output');
        io.err(`exported ${doc.tasks.length} server task${doc.tasks.length === 1 ? '' : 's'} to ${opts.output}\n`);
      } else io.out(text);
    },
  );

  act(
    st.command('import').description('Import server tasks from an export document; all or nothing').argument('<file>', 'the document ("-": standard input)'),
    state,
    async (io, _opts, [file]) => {
      const doc = await readJson(file!, 'import');
      if (typeof doc === 'object' && doc !== null && (doc as { format?: unknown }).format === 'garrison.tasks') {
        throw new UsageError(`${file} is a client task export: use "garrison task import ${file}"`);
      }
      const client = await io.client();
      const created = await client.api.call(importServerTasks, { body: doc });
      if (io.json) return io.print(created, () => '');
      io.out(`imported ${created.length} server task${created.length === 1 ? '' : 's'}\n`);
      if (created.length) io.out(table(SERVER_TASK_HEADERS, await taskRows(client, created, await allServerTasks(client))));
    },
  );

  act(st.command('delete').description('Delete a server task; a running run is stopped').argument('<task>', 'id or name'), state, async (io, _opts, [ref]) => {
    const client = await io.client();
    const cur = await resolveServerTask(client, ref!);
    await client.api.call(deleteServerTask, { params: { id: cur.id } });
    io.print({ deleted: cur.id }, () => `deleted server task "${cur.name}" (${cur.id})\n`);
  });

  act(
    st
      .command('runs')
      .description("A server task's runs, newest first")
      .argument('<task>', 'id or name')
      .addOption(new Option('--state <state>', 'runs in this state').choices(RUN_STATES))
      .option('--limit <n>', 'at most this many (default 20)', '20'),
    state,
    async (io, opts, [ref]) => {
      const limit = parseIntOption(opts.limit, '--limit', 1, 1000);
      const client = await io.client();
      const cur = await resolveServerTask(client, ref!);
      const runs = await newestRuns(client, cur.id, limit ?? 20, opts.state);
      if (io.json) return io.print(runs, () => '');
      io.out(runs.length ? table(SERVER_TASK_RUN_HEADERS, serverRunRows(runs)) : `server task "${cur.name}" has no runs${opts.state ? ` in state ${opts.state}` : ''}\n`);
    },
  );

  act(st.command('run-show').description('One server task run: summary, result and output tail').argument('<run>', 'run id'), state, async (io, _opts, [id]) => {
    const client = await io.client();
    const r = await client.api.call(getServerTaskRun, { params: { id: id! } });
    if (io.json) return io.print(r, () => '');
    const task = await client.api.call(getServerTask, { params: { id: r.taskId } }).catch(() => undefined);
    io.out(runDetails(r, task));
  });
}
