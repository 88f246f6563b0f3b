import type { DeploymentAssignmentView, DeploymentState, DeviceProductState, Rollout, RolloutState } from '@garrison/protocol';
import { sql } from 'kysely';
import { chunkRows, type Db } from './database.ts';

/** An assignment as stored; the API adds the group's path. */
export type Assignment = Omit<DeploymentAssignmentView, 'groupPath' | 'rolloutState'>;

export interface DeviceProductUpdate {
  deviceId: string;
  product: string;
  state: DeploymentState;
  installedVersion: string | null;
  targetVersion: string | null;
  exitCode?: number | null;
  detail?: string | null;
  outputTail?: string | null;
}

export class DeploymentStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }
  async listAssignments(): Promise<Assignment[]> {
    const rows = await this.#db.kysely.selectFrom('deployments').selectAll().orderBy('group_id').orderBy('product').execute();
    return rows.map((r) => ({
      groupId: r.group_id,
      product: r.product,
      branch: r.branch as Assignment['branch'],
      pinnedVersion: r.pinned_version,
      action: r.action as Assignment['action'],
      removeConflicts: r.remove_conflicts === 1,
      rollout: r.rollout ? (JSON.parse(r.rollout) as Rollout) : null,
      urgent: r.urgent === 1,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    }));
  }
  async putAssignment(a: Assignment): Promise<void> {
    const row = {
      group_id: a.groupId,
      product: a.product,
      branch: a.branch,
      pinned_version: a.pinnedVersion,
      action: a.action,
      remove_conflicts: a.removeConflicts ? 1 : 0,
      rollout: a.rollout ? JSON.stringify(a.rollout) : null,
      urgent: a.urgent ? 1 : 0,
      created_at: a.createdAt,
      updated_at: a.updatedAt,
    };
    await this.#db.kysely
      .insertInto('deployments')
      .values(row)
      .onConflict((oc) =>
        oc.columns(['group_id', 'product']).doUpdateSet({ branch: row.branch, pinned_version: row.pinned_version, action: row.action, remove_conflicts: row.remove_conflicts, rollout: row.rollout, urgent: row.urgent, updated_at: row.updated_at }),
      )
      .execute();
  }
  async listRollouts(): Promise<{ groupId: string; product: string; state: Omit<RolloutState, 'phases'> }[]> {
    const rows = await this.#db.kysely.selectFrom('rollouts').selectAll().execute();
    return rows.map((r) => ({
      groupId: r.group_id,
      product: r.product,
      state: { targetVersion: r.target_version, phase: r.phase, state: r.state as RolloutState['state'], reason: r.reason, startedAt: r.started_at, updatedAt: r.updated_at },
    }));
  }
  /**
   * Starts a rollout of `state.targetVersion`, compare-and-set on the stored target version:
   * it writes only when no rollout is stored or the stored one spreads another version, and
   * says whether this call wrote. Several instances meet the same new version at the same
   * time (each device's plan does); exactly one of them starts the rollout, so it has one
   * startedAt and one "rollout-started" event. Both databases evaluate the conflict's WHERE
   * against the row as committed (PostgreSQL waits for a concurrent insert of the same key
   * and then re-checks), so no dialect capability is needed.
   */
  async startRollout(groupId: string, product: string, s: Omit<RolloutState, 'phases'>): Promise<boolean> {
    const row = { group_id: groupId, product, target_version: s.targetVersion, phase: s.phase, state: s.state, reason: s.reason, started_at: s.startedAt, updated_at: s.updatedAt };
    const r = await this.#db.kysely
      .insertInto('rollouts')
      .values(row)
      .onConflict((oc) =>
        oc
          .columns(['group_id', 'product'])
          .doUpdateSet({ target_version: row.target_version, phase: row.phase, state: row.state, reason: row.reason, started_at: row.started_at, updated_at: row.updated_at })
          .where('rollouts.target_version', '!=', row.target_version),
      )
      .executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0n) === 1;
  }
  /**
   * Moves a rollout on (next phase, completed, halted, resumed), compare-and-set: it writes
   * only when the stored rollout is still `expected` (same target version, phase, state and
   * updated_at), and says whether this call wrote. Two instances that evaluate the same
   * rollout at once both decide to advance it; the one that loses finds the row changed (a
   * concurrent UPDATE of the row waits for the winner's commit and re-checks the WHERE on
   * the new row), so a phase is never skipped nor announced twice. updated_at is part of
   * the comparison so that a rollout that went away and came back to the same phase and
   * state (restarted, resumed) is still told apart.
   */
  async advanceRollout(groupId: string, product: string, expected: Omit<RolloutState, 'phases'>, next: Omit<RolloutState, 'phases'>): Promise<boolean> {
    const r = await this.#db.kysely
      .updateTable('rollouts')
      .set({ target_version: next.targetVersion, phase: next.phase, state: next.state, reason: next.reason, started_at: next.startedAt, updated_at: next.updatedAt })
      .where('group_id', '=', groupId)
      .where('product', '=', product)
      .where('target_version', '=', expected.targetVersion)
      .where('phase', '=', expected.phase)
      .where('state', '=', expected.state)
      .where('updated_at', '=', expected.updatedAt)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
  async deleteRollout(groupId: string, product: string): Promise<void> {
    await this.#db.kysely.deleteFrom('rollouts').where('group_id', '=', groupId).where('product', '=', product).execute();
  }
  async deleteAssignment(groupId: string, product: string): Promise<boolean> {
    const r = await this.#db.kysely.deleteFrom('deployments').where('group_id', '=', groupId).where('product', '=', product).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }
  /**
   * Upserts per-device product states. A plan's "pending" never overwrites "failed" for the
   * same target version: the failure and its return code stay visible until the next try
   * changes them.
   */
  async putStates(updates: readonly DeviceProductUpdate[], at: string, keepFailed: boolean): Promise<void> {
    const rows = updates.map((u) => ({
      device_id: u.deviceId,
      product: u.product,
      state: u.state,
      installed_version: u.installedVersion,
      target_version: u.targetVersion,
      exit_code: u.exitCode ?? null,
      detail: u.detail ?? null,
      output_tail: u.outputTail ?? null,
      updated_at: at,
    }));
    for (const chunk of chunkRows(rows, this.#db.dialect)) {
      await this.#db.kysely
        .insertInto('device_products')
        .values(chunk)
        .onConflict((oc) => {
          const b = oc.columns(['device_id', 'product']).doUpdateSet((eb) => ({
            state: eb.ref('excluded.state'),
            installed_version: eb.ref('excluded.installed_version'),
            target_version: eb.ref('excluded.target_version'),
            exit_code: eb.ref('excluded.exit_code'),
            detail: eb.ref('excluded.detail'),
            output_tail: eb.ref('excluded.output_tail'),
            updated_at: eb.ref('excluded.updated_at'),
          }));
          return keepFailed
            ? b.where((eb) =>
                eb.or([
                  eb('device_products.state', '!=', 'failed'),
                  eb('excluded.state', '!=', 'pending'),
                  eb('device_products.target_version', 'is', null),
                  eb('device_products.target_version', '!=', eb.ref('excluded.target_version')),
                ]),
              )
            : b;
        })
        .execute();
    }
  }
  /**
   * Takes one of `cap` install slots of an assignment for a device, as one serialized
   * compare-and-set: counts the other devices of `deviceIds` installing the product (state
   * "installing" written at or after `since`) and, when fewer than `cap`, marks this device
   * installing, in the same transaction. On a database shared by instances the transaction
   * first holds an advisory lock on the assignment's key, so that two check-ins (on any
   * instances) never both see a free slot; SQLite has one writer, and this instance's
   * connection runs one transaction at a time. Says whether the slot was taken, and how many
   * others were installing.
   */
  async takeInstallSlot(input: { lockKey: string; deviceIds: readonly string[]; cap: number; since: string; at: string; state: DeviceProductUpdate }): Promise<{ taken: boolean; installing: number }> {
    const { state: u } = input;
    return this.#db.kysely.transaction().execute(async (trx) => {
      if (this.#db.dialect.sharedByInstances) await sql`select pg_advisory_xact_lock(hashtextextended(${`garrison.install-slot\n${input.lockKey}`}, 0))`.execute(trx);
      let installing = 0;
      // Already holding a live slot (asked again before reporting): it keeps it, and its time,
      // so that a device given steps it does not carry out (outside its windows) frees the
      // slot after the timeout instead of renewing it at every check-in.
      const own = await trx.selectFrom('device_products').select(['state', 'updated_at']).where('device_id', '=', u.deviceId).where('product', '=', u.product).executeTakeFirst();
      if (own?.state === 'installing' && own.updated_at >= input.since) return { taken: true, installing };
      const others = input.deviceIds.filter((id) => id !== u.deviceId);
      for (const chunk of chunkRows(others.map((id) => ({ id })), this.#db.dialect)) {
        const r = await trx
          .selectFrom('device_products')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('product', '=', u.product)
          .where('state', '=', 'installing')
          .where('updated_at', '>=', input.since)
          .where(
            'device_id',
            'in',
            chunk.map((c) => c.id),
          )
          .executeTakeFirst();
        installing += Number(r?.n ?? 0);
        if (installing >= input.cap) return { taken: false, installing };
      }
      const row = { device_id: u.deviceId, product: u.product, state: 'installing', installed_version: u.installedVersion, target_version: u.targetVersion, exit_code: null, detail: u.detail ?? null, output_tail: null, updated_at: input.at };
      await trx
        .insertInto('device_products')
        .values(row)
        .onConflict((oc) => oc.columns(['device_id', 'product']).doUpdateSet({ state: row.state, installed_version: row.installed_version, target_version: row.target_version, exit_code: null, detail: row.detail, output_tail: null, updated_at: row.updated_at }))
        .execute();
      return { taken: true, installing };
    });
  }
  /** Deletes the states of these devices but those of `keepProducts` (one statement per chunk of devices). */
  async deleteStates(deviceIds: readonly string[], keepProducts: readonly string[]): Promise<void> {
    for (const chunk of chunkRows(deviceIds.map((id) => ({ id })), this.#db.dialect)) {
      let q = this.#db.kysely.deleteFrom('device_products').where(
        'device_id',
        'in',
        chunk.map((c) => c.id),
      );
      if (keepProducts.length) q = q.where('product', 'not in', keepProducts);
      await q.execute();
    }
  }
  /**
   * States filtered by device, product and state. A device list (a large group's devices) is
   * queried in chunks, so that it never passes the drivers' bound-parameter limits.
   */
  /** Devices per product, state and installed version, counted by the database (the dashboard). */
  /** Counts per product, state and version; over the devices of `groupIds` when given. */
  /** Device-product rows by product, state and installed version (of the devices in `groupIds`, all without; of one product when given). */
  async countStates(groupIds?: string[], product?: string): Promise<{ product: string; state: string; installedVersion: string | null; n: number }[]> {
    let q = this.#db.kysely.selectFrom('device_products').select(['product', 'state', 'installed_version', (eb) => eb.fn.countAll<number>().as('n')]);
    if (groupIds) q = q.where('device_id', 'in', (eb) => eb.selectFrom('devices').select('devices.id').where('devices.group_id', 'in', groupIds.length ? groupIds : ['']));
    if (product) q = q.where('product', '=', product);
    const rows = await q.groupBy(['product', 'state', 'installed_version']).execute();
    return rows.map((r) => ({ product: r.product, state: r.state, installedVersion: r.installed_version, n: Number(r.n) }));
  }
  /**
   * One page of device-product rows by product, then device id (keyset: those after `after`),
   * of the devices in `groupIds` (all without), and how many rows the filter matches.
   */
  async pageStates(filter: { groupIds?: string[]; product?: string; state?: string; search?: string; after?: readonly [string, string]; limit: number }): Promise<{ rows: DeviceProductState[]; total: number }> {
    const filtered = () => {
      let q = this.#db.kysely.selectFrom('device_products');
      if (filter.groupIds) {
        const groupIds = filter.groupIds.length ? filter.groupIds : [''];
        q = q.where('device_id', 'in', (eb) => eb.selectFrom('devices').select('devices.id').where('devices.group_id', 'in', groupIds));
      }
      if (filter.product) q = q.where('product', '=', filter.product);
      if (filter.state) q = q.where('state', '=', filter.state);
      if (filter.search) {
        // Part of the device's name or host name, as the device list searches.
        const like = `%${filter.search.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
        q = q.where('device_id', 'in', (eb) => eb.selectFrom('devices').select('devices.id').where(sql<boolean>`(lower(devices.name) like ${like} escape '\\' or lower(devices.hostname) like ${like} escape '\\')`));
      }
      return q;
    };
    let page = filtered().selectAll();
    if (filter.after) {
      const [product, deviceId] = filter.after;
      page = page.where((eb) => eb.or([eb('product', '>', product), eb.and([eb('product', '=', product), eb('device_id', '>', deviceId)])]));
    }
    const [rows, count] = await Promise.all([
      page.orderBy('product').orderBy('device_id').limit(filter.limit).execute(),
      filtered()
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirst(),
    ]);
    return {
      rows: rows.map((r) => ({
        deviceId: r.device_id,
        product: r.product,
        state: r.state as DeploymentState,
        installedVersion: r.installed_version,
        targetVersion: r.target_version,
        exitCode: r.exit_code,
        detail: r.detail,
        outputTail: r.output_tail,
        updatedAt: r.updated_at,
      })),
      total: Number(count?.n ?? 0),
    };
  }
  async listStates(filter: { deviceIds?: string[]; product?: string; state?: string }): Promise<DeviceProductState[]> {
    const query = (deviceIds?: string[]) => {
      let q = this.#db.kysely.selectFrom('device_products').selectAll();
      if (deviceIds) q = q.where('device_id', 'in', deviceIds);
      if (filter.product) q = q.where('product', '=', filter.product);
      if (filter.state) q = q.where('state', '=', filter.state);
      return q.execute();
    };
    let rows: Awaited<ReturnType<typeof query>>;
    if (!filter.deviceIds) rows = await query();
    else {
      rows = [];
      for (const chunk of chunkRows(filter.deviceIds.map((id) => ({ id })), this.#db.dialect)) rows.push(...(await query(chunk.map((c) => c.id))));
    }
    rows.sort((a, b) => (a.product === b.product ? (a.device_id < b.device_id ? -1 : 1) : a.product < b.product ? -1 : 1));
    return rows.map((r) => ({
      deviceId: r.device_id,
      product: r.product,
      state: r.state as DeploymentState,
      installedVersion: r.installed_version,
      targetVersion: r.target_version,
      exitCode: r.exit_code,
      detail: r.detail,
      outputTail: r.output_tail,
      updatedAt: r.updated_at,
    }));
  }
}
