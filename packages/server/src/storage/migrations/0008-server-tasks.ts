/**
 * Server tasks (issue 6): definitions scheduled like client tasks, and their runs. A run row
 * is also the unit of work that server instances claim: `owner` and `lease_until` say which
 * instance runs it and until when that claim holds, so that a run whose instance died is
 * taken over (ADR 0012).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('server_tasks')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('settings', 'text', (c) => c.notNull())
    .addColumn('schedule', 'text', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull())
    .addColumn('revision', 'integer', (c) => c.notNull())
    .addColumn('next_run_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('deleted_at', 'text')
    .execute();
  await db.schema.createIndex('server_tasks_next_run').on('server_tasks').columns(['next_run_at']).execute();
  await db.schema
    .createTable('server_task_runs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('task_id', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('cause', 'text', (c) => c.notNull())
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('percent', 'integer')
    .addColumn('message', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('not_before', 'text', (c) => c.notNull())
    .addColumn('started_at', 'text')
    .addColumn('ended_at', 'text')
    .addColumn('owner', 'text')
    .addColumn('lease_until', 'text')
    .addColumn('stop_requested_at', 'text')
    .addColumn('summary', 'text')
    .addColumn('result', 'text')
    .addColumn('output_tail', 'text')
    .addColumn('created_by', 'text')
    .execute();
  await db.schema.createIndex('server_task_runs_task').on('server_task_runs').columns(['task_id', 'created_at']).execute();
  await db.schema.createIndex('server_task_runs_state').on('server_task_runs').columns(['state', 'not_before']).execute();
  // Database maintenance purges runs that are no device's latest: without this index SQLite
  // scanned task_device_state once per candidate run.
  await db.schema.createIndex('task_device_state_run').on('task_device_state').column('run_id').execute();
}
