/**
 * `garrison …` (every subcommand but `server` and `agent`): the administration CLI, a client
 * of the REST API. Exit codes: 0 success, 1 an error from the API (printed as
 * `error CODE: message`) or a task that did not succeed, 2 a usage error.
 */
import { Command, CommanderError } from 'commander';
import { ApiError, UsageError } from './client.ts';
import type { IoStreams, RunState } from './context.ts';
import { registerAdminCommands } from './commands/admin.ts';
import { registerDeviceCommands } from './commands/devices.ts';
import { registerEventCommands } from './commands/events.ts';
import { registerGroupCommands } from './commands/groups.ts';
import { registerPolicyCommands } from './commands/policies.ts';
import { registerRunCommands } from './commands/runs.ts';
import { registerSecretCommands } from './commands/secrets.ts';
import { registerTaskCommands } from './commands/tasks.ts';
import { registerServerTaskCommands } from './commands/server-tasks.ts';
import { registerTokenCommands } from './commands/tokens.ts';
import { registerRepoCommands } from './commands/repo.ts';
import { registerDeployCommands } from './commands/deploy.ts';
import { registerPushCommands } from './commands/push.ts';
import { registerAdministratorCommands } from './commands/admins.ts';
import { registerAccountCommands } from './commands/account.ts';
import { registerNotificationCommands } from './commands/notifications.ts';
import { cliVersion } from './version.ts';

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

/** Every leaf command with its usage, for `garrison --help`. */
function commandList(program: Command): string {
  const lines: [string, string][] = [];
  const walk = (cmd: Command, prefix: string) => {
    for (const sub of cmd.commands) {
      if (sub.name() === 'help') continue;
      const name = `${prefix} ${sub.name()}`;
      if (sub.commands.length) walk(sub, name);
      else {
        const args = sub.registeredArguments.map((a) => (a.required ? `<${a.name()}${a.variadic ? '...' : ''}>` : `[${a.name()}${a.variadic ? '...' : ''}]`)).join(' ');
        const required = sub.options.filter((o) => o.mandatory).map((o) => o.flags.replace(/^-\w, /, ''));
        lines.push([[name, args, ...required].filter(Boolean).join(' '), sub.summary() || sub.description().split('\n')[0]!]);
      }
    }
  };
  walk(program, 'garrison');
  const width = Math.max(...lines.map(([l]) => l.length));
  return lines.map(([l, d]) => `  ${l.padEnd(width)}  ${d}`).join('\n');
}

export function buildProgram(state: RunState): Command {
  const program = new Command('garrison');
  program
    .description('Garrison administration CLI: manage groups, devices, tasks, secrets and administrators over the REST API.')
    .version(cliVersion(), '-V, --version', 'print the CLI version')
    .option('--server <url>', 'server URL (else GARRISON_URL, else the saved login)')
    .option('--token <token>', 'API token (else GARRISON_TOKEN, --token-file, else the saved login)')
    .option('--token-file <path>', 'read the API token from this file')
    .option('--ca <file>', "the server's CA certificate, PEM (else GARRISON_CA, else the one saved by login)")
    .option('--json', 'print the API JSON instead of tables')
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (s) => void state.streams.stdout.write(s),
      writeErr: (s) => void state.streams.stderr.write(s),
    })
    .exitOverride();
  program.command('server').description('Run the administration server (see garrison server --help)');
  program.command('agent').description('Run the agent, or talk to the local agent (see garrison agent --help)');

  registerAdminCommands(program, state);
  registerAdministratorCommands(program, state);
  registerAccountCommands(program, state);
  registerGroupCommands(program, state);
  registerDeviceCommands(program, state);
  registerPolicyCommands(program, state);
  registerTokenCommands(program, state);
  registerRepoCommands(program, state);
  registerDeployCommands(program, state);
  registerPushCommands(program, state);
  registerTaskCommands(program, state);
  registerServerTaskCommands(program, state);
  registerRunCommands(program, state);
  registerEventCommands(program, state);
  registerSecretCommands(program, state);
  registerNotificationCommands(program, state);

  // Subcommands share the program's exit and output handling.
  const inherit = (cmd: Command) => {
    for (const sub of cmd.commands) {
      sub.exitOverride().configureOutput({ writeOut: (s) => void state.streams.stdout.write(s), writeErr: (s) => void state.streams.stderr.write(s) });
      sub.showSuggestionAfterError(true);
      inherit(sub);
    }
  };
  inherit(program);
  program.addHelpText(
    'after',
    () => `
All commands:
${commandList(program)}

Connection: --server/--token, else GARRISON_URL/GARRISON_TOKEN, else --token-file, else the
settings saved by "garrison login". Exit codes: 0 success, 1 error (or a task that did not
succeed), 2 usage error. Run "garrison COMMAND --help" for a command's options.`,
  );
  return program;
}

export async function cliMain(argv: string[], streams: IoStreams = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  const state: RunState = { streams, exitCode: EXIT_OK };
  const program = buildProgram(state);
  if (argv.length === 0) {
    program.outputHelp({ error: true });
    return EXIT_USAGE;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return state.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; commander has already printed its message for usage errors.
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (err instanceof ApiError) {
      streams.stderr.write(`error ${err.code}: ${err.message}\n`);
      // Schema issues are {path, message}; semantic ones (schedules) are sentences.
      const issues = (err.details as { issues?: ({ path: string; message: string } | string)[] } | undefined)?.issues;
      if (Array.isArray(issues)) for (const i of issues.slice(0, 10)) streams.stderr.write(`  ${typeof i === 'string' ? i : `${i.path}: ${i.message}`}\n`);
      return EXIT_ERROR;
    }
    if (err instanceof UsageError) {
      streams.stderr.write(`error: ${err.message}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
}
