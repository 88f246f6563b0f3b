import { Type } from 'typebox';
import { AgentPolicySettings, BUILTIN_PRODUCT, DEFAULT_AGENT_POLICY, DEPLOYMENT_TASK_TYPE, SCRIPT_TASK_TYPE, ScriptSettings, scriptSettingsProblems, type MaintenanceWindow } from '@garrison/protocol';
import type { ServerPlugin } from './plugin.ts';

/** What the schema cannot say of the agent's policy: a maintenance window's time basis must be a zone the agent can read. */
function agentPolicyProblems(settings: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const windows = Array.isArray(settings.maintenanceWindows) ? (settings.maintenanceWindows as MaintenanceWindow[]) : [];
  windows.forEach((w, i) => {
    const basis = w.timeBasis;
    if (basis === undefined || basis === 'local' || basis === 'UTC') return;
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: basis });
    } catch {
      problems.push(`maintenance window ${i + 1}${w.name ? ` ("${w.name}")` : ''}: time basis "${basis}" is not "local", "UTC" or a known time zone`);
    }
  });
  return problems;
}

/**
 * The built-in plug-in: product "garrison" (the agent itself), its generic `script` task type,
 * and the agent's own policy type (what were two intervals on a group, ADR 0020).
 */
export const builtinGarrisonPlugin: ServerPlugin = {
  product: { id: BUILTIN_PRODUCT, name: 'Garrison agent', description: 'The agent itself and generic scripts' },
  taskTypes: [
    {
      id: SCRIPT_TASK_TYPE,
      name: 'Script',
      description: 'Runs a command or a script body (sh, bash, PowerShell, cmd) with arguments, environment and timeout.',
      settingsSchema: ScriptSettings,
      validate: scriptSettingsProblems,
    },
    {
      id: DEPLOYMENT_TASK_TYPE,
      name: 'Initial deployment / update',
      description: "Installs, updates and removes the products assigned to the device's group, as the server plans it at each check-in.",
      settingsSchema: Type.Object({}, { additionalProperties: false }),
    },
  ],
  policyType: {
    settingsSchema: AgentPolicySettings,
    defaults: { ...DEFAULT_AGENT_POLICY },
    validate: agentPolicyProblems,
  },
};
