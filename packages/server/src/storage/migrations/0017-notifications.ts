/**
 * Notifications and automatic responses (issue 16, ADR 0022).
 *
 * - `notification_rules`: one row per rule; `match`, `actions` and `threshold` are JSON (read
 *   whole into memory, where events are matched). `last_notified_at` is the throttle's clock:
 *   firing is a compare-and-set on it, so that instances sharing the database throttle a rule
 *   together.
 * - `notification_deliveries`: one row per action of a notification, written before anything
 *   is sent and sent by a loop that claims due rows with a lease (`lease_owner`,
 *   `lease_until`), so that a delivery survives a restart and one instance sends it. `payload`
 *   holds what is sent (rule, events, counts) and `action` the action as it was when the
 *   notification fired. The history is listed newest first by (created_at, id) and per rule.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('notification_rules')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull())
    .addColumn('group_id', 'text', (c) => c.notNull())
    .addColumn('match', 'text', (c) => c.notNull())
    .addColumn('threshold', 'text', (c) => c.notNull())
    .addColumn('throttle_minutes', 'integer', (c) => c.notNull())
    .addColumn('actions', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('last_notified_at', 'text')
    .execute();
  await db.schema
    .createTable('notification_deliveries')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('notification_id', 'text', (c) => c.notNull())
    .addColumn('rule_id', 'text', (c) => c.notNull())
    .addColumn('rule_name', 'text', (c) => c.notNull())
    .addColumn('group_id', 'text', (c) => c.notNull())
    .addColumn('action_kind', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('test', 'integer', (c) => c.notNull())
    .addColumn('summary', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('event_count', 'integer', (c) => c.notNull())
    .addColumn('suppressed', 'integer', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('next_attempt_at', 'text')
    .addColumn('finished_at', 'text')
    .addColumn('status', 'integer')
    .addColumn('result', 'text')
    .addColumn('error', 'text')
    .addColumn('lease_owner', 'text')
    .addColumn('lease_until', 'text')
    .execute();
  await db.schema.createIndex('notification_deliveries_due').on('notification_deliveries').columns(['state', 'next_attempt_at']).execute();
  await db.schema.createIndex('notification_deliveries_created').on('notification_deliveries').columns(['created_at', 'id']).execute();
  await db.schema.createIndex('notification_deliveries_rule').on('notification_deliveries').columns(['rule_id', 'created_at', 'id']).execute();
}
