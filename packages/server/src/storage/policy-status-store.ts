/**
 * What devices report of their policies (device_policy_status, migration 0014): per device and
 * product, the revision applied, the state and the drift found. Written by the agent path in
 * batches, one upsert per batch whatever the fleet's size (rows of many check-ins together);
 * read by the policy service for compliance (PolicyStore.statusOf). A deleted device's rows are
 * deleted with it (DeviceStore.deleteDevice).
 */
import { insertChunks, type ColumnTypes, type Db } from './database.ts';
import type { DevicePolicyStatusTable } from './schema.ts';

const STATUS_COLUMNS: ColumnTypes<DevicePolicyStatusTable> = {
  device_id: 'text',
  product: 'text',
  applied_revision: 'text',
  state: 'text',
  drift: 'text',
  reason: 'text',
  reported_at: 'text',
};

export type PolicyStatusRow = DevicePolicyStatusTable;

export class PolicyStatusStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  /** Stores each device's latest report per product (one row per device and product in `rows`), in one transaction. */
  async upsert(rows: readonly PolicyStatusRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.#db.kysely.transaction().execute(async (trx) => {
      for (const into of insertChunks(this.#db.dialect, rows, STATUS_COLUMNS)) {
        await into(trx.insertInto('device_policy_status'))
          .onConflict((oc) =>
            oc.columns(['device_id', 'product']).doUpdateSet((eb) => ({
              applied_revision: eb.ref('excluded.applied_revision'),
              state: eb.ref('excluded.state'),
              drift: eb.ref('excluded.drift'),
              reason: eb.ref('excluded.reason'),
              reported_at: eb.ref('excluded.reported_at'),
            })),
          )
          .execute();
      }
    });
  }
}
