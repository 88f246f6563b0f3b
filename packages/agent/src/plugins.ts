/**
 * The agent half of management plug-ins: per product, detect the installed version, say
 * whether the application is running, start and stop it, and execute the product's task
 * types. Every lifecycle method is optional: without it the agent uses the commands of the
 * product's installed package (detect, status, start, stop), so a product can be managed
 * from its package manifest alone. The built-in product "garrison" is the agent itself
 * (always running) with the generic `script` type. See docs/plugins.md.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TSchema } from 'typebox';
import { BUILTIN_PRODUCT, SCRIPT_TASK_TYPE, START_TASK_TYPE, STOP_TASK_TYPE, ScriptSettings, checker, scriptSettingsProblems, type AgentTask, type Checker, type ResolvedScriptSettings, type RunEvent } from '@garrison/protocol';
import { runScript, type ScriptOutcome } from './executors/script.ts';
import { AGENT_VERSION } from './inventory.ts';
import type { StartedProcess } from './process-ledger.ts';

/** Where a product lives on the device: `<agent state>/products/<product>`. */
export interface ProductContext {
  product: string;
  productDir: string;
}

export interface ExecutionContext extends ProductContext {
  signal: AbortSignal;
  timeoutMs?: number;
  onProgress(percent: number): void;
  tempDir: string;
  /**
   * Executors that start processes call this in the tick of each spawn: the agent records the
   * process durably, so that after a crash it can end what the interrupted attempt left
   * running before the next attempt starts (process-ledger.ts). It throws if the record
   * cannot be written: the process must then be killed.
   */
  onProcessStarted?(p: StartedProcess): void;
  /** The run this execution is an attempt of. */
  run?: { runId: string; attempt: number; taskId: string };
}
/** What a task type's executor returns; `events` (a scanner's detections) go to the central event log. */
export type ExecutionOutcome = ScriptOutcome & { events?: RunEvent[] };

export interface TaskExecutor {
  run(task: AgentTask, ctx: ExecutionContext): Promise<ExecutionOutcome>;
  /** When a trigger fires: false skips it without a run (e.g. a deployment with nothing to do). */
  shouldRun?(task: AgentTask): boolean;
  /**
   * The type's settings schema (the one its server half declares) and the rules it cannot
   * express: the local API checks a task the device's user makes against them. Without a
   * schema, only the server checks the settings, when the task is synced.
   */
  settingsSchema?: TSchema;
  validate?(settings: Record<string, unknown>): string[];
}

/** Why a task's product, type or settings are refused on the device; `code` is an ErrorCode. */
export interface SettingsProblem {
  code: 'PRODUCT_NOT_INSTALLED' | 'TASK_TYPE_UNKNOWN' | 'SETTINGS_INVALID';
  message: string;
}

/** Lifecycle of products installed from packages: the fallback when a plug-in says nothing. */
export interface PackagedProducts {
  installed(): Promise<{ product: string }[]>;
  detect(product: string): Promise<{ version: string } | null>;
  isRunning(product: string): Promise<boolean>;
  record(product: string): Promise<unknown>;
  start(product: string): Promise<ScriptOutcome | null>;
  stop(product: string): Promise<ScriptOutcome | null>;
}

/** What the agent hands a plug-in's applyPolicy: the product's effective policy, and what it applied last. */
export interface PolicyApplication {
  revision: string;
  /**
   * The complete effective settings: the administrator's values, as the server computed them.
   * The local user's changes to unlocked settings that stand are in `previous.applied`;
   * reconcilePolicy keeps them (it tells them from the administrator's changes by `previous.policy`).
   */
  settings: Record<string, unknown>;
  locked: readonly string[];
  /**
   * The last successful application (null the first time): the administrator's values then,
   * and what was put on the device (`applied`, with the local changes that stood). A value on
   * the device that differs from `applied` was changed locally. Hand both to reconcilePolicy
   * (@garrison/core) with what the product has now.
   */
  previous: { policy: Record<string, unknown>; applied: Record<string, unknown> } | null;
  /** Why it is called: the policy changed, the enforcement interval came round, or an enforcement was asked for (local API). */
  reason: 'changed' | 'enforcement' | 'requested';
  /**
   * reconcilePolicy (@garrison/core) bound to this policy and `previous`: give it what the
   * product has now, get what to put in force and the drift. For plug-ins shipped in packages,
   * which cannot import @garrison/core.
   */
  reconcile(found: Record<string, unknown>): { target: Record<string, unknown>; drift: { setting: string; expected: unknown; found: unknown; action: 'restored' | 'kept-local'; fresh: boolean }[]; drifted: boolean };
}

/** What applyPolicy returns: the agent reports it to the server as the product's compliance. */
export interface PolicyOutcome {
  state: 'compliant' | 'drifted' | 'failed';
  drift?: { setting: string; expected?: unknown; found?: unknown; action: 'restored' | 'kept-local' }[];
  reason?: string;
  /** The settings now in force on the device (with local changes that stand): the agent keeps them as `previous`. */
  applied?: Record<string, unknown>;
}

export interface PolicyContext extends ProductContext {
  /**
   * Writes an event to the local log and sends it to the central event log as `<product>.<kind>` (spooled: never lost).
   * `eventId` (optional, ^[A-Za-z0-9_-]{8,80}$): a stable id the plug-in made, so that an event
   * it emits again after a crash (a journal read from its last offset) is stored once.
   */
  emit(event: { severity: 'info' | 'warning' | 'error'; kind: string; message: string; data?: Record<string, unknown>; eventId?: string }): Promise<void>;
}

export interface AgentPlugin {
  product: string;
  /**
   * Brings the product's configuration in line with its effective policy: called at once when
   * it changes and again at every policy enforcement interval. A locked setting found changed
   * on the device is put back (and the event emitted); an unlocked one the local user changed
   * stands until the administrator changes that setting (see reconcilePolicy).
   */
  applyPolicy?(policy: PolicyApplication, ctx: PolicyContext): Promise<PolicyOutcome>;
  /**
   * Long-lived: called once the product is installed (and after each agent start); events
   * it emits (real-time detections) reach the central log. Returns a function that stops it.
   */
  watch?(ctx: PolicyContext): Promise<() => Promise<void>> | (() => Promise<void>);
  /** The installed version, or null when the product is not installed. */
  detect?(ctx: ProductContext): Promise<{ version: string } | null>;
  /** Whether the application is running (the execution condition of the product's tasks). */
  isRunning?(ctx: ProductContext): Promise<boolean>;
  start?(ctx: ProductContext): Promise<void>;
  stop?(ctx: ProductContext): Promise<void>;
  taskTypes: Record<string, TaskExecutor>;
}

export const builtinAgentPlugin: AgentPlugin = {
  product: BUILTIN_PRODUCT,
  detect: async () => ({ version: AGENT_VERSION }),
  isRunning: async () => true,
  taskTypes: {
    [SCRIPT_TASK_TYPE]: {
      run: (task, ctx) => runScript(task.settings as ResolvedScriptSettings, ctx),
      settingsSchema: ScriptSettings,
      validate: scriptSettingsProblems,
    },
  },
};

export class AgentPluginRegistry {
  readonly #plugins = new Map<string, AgentPlugin>();
  readonly #productsRoot: string;
  readonly #checkers = new WeakMap<TSchema, Checker<TSchema>>();
  packaged: PackagedProducts | null = null;
  constructor(productsRoot = '') {
    this.#productsRoot = productsRoot;
  }
  install(p: AgentPlugin): void {
    this.#plugins.set(p.product, p);
  }
  uninstall(product: string): void {
    this.#plugins.delete(product);
  }
  /**
   * Loads the agent half of a plug-in shipped in an installed (so verified) package: the
   * module's default export, or its `agentPlugin` export, must be an AgentPlugin for the
   * package's product. Built-in plug-ins are never replaced.
   */
  async loadFromPackage(record: { product: string; packageDir: string; manifest: { agentPlugin?: string } }, builtIn: readonly string[]): Promise<boolean> {
    if (!record.manifest.agentPlugin || builtIn.includes(record.product)) return false;
    const file = path.resolve(record.packageDir, record.manifest.agentPlugin);
    if (!file.startsWith(path.resolve(record.packageDir) + path.sep)) throw new Error('agentPlugin points outside the package');
    const mod = (await import(pathToFileURL(file).href)) as { default?: AgentPlugin; agentPlugin?: AgentPlugin };
    const plugin = mod.default ?? mod.agentPlugin;
    if (!plugin || plugin.product !== record.product || typeof plugin.taskTypes !== 'object') throw new Error(`${record.manifest.agentPlugin} does not export an agent plug-in for product "${record.product}"`);
    this.#plugins.set(record.product, plugin);
    return true;
  }
  /** Adds a task type to a product's plug-in (the agent's own deployment task, for one). */
  registerTaskType(product: string, type: string, executor: TaskExecutor): void {
    const p = this.#plugins.get(product) ?? { product, taskTypes: {} };
    p.taskTypes = { ...p.taskTypes, [type]: executor };
    this.#plugins.set(product, p);
  }
  /** The products that have a plug-in, sorted. */
  products(): string[] {
    return [...this.#plugins.keys()].sort();
  }
  get(product: string): AgentPlugin | undefined {
    return this.#plugins.get(product);
  }
  context(product: string): ProductContext {
    return { product, productDir: path.join(this.#productsRoot, product) };
  }
  /** The execution condition: the plug-in's answer, else the package's status command, else running. */
  async isRunning(product: string): Promise<boolean> {
    const p = this.#plugins.get(product);
    if (p?.isRunning) return p.isRunning(this.context(product));
    if (this.packaged && (await this.packaged.record(product))) return this.packaged.isRunning(product);
    return true;
  }
  async detect(product: string): Promise<{ version: string } | null> {
    const p = this.#plugins.get(product);
    if (p?.detect) return p.detect(this.context(product));
    return this.packaged ? this.packaged.detect(product) : null;
  }
  /**
   * The executor of a task type: the plug-in's own, or for `start` and `stop` the plug-in's
   * lifecycle methods, else the package's commands.
   */
  executor(product: string, type: string): TaskExecutor | undefined {
    const own = this.#plugins.get(product)?.taskTypes[type];
    if (own) return own;
    if (product === BUILTIN_PRODUCT || (type !== START_TASK_TYPE && type !== STOP_TASK_TYPE)) return undefined;
    return {
      run: async (_task, ctx) => {
        const p = this.#plugins.get(product);
        const method = type === START_TASK_TYPE ? p?.start : p?.stop;
        try {
          if (method) {
            await method.call(p, this.context(product));
          } else {
            const out = this.packaged ? await (type === START_TASK_TYPE ? this.packaged.start(product) : this.packaged.stop(product)) : null;
            if (!out) return { state: 'failed', exitCode: null, reason: `product "${product}" has no ${type} command on this device`, outputTail: '' };
            if (out.state !== 'succeeded' && out.state !== 'succeeded_with_warnings') return out;
          }
        } catch (err) {
          return { state: 'failed', exitCode: null, reason: `${type} failed: ${(err as Error).message}`, outputTail: '' };
        }
        const running = await this.isRunning(product);
        const wanted = type === START_TASK_TYPE;
        if (running !== wanted) return { state: 'failed', exitCode: null, reason: `the application is ${running ? 'still running' : 'not running'} after ${type}`, outputTail: '' };
        void ctx;
        return { state: 'succeeded', exitCode: 0, reason: null, outputTail: `${product} ${wanted ? 'started' : 'stopped'}\n` };
      },
    };
  }

  /**
   * Checks a task's product, type and settings as the server would: the product's plug-in
   * is here, it has the type, and the settings match the type's schema and rules. Null when
   * they pass (or when the type declares no schema on the device: the server then decides).
   */
  checkSettings(product: string, type: string, settings: Record<string, unknown>): SettingsProblem | null {
    const plugin = this.#plugins.get(product);
    const lifecycle = product !== BUILTIN_PRODUCT && (type === START_TASK_TYPE || type === STOP_TASK_TYPE);
    if (!plugin && !lifecycle) return { code: 'PRODUCT_NOT_INSTALLED', message: `product "${product}" has no plug-in on this device` };
    const executor = plugin?.taskTypes[type];
    if (!executor && !lifecycle) return { code: 'TASK_TYPE_UNKNOWN', message: `product "${product}" has no task type "${type}" (on this device: ${Object.keys(plugin!.taskTypes).sort().join(', ') || 'none'})` };
    if (!executor && Object.keys(settings).length) return { code: 'SETTINGS_INVALID', message: `${type} tasks take no settings` };
    const schema = executor?.settingsSchema;
    if (schema) {
      let c = this.#checkers.get(schema);
      if (!c) this.#checkers.set(schema, (c = checker(schema)));
      if (!c.check(settings)) {
        return { code: 'SETTINGS_INVALID', message: `settings do not match the schema of ${product}/${type}: ${c.issues(settings, 5).map((i) => `${i.path} ${i.message}`).join('; ')}` };
      }
    }
    const problems = executor?.validate?.(settings) ?? [];
    if (problems.length) return { code: 'SETTINGS_INVALID', message: `settings of ${product}/${type}: ${problems.join('; ')}` };
    return null;
  }

  /** Inventory: every product a plug-in detects or a package installed. */
  async installedProducts(): Promise<{ id: string; version: string; running: boolean }[]> {
    const ids = new Set<string>(this.#plugins.keys());
    for (const r of (await this.packaged?.installed()) ?? []) ids.add(r.product);
    const out: { id: string; version: string; running: boolean }[] = [];
    for (const id of [...ids].sort()) {
      const found = await this.detect(id);
      if (found) out.push({ id, version: found.version, running: await this.isRunning(id) });
    }
    return out;
  }
}
