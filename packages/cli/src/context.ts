/** What every command handler gets: output, the global options, and a lazily configured client. */
import type { Command } from 'commander';
import { Client, resolveSettings, type ConnectionOptions, type Settings } from './client.ts';
import { json } from './format.ts';

export interface GlobalOptions extends ConnectionOptions {
  json?: boolean;
}

export interface Io {
  readonly globals: GlobalOptions;
  /** --json: print the API's JSON instead of tables. */
  readonly json: boolean;
  readonly stdoutIsTTY: boolean;
  out(text: string): void;
  err(text: string): void;
  /** Prints `value` as JSON with --json, else the text `human` builds. */
  print(value: unknown, human: () => string): void;
  settings(): Promise<Settings>;
  client(): Promise<Client>;
}

export interface IoStreams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

export function makeIo(globals: GlobalOptions, streams: IoStreams): Io {
  let settings: Promise<Settings> | undefined;
  const io: Io = {
    globals,
    json: !!globals.json,
    stdoutIsTTY: !!streams.stdout.isTTY,
    out: (text) => void streams.stdout.write(text),
    err: (text) => void streams.stderr.write(text),
    print(value, human) {
      io.out(io.json ? json(value) : human());
    },
    settings() {
      settings ??= resolveSettings(globals, streams.env);
      return settings;
    },
    async client() {
      const s = await io.settings();
      return new Client(s.server, s.token, s.ca);
    },
  };
  return io;
}

export type Opts = Record<string, any>;
export type Handler = (io: Io, opts: Opts, args: string[], command: Command) => Promise<number | void>;

/** The state one cliMain run shares with its handlers: the streams and the exit code. */
export interface RunState {
  streams: IoStreams;
  exitCode: number;
}

/** Attaches a handler: positional arguments (variadic ones flattened) and the command's own options. */
export function act(cmd: Command, state: RunState, handler: Handler): Command {
  return cmd.action(async (...all: unknown[]) => {
    const command = all[all.length - 1] as Command;
    const opts = command.opts();
    const args = (all.slice(0, -2) as (string | string[] | undefined)[]).flatMap((a) => (a === undefined ? [] : Array.isArray(a) ? a : [a]));
    const io = makeIo(command.optsWithGlobals() as GlobalOptions, state.streams);
    state.exitCode = (await handler(io, opts, args, command)) ?? 0;
  });
}
