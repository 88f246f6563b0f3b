/**
 * Notification rules and their deliveries (migration 0017, ADR 0022). Rules are few and read
 * whole (the service matches events against them in memory); deliveries are the outbox: one
 * row per action of a notification, claimed by the sending loop with a lease (leases.ts) so
 * that one instance sends each and a crashed one's claims run out and are taken again.
 *
 * The tables are declared here (with Kysely's `withTables`) rather than in schema.ts: only
 * this store reads or writes them.
 */
import type { Kysely } from 'kysely';
import type { NotificationActionKind, NotificationDeliveryState, Page, PageRequest } from '@garrison/protocol';
import { decodeCursor, encodeCursor, pageLimit } from '../paging.ts';
import type { Db } from './database.ts';
import { LeaseTable } from './leases.ts';

export interface NotificationRulesTable {
  id: string;
  name: string;
  enabled: number;
  group_id: string;
  match: string;
  threshold: string;
  throttle_minutes: number;
  actions: string;
  created_at: string;
  updated_at: string;
  created_by: string;
  last_notified_at: string | null;
}

export interface NotificationDeliveriesTable {
  id: string;
  notification_id: string;
  rule_id: string;
  rule_name: string;
  group_id: string;
  action_kind: string;
  action: string;
  target: string;
  state: string;
  test: number;
  summary: string;
  payload: string;
  event_count: number;
  suppressed: number;
  attempts: number;
  created_at: string;
  next_attempt_at: string | null;
  finished_at: string | null;
  status: number | null;
  result: string | null;
  error: string | null;
  lease_owner: string | null;
  lease_until: string | null;
}

type NotificationDatabase = {
  notification_rules: NotificationRulesTable;
  notification_deliveries: NotificationDeliveriesTable;
};

export type DeliveryRow = NotificationDeliveriesTable & { action_kind: NotificationActionKind; state: NotificationDeliveryState };

export interface DeliveryFilter {
  /** The groups the caller reads (undefined: all). */
  groupIds?: readonly string[];
  ruleId?: string;
  state?: NotificationDeliveryState;
}

export class NotificationStore {
  readonly #k: Kysely<NotificationDatabase>;
  readonly #lease: LeaseTable<NotificationDatabase, 'notification_deliveries'>;
  constructor(db: Db) {
    this.#k = db.kysely.withTables<NotificationDatabase>() as unknown as Kysely<NotificationDatabase>;
    this.#lease = new LeaseTable(this.#k, { table: 'notification_deliveries', id: 'id', owner: 'lease_owner', expiresAt: 'lease_until', held: (eb) => eb('state', '=', 'pending') });
  }

  async listRules(): Promise<NotificationRulesTable[]> {
    return this.#k.selectFrom('notification_rules').selectAll().orderBy('name').orderBy('id').execute();
  }
  async getRule(id: string): Promise<NotificationRulesTable | undefined> {
    return this.#k.selectFrom('notification_rules').selectAll().where('id', '=', id).executeTakeFirst();
  }
  async insertRule(row: NotificationRulesTable): Promise<void> {
    await this.#k.insertInto('notification_rules').values(row).execute();
  }
  async updateRule(row: NotificationRulesTable): Promise<boolean> {
    const { id, ...rest } = row;
    const r = await this.#k.updateTable('notification_rules').set(rest).where('id', '=', id).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
  async deleteRule(id: string): Promise<boolean> {
    const r = await this.#k.deleteFrom('notification_rules').where('id', '=', id).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }
  /**
   * The throttle, shared by every instance: the rule's last notification moves to `now` only if
   * the previous one is older than `quietSince` (or there was none). False: another instance
   * (or an earlier batch here) notified within the quiet period.
   */
  async takeNotifySlot(ruleId: string, now: string, quietSince: string | null): Promise<boolean> {
    let q = this.#k.updateTable('notification_rules').set({ last_notified_at: now }).where('id', '=', ruleId);
    if (quietSince !== null) q = q.where((eb) => eb.or([eb('last_notified_at', 'is', null), eb('last_notified_at', '<=', quietSince)]));
    const r = await q.executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async insertDeliveries(rows: readonly NotificationDeliveriesTable[]): Promise<void> {
    if (rows.length === 0) return;
    await this.#k.insertInto('notification_deliveries').values([...rows]).execute();
  }
  async getDeliveries(ids: readonly string[]): Promise<DeliveryRow[]> {
    if (ids.length === 0) return [];
    return (await this.#k.selectFrom('notification_deliveries').selectAll().where('id', 'in', [...ids]).execute()) as DeliveryRow[];
  }
  /** Newest first, by (created_at, id). */
  async pageDeliveries(f: DeliveryFilter, req: PageRequest): Promise<Page<DeliveryRow>> {
    const limit = pageLimit(req);
    const after = decodeCursor(req.cursor, 2);
    if (f.groupIds && f.groupIds.length === 0) return { items: [], nextCursor: null, total: 0 };
    let q = this.#k.selectFrom('notification_deliveries').selectAll();
    if (f.groupIds) q = q.where('group_id', 'in', [...f.groupIds]);
    if (f.ruleId) q = q.where('rule_id', '=', f.ruleId);
    if (f.state) q = q.where('state', '=', f.state);
    if (after) q = q.where((eb) => eb(eb.refTuple('created_at', 'id'), '<', eb.tuple(String(after[0]), String(after[1]))));
    const rows = (await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit + 1).execute()) as DeliveryRow[];
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeCursor([last.created_at, last.id]) : null };
  }

  /**
   * Claims up to `limit` deliveries that are due: each claim is a compare-and-set on the lease,
   * so of instances racing for a row exactly one gets it, and a row whose claimant died is
   * free again once its lease has run out.
   */
  async claimDue(owner: string, now: string, until: string, limit: number): Promise<DeliveryRow[]> {
    const candidates = await this.#k
      .selectFrom('notification_deliveries')
      .select('id')
      .where('state', '=', 'pending')
      .where('next_attempt_at', '<=', now)
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .orderBy('next_attempt_at')
      .limit(limit)
      .execute();
    const won: string[] = [];
    for (const { id } of candidates) {
      if (await this.#lease.claim(id, { owner, now, until }, { where: (eb) => eb.and([eb('state', '=', 'pending'), eb('next_attempt_at', '<=', now)]) })) won.push(id);
    }
    return this.getDeliveries(won);
  }
  /** Records an attempt's outcome and ends the claim; false when the claim had been lost (another instance owns the row now). */
  async finishAttempt(id: string, owner: string, set: Partial<Pick<NotificationDeliveriesTable, 'state' | 'attempts' | 'next_attempt_at' | 'finished_at' | 'status' | 'result' | 'error'>>): Promise<boolean> {
    return this.#lease.release(id, owner, { set });
  }
  async deleteDeliveriesBefore(cutoff: string): Promise<number> {
    const r = await this.#k.deleteFrom('notification_deliveries').where('created_at', '<', cutoff).where('state', '!=', 'pending').executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
