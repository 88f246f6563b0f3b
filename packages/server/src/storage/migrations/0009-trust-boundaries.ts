/**
 * Trust boundaries (issue 12, ADR 0013).
 *
 * - Administrators hold grants: a role on a group subtree. Built-in roles are defined in code
 *   (@garrison/protocol BUILTIN_ROLES) so that their permission sets can grow with the product
 *   without a data migration; `roles` holds the custom ones. Existing administrators keep what
 *   they could do: an unscoped one becomes main administrator on the root group, a scoped one
 *   administrator on its group. The old `role` and `scope_group_id` columns stay (forward
 *   only) but are no longer read.
 * - Administrators can be disabled, have a second factor (TOTP; the secret encrypted with the
 *   secret-store key) and an OpenID Connect subject.
 * - Audit events record through what (console, CLI, API token) and from where.
 * - Secrets belong to a group (null: the root): who may set or use them, and which devices
 *   may receive them.
 * - Devices hold an Ed25519 public key made at enrolment: re-registering a credential needs a
 *   signature by its private key over a challenge the server issued, which a stolen bearer
 *   credential does not give.
 * - A credential seen from another machine identity is a pending duplicate that an
 *   administrator approves (or rejects), never a device made without bound.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('roles')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('permissions', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('admin_grants')
    .addColumn('admin_id', 'text', (c) => c.notNull())
    .addColumn('role_id', 'text', (c) => c.notNull())
    .addColumn('group_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('admin_grants_pk', ['admin_id', 'role_id', 'group_id'])
    .execute();
  await db.schema.createIndex('admin_grants_role').on('admin_grants').column('role_id').execute();
  await db.schema.createIndex('admin_grants_group').on('admin_grants').column('group_id').execute();

  for (const column of ['display_name', 'email', 'disabled_at', 'totp_secret', 'totp_enabled_at', 'oidc_issuer', 'oidc_subject', 'last_sign_in_at']) {
    await db.schema.alterTable('admins').addColumn(column, 'text').execute();
  }
  await db.schema.createIndex('admins_oidc').on('admins').columns(['oidc_issuer', 'oidc_subject']).execute();

  for (const column of ['actor_id', 'actor_via', 'actor_address']) await db.schema.alterTable('events').addColumn(column, 'text').execute();
  await db.schema.alterTable('secrets').addColumn('group_id', 'text').execute();
  for (const column of ['public_key', 'rotate_challenge']) await db.schema.alterTable('devices').addColumn(column, 'text').execute();

  await db.schema
    .createTable('device_duplicates')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('machine_identity', 'text', (c) => c.notNull())
    .addColumn('hostname', 'text', (c) => c.notNull())
    .addColumn('inventory', 'text', (c) => c.notNull())
    .addColumn('remote_address', 'text')
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('first_seen_at', 'text', (c) => c.notNull())
    .addColumn('last_seen_at', 'text', (c) => c.notNull())
    .addColumn('seen_count', 'integer', (c) => c.notNull())
    .addColumn('new_device_id', 'text')
    .addColumn('decided_by', 'text')
    .addColumn('decided_at', 'text')
    .addUniqueConstraint('device_duplicates_identity', ['device_id', 'machine_identity'])
    .execute();
  await db.schema.createIndex('device_duplicates_state').on('device_duplicates').columns(['state', 'last_seen_at']).execute();

  // Existing administrators keep exactly what they could do.
  const root = await sql<{ id: string }>`select id from groups where parent_id is null order by id limit 1`.execute(db);
  const rootId = root.rows[0]?.id ?? 'root';
  const admins = await sql<{ id: string; scope_group_id: string | null; created_at: string }>`select id, scope_group_id, created_at from admins`.execute(db);
  for (const a of admins.rows) {
    const role = a.scope_group_id === null ? 'main-administrator' : 'administrator';
    await sql`insert into admin_grants (admin_id, role_id, group_id, created_at) values (${a.id}, ${role}, ${a.scope_group_id ?? rootId}, ${a.created_at})`.execute(db);
  }
}
