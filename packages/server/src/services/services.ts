import type { LiveFeed } from './live-feed.ts';
import type { PluginRegistry } from '../plugins/registry.ts';
import type { SettingsStore } from '../storage/settings-store.ts';
import type { AgentService } from './agent-service.ts';
import type { AuthService } from './auth-service.ts';
import type { Catalog } from './catalog.ts';
import type { DeviceService } from './device-service.ts';
import type { EnrolmentService } from './enrolment-service.ts';
import type { EventService } from './event-service.ts';
import type { GroupService } from './group-service.ts';
import type { Presence } from './presence.ts';
import type { RunService } from './run-service.ts';
import type { SecretService } from './secret-service.ts';
import type { TaskService } from './task-service.ts';
import type { RepositoryService } from './repository-service.ts';
import type { DeploymentService } from './deployment-service.ts';
import type { PushService } from './push-service.ts';
import type { ServerTls } from '../tls/pki.ts';
import type { IdentityService } from './identity-service.ts';
import type { InstallerService } from './installer-service.ts';
import type { ServerTaskService } from './server-task-service.ts';
import type { AdminService } from './admin-service.ts';
import type { DeviceLimits } from './device-limits.ts';
import type { OidcService } from './oidc-service.ts';
import type { PolicyService } from './policy-service.ts';
import type { NotificationService } from './notification-service.ts';
import type { SavedSelectionService } from './saved-selection-service.ts';
import type { DashboardService } from './dashboard-service.ts';

/** Everything the HTTP layer and the agent hub call. */
export interface Services {
  /** The TLS material agents and installers pin; null when the server speaks plain HTTP behind a proxy. */
  trust: ServerTls | null;
  identity: IdentityService;
  installers: InstallerService;
  auth: AuthService;
  admins: AdminService;
  /** Sign-in with the organisation's OpenID Connect provider. */
  oidc: OidcService;
  limits: DeviceLimits;
  catalog: Catalog;
  groups: GroupService;
  devices: DeviceService;
  enrolment: EnrolmentService;
  tasks: TaskService;
  runs: RunService;
  events: EventService;
  secrets: SecretService;
  agents: AgentService;
  plugins: PluginRegistry;
  settings: SettingsStore;
  presence: Presence;
  repository: RepositoryService;
  deployments: DeploymentService;
  push: PushService;
  live: LiveFeed;
  serverTasks: ServerTaskService;
  /** Product policies, assignments and every device's effective policy (ADR 0020). */
  policies: PolicyService;
  /** Notification rules, their deliveries and the mail server they use (ADR 0022). */
  notifications: NotificationService;
  /** Each administrator's named filters of the console's lists. */
  savedSelections: SavedSelectionService;
  /** The dashboard's monitors and trends, and each administrator's layout. */
  dashboard: DashboardService;
}
