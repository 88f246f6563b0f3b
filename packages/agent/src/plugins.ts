/**
 * The agent half of management plug-ins: per product, detect the installed version, say
 * whether the application is running, and execute the product's task types. The built-in
 * product "garrison" is the agent itself (always running) with the generic `script` type.
 */
import { BUILTIN_PRODUCT, SCRIPT_TASK_TYPE, type AgentTask, type ResolvedScriptSettings } from '@garrison/protocol';
import { runScript, type ScriptOutcome } from './executors/script.ts';
import { AGENT_VERSION } from './inventory.ts';

export interface ExecutionContext {
  signal: AbortSignal;
  timeoutMs?: number;
  onProgress(percent: number): void;
  tempDir: string;
}
export type ExecutionOutcome = ScriptOutcome;

export interface TaskExecutor {
  run(task: AgentTask, ctx: ExecutionContext): Promise<ExecutionOutcome>;
}

export interface AgentPlugin {
  product: string;
  detect(): Promise<{ version: string } | null>;
  isRunning(): Promise<boolean>;
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
  install(p: AgentPlugin): void {
    this.#plugins.set(p.product, p);
  }
  get(product: string): AgentPlugin | undefined {
    return this.#plugins.get(product);
  }
  async installedProducts(): Promise<{ id: string; version: string; running: boolean }[]> {
    const out: { id: string; version: string; running: boolean }[] = [];
    for (const p of this.#plugins.values()) {
      const found = await p.detect();
      if (found) out.push({ id: p.product, version: found.version, running: await p.isRunning() });
    }
    return out;
  }
}
