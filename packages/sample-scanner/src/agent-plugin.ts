/**
 * The agent half of the sample scanner's plug-in (product "sample-scanner").
 *
 * - detect: the version in DIR/VERSION, written last by the package's install command.
 * - isRunning: the service answers a ping within a second. This is the execution condition
 *   of the product's tasks, so it must be quick and must not trust a pid file alone.
 * - start / stop: control.ts, with the service installed in DIR/app run by the agent's own
 *   Node (process.execPath).
 * - scan: runs a scan in the service. A scan that finds something completes: the run is
 *   `succeeded_with_warnings` ("2 detections") and every detection is a RunEvent of kind
 *   "detection" for the central event log, as in Kaspersky Security Center, where a virus
 *   scan that found threats is a completed task whose threats are events. Files that could
 *   not be read also give a warning: an administrator must know a scan was partial.
 *   `failed` is kept for a scan that could not run (service unreachable, no definitions).
 * - update-definitions: new definitions reach the device as the definitions package
 *   (kind "definitions", contentFor "sample-scanner") through product deployment; this
 *   task makes the service load what is installed now and reports the version.
 *
 * - applyPolicy: the product's configuration is DIR/config.json (config.ts), which a local
 *   user may edit by hand. What it holds is reconciled with the effective policy
 *   (policy.reconcile, the agent's binding of @garrison/core's reconcilePolicy: locked settings put back, unlocked local changes kept until the
 *   administrator changes them; a value that is not valid is put back too), the result is
 *   written atomically and the service told to `reconfigure`. A service that is not
 *   running reads the file when it starts; the outcome says so.
 * - watch: delivers the service's real-time detections from its journal (journal.ts) to
 *   the central event log as `detection` events, each once, across agent restarts.
 *
 * Executors never throw for a run failure: every problem is an outcome with a reason.
 */
import { join } from 'node:path';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import type { AgentTask, RunEvent } from '@garrison/protocol';
import type { AgentPlugin, ExecutionContext, ExecutionOutcome, PolicyApplication, PolicyContext, PolicyOutcome, ProductContext, TaskExecutor } from '@garrison/agent/plugins';
import { configProblems, configText, readConfigText, SETTING_NAMES } from './config.ts';
import { JournalReader, type JournalEntry } from './journal.ts';
import { OutputTail } from '@garrison/agent/output-tail';
import { pingService, ScannerClient, ScannerError, type ScanResult } from './client.ts';
import { startService, stopService } from './control.ts';
import { scannerPaths } from './paths.ts';
import { ScanSettingsSchema, UpdateDefinitionsSettingsSchema } from './server-plugin.ts';
import { SAMPLE_SCANNER_PRODUCT, SCAN_TASK_TYPE, scanSettingsProblems, UPDATE_DEFINITIONS_TASK_TYPE, type ScanTaskSettings } from './task-types.ts';

/** A run report carries at most this many events (RunReport.events). */
export const MAX_RUN_EVENTS = 100;
/** After a cancel or timeout, how long the service gets to confirm before we hang up. */
export const CANCEL_GRACE_MS = 5000;
const CONNECT_TIMEOUT_MS = 2000;
const MAX_EVENT_MESSAGE = 2000;

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function formatDuration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

function unreachableReason(err: unknown): string {
  if (err instanceof ScannerError && (err.code === 'unreachable' || err.code === 'timeout')) return `the scanner service is not running: ${err.message}`;
  return (err as Error).message;
}

function lines(tail: OutputTail, ...text: string[]): void {
  for (const t of text) tail.push(Buffer.from(`${t}\n`, 'utf8'));
}

async function runScan(task: AgentTask, ctx: ExecutionContext): Promise<ExecutionOutcome> {
  const tail = new OutputTail();
  const outcome = (state: ExecutionOutcome['state'], reason: string | null, events?: RunEvent[]): ExecutionOutcome => ({
    state,
    exitCode: null,
    reason,
    outputTail: tail.text(),
    ...(events && events.length > 0 ? { events } : {}),
  });
  if (ctx.signal.aborted) return outcome('cancelled', 'cancelled');
  const problems = scanSettingsProblems(task.settings);
  if (problems.length > 0) return outcome('failed', `invalid settings: ${problems.join('; ')}`);
  const settings = task.settings as unknown as ScanTaskSettings;

  let client: ScannerClient;
  try {
    client = await ScannerClient.connect(ctx.productDir, { timeoutMs: CONNECT_TIMEOUT_MS });
  } catch (err) {
    return outcome('failed', unreachableReason(err));
  }

  // One controller stops the scan, for a cancel or a timeout; `why` says which.
  const stopper = new AbortController();
  let why: 'cancel' | 'timeout' | null = null;
  let graceTimer: NodeJS.Timeout | undefined;
  const stop = (reason: 'cancel' | 'timeout'): void => {
    if (why) return;
    why = reason;
    stopper.abort();
    graceTimer = setTimeout(() => client.close(), CANCEL_GRACE_MS);
  };
  const onAbort = (): void => stop('cancel');
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const timeoutTimer = ctx.timeoutMs !== undefined ? setTimeout(() => stop('timeout'), Math.max(1, Math.min(ctx.timeoutMs, 2 ** 31 - 1))) : undefined;

  const detections: RunEvent[] = [];
  let detectionCount = 0;
  let lastPercent = -1;
  const started = Date.now();
  lines(tail, `Scanning ${settings.paths.join(', ')}${settings.maxFileBytes !== undefined ? ` (files up to ${settings.maxFileBytes} bytes)` : ''}`);

  let result: ScanResult | null = null;
  let failure: unknown = null;
  try {
    result = await client.scan(settings.paths, {
      maxFileBytes: settings.maxFileBytes,
      signal: stopper.signal,
      onProgress: (percent) => {
        if (percent <= lastPercent) return;
        lastPercent = percent;
        try {
          ctx.onProgress(percent);
        } catch {
          // a broken progress listener must not break the run
        }
      },
      onDetection: ({ path, signature, action, quarantineId }) => {
        detectionCount++;
        const taken = action && action !== 'reported' ? ` (${action})` : '';
        lines(tail, `DETECTED ${signature} in ${path}${taken}`);
        if (detections.length < MAX_RUN_EVENTS) {
          detections.push({
            severity: action === 'quarantine-failed' ? 'error' : 'warning',
            kind: 'detection',
            message: `${signature} in ${path}${taken}`.slice(0, MAX_EVENT_MESSAGE),
            time: new Date().toISOString(),
            data: { path, signature, ...(action ? { action } : {}), ...(quarantineId ? { quarantineId } : {}) },
          });
        }
      },
      onProblem: ({ path, message }) => lines(tail, `cannot read ${path}: ${message}`),
    });
  } catch (err) {
    failure = err;
  } finally {
    clearTimeout(timeoutTimer);
    clearTimeout(graceTimer);
    ctx.signal.removeEventListener('abort', onAbort);
    client.close();
  }

  const events = detections.slice();
  if (detectionCount > events.length) {
    // The report holds MAX_RUN_EVENTS events: the last slot says how many were left out.
    events.splice(MAX_RUN_EVENTS - 1);
    events.push({
      severity: 'warning',
      kind: 'detections-truncated',
      message: `${plural(detectionCount - events.length, 'more detection')} not listed as events; the run's output lists them`,
      data: { total: detectionCount },
    });
  }
  const elapsed = formatDuration(Date.now() - started);
  const stoppedBy: 'cancel' | 'timeout' | null = why;

  if (result) {
    lines(
      tail,
      `Scanned ${plural(result.scanned, 'file')} in ${elapsed} with definitions ${result.definitionsVersion}: ` +
        `${plural(result.detections, 'detection')}, ${plural(result.errors, 'error')}, ${plural(result.skipped, 'file')} skipped` +
        (result.cancelled ? ' (stopped before the end)' : ''),
    );
  }
  if (stoppedBy === 'timeout') return outcome('timed_out', `timed out after ${formatDuration(ctx.timeoutMs!)}`, events);
  if (stoppedBy === 'cancel') return outcome('cancelled', 'cancelled', events);
  if (!result) {
    const reason = failure instanceof ScannerError && failure.code === 'disconnected' ? 'the scanner service closed the connection during the scan' : unreachableReason(failure);
    return outcome('failed', reason, events);
  }
  if (result.cancelled) return outcome('failed', 'the scanner service stopped during the scan', events);
  try {
    ctx.onProgress(100);
  } catch {
    // ignored, as above
  }
  const warnings: string[] = [];
  if (result.detections > 0) warnings.push(plural(result.detections, 'detection'));
  if (result.errors > 0) warnings.push(`${plural(result.errors, 'file or folder', 'files or folders')} could not be read`);
  if (warnings.length > 0) return outcome('succeeded_with_warnings', warnings.join('; '), events);
  return outcome('succeeded', null);
}

async function runUpdateDefinitions(_task: AgentTask, ctx: ExecutionContext): Promise<ExecutionOutcome> {
  const tail = new OutputTail();
  const outcome = (state: ExecutionOutcome['state'], reason: string | null): ExecutionOutcome => ({ state, exitCode: null, reason, outputTail: tail.text() });
  if (ctx.signal.aborted) return outcome('cancelled', 'cancelled');
  let client: ScannerClient;
  try {
    client = await ScannerClient.connect(ctx.productDir, { timeoutMs: CONNECT_TIMEOUT_MS });
  } catch (err) {
    return outcome('failed', unreachableReason(err));
  }
  try {
    const before = await client.ping(2000);
    const after = await client.reload(Math.min(ctx.timeoutMs ?? 30_000, 30_000));
    lines(
      tail,
      after.definitionsVersion === before.definitionsVersion
        ? `Definitions ${after.definitionsVersion} loaded (${plural(after.signatures, 'signature')}); already the newest installed`
        : `Definitions updated from ${before.definitionsVersion ?? 'none'} to ${after.definitionsVersion} (${plural(after.signatures, 'signature')})`,
    );
    return outcome('succeeded', null);
  } catch (err) {
    if (err instanceof ScannerError && err.code === 'definitions_invalid') return outcome('failed', `the installed definitions were refused: ${err.message}`);
    return outcome('failed', unreachableReason(err));
  } finally {
    client.close();
  }
}

async function detect(ctx: ProductContext): Promise<{ version: string } | null> {
  try {
    const version = (await readFile(scannerPaths(ctx.productDir).version, 'utf8')).trim();
    return version ? { version } : null;
  } catch {
    return null;
  }
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

async function applyPolicy(policy: PolicyApplication, ctx: PolicyContext): Promise<PolicyOutcome> {
  const paths = scannerPaths(ctx.productDir);
  const locked = new Set(policy.locked);
  let text: string | null = null;
  try {
    text = await readFile(paths.config, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return { state: 'failed', reason: `cannot read ${paths.config}: ${(err as Error).message}` };
  }
  const read = text === null ? { values: {}, invalid: [], error: null } : readConfigText(text);
  // Values that are not valid (or a file that is not JSON) cannot stand: they are put back, as drift.
  const extra: NonNullable<PolicyOutcome['drift']> = [];
  if (policy.previous !== null) {
    for (const i of read.invalid) extra.push({ setting: i.setting, expected: policy.settings[i.setting], found: i.value, action: 'restored' });
    if (read.error !== null || text === null) {
      for (const name of SETTING_NAMES) if (locked.has(name)) extra.push({ setting: name, expected: policy.settings[name], action: 'restored' });
    }
  }
  const reconciled = policy.reconcile(read.values);
  let target = reconciled.target;
  let drift: NonNullable<PolicyOutcome['drift']> = reconciled.drift.map(({ fresh: _f, ...d }) => d);
  // A local change that breaks a rule across settings (a quarantine inside a watched folder) cannot stand either.
  if (configProblems(target).length > 0) {
    target = { ...target };
    drift = drift.map((d) => {
      if (d.action !== 'kept-local') return d;
      target[d.setting] = structuredClone(policy.settings[d.setting]);
      return { ...d, action: 'restored' as const };
    });
  }
  const problems = configProblems(target);
  if (problems.length > 0) return { state: 'failed', reason: `the policy cannot be applied: ${problems.join('; ')}` };
  drift = [...drift, ...extra];

  const note = `Written by the Garrison agent from policy revision ${policy.revision}. Locked (changes are put back): ${[...locked].sort().join(', ') || 'none'}.`;
  try {
    await mkdir(paths.home, { recursive: true });
    await writeAtomically(paths.config, configText(target, note));
  } catch (err) {
    return { state: 'failed', reason: `cannot write ${paths.config}: ${(err as Error).message}` };
  }

  for (const d of drift) {
    if (d.action === 'restored' && (locked.has(d.setting) || extra.includes(d))) {
      await ctx.emit({
        severity: 'warning',
        kind: 'policy.restored',
        message: `${d.setting} was changed on the device${d.found !== undefined ? ` to ${JSON.stringify(d.found)}` : ''} and is put back to ${JSON.stringify(d.expected)}`.slice(0, MAX_EVENT_MESSAGE),
        data: { setting: d.setting, expected: d.expected, found: d.found, revision: policy.revision },
      });
    }
  }
  for (const d of reconciled.drift) {
    if (d.action === 'kept-local' && d.fresh && drift.some((x) => x.setting === d.setting && x.action === 'kept-local')) {
      await ctx.emit({ severity: 'info', kind: 'policy.kept-local', message: `${d.setting} was changed on the device; the local value stands (the setting is not locked)`, data: { setting: d.setting, expected: d.expected, found: d.found } });
    }
  }

  let reason: string | undefined;
  let client: ScannerClient | null = null;
  try {
    client = await ScannerClient.connect(ctx.productDir, { timeoutMs: CONNECT_TIMEOUT_MS });
    const answer = await client.reconfigure();
    if (answer.notes.length > 0) reason = answer.notes.join('; ');
  } catch (err) {
    if (err instanceof ScannerError && err.code === 'config_invalid') return { state: 'failed', reason: `the scanner refused its configuration: ${err.message}`, drift, applied: target };
    reason = 'the scanner service is not running: the configuration is written and takes effect when it starts';
  } finally {
    client?.close();
  }
  const drifted = reconciled.drifted || extra.length > 0;
  return { state: drifted ? 'drifted' : 'compliant', drift, applied: target, ...(reason ? { reason } : {}) };
}

function detectionEvent(e: JournalEntry): Parameters<PolicyContext['emit']>[0] & { eventId: string } {
  const taken = e.action === 'quarantined' ? 'quarantined' : e.action === 'quarantine-failed' ? `could not be quarantined: ${e.error ?? 'unknown error'}` : 'reported';
  return {
    eventId: e.eventId,
    severity: e.action === 'quarantine-failed' ? 'error' : 'warning',
    kind: 'detection',
    message: `${e.signature} in ${e.path} (real-time protection): ${taken}`.slice(0, MAX_EVENT_MESSAGE),
    data: {
      path: e.path,
      signature: e.signature,
      action: e.action,
      source: e.source,
      time: e.time,
      sha256: e.sha256,
      ...(e.quarantineId ? { quarantineId: e.quarantineId, quarantineFolder: e.quarantineFolder } : {}),
      ...(e.error ? { error: e.error } : {}),
    },
  };
}

/** Delivers the journal's real-time detections to ctx.emit; resolves with the function that stops it. */
export async function watchDetections(ctx: PolicyContext): Promise<() => Promise<void>> {
  const reader = new JournalReader(scannerPaths(ctx.productDir), (entry) => ctx.emit(detectionEvent(entry)));
  await reader.start();
  return () => reader.stop();
}

// The schemas of the server half: the agent's local API checks a local task against them.
export const scanExecutor: TaskExecutor = { run: runScan, settingsSchema: ScanSettingsSchema, validate: scanSettingsProblems };
export const updateDefinitionsExecutor: TaskExecutor = { run: runUpdateDefinitions, settingsSchema: UpdateDefinitionsSettingsSchema };

export const sampleScannerAgentPlugin: AgentPlugin = {
  product: SAMPLE_SCANNER_PRODUCT,
  detect,
  isRunning: async (ctx) => (await pingService(ctx.productDir, 1000)) !== null,
  applyPolicy,
  watch: watchDetections,
  start: async (ctx) => {
    await startService(ctx.productDir, { serviceScript: join(scannerPaths(ctx.productDir).app, 'service.ts') });
  },
  stop: async (ctx) => {
    await stopService(ctx.productDir);
  },
  taskTypes: {
    [SCAN_TASK_TYPE]: scanExecutor,
    [UPDATE_DEFINITIONS_TASK_TYPE]: updateDefinitionsExecutor,
  },
};
