/**
 * What the reports say, gathered through the services and stores (never from an HTTP
 * round trip). Each gatherer reads its data once, a page at a time: every detail row goes to
 * the report's CSV as it is read, the first DETAIL_ROWS of them stay for the HTML, and only
 * counts are kept besides. So a fleet of 100,000 devices costs a page of rows and a few maps
 * of counts in memory, not a copy of the fleet (the one exception, the list of device ids in
 * the scope, is what the catalog already holds in memory anyway).
 */
import { finalRunStates, type RunState } from '@garrison/protocol';
import { throwIfStopped, type ServerTaskEnvironment } from './server-task.ts';

/** What the gatherers read: the catalog in memory, and the report queries. */
type ReportEnvironment = Pick<ServerTaskEnvironment, 'catalog' | 'reports' | 'devices' | 'deployments'>;
type ReportCatalog = ServerTaskEnvironment['catalog'];

export const REPORT_KINDS = ['task-results', 'deployment-compliance', 'device-inventory'] as const;
export type ReportKind = (typeof REPORT_KINDS)[number];
export const REPORT_TITLES: Record<ReportKind, string> = {
  'task-results': 'Task results',
  'deployment-compliance': 'Deployment compliance',
  'device-inventory': 'Device inventory',
};

/**
 * Rows of a detail table shown in the HTML; the CSV holds them all. Nobody reads more in a
 * mail, and mail clients clip long messages (Gmail at about 100 KB of HTML), so the summary
 * and charts come first and the detail tables stay short.
 */
export const DETAIL_ROWS = 200;
/** A device not heard from for this long is counted as "not seen lately" in the inventory. */
export const STALE_DAYS = 7;
/** Distinct failure reasons kept per task (the rest are counted as "other reasons"). */
const REASONS_PER_TASK = 20;
const RUN_PAGE = 2000;
const DEVICE_PAGE = 1000;
const STATE_CHUNK = 5000;

export type Cell = string | number | boolean | null | undefined;
/** Where the detail rows go besides the HTML: the CSV file, or nowhere when no CSV is wanted. */
export interface RowSink {
  row(cells: readonly Cell[]): Promise<void>;
}
const noSink: RowSink = { row: async () => {} };

export interface ReportScope {
  groupId: string;
  groupPath: string;
  /** The group and all its subgroups. */
  groupIds: ReadonlySet<string>;
  since: Date;
  until: Date;
  /** Task results only for these tasks (absent: every task with runs in the period). */
  taskIds?: readonly string[];
}

/** The first `cap` items and how many there were. */
export interface Capped<T> {
  items: T[];
  total: number;
}
function capped<T>(): Capped<T> & { push(item: T): void } {
  const c = { items: [] as T[], total: 0, push: (item: T) => { c.total++; if (c.items.length < DETAIL_ROWS) c.items.push(item); } };
  return c;
}
function add<K extends string>(counts: Partial<Record<K, number>>, key: K, n = 1): void {
  counts[key] = (counts[key] ?? 0) + n;
}
/** Device ids in name order (then id), from the catalog's facts. */
function byName(catalog: ReportCatalog, ids: string[]): string[] {
  const name = new Map(ids.map((id) => [id, (catalog.device(id)?.name ?? '').toLowerCase()]));
  return ids.sort((a, b) => (name.get(a)! < name.get(b)! ? -1 : name.get(a)! > name.get(b)! ? 1 : a < b ? -1 : 1));
}
const sortedCounts = (m: Map<string, number>) => [...m].map(([label, n]) => ({ label, n })).sort((a, b) => b.n - a.n || a.label.localeCompare(b.label));

// ---------------------------------------------------------------- task results

export type StateCounts = Partial<Record<RunState, number>>;
export interface TaskOutcome {
  id: string;
  name: string;
  product: string;
  type: string;
  /** Runs that ended in the period, by final state. */
  runs: number;
  states: StateCounts;
  /** Devices of the scope the task targets now, and where their latest run stands (any time). */
  targets: number;
  withResult: number;
  inProgress: number;
  notRun: number;
  /** Failed and timed-out runs of the period by reason (or exit code), most frequent first. */
  reasons: { label: string; n: number }[];
}
export interface GroupOutcome {
  id: string;
  path: string;
  runs: number;
  states: StateCounts;
}
export interface RunFailure {
  task: string;
  device: string;
  group: string;
  state: RunState;
  exitCode: number | null;
  reason: string | null;
  endedAt: string | null;
}
export interface TaskResultsReport {
  kind: 'task-results';
  runs: number;
  states: StateCounts;
  tasks: TaskOutcome[];
  groups: GroupOutcome[];
  failures: Capped<RunFailure>;
  rows: number;
}
export const TASK_RESULTS_COLUMNS = ['task', 'task_id', 'device', 'device_id', 'group', 'state', 'attempt', 'cause', 'created_at', 'started_at', 'ended_at', 'exit_code', 'reason', 'run_id'];

function failureLabel(r: { state: string; exitCode: number | null; reason: string | null }): string {
  const text = r.reason?.trim() || (r.exitCode !== null ? `exit code ${r.exitCode}` : r.state.replace('_', ' '));
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

/**
 * Runs that ended in the period on devices of the scope, per task and per group of the
 * device, with every failure's reason; and, per task, where its current targets in the scope
 * stand. Runs of devices deleted since are left out: they belong to no group any more.
 */
export async function gatherTaskResults(env: ReportEnvironment, scope: ReportScope, sink: RowSink = noSink, signal?: AbortSignal): Promise<TaskResultsReport> {
  const catalog = env.catalog;
  const store = env.reports.runs;
  const perTask = new Map<string, Omit<TaskOutcome, 'reasons'> & { reasons: Map<string, number> }>();
  const perGroup = new Map<string, GroupOutcome>();
  const states: StateCounts = {};
  const failures = capped<RunFailure>();
  const outcome = (taskId: string) => {
    let o = perTask.get(taskId);
    if (!o) {
      const t = catalog.task(taskId);
      o = { id: taskId, name: t?.name ?? `(deleted task ${taskId})`, product: t?.product ?? '', type: t?.type ?? '', runs: 0, states: {}, targets: 0, withResult: 0, inProgress: 0, notRun: 0, reasons: new Map() };
      perTask.set(taskId, o);
    }
    return o;
  };
  for (const id of scope.taskIds ?? []) outcome(id);
  let runs = 0;
  let after: { updatedAt: string; id: string } | undefined;
  for (;;) {
    if (signal) throwIfStopped(signal);
    const page = await store.pageFinalRunsUpdatedBetween(scope.since.toISOString(), scope.until.toISOString(), { ...(scope.taskIds ? { taskIds: scope.taskIds } : {}), ...(after ? { after } : {}), limit: RUN_PAGE });
    for (const r of page) {
      const device = catalog.device(r.deviceId);
      if (!device || !scope.groupIds.has(device.groupId)) continue;
      runs++;
      add(states, r.state);
      const o = outcome(r.taskId);
      o.runs++;
      add(o.states, r.state);
      let g = perGroup.get(device.groupId);
      if (!g) perGroup.set(device.groupId, (g = { id: device.groupId, path: catalog.tree.path(device.groupId), runs: 0, states: {} }));
      g.runs++;
      add(g.states, r.state);
      const groupPath = g.path;
      if (r.state === 'failed' || r.state === 'timed_out') {
        const label = failureLabel(r);
        if (o.reasons.has(label) || o.reasons.size < REASONS_PER_TASK) o.reasons.set(label, (o.reasons.get(label) ?? 0) + 1);
        else o.reasons.set('other reasons', (o.reasons.get('other reasons') ?? 0) + 1);
        failures.push({ task: o.name, device: device.name, group: groupPath, state: r.state, exitCode: r.exitCode, reason: r.reason, endedAt: r.endedAt });
      }
      await sink.row([o.name, r.taskId, device.name, r.deviceId, groupPath, r.state, r.attempt, r.cause, r.createdAt, r.startedAt, r.endedAt, r.exitCode, r.reason, r.id]);
    }
    if (page.length < RUN_PAGE) break;
    const last = page[page.length - 1]!;
    after = { updatedAt: last.updatedAt, id: last.id };
  }
  // Where each reported task's current targets (in the scope) stand: one read per task of
  // its latest state per device, the same table the task's progress view reads.
  for (const o of perTask.values()) {
    if (signal) throwIfStopped(signal);
    const task = catalog.task(o.id);
    if (!task) continue;
    const latest = await store.latestStates(o.id);
    for (const d of catalog.targetsOf(task)) {
      if (!scope.groupIds.has(d.groupId)) continue;
      o.targets++;
      const s = latest.get(d.id);
      if (s === undefined) o.notRun++;
      else if ((finalRunStates as readonly string[]).includes(s)) o.withResult++;
      else o.inProgress++;
    }
  }
  const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
  return {
    kind: 'task-results',
    runs,
    states,
    tasks: [...perTask.values()].map((o) => ({ ...o, reasons: sortedCounts(o.reasons) })).sort(byName),
    groups: [...perGroup.values()].sort((a, b) => a.path.localeCompare(b.path)),
    failures: { items: failures.items, total: failures.total },
    rows: runs,
  };
}

// ---------------------------------------------------------------- deployment compliance

/**
 * How a device stands with a product, in words a reader of the report uses: "out of date"
 * has an older version installed (its update is pending or installing), "not installed" has
 * none yet; "unavailable" means the repository has no package for the device's platform.
 */
export const COMPLIANCE_CATEGORIES = ['upToDate', 'outOfDate', 'notInstalled', 'failed', 'unavailable'] as const;
export type ComplianceCategory = (typeof COMPLIANCE_CATEGORIES)[number];
export const COMPLIANCE_LABELS: Record<ComplianceCategory, string> = { upToDate: 'up to date', outOfDate: 'out of date', notInstalled: 'not installed yet', failed: 'failed', unavailable: 'unavailable' };
export function complianceCategory(s: { state: string; installedVersion: string | null }): ComplianceCategory {
  if (s.state === 'compliant') return 'upToDate';
  if (s.state === 'failed') return 'failed';
  if (s.state === 'unavailable') return 'unavailable';
  return s.installedVersion !== null ? 'outOfDate' : 'notInstalled';
}
export interface ProductCompliance {
  product: string;
  devices: number;
  counts: Record<ComplianceCategory, number>;
  /** Devices per installed version ("not installed" for none), most first. */
  versions: { label: string; n: number }[];
  /** Failed devices per exit code ("no exit code" when the install never ran, e.g. a refused package). */
  exitCodes: { label: string; n: number }[];
}
export interface ComplianceFailure {
  device: string;
  group: string;
  product: string;
  installedVersion: string | null;
  targetVersion: string | null;
  exitCode: number | null;
  detail: string | null;
  updatedAt: string;
}
export interface ComplianceReport {
  kind: 'deployment-compliance';
  /** Devices of the scope with at least one product assigned. */
  devices: number;
  products: ProductCompliance[];
  failures: Capped<ComplianceFailure>;
  rows: number;
}
export const COMPLIANCE_COLUMNS = ['device', 'device_id', 'group', 'product', 'compliance', 'state', 'installed_version', 'target_version', 'exit_code', 'detail', 'updated_at'];

/** Per product the devices of the scope by compliance and installed version, and every failure with its exit code. */
export async function gatherCompliance(env: ReportEnvironment, scope: ReportScope, sink: RowSink = noSink, signal?: AbortSignal): Promise<ComplianceReport> {
  const catalog = env.catalog;
  // States waiting in the service's write buffer belong in the report.
  await env.deployments.flush();
  const store = env.reports.deploymentStates;
  const ids = byName(catalog, catalog.devicesInGroups(scope.groupIds));
  const products = new Map<string, { devices: number; counts: Record<ComplianceCategory, number>; versions: Map<string, number>; exitCodes: Map<string, number> }>();
  const failures = capped<ComplianceFailure>();
  const devices = new Set<string>();
  let rows = 0;
  for (let i = 0; i < ids.length; i += STATE_CHUNK) {
    if (signal) throwIfStopped(signal);
    for (const s of await store.listStates({ deviceIds: ids.slice(i, i + STATE_CHUNK) })) {
      const device = catalog.device(s.deviceId);
      if (!device) continue;
      const category = complianceCategory(s);
      let p = products.get(s.product);
      if (!p) products.set(s.product, (p = { devices: 0, counts: { upToDate: 0, outOfDate: 0, notInstalled: 0, failed: 0, unavailable: 0 }, versions: new Map(), exitCodes: new Map() }));
      p.devices++;
      p.counts[category]++;
      const v = s.installedVersion ?? 'not installed';
      p.versions.set(v, (p.versions.get(v) ?? 0) + 1);
      devices.add(s.deviceId);
      const group = catalog.tree.path(device.groupId);
      if (category === 'failed') {
        const code = s.exitCode === null ? 'no exit code' : `exit code ${s.exitCode}`;
        p.exitCodes.set(code, (p.exitCodes.get(code) ?? 0) + 1);
        failures.push({ device: device.name, group, product: s.product, installedVersion: s.installedVersion, targetVersion: s.targetVersion, exitCode: s.exitCode, detail: s.detail, updatedAt: s.updatedAt });
      }
      rows++;
      await sink.row([device.name, s.deviceId, group, s.product, COMPLIANCE_LABELS[category], s.state, s.installedVersion, s.targetVersion, s.exitCode, s.detail, s.updatedAt]);
    }
  }
  return {
    kind: 'deployment-compliance',
    devices: devices.size,
    products: [...products].map(([product, p]) => ({ product, devices: p.devices, counts: p.counts, versions: sortedCounts(p.versions), exitCodes: sortedCounts(p.exitCodes) })).sort((a, b) => a.product.localeCompare(b.product)),
    failures: { items: failures.items, total: failures.total },
    rows,
  };
}

// ---------------------------------------------------------------- device inventory

export interface InventoryDevice {
  name: string;
  hostname: string;
  group: string;
  os: string;
  agentVersion: string;
  lastContactAt: string | null;
  online: boolean;
  products: string;
  tags: string;
}
export interface InventoryReport {
  kind: 'device-inventory';
  devices: number;
  online: number;
  /** Devices not heard from for STALE_DAYS or more. */
  stale: number;
  byOs: { label: string; n: number }[];
  byAgentVersion: { label: string; n: number }[];
  /** Installed products as the agents report them, with devices per version. */
  products: { product: string; devices: number; versions: { label: string; n: number }[] }[];
  list: Capped<InventoryDevice>;
  rows: number;
}
export const INVENTORY_COLUMNS = ['device', 'device_id', 'hostname', 'group', 'os_platform', 'os_name', 'os_version', 'arch', 'agent_version', 'online', 'last_contact_at', 'enrolled_at', 'products', 'tags', 'addresses'];

/** Every device of the scope with its OS, agent, contact, products and tags; counts per OS, agent version and product version. */
export async function gatherInventory(env: ReportEnvironment, scope: ReportScope, sink: RowSink = noSink, signal?: AbortSignal): Promise<InventoryReport> {
  const staleBefore = new Date(scope.until.getTime() - STALE_DAYS * 86_400_000).toISOString();
  const byOs = new Map<string, number>();
  const byAgent = new Map<string, number>();
  const products = new Map<string, Map<string, number>>();
  const list = capped<InventoryDevice>();
  let devices = 0;
  let online = 0;
  let stale = 0;
  // In name order, from the catalog's ids (already in memory), a chunk of rows at a time by
  // primary key: linear in the fleet, where offset pages would sort it again for every page.
  // A device enrolled or deleted while the report runs is left out or shown as it was read.
  const catalog = env.catalog;
  const store = env.reports.devices;
  const ids = byName(catalog, catalog.devicesInGroups(scope.groupIds));
  for (let i = 0; i < ids.length; i += DEVICE_PAGE) {
    if (signal) throwIfStopped(signal);
    const chunk = ids.slice(i, i + DEVICE_PAGE);
    const rows = new Map((await store.getDevices(chunk)).map((d) => [d.id, d]));
    for (const id of chunk) {
      const row = rows.get(id);
      if (!row) continue;
      const d = env.devices.view(row);
      devices++;
      if (d.online) online++;
      if (!d.lastContactAt || d.lastContactAt < staleBefore) stale++;
      const os = `${d.osName} ${d.osVersion}`.trim() || d.osPlatform || 'unknown';
      byOs.set(os, (byOs.get(os) ?? 0) + 1);
      byAgent.set(d.agentVersion || 'unknown', (byAgent.get(d.agentVersion || 'unknown') ?? 0) + 1);
      for (const p of d.products) {
        let m = products.get(p.id);
        if (!m) products.set(p.id, (m = new Map()));
        m.set(p.version, (m.get(p.version) ?? 0) + 1);
      }
      const productList = d.products.map((p) => `${p.id} ${p.version}`).join('; ');
      const tags = d.tags.join(' ');
      list.push({ name: d.name, hostname: d.hostname, group: d.groupPath, os, agentVersion: d.agentVersion, lastContactAt: d.lastContactAt, online: d.online, products: productList, tags });
      await sink.row([d.name, d.id, d.hostname, d.groupPath, d.osPlatform, d.osName, d.osVersion, d.arch, d.agentVersion, d.online, d.lastContactAt, d.enrolledAt, productList, tags, d.addresses.join(' ')]);
    }
  }
  return {
    kind: 'device-inventory',
    devices,
    online,
    stale,
    byOs: sortedCounts(byOs),
    byAgentVersion: sortedCounts(byAgent),
    products: [...products]
      .map(([product, m]) => ({ product, devices: [...m.values()].reduce((a, b) => a + b, 0), versions: sortedCounts(m) }))
      .sort((a, b) => a.product.localeCompare(b.product)),
    list: { items: list.items, total: list.total },
    rows: devices,
  };
}

export type ReportData = TaskResultsReport | ComplianceReport | InventoryReport;
