/**
 * Push installation jobs and the state of each of their hosts. A job is written once when it
 * starts, its hosts as they move through their steps, and the job again when it ends. The
 * server running a job holds a lease on it (leases.ts: `lease_owner`, `lease_expires_at`,
 * counting while the job is running); a job whose lease ran out is marked interrupted.
 *
 * The tables are declared here (with Kysely's `withTables`) rather than in schema.ts: only
 * this store reads or writes them.
 */
import type { Kysely } from 'kysely';
import type { Page, PageRequest } from '@garrison/protocol';
import { decodeCursor, encodeCursor, pageLimit } from '../paging.ts';
import { AppError } from '../errors.ts';
import type { PushHostView, PushJobOptions, PushJobState, PushJobSummary, PushOutcome, PushStepView } from '@garrison/protocol';
import { chunkRows, type Db } from './database.ts';
import { LeaseTable } from './leases.ts';
import type { Database } from './schema.ts';

export interface PushJobsTable {
  id: string;
  group_id: string;
  requested_by: string;
  state: string;
  options: string;
  token_id: string | null;
  host_count: number;
  created_at: string;
  finished_at: string | null;
  lease_owner: string | null;
  lease_expires_at: string | null;
}

export interface PushHostsTable {
  job_id: string;
  idx: number;
  address: string;
  port: number;
  state: string;
  outcome: string | null;
  message: string | null;
  step: string | null;
  steps: string;
  percent: number;
  exit_code: number | null;
  output_tail: string | null;
  device_id: string | null;
  host_key_sha256: string | null;
  platform: string | null;
  started_at: string | null;
  finished_at: string | null;
}

type PushDatabase = Database & { push_jobs: PushJobsTable; push_hosts: PushHostsTable };

/** A job as stored; the API adds the group's path and the host summary. */
export interface PushJobRecord {
  id: string;
  groupId: string;
  requestedBy: string;
  state: PushJobState;
  options: PushJobOptions;
  tokenId: string | null;
  hostCount: number;
  createdAt: string;
  finishedAt: string | null;
}

export type PushHostRecord = PushHostView;

function toJob(r: PushJobsTable): PushJobRecord {
  return {
    id: r.id,
    groupId: r.group_id,
    requestedBy: r.requested_by,
    state: r.state as PushJobState,
    options: JSON.parse(r.options) as PushJobOptions,
    tokenId: r.token_id,
    hostCount: Number(r.host_count),
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  };
}

function toHost(r: PushHostsTable): PushHostRecord {
  const steps = JSON.parse(r.steps) as PushStepView[];
  // A host interrupted by interruptExpired() was ended by SQL alone: its running step ended with it.
  if (r.state === 'failed') for (const s of steps) if (s.state === 'running') Object.assign(s, { state: 'failed', finishedAt: r.finished_at });
  return {
    address: r.address,
    port: Number(r.port),
    state: r.state as PushHostView['state'],
    outcome: r.outcome as PushOutcome | null,
    message: r.message,
    step: r.step as PushHostView['step'],
    percent: Number(r.percent),
    steps,
    exitCode: r.exit_code === null ? null : Number(r.exit_code),
    outputTail: r.output_tail,
    deviceId: r.device_id,
    hostKeySha256: r.host_key_sha256,
    platform: r.platform,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
  };
}

function hostColumns(h: PushHostRecord): Omit<PushHostsTable, 'job_id' | 'idx' | 'address' | 'port'> {
  return {
    state: h.state,
    outcome: h.outcome,
    message: h.message,
    step: h.step,
    steps: JSON.stringify(h.steps),
    percent: Math.round(h.percent),
    exit_code: h.exitCode,
    output_tail: h.outputTail,
    device_id: h.deviceId,
    host_key_sha256: h.hostKeySha256,
    platform: h.platform,
    started_at: h.startedAt,
    finished_at: h.finishedAt,
  };
}

export function emptySummary(total: number): PushJobSummary {
  return { total, pending: 0, running: 0, succeeded: 0, failed: 0, outcomes: {} };
}

export class PushStore {
  readonly #db: Db;
  readonly #k: Kysely<PushDatabase>;
  readonly #lease: LeaseTable<PushDatabase, 'push_jobs'>;
  constructor(db: Db) {
    this.#db = db;
    this.#k = db.kysely.withTables<{ push_jobs: PushJobsTable; push_hosts: PushHostsTable }>();
    this.#lease = new LeaseTable(this.#k, { table: 'push_jobs', id: 'id', owner: 'lease_owner', expiresAt: 'lease_expires_at', held: (eb) => eb('state', '=', 'running') });
  }

  async insertJob(job: PushJobRecord, hosts: readonly PushHostRecord[], lease: { owner: string; expiresAt: string }): Promise<void> {
    await this.#k.transaction().execute(async (tx) => {
      await tx
        .insertInto('push_jobs')
        .values({
          id: job.id,
          group_id: job.groupId,
          requested_by: job.requestedBy,
          state: job.state,
          options: JSON.stringify(job.options),
          token_id: job.tokenId,
          host_count: job.hostCount,
          created_at: job.createdAt,
          finished_at: job.finishedAt,
          lease_owner: lease.owner,
          lease_expires_at: lease.expiresAt,
        })
        .execute();
      const rows = hosts.map((h, idx) => ({ job_id: job.id, idx, address: h.address, port: h.port, ...hostColumns(h) }));
      for (const chunk of chunkRows(rows, this.#db.dialect)) await tx.insertInto('push_hosts').values(chunk).execute();
    });
  }

  async updateHost(jobId: string, idx: number, host: PushHostRecord): Promise<void> {
    await this.#k.updateTable('push_hosts').set(hostColumns(host)).where('job_id', '=', jobId).where('idx', '=', idx).execute();
  }

  /** Records the end of a job this server holds; false when it no longer did (another server marked it interrupted). */
  async finishJob(jobId: string, owner: string, state: PushJobState, finishedAt: string): Promise<boolean> {
    return this.#lease.release(jobId, owner, { set: { state, finished_at: finishedAt } });
  }

  /** Extends the leases of this server's running jobs; returns the ones it still holds. */
  async renewLeases(jobIds: readonly string[], owner: string, expiresAt: string): Promise<string[]> {
    return this.#lease.renew(jobIds, owner, expiresAt);
  }

  /**
   * Marks running jobs whose lease has run out as interrupted, and their unfinished hosts as
   * failed with INTERRUPTED. Returns the jobs it marked (for their events).
   */
  async interruptExpired(now: string, message: string): Promise<PushJobRecord[]> {
    const marked: PushJobRecord[] = [];
    for (const r of await this.#lease.expired(now)) {
      const won = await this.#k.transaction().execute(async (tx) => {
        if (!(await this.#lease.on(tx).endExpired(r.id, now, { set: { state: 'interrupted', finished_at: now } }))) return false;
        await tx
          .updateTable('push_hosts')
          .set({ state: 'failed', outcome: 'INTERRUPTED', message, finished_at: now })
          .where('job_id', '=', r.id)
          .where('state', 'in', ['pending', 'running'])
          .execute();
        return true;
      });
      if (won) marked.push({ ...toJob(r), state: 'interrupted', finishedAt: now });
    }
    return marked;
  }

  async getJob(id: string): Promise<PushJobRecord | undefined> {
    const r = await this.#k.selectFrom('push_jobs').selectAll().where('id', '=', id).executeTakeFirst();
    return r ? toJob(r) : undefined;
  }

  async getHosts(jobId: string): Promise<PushHostRecord[]> {
    const rows = await this.#k.selectFrom('push_hosts').selectAll().where('job_id', '=', jobId).orderBy('idx').execute();
    return rows.map(toHost);
  }

  /**
   * One page of jobs, newest first: keyset on (created_at, id) descending, so a job started
   * while an administrator pages does not shift the pages after it. `total` counts the jobs
   * that match (one count over a table of a few thousand rows at most).
   */
  async pageJobs(filter: { state?: PushJobState; groupIds?: readonly string[] }, page: PageRequest): Promise<Page<PushJobRecord>> {
    const limit = pageLimit(page);
    const after = decodeCursor(page.cursor, 2);
    // Well-formed but not this list's key (numbers where the time and id go): refused like any foreign cursor.
    if (after && (typeof after[0] !== 'string' || typeof after[1] !== 'string')) throw new AppError('VALIDATION_FAILED', 'cursor is not one this list gave: pass the nextCursor of the previous page unchanged', { issues: [{ path: '/cursor', message: 'not a cursor of this list' }] });
    if (filter.groupIds && filter.groupIds.length === 0) return { items: [], nextCursor: null, total: 0 };
    let q = this.#k.selectFrom('push_jobs');
    if (filter.state) q = q.where('state', '=', filter.state);
    if (filter.groupIds) q = q.where('group_id', 'in', [...filter.groupIds]);
    const counted = await q.select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    let rowsQ = q.selectAll();
    if (after) rowsQ = rowsQ.where((eb) => eb(eb.refTuple('created_at', 'id'), '<', eb.tuple(after[0] as string, after[1] as string)));
    const rows = await rowsQ.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit + 1).execute();
    const jobs = rows.slice(0, limit).map(toJob);
    const last = jobs.at(-1);
    return { items: jobs, nextCursor: rows.length > limit && last ? encodeCursor([last.createdAt, last.id]) : null, total: Number(counted.n) };
  }

  /** Host counts per state and outcome, per job. */
  async summaries(jobs: readonly PushJobRecord[]): Promise<Map<string, PushJobSummary>> {
    const out = new Map<string, PushJobSummary>(jobs.map((j) => [j.id, emptySummary(j.hostCount)]));
    if (jobs.length === 0) return out;
    const rows = await this.#k
      .selectFrom('push_hosts')
      .select((eb) => ['job_id', 'state', 'outcome', eb.fn.countAll().as('n')])
      .where('job_id', 'in', jobs.map((j) => j.id))
      .groupBy(['job_id', 'state', 'outcome'])
      .execute();
    for (const r of rows) {
      const s = out.get(r.job_id)!;
      const n = Number(r.n);
      const state = r.state as keyof Omit<PushJobSummary, 'total' | 'outcomes'>;
      if (state in s) s[state] += n;
      if (r.outcome) s.outcomes[r.outcome as PushOutcome] = (s.outcomes[r.outcome as PushOutcome] ?? 0) + n;
    }
    return out;
  }
}
