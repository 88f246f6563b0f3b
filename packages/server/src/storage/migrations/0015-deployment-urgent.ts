/**
 * Urgent deployment assignments (issue 15, ADR 0020).
 *
 * The agent holds non-urgent install and uninstall steps outside the maintenance windows of
 * its own policy (product "garrison", `maintenanceWindows`); an urgent assignment's steps, and
 * those of the dependencies and conflicts its product brings, are carried out at once.
 * `deployments.urgent` is 0/1 like `remove_conflicts`; existing assignments are not urgent.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('deployments')
    .addColumn('urgent', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}
