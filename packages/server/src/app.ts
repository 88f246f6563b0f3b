/**
 * The composition root: the one place that picks the database, builds stores and services,
 * wires the agent hub to the HTTP server, and starts the background loops.
 *
 * `createApp` builds the whole server without listening: every service gets what it needs in
 * its constructor (nothing is patched in afterwards), and what one part tells the others goes
 * through the domain-event bus (services/domain-bus.ts), which crosses to the other instances
 * when the database is shared (ADR 0019). `startServer` locks the data folder (SQLite), builds
 * the app, listens, and starts the loops.
 */
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { AGENT_WS_PATH } from '@garrison/protocol';
import { fileURLToPath } from 'node:url';
import { LiveFeed } from './services/live-feed.ts';
import { DomainBus } from './services/domain-bus.ts';
import { PgBusTransport } from './storage/pg-bus.ts';
import { PresenceStore } from './storage/presence-store.ts';
import { SignInStore } from './storage/sign-in-store.ts';
import { PolicyStatusStore } from './storage/policy-status-store.ts';
import { FleetPresence } from './services/fleet-presence.ts';
import { wireInstanceSync } from './services/instance-sync.ts';
import { openDatabase, type DatabaseConfig, type Db } from './storage/database.ts';
import { migrateToLatest } from './storage/migrate.ts';
import { GroupStore } from './storage/group-store.ts';
import { DeviceStore } from './storage/device-store.ts';
import { EnrolmentStore } from './storage/enrolment-store.ts';
import { AdminStore } from './storage/admin-store.ts';
import { DuplicateStore } from './storage/duplicate-store.ts';
import { AdminService } from './services/admin-service.ts';
import { DeviceLimits } from './services/device-limits.ts';
import { TaskStore } from './storage/task-store.ts';
import { RunStore } from './storage/run-store.ts';
import { EventStore } from './storage/event-store.ts';
import { SecretStore } from './storage/secret-store.ts';
import { SettingsStore } from './storage/settings-store.ts';
import { PackageStore } from './storage/package-store.ts';
import { RepositoryService } from './services/repository-service.ts';
import { DeploymentStore } from './storage/deployment-store.ts';
import { DeploymentService } from './services/deployment-service.ts';
import { systemClock, type Clock } from './clock.ts';
import { Catalog } from './services/catalog.ts';
import { EventService } from './services/event-service.ts';
import { GroupService } from './services/group-service.ts';
import { PolicyService } from './services/policy-service.ts';
import { PolicyStore } from './storage/policy-store.ts';
import { DeviceService } from './services/device-service.ts';
import { EnrolmentService } from './services/enrolment-service.ts';
import { TaskService } from './services/task-service.ts';
import { RunService } from './services/run-service.ts';
import { SecretService } from './services/secret-service.ts';
import { AgentService } from './services/agent-service.ts';
import { AuthService } from './services/auth-service.ts';
import { OidcService } from './services/oidc-service.ts';
import { SavedSelectionService } from './services/saved-selection-service.ts';
import { SavedSelectionStore } from './storage/saved-selection-store.ts';
import { DashboardService } from './services/dashboard-service.ts';
import { DashboardStore } from './storage/dashboard-store.ts';
import { PushService } from './services/push-service.ts';
import { IdentityService } from './services/identity-service.ts';
import { InstallerService } from './services/installer-service.ts';
import { AgentBuilds } from './services/agent-builds.ts';
import { actorName, systemActor } from './services/actor.ts';
import type { Services } from './services/services.ts';
import { PluginRegistry } from './plugins/registry.ts';
import { loadServerPlugins } from './plugins/loader.ts';
import { builtinGarrisonPlugin } from './plugins/builtin-garrison.ts';
import { sampleScannerServerPlugin } from '@garrison/sample-scanner/server-plugin';
import { AgentHub } from './agent-hub/hub.ts';
import { buildHttpApp } from './http/index.ts';
import { startLoop, type Loop } from './scheduler/loop.ts';
import { ServerTaskStore } from './storage/server-task-store.ts';
import { ServerTaskService } from './services/server-task-service.ts';
import { WebhookAddresses } from './services/webhook-address.ts';
import { NotificationService } from './services/notification-service.ts';
import { NotificationStore } from './storage/notification-store.ts';
import { ServerTaskRunner } from './server-tasks/server-task-runner.ts';
import { builtinServerTaskTypes, ServerTaskTypes } from './server-tasks/types.ts';
import { purgeByRetention } from './server-tasks/database-maintenance.ts';
import type { ServerTaskType } from './server-tasks/server-task.ts';
import { serverTaskEnvironment } from './server-tasks/server-task-environment.ts';
import { newId } from './ids.ts';
import type { ServerTls, TlsOptions } from './tls/pki.ts';
import { lockDataFolder } from './data-folder-lock.ts';
import { establishInstanceKeys } from './instance-keys.ts';

export interface ServerConfig {
  dataDir: string;
  /** Default: SQLite in `<dataDir>/garrison.db`. */
  database?: DatabaseConfig;
  host?: string;
  port?: number;
  /** 32-byte key of the secret store; default GARRISON_SECRET_KEY (base64) or `<dataDir>/secret.key`. */
  secretKey?: Buffer;
  logLevel?: string;
  logger?: Logger;
  clock?: Clock;
  /** Server plug-ins to load (paths or npm package names), besides those in `<dataDir>/plugins/`. */
  plugins?: string[];
  /** How often staged rollouts are evaluated (default 15 s). */
  rolloutIntervalMs?: number;
  /** The address agents and installers reach this server at (default: where it listens). */
  publicUrl?: string;
  /** Where single-executable agents are built and kept (default `<dataDir>/agent-builds`). */
  agentBuildDir?: string;
  /**
   * TLS (ADR 0009): by default the server serves HTTPS with its own CA and certificate from
   * `<dataDir>/tls`. `false` serves plain HTTP, for a deployment behind a TLS-terminating
   * reverse proxy (agents still talk TLS, to the proxy).
   */
  tls?: TlsOptions | false;
  /** The built web console to serve at `/`; default packages/console/dist when built, null for none. */
  consoleDir?: string | null;
  /** How often server task schedules are checked (default 5 s) and how long a run's claim lasts unless renewed (default 60 s). */
  serverTaskTickMs?: number;
  serverTaskLeaseMs?: number;
  /**
   * With other instances on the database: how long this instance's lease on its row lasts
   * (default 15 s, renewed every third of it). Its agents read offline elsewhere when it runs out.
   */
  instanceLeaseMs?: number;
  /** Server task types besides the built-in ones (a server plug-in's, or a test's). */
  serverTaskTypes?: readonly ServerTaskType[];
  /** How often due notification deliveries are looked for (default 2 s; new ones are sent at once). */
  notificationTickMs?: number;
  /** Networks (CIDR) a webhook may reach though they are the server's own or its link (loopback, link-local): ADR 0022. */
  webhookAllow?: readonly string[];
}

/** What `createApp` builds, listening or not. */
interface Assembled {
  db: Db;
  http: FastifyInstance;
  services: Services;
  hub: AgentHub;
  bus: DomainBus;
  presence: FleetPresence;
  /** The TLS material agents pin (null when serving plain HTTP). */
  tls: ServerTls | null;
  /** Set on first start only: the administrator's API token (also written to `<dataDir>/admin-token`). */
  initialAdminToken: string | null;
  adminTokenFile: string;
  /** Set when the first administrator was given a random console password (a new server, or one from before the console). */
  initialPassword: { name: string; file: string } | null;
  /** Whether the web console is served at `/`. */
  consoleBuilt: boolean;
  /** Stops everything it started; safe to call more than once, listening or not. */
  close(): Promise<void>;
}

/** The whole server, built and not listening (createApp). */
export interface GarrisonApp extends Assembled {
  /** Listens on the configured address and starts the background loops. */
  listen(): Promise<GarrisonServer>;
}

/** A listening server (startServer, or GarrisonApp.listen). */
export interface GarrisonServer extends Assembled {
  url: string;
  port: number;
  /** This instance's id on the bus and in `server_instances`. */
  instanceId: string;
}

export const ADMIN_TOKEN_FILE = 'admin-token';

/** The server tasks a new server starts with (made once; deleting them is respected). */
const DEFAULT_SERVER_TASKS = [
  {
    name: 'Database maintenance',
    description: 'Purges events and runs past retention, then vacuums and analyzes the database.',
    type: 'database-maintenance',
    settings: {},
    schedule: { triggers: [{ type: 'daily' as const, time: '03:30' }], timeBasis: 'local', runMissed: true, missedDelayMinutes: 10 },
  },
  {
    name: 'Backup of server data',
    description: 'The database, repository and keys into DATA/backups, keeping 7. Set a passphrase secret to encrypt the archives, and a folder on another disk.',
    type: 'backup',
    settings: { keep: 7 },
    schedule: { triggers: [{ type: 'daily' as const, time: '02:30' }], timeBasis: 'local', runMissed: true, missedDelayMinutes: 15 },
  },
];
export const INITIAL_PASSWORD_FILE = 'initial-admin-password';

/** The web console's build (packages/console/dist), when it is there. */
export function defaultConsoleDir(): string | null {
  const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../console/dist');
  return existsSync(path.join(dir, 'index.html')) ? dir : null;
}

async function loadSecretKey(dataDir: string, given?: Buffer): Promise<Buffer> {
  if (given) return given;
  const env = process.env.GARRISON_SECRET_KEY;
  if (env) {
    const key = Buffer.from(env, 'base64');
    if (key.length !== 32) throw new Error('GARRISON_SECRET_KEY must be 32 bytes, base64-encoded');
    return key;
  }
  const file = path.join(dataDir, 'secret.key');
  if (existsSync(file)) return Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
  const key = randomBytes(32);
  await writeFile(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  return key;
}

/**
 * Starts the server. With SQLite, the data folder is locked first (data-folder-lock.ts: a
 * second server on it is refused with DATA_FOLDER_IN_USE), and released by close() or when
 * the start fails; with PostgreSQL several instances may share it.
 */
export async function startServer(config: ServerConfig): Promise<GarrisonServer> {
  const shared = (config.database?.kind ?? 'sqlite') !== 'sqlite';
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const lock = shared ? null : await lockDataFolder(config.dataDir);
  let app: GarrisonApp | null = null;
  try {
    app = await createApp(config);
    const server = await app.listen();
    if (!lock) return server;
    return { ...server, close: () => server.close().finally(() => lock.release()) };
  } catch (err) {
    await app?.close().catch(() => {});
    await lock?.release();
    throw err;
  }
}

/** Builds the whole server on its database without listening. */
export async function createApp(config: ServerConfig): Promise<GarrisonApp> {
  const log = config.logger ?? pino({ level: config.logLevel ?? process.env.GARRISON_LOG_LEVEL ?? 'info', redact: ['req.headers.authorization', '*.credential', '*.token', '*.value', '*.password', '*.privateKey', '*.passphrase'] });
  const clock = config.clock ?? systemClock;
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const db = await openDatabase(config.database ?? { kind: 'sqlite', file: path.join(config.dataDir, 'garrison.db') });
  const bus = new DomainBus({ instanceId: newId(), log });
  try {
    await migrateToLatest(db);
    // With a database several instances share, the bus crosses to them (LISTEN/NOTIFY).
    if (db.dialect.sharedByInstances) await bus.connect(new PgBusTransport(db, log, bus.instanceId));
    return await assemble(config, db, bus, log, clock);
  } catch (err) {
    await bus.close().catch(() => {});
    await db.close().catch(() => {});
    throw err;
  }
}

async function assemble(config: ServerConfig, db: Db, bus: DomainBus, log: Logger, clock: Clock): Promise<GarrisonApp> {
  const stores = {
    groups: new GroupStore(db),
    devices: new DeviceStore(db),
    tokens: new EnrolmentStore(db),
    admins: new AdminStore(db),
    duplicates: new DuplicateStore(db),
    tasks: new TaskStore(db),
    runs: new RunStore(db),
    events: new EventStore(db),
    secrets: new SecretStore(db),
    settings: new SettingsStore(db),
    packages: new PackageStore(db),
    deployments: new DeploymentStore(db),
    serverTasks: new ServerTaskStore(db),
    policies: new PolicyStore(db),
  };
  // The group view's and enrolment's intervals come from the policies (made below, once the plug-ins are in).
  const catalog = new Catalog({ groups: stores.groups, tasks: stores.tasks, devices: stores.devices, intervals: (groupId) => policies.groupIntervals(groupId) });
  await catalog.load();
  const plugins = new PluginRegistry();
  plugins.install(builtinGarrisonPlugin);
  plugins.install(sampleScannerServerPlugin);
  for (const p of await loadServerPlugins(config.plugins ?? [], path.join(config.dataDir, 'plugins'))) {
    plugins.install(p);
    log.info({ product: p.product.id }, 'management plug-in installed');
  }

  const live = new LiveFeed(bus);
  const events = new EventService({ store: stores.events, clock, log, catalog, live });
  const policies = new PolicyService({ store: stores.policies, catalog, plugins, clock, events, bus, devices: stores.devices });
  await policies.load();
  const secrets = new SecretService({ store: stores.secrets, key: await loadSecretKey(config.dataDir, config.secretKey), clock, events, tree: () => catalog.tree });
  const groups = new GroupService({ store: stores.groups, catalog, clock, events, bus, policies });
  await groups.ensureRoot();
  // Who is online, here and on the other instances; the hub adds this instance's connections.
  const presence = new FleetPresence({ bus, store: new PresenceStore(db), clock, log, leaseMs: config.instanceLeaseMs, onRemoteChange: () => live.publishHere('presence') });
  const devices = new DeviceService({ store: stores.devices, catalog, clock, events, presence, bus });
  // Instances on one database share these keys (instance-keys.ts): the first stores them, sealed,
  // the others take them; one whose own keys differ refuses to start, plainly.
  const { signingKey, tls } = await establishInstanceKeys({
    settings: stores.settings,
    secrets,
    anyStoredSecret: () => stores.secrets.anyCiphertext(),
    dataDir: config.dataDir,
    tls: config.tls ?? {},
    log: { info: (msg) => log.info(msg), warn: (msg) => log.warn(msg) },
  });
  const repository = new RepositoryService({
    store: stores.packages,
    dir: path.join(config.dataDir, 'repository'),
    key: signingKey,
    clock,
    events,
    tree: () => catalog.tree,
    bus,
    // New content in the master repository replans deployments and fires the server tasks waiting for it
    // (the runner is made below; content arrives only once the server runs).
    onContent: async (pkg) => {
      await deployments.repositoryChanged(pkg.product).catch((err: unknown) => log.error({ err }, 'replanning deployments failed'));
      await serverTaskRunner.fireEvent('repository-content', `${pkg.product} ${pkg.version}`).catch((err: unknown) => log.error({ err }, 'firing repository-content server tasks failed'));
    },
  });
  // Archives kept only on this disk go into the database; cached ones no package names any more go.
  await repository.syncLocalArchives();
  const enrolment = new EnrolmentService({ tokens: stores.tokens, devices: stores.devices, catalog, clock, events, signingPublicKey: signingKey.publicKeyPem, bus });
  const tasks = new TaskService({ store: stores.tasks, devices: stores.devices, catalog, plugins, secrets, clock, events, bus });
  const runs = new RunService({ runs: stores.runs, catalog, tasks, clock, events, presence, bus });
  const deployments = new DeploymentService({ store: stores.deployments, packages: stores.packages, devices: stores.devices, catalog, clock, events, log, bus });
  await deployments.load();
  await deployments.ensureDeploymentTask(tasks, systemActor, groups.rootId);
  const limits = new DeviceLimits({ clock, events });
  const identity = new IdentityService({ store: stores.devices, duplicates: stores.duplicates, catalog, clock, events, enrolment, devices, presence, bus });
  await identity.load();
  const agents = new AgentService({ devices: stores.devices, runs: stores.runs, taskStore: stores.tasks, tasks, catalog, secrets, events, clock, log, deployments, limits, identity, live, bus, policies, plugins, policyStatus: new PolicyStatusStore(db), eventStore: stores.events });
  const auth = new AuthService({ store: stores.admins, clock, seal: secrets, bus });
  const admins = new AdminService({ store: stores.admins, auth, catalog, clock, events });
  const oidc = new OidcService({ settings: stores.settings, secrets, store: stores.admins, auth, admins, catalog, clock, events, log, pending: new SignInStore(db) });
  const hub = new AgentHub({ connections: presence.local, agents, enrolment, isForeign: (deviceId, machineIdentity) => identity.isForeign(deviceId, machineIdentity), log });
  policies.connectedHere((id) => presence.isOnlineHere(id));
  wireInstanceSync({ bus, catalog, presence, enrolment, deployments, identity, policies, log });

  const installers = new InstallerService({
    enrolment,
    catalog,
    trust: tls,
    builds: new AgentBuilds(
      config.agentBuildDir ?? path.join(config.dataDir, 'agent-builds'),
      (msg) => log.info(msg),
      // With other instances, one build per agent version is shared through the database.
      db.dialect.sharedByInstances ? { settings: stores.settings, archives: stores.packages.archives } : undefined,
    ),
  });
  let publicUrl = config.publicUrl ?? '';
  const push = await PushService.start({
    db,
    catalog,
    clock,
    events,
    log,
    tokens: enrolment,
    // Push installation runs the Linux installer link of the target group on each host.
    installCommands: {
      async unixInstallCommand(actor, groupId, opts) {
        // The job's own link: push:run on the group (checked by the push service) covers it, without tokens:write.
        const link = await installers.create({ kind: 'system', name: actorName(actor) }, { groupId, name: `push installation to ${catalog.tree.path(groupId)}`, expiresInMinutes: opts.expiresInMinutes, maxUses: opts.uses, serverUrl: publicUrl });
        return { command: installers.unixCommand(publicUrl, link.tokenValue, opts.installDir), tokenId: link.token.id };
      },
    },
  });
  // Server tasks (issues 6, 14): the types get named, narrow members of the stores and services
  // above, built once; no type needs the server task service, so nothing is patched in later.
  const serverTaskEnv = serverTaskEnvironment({ db, stores, catalog, groups, devices, deployments, repository, enrolment, installers, auth, trust: tls, dataDir: config.dataDir, clock, log, publicUrl: () => publicUrl });
  const serverTaskTypes = new ServerTaskTypes([...builtinServerTaskTypes, ...(config.serverTaskTypes ?? [])]);
  const serverTaskRunner = new ServerTaskRunner({ store: stores.serverTasks, types: serverTaskTypes, env: serverTaskEnv, events, secrets, live, tickMs: config.serverTaskTickMs, leaseMs: config.serverTaskLeaseMs });
  const serverTasks = new ServerTaskService({ store: stores.serverTasks, types: serverTaskTypes, runner: serverTaskRunner, secrets, events, clock, tree: () => catalog.tree, env: serverTaskEnv });
  // Notification rules match the events as they are stored, in memory (ADR 0022).
  const notifications = new NotificationService({ store: new NotificationStore(db), settings: stores.settings, secrets, catalog, tasks, runs, events, clock, log, owner: bus.instanceId, tickMs: config.notificationTickMs, webhookAddresses: new WebhookAddresses(config.webhookAllow) });
  await notifications.load();
  events.onStored((batch) => notifications.onEvents(batch));
  const savedSelections = new SavedSelectionService({ store: new SavedSelectionStore(db), clock });
  const dashboard = new DashboardService({ store: new DashboardStore(db), catalog, clock });
  const services: Services = { installers, trust: tls, identity, auth, admins, oidc, limits, catalog, groups, devices, enrolment, tasks, runs, events, secrets, agents, plugins, settings: stores.settings, presence, repository, deployments, push, live, serverTasks, policies, notifications, savedSelections, dashboard };
  const defaultsMarker = newId();
  await serverTasks.ensureDefaults(DEFAULT_SERVER_TASKS, async () => (await stores.settings.setIfAbsent('server-tasks.defaults-created', defaultsMarker)) === defaultsMarker);
  const consoleDir = config.consoleDir === undefined ? defaultConsoleDir() : config.consoleDir;
  const http = await buildHttpApp(services, log, { https: tls && { key: tls.key, cert: tls.cert, ...(config.tls && config.tls.groups ? { groups: config.tls.groups } : {}) }, serverUrl: () => publicUrl, consoleDir, dataDir: config.dataDir, installationPackages: serverTaskEnv.installationPackages, archives: serverTaskEnv.archives });
  http.server.on('upgrade', (req, socket, head) => {
    if ((req.url ?? '').split('?')[0] === AGENT_WS_PATH) void hub.handleUpgrade(req, socket, head);
    else socket.destroy();
  });

  const adminTokenFile = path.join(config.dataDir, ADMIN_TOKEN_FILE);
  const initialAdminToken = await auth.bootstrap(groups.rootId);
  if (initialAdminToken) {
    await writeFile(adminTokenFile, initialAdminToken + '\n', { mode: 0o600 });
    await chmod(adminTokenFile, 0o600);
  }
  // The console's sign-in: the first administrator gets a random password when none has one.
  const initialPasswordFile = path.join(config.dataDir, INITIAL_PASSWORD_FILE);
  const initialPassword = await auth.ensureInitialPassword();
  if (initialPassword) {
    await writeFile(initialPasswordFile, `${initialPassword.password}\n`, { mode: 0o600 });
    await chmod(initialPasswordFile, 0o600);
  }

  let loops: Loop[] = [];
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await Promise.all([...loops.map((l) => l.stop()), serverTaskRunner.close(), notifications.close()]);
      await push.close();
      // Leaving cleanly: the others read this instance's agents offline at once.
      await presence.close();
      await hub.close();
      await http.close();
      await agents.flushAll();
      await deployments.flush();
      await events.flush();
      await bus.close();
      await db.close();
    })();
    return closing;
  };
  const app: GarrisonApp = {
    db,
    http,
    services,
    hub,
    bus,
    presence,
    tls,
    initialAdminToken,
    adminTokenFile,
    initialPassword: initialPassword && { name: initialPassword.name, file: initialPasswordFile },
    consoleBuilt: consoleDir !== null,
    close,
    async listen() {
      // A deep accept queue: when an instance dies, thousands of its agents reconnect to the others in
      // the same second, and Node's default of 511 resets the rest (the kernel caps it at net.core.somaxconn).
      await http.listen({ host: config.host ?? '127.0.0.1', port: config.port ?? 8420, backlog: 8192 });
      const port = (http.server.address() as AddressInfo).port;
      const host = config.host && config.host !== '0.0.0.0' && config.host !== '::' ? config.host : '127.0.0.1';
      const url = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
      // Machines on the network cannot use a loopback address: a wildcard listener is announced by host name.
      const wildcard = !config.host || config.host === '0.0.0.0' || config.host === '::';
      publicUrl ||= wildcard && config.host ? `${tls ? 'https' : 'http'}://${os.hostname()}:${port}` : url;
      await presence.start(url);
      loops = [
        startLoop('run-now-expiry', 30_000, () => runs.expireOverdue(), log),
        startLoop('rollouts', config.rolloutIntervalMs ?? 15_000, () => deployments.evaluateRollouts(), log),
        startLoop(
          'retention',
          3600_000,
          async () => {
            // Retention holds even without the database maintenance server task (which also vacuums and reports).
            const removed = await purgeByRetention(serverTaskEnv);
            if (removed.events || removed.runs || removed.serverTaskRuns) {
              events.record({ severity: 'info', kind: 'server.retention-purge', message: `purged ${removed.events} events and ${removed.runs + removed.serverTaskRuns} runs past retention`, data: { ...removed } });
            }
          },
          log,
        ),
        // The safety net under the bus: other instances' changes are seen even if a notification was lost.
        startLoop('catalog-refresh', 30_000, async () => {
          await catalog.refresh();
          if (bus.shared) await policies.load();
          if (bus.shared) await deployments.load();
        }, log),
        startLoop('device-catalog-refresh', 300_000, () => catalog.reloadDevices(), log),
      ];
      serverTaskRunner.start();
      notifications.start();
      return { ...app, url, port, instanceId: bus.instanceId, close };
    },
  };
  return app;
}
