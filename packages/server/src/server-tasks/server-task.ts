/**
 * The one interface every server task type implements (issue 6). A type is a module that
 * exports a `ServerTaskType`; the list in `types.ts` is the only place that names them, so a
 * new server task is a new file plus one line there, never a change to the scheduler.
 *
 * The runner (server-task-runner.ts) owns everything around `run`: claiming the run so that
 * one server instance executes it, the lease, progress persistence, stop and timeout (through
 * `signal`), retries, the event log and the history. A type only does its work, reports
 * progress, honours `signal`, and returns a result or throws. A throw fails the run with the
 * error's message and never reaches the server's process.
 */
import type { Logger } from 'pino';
import type { TSchema } from 'typebox';
import type { Db } from '../storage/database.ts';
import type { Services } from '../services/services.ts';
import type { Clock } from '../clock.ts';

export interface ServerTaskEnvironment {
  services: Services;
  db: Db;
  /** The server's data folder (database file, repository, keys, tls/). */
  dataDir: string;
  clock: Clock;
  log: Logger;
  /** The URL agents and installers reach this server at. */
  publicUrl(): string;
}

export interface ServerTaskContext extends ServerTaskEnvironment {
  taskId: string;
  taskName: string;
  runId: string;
  /** Aborted when an administrator stops the run, at its stopAfterMinutes, or at server shutdown. */
  signal: AbortSignal;
  /** Percent done (0-100) and an optional message; persisted at most every second. */
  progress(percent: number, message?: string): void;
  /** A line for the run's output tail (what an administrator reads in the history). Never a secret. */
  output(line: string): void;
}

export interface ServerTaskResult {
  /** One line for the history and the event log, e.g. "sent 3 reports to 2 recipients". */
  summary: string;
  /** Things that went wrong without failing the task: the run ends "succeeded with warnings". */
  warnings?: string[];
  /** Figures for the history and the API (counts, sizes, file names); never a secret. */
  data?: Record<string, unknown>;
}

export interface ServerTaskType<S = Record<string, unknown>> {
  /** Stable id, used in the API and exports: "report", "backup", … */
  type: string;
  name: string;
  description: string;
  /**
   * The settings' JSON schema. Fields holding credentials accept only a secret reference
   * (`SecretRefSchema`); the settings are checked against it at create, change and import.
   */
  settingsSchema: TSchema;
  /** Checks the schema cannot express; return problems as sentences (empty: valid). */
  validate?(settings: S, env: ServerTaskEnvironment): string[] | Promise<string[]>;
  /**
   * Does the work. `settings` arrive with secret references resolved to their values: they
   * must not be written to the result, the output or the log.
   */
  run(settings: S, ctx: ServerTaskContext): Promise<ServerTaskResult>;
}

/** Lets a module declare its type with its own settings type while the list stays uniform. */
export function defineServerTaskType<S>(t: ServerTaskType<S>): ServerTaskType {
  return t as unknown as ServerTaskType;
}

/** Throws an AbortError-like error when the run was stopped; call it between steps. */
export function throwIfStopped(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('stopped');
}
