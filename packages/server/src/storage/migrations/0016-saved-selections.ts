/**
 * Saved selections (issue 16): an administrator's named filters of a console page (the device
 * list, the event log), like KSC's event selections.
 *
 * - `saved_selections`: one row per administrator, page and name (unique, case as given);
 *   `query` is the page's URL query as JSON text. An administrator's rows are deleted with
 *   them (by the admin store: SQLite runs without foreign keys here, so no cascade is relied on).
 * - `events_kind` on events (kind, id): the event log's kind filter, and its list of kinds,
 *   read an index instead of the whole log.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('saved_selections')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('admin_id', 'text', (c) => c.notNull())
    .addColumn('page', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('query', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('saved_selections_admin_page_name').unique().on('saved_selections').columns(['admin_id', 'page', 'name']).execute();
  await db.schema.createIndex('events_kind').on('events').columns(['kind', 'id']).execute();
}
