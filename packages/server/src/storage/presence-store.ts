/**
 * Running server instances and the instance each connected agent is on (migration 0012,
 * ADR 0019). Only written when several instances share the database.
 */
import { insertChunks, type ColumnTypes, type Db } from './database.ts';
import type { AgentPresenceTable } from './schema.ts';

const PRESENCE_COLUMNS: ColumnTypes<AgentPresenceTable> = { device_id: 'text', instance_id: 'text', online: 'integer', seq: 'bigint', since: 'text' };

export interface InstanceRecord {
  id: string;
  url: string;
  host: string;
  pid: number;
  startedAt: string;
  leaseUntil: string;
}

export class PresenceStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  async putInstance(i: InstanceRecord): Promise<void> {
    await this.#db.kysely
      .insertInto('server_instances')
      .values({ id: i.id, url: i.url, host: i.host, pid: i.pid, started_at: i.startedAt, lease_until: i.leaseUntil })
      .onConflict((oc) => oc.column('id').doUpdateSet({ url: i.url, lease_until: i.leaseUntil }))
      .execute();
  }
  /** Extends the instance's lease; false when its row is gone (another instance took it for dead). */
  async renewInstance(id: string, leaseUntil: string): Promise<boolean> {
    const r = await this.#db.kysely.updateTable('server_instances').set({ lease_until: leaseUntil }).where('id', '=', id).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
  async listInstances(): Promise<InstanceRecord[]> {
    const rows = await this.#db.kysely.selectFrom('server_instances').selectAll().orderBy('started_at').execute();
    return rows.map((r) => ({ id: r.id, url: r.url, host: r.host, pid: Number(r.pid), startedAt: r.started_at, leaseUntil: r.lease_until }));
  }
  /** Removes instances and their presence rows (an instance leaving, or ones long dead). */
  async removeInstances(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#db.kysely.transaction().execute(async (trx) => {
      await trx.deleteFrom('agent_presence').where('instance_id', 'in', ids).execute();
      await trx.deleteFrom('server_instances').where('id', 'in', ids).execute();
    });
  }

  /**
   * Records agents that came online on this instance and those that left it, with one seq for
   * the batch. Leaving only touches the device's row while it is still this instance's: a late
   * disconnect never hides a connection the agent has since opened elsewhere.
   */
  async writePresence(instanceId: string, seq: number, online: readonly string[], offline: readonly string[], at: string): Promise<void> {
    await this.#db.kysely.transaction().execute(async (trx) => {
      const rows: AgentPresenceTable[] = online.map((id) => ({ device_id: id, instance_id: instanceId, online: 1, seq, since: at }));
      for (const into of insertChunks(this.#db.dialect, rows, PRESENCE_COLUMNS)) {
        await into(trx.insertInto('agent_presence'))
          .onConflict((oc) => oc.column('device_id').doUpdateSet((eb) => ({ instance_id: eb.ref('excluded.instance_id'), online: 1, seq: eb.ref('excluded.seq'), since: eb.ref('excluded.since') })))
          .execute();
      }
      for (let i = 0; i < offline.length; i += 5000) {
        await trx
          .updateTable('agent_presence')
          .set({ online: 0, seq, since: at })
          .where('instance_id', '=', instanceId)
          .where('device_id', 'in', offline.slice(i, i + 5000))
          .execute();
      }
    });
  }
  /** What an instance wrote after `seq`: its agents that came online or left. */
  async changesOf(instanceId: string, afterSeq: number): Promise<{ deviceId: string; online: boolean; seq: number }[]> {
    const rows = await this.#db.kysely.selectFrom('agent_presence').select(['device_id', 'online', 'seq']).where('instance_id', '=', instanceId).where('seq', '>', afterSeq).execute();
    return rows.map((r) => ({ deviceId: r.device_id, online: Number(r.online) === 1, seq: Number(r.seq) }));
  }
}
