/**
 * Push installation jobs and their hosts. Credentials have no column on purpose: they live in
 * the memory of the server running the job, for as long as it runs, and nowhere else.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('push_jobs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('group_id', 'text', (c) => c.notNull())
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('options', 'text', (c) => c.notNull())
    .addColumn('token_id', 'text')
    .addColumn('host_count', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('finished_at', 'text')
    // The server instance running the job and until when it vouches for it: a job whose lease
    // ran out (its server crashed) is marked interrupted by whichever server sees it first.
    .addColumn('lease_owner', 'text')
    .addColumn('lease_expires_at', 'text')
    .execute();
  await db.schema.createIndex('push_jobs_created').on('push_jobs').columns(['created_at']).execute();
  await db.schema.createIndex('push_jobs_state').on('push_jobs').columns(['state', 'lease_expires_at']).execute();
  await db.schema
    .createTable('push_hosts')
    .addColumn('job_id', 'text', (c) => c.notNull())
    .addColumn('idx', 'integer', (c) => c.notNull())
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('port', 'integer', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('outcome', 'text')
    .addColumn('message', 'text')
    .addColumn('step', 'text')
    .addColumn('steps', 'text', (c) => c.notNull())
    .addColumn('percent', 'integer', (c) => c.notNull())
    .addColumn('exit_code', 'integer')
    .addColumn('output_tail', 'text')
    .addColumn('device_id', 'text')
    .addColumn('host_key_sha256', 'text')
    .addColumn('platform', 'text')
    .addColumn('started_at', 'text')
    .addColumn('finished_at', 'text')
    .addPrimaryKeyConstraint('push_hosts_pk', ['job_id', 'idx'])
    .execute();
}
