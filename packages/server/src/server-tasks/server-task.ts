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
import type { Clock } from '../clock.ts';
import type { BackupOptions, BackupOutcome } from '../backup/create.ts';
import type { DatabaseSize, VacuumMode } from '../storage/maintenance.ts';
import type { DeploymentStore } from '../storage/deployment-store.ts';
import type { DeviceStore } from '../storage/device-store.ts';
import type { EventStore } from '../storage/event-store.ts';
import type { ArchiveStore } from '../storage/archive-store.ts';
import type { InstallationPackageStore } from '../storage/installation-package-store.ts';
import type { RunStore } from '../storage/run-store.ts';
import type { ServerTaskStore } from '../storage/server-task-store.ts';
import type { SettingsStore } from '../storage/settings-store.ts';
import type { AgentBuilds } from '../services/agent-builds.ts';
import type { AuthService } from '../services/auth-service.ts';
import type { Catalog } from '../services/catalog.ts';
import type { DeploymentService } from '../services/deployment-service.ts';
import type { DeviceService } from '../services/device-service.ts';
import type { EnrolmentService } from '../services/enrolment-service.ts';
import type { GroupService } from '../services/group-service.ts';
import type { RepositoryService } from '../services/repository-service.ts';
import type { ServerTls } from '../tls/pki.ts';

/**
 * What the server's task types may use, each member named and cut down to the methods some
 * type calls (issue 14): never the whole set of services nor the raw database, so that what a
 * type can touch is read here, and a new need is a visible change to this interface. Built
 * once by `serverTaskEnvironment` (server-task-environment.ts) in the composition root.
 */
export interface ServerTaskEnvironment {
  /** Groups, tasks and devices as held in memory: settings checks, report scopes, bundle names. */
  catalog: Pick<Catalog, 'group' | 'task' | 'device' | 'tree' | 'devicesInGroups' | 'targetsOf'>;
  /** The root group: a report's scope when its settings name none. */
  groups: Pick<GroupService, 'rootId'>;
  /** Device rows as the API shows them (online, group path): the inventory report. */
  devices: Pick<DeviceService, 'view'>;
  /** What a group gets (installation package) and the state buffer written before a compliance report reads it. */
  deployments: Pick<DeploymentService, 'effective' | 'flush'>;
  /** The master repository: repository download adds to it, installation package copies from it. */
  repository: Pick<RepositoryService, 'list' | 'inBranch' | 'add' | 'localArchive' | 'publicKeyPem'>;
  /** An installation package's own enrolment token, revoked when the bundle fails or is pruned. */
  enrolment: Pick<EnrolmentService, 'createToken' | 'revokeToken'>;
  /** The index of installation packages, shared by every instance on the database (names reserved there). */
  installationPackages: InstallationPackageStore;
  /** Installation packages' bytes in the database by SHA-256, so that any instance serves a download. */
  archives: Pick<ArchiveStore, 'put' | 'open' | 'has' | 'deleteUnlessUsed'>;
  /** Single-executable agents for installation packages. */
  agentBuilds: Pick<AgentBuilds, 'platforms' | 'get'>;
  /** The TLS material agents pin; null when the server speaks plain HTTP behind a proxy. */
  trust: ServerTls | null;
  /** The report task's reads, a page at a time. */
  reports: ReportQueries;
  /** Database maintenance (and the hourly retention loop): purges by retention, size, vacuum. */
  maintenance: DatabaseMaintenance;
  /** The backup task's snapshot of the server's data. */
  backup: DataBackup;
  /** The server's data folder (database file, repository, keys, tls/). */
  dataDir: string;
  clock: Clock;
  log: Logger;
  /** The URL agents and installers reach this server at. */
  publicUrl(): string;
}

export interface ReportQueries {
  runs: Pick<RunStore, 'pageFinalRunsUpdatedBetween' | 'latestStates'>;
  deploymentStates: Pick<DeploymentStore, 'listStates'>;
  devices: Pick<DeviceStore, 'getDevices'>;
}

export interface DatabaseMaintenance {
  settings: Pick<SettingsStore, 'serverSettings'>;
  sessions: Pick<AuthService, 'purgeExpiredSessions'>;
  events: Pick<EventStore, 'purgeBefore'>;
  runs: Pick<RunStore, 'purgeRunsBefore'>;
  serverTaskRuns: Pick<ServerTaskStore, 'purgeRunsBefore'>;
  /**
   * Size and vacuum act on the database as a whole, so they are bound to it here rather than
   * handing the type the `Db`: the type says which tables, never reaches a query builder.
   */
  size(): Promise<DatabaseSize>;
  vacuum(mode: VacuumMode, tables: readonly string[], signal?: AbortSignal): Promise<string[]>;
}

export interface DataBackup {
  /**
   * createBackup (backup/create.ts) on this server's database. The dump needs the `Db` itself
   * (SQLite online backup, pg_dump with its connection, or a logical dump of every table), so
   * the builder binds it and the type passes everything else: no type holds the raw database.
   */
  create(o: Omit<BackupOptions, 'db'>): Promise<BackupOutcome>;
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
