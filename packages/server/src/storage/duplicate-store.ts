import type { DeviceDuplicateView, Inventory } from '@garrison/protocol';
import type { Db } from './database.ts';
import type { DeviceDuplicatesTable } from './schema.ts';

/** A machine that presented another device's credential (a cloned image, or a stolen credential). */
export type DeviceDuplicate = DeviceDuplicateView;

function toDuplicate(r: DeviceDuplicatesTable): DeviceDuplicate {
  return {
    id: r.id,
    deviceId: r.device_id,
    machineIdentity: r.machine_identity,
    hostname: r.hostname,
    inventory: JSON.parse(r.inventory) as Inventory,
    remoteAddress: r.remote_address,
    state: r.state as DeviceDuplicate['state'],
    firstSeenAt: r.first_seen_at,
    lastSeenAt: r.last_seen_at,
    seenCount: Number(r.seen_count),
    newDeviceId: r.new_device_id,
    decidedBy: r.decided_by,
    decidedAt: r.decided_at,
  };
}

export class DuplicateStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async find(deviceId: string, machineIdentity: string): Promise<DeviceDuplicate | undefined> {
    const r = await this.#db.kysely.selectFrom('device_duplicates').selectAll().where('device_id', '=', deviceId).where('machine_identity', '=', machineIdentity).executeTakeFirst();
    return r && toDuplicate(r);
  }
  async get(id: string): Promise<DeviceDuplicate | undefined> {
    const r = await this.#db.kysely.selectFrom('device_duplicates').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toDuplicate(r);
  }
  async countFor(deviceId: string): Promise<number> {
    const r = await this.#db.kysely.selectFrom('device_duplicates').select((eb) => eb.fn.countAll<number>().as('n')).where('device_id', '=', deviceId).executeTakeFirstOrThrow();
    return Number(r.n);
  }
  /** Inserts a pending duplicate; false when another check-in recorded the same one first. */
  async insertPending(d: { id: string; deviceId: string; machineIdentity: string; inventory: Inventory; remoteAddress: string | null; at: string }): Promise<boolean> {
    const r = await this.#db.kysely
      .insertInto('device_duplicates')
      .values({
        id: d.id,
        device_id: d.deviceId,
        machine_identity: d.machineIdentity,
        hostname: d.inventory.hostname,
        inventory: JSON.stringify(d.inventory),
        remote_address: d.remoteAddress,
        state: 'pending',
        first_seen_at: d.at,
        last_seen_at: d.at,
        seen_count: 1,
        new_device_id: null,
        decided_by: null,
        decided_at: null,
      })
      .onConflict((oc) => oc.columns(['device_id', 'machine_identity']).doNothing())
      .returning('id')
      .executeTakeFirst();
    return r !== undefined;
  }
  async seen(id: string, at: string): Promise<void> {
    await this.#db.kysely.updateTable('device_duplicates').set((eb) => ({ last_seen_at: at, seen_count: eb('seen_count', '+', 1) })).where('id', '=', id).execute();
  }
  /** Decides a pending duplicate (compare-and-set: false when it was decided meanwhile). */
  async decide(id: string, state: 'approved' | 'rejected', by: string, at: string, newDeviceId: string | null): Promise<boolean> {
    const r = await this.#db.kysely.updateTable('device_duplicates').set({ state, decided_by: by, decided_at: at, new_device_id: newDeviceId }).where('id', '=', id).where('state', '=', 'pending').executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
  /** Rejects every pending duplicate of these devices (their credential was revoked). */
  async rejectPendingOf(deviceIds: readonly string[], by: string, at: string): Promise<void> {
    if (deviceIds.length) await this.#db.kysely.updateTable('device_duplicates').set({ state: 'rejected', decided_by: by, decided_at: at }).where('device_id', 'in', [...deviceIds]).where('state', '=', 'pending').execute();
  }
  /** A page, newest first by when the machine was first seen: keyset after (first_seen_at, id). */
  async page(filter: { state?: string; deviceIds?: string[]; after: [string, string] | null; limit: number }): Promise<DeviceDuplicate[]> {
    let q = this.#db.kysely.selectFrom('device_duplicates').selectAll();
    if (filter.state) q = q.where('state', '=', filter.state);
    if (filter.deviceIds) q = q.where('device_id', 'in', filter.deviceIds.length ? filter.deviceIds : ['']);
    const after = filter.after;
    if (after) q = q.where((eb) => eb(eb.refTuple('first_seen_at', 'id'), '<', eb.tuple(after[0], after[1])));
    return (await q.orderBy('first_seen_at', 'desc').orderBy('id', 'desc').limit(filter.limit).execute()).map(toDuplicate);
  }
  async list(filter: { state?: string; deviceIds?: string[]; limit?: number }): Promise<DeviceDuplicate[]> {
    let q = this.#db.kysely.selectFrom('device_duplicates').selectAll();
    if (filter.state) q = q.where('state', '=', filter.state);
    if (filter.deviceIds) q = q.where('device_id', 'in', filter.deviceIds.length ? filter.deviceIds : ['']);
    return (await q.orderBy('last_seen_at', 'desc').limit(filter.limit ?? 500).execute()).map(toDuplicate);
  }
}
