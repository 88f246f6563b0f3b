/**
 * What the task pages share: the shapes of the product list and the scope preview, and the
 * words used to show a schedule, a trigger and a scope.
 */
import { BUILTIN_PRODUCT, LIFECYCLE_TASK_TYPES, START_TASK_TYPE, isSecretRef, type GroupView, type Retry, type Schedule, type Scope, type Selection, type Trigger, type Weekday } from '@garrison/protocol';
import type { JsonSchema } from './schema.ts';

export interface TaskTypeInfo {
  id: string;
  name: string;
  description: string;
  settingsSchema: JsonSchema;
}
export interface ProductInfo {
  id: string;
  name: string;
  description: string;
  taskTypes: TaskTypeInfo[];
}

/** POST /scopes/preview: the devices a scope targets now (the first 200 of them). */
export interface ScopePreview {
  total: number;
  devices: { id: string; groupId: string; name: string; hostname: string }[];
}

const EMPTY_OBJECT_SCHEMA: JsonSchema = { type: 'object', properties: {}, additionalProperties: false };

/**
 * The products with the task types a task can be created for. Every product but the agent
 * itself also has "start" and "stop" (the server accepts them even where GET /products does
 * not list them).
 */
export function withLifecycleTypes(products: ProductInfo[]): ProductInfo[] {
  return products.map((p) => {
    if (p.id === BUILTIN_PRODUCT) return p;
    const extra = LIFECYCLE_TASK_TYPES.filter((id) => !p.taskTypes.some((t) => t.id === id)).map<TaskTypeInfo>((id) => ({
      id,
      name: id === START_TASK_TYPE ? 'Start the application' : 'Stop the application',
      description: id === START_TASK_TYPE ? "Starts the product's application." : "Stops the product's application; its running tasks are cancelled.",
      settingsSchema: EMPTY_OBJECT_SCHEMA,
    }));
    return extra.length ? { ...p, taskTypes: [...p.taskTypes, ...extra] } : p;
  });
}

export function productLabel(products: ProductInfo[] | undefined, product: string, type: string): string {
  const p = products?.find((x) => x.id === product);
  const t = p?.taskTypes.find((x) => x.id === type);
  return `${p?.name ?? product} · ${t?.name ?? type}`;
}

export const TRIGGER_TYPES: { type: Trigger['type']; label: string; group: 'Continuous' | 'At events' | 'On schedule' | 'On demand' }[] = [
  { type: 'continuous', label: 'Continuously (restart when it stops)', group: 'Continuous' },
  { type: 'check-in', label: 'At every agent check-in', group: 'At events' },
  { type: 'policy-enforcement', label: 'At every policy enforcement', group: 'At events' },
  { type: 'agent-start', label: 'When the agent starts', group: 'At events' },
  { type: 'enrolment', label: 'Once after enrolment', group: 'At events' },
  { type: 'repository-content', label: 'When new content for the product arrives', group: 'At events' },
  { type: 'after-task', label: 'After another task finishes', group: 'At events' },
  { type: 'once', label: 'Once, at a date and time', group: 'On schedule' },
  { type: 'interval', label: 'Every N minutes or hours', group: 'On schedule' },
  { type: 'daily', label: 'Daily', group: 'On schedule' },
  { type: 'weekly', label: 'Weekly', group: 'On schedule' },
  { type: 'monthly', label: 'Monthly', group: 'On schedule' },
  { type: 'cron', label: 'Cron expression', group: 'On schedule' },
  { type: 'on-demand', label: 'Only on demand (Run now)', group: 'On demand' },
];

export const WEEKDAYS: { day: Weekday; short: string; long: string }[] = [
  { day: 'mon', short: 'Mon', long: 'Monday' },
  { day: 'tue', short: 'Tue', long: 'Tuesday' },
  { day: 'wed', short: 'Wed', long: 'Wednesday' },
  { day: 'thu', short: 'Thu', long: 'Thursday' },
  { day: 'fri', short: 'Fri', long: 'Friday' },
  { day: 'sat', short: 'Sat', long: 'Saturday' },
  { day: 'sun', short: 'Sun', long: 'Sunday' },
];
export const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
export const FINAL_STATES = ['succeeded', 'succeeded_with_warnings', 'failed', 'timed_out', 'cancelled', 'skipped'] as const;

function ordinal(n: number | 'last'): string {
  if (n === 'last') return 'last';
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${s}`;
}
function dayName(d: Weekday | undefined): string {
  return WEEKDAYS.find((w) => w.day === d)?.long ?? String(d);
}

/** One trigger in words. `taskNames` names the task an after-task trigger waits for. */
export function describeTrigger(t: Trigger, taskNames?: ReadonlyMap<string, string>): string {
  switch (t.type) {
    case 'continuous':
      return t.backoffSeconds || t.maxBackoffSeconds
        ? `continuously (restart after ${t.backoffSeconds ?? 'default'} s, up to ${t.maxBackoffSeconds ?? 'default'} s)`
        : 'continuously';
    case 'check-in':
      return 'at check-in';
    case 'policy-enforcement':
      return 'at policy enforcement';
    case 'agent-start':
      return 'at agent start';
    case 'enrolment':
      return 'after enrolment';
    case 'repository-content':
      return 'on new repository content';
    case 'after-task': {
      const name = taskNames?.get(t.taskId) ?? t.taskId;
      return `after “${name}”${t.states?.length ? ` (${t.states.map((s) => s.replaceAll('_', ' ')).join(', ')})` : ''}`;
    }
    case 'once':
      return `once at ${t.at.replace('T', ' ')}`;
    case 'interval':
      return `every ${t.every} ${t.unit === 'hours' ? (t.every === 1 ? 'hour' : 'hours') : t.every === 1 ? 'minute' : 'minutes'}`;
    case 'daily':
      return t.everyDays && t.everyDays > 1 ? `every ${t.everyDays} days at ${t.time}` : `daily at ${t.time}`;
    case 'weekly': {
      const days = WEEKDAYS.filter((w) => t.days.includes(w.day)).map((w) => w.short);
      return `weekly on ${days.join(', ')} at ${t.time}`;
    }
    case 'monthly': {
      const on = t.day !== undefined ? (t.day === 'last' ? 'the last day' : `day ${t.day}`) : `the ${ordinal(t.week ?? 1)} ${dayName(t.weekday)}`;
      const months = t.months?.length && t.months.length < 12 ? ` in ${t.months.map((m) => MONTHS[m - 1] ?? m).join(', ')}` : '';
      return `monthly on ${on} at ${t.time}${months}`;
    }
    case 'cron':
      return `cron ${t.expression}`;
    case 'on-demand':
      return 'on demand';
    default:
      return (t as { type: string }).type;
  }
}

export function describeTriggers(s: Schedule, taskNames?: ReadonlyMap<string, string>): string {
  return s.triggers.map((t) => describeTrigger(t, taskNames)).join('; ');
}

export function describeRetry(r: Retry): string {
  return `${r.attempts} ${r.attempts === 1 ? 'retry' : 'retries'}, ${r.delaySeconds} s apart${r.factor && r.factor !== 1 ? ` (×${r.factor} each time)` : ''}`;
}

/** Who runs a schedule: agents on devices (client tasks) or the server itself (server tasks). */
export type ScheduleRunsOn = 'devices' | 'server';

/** The schedule's options besides its triggers, in words; a server task's times are the server's and its run-now waits for no device. */
export function describeScheduleOptions(s: Schedule, runsOn: ScheduleRunsOn = 'devices'): string[] {
  const out: string[] = [];
  const where = runsOn === 'server' ? 'server' : 'device';
  out.push(s.timeBasis === undefined || s.timeBasis === 'local' ? `times in the ${where}'s local time` : s.timeBasis === 'UTC' ? 'times in UTC' : `times in ${s.timeBasis}`);
  if (s.randomizeMinutes) out.push(`randomized within ${s.randomizeMinutes} min`);
  if (s.runMissed) out.push(`missed runs run at start-up${s.missedDelayMinutes ? ` after ${s.missedDelayMinutes} min` : ''}`);
  if (s.stopAfterMinutes) out.push(`stopped after ${s.stopAfterMinutes} min`);
  if (s.retry && s.retry.attempts > 0) out.push(describeRetry(s.retry));
  if (s.startAt) out.push(`from ${new Date(s.startAt).toLocaleString()}`);
  if (s.endAt) out.push(`until ${new Date(s.endAt).toLocaleString()}`);
  if (runsOn === 'devices') out.push(`run-now waits ${s.runNowExpiryMinutes ?? 1440} min for offline devices`);
  return out;
}

export function describeSelection(sel: Selection): string {
  const parts: string[] = [];
  if (sel.tags?.length) parts.push(`tags ${sel.tags.join(' + ')}`);
  if (sel.os?.length) parts.push(`OS ${sel.os.join(' or ')}`);
  if (sel.namePattern) parts.push(`name ${sel.namePattern}`);
  if (sel.product) parts.push(`with product ${sel.product}`);
  return parts.join(', ');
}

/** A scope in words: the device's name, the group's path, or the global list and selection. */
export function describeScope(scope: Scope, groups: readonly GroupView[] | undefined, deviceName?: string): string {
  if (scope.type === 'local') return `Local: ${deviceName ?? scope.deviceId}`;
  if (scope.type === 'group') {
    const path = groups?.find((g) => g.id === scope.groupId)?.path ?? scope.groupId;
    return `Group: ${path}${scope.includeSubgroups === false ? ' (this group only)' : ''}`;
  }
  const parts: string[] = [];
  if (scope.deviceIds?.length) parts.push(`${scope.deviceIds.length} ${scope.deviceIds.length === 1 ? 'device' : 'devices'}`);
  if (scope.selection && Object.keys(scope.selection).length) parts.push(describeSelection(scope.selection));
  return `Global: ${parts.join('; ') || 'no devices'}`;
}

/** Field names the server treats as credentials (a literal value there is refused). */
export const CREDENTIAL_NAME = /pass(word|wd|phrase)?$|^pwd$|secret|token|api[_-]?key|private[_-]?key|credential/i;

/** Paths of literal credentials in settings, as the server would refuse them. */
export function credentialLiterals(value: unknown, path = ''): string[] {
  const found: string[] = [];
  if (Array.isArray(value)) value.forEach((v, i) => found.push(...credentialLiterals(v, `${path}/${i}`)));
  else if (value !== null && typeof value === 'object' && !isSecretRef(value)) {
    for (const [k, v] of Object.entries(value)) {
      const p = `${path}/${k}`;
      if (CREDENTIAL_NAME.test(k) && typeof v === 'string' && v.length > 0) found.push(p);
      else found.push(...credentialLiterals(v, p));
    }
  }
  return found;
}

/** "2026-03-29T02:30" (an <input type="datetime-local"> value) for an ISO instant, in the browser's zone. */
export function isoToLocalInput(iso: string | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
export function localInputToIso(v: string): string | undefined {
  if (!v) return undefined;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}
