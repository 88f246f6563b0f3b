import { Type } from 'typebox';
import { BUILTIN_PRODUCT, DEPLOYMENT_TASK_TYPE, SCRIPT_TASK_TYPE, ScriptSettings } from '@garrison/protocol';
import type { ServerPlugin } from './plugin.ts';

/** The built-in plug-in: product "garrison" (the agent itself) and its generic `script` task type. */
export const builtinGarrisonPlugin: ServerPlugin = {
  product: { id: BUILTIN_PRODUCT, name: 'Garrison agent', description: 'The agent itself and generic scripts' },
  taskTypes: [
    {
      id: SCRIPT_TASK_TYPE,
      name: 'Script',
      description: 'Runs a command or a script body (sh, bash, PowerShell, cmd) with arguments, environment and timeout.',
      settingsSchema: ScriptSettings,
      validate(settings) {
        const problems: string[] = [];
        const hasCommand = typeof settings.command === 'string';
        const hasScript = typeof settings.script === 'string';
        if (hasCommand === hasScript) problems.push('give exactly one of "command" and "script"');
        if (settings.shell === 'none' && hasScript) problems.push('shell "none" runs a command, not a script body');
        return problems;
      },
    },
    {
      id: DEPLOYMENT_TASK_TYPE,
      name: 'Initial deployment / update',
      description: "Installs, updates and removes the products assigned to the device's group, as the server plans it at each check-in.",
      settingsSchema: Type.Object({}, { additionalProperties: false }),
    },
  ],
};
