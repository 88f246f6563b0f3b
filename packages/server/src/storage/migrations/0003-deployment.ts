/**
 * Product deployment: products assigned to groups (inherited down the tree, overridable),
 * and each device's deployment state per product as the last plan and install left it.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('deployments')
    .addColumn('group_id', 'text', (c) => c.notNull())
    .addColumn('product', 'text', (c) => c.notNull())
    .addColumn('branch', 'text', (c) => c.notNull())
    .addColumn('pinned_version', 'text')
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('remove_conflicts', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('deployments_pk', ['group_id', 'product'])
    .execute();
  await db.schema
    .createTable('device_products')
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('product', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('installed_version', 'text')
    .addColumn('target_version', 'text')
    .addColumn('exit_code', 'integer')
    .addColumn('detail', 'text')
    .addColumn('output_tail', 'text')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('device_products_pk', ['device_id', 'product'])
    .execute();
  await db.schema.createIndex('device_products_product').on('device_products').columns(['product', 'state']).execute();
}
