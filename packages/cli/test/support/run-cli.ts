/**
 * The CLI run two ways for tests: the real binary in a child process (exit codes, standard
 * input, a process's start-up), and cliMain in this process (about a second faster each).
 * Never spawnSync: the server answering the CLI runs in the test's own process.
 */
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { BIN } from '../../../server/test/helpers.ts';
import { cliMain } from '../../src/main.ts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The real `garrison` binary with exactly `env` (plus PATH) and `input` on its standard input. */
export function cliProcess(args: string[], env: NodeJS.ProcessEnv, input = ''): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** cliMain in this process, with `env` as its environment and its output captured. */
export async function cliInProcess(argv: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk, _enc, cb) {
        append(chunk.toString());
        cb();
      },
    });
  const code = await cliMain(argv, { stdout: sink((s) => (stdout += s)), stderr: sink((s) => (stderr += s)), env });
  return { code, stdout, stderr };
}
