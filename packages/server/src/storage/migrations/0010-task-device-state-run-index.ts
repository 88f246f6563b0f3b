/**
 * The index on task_device_state(run_id), for the databases that ran 0008 before it had one.
 *
 * 0008 shipped without it (001f730); it was then added to 0008 itself (0d63645), which only
 * new databases run, so every database migrated in between lacks it, and there database
 * maintenance's purge of runs that are no device's latest (an anti-join on run_id) scans
 * task_device_state once per candidate run. Databases made since already have it from 0008,
 * hence `if not exists` (by name: no other index of that name was ever made). 0008 is left
 * as it now stands, since editing it back would change what new databases run a second time.
 * The lesson is kept by `landed.sha256` beside this file: landed migrations are never edited.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.createIndex('task_device_state_run').ifNotExists().on('task_device_state').column('run_id').execute();
}
