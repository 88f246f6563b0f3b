/**
 * From `task create` / `task set` options to the API's TaskCreate and TaskUpdate bodies. Pure
 * functions: the command layer reads files and resolves group and device names to ids first
 * (ResolvedTaskInputs), so that these are unit-tested without a server.
 */
import type { Schedule, Scope, Selection, Task, TaskCreate, TaskUpdate } from '@garrison/protocol';
import { UsageError } from './usage-error.ts';
import { parseIntList, parseIntOption } from './format.ts';
import { parseScheduleSpecs, ScheduleSpecError } from './schedule-spec.ts';

/** The options as commander hands them over (strings; repeatable ones as arrays). */
export interface TaskOptionValues {
  name?: string;
  description?: string;
  // scope
  group?: string;
  device?: string;
  devices?: string;
  select?: string;
  subgroups?: boolean;
  // what to run
  product?: string;
  type?: string;
  command?: string;
  scriptFile?: string;
  shell?: string;
  arg?: string[];
  clearArgs?: boolean;
  env?: string[];
  envSecret?: string[];
  clearEnv?: boolean;
  timeout?: string;
  successCodes?: string;
  warningCodes?: string;
  runAs?: string;
  cwd?: string;
  // when
  schedule?: string[];
  timeBasis?: string;
  randomize?: string;
  runMissed?: boolean;
  missedDelay?: string;
  stopAfter?: string;
  retries?: string;
  retryDelay?: string;
  start?: string;
  end?: string;
  runNowExpiry?: string;
  enabled?: boolean;
  disabled?: boolean;
}

/** What the command layer found for the options that name files, groups or devices. */
export interface ResolvedTaskInputs {
  groupId?: string;
  deviceId?: string;
  deviceIds?: string[];
  /** The contents of --script-file. */
  script?: string;
  /** The object of --settings JSON|@FILE. */
  settings?: Record<string, unknown>;
}

const SHELLS = ['sh', 'bash', 'powershell', 'cmd', 'none'];
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DEFAULT_RETRY_DELAY_SECONDS = 60;

/** "tag=x,tag=y,os=linux,name=web-*,product=p" → a Selection. */
export function parseSelection(text: string): Selection {
  const sel: Selection = {};
  for (const part of text.split(',')) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf('=');
    if (eq < 1) throw new UsageError(`--select: "${p}" is not KEY=VALUE (tag, os, name, product)`);
    const key = p.slice(0, eq).trim().toLowerCase();
    const value = p.slice(eq + 1).trim();
    if (!value) throw new UsageError(`--select: ${key} has no value`);
    if (key === 'tag' || key === 'tags') sel.tags = [...new Set([...(sel.tags ?? []), ...value.split('+')])];
    else if (key === 'os') sel.os = [...new Set([...(sel.os ?? []), ...value.split('+')])];
    else if (key === 'name' || key === 'namepattern') {
      if (sel.namePattern !== undefined) throw new UsageError('--select: name is given twice');
      sel.namePattern = value;
    } else if (key === 'product') {
      if (sel.product !== undefined) throw new UsageError('--select: product is given twice');
      sel.product = value;
    } else throw new UsageError(`--select: unknown criterion "${key}" (tag, os, name, product)`);
  }
  if (Object.keys(sel).length === 0) throw new UsageError('--select needs at least one criterion, as in tag=web,os=linux');
  return sel;
}

function hasScopeOption(o: TaskOptionValues): boolean {
  return o.group !== undefined || o.device !== undefined || o.devices !== undefined || o.select !== undefined;
}

/** The scope the options name, or undefined when they name none. */
export function buildScope(o: TaskOptionValues, r: ResolvedTaskInputs): Scope | undefined {
  const given = [o.group !== undefined && '--group', o.device !== undefined && '--device', (o.devices !== undefined || o.select !== undefined) && '--devices/--select'].filter(Boolean);
  if (given.length > 1) throw new UsageError(`give one target: ${given.join(' or ')}`);
  if (o.subgroups !== undefined && o.group === undefined && (o.device !== undefined || o.devices !== undefined || o.select !== undefined)) {
    throw new UsageError('--subgroups / --no-subgroups go with --group');
  }
  if (o.group !== undefined) {
    if (!r.groupId) throw new Error('group not resolved');
    return { type: 'group', groupId: r.groupId, includeSubgroups: o.subgroups ?? true };
  }
  if (o.device !== undefined) {
    if (!r.deviceId) throw new Error('device not resolved');
    return { type: 'local', deviceId: r.deviceId };
  }
  if (o.devices !== undefined || o.select !== undefined) {
    const scope: Scope = { type: 'global' };
    if (o.devices !== undefined) {
      if (!r.deviceIds?.length) throw new UsageError('--devices needs at least one device');
      scope.deviceIds = r.deviceIds;
    }
    if (o.select !== undefined) scope.selection = parseSelection(o.select);
    return scope;
  }
  return undefined;
}

function hasSettingsOption(o: TaskOptionValues, r: ResolvedTaskInputs): boolean {
  return (
    r.settings !== undefined ||
    o.command !== undefined ||
    o.scriptFile !== undefined ||
    o.shell !== undefined ||
    o.arg !== undefined ||
    o.clearArgs !== undefined ||
    o.env !== undefined ||
    o.envSecret !== undefined ||
    o.clearEnv !== undefined ||
    o.timeout !== undefined ||
    o.successCodes !== undefined ||
    o.warningCodes !== undefined ||
    o.runAs !== undefined ||
    o.cwd !== undefined
  );
}

function keyValue(text: string, option: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq < 1) throw new UsageError(`${option} "${text}" is not NAME=VALUE`);
  const k = text.slice(0, eq);
  if (!ENV_NAME.test(k)) throw new UsageError(`${option}: "${k}" is not an environment variable name (letters, digits, "_", not starting with a digit)`);
  return [k, text.slice(eq + 1)];
}

/** Script settings from the options, over `base` (the current settings for `task set`). */
export function buildSettings(o: TaskOptionValues, r: ResolvedTaskInputs, base: Record<string, unknown> = {}): Record<string, unknown> {
  const s: Record<string, unknown> = { ...base, ...(r.settings ?? {}) };
  if (o.command !== undefined && o.scriptFile !== undefined) throw new UsageError('give --command or --script-file, not both');
  if (o.command !== undefined) {
    if (!o.command.trim()) throw new UsageError('--command is empty');
    s.command = o.command;
    delete s.script;
  }
  if (o.scriptFile !== undefined) {
    if (r.script === undefined) throw new Error('script file not read');
    if (!r.script.trim()) throw new UsageError(`the script file ${o.scriptFile} is empty`);
    s.script = r.script;
    delete s.command;
  }
  if (o.shell !== undefined) {
    if (!SHELLS.includes(o.shell)) throw new UsageError(`--shell must be one of ${SHELLS.join(', ')}, not "${o.shell}"`);
    s.shell = o.shell;
  }
  if (o.clearArgs) delete s.args;
  if (o.arg !== undefined) s.args = [...o.arg];
  if (o.clearEnv) delete s.env;
  if (o.env !== undefined || o.envSecret !== undefined) {
    const env: Record<string, unknown> = { ...((s.env as Record<string, unknown> | undefined) ?? {}) };
    for (const e of o.env ?? []) {
      const [k, v] = keyValue(e, '--env');
      env[k] = v;
    }
    for (const e of o.envSecret ?? []) {
      const [k, v] = keyValue(e, '--env-secret');
      if (!v) throw new UsageError(`--env-secret ${k}= names no secret`);
      env[k] = { $secret: v };
    }
    s.env = env;
  }
  const timeout = parseIntOption(o.timeout, '--timeout', 1, 604800);
  if (timeout !== undefined) s.timeoutSeconds = timeout;
  const success = parseIntList(o.successCodes, '--success-codes');
  if (success !== undefined) s.successExitCodes = success;
  const warning = parseIntList(o.warningCodes, '--warning-codes');
  if (warning !== undefined) s.warningExitCodes = warning;
  if (o.runAs !== undefined) s.runAs = o.runAs;
  if (o.cwd !== undefined) s.workingDirectory = o.cwd;
  return s;
}

function instant(text: string, option: string): string {
  const d = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text.trim()) || Number.isNaN(d.getTime())) {
    throw new UsageError(`${option} "${text}" is not a date-time (2026-12-01T10:00, read as local time without a zone, or with Z or +02:00)`);
  }
  return d.toISOString();
}

function timeBasis(text: string): string {
  const t = text.trim();
  if (t.toLowerCase() === 'local') return 'local';
  if (t.toLowerCase() === 'utc') return 'UTC';
  try {
    new Intl.DateTimeFormat('en', { timeZone: t });
  } catch {
    throw new UsageError(`--time-basis "${text}" is not "local", "UTC" or a time zone such as Europe/Paris`);
  }
  return t;
}

function hasScheduleOption(o: TaskOptionValues): boolean {
  return (
    o.schedule !== undefined ||
    o.timeBasis !== undefined ||
    o.randomize !== undefined ||
    o.runMissed !== undefined ||
    o.missedDelay !== undefined ||
    o.stopAfter !== undefined ||
    o.retries !== undefined ||
    o.retryDelay !== undefined ||
    o.start !== undefined ||
    o.end !== undefined ||
    o.runNowExpiry !== undefined
  );
}

/** The schedule from the options, over `base` (the current schedule for `task set`). */
export function buildSchedule(o: TaskOptionValues, base?: Schedule): Schedule {
  let triggers = base?.triggers;
  if (o.schedule !== undefined) {
    try {
      triggers = parseScheduleSpecs(o.schedule);
    } catch (err) {
      if (err instanceof ScheduleSpecError) throw new UsageError(`--schedule ${err.message}`);
      throw err;
    }
  }
  if (!triggers) throw new UsageError('give a schedule: --schedule SPEC (for example on-demand, every:15m, daily:02:30)');
  const s: Schedule = { ...(base ?? {}), triggers };
  if (o.timeBasis !== undefined) s.timeBasis = timeBasis(o.timeBasis);
  const randomize = parseIntOption(o.randomize, '--randomize', 0, 1440);
  if (randomize !== undefined) {
    if (randomize === 0) delete s.randomizeMinutes;
    else s.randomizeMinutes = randomize;
  }
  if (o.runMissed !== undefined) s.runMissed = o.runMissed;
  const missedDelay = parseIntOption(o.missedDelay, '--missed-delay', 0, 1440);
  if (missedDelay !== undefined) {
    if (o.runMissed === false) throw new UsageError('--missed-delay goes with --run-missed');
    s.runMissed = true;
    s.missedDelayMinutes = missedDelay;
  }
  if (s.runMissed === false) {
    delete s.runMissed;
    delete s.missedDelayMinutes;
  }
  const stopAfter = parseIntOption(o.stopAfter, '--stop-after', 1, 10080);
  if (stopAfter !== undefined) s.stopAfterMinutes = stopAfter;
  const retries = parseIntOption(o.retries, '--retries', 0, 20);
  const retryDelay = parseIntOption(o.retryDelay, '--retry-delay', 1, 86400);
  if (retries === 0) delete s.retry;
  else if (retries !== undefined || retryDelay !== undefined) {
    const attempts = retries ?? s.retry?.attempts;
    if (attempts === undefined) throw new UsageError('--retry-delay goes with --retries N');
    s.retry = { ...(s.retry ?? {}), attempts, delaySeconds: retryDelay ?? s.retry?.delaySeconds ?? DEFAULT_RETRY_DELAY_SECONDS };
  }
  if (o.start !== undefined) {
    if (o.start === '') delete s.startAt;
    else s.startAt = instant(o.start, '--start');
  }
  if (o.end !== undefined) {
    if (o.end === '') delete s.endAt;
    else s.endAt = instant(o.end, '--end');
  }
  if (s.startAt && s.endAt && s.startAt > s.endAt) throw new UsageError('--start is after --end');
  const expiry = parseIntOption(o.runNowExpiry, '--run-now-expiry', 1, 525600);
  if (expiry !== undefined) s.runNowExpiryMinutes = expiry;
  return s;
}

function enabledOption(o: TaskOptionValues): boolean | undefined {
  if (o.enabled && o.disabled) throw new UsageError('give --enabled or --disabled, not both');
  if (o.disabled) return false;
  if (o.enabled) return true;
  return undefined;
}

/** The body of POST /tasks. */
export function buildTaskCreate(o: TaskOptionValues, r: ResolvedTaskInputs): TaskCreate {
  if (!o.name?.trim()) throw new UsageError('give the task a name: --name NAME');
  const scope = buildScope(o, r);
  if (!scope) throw new UsageError('give the targets: --group G, --device D, --devices D1,D2 or --select tag=x,os=linux');
  const product = o.product ?? 'garrison';
  const type = o.type ?? 'script';
  const settings = buildSettings(o, r);
  if (product === 'garrison' && type === 'script' && settings.command === undefined && settings.script === undefined) {
    throw new UsageError('give what to run: --command CMD or --script-file FILE');
  }
  const body: TaskCreate = { name: o.name, type, settings, schedule: buildSchedule(o), scope };
  if (o.product !== undefined) body.product = o.product;
  if (o.description !== undefined) body.description = o.description;
  const enabled = enabledOption(o);
  if (enabled !== undefined) body.enabled = enabled;
  return body;
}

/** The body of PATCH /tasks/:id: only what the options change, with the revision they change. */
export function buildTaskUpdate(o: TaskOptionValues, r: ResolvedTaskInputs, current: Task): TaskUpdate {
  if (o.product !== undefined || o.type !== undefined) throw new UsageError("a task's product and type cannot change; create a new task");
  const patch: TaskUpdate = {};
  if (o.name !== undefined) {
    if (!o.name.trim()) throw new UsageError('--name is empty');
    patch.name = o.name;
  }
  if (o.description !== undefined) patch.description = o.description;
  if (hasScopeOption(o)) patch.scope = buildScope(o, r);
  else if (o.subgroups !== undefined) {
    if (current.scope.type !== 'group') throw new UsageError('--subgroups / --no-subgroups apply to a task that targets a group');
    patch.scope = { ...current.scope, includeSubgroups: o.subgroups };
  }
  if (hasSettingsOption(o, r)) patch.settings = buildSettings(o, r, current.settings);
  if (hasScheduleOption(o)) patch.schedule = buildSchedule(o, current.schedule);
  const enabled = enabledOption(o);
  if (enabled !== undefined) patch.enabled = enabled;
  if (Object.keys(patch).length === 0) throw new UsageError('nothing to change: give at least one option (see garrison task set --help)');
  patch.revision = current.revision;
  return patch;
}

/** The inverse of parseSelection, for display. */
export function formatSelection(sel: Selection): string {
  const parts: string[] = [];
  if (sel.tags?.length) parts.push(`tag=${sel.tags.join('+')}`);
  if (sel.os?.length) parts.push(`os=${sel.os.join('+')}`);
  if (sel.namePattern) parts.push(`name=${sel.namePattern}`);
  if (sel.product) parts.push(`product=${sel.product}`);
  return parts.join(',');
}

/** The schedule's options besides its triggers, in words. */
export function scheduleOptionsText(s: Schedule): string[] {
  const out: string[] = [];
  if (s.timeBasis) out.push(`time basis ${s.timeBasis}`);
  if (s.randomizeMinutes) out.push(`randomized within ${s.randomizeMinutes} min`);
  if (s.runMissed) out.push(`missed runs run at start-up${s.missedDelayMinutes ? ` after ${s.missedDelayMinutes} min` : ''}`);
  if (s.stopAfterMinutes) out.push(`stopped after ${s.stopAfterMinutes} min`);
  if (s.retry && s.retry.attempts > 0) out.push(`${s.retry.attempts} retries, ${s.retry.delaySeconds}s apart${s.retry.factor && s.retry.factor !== 1 ? ` (x${s.retry.factor})` : ''}`);
  if (s.startAt) out.push(`from ${s.startAt}`);
  if (s.endAt) out.push(`until ${s.endAt}`);
  if (s.runNowExpiryMinutes) out.push(`run-now waits ${s.runNowExpiryMinutes} min for offline devices`);
  return out;
}
