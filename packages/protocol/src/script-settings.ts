import { Type, type Static } from 'typebox';

/** The built-in plug-in: product "garrison" (the agent itself), task type "script". */
export const BUILTIN_PRODUCT = 'garrison';
export const SCRIPT_TASK_TYPE = 'script';

export const SecretRefSchema = Type.Object({ $secret: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });

/**
 * Settings of the `script` task type. Exactly one of `command` (a command line, or with
 * shell "none" an executable) and `script` (a script body run by the shell) is given.
 * A line of output `garrison:progress=NN` sets the run's percent done.
 */
export const ScriptSettings = Type.Object(
  {
    shell: Type.Optional(
      Type.Union([Type.Literal('sh'), Type.Literal('bash'), Type.Literal('powershell'), Type.Literal('cmd'), Type.Literal('none')], {
        description: 'Default: sh on Unix, powershell on Windows. "none" runs `command` directly with `args`.',
      }),
    ),
    command: Type.Optional(Type.String({ minLength: 1, maxLength: 8192 })),
    script: Type.Optional(Type.String({ minLength: 1, maxLength: 256 * 1024 })),
    args: Type.Optional(Type.Array(Type.String({ maxLength: 8192 }), { maxItems: 256 })),
    env: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.Union([Type.String({ maxLength: 32768 }), SecretRefSchema]))),
    workingDirectory: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    runAs: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'User to run as; needs an agent running as root' })),
    timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 604800 })),
    successExitCodes: Type.Optional(Type.Array(Type.Integer(), { minItems: 1, maxItems: 64 })),
    warningExitCodes: Type.Optional(Type.Array(Type.Integer(), { maxItems: 64 })),
  },
  { additionalProperties: false },
);
export type ScriptSettings = Static<typeof ScriptSettings>;
/** What the schema cannot say about script settings; checked by the server and by the agent's local API alike. */
export function scriptSettingsProblems(settings: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const hasCommand = typeof settings.command === 'string';
  const hasScript = typeof settings.script === 'string';
  if (hasCommand === hasScript) problems.push('give exactly one of "command" and "script"');
  if (settings.shell === 'none' && hasScript) problems.push('shell "none" runs a command, not a script body');
  return problems;
}
/** Settings as the agent receives them: secret references already resolved to values. */
export type ResolvedScriptSettings = Omit<ScriptSettings, 'env'> & { env?: Record<string, string> };

export const PROGRESS_LINE_PATTERN = /^garrison:progress=(\d{1,3})\s*$/m;

/**
 * Task types every product has: start and stop its application. They run through the
 * product's plug-in, or its package's start/stop commands. A start task is exempt from the
 * execution condition (the application is not running yet).
 */
export const START_TASK_TYPE = 'start';
export const STOP_TASK_TYPE = 'stop';
export const LIFECYCLE_TASK_TYPES: readonly string[] = [START_TASK_TYPE, STOP_TASK_TYPE];
