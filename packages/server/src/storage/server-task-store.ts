/**
 * Server tasks and their runs. A run row doubles as the unit of work server instances share:
 * claiming is a compare-and-set on its state, and the claim is a lease (leases.ts: `owner`,
 * `lease_until`, counting while the run is running) renewed while the run goes on, so a run
 * whose instance died is reaped and taken again instead of staying "running" for ever.
 */
import type { Schedule, ServerTask, ServerTaskRun, ServerTaskRunState } from '@garrison/protocol';
import type { Page, PageRequest } from '@garrison/protocol';
import { AppError } from '../errors.ts';
import { decodeCursor, encodeCursor, pageLimit } from '../paging.ts';
import { deleteInBatches, type Db } from './database.ts';
import { LeaseTable } from './leases.ts';
import type { Database, ServerTaskRunsTable, ServerTasksTable } from './schema.ts';

function toTask(r: ServerTasksTable): ServerTask {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    type: r.type,
    settings: JSON.parse(r.settings) as Record<string, unknown>,
    schedule: JSON.parse(r.schedule) as Schedule,
    enabled: r.enabled === 1,
    revision: r.revision,
    nextRunAt: r.next_run_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}
function toRow(t: ServerTask): Omit<ServerTasksTable, 'deleted_at'> {
  return {
    id: t.id,
    name: t.name,
    description: t.description,
    type: t.type,
    settings: JSON.stringify(t.settings),
    schedule: JSON.stringify(t.schedule),
    enabled: t.enabled ? 1 : 0,
    revision: t.revision,
    next_run_at: t.nextRunAt,
    created_at: t.createdAt,
    updated_at: t.updatedAt,
  };
}
export function toServerTaskRun(r: ServerTaskRunsTable): ServerTaskRun {
  return {
    id: r.id,
    taskId: r.task_id,
    state: r.state as ServerTaskRunState,
    cause: r.cause,
    attempt: r.attempt,
    percent: r.percent,
    message: r.message,
    createdAt: r.created_at,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    summary: r.summary,
    result: r.result === null ? null : (JSON.parse(r.result) as Record<string, unknown>),
    outputTail: r.output_tail,
    createdBy: r.created_by,
  };
}

export type NewServerTaskRun = Pick<ServerTaskRunsTable, 'id' | 'task_id' | 'cause' | 'attempt' | 'created_at' | 'not_before' | 'created_by'> & { state?: ServerTaskRunState; summary?: string; ended_at?: string };

const ACTIVE = ['pending', 'running'];

export class ServerTaskStore {
  readonly #db: Db;
  readonly #lease: LeaseTable<Database, 'server_task_runs'>;
  constructor(db: Db) {
    this.#db = db;
    this.#lease = new LeaseTable(db.kysely, { table: 'server_task_runs', id: 'id', owner: 'owner', expiresAt: 'lease_until', held: (eb) => eb('state', '=', 'running') });
  }

  async listTasks(): Promise<ServerTask[]> {
    return (await this.#db.kysely.selectFrom('server_tasks').selectAll().where('deleted_at', 'is', null).orderBy('name').execute()).map(toTask);
  }
  async getTask(id: string): Promise<ServerTask | undefined> {
    const r = await this.#db.kysely.selectFrom('server_tasks').selectAll().where('id', '=', id).where('deleted_at', 'is', null).executeTakeFirst();
    return r && toTask(r);
  }
  async insertTask(t: ServerTask): Promise<void> {
    await this.#db.kysely.insertInto('server_tasks').values({ ...toRow(t), deleted_at: null }).execute();
  }
  /** Writes the task only if it is still at `revision` (another administrator or instance may have changed it). */
  async replaceTask(t: ServerTask, revision: number): Promise<boolean> {
    const r = await this.#db.kysely.updateTable('server_tasks').set(toRow(t)).where('id', '=', t.id).where('revision', '=', revision).where('deleted_at', 'is', null).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }
  async softDeleteTask(id: string, at: string): Promise<void> {
    await this.#db.kysely.updateTable('server_tasks').set({ deleted_at: at, next_run_at: null }).where('id', '=', id).execute();
  }
  /** Enabled tasks whose schedule has come due. */
  async dueTasks(now: string): Promise<ServerTask[]> {
    const rows = await this.#db.kysely.selectFrom('server_tasks').selectAll().where('deleted_at', 'is', null).where('enabled', '=', 1).where('next_run_at', '<=', now).execute();
    return rows.map(toTask);
  }
  /** Moves a due task to its next fire time; false when another instance already did (it fires the run). */
  async advanceNextRun(id: string, expected: string, next: string | null): Promise<boolean> {
    const r = await this.#db.kysely.updateTable('server_tasks').set({ next_run_at: next }).where('id', '=', id).where('next_run_at', '=', expected).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async hasActiveRun(taskId: string): Promise<boolean> {
    return !!(await this.#db.kysely.selectFrom('server_task_runs').select('id').where('task_id', '=', taskId).where('state', 'in', ACTIVE).executeTakeFirst());
  }
  async insertRun(run: NewServerTaskRun): Promise<void> {
    await this.#db.kysely
      .insertInto('server_task_runs')
      .values({
        id: run.id,
        task_id: run.task_id,
        state: run.state ?? 'pending',
        cause: run.cause,
        attempt: run.attempt,
        percent: null,
        message: null,
        created_at: run.created_at,
        not_before: run.not_before,
        started_at: null,
        ended_at: run.ended_at ?? null,
        owner: null,
        lease_until: null,
        stop_requested_at: null,
        summary: run.summary ?? null,
        result: null,
        output_tail: null,
        created_by: run.created_by,
      })
      .execute();
  }
  /** Claims up to `limit` pending runs that are due; each claim is a compare-and-set, so two instances never take the same run. */
  async claimRuns(owner: string, now: string, leaseUntil: string, limit: number): Promise<ServerTaskRunsTable[]> {
    const k = this.#db.kysely;
    const candidates = await k.selectFrom('server_task_runs').select('id').where('state', '=', 'pending').where('not_before', '<=', now).orderBy('not_before').limit(limit).execute();
    const claimed: ServerTaskRunsTable[] = [];
    for (const { id } of candidates) {
      const won = await this.#lease.claim(id, { owner, now, until: leaseUntil }, { set: { state: 'running', started_at: now }, where: (eb) => eb('state', '=', 'pending') });
      if (won) claimed.push((await k.selectFrom('server_task_runs').selectAll().where('id', '=', id).executeTakeFirst())!);
    }
    return claimed;
  }
  /** Extends the leases `owner` still holds among `ids`; returns those. */
  async renewLeases(ids: readonly string[], owner: string, until: string): Promise<string[]> {
    return this.#lease.renew(ids, owner, until);
  }
  /** Whether an administrator asked the run to stop (on whichever instance: the one running it polls). */
  async stopRequested(id: string): Promise<boolean> {
    const row = await this.#db.kysely.selectFrom('server_task_runs').select('stop_requested_at').where('id', '=', id).executeTakeFirst();
    return !!row?.stop_requested_at;
  }
  async saveProgress(id: string, owner: string, fields: { percent: number | null; message: string | null; output_tail: string | null }): Promise<void> {
    await this.#lease.updateHeld(id, owner, { set: fields });
  }
  async finishRun(id: string, owner: string, fields: { state: ServerTaskRunState; ended_at: string; summary: string; result: string | null; output_tail: string | null; percent: number | null }): Promise<boolean> {
    return this.#lease.release(id, owner, { set: fields });
  }
  /** Hands a running run back (server shutdown): the next instance to tick resumes it. */
  async releaseRun(id: string, owner: string, message: string): Promise<void> {
    await this.#lease.release(id, owner, { set: { state: 'pending', message } });
  }
  /** Runs whose instance stopped renewing their lease go back to pending; returns them. */
  async reapExpired(now: string): Promise<ServerTaskRunsTable[]> {
    const reaped: ServerTaskRunsTable[] = [];
    for (const row of await this.#lease.expired(now)) {
      const won = await this.#lease.endExpired(row.id, now, {
        set: { state: 'pending', cause: 'resumed', attempt: row.attempt + 1, not_before: now, message: 'resumed: the server instance running it stopped' },
        // The attempt read above is the one this takes the run from (not one a faster instance already resumed).
        where: (eb) => eb('attempt', '=', row.attempt),
      });
      if (won) reaped.push(row);
    }
    return reaped;
  }
  /** Cancels the task's pending runs and asks its running ones to stop; returns the affected runs. */
  async requestStop(taskId: string, at: string, by: string): Promise<{ cancelled: string[]; stopping: string[] }> {
    const k = this.#db.kysely;
    const active = await k.selectFrom('server_task_runs').select(['id', 'state']).where('task_id', '=', taskId).where('state', 'in', ACTIVE).execute();
    const out = { cancelled: [] as string[], stopping: [] as string[] };
    for (const r of active) {
      if (r.state === 'pending') {
        const u = await k
          .updateTable('server_task_runs')
          .set({ state: 'cancelled', ended_at: at, summary: `cancelled by ${by} before it started` })
          .where('id', '=', r.id)
          .where('state', '=', 'pending')
          .executeTakeFirst();
        if (Number(u.numUpdatedRows) === 1) out.cancelled.push(r.id);
      } else {
        await k.updateTable('server_task_runs').set({ stop_requested_at: at }).where('id', '=', r.id).where('state', '=', 'running').execute();
        out.stopping.push(r.id);
      }
    }
    return out;
  }
  /**
   * One page of runs, newest first: keyset on (created_at, id) descending, so runs created
   * while an administrator pages do not shift the pages after it. No total: the history can be
   * long and the state filter has no index.
   */
  async pageRuns(filter: { taskId?: string; state?: string }, page: PageRequest): Promise<Page<ServerTaskRun>> {
    const limit = pageLimit(page);
    const after = decodeCursor(page.cursor, 2);
    // Well-formed but not this list's key (numbers where the time and id go): refused like any foreign cursor.
    if (after && (typeof after[0] !== 'string' || typeof after[1] !== 'string')) throw new AppError('VALIDATION_FAILED', 'cursor is not one this list gave: pass the nextCursor of the previous page unchanged', { issues: [{ path: '/cursor', message: 'not a cursor of this list' }] });
    let q = this.#db.kysely.selectFrom('server_task_runs').selectAll();
    if (filter.taskId) q = q.where('task_id', '=', filter.taskId);
    if (filter.state) q = q.where('state', '=', filter.state);
    if (after) q = q.where((eb) => eb(eb.refTuple('created_at', 'id'), '<', eb.tuple(after[0] as string, after[1] as string)));
    const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit + 1).execute();
    const items = rows.slice(0, limit).map(toServerTaskRun);
    const last = items.at(-1);
    return { items, nextCursor: rows.length > limit && last ? encodeCursor([last.createdAt, last.id]) : null };
  }
  async getRun(id: string): Promise<ServerTaskRun | undefined> {
    const r = await this.#db.kysely.selectFrom('server_task_runs').selectAll().where('id', '=', id).executeTakeFirst();
    return r && toServerTaskRun(r);
  }
  /** Finished runs older than `time`, a batch at a time (database maintenance). */
  async purgeRunsBefore(time: string, batchSize = 5000): Promise<number> {
    const k = this.#db.kysely;
    return deleteInBatches(
      async (limit) => (await k.selectFrom('server_task_runs').select('id').where('created_at', '<', time).where('state', 'not in', ACTIVE).limit(limit).execute()).map((r) => r.id),
      (ids) => k.deleteFrom('server_task_runs').where('id', 'in', ids).execute(),
      batchSize,
    );
  }
}
