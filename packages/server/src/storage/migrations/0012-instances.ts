/**
 * Several server instances on one database (issue 14, ADR 0019).
 *
 * - `server_instances`: one row per running instance, with a lease it renews. An instance
 *   whose lease has run out is gone (crashed or stopped): its agents read offline.
 * - `agent_presence`: which instance each connected agent is on. A row is written when an
 *   agent connects (instance_id, online = 1) and set offline when it leaves, only by the
 *   instance it is on, so that a late disconnect on an old instance never hides the new
 *   connection. `seq` grows per instance, so that the others read only what changed since
 *   they last looked.
 * - `package_archive_chunks`: the bytes of every repository archive, by SHA-256, in chunks,
 *   so that a package checked in through one instance can be downloaded from every other
 *   (each keeps a copy on its own disk as a cache).
 * - `admins.totp_last_step`: the time step of the last second-factor code accepted, so that a
 *   code works once across every instance (it was remembered in one instance's memory).
 * - `sign_in_pending`: OpenID Connect sign-ins in progress and their one-time codes, sealed,
 *   so that the provider's callback and the console's exchange may reach any instance (they
 *   were in the memory of the instance that started the sign-in).
 * - `installation_packages`: the index of offline installation packages made by the server task
 *   (it was a folder of JSON files on the instance that made them), so every instance lists,
 *   serves and deletes them; their bytes go into `package_archive_chunks` by SHA-256.
 * - `runs_request`: a run-now stored by one instance is delivered by every other to its own
 *   connected targets, which each finds by the request id.
 */
import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../database.ts';

export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  await db.schema
    .createTable('server_instances')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('host', 'text', (c) => c.notNull())
    .addColumn('pid', 'integer', (c) => c.notNull())
    .addColumn('started_at', 'text', (c) => c.notNull())
    .addColumn('lease_until', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('agent_presence')
    .addColumn('device_id', 'text', (c) => c.primaryKey())
    .addColumn('instance_id', 'text', (c) => c.notNull())
    .addColumn('online', 'integer', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('since', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('agent_presence_instance_seq').on('agent_presence').columns(['instance_id', 'seq']).execute();
  await db.schema.alterTable('admins').addColumn('totp_last_step', 'integer').execute();
  await db.schema
    .createTable('sign_in_pending')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('sealed', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('sign_in_pending_expires').on('sign_in_pending').column('expires_at').execute();
  await db.schema
    .createTable('installation_packages')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('group_id', 'text', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('info', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('runs_request').on('runs').columns(['request_id', 'state']).execute();
  await db.schema
    .createTable('package_archive_chunks')
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('chunk', 'integer', (c) => c.notNull())
    .addColumn('data', sql.raw(dialect.binaryColumn) as never, (c) => c.notNull())
    .addPrimaryKeyConstraint('package_archive_chunks_pk', ['sha256', 'chunk'])
    .execute();
}
