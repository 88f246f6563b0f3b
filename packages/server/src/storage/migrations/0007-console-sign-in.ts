/**
 * Console sign-in (issue 5): administrators get a password (scrypt hash), and console sessions
 * are API tokens of kind "session" with an expiry, so one check authenticates both.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('admins').addColumn('password_hash', 'text').execute();
  await db.schema.alterTable('admins').addColumn('password_changed_at', 'text').execute();
  await db.schema.alterTable('api_tokens').addColumn('kind', 'text', (c) => c.notNull().defaultTo('api')).execute();
  await db.schema.alterTable('api_tokens').addColumn('expires_at', 'text').execute();
}
