import { Type } from 'typebox';
import { BUILTIN_PRODUCT, DEPLOYMENT_TASK_TYPE, SCRIPT_TASK_TYPE, ScriptSettings, scriptSettingsProblems } from '@garrison/protocol';
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
      validate: scriptSettingsProblems,
    },
    {
      id: DEPLOYMENT_TASK_TYPE,
      name: 'Initial deployment / update',
      description: "Installs, updates and removes the products assigned to the device's group, as the server plans it at each check-in.",
      settingsSchema: Type.Object({}, { additionalProperties: false }),
    },
  ],
};
