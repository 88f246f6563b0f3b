/**
 * What agents ask of the server: check-in (inventory and policy reports in; effective
 * policies, task list and pending run-nows out; local task changes reconciled), run reports
 * (batched ingest) and device events. All are reached over the agent's WebSocket or over plain
 * HTTP, with the same code.
 *
 * Policies (ADR 0020): the check-in result carries the device's effective policies only when
 * the agent's etag differs, read from the policy service's in-memory index (no database read
 * per check-in). Policy reports ride on check-ins and are written in batches, one upsert per
 * flush; device events (real-time detections, locked settings put back) are written in
 * batches too, each once per device and event id, and acknowledged once committed.
 *
 * Ingest is the hot path at scale: reports from every agent are queued and written together,
 * one transaction per flush, and each agent is acknowledged only after its reports are
 * committed, so that an agent drops a spooled result only once it is durably stored.
 */
import { BatchWriter } from './batch-writer.ts';
import { BatchReader } from './batch-reader.ts';
import type { IdentityService } from './identity-service.ts';
import type { LiveFeed } from './live-feed.ts';
import type { DomainBus } from './domain-bus.ts';
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import {
  BUILTIN_PRODUCT,
  DEPLOYMENT_TASK_TYPE,
  isAgentRunEventKind,
  isFinalRunState,
  type AckMessage,
  type CheckInRequest,
  type CheckInResult,
  type Inventory,
  type LocalTaskChange,
  type LocalTaskResolution,
  type RunReport,
  type RunRequest,
  type AgentTask,
  type DeviceEvent,
  type PolicyStatusReport,
  type Task,
} from '@garrison/protocol';
import type { PolicyService } from './policy-service.ts';
import type { PluginRegistry } from '../plugins/registry.ts';
import type { EventStore, NewEvent } from '../storage/event-store.ts';
import type { PolicyStatusRow, PolicyStatusStore } from '../storage/policy-status-store.ts';
import { topicsOfEvents } from './live-feed.ts';
import { AppError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import type { DeviceStore } from '../storage/device-store.ts';
import type { DeviceReport, PendingRun, RunStore } from '../storage/run-store.ts';
import type { TaskStore } from '../storage/task-store.ts';
import { secretRefs, findCredentialLiterals } from '../plugins/registry.ts';
import type { Catalog } from './catalog.ts';
import type { EventService } from './event-service.ts';
import type { SecretService } from './secret-service.ts';
import type { TaskService } from './task-service.ts';
import type { Severity } from '../storage/event-store.ts';
import type { DeploymentService } from './deployment-service.ts';
import { MAX_LOCAL_TASKS_PER_DEVICE, type DeviceLimits } from './device-limits.ts';

const RUN_ID = /^[A-Za-z0-9._:-]{1,80}$/;
const INGEST_FLUSH_MS = 15;
const INGEST_MAX_BATCH = 2000;
const CHECKIN_FLUSH_MS = 200;
/** Policy reports and device events are waited for by the agent: written a few milliseconds after they arrive, together. */
const STATUS_FLUSH_MS = 20;
const DEVICE_EVENTS_FLUSH_MS = 20;
/** A report's drift is kept whole up to this size (JSON); past it, without the values found and expected. */
const MAX_DRIFT_JSON = 64 * 1024;
/** Device event kinds of the agent's own namespace (run lifecycle, connection): never a product's. */
const RESERVED_EVENT_KIND = /^(run|agent)\./;
/** How far ahead of the server's clock an agent's timestamp may be before the server's time is used. */
const MAX_CLOCK_AHEAD_MS = 5 * 60_000;

interface QueuedStatus {
  rows: PolicyStatusRow[];
  resolve(): void;
  reject(err: unknown): void;
}
interface QueuedDeviceEvents {
  events: (NewEvent & { deviceId: string; eventId: string })[];
  resolve(): void;
  reject(err: unknown): void;
}

interface QueuedReports {
  deviceId: string;
  reports: RunReport[];
  resolve(ack: Omit<AckMessage, 're'>): void;
  reject(err: unknown): void;
}

const stateSeverity: Record<string, Severity> = {
  succeeded: 'info',
  succeeded_with_warnings: 'warning',
  failed: 'error',
  timed_out: 'error',
  cancelled: 'warning',
  skipped: 'warning',
};

/** The largest `data` of a device event the server stores, as JSON (the agent keeps its own to 16 KB). */
export const MAX_EVENT_DATA_JSON = 16 * 1024;
/**
 * Whether a device event's data can be stored: JSON of bounded size. Deeply nested data that
 * parses but cannot be serialised again (the stack) is refused here, one event, rather than
 * failing the shared batch it would land in.
 */
function storableData(data: unknown): boolean {
  if (data === undefined || data === null) return true;
  try {
    const json = JSON.stringify(data);
    return json !== undefined && Buffer.byteLength(json) <= MAX_EVENT_DATA_JSON;
  } catch {
    return false;
  }
}
/** PostgreSQL's text refuses NUL: an agent's string with one would fail the whole batch. */
function withoutNul(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
}

export class AgentService {
  readonly #devices: DeviceStore;
  readonly #runs: RunStore;
  /** Each check-in's run-nows waiting for the device, read a batch of check-ins at a time. */
  readonly #pendingRuns: BatchReader<string, PendingRun[]>;
  readonly #taskStore: TaskStore;
  readonly #tasks: TaskService;
  readonly #catalog: Catalog;
  readonly #secrets: SecretService;
  readonly #events: EventService;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #deployments: DeploymentService;
  readonly #limits: DeviceLimits;
  #queue: QueuedReports[] = [];
  #queuedCount = 0;
  readonly #reportWriter = new BatchWriter<QueuedReports[]>({
    delayMs: INGEST_FLUSH_MS,
    freshTurn: true,
    take: () => {
      if (this.#queue.length === 0) return undefined;
      const batch = this.#queue;
      this.#queue = [];
      this.#queuedCount = 0;
      return batch;
    },
    write: (batch) => this.#ingest(batch),
    // #ingest answers every report itself; this is a failure before it could (a lookup).
    onError: (err, batch) => {
      this.#log.error({ err, devices: batch.length }, 'checking run reports failed; agents will resend');
      for (const q of batch) q.reject(new AppError('UNAVAILABLE', 'the reports could not be stored now; resend later'));
    },
  });
  #checkIns = new Map<string, { id: string; inventory: Inventory; at: string }>();
  /** Devices whose last contact is now (a disconnect), without new inventory. */
  #contacts = new Set<string>();
  readonly #checkInWriter = new BatchWriter<{ batch: { id: string; inventory: Inventory; at: string }[]; contacts: string[] }>({
    delayMs: CHECKIN_FLUSH_MS,
    take: () => {
      const batch = [...this.#checkIns.values()];
      const contacts = [...this.#contacts].filter((id) => !this.#checkIns.has(id));
      this.#checkIns.clear();
      this.#contacts.clear();
      return batch.length || contacts.length ? { batch, contacts } : undefined;
    },
    write: async ({ batch, contacts }) => {
      await this.#devices.recordCheckIns(batch);
      if (contacts.length) await this.#devices.touchContacts(contacts, this.#clock.now().toISOString());
    },
    onError: (err, { batch }) => this.#log.error({ err, count: batch.length }, 'storing check-ins failed'),
  });
  #statusQueue: QueuedStatus[] = [];
  readonly #statusWriter = new BatchWriter<QueuedStatus[]>({
    delayMs: STATUS_FLUSH_MS,
    take: () => {
      if (this.#statusQueue.length === 0) return undefined;
      const batch = this.#statusQueue;
      this.#statusQueue = [];
      return batch;
    },
    write: async (batch) => {
      // One row per device and product: the latest report of the batch wins.
      const rows = new Map<string, PolicyStatusRow>();
      for (const q of batch) for (const r of q.rows) rows.set(`${r.device_id}\n${r.product}`, r);
      // A device deleted while its report waited leaves no row behind.
      await this.#policyStatus.upsert([...rows.values()].filter((r) => this.#catalog.device(r.device_id)));
      for (const q of batch) q.resolve();
    },
    onError: (err, batch) => {
      this.#log.error({ err, devices: batch.length }, 'storing policy reports failed; agents will resend');
      for (const q of batch) q.reject(new AppError('UNAVAILABLE', 'the policy reports could not be stored now; resend later'));
    },
  });
  #deviceEventQueue: QueuedDeviceEvents[] = [];
  readonly #deviceEventWriter = new BatchWriter<QueuedDeviceEvents[]>({
    delayMs: DEVICE_EVENTS_FLUSH_MS,
    freshTurn: true,
    take: () => {
      if (this.#deviceEventQueue.length === 0) return undefined;
      const batch = this.#deviceEventQueue;
      this.#deviceEventQueue = [];
      return batch;
    },
    write: async (batch) => {
      const events = batch.flatMap((q) => q.events);
      await this.#eventStore.insertDeviceEvents(events);
      this.#live.publish(...topicsOfEvents(new Set(events.map((e) => e.kind)), BUILTIN_PRODUCT));
      for (const q of batch) q.resolve();
    },
    onError: (err, batch) => {
      this.#log.error({ err, devices: batch.length }, 'storing device events failed; agents will resend');
      for (const q of batch) q.reject(new AppError('UNAVAILABLE', 'the device events could not be stored now; resend later'));
    },
  });
  /** Agent task lists by device and catalog generation: run-now storms resolve each list once. */
  #listCache = new Map<string, { key: string; etag: string; tasks: Task[]; ids: Set<string> }>();

  constructor(deps: {
    devices: DeviceStore;
    runs: RunStore;
    taskStore: TaskStore;
    tasks: TaskService;
    catalog: Catalog;
    secrets: SecretService;
    events: EventService;
    clock: Clock;
    log: Logger;
    deployments: DeploymentService;
    limits: DeviceLimits;
    identity: Pick<IdentityService, 'onCheckIn'>;
    live: LiveFeed;
    bus: DomainBus;
    policies: Pick<PolicyService, 'agentPolicies' | 'intervals'>;
    plugins: Pick<PluginRegistry, 'list'>;
    policyStatus: Pick<PolicyStatusStore, 'upsert'>;
    eventStore: Pick<EventStore, 'insertDeviceEvents'>;
  }) {
    this.#policies = deps.policies;
    this.#plugins = deps.plugins;
    this.#policyStatus = deps.policyStatus;
    this.#eventStore = deps.eventStore;
    this.#bus = deps.bus;
    this.#identity = deps.identity;
    this.#live = deps.live;
    this.#deployments = deps.deployments;
    this.#limits = deps.limits;
    this.#devices = deps.devices;
    this.#runs = deps.runs;
    this.#pendingRuns = new BatchReader({ read: (ids) => deps.runs.pendingRunsForDevices(ids, deps.clock.now().toISOString()) });
    this.#taskStore = deps.taskStore;
    this.#tasks = deps.tasks;
    this.#catalog = deps.catalog;
    this.#secrets = deps.secrets;
    this.#events = deps.events;
    this.#clock = deps.clock;
    this.#log = deps.log;
  }

  /** Online/offline events and last contact, from the hub. */
  connected(deviceId: string, remoteAddress: string): void {
    this.#events.record({ severity: 'info', kind: 'agent.connected', message: 'agent connected', deviceId, data: { remoteAddress } });
  }
  disconnected(deviceId: string, reason: string): void {
    if (!this.#catalog.device(deviceId)) return;
    this.#events.record({ severity: 'info', kind: 'agent.disconnected', message: `agent disconnected (${reason})`, deviceId });
    this.#contacts.add(deviceId);
    this.#checkInWriter.schedule();
  }

  /**
   * Every agent message costs a token of the device's message budget; an empty budget refuses
   * the message with RATE_LIMITED (retryable: the agent keeps its reports and tries later).
   */
  admit(deviceId: string): void {
    if (this.#limits.take(deviceId, 'messages') > 0) return;
    this.#limits.refused(deviceId, 'RATE_LIMITED');
    throw new AppError('RATE_LIMITED', 'this device sends messages too fast; retry later');
  }

  /** The ids of the device's effective tasks (for the report check), from the check-in cache when current. */
  #effectiveIds(deviceId: string): Set<string> {
    const list = this.#listCache.get(deviceId);
    if (list && list.key === `${this.#catalog.generation}:${this.#secrets.generation}`) return list.ids;
    return new Set(this.#catalog.effectiveTasksOf(deviceId).map((t) => t.id));
  }

  #etag(tasks: Task[], groupId: string): string {
    const h = createHash('sha1');
    h.update(`${this.#secrets.generation}|${groupId}`);
    for (const t of tasks) h.update(`|${t.id}:${t.revision}`);
    return h.digest('base64url');
  }

  /** The identity service sees every check-in first. */
  readonly #identity: Pick<IdentityService, 'onCheckIn'>;
  readonly #live: LiveFeed;
  readonly #bus: DomainBus;
  readonly #policies: Pick<PolicyService, 'agentPolicies' | 'intervals'>;
  readonly #plugins: Pick<PluginRegistry, 'list'>;
  readonly #policyStatus: Pick<PolicyStatusStore, 'upsert'>;
  readonly #eventStore: Pick<EventStore, 'insertDeviceEvents'>;

  async checkIn(deviceId: string, req: CheckInRequest, remoteAddress?: string): Promise<CheckInResult> {
    this.admit(deviceId);
    // A device enrolled through another instance a moment ago may not be in this one's catalog yet.
    const facts = this.#catalog.device(deviceId) ?? (await this.#catalog.loadDevice(deviceId));
    if (!facts) throw new AppError('DEVICE_CREDENTIAL_INVALID', 'this device is no longer known to the server');
    const now = this.#clock.now().toISOString();
    const id = await this.#identity.onCheckIn(deviceId, req, remoteAddress);
    if (id.foreign) {
      // Another machine holding this device's credential (a clone): nothing of it is recorded here.
      return {
        type: 'check-in-result',
        ...(req.id !== undefined ? { re: req.id } : {}),
        deviceId,
        groupId: facts.groupId,
        policy: this.#policies.intervals(facts),
        tasksEtag: '',
        tasks: [],
        runRequests: [],
        localResolutions: [],
        ...(id.directive ? { identity: id.directive } : {}),
        serverTime: now,
      };
    }
    this.#queueCheckIn(deviceId, req.inventory, now);
    const products = req.inventory.products.map((p) => p.id);
    if (
      facts.hostname !== req.inventory.hostname ||
      facts.osPlatform !== req.inventory.osPlatform ||
      facts.osName !== req.inventory.osName ||
      facts.products.join('\n') !== products.join('\n')
    ) {
      this.#catalog.putDeviceFacts({ ...facts, hostname: req.inventory.hostname, osPlatform: req.inventory.osPlatform, osName: req.inventory.osName, products });
      // Targeting by OS or product changed: the other instances read the device again once it is stored.
      if (this.#bus.shared) void this.#checkInWriter.flush().then(() => this.#bus.publish({ type: 'devices.changed', deviceIds: [deviceId] }));
    }
    const localResolutions = req.localChanges?.length ? await this.#applyLocalChanges(deviceId, req.localChanges) : [];
    // The device's effective policies, from the index (the facts may have just changed above).
    const agentPolicies = this.#policies.agentPolicies(this.#catalog.device(deviceId)!);
    // Reports are stored before the answer: the agent forgets a report once it is answered.
    if (req.policyStatus?.length) await this.#submitStatus(deviceId, req.policyStatus, agentPolicies.products.map((p) => p.product));
    const key = `${this.#catalog.generation}:${this.#secrets.generation}`;
    let list = this.#listCache.get(deviceId);
    const facts2 = this.#catalog.device(deviceId)!;
    if (!list || list.key !== key) {
      const tasks = this.#catalog.effectiveTasksOf(deviceId);
      list = { key, etag: this.#etag(tasks, facts2.groupId), tasks, ids: new Set(tasks.map((t) => t.id)) };
      this.#listCache.set(deviceId, list);
    }
    const pending = (await this.#pendingRuns.load(deviceId)) ?? [];
    const runRequests: RunRequest[] = [];
    for (const p of pending) {
      const task = this.#catalog.task(p.taskId);
      const agentTask = task && (await this.#agentTask(task, deviceId, facts2.groupId));
      if (agentTask) runRequests.push({ runId: p.id, requestId: p.requestId, taskId: p.taskId, expiresAt: p.expiresAt, task: agentTask });
    }
    // A promise only when a product of the plan caps concurrent installs (the slot is taken in the store).
    const deploymentSteps = await this.#deployments.planFor(deviceId, facts2.groupId, req.inventory);
    return {
      type: 'check-in-result',
      ...(req.id !== undefined ? { re: req.id } : {}),
      deviceId,
      groupId: facts2.groupId,
      policy: this.#policies.intervals(facts2),
      ...(req.policiesEtag === agentPolicies.etag ? {} : { policies: agentPolicies }),
      tasksEtag: list.etag,
      ...(req.tasksEtag === list.etag ? {} : { tasks: (await Promise.all(list.tasks.map((t) => this.#agentTask(t, deviceId, facts2.groupId)))).filter((t) => t !== null) }),
      runRequests,
      localResolutions,
      ...(deploymentSteps ? { deployment: { steps: deploymentSteps } } : {}),
      ...(id.directive ? { identity: id.directive } : {}),
      serverTime: now,
    };
  }

  /**
   * A task as this device receives it; null when it refers to a secret this device may not
   * receive (a secret of another subtree): the task is withheld, never sent unresolved.
   */
  async #agentTask(t: Task, deviceId: string, groupId: string): Promise<AgentTask | null> {
    try {
      return await this.#tasks.toAgentTask(t, groupId);
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== 'SECRET_REFERENCE_REFUSED') throw err;
      this.#limits.refused(deviceId, err.code, 1, `task "${t.name}" was withheld from this device: ${err.message}`);
      return null;
    }
  }

  #queueCheckIn(id: string, inventory: Inventory, at: string): void {
    this.#checkIns.set(id, { id, inventory, at });
    this.#checkInWriter.schedule();
  }
  flushCheckIns(): Promise<void> {
    return this.#checkInWriter.flush();
  }

  /**
   * Local tasks changed on the device. If the administrator changed the same task since the
   * device last synced (its base revision is behind), the administrator's version wins and the
   * overridden local change is written to the event log.
   */
  async #applyLocalChanges(deviceId: string, changes: LocalTaskChange[]): Promise<LocalTaskResolution[]> {
    const out: LocalTaskResolution[] = [];
    for (const c of changes) {
      try {
        if (this.#limits.take(deviceId, 'localChanges') === 0) {
          this.#limits.refused(deviceId, 'RATE_LIMITED', 1, 'a local task change was refused');
          throw new AppError('RATE_LIMITED', 'too many local task changes from this device; make the change again later');
        }
        out.push(await this.#applyLocalChange(deviceId, c));
      } catch (err) {
        const reason = err instanceof AppError ? `${err.code}: ${err.message}` : 'internal error';
        if (!(err instanceof AppError)) this.#log.error({ err, deviceId, taskId: c.taskId }, 'applying a local task change failed');
        else if (err.code === 'SECRET_REFERENCE_REFUSED' || err.code === 'FORBIDDEN') this.#limits.refused(deviceId, err.code, 1, 'a local task change was refused');
        out.push({ taskId: c.taskId, outcome: 'rejected', revision: null, reason });
        this.#events.record({ severity: 'warning', kind: 'task.local-change-rejected', message: `local change to task ${c.taskId} rejected: ${reason}`, deviceId, taskId: c.taskId });
      }
    }
    return out;
  }
  async #applyLocalChange(deviceId: string, c: LocalTaskChange): Promise<LocalTaskResolution> {
    if (!RUN_ID.test(c.taskId)) throw new AppError('VALIDATION_FAILED', 'invalid task id');
    const cur = this.#catalog.task(c.taskId);
    if (cur && (cur.scope.type !== 'local' || cur.scope.deviceId !== deviceId)) throw new AppError('FORBIDDEN', 'not a local task of this device');
    // What a device sends may not introduce or change a secret reference, and a secret's value
    // sent in its place is put back as the reference (never stored, never logged).
    let settings: Record<string, unknown> | null = null;
    let settingsRefused: AppError | null = null;
    try {
      settings = await this.#secrets.normalizeDeviceSettings(c.task.settings, cur?.settings);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      settingsRefused = err;
    }
    const overridden = (why: string, revision: number | null): LocalTaskResolution => {
      const redacted = !settings || findCredentialLiterals(settings).length ? { ...c.task, settings: '[withheld: holds credential-like fields or secret values]' } : { ...c.task, settings };
      this.#events.record({
        severity: 'warning',
        kind: 'task.local-change-overridden',
        message: `the device's change to local task "${c.task.name}" was overridden: ${why}`,
        deviceId,
        taskId: c.taskId,
        data: { overriddenChange: redacted, deleted: c.deleted ?? false, changedAt: c.changedAt, baseRevision: c.baseRevision },
      });
      return { taskId: c.taskId, outcome: 'overridden', revision, reason: why };
    };
    if (!cur) {
      if (c.baseRevision !== null) return overridden('the administrator deleted the task', null);
      if (c.deleted) return { taskId: c.taskId, outcome: 'applied', revision: null };
      if (await this.#taskStore.taskExisted(c.taskId)) throw new AppError('CONFLICT', 'a task with this id existed already');
      if (settingsRefused) throw settingsRefused;
      const own = this.#catalog.tasks.filter((t) => t.origin === 'device' && t.scope.type === 'local' && t.scope.deviceId === deviceId).length;
      if (own >= MAX_LOCAL_TASKS_PER_DEVICE) {
        this.#limits.refused(deviceId, 'RATE_LIMITED', 1, 'a new local task was refused');
        throw new AppError('RATE_LIMITED', `this device already has ${own} local tasks of its own (at most ${MAX_LOCAL_TASKS_PER_DEVICE})`);
      }
      const t = await this.#tasks.create(
        { kind: 'system', name: `device:${deviceId}` },
        { name: c.task.name, product: c.task.product, type: c.task.type, settings: settings!, schedule: c.task.schedule, enabled: c.task.enabled, scope: { type: 'local', deviceId } },
        'device',
        c.taskId,
      );
      return { taskId: c.taskId, outcome: 'applied', revision: t.revision };
    }
    if (c.baseRevision !== cur.revision) return overridden(`the administrator changed it since (revision ${c.baseRevision ?? 'new'} → ${cur.revision})`, cur.revision);
    const actor = { kind: 'system' as const, name: `device:${deviceId}` };
    if (c.deleted) {
      await this.#tasks.remove(actor, c.taskId);
      return { taskId: c.taskId, outcome: 'applied', revision: null };
    }
    if (cur.product !== c.task.product || cur.type !== c.task.type) throw new AppError('VALIDATION_FAILED', 'the product and type of a task cannot change');
    if (settingsRefused) throw settingsRefused;
    const t = await this.#tasks.update(actor, c.taskId, { name: c.task.name, settings: settings!, schedule: c.task.schedule, enabled: c.task.enabled, revision: cur.revision });
    return { taskId: c.taskId, outcome: 'applied', revision: t.revision };
  }

  /** Queues reports for the next batched write; resolves with the ack once they are committed. */
  submitReports(deviceId: string, reports: RunReport[]): Promise<Omit<AckMessage, 're'>> {
    try {
      this.admit(deviceId);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ deviceId, reports, resolve, reject });
      this.#queuedCount += reports.length;
      if (this.#queuedCount >= INGEST_MAX_BATCH) void this.flushReports();
      else this.#reportWriter.schedule();
    });
  }

  flushReports(): Promise<void> {
    return this.#reportWriter.flush();
  }

  async #ingest(batch: QueuedReports[]): Promise<void> {
    const acks = new Map<QueuedReports, Omit<AckMessage, 're'>>();
    const items: DeviceReport[] = [];
    const owner = new Map<string, QueuedReports>();
    // A run-now of a task that uses secrets brings one report per device: look its secret
    // values up once per batch, not once per report.
    const secretValues = new Map<string, Promise<string[]>>();
    const secretsOf = (task: Task): Promise<string[]> => {
      let v = secretValues.get(task.id);
      if (!v) {
        const names = [...secretRefs(task.settings)];
        v = names.length ? this.#secrets.values(names).then((m) => [...m.values()].filter((x) => x.length >= 4)) : Promise.resolve([]);
        secretValues.set(task.id, v);
      }
      return v;
    };
    // Reports of tasks in the device's effective set need nothing more here (the ingest
    // transaction checks that an existing run is this device's and this task's); only the others
    // are looked up: runs the server made for the device, and tasks it ran before.
    const effectiveOf = new Map<QueuedReports, Set<string>>();
    const doubtful: { deviceId: string; runId: string; taskId: string }[] = [];
    for (const q of batch) {
      const effective = this.#effectiveIds(q.deviceId);
      effectiveOf.set(q, effective);
      for (const r of q.reports) if (!effective.has(r.taskId) && RUN_ID.test(r.runId)) doubtful.push({ deviceId: q.deviceId, runId: r.runId, taskId: r.taskId });
    }
    const owners = doubtful.length ? await this.#runs.runOwners(doubtful.map((d) => d.runId)) : new Map<string, { deviceId: string; taskId: string }>();
    const priorStates = doubtful.length ? await this.#runs.taskStatesOf(doubtful.filter((d) => !owners.has(d.runId))) : new Set<string>();
    for (const q of batch) {
      const ack: Omit<AckMessage, 're'> = { type: 'ack', runIds: [], rejected: [] };
      acks.set(q, ack);
      const effective = effectiveOf.get(q)!;
      for (const r of q.reports) {
        const problem = this.#checkOwnership(q.deviceId, r, effective, owners, priorStates) ?? (await this.#checkReport(r, secretsOf));
        if (problem) {
          if (problem.code === 'NOT_ASSIGNED') this.#limits.refused(q.deviceId, problem.code, 1, 'a run report was refused');
          ack.rejected.push({ runId: r.runId, code: problem.code, message: problem.message });
          continue;
        }
        this.#budgetEvents(q.deviceId, r);
        items.push({ deviceId: q.deviceId, report: r });
        owner.set(`${q.deviceId}\n${r.runId}\n${r.seq}`, q);
      }
    }
    try {
      const now = this.#clock.now().toISOString();
      const result = await this.#runs.applyReports(items, now);
      const ackOf = (i: DeviceReport) => owner.get(`${i.deviceId}\n${i.report.runId}\n${i.report.seq}`);
      for (const i of [...result.applied, ...result.duplicates]) {
        const q = ackOf(i);
        if (q) acks.get(q)!.runIds.push(i.report.runId);
      }
      for (const r of result.rejected) {
        const q = batch.find((b) => b.deviceId === r.deviceId);
        if (q) acks.get(q)!.rejected.push({ runId: r.runId, code: r.code, message: r.message });
        if (r.code === 'NOT_ASSIGNED') this.#limits.refused(r.deviceId, r.code, 1, 'a run report was refused');
      }
      for (const i of result.applied) this.#recordRunEvent(i);
      // States change without events (to running): the consoles are told.
      if (result.applied.length) this.#live.publishRuns(result.applied.map((i) => ({ taskId: i.report.taskId, deviceId: i.deviceId })));
      for (const q of batch) q.resolve(acks.get(q)!);
    } catch (err) {
      this.#log.error({ err, reports: items.length }, 'storing run reports failed; agents will resend');
      for (const q of batch) q.reject(new AppError('UNAVAILABLE', 'the reports could not be stored now; resend later'));
    }
  }

  /**
   * A device reports only for runs the server created for it (same run, same task), or for new
   * runs of tasks in its effective set, or of tasks it ran before (a task removed from the
   * device while a run was in flight still gets its result). Anything else: NOT_ASSIGNED. For
   * a task in the effective set, whether an existing run is this device's and this task's is
   * checked where the run is read anyway, in the ingest transaction (RunStore.applyReports),
   * which also gives a new run no run-now request id.
   */
  #checkOwnership(deviceId: string, r: RunReport, effective: Set<string>, owners: Map<string, { deviceId: string; taskId: string }>, prior: Set<string>): AppError | null {
    if (effective.has(r.taskId)) return null;
    const own = owners.get(r.runId);
    if (own) {
      if (own.deviceId !== deviceId) return new AppError('NOT_ASSIGNED', 'this run belongs to another device');
      if (own.taskId !== r.taskId) return new AppError('NOT_ASSIGNED', 'this run is of another task');
      return null;
    }
    if (prior.has(`${deviceId}\n${r.taskId}`)) return null;
    if (!this.#catalog.task(r.taskId)) return null; // unknown or deleted tasks are judged by #checkReport
    return new AppError('NOT_ASSIGNED', `task ${r.taskId} is not one of this device's tasks`);
  }
  /** Run events enter the central log within the device's event budget; the rest are dropped and counted, the result kept. */
  #budgetEvents(deviceId: string, r: RunReport): void {
    if (!r.events?.length) return;
    const got = this.#limits.take(deviceId, 'events', r.events.length);
    if (got < r.events.length) {
      this.#limits.refused(deviceId, 'RATE_LIMITED', r.events.length - got, 'run events were dropped (the result was kept)');
      r.events = r.events.slice(0, got);
    }
  }

  async #checkReport(r: RunReport, secretsOf: (task: Task) => Promise<string[]>): Promise<AppError | null> {
    if (!RUN_ID.test(r.runId)) return new AppError('VALIDATION_FAILED', 'runId must be 1-80 of A-Z a-z 0-9 . _ : -');
    for (const t of [r.createdAt, r.startedAt, r.endedAt]) {
      if (t != null && Number.isNaN(Date.parse(t))) return new AppError('VALIDATION_FAILED', `invalid timestamp "${t}"`);
    }
    const task = this.#catalog.task(r.taskId);
    if (!task && !(await this.#taskStore.taskExisted(r.taskId))) return new AppError('NOT_FOUND', `task ${r.taskId} does not exist`);
    if (task && r.outputTail) {
      // Secrets handed to the agent must not come back into the central log through output.
      let tail = r.outputTail;
      for (const v of await secretsOf(task)) tail = tail.split(v).join('***');
      r.outputTail = tail;
    }
    if (r.outputTail && r.outputTail.length > 16384) r.outputTail = r.outputTail.slice(-16384);
    return null;
  }

  #recordRunEvent(i: DeviceReport): void {
    const r = i.report;
    const task = this.#catalog.task(r.taskId);
    if (task?.product === BUILTIN_PRODUCT && task.type === DEPLOYMENT_TASK_TYPE) {
      if (r.state === 'running') this.#deployments.markInstalling(i.deviceId);
      if (r.events?.length) this.#deployments.recordResults(i.deviceId, r.events);
    }
    for (const e of r.events ?? []) {
      const time = e.time && !Number.isNaN(Date.parse(e.time)) ? new Date(e.time).toISOString() : undefined;
      this.#events.record({
        severity: e.severity,
        // The agent's own run lifecycle events keep their kind; a product's become `<product>.<kind>`.
        kind: isAgentRunEventKind(e.kind) ? e.kind : `${task?.product ?? 'product'}.${e.kind}`,
        message: e.message,
        deviceId: i.deviceId,
        taskId: r.taskId,
        runId: r.runId,
        product: task?.product ?? null,
        ...(time ? { time } : {}),
        ...(e.data ? { data: e.data } : {}),
      });
    }
    if (!isFinalRunState(r.state)) return;
    const device = this.#catalog.device(i.deviceId);
    const detail = r.exitCode != null ? ` (exit code ${r.exitCode})` : r.reason ? ` (${r.reason})` : '';
    this.#events.record({
      severity: stateSeverity[r.state] ?? 'info',
      kind: `run.${r.state}`,
      message: `task "${task?.name ?? r.taskId}" ${r.state.replaceAll('_', ' ')} on "${device?.name ?? i.deviceId}"${detail}`,
      deviceId: i.deviceId,
      taskId: r.taskId,
      runId: r.runId,
      product: task?.product ?? null,
      data: { attempt: r.attempt, exitCode: r.exitCode ?? null, cause: r.cause, ...(r.reason ? { reason: r.reason } : {}) },
    });
  }

  /**
   * A check-in's policy reports: only for products the device has a policy of on this server
   * (the others are dropped and counted); one row per product, queued for the next batched
   * upsert. Resolves once stored.
   */
  #submitStatus(deviceId: string, reports: PolicyStatusReport[], products: readonly string[]): Promise<void> {
    const known = new Set(products);
    const now = this.#clock.now();
    const rows = new Map<string, PolicyStatusRow>();
    let unknown = 0;
    for (const r of reports) {
      if (!known.has(r.product)) {
        unknown++;
        continue;
      }
      let drift = JSON.stringify(r.drift ?? []);
      if (drift.length > MAX_DRIFT_JSON) drift = JSON.stringify((r.drift ?? []).map((d) => ({ setting: d.setting, action: d.action })));
      rows.set(r.product, {
        device_id: deviceId,
        product: r.product,
        applied_revision: withoutNul(r.revision),
        state: r.state,
        drift,
        reason: r.reason == null ? null : withoutNul(r.reason),
        reported_at: agentTime(r.at, now),
      });
    }
    if (unknown) this.#limits.refused(deviceId, 'POLICY_TYPE_UNKNOWN', unknown, 'policy reports for products without a policy on this server were dropped');
    if (rows.size === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#statusQueue.push({ rows: [...rows.values()], resolve, reject });
      this.#statusWriter.schedule();
    });
  }

  /**
   * Device events of the authenticated device (the events carry no device id: the credential
   * says whose they are). Each must be of a product this server knows and of a kind outside the
   * agent's own namespace (refused otherwise, and the agent drops it); they enter the central
   * log as `<product>.<kind>` within the device's event budget: those past it are neither stored
   * nor acknowledged, so the agent keeps them and sends them again later. Stored once per
   * device and event id: a resent event is acknowledged again, not stored twice.
   */
  async submitDeviceEvents(deviceId: string, events: DeviceEvent[]): Promise<Omit<AckMessage, 're'>> {
    this.admit(deviceId);
    const ack: Omit<AckMessage, 're'> = { type: 'ack', runIds: [], rejected: [], eventIds: [] };
    const products = new Set(this.#plugins.list().map((p) => p.product.id));
    const accepted: DeviceEvent[] = [];
    const seen = new Set<string>();
    const refusedCodes = new Map<string, number>();
    const refuse = (e: DeviceEvent, code: string, message: string) => {
      ack.rejected.push({ runId: e.eventId, code, message });
      refusedCodes.set(code, (refusedCodes.get(code) ?? 0) + 1);
    };
    for (const e of events) {
      if (seen.has(e.eventId)) continue;
      seen.add(e.eventId);
      if (!products.has(e.product)) refuse(e, 'PRODUCT_NOT_INSTALLED', `no management plug-in for product "${e.product}" is installed`);
      else if (RESERVED_EVENT_KIND.test(e.kind) || isAgentRunEventKind(e.kind)) refuse(e, 'FORBIDDEN', `event kind "${e.kind}" is reserved to the agent`);
      else if (!storableData(e.data)) refuse(e, 'VALIDATION_FAILED', `an event's data must be JSON of at most ${MAX_EVENT_DATA_JSON} bytes`);
      else accepted.push(e);
    }
    for (const [code, n] of refusedCodes) this.#limits.refused(deviceId, code, n, 'device events were refused');
    const got = accepted.length ? this.#limits.take(deviceId, 'events', accepted.length) : 0;
    if (got < accepted.length) {
      this.#limits.refused(deviceId, 'RATE_LIMITED', accepted.length - got, 'device events were deferred (over the device\'s event budget)');
      if (got === 0 && ack.rejected.length === 0) throw new AppError('RATE_LIMITED', 'this device sends events too fast; retry later');
    }
    const take = accepted.slice(0, got);
    if (take.length === 0) return ack;
    const now = this.#clock.now();
    const groupId = this.#catalog.device(deviceId)?.groupId ?? null;
    const rows = take.map((e) => ({
      time: agentTime(e.time, now),
      severity: e.severity,
      kind: `${e.product}.${e.kind}`,
      message: withoutNul(e.message),
      actor: null,
      deviceId,
      groupId,
      taskId: null,
      runId: null,
      product: e.product,
      data: e.data ?? null,
      actorId: null,
      via: 'agent',
      address: null,
      eventId: e.eventId,
    }));
    await new Promise<void>((resolve, reject) => {
      this.#deviceEventQueue.push({ events: rows, resolve, reject });
      if (this.#deviceEventQueue.length >= 200) void this.#deviceEventWriter.flush();
      else this.#deviceEventWriter.schedule();
    });
    ack.eventIds = take.map((e) => e.eventId);
    return ack;
  }

  async flushAll(): Promise<void> {
    await this.flushReports();
    await this.flushCheckIns();
    await this.#statusWriter.flush();
    await this.#deviceEventWriter.flush();
  }
}


/** An agent's timestamp as stored: its own when it parses and is not ahead of the server's clock, else the server's. */
function agentTime(t: string | undefined, now: Date): string {
  const ms = t ? Date.parse(t) : Number.NaN;
  if (Number.isNaN(ms) || ms > now.getTime() + MAX_CLOCK_AHEAD_MS) return now.toISOString();
  return new Date(ms).toISOString();
}
