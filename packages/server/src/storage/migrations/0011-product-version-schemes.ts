/**
 * The version scheme of each product (ADR 0015), one row per product.
 *
 * All packages of a product must name one scheme, since deployment orders the versions
 * devices report by it. Checking the stored packages before inserting a new one is a read
 * before a write: two first check-ins of one product with different schemes could both pass.
 * The upload now claims the product's scheme in the transaction that inserts the package
 * (insert, do nothing on conflict, read back), so the second one reads the first's scheme and
 * is refused. A product's row goes when its last package is deleted. Products stored before
 * this migration get their row at their next check-in (their packages are checked as before).
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('product_version_schemes')
    .addColumn('product', 'text', (c) => c.primaryKey())
    .addColumn('scheme', 'text', (c) => c.notNull())
    .execute();
}
