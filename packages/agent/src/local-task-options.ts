/**
 * `garrison agent task create|set` options, in the administrator's syntax: `--schedule SPEC`
 * (repeatable: every:15m, daily:02:30, cron:…), `--command`, `--script-file`, `--env` and the
 * schedule options, turned into the body of the agent's local API by the administrator CLI's
 * own functions (@garrison/cli task-options and schedule-spec), so that the two CLIs cannot
 * drift apart. `--schedule JSON|@FILE` and `--settings JSON|@FILE` are still taken as they are.
 */
import { readFile } from 'node:fs/promises';
import type { Schedule } from '@garrison/protocol';
import { buildSchedule, buildSettings, type TaskOptionValues } from '@garrison/cli/task-options';
import { UsageError } from '@garrison/cli/usage-error';

export { UsageError };

/** For parseArgs: the task options besides --name, --type, --product, --settings and the enable flags. */
export const LOCAL_TASK_OPTIONS = {
  schedule: { type: 'string', multiple: true },
  command: { type: 'string' },
  'script-file': { type: 'string' },
  shell: { type: 'string' },
  arg: { type: 'string', multiple: true },
  env: { type: 'string', multiple: true },
  timeout: { type: 'string' },
  'success-codes': { type: 'string' },
  'warning-codes': { type: 'string' },
  'run-as': { type: 'string' },
  cwd: { type: 'string' },
  'time-basis': { type: 'string' },
  randomize: { type: 'string' },
  'stop-after': { type: 'string' },
  retries: { type: 'string' },
  'retry-delay': { type: 'string' },
  start: { type: 'string' },
  end: { type: 'string' },
} as const;

export const LOCAL_TASK_USAGE = `Task options (as in "garrison task create"; see garrison task create --help):
  --schedule SPEC       repeatable: on-demand, check-in, agent-start, every:15m, daily:02:30,
                        weekly:mon-fri@08:00, monthly:15@09:00, cron:'0 3 * * 1-5', … (or JSON|@file)
  --command CMD | --script-file FILE   what to run (script tasks); --shell, --arg (repeatable),
                        --env NAME=VALUE (repeatable), --timeout SEC, --success-codes 0,3,
                        --warning-codes 1, --run-as USER, --cwd DIR
  --settings JSON|@file the settings as one object (options above are laid over it)
  --time-basis local|UTC|ZONE, --randomize MIN, --stop-after MIN, --retries N, --retry-delay SEC,
  --start DATE, --end DATE`;

export interface LocalTaskValues {
  schedule?: string[] | undefined;
  settings?: string | undefined;
  command?: string | undefined;
  'script-file'?: string | undefined;
  shell?: string | undefined;
  arg?: string[] | undefined;
  env?: string[] | undefined;
  timeout?: string | undefined;
  'success-codes'?: string | undefined;
  'warning-codes'?: string | undefined;
  'run-as'?: string | undefined;
  cwd?: string | undefined;
  'time-basis'?: string | undefined;
  randomize?: string | undefined;
  'stop-after'?: string | undefined;
  retries?: string | undefined;
  'retry-delay'?: string | undefined;
  start?: string | undefined;
  end?: string | undefined;
}

const SETTINGS_OPTIONS = ['command', 'script-file', 'shell', 'arg', 'env', 'timeout', 'success-codes', 'warning-codes', 'run-as', 'cwd'] as const;
const SCHEDULE_OPTIONS = ['schedule', 'time-basis', 'randomize', 'stop-after', 'retries', 'retry-delay', 'start', 'end'] as const;

async function jsonValue(value: string, what: string): Promise<unknown> {
  let text = value;
  if (value.startsWith('@')) {
    try {
      text = await readFile(value.slice(1), 'utf8');
    } catch (err) {
      throw new UsageError(`--${what}: cannot read ${value.slice(1)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`--${what} is not valid JSON`);
  }
}

function optionValues(v: LocalTaskValues): TaskOptionValues {
  const o: TaskOptionValues = {};
  if (v.command !== undefined) o.command = v.command;
  if (v['script-file'] !== undefined) o.scriptFile = v['script-file'];
  if (v.shell !== undefined) o.shell = v.shell;
  if (v.arg !== undefined) o.arg = v.arg;
  if (v.env !== undefined) o.env = v.env;
  if (v.timeout !== undefined) o.timeout = v.timeout;
  if (v['success-codes'] !== undefined) o.successCodes = v['success-codes'];
  if (v['warning-codes'] !== undefined) o.warningCodes = v['warning-codes'];
  if (v['run-as'] !== undefined) o.runAs = v['run-as'];
  if (v.cwd !== undefined) o.cwd = v.cwd;
  if (v.schedule !== undefined) o.schedule = v.schedule;
  if (v['time-basis'] !== undefined) o.timeBasis = v['time-basis'];
  if (v.randomize !== undefined) o.randomize = v.randomize;
  if (v['stop-after'] !== undefined) o.stopAfter = v['stop-after'];
  if (v.retries !== undefined) o.retries = v.retries;
  if (v['retry-delay'] !== undefined) o.retryDelay = v['retry-delay'];
  if (v.start !== undefined) o.start = v.start;
  if (v.end !== undefined) o.end = v.end;
  return o;
}

/**
 * The settings and schedule of a local task from the options: for `create` (no `current`)
 * both, for `set` only what the options change, laid over the task's current values.
 * Throws UsageError for a malformed option (exit code 2); the agent checks the result against
 * the task type's schema.
 */
export async function localTaskFields(v: LocalTaskValues, current?: { settings: unknown; schedule: Schedule }): Promise<{ settings?: Record<string, unknown>; schedule?: Schedule }> {
  const o = optionValues(v);
  const out: { settings?: Record<string, unknown>; schedule?: Schedule } = {};

  const json = v.settings !== undefined ? await jsonValue(v.settings, 'settings') : undefined;
  if (json !== undefined && (typeof json !== 'object' || json === null || Array.isArray(json))) throw new UsageError('--settings must be a JSON object');
  if (json !== undefined || SETTINGS_OPTIONS.some((k) => v[k] !== undefined) || !current) {
    // --settings replaces the settings; without it the options change the current ones.
    const base = (json as Record<string, unknown> | undefined) ?? (current && typeof current.settings === 'object' && current.settings !== null ? (current.settings as Record<string, unknown>) : {});
    const script = v['script-file'] !== undefined ? await readFile(v['script-file'], 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new UsageError(`--script-file: cannot read ${v['script-file']} (${err.code ?? err.message})`);
    }) : undefined;
    out.settings = buildSettings(o, script !== undefined ? { script } : {}, base);
  }

  const specs = v.schedule;
  if (specs?.length === 1 && /^\s*[{@]/.test(specs[0]!)) {
    // The JSON form: the whole schedule as the API takes it; the schedule options go over it.
    const schedule = (await jsonValue(specs[0]!, 'schedule')) as Schedule;
    const rest = { ...o };
    delete rest.schedule;
    out.schedule = SCHEDULE_OPTIONS.some((k) => k !== 'schedule' && v[k] !== undefined) ? buildSchedule(rest, schedule) : schedule;
  } else if (SCHEDULE_OPTIONS.some((k) => v[k] !== undefined) || !current) {
    out.schedule = buildSchedule(o, current?.schedule);
  }
  return out;
}
