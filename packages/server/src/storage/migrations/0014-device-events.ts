/**
 * Policy compliance and device events (issue 15, ADR 0020).
 *
 * - `device_policy_status`: each device's last policy report per product (the revision it
 *   applied, compliant / drifted / failed, the drift found as JSON, the reason of a failure),
 *   written in batches by the agent path and read by the compliance listing. One row per
 *   device and product; a deleted device's rows are deleted with it (by the device store:
 *   SQLite runs without foreign keys here, so no cascade is relied on).
 * - `events.event_id`: the id an agent gives a device event (a real-time detection, a locked
 *   setting put back). The agent resends an event until it is acknowledged, so the server
 *   stores it once per device and id: a unique index on (device_id, event_id), partial so
 *   that the server's own events (no event id) cost it nothing. It is per device, so that a
 *   device cannot keep another's events out by sending their ids first.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('device_policy_status')
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('product', 'text', (c) => c.notNull())
    .addColumn('applied_revision', 'text')
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('drift', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('reported_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('device_policy_status_pk', ['device_id', 'product'])
    .execute();
  await db.schema.createIndex('device_policy_status_product').on('device_policy_status').columns(['product', 'state']).execute();
  await db.schema.alterTable('events').addColumn('event_id', 'text').execute();
  await db.schema
    .createIndex('events_device_event_id')
    .unique()
    .on('events')
    .columns(['device_id', 'event_id'])
    .where(sql.ref('event_id'), 'is not', null)
    .execute();
}
