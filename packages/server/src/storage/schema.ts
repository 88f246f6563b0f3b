/**
 * The tables as Kysely sees them. Both dialects store the same shapes: times are UTC ISO-8601
 * text (sortable, identical in SQLite and PostgreSQL), booleans are 0/1 integers, and
 * structured values (settings, schedules, scopes, inventory lists) are JSON text. See
 * docs/adr/0003-storage.md for why we chose the common denominator over native types.
 */
import type { Generated } from 'kysely';

export interface GroupsTable {
  id: string;
  parent_id: string | null;
  name: string;
  block_inheritance: number;
  check_in_interval_minutes: number | null;
  policy_enforcement_minutes: number | null;
  created_at: string;
  updated_at: string;
}

export interface DevicesTable {
  id: string;
  group_id: string;
  name: string;
  hostname: string;
  os_platform: string;
  os_name: string;
  os_version: string;
  arch: string;
  addresses: string;
  agent_version: string;
  time_zone: string;
  products: string;
  tags: string;
  credential_hash: string;
  credential_revoked_at: string | null;
  credential_prev_hash: string | null;
  credential_rotated_at: string | null;
  rotate_requested_at: string | null;
  machine_identity: string | null;
  uninstall_requested_at: string | null;
  uninstalled_at: string | null;
  cloned_from: string | null;
  /** The device's Ed25519 public key (SPKI, base64url), made at enrolment. */
  public_key: string | null;
  /** The challenge a rotation must sign, issued with the rotation request. */
  rotate_challenge: string | null;
  enrolled_at: string;
  last_contact_at: string | null;
  updated_at: string;
}

export interface EnrolmentTokensTable {
  id: string;
  group_id: string;
  name: string;
  token_hash: string;
  expires_at: string | null;
  max_uses: number | null;
  uses: number;
  revoked_at: string | null;
  created_at: string;
  created_by: string;
}

export interface AdminsTable {
  id: string;
  name: string;
  role: string;
  /** Null: the whole tree. Kept so that roles scoped to groups can follow. */
  scope_group_id: string | null;
  created_at: string;
  /** scrypt$N$r$p$salt$hash (base64url); null: no password, API tokens only. */
  password_hash: string | null;
  password_changed_at: string | null;
  display_name: string | null;
  email: string | null;
  disabled_at: string | null;
  /** The TOTP secret, encrypted with the secret-store key; enabled once confirmed. */
  totp_secret: string | null;
  totp_enabled_at: string | null;
  /** Migration 0012: the time step of the last code accepted (a code works once, on every instance). */
  totp_last_step?: number | null;
  oidc_issuer: string | null;
  oidc_subject: string | null;
  last_sign_in_at: string | null;
}

export interface RolesTable {
  id: string;
  name: string;
  description: string;
  /** JSON array of permissions. */
  permissions: string;
  created_at: string;
  updated_at: string;
}

export interface AdminGrantsTable {
  admin_id: string;
  role_id: string;
  group_id: string;
  created_at: string;
}

export interface DeviceDuplicatesTable {
  id: string;
  /** The device whose credential the other machine presented. */
  device_id: string;
  machine_identity: string;
  hostname: string;
  inventory: string;
  remote_address: string | null;
  /** pending | approved | rejected */
  state: string;
  first_seen_at: string;
  last_seen_at: string;
  seen_count: number;
  new_device_id: string | null;
  decided_by: string | null;
  decided_at: string | null;
}

export interface ApiTokensTable {
  id: string;
  admin_id: string;
  name: string;
  token_hash: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
  /** "api" (made by an administrator, no expiry) or "session" (a console sign-in). */
  kind: Generated<string>;
  expires_at: string | null;
}

export interface TasksTable {
  id: string;
  name: string;
  description: string;
  product: string;
  type: string;
  settings: string;
  schedule: string;
  scope: string;
  scope_type: string;
  scope_group_id: string | null;
  scope_device_id: string | null;
  enabled: number;
  revision: number;
  origin: string;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
}

export interface RunsTable {
  id: string;
  task_id: string;
  device_id: string;
  request_id: string | null;
  state: string;
  percent: number | null;
  attempt: number;
  seq: number;
  cause: string;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  exit_code: number | null;
  reason: string | null;
  output_tail: string | null;
  expires_at: string | null;
  updated_at: string;
}

/** The latest run of each (task, device): what progress counts. */
export interface TaskDeviceStateTable {
  task_id: string;
  device_id: string;
  run_id: string;
  run_created_at: string;
  state: string;
  updated_at: string;
}

export interface RunRequestsTable {
  id: string;
  task_id: string;
  created_at: string;
  expires_at: string;
  created_by: string;
  target_count: number;
}

export interface EventsTable {
  id: Generated<number>;
  time: string;
  severity: string;
  kind: string;
  message: string;
  actor: string | null;
  device_id: string | null;
  group_id: string | null;
  task_id: string | null;
  run_id: string | null;
  product: string | null;
  data: string | null;
  actor_id: string | null;
  /** console | cli | api-token | agent | system */
  actor_via: string | null;
  actor_address: string | null;
  /** Migration 0014: the agent's id of a device event (unique per device); null for every other event. */
  event_id: string | null;
}

export interface SecretsTable {
  name: string;
  ciphertext: string;
  description: string;
  created_at: string;
  updated_at: string;
  /** The group the secret belongs to; null: the root. */
  group_id: string | null;
}

export interface ServerSettingsTable {
  key: string;
  value: string;
}

export interface PackagesTable {
  id: string;
  product: string;
  version: string;
  kind: string;
  platforms: string;
  manifest: string;
  sha256: string;
  signature: string;
  size: number;
  branch: string | null;
  created_at: string;
  created_by: string;
}
/** One version scheme per product (migration 0011, ADR 0015). */
export interface ProductVersionSchemesTable {
  product: string;
  scheme: string;
}

export interface DeploymentsTable {
  group_id: string;
  product: string;
  branch: string;
  pinned_version: string | null;
  action: string;
  remove_conflicts: number;
  rollout: string | null;
  /** 0/1: the assignment's steps ignore the device's maintenance windows (0015). */
  urgent: Generated<number>;
  created_at: string;
  updated_at: string;
}

export interface DeviceProductsTable {
  device_id: string;
  product: string;
  state: string;
  installed_version: string | null;
  target_version: string | null;
  exit_code: number | null;
  detail: string | null;
  output_tail: string | null;
  updated_at: string;
}

export interface RolloutsTable {
  group_id: string;
  product: string;
  target_version: string;
  phase: number;
  state: string;
  reason: string | null;
  started_at: string;
  updated_at: string;
}

export interface ServerTasksTable {
  id: string;
  name: string;
  description: string;
  type: string;
  settings: string;
  schedule: string;
  enabled: number;
  revision: number;
  next_run_at: string | null;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
}

export interface ServerTaskRunsTable {
  id: string;
  task_id: string;
  state: string;
  cause: string;
  attempt: number;
  percent: number | null;
  message: string | null;
  created_at: string;
  /** A pending run is not claimed before this time (randomization, retries, missed-run delay). */
  not_before: string;
  started_at: string | null;
  ended_at: string | null;
  /** The server instance running it, and until when that claim holds unless renewed. */
  owner: string | null;
  lease_until: string | null;
  stop_requested_at: string | null;
  summary: string | null;
  result: string | null;
  output_tail: string | null;
  created_by: string | null;
}

/**
 * Tables about the processes running now, not data: a backup carries none of their rows
 * (a restored database has no instance running, and its agents are offline until they connect).
 */
export const RUNTIME_TABLES: readonly string[] = ['server_instances', 'agent_presence', 'sign_in_pending'];

/** Migration 0012: running server instances and their leases. */
export interface ServerInstancesTable {
  id: string;
  url: string;
  host: string;
  pid: number;
  started_at: string;
  lease_until: string;
}
/** Migration 0012: the instance each connected agent is on. */
export interface AgentPresenceTable {
  device_id: string;
  instance_id: string;
  online: number;
  /** Grows per instance: the others read what changed since the highest they saw. */
  seq: number | string;
  since: string;
}
/** Migration 0012: repository archives in the database, by SHA-256, in chunks. */
export interface PackageArchiveChunksTable {
  sha256: string;
  chunk: number;
  data: Buffer;
}

/** Migration 0012: sign-ins in progress (OpenID Connect state, one-time codes), sealed. */
export interface SignInPendingTable {
  key: string;
  kind: string;
  sealed: string;
  expires_at: string;
}

/** Migration 0012: the index of offline installation packages (`info` is InstallationPackageInfo as JSON). */
export interface InstallationPackagesTable {
  name: string;
  group_id: string;
  sha256: string;
  info: string;
  created_at: string;
}

/** Migration 0013: product policies (`settings`, `locked`, `profiles` are JSON text). */
export interface PoliciesTable {
  id: string;
  name: string;
  description: string;
  product: string;
  revision: number;
  settings: string;
  locked: string;
  profiles: string;
  created_at: string;
  created_by: string;
  updated_at: string;
  updated_by: string;
}

/** Migration 0013: every revision of a policy, as its export document (JSON). */
export interface PolicyRevisionsTable {
  policy_id: string;
  revision: number;
  document: string;
  changed_at: string;
  changed_by: string;
}

/** Migration 0013: what a group says about a product's policy (primary key group + product). */
export interface PolicyAssignmentsTable {
  group_id: string;
  product: string;
  policy_id: string | null;
  block_inheritance: number;
}

/** Migration 0014: each device's last policy report per product (`drift` is JSON). */
export interface DevicePolicyStatusTable {
  device_id: string;
  product: string;
  applied_revision: string | null;
  state: string;
  drift: string;
  reason: string | null;
  reported_at: string;
}

/** Migration 0016: an administrator's named filters of a console page (`query` is JSON). */
export interface SavedSelectionsTable {
  id: string;
  admin_id: string;
  page: string;
  name: string;
  query: string;
  created_at: string;
}

export interface Database {
  saved_selections: SavedSelectionsTable;
  policies: PoliciesTable;
  policy_revisions: PolicyRevisionsTable;
  policy_assignments: PolicyAssignmentsTable;
  device_policy_status: DevicePolicyStatusTable;
  installation_packages: InstallationPackagesTable;
  sign_in_pending: SignInPendingTable;
  server_instances: ServerInstancesTable;
  agent_presence: AgentPresenceTable;
  package_archive_chunks: PackageArchiveChunksTable;
  server_tasks: ServerTasksTable;
  server_task_runs: ServerTaskRunsTable;
  rollouts: RolloutsTable;
  deployments: DeploymentsTable;
  device_products: DeviceProductsTable;
  packages: PackagesTable;
  product_version_schemes: ProductVersionSchemesTable;
  groups: GroupsTable;
  devices: DevicesTable;
  enrolment_tokens: EnrolmentTokensTable;
  admins: AdminsTable;
  roles: RolesTable;
  admin_grants: AdminGrantsTable;
  device_duplicates: DeviceDuplicatesTable;
  api_tokens: ApiTokensTable;
  tasks: TasksTable;
  runs: RunsTable;
  task_device_state: TaskDeviceStateTable;
  run_requests: RunRequestsTable;
  events: EventsTable;
  secrets: SecretsTable;
  server_settings: ServerSettingsTable;
}
