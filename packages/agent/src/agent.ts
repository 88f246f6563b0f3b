/**
 * The agent process: enrols once, then keeps its connection, checks in at the group's
 * communication interval (with jitter), runs its tasks through the TaskRunner and sends the
 * spooled results until the server acknowledges them. Everything it needs to go on working
 * while the server is unreachable is in its state folder:
 *
 *   credential.json  server addresses, pinned CA, device id and credential (0600)
 *   credential.next.json  a rotated credential not yet confirmed by the server
 *   install.json     written by the installer: the install folder and its uninstall script
 *   tasks.json       the last task list, its etag and the group policy
 *   local-changes.json  local task edits not yet accepted by the server
 *   enrolment-pending.json  present from enrolment until the enrolment event has fired
 *   spool/           run reports not yet acknowledged
 *   active/          runs in flight (resumed after a restart)
 *   logs/            the local event log (JSON lines, rotated)
 *   policy/          the effective policies received, their last applications and statuses (policy-enforcer.ts)
 *   agent-settings.json  the agent's own settings in force (product "garrison": agent-settings.ts)
 *   device-events/   device events (plug-in watchers, settings put back) not yet acknowledged
 *   processes/       the processes runs in flight started (ended before a run is resumed)
 *   agent.lock       held while the agent runs: one agent per state folder
 */
import { mkdir, readFile, rm, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { randomUUID, randomBytes } from 'node:crypto';
import { fetchPinnedCa, certificateFingerprint, normalizeFingerprint, pinnedFetch, requireHttps, TrustError, type FetchLike } from '@garrison/protocol/tls';
import {
  AGENT_ENROL_PATH,
  AGENT_CREDENTIAL_PATH,
  AGENT_UNINSTALLED_PATH,
  AGENT_CHECK_IN_PATH,
  DEVICE_CREDENTIAL_PREFIX,
  type IdentityDirective,
  type AgentTask,
  BUILTIN_PRODUCT,
  DEPLOYMENT_TASK_TYPE,
  type CheckInResult,
  type DeploymentInstruction,
  type EnrolResponse,
  type LocalTaskChange,
  type AgentIntervals,
  type AgentPolicySettings,
  type DeviceEvent,
  type MaintenanceWindow,
  type RunReport,
  type ServerToAgent,
  isFinalRunState,
  isSecretRef,
  replaceAt,
  valueAt,
  withSecretReferences,
} from '@garrison/protocol';

/** A task's settings as the device shows and sends them: secret references, never their values. */
export function referenceSettings(t: AgentTask): Record<string, unknown> {
  return withSecretReferences(t.settings, t.secretPlacements ?? []);
}
import { inMaintenanceWindow, nextMaintenanceWindow } from '@garrison/core';
import { LocalEventLog, redact, type LocalEvent } from './event-log.ts';
import { DeviceEventSpool, newEventId } from './device-events.ts';
import { PolicyEnforcer } from './policy-enforcer.ts';
import { AGENT_SETTINGS_FILE, AgentSettings } from './agent-settings.ts';
import { RunSpool } from './run-spool.ts';
import { readJson, writeJsonAtomic } from './state-file.ts';
import { TaskRunner } from './task-runner.ts';
import { Transport, TransportError } from './transport.ts';
import { failoverFetch, storedServerUrls, withServerUrls } from './server-urls.ts';
import { AgentPluginRegistry, builtinAgentPlugin, type PolicyContext } from './plugins.ts';
import { sampleScannerAgentPlugin } from '@garrison/sample-scanner/agent-plugin';
import { ProductManager } from './products.ts';
import { deploymentExecutor } from './executors/deployment.ts';
import { AGENT_VERSION, collectInventory, machineIdentity } from './inventory.ts';
import { UNINSTALLED_EXIT_CODE, UPDATE_EXIT_CODE } from './launcher.ts';
import { startLocalApi, type LocalApi } from './local-api.ts';
import { DeviceKey } from './device-key.ts';
import { lockStateFolder } from './state-folder-lock.ts';
import type { FolderLock } from '@garrison/protocol/folder-lock';

export interface AgentOptions {
  stateDir: string;
  /**
   * The server's addresses, in order (`--server`, parsed by parseServerUrls). Used to enrol;
   * given to an enrolled agent, the list replaces the stored one.
   */
  serverUrls?: string[];
  token?: string;
  name?: string;
  /** The server's CA: a PEM file, and/or the SHA-256 fingerprint it must have (fetched from the server when no file is given). */
  caFile?: string;
  caFingerprint?: string;
  /** Echo local events to stderr (the service's journal). */
  verbose?: boolean;
}
interface Credential {
  /** The first of serverUrls, kept for older agents and tools (files from before the list have only this). */
  serverUrl: string;
  /** The server's addresses in order of preference, all pinned to caPem (see server-urls.ts). */
  serverUrls?: string[];
  deviceId: string;
  credential: string;
  groupId: string;
  /** The server's package-signing key, received at enrolment. */
  signingPublicKey?: string;
  /** The server's CA (PEM), pinned at enrolment: the only certificate authority the agent trusts. */
  caPem: string;
}
export interface InstallInfo {
  installDir: string;
  uninstallScript: string;
}
interface TaskCache {
  etag: string | null;
  tasks: AgentTask[];
  policy: AgentIntervals;
  lastCheckInAt: string | null;
  /** The deployment steps of the last check-in, for the deployment task. */
  deployment?: DeploymentInstruction[];
}
/** Products whose agent plug-in comes with the agent, never from a package. */
const BUILT_IN_PRODUCTS = [BUILTIN_PRODUCT, 'sample-scanner'];
const DEFAULT_POLICY: AgentIntervals = { checkInIntervalMinutes: 60, policyEnforcementMinutes: 5 };
const REPORT_BATCH = 500;
/** Device events per message (the protocol's limit), and roughly the most bytes of them. */
const DEVICE_EVENT_BATCH = 500;
const DEVICE_EVENT_BATCH_BYTES = 512 * 1024;
/** An event's `data` larger than this (as JSON) is replaced by a note that it was too large. */
const DEVICE_EVENT_DATA_BYTES = 16 * 1024;
const DEVICE_EVENT_KIND = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** A new policy status waits this long for others before the early check-in that sends it. */
const STATUS_CHECK_IN_DELAY_MS = 2_000;
/** How long a non-final report waits for a newer one of its run before it is sent (#reportSpooled). */
const REPORT_COALESCE_MS = 250;

/**
 * Marks the enrolment event as owed. It is written at enrolment (by the agent, or by
 * `garrison agent enrol` for an installer) before the credential, so that no enrolled agent is
 * without it, and removed when the event fires, which is after the first check-in: before
 * that the agent knows none of its tasks. Kept in a file, a restart in between still fires the
 * event once, and a later start never again.
 */
export const ENROLMENT_PENDING_FILE = 'enrolment-pending.json';
export async function markEnrolmentPending(stateDir: string): Promise<void> {
  await writeJsonAtomic(path.join(stateDir, ENROLMENT_PENDING_FILE), { since: new Date().toISOString() });
}

export class EnrolmentError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * The CA the agent will pin: from a file (checked against the fingerprint when both are
 * given), or fetched from the server and accepted only with the expected fingerprint.
 */
export async function resolveServerCa(serverUrls: string | readonly string[], opts: { caFile?: string; caFingerprint?: string }): Promise<string> {
  const urls = typeof serverUrls === 'string' ? [serverUrls] : serverUrls;
  if (!urls.length) throw new EnrolmentError('NOT_ENROLLED', 'give the server address: --server URL');
  try {
    for (const u of urls) requireHttps(u);
    if (opts.caFile) {
      const pem = await readFile(opts.caFile, 'utf8').catch((err: Error) => {
        throw new EnrolmentError('CA_INVALID', `cannot read the CA file ${opts.caFile}: ${err.message}`);
      });
      let got: string;
      try {
        got = certificateFingerprint(pem);
      } catch {
        throw new EnrolmentError('CA_INVALID', `${opts.caFile} holds no readable certificate`);
      }
      if (opts.caFingerprint) {
        const want = normalizeFingerprint(opts.caFingerprint);
        if (!want) throw new EnrolmentError('CA_INVALID', 'the CA fingerprint must be 64 hex digits (SHA-256)');
        if (want !== got) throw new EnrolmentError('CA_FINGERPRINT_MISMATCH', `the CA in ${opts.caFile} has fingerprint ${got}, not ${want}`);
      }
      return pem;
    }
    if (opts.caFingerprint) {
      // From the first address that answers; a wrong fingerprint is final (every address is the same fleet).
      for (let i = 0; ; i++) {
        try {
          return await fetchPinnedCa(urls[i]!, opts.caFingerprint);
        } catch (err) {
          if (!(err instanceof TrustError && err.code === 'CA_UNAVAILABLE') || i === urls.length - 1) throw err;
        }
      }
    }
  } catch (err) {
    if (err instanceof TrustError) throw new EnrolmentError(err.code, err.message);
    throw err;
  }
  throw new EnrolmentError('CA_REQUIRED', "give the server's CA: --ca-fingerprint SHA256 (printed by the server and in installer links) or --ca FILE");
}

/**
 * Enrols with a token, at the first of the addresses that can be reached (the next one is
 * tried only when no answer came: an answer, even a refusal, is the fleet's). With `stateDir`,
 * a new device key is made there first and its public half registered with the device
 * (without one, the agent registers its key at its first check-in).
 */
export async function enrol(serverUrls: string | readonly string[], token: string, name: string | undefined, products: { id: string; version: string }[], caPem: string, stateDir?: string): Promise<EnrolResponse> {
  const urls = typeof serverUrls === 'string' ? [serverUrls] : serverUrls;
  const identity = machineIdentity();
  const publicKey = stateDir ? (await DeviceKey.create(stateDir)).publicKey : undefined;
  for (let i = 0; ; i++) {
    try {
      return await enrolAt(urls[i]!, token, name, products, caPem, identity, publicKey);
    } catch (err) {
      if (!(err instanceof EnrolmentError && err.code === 'UNREACHABLE') || i >= urls.length - 1) throw err;
    }
  }
}
async function enrolAt(serverUrl: string, token: string, name: string | undefined, products: { id: string; version: string }[], caPem: string, identity: string | null | undefined, publicKey: string | undefined): Promise<EnrolResponse> {
  let res: Response;
  try {
    res = await pinnedFetch(caPem)(requireHttps(serverUrl) + AGENT_ENROL_PATH, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, inventory: collectInventory(products), ...(name ? { name } : {}), ...(identity ? { machineIdentity: identity } : {}), ...(publicKey ? { publicKey } : {}) }),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code && /CERT|SELF_SIGNED|ALTNAME|UNABLE_TO_VERIFY/.test(cause.code)) {
      throw new EnrolmentError('SERVER_NOT_TRUSTED', `${serverUrl} did not present a certificate from the pinned CA for this address (${cause.code}: ${cause.message ?? ''})`);
    }
    throw new EnrolmentError('UNREACHABLE', `cannot reach ${serverUrl}: ${cause?.message ?? (err as Error).message}`);
  }
  const body = (await res.json().catch(() => null)) as (EnrolResponse & { error?: { code: string; message: string } }) | null;
  if (!res.ok || !body) throw new EnrolmentError(body?.error?.code ?? `HTTP_${res.status}`, body?.error?.message ?? `enrolment failed with HTTP ${res.status}`);
  return body;
}

export class Agent {
  readonly stateDir: string;
  readonly #opts: AgentOptions;
  readonly plugins: AgentPluginRegistry;
  products!: ProductManager;
  events!: LocalEventLog;
  spool!: RunSpool;
  runner!: TaskRunner;
  transport!: Transport;
  credential!: Credential;
  /** The effective policies, their enforcement and compliance statuses. */
  policy!: PolicyEnforcer;
  /** The agent's own settings in force (product "garrison"). */
  agentSettings!: AgentSettings;
  deviceEvents!: DeviceEventSpool;
  #cache: TaskCache = { etag: null, tasks: [], policy: DEFAULT_POLICY, lastCheckInAt: null };
  #localChanges = new Map<string, LocalTaskChange>();
  #checkInTimer: NodeJS.Timeout | null = null;
  #earlyCheckIn: NodeJS.Timeout | null = null;
  #eventsFlushing = false;
  #eventsAgain = false;
  #eventsRetry: NodeJS.Timeout | null = null;
  #eventsFailures = 0;
  /** Running plug-in watchers (AgentPlugin.watch), by product: their stop functions. */
  #watchers = new Map<string, () => Promise<void>>();
  #started = false;
  #flushing = false;
  #flushAgain = false;
  #flushRetry: NodeJS.Timeout | null = null;
  #coalesce: NodeJS.Timeout | null = null;
  #checkingIn: Promise<void> | null = null;
  #checkInAgain = false;
  #lastDeploymentSteps = '';
  /** Fires the deployment task when the maintenance window its held steps wait for opens. */
  #windowTimer: { at: number; timer: NodeJS.Timeout } | null = null;

  #deploymentAt(at: Date | null): void {
    if (at === null) return;
    const ms = at.getTime();
    if (this.#windowTimer?.at === ms) return;
    if (this.#windowTimer) clearTimeout(this.#windowTimer.timer);
    const timer = setTimeout(() => {
      this.#windowTimer = null;
      for (const t of this.runner?.tasks() ?? []) if (t.type === DEPLOYMENT_TASK_TYPE) this.runner.fire(t.id, 'maintenance-window');
    }, Math.min(Math.max(0, ms - Date.now()) + 1000, 2 ** 31 - 1));
    timer.unref?.();
    this.#windowTimer = { at: ms, timer };
  }
  #updateConfirmed = false;
  #reportedUpdateFailure = false;
  #localApi: LocalApi | null = null;
  #stopped = false;
  #identity = machineIdentity();
  #deviceKey!: DeviceKey;
  #folderLock: FolderLock | null = null;
  /**
   * Tasks fired for the agent-start event of this process. The event fires at start for the
   * tasks kept from the last run and, at the first check-in, for those it brings (a first
   * start knows no task before it); null once that check-in has closed the window.
   */
  #agentStartFired: Set<string> | null = new Set();
  #enrolmentPending = false;

  constructor(opts: AgentOptions) {
    this.#opts = opts;
    this.stateDir = path.resolve(opts.stateDir);
    this.plugins = new AgentPluginRegistry(path.join(this.stateDir, 'products'));
    // The agent's own policy is applied by the built-in product's plug-in.
    this.plugins.install({ ...builtinAgentPlugin, applyPolicy: (p, ctx) => this.agentSettings.applyPolicy(p, ctx) });
    this.plugins.install(sampleScannerAgentPlugin);
  }

  /** The maintenance windows of the agent's policy (none: no restriction). */
  maintenanceWindows(): readonly MaintenanceWindow[] {
    return this.agentSettings?.current.maintenanceWindows ?? [];
  }
  /** The device's time zone: the one a window's "local" time basis means. */
  localZone(): string {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  }
  /** Whether the device's user may create, change or delete local tasks (the agent's policy). */
  get localTasksAllowed(): boolean {
    return this.agentSettings?.current.localTasksAllowed ?? true;
  }

  /**
   * The check-in and enforcement intervals in force: the agent's policy when the server sends
   * one (product "garrison"), else the intervals of the check-in result (servers before policies).
   */
  intervals(): AgentIntervals & { checkInRandomizationMinutes: number } {
    const s = this.agentSettings?.current;
    if (s && this.policy?.policy(BUILTIN_PRODUCT)) return { checkInIntervalMinutes: s.checkInIntervalMinutes, policyEnforcementMinutes: s.policyEnforcementMinutes, checkInRandomizationMinutes: s.checkInRandomizationMinutes };
    return { ...this.#cache.policy, checkInRandomizationMinutes: s?.checkInRandomizationMinutes ?? 0 };
  }

  /** What a product's applyPolicy and watch get: its folder, and emit (local log + central, spooled). */
  policyContext(product: string): PolicyContext {
    return { ...this.plugins.context(product), emit: (e) => this.emitDeviceEvent(product, e) };
  }

  /**
   * A device event of a product: written to the local log and the durable spool (resolved once
   * on disk), then sent. Plug-in input: the kind must be a valid one, the message is cut to the
   * protocol's length, data is redacted and bounded.
   */
  async emitDeviceEvent(product: string, e: { severity: 'info' | 'warning' | 'error'; kind: string; message: string; data?: Record<string, unknown>; eventId?: string }): Promise<void> {
    if (!e || !['info', 'warning', 'error'].includes(e.severity)) throw new TypeError('an event needs a severity: info, warning or error');
    if (typeof e.kind !== 'string' || !DEVICE_EVENT_KIND.test(e.kind)) throw new TypeError(`invalid event kind ${JSON.stringify(e.kind)}: lower-case letters, digits and . _ -, at most 64`);
    const message = String(e.message ?? '').slice(0, 2000) || e.kind;
    let data: Record<string, unknown> | undefined;
    if (e.data !== undefined && e.data !== null && typeof e.data === 'object' && !Array.isArray(e.data)) {
      data = redact(e.data);
      const size = Buffer.byteLength(JSON.stringify(data) ?? '');
      if (size > DEVICE_EVENT_DATA_BYTES) data = { truncated: true, bytes: size };
    }
    // A plug-in may name the event (a journal entry's id), so that one emitted again after a crash is stored once.
    const eventId = typeof e.eventId === 'string' && /^[A-Za-z0-9_-]{8,80}$/.test(e.eventId) ? e.eventId : newEventId();
    const event: DeviceEvent = { eventId, product, severity: e.severity, kind: e.kind, message, time: new Date().toISOString(), ...(data ? { data } : {}) };
    await this.log(e.severity, `${product}.${e.kind}`, message, data ? { data } : {});
    await this.deviceEvents.add(event);
    if (this.transport) void this.flushDeviceEvents();
  }

  /** Sends spooled device events until the spool is empty; those the server stored or refused leave it. */
  async flushDeviceEvents(): Promise<void> {
    if (this.#eventsFlushing) {
      this.#eventsAgain = true;
      return;
    }
    this.#eventsFlushing = true;
    try {
      do {
        this.#eventsAgain = false;
        while (!this.#stopped && this.deviceEvents.size) {
          const batch: DeviceEvent[] = [];
          let bytes = 0;
          for (const ev of this.deviceEvents.pending(DEVICE_EVENT_BATCH)) {
            bytes += Buffer.byteLength(JSON.stringify(ev));
            if (batch.length && bytes > DEVICE_EVENT_BATCH_BYTES) break;
            batch.push(ev);
          }
          const ack = await this.transport.deviceEvents(batch);
          const sent = new Set(batch.map((ev) => ev.eventId));
          const stored = (ack.eventIds ?? []).filter((id) => sent.has(id));
          const rejected: string[] = [];
          // A refusal names the event in `eventId` (or, in the shape of a report's, `runId`).
          for (const r of (ack.rejected ?? []) as { runId?: string; eventId?: string; code: string; message: string }[]) {
            const id = r.eventId ?? r.runId;
            if (!id || !sent.has(id)) continue;
            rejected.push(id);
            await this.log('error', 'device-event.rejected', `the server refused device event ${id}: ${r.code} ${r.message}`);
          }
          await this.deviceEvents.remove([...stored, ...rejected]);
          this.#eventsFailures = 0;
          if (!stored.length && !rejected.length) break; // answered without taking any: later
        }
      } while (this.#eventsAgain && !this.#stopped);
    } catch (err) {
      const e = err as TransportError;
      // Kept in the spool; tried again shortly when the server may take them, and after each check-in.
      // Backing off (5 s doubling to 5 min), so a server that keeps failing them is not pressed.
      this.#eventsFailures++;
      if (!this.#stopped && !this.#eventsRetry && e.retryable !== false) {
        this.#eventsRetry = setTimeout(() => {
          this.#eventsRetry = null;
          void this.flushDeviceEvents();
        }, Math.min(300_000, 5_000 * 2 ** Math.min(this.#eventsFailures - 1, 6)));
        this.#eventsRetry.unref?.();
      }
      if (e.code !== 'UNREACHABLE' && e.code !== 'DISCONNECTED' && (this.#eventsFailures <= 1 || this.#eventsFailures % 10 === 0)) await this.log('warning', 'device-events.deferred', `device events kept for later: ${e.message}`);
    } finally {
      this.#eventsFlushing = false;
    }
  }

  /** The agent's settings in force changed: its log and clocks follow. */
  async #settingsChanged(s: AgentPolicySettings): Promise<void> {
    await this.events.configure({ maxBytes: s.logMaxBytes, keep: s.logKeepFiles }).catch((err: Error) => this.log('error', 'policy.log-config', `the event log could not be reconfigured: ${err.message}`));
    if (this.#started) {
      this.#armCheckIn();
      this.policy.rearm();
    }
  }

  /** A policy status to send: check in shortly (once for a burst of them). */
  #checkInSoon(): void {
    if (this.#earlyCheckIn || this.#stopped || !this.#started) return;
    this.#earlyCheckIn = setTimeout(() => {
      this.#earlyCheckIn = null;
      void this.checkIn();
    }, STATUS_CHECK_IN_DELAY_MS);
    this.#earlyCheckIn.unref?.();
  }

  /** Starts the watcher of a product's plug-in (stopping the one it had). */
  async #startWatch(product: string): Promise<void> {
    await this.#stopWatch(product);
    const p = this.plugins.get(product);
    if (!p?.watch || this.#stopped) return;
    try {
      const stop = await p.watch(this.policyContext(product));
      if (typeof stop === 'function') this.#watchers.set(product, stop);
    } catch (err) {
      await this.log('error', 'plugin.watch-failed', `the watcher of ${product} could not start: ${(err as Error).message}`);
    }
  }
  async #stopWatch(product: string): Promise<void> {
    const stop = this.#watchers.get(product);
    if (!stop) return;
    this.#watchers.delete(product);
    try {
      await stop();
    } catch (err) {
      await this.log('warning', 'plugin.watch-failed', `the watcher of ${product} did not stop cleanly: ${(err as Error).message}`);
    }
  }

  async log(severity: LocalEvent['severity'], kind: string, message: string, extra: Partial<LocalEvent> = {}): Promise<void> {
    if (this.#opts.verbose) process.stderr.write(`${new Date().toISOString()} ${severity} ${kind}: ${message}\n`);
    await this.events.write({ time: new Date().toISOString(), severity, kind, message, ...extra }).catch(() => {});
  }

  async start(): Promise<void> {
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    // Before anything else touches the folder: a second agent here is refused (FolderInUseError).
    this.#folderLock = await lockStateFolder(this.stateDir);
    await mkdir(path.join(this.stateDir, 'tmp'), { recursive: true, mode: 0o711 });
    this.events = new LocalEventLog(path.join(this.stateDir, 'logs'));
    this.deviceEvents = new DeviceEventSpool(path.join(this.stateDir, 'device-events'), {
      onDropped: (evs) => void this.log('warning', 'device-events.dropped', `${evs.length} unsent device events dropped (the spool keeps at most ${this.deviceEvents.maxEvents}); oldest from ${evs[0]?.time ?? '?'}`),
      onCorrupt: (file, err) => void this.log('error', 'device-events.corrupt', `${file}: ${err.message}`),
    });
    await this.deviceEvents.init();
    const credFile = path.join(this.stateDir, 'credential.json');
    let cred = await readJson<Credential>(credFile);
    let justEnrolled = false;
    if (cred && !cred.caPem) throw new EnrolmentError('NOT_ENROLLED', `${credFile} predates TLS pinning: enrol this agent again`);
    const given = this.#opts.serverUrls ?? [];
    if (!cred) {
      if (!given.length || !this.#opts.token) throw new EnrolmentError('NOT_ENROLLED', 'this agent is not enrolled yet: give --server URL, the enrolment token (--token-file FILE, --token-stdin or GARRISON_ENROL_TOKEN) and --ca-fingerprint SHA256 (or --ca FILE)');
      const caPem = await resolveServerCa(given, { ...(this.#opts.caFile ? { caFile: this.#opts.caFile } : {}), ...(this.#opts.caFingerprint ? { caFingerprint: this.#opts.caFingerprint } : {}) });
      const r = await enrol(given, this.#opts.token, this.#opts.name, await this.plugins.installedProducts(), caPem, this.stateDir);
      cred = withServerUrls({ deviceId: r.deviceId, credential: r.credential, groupId: r.groupId, signingPublicKey: r.signingPublicKey, caPem }, given);
      await markEnrolmentPending(this.stateDir);
      await writeJsonAtomic(credFile, cred, 0o600);
      this.#cache.policy = r.policy;
      justEnrolled = true;
      await this.log('info', 'agent.enrolled', `enrolled as device ${r.deviceId} with ${given.join(', ')}`);
    } else {
      const stored = storedServerUrls(cred);
      if (!stored.length && !given.length) throw new EnrolmentError('NOT_ENROLLED', `${credFile} names no server address: give --server URL`);
      // A list given to an enrolled agent replaces the stored one (the way to add, remove or
      // reorder addresses without enrolling again); the CA pinned at enrolment stays the only
      // trust, for every address. Without --server the stored list is used.
      if (given.length && given.join(' ') !== stored.join(' ')) {
        cred = withServerUrls(cred, given);
        await writeJsonAtomic(credFile, cred, 0o600);
        await this.log('info', 'agent.servers-changed', `server addresses now ${given.join(', ')} (were ${stored.join(', ') || 'none'})`);
      } else {
        // In memory with both fields, so that any later rewrite (rotation) keeps the list.
        cred = withServerUrls(cred, stored);
      }
    }
    this.#deviceKey = await DeviceKey.load(this.stateDir);
    cred = await this.#recoverRotation(cred);
    this.credential = cred;
    this.products = new ProductManager({
      productsRoot: path.join(this.stateDir, 'products'),
      downloadsDir: path.join(this.stateDir, 'downloads'),
      // Filled by an offline installation package's install script (server: installation-package.ts).
      offlineDir: path.join(this.stateDir, 'offline-packages'),
      tempDir: path.join(this.stateDir, 'tmp'),
      // The address in use, and a fetch that fails over to the others (created before any download can start).
      server: () => ({ url: this.transport.serverUrl, credential: this.credential.credential, fetch: this.transport.fetch, ...(this.credential.signingPublicKey ? { signingPublicKey: this.credential.signingPublicKey } : {}) }),
      onInstalled: async (record) => {
        const reload = !!record.manifest.agentPlugin && !BUILT_IN_PRODUCTS.includes(record.product);
        if (reload) await this.#stopWatch(record.product);
        if (await this.plugins.loadFromPackage(record, BUILT_IN_PRODUCTS)) await this.log('info', 'plugin.loaded', `agent plug-in of ${record.product} ${record.version} loaded`);
        if (reload) {
          await this.#startWatch(record.product);
          void this.policy.applyProduct(record.product);
        }
      },
      onUninstalled: (product) => {
        if (BUILT_IN_PRODUCTS.includes(product)) return;
        void this.#stopWatch(product);
        this.plugins.uninstall(product);
      },
      updateSources: () => this.agentSettings.current.updateSources,
      onSourceFailed: (source, reason) => void this.log('warning', 'package.source-failed', `${source}: ${reason}; trying the next update source`),
    });
    for (const record of await this.products.installed()) {
      await this.plugins.loadFromPackage(record, BUILT_IN_PRODUCTS).catch((err: unknown) => this.log('error', 'plugin.failed', `agent plug-in of ${record.product} could not be loaded: ${(err as Error).message}`));
    }
    this.plugins.packaged = this.products;
    this.plugins.registerTaskType(
      BUILTIN_PRODUCT,
      DEPLOYMENT_TASK_TYPE,
      deploymentExecutor({
        products: this.products,
        plan: () => this.#cache.deployment ?? [],
        newContent: (products) => this.runner.onNewContent(products),
        selfUpdate: (step) => this.products.stageAgentUpdate(step, this.stateDir, AGENT_VERSION),
        restart: () => void this.restartForUpdate(),
        // A plan is done once carried out; a check-in during the run brings a new one (a new array).
        installedVersion: async (product) => (await this.plugins.detect(product))?.version ?? null,
        window: () => {
          const windows = this.maintenanceWindows();
          if (windows.length === 0) return { open: true, next: null };
          const now = new Date();
          const next = nextMaintenanceWindow(windows, now, this.localZone());
          return { open: inMaintenanceWindow(windows, now, this.localZone()), next: next?.start ?? null };
        },
        deferred: (at) => this.#deploymentAt(at),
        consumed: (steps) => {
          if (this.#cache.deployment === steps) this.#cache.deployment = [];
        },
        // Report the new inventory now, unless these very steps already led to a check-in: a
        // package whose detect command disagrees with its version must not become an install loop.
        changed: () => {
          const key = JSON.stringify((this.#cache.deployment ?? []).map((s) => [s.action, s.product, s.version]));
          if (key === this.#lastDeploymentSteps) return;
          this.#lastDeploymentSteps = key;
          void this.checkIn();
        },
      }),
    );
    this.#cache = (await readJson<TaskCache>(path.join(this.stateDir, 'tasks.json')).catch(() => undefined)) ?? this.#cache;
    const pendingLocal = (await readJson<LocalTaskChange[]>(path.join(this.stateDir, 'local-changes.json')).catch(() => undefined)) ?? [];
    this.#localChanges = new Map(pendingLocal.map((c) => [c.taskId, c]));

    this.agentSettings = new AgentSettings({ file: path.join(this.stateDir, AGENT_SETTINGS_FILE), events: this.events, onChange: (s) => this.#settingsChanged(s) });
    this.policy = new PolicyEnforcer({
      dir: path.join(this.stateDir, 'policy'),
      plugins: this.plugins,
      context: (product) => this.policyContext(product),
      intervalMs: () => this.intervals().policyEnforcementMinutes * 60_000,
      // One clock: the policy-enforcement trigger of tasks fires with every enforcement.
      onTick: () => this.runner?.onEvent('policy-enforcement'),
      onStatusChanged: () => this.#checkInSoon(),
      log: (severity, kind, message) => void this.log(severity, kind, message),
    });
    await this.policy.init();
    await this.agentSettings.load(this.policy.policy(BUILTIN_PRODUCT)?.locked ?? []);

    this.spool = new RunSpool(path.join(this.stateDir, 'spool'), { onCorrupt: (file, err) => void this.log('error', 'spool.corrupt', `${file}: ${err.message}`) });
    await this.spool.init();
    this.runner = new TaskRunner({ dir: this.stateDir, spool: this.spool, plugins: this.plugins, events: this.events, onReport: (report) => this.#reportSpooled(report), maintenanceWindows: () => ({ windows: this.maintenanceWindows(), localZone: this.localZone() }) });
    await this.runner.init(this.#effectiveTasks());

    this.transport = new Transport({ serverUrls: storedServerUrls(cred), credential: cred.credential, caPem: cred.caPem, machineIdentity: this.#identity, log: (level, msg) => void this.log(level, 'transport', msg) });
    this.transport.on('connected', () => {
      // Also after a failover: what the spool holds (reports the previous address never
      // acknowledged) is sent to this one; reports are idempotent by run id and seq.
      void this.log('info', 'agent.connected', `connected to ${this.transport.serverUrl}`);
      void this.checkIn();
      void this.flushReports();
      void this.flushDeviceEvents();
    });
    this.transport.on('disconnected', (why) => void this.log('warning', 'agent.disconnected', `disconnected: ${why}`));
    this.transport.on('message', (m) => this.#onMessage(m));
    // Before the transport starts, so that no check-in can complete first: agent-start fires
    // now for the tasks kept from the last run, and the enrolment owed is known.
    this.#enrolmentPending = existsSync(path.join(this.stateDir, ENROLMENT_PENDING_FILE));
    this.#fireAgentStart();
    this.transport.start();

    // Without its local API the agent still does its work: the device's user is told why.
    this.#localApi = await startLocalApi(this).catch(async (err: Error) => {
      await this.log('error', 'local-api.failed', `the local API (garrison agent status, task …) is not available: ${err.message}`);
      return null;
    });
    if (this.#localApi && process.platform !== 'win32' && !this.#localApi.socketPath.endsWith(`${path.sep}agent.sock`)) {
      await this.log('info', 'local-api.socket', `the state folder's path is too long for a socket address: the local API listens on ${this.#localApi.socketPath}`);
    }
    this.#started = true;
    this.#armCheckIn(justEnrolled ? 0 : 5_000);
    this.policy.start();
    for (const product of this.plugins.products()) await this.#startWatch(product);
    await this.log('info', 'agent.started', `agent started (device ${cred.deviceId})`);
  }

  #onMessage(m: ServerToAgent): void {
    switch (m.type) {
      case 'run-now':
        for (const r of m.requests) this.runner.runNow(r);
        break;
      case 'stop':
        this.runner.stop(m.taskId, m.runIds);
        break;
      case 'sync':
        void this.checkIn();
        break;
      case 'error':
        void this.log('warning', 'server.error', `${m.code}: ${m.message}`);
        break;
      default:
        break;
    }
  }

  #armCheckIn(delayMs?: number): void {
    if (this.#checkInTimer) clearTimeout(this.#checkInTimer);
    if (this.#stopped) return;
    const { checkInIntervalMinutes, checkInRandomizationMinutes } = this.intervals();
    const interval = checkInIntervalMinutes * 60_000;
    // ±10% jitter, so that a fleet enrolled at once does not check in at once forever, and the
    // policy's randomization: a random delay up to that many minutes on each scheduled check-in.
    const wait = delayMs ?? Math.round(interval * (0.9 + Math.random() * 0.2) + Math.random() * checkInRandomizationMinutes * 60_000);
    this.#checkInTimer = setTimeout(() => void this.checkIn().finally(() => this.#armCheckIn()), wait);
    this.#checkInTimer.unref?.();
  }

  /**
   * The server's list with this device's pending local edits laid over it. An edit holds
   * settings in reference form; a reference it kept at its place runs with the value the
   * server resolved for it (any other reference stays unresolved until the server answers,
   * and the server refuses a new one).
   */
  #effectiveTasks(): AgentTask[] {
    const byId = new Map(this.#cache.tasks.map((t) => [t.id, t]));
    for (const c of this.#localChanges.values()) {
      if (c.deleted) {
        byId.delete(c.taskId);
        continue;
      }
      const base = byId.get(c.taskId);
      const kept = (base?.secretPlacements ?? []).filter((p) => {
        const v = valueAt(c.task.settings, p.path);
        return isSecretRef(v) && v.$secret === p.name;
      });
      const settings = base && kept.length ? replaceAt(c.task.settings, kept, (p) => valueAt(base.settings, p.path)) : c.task.settings;
      byId.set(c.taskId, { id: c.taskId, ...c.task, settings, revision: (c.baseRevision ?? 0) + 0.5, local: true, ...(kept.length ? { secretPlacements: kept } : {}) });
    }
    return [...byId.values()];
  }

  /**
   * One check-in at a time. A request made while one is in flight (a `sync` nudge for a change
   * the server made after that check-in was sent) runs once more when it is done, so that no
   * change is left waiting for the next interval.
   */
  checkIn(): Promise<void> {
    if (this.#checkingIn) {
      this.#checkInAgain = true;
      return this.#checkingIn;
    }
    this.#checkingIn = (async () => {
      do {
        this.#checkInAgain = false;
        await this.#doCheckIn();
      } while (this.#checkInAgain && !this.#stopped);
    })().finally(() => {
      this.#checkingIn = null;
    });
    return this.#checkingIn;
  }
  async #doCheckIn(): Promise<void> {
    if (this.#stopped) return;
    let result: CheckInResult;
    const statuses = this.policy.pendingStatus().slice(0, 100);
    try {
      result = await this.transport.checkIn({
        ...(this.policy.etag ? { policiesEtag: this.policy.etag } : {}),
        ...(statuses.length ? { policyStatus: statuses } : {}),
        inventory: collectInventory(await this.plugins.installedProducts()),
        ...(this.#cache.etag ? { tasksEtag: this.#cache.etag } : {}),
        ...(this.#localChanges.size ? { localChanges: [...this.#localChanges.values()] } : {}),
        ...(this.#identity ? { machineIdentity: this.#identity } : {}),
        publicKey: this.#deviceKey.publicKey,
      });
    } catch (err) {
      const e = err as TransportError;
      await this.log(e.retryable === false ? 'error' : 'warning', 'check-in.failed', `check-in failed: ${e.message}`);
      return;
    }
    // A clone, a quarantine or an uninstall: nothing else of this answer applies.
    if (result.identity?.action === 'reidentify') return this.#reidentify(result.identity);
    if (result.identity?.action === 'quarantined') {
      await this.log('warning', 'agent.quarantined', result.identity.reason);
      return;
    }
    if (result.identity?.action === 'uninstall') {
      void this.uninstall('the administrator asked for it');
      return;
    }
    await this.policy.statusSent(statuses);
    if (result.policies) {
      void this.policy
        .setPolicies(result.policies)
        .then(async () => {
          // No policy of the agent any more (or a server before policies): nothing is locked.
          if (!this.policy.policy(BUILTIN_PRODUCT) && this.agentSettings.locked.length) await this.agentSettings.load([]);
        })
        .catch((err: Error) => this.log('error', 'policy.failed', `the policies received could not be kept: ${err.message}`));
    }
    for (const r of result.localResolutions) {
      this.#localChanges.delete(r.taskId);
      if (r.outcome !== 'applied') {
        await this.log('warning', `task.local-change-${r.outcome}`, `local change to task ${r.taskId} ${r.outcome}${r.reason ? `: ${r.reason}` : ''}`, { taskId: r.taskId });
      }
    }
    if (result.localResolutions.length) await writeJsonAtomic(path.join(this.stateDir, 'local-changes.json'), [...this.#localChanges.values()]);
    const policyChanged = JSON.stringify(result.policy) !== JSON.stringify(this.#cache.policy);
    this.#cache = {
      etag: result.tasks ? result.tasksEtag : this.#cache.etag,
      tasks: result.tasks ?? this.#cache.tasks,
      policy: result.policy,
      lastCheckInAt: result.serverTime,
      deployment: result.deployment?.steps ?? [],
    };
    await writeJsonAtomic(path.join(this.stateDir, 'tasks.json'), this.#cache);
    if (result.tasks || result.localResolutions.length) this.runner.setTasks(this.#effectiveTasks());
    if (policyChanged) {
      this.#armCheckIn();
      this.policy.rearm();
    }
    for (const r of result.runRequests) this.runner.runNow(r);
    if (result.identity?.action === 'rotate-credential') await this.rotateCredential(result.identity.challenge);
    await this.#confirmUpdate();
    await this.#fireStartEvents();
    this.runner.onEvent('check-in');
    if (this.deviceEvents.size) void this.flushDeviceEvents();
  }

  /** Fires agent-start for the tasks that have it and have not had it in this process. */
  #fireAgentStart(): void {
    const fired = this.#agentStartFired;
    if (!fired) return;
    for (const t of this.runner.tasks()) {
      if (fired.has(t.id) || !t.enabled || !t.schedule.triggers.some((x) => x.type === 'agent-start')) continue;
      fired.add(t.id);
      this.runner.fire(t.id, 'agent-start');
    }
  }
  /**
   * After a check-in the task list is the server's: the start and enrolment events owed fire
   * now, once. The enrolment mark is removed before the event fires, so a crash in between
   * loses this one event rather than running it twice.
   */
  async #fireStartEvents(): Promise<void> {
    this.#fireAgentStart();
    this.#agentStartFired = null;
    if (!this.#enrolmentPending) return;
    this.#enrolmentPending = false;
    await rm(path.join(this.stateDir, ENROLMENT_PENDING_FILE), { force: true });
    this.runner.onEvent('enrolment');
  }

  /** After an update, the first successful check-in tells the launcher that this version works. */
  async #confirmUpdate(): Promise<void> {
    if (!process.env.GARRISON_LAUNCHER || this.#updateConfirmed) return;
    this.#updateConfirmed = true;
    const pending = await readJson<{ to: string }>(path.join(this.stateDir, 'update-pending.json')).catch(() => undefined);
    if (pending?.to === AGENT_VERSION) {
      await writeJsonAtomic(path.join(this.stateDir, 'update-confirmed.json'), { version: AGENT_VERSION, at: new Date().toISOString() });
      await this.log('info', 'agent.updated', `now running agent ${AGENT_VERSION}`);
    }
    const failed = await readJson<{ version: string; reason: string }>(path.join(this.stateDir, 'update-failed.json')).catch(() => undefined);
    if (failed && !this.#reportedUpdateFailure) {
      this.#reportedUpdateFailure = true;
      await this.log('error', 'agent.update-rolled-back', `the update to ${failed.version} was rolled back: ${failed.reason}`);
    }
  }

  /**
   * A report entered the spool. A final one is sent at once; a "running" or progress report
   * waits up to REPORT_COALESCE_MS, so that a run that ends within it sends only its result
   * (the spool keeps the newest report of each run): one message and one acknowledgement
   * instead of two of each, which at a run-now to 100,000 devices is 200,000 messages fewer
   * through the server, and progress ticks of a long run go out a few per second at most.
   */
  #reportSpooled(report: RunReport): void {
    if (isFinalRunState(report.state)) {
      if (this.#coalesce) clearTimeout(this.#coalesce);
      this.#coalesce = null;
      void this.flushReports();
    } else if (!this.#coalesce) {
      this.#coalesce = setTimeout(() => {
        this.#coalesce = null;
        void this.flushReports();
      }, REPORT_COALESCE_MS);
    }
  }

  /** Sends spooled reports until the spool is empty; acknowledged reports leave the spool. */
  async flushReports(): Promise<void> {
    if (this.#flushing) {
      this.#flushAgain = true;
      return;
    }
    this.#flushing = true;
    try {
      do {
        this.#flushAgain = false;
        const pending = this.spool.pending();
        for (let i = 0; i < pending.length && !this.#stopped; i += REPORT_BATCH) {
          const batch = pending.slice(i, i + REPORT_BATCH);
          const sent = new Map(batch.map((r) => [r.runId, r.seq]));
          const ack = await this.transport.reports(batch);
          for (const id of ack.runIds) await this.spool.ack(id, sent.get(id) ?? 0);
          for (const rej of ack.rejected) {
            await this.spool.ack(rej.runId, sent.get(rej.runId) ?? 0);
            await this.log('error', 'report.rejected', `the server refused the report of run ${rej.runId}: ${rej.code} ${rej.message}`, { runId: rej.runId });
          }
        }
      } while (this.#flushAgain && !this.#stopped);
    } catch (err) {
      // Kept in the spool; tried again shortly and on the next connection.
      if (!this.#stopped && !this.#flushRetry) {
        this.#flushRetry = setTimeout(() => {
          this.#flushRetry = null;
          void this.flushReports();
        }, 5_000);
      }
      if ((err as TransportError).code !== 'UNREACHABLE') await this.log('warning', 'report.deferred', `reports kept for later: ${(err as Error).message}`);
    } finally {
      this.#flushing = false;
    }
  }

  // Local tasks: the device's user edits them through the local API; the server reconciles.
  localTaskChange(change: Omit<LocalTaskChange, 'changedAt' | 'baseRevision'> & { baseRevision?: number | null }): LocalTaskChange {
    const existing = this.#effectiveTasks().find((t) => t.id === change.taskId);
    const pending = this.#localChanges.get(change.taskId);
    const c: LocalTaskChange = {
      taskId: change.taskId,
      baseRevision: pending ? pending.baseRevision : existing && Number.isInteger(existing.revision) && existing.revision > 0 ? existing.revision : null,
      ...(change.deleted ? { deleted: true } : {}),
      changedAt: new Date().toISOString(),
      task: change.task,
    };
    this.#localChanges.set(c.taskId, c);
    void writeJsonAtomic(path.join(this.stateDir, 'local-changes.json'), [...this.#localChanges.values()]);
    this.runner.setTasks(this.#effectiveTasks());
    void this.checkIn();
    return c;
  }
  newLocalTaskId(): string {
    return randomUUID();
  }
  pendingLocalChanges(): LocalTaskChange[] {
    return [...this.#localChanges.values()];
  }
  status() {
    return {
      deviceId: this.credential.deviceId,
      serverUrl: this.transport.serverUrl,
      serverUrls: this.transport.serverUrls,
      connected: this.transport.connected,
      lastCheckInAt: this.#cache.lastCheckInAt,
      policy: this.#cache.policy,
      tasks: this.runner.tasks().length,
      running: this.runner.runningTaskIds(),
      spooledReports: this.spool.size,
      pendingLocalChanges: this.#localChanges.size,
      policies: this.policy.policies().map((p) => ({ product: p.product, revision: p.revision, state: this.policy.status(p.product)?.state ?? 'pending' })),
      localTasksAllowed: this.localTasksAllowed,
      spooledDeviceEvents: this.deviceEvents.size,
    };
  }

  /**
   * Hands over to the launcher after staging an update: once the deployment run's result is
   * spooled (and, if the server is reachable, acknowledged), stop and exit with
   * UPDATE_EXIT_CODE; the launcher starts the new runtime. Spooled results stay for it.
   */
  async restartForUpdate(): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (this.runner.runningTaskIds().some((id) => this.runner.task(id)?.type === DEPLOYMENT_TASK_TYPE) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await Promise.race([this.flushReports(), new Promise((r) => setTimeout(r, 5000))]);
    await this.log('info', 'agent.updating', 'restarting into the new agent version');
    await this.stop();
    process.exit(UPDATE_EXIT_CODE);
  }

  /**
   * Makes a new secret and registers it with the server (authenticated by the current one),
   * then switches to it. The new credential is written to credential.next.json first: if the
   * agent dies in between, the next start finds out which of the two the server holds.
   */
  async rotateCredential(challenge: string): Promise<void> {
    const secret = randomBytes(32).toString('base64url');
    const next: Credential = { ...this.credential, credential: `${DEVICE_CREDENTIAL_PREFIX}.${this.credential.deviceId}.${secret}` };
    const nextFile = path.join(this.stateDir, 'credential.next.json');
    await writeJsonAtomic(nextFile, next, 0o600);
    let ok = false;
    try {
      const res = await this.transport.fetch(this.transport.serverUrl + AGENT_CREDENTIAL_PATH, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.credential.credential}` },
        body: JSON.stringify({ secret, challenge, signature: this.#deviceKey.signRotation(this.credential.deviceId, challenge, secret), publicKey: this.#deviceKey.publicKey }),
        signal: AbortSignal.timeout(30_000),
      });
      ok = res.ok;
      if (!ok) await this.log('error', 'credential.rotation-failed', `the server refused the new credential: HTTP ${res.status}`);
    } catch (err) {
      await this.log('warning', 'credential.rotation-failed', `credential rotation deferred: ${(err as Error).message}`);
    }
    if (!ok) {
      await rm(nextFile, { force: true });
      return;
    }
    await writeJsonAtomic(path.join(this.stateDir, 'credential.json'), next, 0o600);
    await rm(nextFile, { force: true });
    this.credential = next;
    this.transport.setCredential(next.credential);
    await this.log('info', 'credential.rotated', 'the device credential was rotated');
  }

  /** After a crash mid-rotation: keep whichever credential the server accepts. */
  async #recoverRotation(cred: Credential): Promise<Credential> {
    const nextFile = path.join(this.stateDir, 'credential.next.json');
    const next = await readJson<Credential>(nextFile).catch(() => undefined);
    if (!next) return cred;
    try {
      // The transport is not made yet: the addresses in order.
      const urls = storedServerUrls(cred);
      const res = await failoverFetch(pinnedFetch(cred.caPem), () => urls, () => 0)(urls[0]! + AGENT_CHECK_IN_PATH, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${next.credential}` },
        body: JSON.stringify({ type: 'check-in', id: 'rotation-check', inventory: collectInventory(await this.plugins.installedProducts()) }),
        signal: AbortSignal.timeout(30_000),
      });
      if (res.status === 401) {
        await rm(nextFile, { force: true });
        return cred;
      }
      // Undecided (server trouble): the old credential still works until the new one is used.
      // Any other answer came after the server accepted the new credential.
      if (res.status >= 500) return cred;
    } catch {
      return cred;
    }
    await writeJsonAtomic(path.join(this.stateDir, 'credential.json'), next, 0o600);
    await rm(nextFile, { force: true });
    await this.log('info', 'credential.rotated', 'the credential rotation interrupted by a restart was completed');
    return next;
  }

  /**
   * This machine is a copy of another device's (a cloned image): take the identity the server
   * made for it and drop what belongs to the original, so the two are never mixed.
   */
  async #reidentify(d: Extract<IdentityDirective, { action: 'reidentify' }>): Promise<void> {
    const from = this.credential.deviceId;
    const next: Credential = { ...this.credential, deviceId: d.deviceId, credential: d.credential, groupId: d.groupId };
    await writeJsonAtomic(path.join(this.stateDir, 'credential.json'), next, 0o600);
    this.credential = next;
    // The copied key belongs to the original device: this machine makes its own.
    this.#deviceKey = await DeviceKey.create(this.stateDir);
    const dropped = await this.spool.discardAll();
    this.#localChanges.clear();
    await writeJsonAtomic(path.join(this.stateDir, 'local-changes.json'), []);
    this.#cache = { etag: null, tasks: [], policy: this.#cache.policy, lastCheckInAt: null, deployment: [] };
    await writeJsonAtomic(path.join(this.stateDir, 'tasks.json'), this.#cache);
    this.runner.setTasks([]);
    // A new device: its enrolment and agent-start tasks fire once its own tasks arrive.
    await markEnrolmentPending(this.stateDir);
    this.#enrolmentPending = true;
    this.#agentStartFired = new Set();
    await this.log('warning', 'agent.reidentified', `${d.reason}; now device ${d.deviceId} (was ${from}); ${dropped} unsent results of the original were dropped`);
    this.transport.setCredential(d.credential);
    setTimeout(() => void this.checkIn(), 100).unref();
  }

  /**
   * Removes the agent from this machine: tells the server (which revokes the credential and
   * keeps the device's history), then runs the installer's uninstall script, which stops the
   * service and removes the agent's folder; an agent not installed by the installer removes
   * its state folder and exits. Installed products are left in place.
   */
  async uninstall(why: string): Promise<void> {
    await this.log('warning', 'agent.uninstalling', `uninstalling the agent: ${why}`);
    await confirmUninstall({ serverUrl: this.transport.serverUrl, credential: this.credential.credential }, this.transport.fetch).catch((err: unknown) => this.log('warning', 'agent.uninstalling', `the server was not told: ${(err as Error).message}`));
    const install = await readJson<InstallInfo>(path.join(this.stateDir, 'install.json')).catch(() => undefined);
    await this.stop();
    await removeAgent(this.stateDir, install);
    process.exit(UNINSTALLED_EXIT_CODE);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#checkInTimer) clearTimeout(this.#checkInTimer);
    if (this.#earlyCheckIn) clearTimeout(this.#earlyCheckIn);
    if (this.#windowTimer) clearTimeout(this.#windowTimer.timer);
    if (this.#eventsRetry) clearTimeout(this.#eventsRetry);
    if (this.#flushRetry) clearTimeout(this.#flushRetry);
    if (this.#coalesce) clearTimeout(this.#coalesce);
    for (const product of [...this.#watchers.keys()]) await this.#stopWatch(product);
    await this.policy?.stop();
    await this.runner?.stopAll({ interruptRunning: true });
    await this.#localApi?.close();
    await this.transport?.stop();
    await this.log('info', 'agent.stopped', 'agent stopped');
    await this.#folderLock?.release();
  }
}

/**
 * Tells the server the agent is being removed (it revokes the credential and keeps the
 * history). `fetcher` may fail over (Transport.fetch, failoverFetch) to the other addresses.
 */
export async function confirmUninstall(cred: { serverUrl: string; credential: string }, fetcher: FetchLike): Promise<void> {
  const res = await fetcher(cred.serverUrl + AGENT_UNINSTALLED_PATH, { method: 'POST', headers: { authorization: `Bearer ${cred.credential}` }, signal: AbortSignal.timeout(15_000) });
  if (!res.ok && res.status !== 401) throw new Error(`HTTP ${res.status}`);
}

/** Runs the installer's uninstall script (detached: it stops this service), or removes the state folder. */
export async function removeAgent(stateDir: string, install: InstallInfo | undefined): Promise<void> {
  if (install && existsSync(install.uninstallScript)) {
    const child = spawn('/bin/sh', [install.uninstallScript], { detached: true, stdio: 'ignore' });
    child.unref();
    return;
  }
  for (const name of await readdir(stateDir).catch(() => [] as string[])) await rm(path.join(stateDir, name), { recursive: true, force: true });
}
