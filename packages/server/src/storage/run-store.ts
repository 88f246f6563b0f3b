import { finalRunStates, type Run, type RunReport, type RunState } from '@garrison/protocol';
import { shouldApplyReport } from '@garrison/core';
import { sql } from 'kysely';
import { chunkRows, deleteInBatches, insertChunks, type ColumnTypes, type Db } from './database.ts';
import type { RunsTable, TaskDeviceStateTable } from './schema.ts';

const RUN_COLUMNS: ColumnTypes<RunsTable> = {
  id: 'text',
  task_id: 'text',
  device_id: 'text',
  request_id: 'text',
  state: 'text',
  percent: 'integer',
  attempt: 'integer',
  seq: 'integer',
  cause: 'text',
  created_at: 'text',
  started_at: 'text',
  ended_at: 'text',
  exit_code: 'integer',
  reason: 'text',
  output_tail: 'text',
  expires_at: 'text',
  updated_at: 'text',
};
const STATE_COLUMNS: ColumnTypes<TaskDeviceStateTable> = { task_id: 'text', device_id: 'text', run_id: 'text', run_created_at: 'text', state: 'text', updated_at: 'text' };

export function toRun(r: RunsTable): Run {
  return {
    id: r.id,
    taskId: r.task_id,
    deviceId: r.device_id,
    state: r.state as RunState,
    percent: r.percent,
    attempt: r.attempt,
    cause: r.cause,
    requestId: r.request_id,
    createdAt: r.created_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    exitCode: r.exit_code,
    reason: r.reason,
    outputTail: r.output_tail,
    updatedAt: r.updated_at,
  };
}

export interface PendingRun {
  id: string;
  taskId: string;
  deviceId: string;
  requestId: string;
  createdAt: string;
  expiresAt: string;
}

export interface DeviceReport {
  deviceId: string;
  report: RunReport;
}
export interface ApplyResult {
  /** Reports that changed stored state (for events and after-task logic). */
  applied: DeviceReport[];
  /** Reports already stored with this seq or a later one: acknowledged, nothing changed. */
  duplicates: DeviceReport[];
  rejected: { deviceId: string; runId: string; code: string; message: string }[];
}
export interface RunFilter {
  taskId?: string;
  deviceId?: string;
  state?: RunState;
  requestId?: string;
  /** Only runs of devices in these groups (the caller's read reach); undefined: all. */
  groupIds?: string[];
}
/** Which latest runs of a task a page of results holds. */
export interface ResultFilter {
  state?: RunState;
  /** Part of the device name or host name, case-insensitive, taken literally. */
  search?: string;
  /** Only these devices. */
  deviceIds?: string[];
  groupIds?: string[];
}
/** A task's latest run on a device, with the device's names. */
export type RunOfDevice = Run & { deviceName: string; hostname: string };

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

export class RunStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  /** A run-now request; its pending runs are inserted in chunks by insertPendingRuns. */
  async insertRunRequest(request: { id: string; taskId: string; createdBy: string; createdAt: string; expiresAt: string; targetCount: number }): Promise<void> {
    await this.#db.kysely
      .insertInto('run_requests')
      .values({ id: request.id, task_id: request.taskId, created_at: request.createdAt, expires_at: request.expiresAt, created_by: request.createdBy, target_count: request.targetCount })
      .execute();
  }

  /** Pending runs of a run-now, and their (task, device) state, in one transaction. */
  async insertPendingRuns(runs: readonly PendingRun[]): Promise<void> {
    await this.#db.kysely.transaction().execute(async (trx) => {
      const rows: RunsTable[] = runs.map((r) => ({
        id: r.id,
        task_id: r.taskId,
        device_id: r.deviceId,
        request_id: r.requestId,
        state: 'pending',
        percent: null,
        attempt: 1,
        seq: -1,
        cause: 'run-now',
        created_at: r.createdAt,
        started_at: null,
        ended_at: null,
        exit_code: null,
        reason: null,
        output_tail: null,
        expires_at: r.expiresAt,
        updated_at: r.createdAt,
      }));
      for (const into of insertChunks(this.#db.dialect, rows, RUN_COLUMNS)) await into(trx.insertInto('runs')).execute();
      const states: TaskDeviceStateTable[] = runs.map((r) => ({ task_id: r.taskId, device_id: r.deviceId, run_id: r.id, run_created_at: r.createdAt, state: 'pending', updated_at: r.createdAt }));
      for (const into of insertChunks(this.#db.dialect, states, STATE_COLUMNS)) {
        await into(trx.insertInto('task_device_state'))
          .onConflict((oc) =>
            oc.columns(['task_id', 'device_id']).doUpdateSet((eb) => ({
              run_id: eb.ref('excluded.run_id'),
              run_created_at: eb.ref('excluded.run_created_at'),
              state: eb.ref('excluded.state'),
              updated_at: eb.ref('excluded.updated_at'),
            })),
          )
          .execute();
      }
    });
  }

  /** Which device and task each existing run belongs to (runs not stored yet are absent). */
  async runOwners(runIds: readonly string[]): Promise<Map<string, { deviceId: string; taskId: string }>> {
    const out = new Map<string, { deviceId: string; taskId: string }>();
    for (const chunk of chunkRows([...new Set(runIds)].map((id) => ({ id })), this.#db.dialect)) {
      const rows = await this.#db.kysely.selectFrom('runs').select(['id', 'device_id', 'task_id']).where('id', 'in', chunk.map((c) => c.id)).execute();
      for (const r of rows) out.set(r.id, { deviceId: r.device_id, taskId: r.task_id });
    }
    return out;
  }
  /** Of these (device, task) pairs, those that have run before ("device\ntask" keys). */
  async taskStatesOf(pairs: readonly { deviceId: string; taskId: string }[]): Promise<Set<string>> {
    const out = new Set<string>();
    const byDevice = new Map<string, Set<string>>();
    for (const p of pairs) (byDevice.get(p.deviceId) ?? byDevice.set(p.deviceId, new Set()).get(p.deviceId)!).add(p.taskId);
    for (const [deviceId, tasks] of byDevice) {
      const rows = await this.#db.kysely.selectFrom('task_device_state').select('task_id').where('device_id', '=', deviceId).where('task_id', 'in', [...tasks].slice(0, 1000)).execute();
      for (const r of rows) out.add(`${deviceId}\n${r.task_id}`);
    }
    return out;
  }
  /**
   * The runs of a run-now still waiting to be delivered to agents connected to `instanceId`
   * (agent_presence): each instance reads only its own share, not the whole request.
   */
  async pendingRunsOfRequestOn(requestId: string, instanceId: string): Promise<{ id: string; deviceId: string }[]> {
    const rows = await this.#db.kysely
      .selectFrom('runs')
      .innerJoin('agent_presence', 'agent_presence.device_id', 'runs.device_id')
      .select(['runs.id', 'runs.device_id'])
      .where('runs.request_id', '=', requestId)
      .where('runs.state', '=', 'pending')
      .where('agent_presence.instance_id', '=', instanceId)
      .where('agent_presence.online', '=', 1)
      .execute();
    return rows.map((r) => ({ id: r.id, deviceId: r.device_id }));
  }

  /** The run-nows waiting for each of these devices (a batch of check-ins), unexpired; devices with none are absent. */
  async pendingRunsForDevices(deviceIds: readonly string[], now: string): Promise<Map<string, PendingRun[]>> {
    const select = this.#db.kysely
      .selectFrom('runs')
      .select(['id', 'task_id', 'device_id', 'request_id', 'created_at', 'expires_at'])
      .where('state', '=', 'pending')
      .where('expires_at', '>', now);
    const batches = this.#db.dialect.arrayParameters
      ? [await select.where(sql<boolean>`device_id = any(${deviceIds}::text[])`).execute()]
      : await Promise.all(chunkRows(deviceIds.map((id) => ({ id })), this.#db.dialect).map((chunk) => select.where('device_id', 'in', chunk.map((c) => c.id)).execute()));
    const out = new Map<string, PendingRun[]>();
    for (const rows of batches) {
      for (const r of rows) {
        const run = { id: r.id, taskId: r.task_id, deviceId: r.device_id, requestId: r.request_id ?? '', createdAt: r.created_at, expiresAt: r.expires_at ?? '' };
        const list = out.get(r.device_id);
        if (list) list.push(run);
        else out.set(r.device_id, [run]);
      }
    }
    return out;
  }

  /**
   * Stores a batch of reports in one transaction. Idempotent: a report whose seq is not newer
   * than the stored one changes nothing. A run id that belongs to another device, or to
   * another task, is refused (NOT_ASSIGNED): an agent can never write another device's results.
   * A run stored here for the first time has no run-now request: only the server makes those.
   */
  async applyReports(batch: readonly DeviceReport[], now: string): Promise<ApplyResult> {
    const result: ApplyResult = { applied: [], duplicates: [], rejected: [] };
    if (batch.length === 0) return result;
    // Within one batch keep only the newest report of each run.
    const newest = new Map<string, DeviceReport>();
    for (const item of batch) {
      const prev = newest.get(item.report.runId);
      if (prev && prev.deviceId !== item.deviceId) {
        result.rejected.push({ deviceId: item.deviceId, runId: item.report.runId, code: 'NOT_ASSIGNED', message: 'this run belongs to another device' });
        continue;
      }
      if (!prev || prev.report.seq < item.report.seq) {
        if (prev) result.duplicates.push(prev);
        newest.set(item.report.runId, item);
      } else result.duplicates.push(item);
    }
    await this.#db.kysely.transaction().execute(async (trx) => {
      const ids = [...newest.keys()];
      const existing = new Map<string, { device_id: string; task_id: string; seq: number; state: string; created_at: string; request_id: string | null }>();
      const selectExisting = trx.selectFrom('runs').select(['id', 'device_id', 'task_id', 'seq', 'state', 'created_at', 'request_id']);
      const found = this.#db.dialect.arrayParameters
        ? [await selectExisting.where(sql<boolean>`id = any(${ids}::text[])`).execute()]
        : [];
      if (!this.#db.dialect.arrayParameters) {
        for (const chunk of chunkRows(ids.map((id) => ({ id })), this.#db.dialect)) found.push(await selectExisting.where('id', 'in', chunk.map((c) => c.id)).execute());
      }
      for (const rows of found) for (const r of rows) existing.set(r.id, r);
      const runRows: RunsTable[] = [];
      for (const item of newest.values()) {
        const r = item.report;
        const cur = existing.get(r.runId);
        if (cur && (cur.device_id !== item.deviceId || cur.task_id !== r.taskId)) {
          result.rejected.push({ deviceId: item.deviceId, runId: r.runId, code: 'NOT_ASSIGNED', message: cur.device_id !== item.deviceId ? 'this run belongs to another device' : 'this run is of another task' });
          continue;
        }
        if (!shouldApplyReport(cur ? { state: cur.state as RunState, seq: cur.seq } : null, { state: r.state, seq: r.seq })) {
          result.duplicates.push(item);
          continue;
        }
        result.applied.push(item);
        runRows.push({
          id: r.runId,
          task_id: r.taskId,
          device_id: item.deviceId,
          request_id: cur ? cur.request_id : null,
          state: r.state,
          percent: r.percent ?? null,
          attempt: r.attempt,
          seq: r.seq,
          cause: r.cause,
          // A pending run-now keeps the creation time the server gave it.
          created_at: cur?.created_at ?? r.createdAt,
          started_at: r.startedAt ?? null,
          ended_at: r.endedAt ?? null,
          exit_code: r.exitCode ?? null,
          reason: r.reason ?? null,
          output_tail: r.outputTail ?? null,
          expires_at: null,
          updated_at: now,
        });
      }
      for (const into of insertChunks(this.#db.dialect, runRows, RUN_COLUMNS)) {
        await into(trx.insertInto('runs'))
          .onConflict((oc) =>
            oc
              .column('id')
              .doUpdateSet((eb) => ({
                state: eb.ref('excluded.state'),
                percent: eb.ref('excluded.percent'),
                attempt: eb.ref('excluded.attempt'),
                seq: eb.ref('excluded.seq'),
                cause: eb.ref('excluded.cause'),
                started_at: eb.ref('excluded.started_at'),
                ended_at: eb.ref('excluded.ended_at'),
                exit_code: eb.ref('excluded.exit_code'),
                reason: eb.ref('excluded.reason'),
                output_tail: eb.ref('excluded.output_tail'),
                expires_at: eb.ref('excluded.expires_at'),
                updated_at: eb.ref('excluded.updated_at'),
              }))
              .where('runs.seq', '<', (eb) => eb.ref('excluded.seq'))
              .where('runs.device_id', '=', (eb) => eb.ref('excluded.device_id')),
          )
          .execute();
      }
      // One row per (task, device): several runs of one task in a batch (a spool flushed after
      // a night offline) keep the newest. PostgreSQL refuses an upsert that touches a row twice.
      const latest = new Map<string, TaskDeviceStateTable>();
      for (const r of runRows) {
        const key = `${r.task_id}\n${r.device_id}`;
        const prev = latest.get(key);
        if (!prev || prev.run_created_at <= r.created_at) latest.set(key, { task_id: r.task_id, device_id: r.device_id, run_id: r.id, run_created_at: r.created_at, state: r.state, updated_at: now });
      }
      for (const into of insertChunks(this.#db.dialect, [...latest.values()], STATE_COLUMNS)) {
        await into(trx.insertInto('task_device_state'))
          .onConflict((oc) =>
            oc
              .columns(['task_id', 'device_id'])
              .doUpdateSet((eb) => ({
                run_id: eb.ref('excluded.run_id'),
                run_created_at: eb.ref('excluded.run_created_at'),
                state: eb.ref('excluded.state'),
                updated_at: eb.ref('excluded.updated_at'),
              }))
              .where('task_device_state.run_created_at', '<=', (eb) => eb.ref('excluded.run_created_at')),
          )
          .execute();
      }
    });
    return result;
  }

  /** Marks undelivered runs of a task cancelled (a stop); returns how many. */
  async cancelPendingRuns(taskId: string, reason: string, at: string): Promise<number> {
    return this.#finishPending({ taskId }, 'cancelled', reason, at);
  }
  /** Run-now requests that no device picked up before their expiry become skipped. */
  async expirePendingRuns(now: string): Promise<number> {
    return this.#finishPending({ expiredAt: now }, 'skipped', 'the run-now expired before the device made contact', now);
  }
  async #finishPending(which: { taskId?: string; expiredAt?: string }, state: RunState, reason: string, at: string): Promise<number> {
    return this.#db.kysely.transaction().execute(async (trx) => {
      let q = trx.selectFrom('runs').select(['id']).where('state', '=', 'pending');
      if (which.taskId) q = q.where('task_id', '=', which.taskId);
      if (which.expiredAt) q = q.where('expires_at', '<=', which.expiredAt);
      const list = await q.execute();
      for (const chunk of chunkRows(list, this.#db.dialect)) {
        const ids = chunk.map((r) => r.id);
        await trx.updateTable('runs').set({ state, reason, ended_at: at, updated_at: at, seq: 0 }).where('id', 'in', ids).where('state', '=', 'pending').execute();
        await trx.updateTable('task_device_state').set({ state, updated_at: at }).where('run_id', 'in', ids).execute();
      }
      return list.length;
    });
  }

  async getRun(id: string): Promise<Run | undefined> {
    const r = await this.#db.kysely.selectFrom('runs').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toRun(r);
  }
  /**
   * One page of runs, newest first: (created_at, id) descending, resuming before `before`
   * (keyset: a page stays right while new runs arrive at the top).
   */
  async pageRuns(f: RunFilter, page: { before: { createdAt: string; id: string } | null; limit: number }): Promise<Run[]> {
    let q = this.#db.kysely.selectFrom('runs').selectAll();
    if (f.groupIds) q = q.where('device_id', 'in', (eb) => eb.selectFrom('devices').select('devices.id').where('devices.group_id', 'in', f.groupIds!.length ? f.groupIds! : ['']));
    if (f.taskId) q = q.where('task_id', '=', f.taskId);
    if (f.deviceId) q = q.where('device_id', '=', f.deviceId);
    if (f.state) q = q.where('state', '=', f.state);
    if (f.requestId) q = q.where('request_id', '=', f.requestId);
    const b = page.before;
    if (b) q = q.where('created_at', '<=', b.createdAt).where((eb) => eb(eb.refTuple('created_at', 'id'), '<', eb.tuple(b.createdAt, b.id)));
    const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(page.limit).execute();
    return rows.map(toRun);
  }
  /** How many runs reached each final state since `since` (the dashboard's outcomes). */
  async outcomesSince(since: string, groupIds?: string[]): Promise<Record<string, number>> {
    let q = this.#db.kysely
      .selectFrom('runs')
      .select(['state', (eb) => eb.fn.countAll<number>().as('n')])
      .where('updated_at', '>=', since)
      .where('state', 'in', [...finalRunStates]);
    if (groupIds) q = q.where('device_id', 'in', (eb) => eb.selectFrom('devices').select('devices.id').where('devices.group_id', 'in', groupIds.length ? groupIds : ['']));
    const rows = await q.groupBy('state').execute();
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
  }
  /** The latest failed or timed-out runs since `since`, newest first. */
  async failuresSince(since: string, limit: number, groupIds?: string[]): Promise<Run[]> {
    let q = this.#db.kysely.selectFrom('runs').selectAll().where('updated_at', '>=', since).where('state', 'in', ['failed', 'timed_out']);
    if (groupIds) q = q.where('device_id', 'in', (eb) => eb.selectFrom('devices').select('devices.id').where('devices.group_id', 'in', groupIds.length ? groupIds : ['']));
    const rows = await q.orderBy('updated_at', 'desc').limit(limit).execute();
    return rows.map(toRun);
  }
  async getRunRequest(id: string): Promise<{ id: string; taskId: string; createdAt: string; expiresAt: string; targetCount: number } | undefined> {
    const r = await this.#db.kysely.selectFrom('run_requests').selectAll().where('id', '=', id).executeTakeFirst();
    return r && { id: r.id, taskId: r.task_id, createdAt: r.created_at, expiresAt: r.expires_at, targetCount: r.target_count };
  }
  /**
   * The run a run-now gave each device, as a map device → state. Its runs were all made at the
   * request's time: the (task_id, device_id, created_at) index holds both, so the runs of the
   * task's other triggers are passed over in the index, without reading their rows (runs has
   * no index on request_id).
   */
  async requestRunStates(request: { id: string; taskId: string; createdAt: string }, groupIds?: string[]): Promise<Map<string, RunState>> {
    let q = this.#db.kysely
      .selectFrom('runs')
      .select(['device_id', 'state'])
      .where('task_id', '=', request.taskId)
      .where('created_at', '=', request.createdAt)
      .where('request_id', '=', request.id);
    if (groupIds) q = q.where('device_id', 'in', (eb) => eb.selectFrom('devices').select('devices.id').where('devices.group_id', 'in', groupIds.length ? groupIds : ['']));
    const rows = await q.execute();
    return new Map(rows.map((r) => [r.device_id, r.state as RunState]));
  }
  /** The latest run of each device for a task, as a map device → state (for progress). */
  async latestStates(taskId: string): Promise<Map<string, RunState>> {
    const rows = await this.#db.kysely.selectFrom('task_device_state').select(['device_id', 'state']).where('task_id', '=', taskId).execute();
    return new Map(rows.map((r) => [r.device_id, r.state as RunState]));
  }
  /** The latest run of a task on devices that exist, filtered (what results, their counts and export share). */
  #latest(taskId: string, f: ResultFilter) {
    let q = this.#db.kysely.selectFrom('task_device_state as s').innerJoin('devices as d', 'd.id', 's.device_id').where('s.task_id', '=', taskId);
    if (f.groupIds) q = q.where('d.group_id', 'in', f.groupIds.length ? f.groupIds : ['']);
    if (f.state) q = q.where('s.state', '=', f.state);
    if (f.deviceIds) q = q.where('s.device_id', 'in', f.deviceIds.length ? f.deviceIds : ['']);
    if (f.search) {
      // The search text is literal: % and _ are escaped, not wildcards.
      const like = `%${escapeLike(f.search.toLowerCase())}%`;
      q = q.where(sql<boolean>`(lower(d.name) like ${like} escape '\\' or lower(d.hostname) like ${like} escape '\\')`);
    }
    return q;
  }
  /**
   * One page of a task's latest run per device, by device name then id, resuming after
   * `after` (keyset): the order does not move as results arrive, so a page being watched
   * keeps its rows.
   */
  async pageLatestRuns(taskId: string, f: ResultFilter, page: { after: { name: string; deviceId: string } | null; limit: number; withOutput?: boolean }): Promise<RunOfDevice[]> {
    let q = this.#latest(taskId, f).innerJoin('runs', 'runs.id', 's.run_id').selectAll('runs').select(['d.name as device_name', 'd.hostname as device_hostname']);
    const a = page.after;
    if (a) q = q.where('d.name', '>=', a.name).where((eb) => eb(eb.refTuple('d.name', 's.device_id'), '>', eb.tuple(a.name, a.deviceId)));
    const rows = await q.orderBy('d.name').orderBy('s.device_id').limit(page.limit).execute();
    return rows.map((r) => ({ ...toRun(page.withOutput === false ? { ...r, output_tail: null } : r), deviceName: r.device_name, hostname: r.device_hostname }));
  }
  /** How many latest runs match the filter. */
  async countLatest(taskId: string, f: ResultFilter): Promise<number> {
    const r = await this.#latest(taskId, f).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirst();
    return Number(r?.n ?? 0);
  }
  /** How many devices have their latest run of the task in each state. */
  async latestStateCounts(taskId: string, groupIds?: string[]): Promise<Record<string, number>> {
    const rows = await this.#latest(taskId, { groupIds })
      .select(['s.state', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy('s.state')
      .execute();
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
  }
  /** Of the task's devices, those whose latest run is in one of these states. */
  async devicesWithLatestState(taskId: string, states: readonly RunState[]): Promise<string[]> {
    const rows = await this.#db.kysely.selectFrom('task_device_state').select('device_id').where('task_id', '=', taskId).where('state', 'in', [...states]).execute();
    return rows.map((r) => r.device_id);
  }
  /** Per task: when its latest run on a device in reach was made, and how many such devices' latest run failed. */
  async taskSummaries(taskIds: readonly string[], groupIds?: string[]): Promise<Map<string, { lastRunAt: string | null; failures: number }>> {
    const out = new Map<string, { lastRunAt: string | null; failures: number }>();
    if (taskIds.length === 0) return out;
    let q = this.#db.kysely
      .selectFrom('task_device_state as s')
      .select([
        's.task_id',
        (eb) => eb.fn.max('s.run_created_at').as('last'),
        (eb) => eb.fn.sum<number>(eb.case().when('s.state', 'in', ['failed', 'timed_out']).then(1).else(0).end()).as('failures'),
      ])
      .where('s.task_id', 'in', [...taskIds]);
    if (groupIds) q = q.where('s.device_id', 'in', (eb) => eb.selectFrom('devices').select('devices.id').where('devices.group_id', 'in', groupIds.length ? groupIds : ['']));
    const rows = await q.groupBy('s.task_id').execute();
    for (const r of rows) out.set(r.task_id, { lastRunAt: (r.last as string | null) ?? null, failures: Number(r.failures ?? 0) });
    return out;
  }
  /**
   * Runs that ended (a final state) with their last update in [since, until), one page at a
   * time in (updated_at, id) order: a report reads a period of any size with bounded memory,
   * each page resuming after the last row of the one before (keyset, so no page is skipped or
   * read twice as offsets would). The runs_updated index serves the range; runs sharing one
   * updated_at (an ingest batch) are sorted by id within it, which stays cheap while batches
   * are thousands, not millions. The output tail is left out: it is large and not a report's
   * business.
   */
  async pageFinalRunsUpdatedBetween(since: string, until: string, opts: { taskIds?: readonly string[]; after?: { updatedAt: string; id: string }; limit: number }): Promise<Omit<Run, 'outputTail'>[]> {
    let q = this.#db.kysely
      .selectFrom('runs')
      .select(['id', 'task_id', 'device_id', 'request_id', 'state', 'percent', 'attempt', 'cause', 'created_at', 'started_at', 'ended_at', 'exit_code', 'reason', 'updated_at'])
      .where('updated_at', '>=', since)
      .where('updated_at', '<', until)
      .where('state', 'in', [...finalRunStates]);
    if (opts.taskIds) q = q.where('task_id', 'in', opts.taskIds.length ? [...opts.taskIds] : ['']);
    const after = opts.after;
    // The row value resumes exactly after the last row; the plain bound beside it lets both
    // databases walk the updated_at index from there instead of scanning the period again.
    if (after) q = q.where('updated_at', '>=', after.updatedAt).where((eb) => eb(eb.refTuple('updated_at', 'id'), '>', eb.tuple(after.updatedAt, after.id)));
    const rows = await q.orderBy('updated_at').orderBy('id').limit(opts.limit).execute();
    return rows.map((r) => {
      const { outputTail: _, ...run } = toRun({ ...r, seq: 0, output_tail: null, expires_at: null });
      return run;
    });
  }
  /**
   * Deletes finished runs last updated before `time` that are no device's latest run of a task, in batches.
   * An anti-join, not a correlated NOT EXISTS: task_device_state has no index on run_id, and
   * SQLite ran the NOT EXISTS as a scan of task_device_state per candidate run (5,000 runs ×
   * 10,000 states held the event loop 4 s per batch); for the join it builds an automatic index
   * once per statement. PostgreSQL plans both as the same anti-join.
   */
  async purgeRunsBefore(time: string, batchSize = 5000): Promise<number> {
    const k = this.#db.kysely;
    return deleteInBatches(
      async (limit) =>
        (
          await k
            .selectFrom('runs')
            .leftJoin('task_device_state', 'task_device_state.run_id', 'runs.id')
            .select('runs.id')
            .where('runs.updated_at', '<', time)
            .where('runs.state', 'not in', ['pending', 'scheduled', 'running'])
            .where('task_device_state.run_id', 'is', null)
            .limit(limit)
            .execute()
        ).map((r) => r.id),
      (ids) => k.deleteFrom('runs').where('id', 'in', ids).execute(),
      batchSize,
    );
  }
}
