import { Option, type Command } from 'commander';
import {
  copyTask,
  createTask,
  deleteTask,
  disableTask,
  enableTask,
  exportTasks,
  getRunNowProgress,
  getTaskProgress,
  importTasks,
  listTaskResults,
  listTasks,
  PAGE_LIMIT_MAX,
  runStates,
  runTaskNow,
  stopTask,
  updateTask,
  type Run,
  type RunNowBody,
  type RunNowProgress,
  type RunState as TaskRunState,
  type Task,
  type TaskCreate,
  type TaskProgress,
  type TaskResult,
  type Trigger,
} from '@garrison/protocol';
import { UsageError, type Client } from '../client.ts';
import { act, type Io, type Opts, type RunState } from '../context.ts';
import { formatTime, indent, keyValues, parseIntOption, table, type Cell } from '../format.ts';
import { jsonOrFile, readJson, readText, writeText } from '../files.ts';
import { deviceNames, Groups, resolveDevice, resolveTask, resolveTaskId } from '../resolve.ts';
import { formatTrigger, SCHEDULE_SPEC_HELP } from '../schedule-spec.ts';
import { buildTaskCreate, buildTaskUpdate, formatSelection, scheduleOptionsText, type ResolvedTaskInputs, type TaskOptionValues } from '../task-options.ts';
import { joinedLater, progressExitCode, progressLine, watchProgress } from '../watch.ts';

export const TASK_HEADERS = ['NAME', 'TYPE', 'TARGET', 'SCHEDULE', 'ENABLED', 'ID'];
export const RUN_HEADERS = ['TASK', 'DEVICE', 'STATE', 'CAUSE', 'STARTED', 'ENDED', 'EXIT', 'ID'];

const collect = (v: string, prev?: string[]) => [...(prev ?? []), v];

/** The triggers as specs; after-task triggers name the other task when its name reads unambiguously. */
export function scheduleText(t: Pick<Task, 'schedule'>, taskNames?: ReadonlyMap<string, string>): string {
  return t.schedule.triggers
    .map((x) => {
      const name = x.type === 'after-task' ? taskNames?.get(x.taskId) : undefined;
      return name && !/[:,;]/.test(name) && x.type === 'after-task' ? formatTrigger({ ...x, taskId: name }) : formatTrigger(x);
    })
    .join(', ');
}

/** Names of the tasks that after-task triggers refer to (one request, only when there are any). */
async function afterTaskNames(client: Client, tasks: readonly Task[]): Promise<Map<string, string>> {
  if (!tasks.some((t) => t.schedule.triggers.some((x) => x.type === 'after-task'))) return new Map();
  const all = await allTasks(client);
  const count = new Map<string, number>();
  for (const t of all) count.set(t.name, (count.get(t.name) ?? 0) + 1);
  return new Map(all.filter((t) => count.get(t.name) === 1).map((t) => [t.id, t.name]));
}

/** Every task the caller may see (a page of a thousand at a time). */
export function allTasks(client: Client, query: { product?: string; scopeType?: 'local' | 'group' | 'global'; groupId?: string; deviceId?: string; search?: string } = {}): Promise<Task[]> {
  return client.api.all(listTasks, { query: { ...query, limit: PAGE_LIMIT_MAX } });
}

/** How a task's scope reads, given group paths and device names. */
export function scopeText(task: Pick<Task, 'scope'>, groupPath: (id: string) => string, deviceName: (id: string) => string): string {
  const s = task.scope;
  if (s.type === 'group') return `${groupPath(s.groupId)}${s.includeSubgroups === false ? ' (not subgroups)' : ''}`;
  if (s.type === 'local') return `device ${deviceName(s.deviceId)}`;
  const parts: string[] = [];
  if (s.deviceIds?.length) parts.push(s.deviceIds.length <= 3 ? `devices ${s.deviceIds.map(deviceName).join(', ')}` : `${s.deviceIds.length} devices`);
  if (s.selection) parts.push(`select ${formatSelection(s.selection)}`);
  return parts.join(' and ') || 'global';
}

async function scopeNamer(client: Client, tasks: readonly Task[]) {
  const groups = new Groups(client);
  const paths = new Map((await groups.list()).map((g) => [g.id, g.path]));
  const ids = tasks.flatMap((t) => (t.scope.type === 'local' ? [t.scope.deviceId] : t.scope.type === 'global' ? (t.scope.deviceIds ?? []).slice(0, 3) : []));
  const names = await deviceNames(client, ids);
  return (t: Pick<Task, 'scope'>) =>
    scopeText(
      t,
      (id) => paths.get(id) ?? id,
      (id) => names.get(id) ?? id,
    );
}

export async function taskRows(client: Client, tasks: readonly Task[]): Promise<Cell[][]> {
  const [scope, names] = await Promise.all([scopeNamer(client, tasks), afterTaskNames(client, tasks)]);
  return tasks.map((t) => [t.name, t.product === 'garrison' ? t.type : `${t.product}/${t.type}`, scope(t), scheduleText(t, names), t.enabled, t.id]);
}

export function runRows(runs: readonly Run[], taskNames: ReadonlyMap<string, string>, devNames: ReadonlyMap<string, string>): Cell[][] {
  return runs.map((r) => [
    taskNames.get(r.taskId) ?? r.taskId,
    devNames.get(r.deviceId) ?? r.deviceId,
    r.percent !== null && r.state === 'running' ? `running ${r.percent}%` : r.state,
    r.cause,
    formatTime(r.startedAt),
    formatTime(r.endedAt),
    r.exitCode,
    r.id,
  ]);
}

async function taskDetails(client: Client, t: Task): Promise<string> {
  const [scope, names] = await Promise.all([scopeNamer(client, [t]), afterTaskNames(client, [t])]);
  const settings = JSON.stringify(t.settings, null, 2);
  return (
    keyValues([
      ['Task', t.name],
      ['ID', t.id],
      ...(t.description ? [['Description', t.description] as const] : []),
      ['Type', `${t.product}/${t.type}`],
      ['Enabled', t.enabled],
      ['Target', `${t.scope.type}: ${scope(t)}`],
      ['Schedule', scheduleText(t, names)],
      ...(scheduleOptionsText(t.schedule).length ? [['Options', scheduleOptionsText(t.schedule).join('; ')] as const] : []),
      ['Revision', t.revision],
      ['Origin', t.origin],
      ['Created', formatTime(t.createdAt)],
      ['Updated', formatTime(t.updatedAt)],
    ]) + `Settings:\n${indent(settings)}\n`
  );
}

/** The task options shared by `task create` and `task set`. */
function addTaskOptions(cmd: Command, forSet: boolean): Command {
  cmd
    .option('--name <name>', 'task name')
    .option('--description <text>', 'description')
    .option('--group <group>', 'target a group (id or path), with its subgroups')
    .option('--subgroups', 'with --group: also the subgroups (the default)')
    .option('--no-subgroups', 'with --group: only devices directly in the group')
    .option('--device <device>', 'target one device (a local task)')
    .option('--devices <list>', 'target these devices (comma-separated ids or names)')
    .option('--select <criteria>', 'target devices matching tag=x,os=linux,name=web-*,product=p')
    .option('--command <cmd>', 'the command line to run')
    .option('--script-file <file>', 'a script to run (its content is stored in the task)')
    .addOption(new Option('--shell <shell>', 'sh, bash, powershell, cmd, or none (run --command directly)').choices(['sh', 'bash', 'powershell', 'cmd', 'none']))
    .option('--arg <arg>', 'an argument (repeatable)', collect)
    .option('--env <NAME=VALUE>', 'an environment variable (repeatable)', collect)
    .option('--env-secret <NAME=SECRET>', 'an environment variable set from a stored secret (repeatable)', collect)
    .option('--timeout <sec>', 'kill the script after this many seconds')
    .option('--success-codes <codes>', 'exit codes that mean success (default 0), e.g. 0,3')
    .option('--warning-codes <codes>', 'exit codes that mean success with warnings, e.g. 1')
    .option('--run-as <user>', 'run as this user (agent running as root)')
    .option('--cwd <dir>', 'working directory')
    .option('--product <id>', 'a plug-in product (default garrison)')
    .option('--type <type>', "the product's task type (default script)")
    .option('--settings <json|@file>', 'settings as JSON (for plug-in task types); the options above apply on top')
    .option('--schedule <spec>', 'when to run (repeatable; see below)', collect)
    .option('--time-basis <basis>', 'local (the device clock), UTC, or a zone like Europe/Paris')
    .option('--randomize <min>', 'start at a random moment within this many minutes')
    .option('--run-missed', 'run once at start-up when the device was off at a fire time')
    .option('--no-run-missed', 'do not run missed fire times')
    .option('--missed-delay <min>', 'with --run-missed: wait this long after start-up')
    .option('--stop-after <min>', 'stop a run (timed out) after this many minutes')
    .option('--retries <n>', 'retry a failed run this many times')
    .option('--retry-delay <sec>', 'seconds between retries (default 60)')
    .option('--start <iso>', 'do not fire before this date-time')
    .option('--end <iso>', 'do not fire after this date-time')
    .option('--run-now-expiry <min>', 'how long a run-now waits for offline devices (default 1440)')
    .option('--disabled', 'the task is disabled');
  if (forSet) {
    cmd.option('--enabled', 'the task is enabled').option('--clear-env', 'remove every environment variable first').option('--clear-args', 'remove every argument');
  } else {
    cmd.option('--file <task.json>', 'create from a JSON TaskCreate body instead of options ("-": standard input)');
  }
  return cmd.addHelpText('after', `\n${SCHEDULE_SPEC_HELP}\n`);
}

const TASK_OPTION_KEYS = [
  'name', 'description', 'group', 'subgroups', 'device', 'devices', 'select', 'command', 'scriptFile', 'shell', 'arg', 'env', 'envSecret', 'timeout',
  'successCodes', 'warningCodes', 'runAs', 'cwd', 'product', 'type', 'settings', 'schedule', 'timeBasis', 'randomize', 'runMissed', 'missedDelay', 'stopAfter',
  'retries', 'retryDelay', 'start', 'end', 'runNowExpiry', 'disabled', 'enabled', 'clearEnv', 'clearArgs',
] as const;

function taskOptionValues(opts: Opts): TaskOptionValues {
  const o: Record<string, unknown> = {};
  for (const k of TASK_OPTION_KEYS) if (opts[k] !== undefined && k !== 'settings') o[k] = opts[k];
  return o as TaskOptionValues;
}

/** Reads the files and resolves the groups and devices that the options name. */
async function resolveInputs(client: Client, opts: Opts): Promise<ResolvedTaskInputs> {
  const r: ResolvedTaskInputs = {};
  if (opts.group !== undefined) r.groupId = await new Groups(client).id(opts.group);
  if (opts.device !== undefined) r.deviceId = (await resolveDevice(client, opts.device)).id;
  if (opts.devices !== undefined) {
    const refs = String(opts.devices).split(',').map((s) => s.trim()).filter(Boolean);
    r.deviceIds = await Promise.all(refs.map(async (ref) => (await resolveDevice(client, ref)).id));
  }
  if (opts.scriptFile !== undefined) r.script = await readText(opts.scriptFile, '--script-file');
  if (opts.settings !== undefined) {
    const s = await jsonOrFile(opts.settings, '--settings');
    if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new UsageError('--settings must be a JSON object');
    r.settings = s as Record<string, unknown>;
  }
  return r;
}

/** after:NAME works too: task names in after-task triggers become ids. */
async function linkAfterTriggers(client: Client, triggers: Trigger[] | undefined): Promise<void> {
  if (!triggers?.some((t) => t.type === 'after-task')) return;
  const tasks = await allTasks(client);
  for (const t of triggers) if (t.type === 'after-task') t.taskId = await resolveTaskId(client, t.taskId, tasks);
}

/**
 * A task's progress, or with `requestId` that of one run-now (over the devices it was given
 * to, so a watch does not wait for devices that joined the targets afterwards).
 */
async function showProgressOrWatch(io: Io, client: Client, taskId: string, opts: Opts, prefix?: unknown, requestId?: string): Promise<number> {
  const fetchProgress = (): Promise<TaskProgress | RunNowProgress> =>
    requestId ? client.api.call(getRunNowProgress, { params: { id: taskId, requestId } }) : client.api.call(getTaskProgress, { params: { id: taskId } });
  if (!opts.watch) {
    const p = await fetchProgress();
    io.print(prefix ? { ...(prefix as object), progress: p } : p, () => `${progressLine(p)}${p.finished ? '' : ' (not finished)'}\n`);
    return 0;
  }
  const timeoutSec = parseIntOption(opts.watchTimeout ?? '600', '--watch-timeout', 1, 7 * 86400)!;
  const result = await watchProgress(fetchProgress, {
    tty: io.stdoutIsTTY && !io.json,
    out: io.json ? () => {} : io.out,
    timeoutMs: timeoutSec * 1000,
  });
  const p = result.progress;
  if (io.json) io.out(`${JSON.stringify(prefix ? { ...(prefix as object), progress: p, timedOut: result.timedOut } : { ...p, timedOut: result.timedOut }, null, 2)}\n`);
  if (p.targets === 0) {
    io.err('the task has no target devices\n');
    return 1;
  }
  if (result.timedOut) {
    io.err(`stopped waiting after ${timeoutSec}s: the task has not finished on every target (${p.notRun + (p.states.pending ?? 0) + (p.states.scheduled ?? 0) + (p.states.running ?? 0)} left)\n`);
    return 1;
  }
  const later = joinedLater(p);
  if (later.count > 0 && !io.json) {
    io.out(`${later.count} device${later.count === 1 ? '' : 's'} joined the targets after this run-now and ${later.count === 1 ? 'is' : 'are'} not part of it (${later.states}); see: garrison task progress ${taskId}\n`);
  }
  const code = progressExitCode(p);
  if (code !== 0 && !io.json) io.err(`the ${requestId ? 'run-now' : 'task'} did not succeed on every target; see: garrison task results ${taskId}\n`);
  return code;
}

export function registerTaskCommands(program: Command, state: RunState): void {
  const task = program.command('task').description('Tasks: what runs where and when; run now, watch, results');

  act(
    task
      .command('list')
      .description('Tasks')
      .option('--group <group>', 'tasks that target this group')
      .option('--device <device>', 'local tasks of this device')
      .addOption(new Option('--scope <type>', 'tasks of this scope type').choices(['local', 'group', 'global']))
      .option('--product <id>', 'tasks of this product'),
    state,
    async (io, opts) => {
      const client = await io.client();
      const query: Parameters<typeof allTasks>[1] = { scopeType: opts.scope as 'local' | 'group' | 'global' | undefined, product: opts.product };
      if (opts.group !== undefined) query.groupId = await new Groups(client).id(opts.group);
      if (opts.device !== undefined) query.deviceId = (await resolveDevice(client, opts.device)).id;
      const tasks = await allTasks(client, query);
      if (io.json) return io.print(tasks, () => '');
      io.out(tasks.length ? table(TASK_HEADERS, await taskRows(client, tasks)) : 'no tasks\n');
    },
  );

  act(task.command('show').description('One task').argument('<task>', 'id or name'), state, async (io, _opts, [ref]) => {
    const client = await io.client();
    const t = await resolveTask(client, ref!);
    if (io.json) return io.print(t, () => '');
    io.out(await taskDetails(client, t));
  });

  act(addTaskOptions(task.command('create').description('Create a task from options, or from a JSON body with --file'), false), state, async (io, opts) => {
    const client = await io.client();
    let body: TaskCreate;
    if (opts.file !== undefined) {
      const given = TASK_OPTION_KEYS.filter((k) => opts[k] !== undefined);
      if (given.length) throw new UsageError(`--file gives the whole task; drop --${given[0]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
      const doc = await readJson(opts.file, '--file');
      if (typeof doc === 'object' && doc !== null && (doc as { format?: unknown }).format === 'garrison.tasks') {
        throw new UsageError(`${opts.file} is a task export document: use "garrison task import ${opts.file}"`);
      }
      body = doc as TaskCreate;
    } else {
      // Usage errors first, before any request: the options checked with stand-in names.
      buildTaskCreate(taskOptionValues(opts), {
        groupId: '-',
        deviceId: '-',
        deviceIds: ['-'],
        script: 'x',
        ...(opts.settings !== undefined ? { settings: { command: '-' } } : {}),
      });
      body = buildTaskCreate(taskOptionValues(opts), await resolveInputs(client, opts));
      await linkAfterTriggers(client, body.schedule.triggers);
    }
    const t = await client.api.call(createTask, { body });
    io.print(t, () => `created task "${t.name}" (${t.id})\n`);
  });

  act(
    addTaskOptions(task.command('set').description('Change a task: any subset of the create options').argument('<task>', 'id or name'), true),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const current = await resolveTask(client, ref!);
      const patch = buildTaskUpdate(taskOptionValues(opts), await resolveInputs(client, opts), current);
      await linkAfterTriggers(client, patch.schedule?.triggers);
      const t = await client.api.call(updateTask, { params: { id: current.id }, body: patch });
      io.print(t, () => `changed task "${t.name}" (revision ${t.revision})\n`);
    },
  );

  for (const [verb, what] of [
    ['enable', 'Enable a task'],
    ['disable', 'Disable a task: it stops firing; agents drop it'],
  ] as const) {
    act(task.command(verb).description(what).argument('<task>', 'id or name'), state, async (io, _opts, [ref]) => {
      const client = await io.client();
      const cur = await resolveTask(client, ref!);
      const t = await client.api.call(verb === 'enable' ? enableTask : disableTask, { params: { id: cur.id } });
      io.print(t, () => `task "${t.name}" ${verb}d\n`);
    });
  }

  act(task.command('delete').description('Delete a task; agents drop it at their next contact').argument('<task>', 'id or name'), state, async (io, _opts, [ref]) => {
    const client = await io.client();
    const cur = await resolveTask(client, ref!);
    await client.api.call(deleteTask, { params: { id: cur.id } });
    io.print({ deleted: cur.id }, () => `deleted task "${cur.name}" (${cur.id})\n`);
  });

  act(
    task.command('copy').description('Copy a task').argument('<task>', 'id or name').option('--name <name>', 'name of the copy (default: "NAME (copy)")'),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const cur = await resolveTask(client, ref!);
      const t = await client.api.call(copyTask, { params: { id: cur.id }, body: opts.name !== undefined ? { name: opts.name } : {} });
      io.print(t, () => `copied to task "${t.name}" (${t.id})\n`);
    },
  );

  act(
    task
      .command('export')
      .description('Export tasks (all, or those given) as a portable JSON document; secrets by reference only')
      .argument('[tasks...]', 'ids or names')
      .option('-o, --output <file>', 'write to this file instead of standard output'),
    state,
    async (io, opts, refs) => {
      const client = await io.client();
      let ids: string[] | undefined;
      if (refs.length) {
        const tasks = await allTasks(client);
        ids = await Promise.all(refs.map((r) => resolveTaskId(client, r, tasks)));
      }
      const doc = await client.api.call(exportTasks, { query: ids ? { ids: ids.join(',') } : {} });
      const text = `${JSON.stringify(doc, null, 2)}\n`;
      if (opts.output && opts.output !== '-') {
        await writeText(opts.output, text, '--output');
        io.err(`exported ${doc.tasks.length} task${doc.tasks.length === 1 ? '' : 's'} to ${opts.output}\n`);
      } else io.out(text);
    },
  );

  act(
    task.command('import').description('Import tasks from an export document; all or nothing').argument('<file>', 'the document ("-": standard input)'),
    state,
    async (io, _opts, [file]) => {
      const client = await io.client();
      const doc = await readJson(file!, 'import');
      const created = await client.api.call(importTasks, { body: doc });
      if (io.json) return io.print(created, () => '');
      io.out(`imported ${created.length} task${created.length === 1 ? '' : 's'}\n`);
      if (created.length) io.out(table(TASK_HEADERS, await taskRows(client, created)));
    },
  );

  act(
    task
      .command('run')
      .description('Run a task now on every target (or those given); offline targets get it at their next contact')
      .argument('<task>', 'id or name')
      .option('--expiry <min>', 'how long offline targets may still get the run (minutes)')
      .option('--devices <list>', 'only on these targets (comma-separated ids, names or host names)')
      .option('--failed', 'only on targets whose latest run failed or timed out')
      .option('--watch', 'show live progress until the task has finished on its targets')
      .option('--watch-timeout <sec>', 'with --watch: give up after this many seconds (exit 1)', '600'),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const cur = await resolveTask(client, ref!);
      const expiryMinutes = parseIntOption(opts.expiry, '--expiry', 1, 525600);
      const body: RunNowBody = expiryMinutes !== undefined ? { expiryMinutes } : {};
      if (opts.devices !== undefined) {
        const refs = String(opts.devices).split(',').map((x) => x.trim()).filter(Boolean);
        if (refs.length === 0) throw new UsageError('--devices needs at least one device');
        body.deviceIds = await Promise.all(refs.map(async (r) => (await resolveDevice(client, r)).id));
      }
      if (opts.failed) body.onlyFailed = true;
      const res = await client.api.call(runTaskNow, { params: { id: cur.id }, body });
      if (!opts.watch) {
        io.print(res, () => `run requested on ${res.targets} device${res.targets === 1 ? '' : 's'} (${res.delivered} connected now; the others until ${formatTime(res.expiresAt)}), request ${res.requestId}\n`);
        return 0;
      }
      if (!io.json) io.out(`task "${cur.name}": run requested on ${res.targets} device${res.targets === 1 ? '' : 's'} (${res.delivered} connected now)\n`);
      return showProgressOrWatch(io, client, cur.id, opts, { run: res }, res.requestId);
    },
  );

  act(
    task.command('stop').description('Stop the task where it runs and cancel undelivered run-nows').argument('<task>', 'id or name'),
    state,
    async (io, _opts, [ref]) => {
      const client = await io.client();
      const cur = await resolveTask(client, ref!);
      const r = await client.api.call(stopTask, { params: { id: cur.id } });
      io.print(r, () => `task "${cur.name}" stopped: ${r.signalled} connected device${r.signalled === 1 ? '' : 's'} told to stop, ${r.cancelledPending} undelivered run${r.cancelledPending === 1 ? '' : 's'} cancelled\n`);
    },
  );

  act(
    task
      .command('progress')
      .description('How many targets are in each state (by their latest run)')
      .argument('<task>', 'id or name')
      .option('--watch', 'follow until the task has finished on its targets')
      .option('--watch-timeout <sec>', 'with --watch: give up after this many seconds (exit 1)', '600'),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const cur = await resolveTask(client, ref!);
      return showProgressOrWatch(io, client, cur.id, opts);
    },
  );

  act(
    task
      .command('results')
      .description('The latest run on each device')
      .argument('<task>', 'id or name')
      .addOption(new Option('--state <state>', 'only results in this state').choices([...runStates]))
      .option('--search <text>', 'only devices whose name or host name contains this')
      .option('--output', "also print each run's output tail"),
    state,
    async (io, opts, [ref]) => {
      const client = await io.client();
      const cur = await resolveTask(client, ref!);
      const runs: TaskResult[] = await client.api.all(listTaskResults, {
        params: { id: cur.id },
        query: { limit: PAGE_LIMIT_MAX, ...(opts.state ? { state: opts.state as TaskRunState } : {}), ...(opts.search ? { search: String(opts.search) } : {}) },
      });
      if (io.json) return io.print(runs, () => '');
      if (runs.length === 0) return io.out(opts.state || opts.search ? `task "${cur.name}" has no results that match\n` : `task "${cur.name}" has no runs yet\n`);
      const names = new Map(runs.map((r) => [r.deviceId, r.deviceName]));
      const sorted = [...runs].sort((a, b) => (names.get(a.deviceId) ?? a.deviceId).localeCompare(names.get(b.deviceId) ?? b.deviceId));
      io.out(
        table(
          ['DEVICE', 'STATE', 'EXIT', 'ENDED', 'REASON', 'RUN'],
          sorted.map((r) => [names.get(r.deviceId) ?? r.deviceId, r.state, r.exitCode, formatTime(r.endedAt), r.reason, r.id]),
        ),
      );
      if (opts.output) {
        for (const r of sorted) {
          io.out(`\n== ${names.get(r.deviceId) ?? r.deviceId}: ${r.state}${r.exitCode !== null ? ` (exit ${r.exitCode})` : ''} ==\n`);
          io.out(r.outputTail ? `${r.outputTail.replace(/\n?$/, '\n')}` : '(no output)\n');
        }
      }
    },
  );
}
