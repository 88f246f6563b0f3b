/**
 * Builds the one environment every server task type runs in (issue 14), from what the
 * composition root already made: its stores and services, each handed on under the name and
 * the narrow type of ServerTaskEnvironment. Called once, before the runner and the service
 * that need it, so that nothing is patched in afterwards; it needs no server task service
 * (none of the types manages server tasks), which is what used to force the late assignment.
 *
 * The database itself goes in only bound: backup and vacuum act on the whole of it, and are
 * closures here, so that no type reaches a query builder.
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import { createBackup } from '../backup/create.ts';
import type { Db } from '../storage/database.ts';
import { databaseSize, vacuumDatabase } from '../storage/maintenance.ts';
import type { DeploymentStore } from '../storage/deployment-store.ts';
import type { DeviceStore } from '../storage/device-store.ts';
import type { EventStore } from '../storage/event-store.ts';
import { InstallationPackageStore } from '../storage/installation-package-store.ts';
import type { PackageStore } from '../storage/package-store.ts';
import type { RunStore } from '../storage/run-store.ts';
import type { ServerTaskStore } from '../storage/server-task-store.ts';
import type { SettingsStore } from '../storage/settings-store.ts';
import type { AuthService } from '../services/auth-service.ts';
import type { Catalog } from '../services/catalog.ts';
import type { DeploymentService } from '../services/deployment-service.ts';
import type { DeviceService } from '../services/device-service.ts';
import type { EnrolmentService } from '../services/enrolment-service.ts';
import type { GroupService } from '../services/group-service.ts';
import type { InstallerService } from '../services/installer-service.ts';
import type { RepositoryService } from '../services/repository-service.ts';
import type { ServerTls } from '../tls/pki.ts';
import type { ServerTaskEnvironment } from './server-task.ts';

export interface ServerTaskEnvironmentDeps {
  db: Db;
  stores: {
    runs: RunStore;
    events: EventStore;
    devices: DeviceStore;
    deployments: DeploymentStore;
    serverTasks: ServerTaskStore;
    settings: SettingsStore;
    /** Its `archives`: installation packages' bytes are kept with the repository's, by SHA-256. */
    packages: Pick<PackageStore, 'archives'>;
  };
  catalog: Catalog;
  groups: GroupService;
  devices: DeviceService;
  deployments: DeploymentService;
  repository: RepositoryService;
  enrolment: EnrolmentService;
  installers: Pick<InstallerService, 'builds'>;
  auth: AuthService;
  trust: ServerTls | null;
  dataDir: string;
  clock: Clock;
  log: Logger;
  publicUrl(): string;
}

export function serverTaskEnvironment(d: ServerTaskEnvironmentDeps): ServerTaskEnvironment {
  const { db, stores } = d;
  return {
    catalog: d.catalog,
    groups: d.groups,
    devices: d.devices,
    deployments: d.deployments,
    repository: d.repository,
    enrolment: d.enrolment,
    // Built here from the database: only the installation-package task and its routes use it.
    installationPackages: new InstallationPackageStore(db),
    archives: stores.packages.archives,
    agentBuilds: d.installers.builds,
    trust: d.trust,
    reports: { runs: stores.runs, deploymentStates: stores.deployments, devices: stores.devices },
    maintenance: {
      settings: stores.settings,
      sessions: d.auth,
      events: stores.events,
      runs: stores.runs,
      serverTaskRuns: stores.serverTasks,
      size: () => databaseSize(db),
      vacuum: (mode, tables, signal) => vacuumDatabase(db, mode, tables, signal),
    },
    backup: { create: (o) => createBackup({ ...o, db }) },
    dataDir: d.dataDir,
    clock: d.clock,
    log: d.log,
    publicUrl: d.publicUrl,
  };
}
