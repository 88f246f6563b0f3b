/**
 * The main script of the single-executable agent (`garrison-agent`, built by sea.ts): one file
 * holding Node.js and the bundled agent, for devices without Node. It is the agent, its own
 * launcher, and the "node" that every program the agent starts with `process.execPath` expects
 * (the launcher's downloaded runtimes, package commands' "$GARRISON_NODE" script.mjs, the
 * sample scanner's service).
 *
 * The argv contract (`garrison-agent ARGS`), decided on the first argument:
 *
 *   SCRIPT[.js|.mjs|.cjs|.ts|.mts|.cts] [args]  script mode: runs the file as `node SCRIPT args`
 *       would: process.argv is [executable, absolute SCRIPT, ...args] and the file is loaded
 *       with import() of its file URL (ES module, CommonJS, or TypeScript by Node's own rules;
 *       top-level await, import() and require() inside it work). A missing file is an error
 *       (exit 1), as with node. Node options on the command line are not taken (NODE_OPTIONS
 *       is); `import.meta.main` is false and `require.main` is not the script.
 *   --version | -v                               prints the built-in agent's version.
 *   help | --help | -h                           prints this contract and the agent's usage.
 *   [--state DIR] status | task ... | events | run | enrol | uninstall ...   the agent CLI (`garrison agent ...`,
 *       main.ts) in this process: talk to the running agent, or `run` an agent in the
 *       foreground without launcher (no self-update).
 *   --garrison-embedded-agent [agent args]       the built-in agent runtime, as the launcher
 *       starts it (`--state DIR [--server URL --token-file F ...]`); not for people.
 *   [--state DIR] [--] [agent args]              anything else: the launcher (launcher.ts,
 *       what the service manager runs): runs the current runtime of the state folder
 *       (`<state>/runtime/<version>/agent.mjs`, run through script mode above, or the built-in
 *       agent for its own version), restarts it, carries out self-updates and rolls them back.
 *       On an empty state folder the built-in agent is the bootstrap runtime. The agent
 *       arguments (e.g. `--server URL --token-file FILE --name NAME` to enrol on the first start;
 *       the enrolment token is never an argument)
 *       are given to every runtime it starts, after `--state DIR`.
 *
 * Under plain Node (`node sea-entry.ts ...`) it behaves the same, the built-in agent being
 * this file run again; that is for development only.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { isSea } from 'node:sea';
import { pathToFileURL } from 'node:url';
import { AGENT_VERSION } from './inventory.ts';
import { runLauncher } from './launcher.ts';
import { agentMain } from './main.ts';

const EMBEDDED_AGENT_FLAG = '--garrison-embedded-agent';
const SCRIPT_EXTENSIONS = ['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts'];
const AGENT_COMMANDS = new Set(['status', 'task', 'events', 'run', 'enrol', 'enroll', 'uninstall']);

const USAGE = `garrison-agent ${AGENT_VERSION}: the Garrison agent as one executable (Node.js built in)
usage:
  garrison-agent [--state DIR] [--] [--server URL (--token-file FILE | --token-stdin) --name NAME]
      the launcher: runs and updates the agent of the state folder (the built-in agent at first);
      the agent arguments enrol it on its first start (the token may also come from GARRISON_ENROL_TOKEN)
  garrison-agent [--state DIR] status | task | events | run | enrol | uninstall ...   the agent CLI
  garrison-agent SCRIPT.mjs [args]      runs a script as \`node SCRIPT.mjs [args]\` (also .js .cjs .ts .mts .cts)
  garrison-agent --version
`;

function isScriptArg(arg: string): boolean {
  return !arg.startsWith('-') && SCRIPT_EXTENSIONS.includes(path.extname(arg).toLowerCase());
}

/** Runs a script file as `node file args` would. Resolves once its module has evaluated. */
async function runScript(file: string, args: string[]): Promise<void> {
  const abs = path.resolve(file);
  if (!existsSync(abs)) {
    process.stderr.write(`garrison-agent: cannot find the script ${abs}\n`);
    process.exitCode = 1;
    return;
  }
  process.argv = [process.execPath, abs, ...args];
  // Like node: when the event loop runs dry while the module's top-level await is still
  // pending, the process ends with exit code 13 (not when the script calls process.exit()).
  let settled = false;
  let unsettled = false;
  const beforeExit = () => {
    if (!settled && process.exitCode === undefined) {
      unsettled = true;
      process.exitCode = 13;
    }
  };
  const exit = () => {
    if (unsettled && !settled) process.stderr.write(`Warning: Detected unsettled top-level await in ${abs}\n`);
  };
  process.on('beforeExit', beforeExit);
  process.once('exit', exit);
  try {
    await import(pathToFileURL(abs).href);
  } catch (err) {
    // Reported the way node reports a failing entry point: an uncaught exception (exit 1).
    process.nextTick(() => {
      throw err;
    });
  } finally {
    settled = true;
    if (unsettled && process.exitCode === 13) process.exitCode = undefined; // it settled after all
    process.off('beforeExit', beforeExit);
    process.off('exit', exit);
  }
}

/** The launcher's launcher-mode arguments: `--state DIR` is the launcher's, the rest the agent's. */
function launcherArgs(argv: string[]): string[] {
  const state: string[] = [];
  const agent: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      agent.push(...argv.slice(i + 1));
      break;
    }
    if (a === '--state' && i + 1 < argv.length) state.push('--state', argv[++i]);
    else if (a.startsWith('--state=')) state.push(a);
    else agent.push(a);
  }
  return [...state, '--', ...agent];
}

async function seaMain(argv: string[]): Promise<number | undefined> {
  const [first, ...rest] = argv;
  if (first !== undefined && isScriptArg(first)) {
    await runScript(first, rest);
    return undefined; // the script owns process.exitCode
  }
  if (first === EMBEDDED_AGENT_FLAG) return agentMain(rest);
  if (first === '--version' || first === '-v') {
    console.log(AGENT_VERSION);
    return 0;
  }
  if (first === 'help' || first === '--help' || first === '-h') {
    console.log(USAGE);
    return agentMain(['--help']);
  }
  // The agent CLI: `status ...`, also after a leading `--state DIR`.
  const command = first === '--state' ? argv[2] : first?.startsWith('--state=') ? argv[1] : first;
  if (command !== undefined && AGENT_COMMANDS.has(command)) return agentMain(argv);
  // The built-in agent: this executable again with the flag (under plain Node, this file again).
  const self = isSea() ? [] : [process.argv[1]];
  return runLauncher(launcherArgs(argv), { embedded: { version: AGENT_VERSION, args: [...self, EMBEDDED_AGENT_FLAG] } });
}

seaMain(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`garrison-agent: ${(err as Error)?.message ?? err}\n`);
    process.exitCode = 1;
  },
);
