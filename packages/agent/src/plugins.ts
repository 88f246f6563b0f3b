/**
 * The agent half of management plug-ins: per product, detect the installed version, say
 * whether the application is running, start and stop it, and execute the product's task
 * types. Every lifecycle method is optional: without it the agent uses the commands of the
 * product's installed package (detect, status, start, stop), so a product can be managed
 * from its package manifest alone. The built-in product "garrison" is the agent itself
 * (always running) with the generic `script` type. See docs/plugins.md.
 */
import path from 'node:path';
import { BUILTIN_PRODUCT, SCRIPT_TASK_TYPE, type AgentTask, type ResolvedScriptSettings, type RunEvent } from '@garrison/protocol';
import { runScript, type ScriptOutcome } from './executors/script.ts';
import { AGENT_VERSION } from './inventory.ts';

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
}
/** What a task type's executor returns; `events` (a scanner's detections) go to the central event log. */
export type ExecutionOutcome = ScriptOutcome & { events?: RunEvent[] };

export interface TaskExecutor {
  run(task: AgentTask, ctx: ExecutionContext): Promise<ExecutionOutcome>;
}

export interface AgentPlugin {
  product: string;
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
    },
  },
};

export class AgentPluginRegistry {
  readonly #plugins = new Map<string, AgentPlugin>();
  readonly #productsRoot: string;
  constructor(productsRoot = '') {
    this.#productsRoot = productsRoot;
  }
  install(p: AgentPlugin): void {
    this.#plugins.set(p.product, p);
  }
  get(product: string): AgentPlugin | undefined {
    return this.#plugins.get(product);
  }
  context(product: string): ProductContext {
    return { product, productDir: path.join(this.#productsRoot, product) };
  }
  async isRunning(product: string): Promise<boolean> {
    const p = this.#plugins.get(product);
    return p?.isRunning ? p.isRunning(this.context(product)) : true;
  }
  async installedProducts(): Promise<{ id: string; version: string; running: boolean }[]> {
    const out: { id: string; version: string; running: boolean }[] = [];
    for (const p of this.#plugins.values()) {
      const found = p.detect ? await p.detect(this.context(p.product)) : null;
      if (found) out.push({ id: p.product, version: found.version, running: await this.isRunning(p.product) });
    }
    return out;
  }
}
