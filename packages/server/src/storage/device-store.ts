import type { DeviceView, Inventory, InstalledProduct } from '@garrison/protocol';
import { sql } from 'kysely';
import { chunkRows, unnestSelect, type ColumnTypes, type Db } from './database.ts';
import type { DevicesTable } from './schema.ts';

/** A device as stored; the API adds its online state and group path (DeviceView). */
export type Device = Omit<DeviceView, 'online' | 'groupPath'>;

/** The columns the device list filters and sorts on (DeviceStore.listDeviceRows). */
export interface DeviceRow {
  id: string;
  groupId: string;
  name: string;
  hostname: string;
  osPlatform: string;
  osName: string;
  agentVersion: string;
  tags: string[];
  enrolledAt: string;
  lastContactAt: string | null;
  revoked: boolean;
}

export interface DeviceFilter {
  groupIds?: string[];
  search?: string;
  tag?: string;
  limit?: number;
  offset?: number;
}

function toDevice(r: DevicesTable): Device {
  return {
    id: r.id,
    groupId: r.group_id,
    name: r.name,
    hostname: r.hostname,
    osPlatform: r.os_platform,
    osName: r.os_name,
    osVersion: r.os_version,
    arch: r.arch,
    addresses: JSON.parse(r.addresses) as string[],
    agentVersion: r.agent_version,
    timeZone: r.time_zone,
    products: JSON.parse(r.products) as InstalledProduct[],
    tags: JSON.parse(r.tags) as string[],
    enrolledAt: r.enrolled_at,
    lastContactAt: r.last_contact_at,
    credentialRevoked: r.credential_revoked_at !== null,
    credentialRotatedAt: r.credential_rotated_at,
    rotateRequested: r.rotate_requested_at !== null,
    uninstallRequested: r.uninstall_requested_at !== null,
    uninstalledAt: r.uninstalled_at,
    clonedFrom: r.cloned_from,
    machineIdentity: r.machine_identity,
    updatedAt: r.updated_at,
  };
}

function inventoryColumns(inv: Inventory) {
  return {
    hostname: inv.hostname,
    os_platform: inv.osPlatform,
    os_name: inv.osName,
    os_version: inv.osVersion,
    arch: inv.arch,
    addresses: JSON.stringify(inv.addresses),
    agent_version: inv.agentVersion,
    time_zone: inv.timeZone,
    products: JSON.stringify(inv.products),
  };
}

export interface StoredCredential {
  hash: string;
  prevHash: string | null;
  revoked: boolean;
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

export class DeviceStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async insertDevice(d: { id: string; groupId: string; name: string; inventory: Inventory; credentialHash: string; at: string; machineIdentity?: string | null; clonedFrom?: string | null; publicKey?: string | null }): Promise<void> {
    await this.#db.kysely
      .insertInto('devices')
      .values({
        id: d.id,
        group_id: d.groupId,
        name: d.name,
        ...inventoryColumns(d.inventory),
        tags: '[]',
        credential_hash: d.credentialHash,
        credential_revoked_at: null,
        machine_identity: d.machineIdentity ?? null,
        cloned_from: d.clonedFrom ?? null,
        public_key: d.publicKey ?? null,
        rotate_challenge: null,
        enrolled_at: d.at,
        last_contact_at: d.at,
        updated_at: d.at,
      })
      .execute();
  }
  async getDevice(id: string): Promise<Device | undefined> {
    const row = await this.#db.kysely.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toDevice(row);
  }
  async getCredential(id: string): Promise<StoredCredential | undefined> {
    return (await this.getCredentials([id])).get(id);
  }
  /** The stored credentials of these devices (those that exist), in one query per batch. */
  async getCredentials(ids: readonly string[]): Promise<Map<string, StoredCredential>> {
    const out = new Map<string, StoredCredential>();
    const select = this.#db.kysely.selectFrom('devices').select(['id', 'credential_hash', 'credential_prev_hash', 'credential_revoked_at']);
    const batches = this.#db.dialect.arrayParameters
      ? [await select.where(sql<boolean>`id = any(${ids}::text[])`).execute()]
      : await Promise.all(chunkRows(ids.map((id) => ({ id })), this.#db.dialect).map((chunk) => select.where('id', 'in', chunk.map((c) => c.id)).execute()));
    for (const rows of batches) for (const row of rows) out.set(row.id, { hash: row.credential_hash, prevHash: row.credential_prev_hash, revoked: row.credential_revoked_at !== null });
    return out;
  }
  /** The identity state of every device still holding a valid credential, for the check-in path. */
  async listIdentities(): Promise<{ id: string; machineIdentity: string | null; rotateChallenge: string | null; uninstallRequested: boolean; hasPublicKey: boolean }[]> {
    const rows = await this.#db.kysely
      .selectFrom('devices')
      .select(['id', 'machine_identity', 'rotate_requested_at', 'rotate_challenge', 'uninstall_requested_at', 'public_key'])
      .where('credential_revoked_at', 'is', null)
      .execute();
    return rows.map((r) => ({
      id: r.id,
      machineIdentity: r.machine_identity,
      rotateChallenge: r.rotate_requested_at !== null ? r.rotate_challenge : null,
      uninstallRequested: r.uninstall_requested_at !== null,
      hasPublicKey: r.public_key !== null,
    }));
  }
  /** The device's public key and the challenge its pending rotation must sign. */
  async rotationProof(id: string): Promise<{ publicKey: string | null; challenge: string | null; revoked: boolean } | undefined> {
    const r = await this.#db.kysely.selectFrom('devices').select(['public_key', 'rotate_challenge', 'rotate_requested_at', 'credential_revoked_at']).where('id', '=', id).executeTakeFirst();
    return r && { publicKey: r.public_key, challenge: r.rotate_requested_at !== null ? r.rotate_challenge : null, revoked: r.credential_revoked_at !== null };
  }
  /** Registers the device's key once (trust on first use, for devices enrolled before keys); false when it has one. */
  async setPublicKeyIfNone(id: string, publicKey: string, at: string): Promise<boolean> {
    const r = await this.#db.kysely.updateTable('devices').set({ public_key: publicKey, updated_at: at }).where('id', '=', id).where('public_key', 'is', null).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
  /** Devices made from this one (approved clones), for revocation. */
  async derivedDevices(id: string): Promise<string[]> {
    return (await this.#db.kysely.selectFrom('devices').select('id').where('cloned_from', '=', id).execute()).map((r) => r.id);
  }
  /** A fresh credential for a device that has not used any yet (a clone being handed its identity). */
  async setCredential(id: string, hash: string, at: string): Promise<void> {
    await this.#db.kysely.updateTable('devices').set({ credential_hash: hash, credential_prev_hash: null, updated_at: at }).where('id', '=', id).where('credential_revoked_at', 'is', null).execute();
  }
  async setIdentityFields(
    id: string,
    patch: Partial<{ machine_identity: string | null; rotate_requested_at: string | null; rotate_challenge: string | null; uninstall_requested_at: string | null; uninstalled_at: string | null }>,
    at: string,
  ): Promise<void> {
    await this.#db.kysely.updateTable('devices').set({ ...patch, updated_at: at }).where('id', '=', id).execute();
  }
  /** A new credential; the old one stays valid until the agent first uses the new one. */
  async rotateCredential(id: string, newHash: string, at: string): Promise<boolean> {
    const r = await this.#db.kysely
      .updateTable('devices')
      .set((eb) => ({ credential_prev_hash: eb.ref('credential_hash'), credential_hash: newHash, credential_rotated_at: at, rotate_requested_at: null, rotate_challenge: null, updated_at: at }))
      .where('id', '=', id)
      .where('credential_revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
  /** The agent used its new credential: the previous one stops working. */
  async dropPreviousCredential(id: string): Promise<void> {
    await this.#db.kysely.updateTable('devices').set({ credential_prev_hash: null }).where('id', '=', id).where('credential_prev_hash', 'is not', null).execute();
  }
  async listDevices(filter: DeviceFilter = {}): Promise<Device[]> {
    let q = this.#db.kysely.selectFrom('devices').selectAll();
    if (filter.groupIds) q = q.where('group_id', 'in', filter.groupIds.length ? filter.groupIds : ['']);
    if (filter.search) {
      // The search text is literal: % and _ are escaped, not wildcards.
      const like = `%${escapeLike(filter.search.toLowerCase())}%`;
      q = q.where(sql<boolean>`(lower(name) like ${like} escape '\\' or lower(hostname) like ${like} escape '\\')`);
    }
    if (filter.tag) q = q.where(sql<boolean>`tags like ${`%${escapeLike(JSON.stringify(filter.tag))}%`} escape '\\'`);
    q = q.orderBy('name').orderBy('id');
    if (filter.limit) q = q.limit(filter.limit).offset(filter.offset ?? 0);
    return (await q.execute()).map(toDevice);
  }
  /**
   * What the device list filters and sorts on, for every device: a narrow read (no inventory
   * JSON but the tags), so that sorting and filtering 10,000 devices in memory costs one light
   * query; the page's full rows are read afterwards by id.
   */
  async listDeviceRows(): Promise<DeviceRow[]> {
    const rows = await this.#db.kysely
      .selectFrom('devices')
      .select(['id', 'group_id', 'name', 'hostname', 'os_platform', 'os_name', 'agent_version', 'tags', 'enrolled_at', 'last_contact_at', 'credential_revoked_at'])
      .execute();
    return rows.map((r) => ({
      id: r.id,
      groupId: r.group_id,
      name: r.name,
      hostname: r.hostname,
      osPlatform: r.os_platform,
      osName: r.os_name,
      agentVersion: r.agent_version,
      tags: JSON.parse(r.tags) as string[],
      enrolledAt: r.enrolled_at,
      lastContactAt: r.last_contact_at,
      revoked: r.credential_revoked_at !== null,
    }));
  }
  /** Devices another machine presented the credential of, waiting for an administrator's decision. */
  async pendingDuplicateDeviceIds(): Promise<Set<string>> {
    const rows = await this.#db.kysely.selectFrom('device_duplicates').select('device_id').distinct().where('state', '=', 'pending').execute();
    return new Set(rows.map((r) => r.device_id));
  }
  /**
   * What makes a group Warning or Critical besides being offline (the group tree's statuses):
   * devices with a failed deployment, whose latest run of some task failed or timed out since
   * `since`, and with a detection (an event `<product>.detection`) since `since`.
   */
  async healthSince(since: string): Promise<{ failedDeployments: Set<string>; failedRuns: Set<string>; detections: Set<string> }> {
    const [deployments, runs, detections] = await Promise.all([
      this.#db.kysely.selectFrom('device_products').select('device_id').distinct().where('state', '=', 'failed').execute(),
      this.#db.kysely.selectFrom('task_device_state').select('device_id').distinct().where('state', 'in', ['failed', 'timed_out']).where('updated_at', '>=', since).execute(),
      this.#db.kysely
        .selectFrom('events')
        .select('device_id')
        .distinct()
        .where('time', '>=', since)
        .where('device_id', 'is not', null)
        .where(sql<boolean>`kind like ${'%.detection'}`)
        .execute(),
    ]);
    return {
      failedDeployments: new Set(deployments.map((r) => r.device_id)),
      failedRuns: new Set(runs.map((r) => r.device_id)),
      detections: new Set(detections.map((r) => r.device_id!)),
    };
  }
  /** Sets the tags of many devices in one transaction (a bulk action). */
  async setTagsMany(rows: readonly { id: string; tags: readonly string[] }[], at: string): Promise<void> {
    if (!rows.length) return;
    await this.#db.kysely.transaction().execute(async (trx) => {
      for (const r of rows) await trx.updateTable('devices').set({ tags: JSON.stringify(r.tags), updated_at: at }).where('id', '=', r.id).execute();
    });
  }
  /** Moves many devices to a group (a bulk action). */
  async moveMany(ids: readonly string[], groupId: string, at: string): Promise<void> {
    for (const chunk of chunkRows(ids.map((id) => ({ id })), this.#db.dialect)) {
      await this.#db.kysely
        .updateTable('devices')
        .set({ group_id: groupId, updated_at: at })
        .where(
          'id',
          'in',
          chunk.map((c) => c.id),
        )
        .execute();
    }
  }
  /** Deletes many devices with what deleteDevice removes with each, in one transaction per chunk. */
  async deleteMany(ids: readonly string[]): Promise<void> {
    for (const chunk of chunkRows(ids.map((id) => ({ id })), this.#db.dialect)) {
      const part = chunk.map((c) => c.id);
      await this.#db.kysely.transaction().execute(async (trx) => {
        await trx.deleteFrom('devices').where('id', 'in', part).execute();
        await trx.deleteFrom('task_device_state').where('device_id', 'in', part).execute();
        await trx.deleteFrom('device_policy_status').where('device_id', 'in', part).execute();
      });
    }
  }
  /** The devices of a list of ids (missing ones left out), in chunks under the drivers' parameter limits; in no particular order. */
  async getDevices(ids: readonly string[]): Promise<Device[]> {
    const out: Device[] = [];
    for (const chunk of chunkRows(ids.map((id) => ({ id })), this.#db.dialect)) {
      const rows = await this.#db.kysely
        .selectFrom('devices')
        .selectAll()
        .where(
          'id',
          'in',
          chunk.map((c) => c.id),
        )
        .execute();
      for (const r of rows) out.push(toDevice(r));
    }
    return out;
  }
  async updateDevice(id: string, patch: { name?: string; groupId?: string; tags?: string[] }, at: string): Promise<void> {
    await this.#db.kysely
      .updateTable('devices')
      .set({
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.groupId !== undefined ? { group_id: patch.groupId } : {}),
        ...(patch.tags !== undefined ? { tags: JSON.stringify(patch.tags) } : {}),
        updated_at: at,
      })
      .where('id', '=', id)
      .execute();
  }
  async deleteDevice(id: string): Promise<boolean> {
    const r = await this.#db.kysely.deleteFrom('devices').where('id', '=', id).executeTakeFirst();
    await this.#db.kysely.deleteFrom('task_device_state').where('device_id', '=', id).execute();
    // Its policy reports (migration 0014) go with it.
    await this.#db.kysely.deleteFrom('device_policy_status').where('device_id', '=', id).execute();
    return Number(r.numDeletedRows) === 1;
  }
  async revokeCredential(id: string, at: string): Promise<void> {
    await this.#db.kysely.updateTable('devices').set({ credential_revoked_at: at, credential_prev_hash: null, rotate_requested_at: null, rotate_challenge: null, updated_at: at }).where('id', '=', id).execute();
  }
  /** One transaction for a batch of check-ins: inventory and last contact. */
  async recordCheckIns(batch: { id: string; inventory: Inventory; at: string }[]): Promise<void> {
    if (batch.length === 0) return;
    if (this.#db.dialect.arrayParameters) {
      const rows = batch.map((c) => ({ id: c.id, ...inventoryColumns(c.inventory), last_contact_at: c.at }));
      const cols = Object.keys(rows[0]!) as (keyof (typeof rows)[0])[];
      const assigned = cols.filter((c) => c !== 'id');
      // Every column is text: one array parameter each, whatever the batch size.
      const types = Object.fromEntries(cols.map((c) => [c, 'text'])) as ColumnTypes<(typeof rows)[0]>;
      await sql`update devices set ${sql.join(assigned.map((c) => sql`${sql.ref(c)} = v.${sql.ref(c)}`))}
        from (${unnestSelect(rows, cols, types)}) as v
        where devices.id = v.id`.execute(this.#db.kysely);
      return;
    }
    await this.#db.kysely.transaction().execute(async (trx) => {
      for (const c of batch) {
        await trx
          .updateTable('devices')
          .set({ ...inventoryColumns(c.inventory), last_contact_at: c.at })
          .where('id', '=', c.id)
          .execute();
      }
    });
  }
  async touchContacts(ids: string[], at: string): Promise<void> {
    for (const chunk of chunkRows(ids.map((id) => ({ id })), this.#db.dialect)) {
      await this.#db.kysely
        .updateTable('devices')
        .set({ last_contact_at: at })
        .where(
          'id',
          'in',
          chunk.map((c) => c.id),
        )
        .execute();
    }
  }
}
