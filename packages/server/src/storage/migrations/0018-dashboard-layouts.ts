/**
 * Dashboard layouts (issue 16): the monitors each administrator chose for their dashboard, in
 * order. One row per administrator (`monitors` is a JSON array of monitor ids); none until
 * they choose, and the default layout is shown. Rows of administrators who no longer exist
 * are removed by the store when layouts are saved (SQLite runs without foreign keys here).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('dashboard_layouts')
    .addColumn('admin_id', 'text', (c) => c.primaryKey())
    .addColumn('monitors', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
}
