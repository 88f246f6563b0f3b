/**
 * Product policies, their revisions and their assignments to groups (migration 0013, ADR 0020),
 * and the devices' reports of what they applied (device_policy_status, migration 0014, written
 * by the agent path; read here for compliance).
 *
 * Policies and assignments are few (hundreds, not the fleet's size): the policy service keeps
 * them all in memory, so this store reads them whole and writes one at a time, with
 * compare-and-set on the revision so that two administrators saving at once cannot overwrite
 * each other.
 */
import type { Policy, PolicyAssignment, PolicyDrift, PolicyProfile } from '@garrison/protocol';
import type { Db } from './database.ts';
import type { PoliciesTable } from './schema.ts';

export interface StoredPolicy extends Policy {
  createdBy: string;
  updatedBy: string;
}

export interface PolicyRevisionRecord {
  revision: number;
  changedAt: string;
  changedBy: string;
  /** The export document of that revision, as JSON. */
  document: unknown;
}

export interface DevicePolicyStatusRecord {
  deviceId: string;
  product: string;
  appliedRevision: string | null;
  state: string;
  drift: PolicyDrift[];
  reason: string | null;
  reportedAt: string;
}

function toPolicy(r: PoliciesTable): StoredPolicy {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    product: r.product,
    revision: r.revision,
    settings: JSON.parse(r.settings) as Record<string, unknown>,
    locked: JSON.parse(r.locked) as string[],
    profiles: JSON.parse(r.profiles) as PolicyProfile[],
    createdAt: r.created_at,
    createdBy: r.created_by,
    updatedAt: r.updated_at,
    updatedBy: r.updated_by,
  };
}

function toRow(p: StoredPolicy): PoliciesTable {
  return {
    id: p.id,
    name: p.name,
    description: p.description,
    product: p.product,
    revision: p.revision,
    settings: JSON.stringify(p.settings),
    locked: JSON.stringify(p.locked),
    profiles: JSON.stringify(p.profiles),
    created_at: p.createdAt,
    created_by: p.createdBy,
    updated_at: p.updatedAt,
    updated_by: p.updatedBy,
  };
}

export class PolicyStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  async listPolicies(): Promise<StoredPolicy[]> {
    const rows = await this.#db.kysely.selectFrom('policies').selectAll().orderBy('name').orderBy('id').execute();
    return rows.map(toPolicy);
  }
  async listAssignments(): Promise<PolicyAssignment[]> {
    const rows = await this.#db.kysely.selectFrom('policy_assignments').selectAll().orderBy('group_id').orderBy('product').execute();
    return rows.map((r) => ({ groupId: r.group_id, product: r.product, policyId: r.policy_id, blockInheritance: r.block_inheritance === 1 }));
  }

  /** Stores a new policy (revision 1) and its first revision, in one transaction. */
  async insertPolicy(p: StoredPolicy, document: unknown): Promise<void> {
    await this.#db.kysely.transaction().execute(async (trx) => {
      await trx.insertInto('policies').values(toRow(p)).execute();
      await trx.insertInto('policy_revisions').values({ policy_id: p.id, revision: p.revision, document: JSON.stringify(document), changed_at: p.updatedAt, changed_by: p.updatedBy }).execute();
    });
  }

  /** Writes the next revision only if the stored one is still `expectedRevision`; false when it is not (or the policy is gone). */
  async replacePolicy(p: StoredPolicy, expectedRevision: number, document: unknown): Promise<boolean> {
    return this.#db.kysely.transaction().execute(async (trx) => {
      const { id, created_at: _c, created_by: _b, ...rest } = toRow(p);
      const r = await trx.updateTable('policies').set(rest).where('id', '=', id).where('revision', '=', expectedRevision).executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) return false;
      await trx.insertInto('policy_revisions').values({ policy_id: p.id, revision: p.revision, document: JSON.stringify(document), changed_at: p.updatedAt, changed_by: p.updatedBy }).execute();
      return true;
    });
  }

  /** Deletes the policy and its history, only while no group has it assigned (in one statement, so a concurrent assignment cannot be left dangling). */
  async deletePolicyIfUnassigned(id: string): Promise<boolean> {
    return this.#db.kysely.transaction().execute(async (trx) => {
      const r = await trx
        .deleteFrom('policies')
        .where('id', '=', id)
        .where((eb) => eb.not(eb.exists(eb.selectFrom('policy_assignments').select('group_id').where('policy_id', '=', id))))
        .executeTakeFirst();
      if (Number(r.numDeletedRows) !== 1) return false;
      await trx.deleteFrom('policy_revisions').where('policy_id', '=', id).execute();
      return true;
    });
  }

  /** Revisions older than `before` (all without it), newest first, at most `limit`; and how many the policy has. */
  async pageRevisions(policyId: string, q: { before?: number; limit: number }): Promise<{ rows: PolicyRevisionRecord[]; total: number }> {
    let query = this.#db.kysely.selectFrom('policy_revisions').selectAll().where('policy_id', '=', policyId);
    if (q.before !== undefined) query = query.where('revision', '<', q.before);
    const rows = await query.orderBy('revision', 'desc').limit(q.limit).execute();
    const count = await this.#db.kysely.selectFrom('policy_revisions').select((eb) => eb.fn.countAll<number>().as('n')).where('policy_id', '=', policyId).executeTakeFirst();
    return { rows: rows.map((r) => ({ revision: r.revision, changedAt: r.changed_at, changedBy: r.changed_by, document: JSON.parse(r.document) as unknown })), total: Number(count?.n ?? 0) };
  }
  async listRevisions(policyId: string): Promise<PolicyRevisionRecord[]> {
    const rows = await this.#db.kysely.selectFrom('policy_revisions').selectAll().where('policy_id', '=', policyId).orderBy('revision', 'desc').execute();
    return rows.map((r) => ({ revision: r.revision, changedAt: r.changed_at, changedBy: r.changed_by, document: JSON.parse(r.document) as unknown }));
  }

  /**
   * Sets a group's assignment for a product. With a policy, only if that policy still exists
   * (a concurrent delete wins cleanly): false when it does not.
   */
  async putAssignment(a: PolicyAssignment): Promise<boolean> {
    return this.#db.kysely.transaction().execute(async (trx) => {
      if (a.policyId !== null) {
        const p = await trx.selectFrom('policies').select('id').where('id', '=', a.policyId).where('product', '=', a.product).executeTakeFirst();
        if (!p) return false;
      }
      const values = { group_id: a.groupId, product: a.product, policy_id: a.policyId, block_inheritance: a.blockInheritance ? 1 : 0 };
      await trx
        .insertInto('policy_assignments')
        .values(values)
        .onConflict((oc) => oc.columns(['group_id', 'product']).doUpdateSet({ policy_id: a.policyId, block_inheritance: values.block_inheritance }))
        .execute();
      return true;
    });
  }
  async deleteAssignment(groupId: string, product: string): Promise<boolean> {
    const r = await this.#db.kysely.deleteFrom('policy_assignments').where('group_id', '=', groupId).where('product', '=', product).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }
  /** A deleted group's assignments go with it. */
  async deleteAssignmentsOfGroup(groupId: string): Promise<number> {
    const r = await this.#db.kysely.deleteFrom('policy_assignments').where('group_id', '=', groupId).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  /** The devices' last reports for a product (all devices when `deviceIds` is absent). */
  async statusOf(product: string, deviceIds?: readonly string[]): Promise<DevicePolicyStatusRecord[]> {
    if (deviceIds !== undefined && deviceIds.length === 0) return [];
    const out: DevicePolicyStatusRecord[] = [];
    const chunks = deviceIds === undefined ? [undefined] : chunk(deviceIds, 5000);
    for (const ids of chunks) {
      let q = this.#db.kysely.selectFrom('device_policy_status').selectAll().where('product', '=', product);
      if (ids) q = q.where('device_id', 'in', ids);
      for (const r of await q.execute()) out.push(toStatus(r));
    }
    return out;
  }
  /** One device's reports, every product. */
  async statusOfDevice(deviceId: string): Promise<DevicePolicyStatusRecord[]> {
    const rows = await this.#db.kysely.selectFrom('device_policy_status').selectAll().where('device_id', '=', deviceId).orderBy('product').execute();
    return rows.map(toStatus);
  }
}

function toStatus(r: { device_id: string; product: string; applied_revision: string | null; state: string; drift: string | null; reason: string | null; reported_at: string }): DevicePolicyStatusRecord {
  let drift: PolicyDrift[] = [];
  try {
    drift = r.drift ? (JSON.parse(r.drift) as PolicyDrift[]) : [];
  } catch {
    drift = [];
  }
  return { deviceId: r.device_id, product: r.product, appliedRevision: r.applied_revision, state: r.state, drift, reason: r.reason, reportedAt: r.reported_at };
}

function chunk<T>(list: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}
