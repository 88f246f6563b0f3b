/**
 * Leases: a row claimed by an owner (a server instance) until a time, renewed while the owner
 * holds it, released when the work is done, and free for anyone once the time has passed.
 * This is how several server instances on one database share work without locks: a lock dies
 * with its connection, and a connection pool or a network partition makes that an unreliable
 * signal; a lease dies with its owner's silence, which is what "the instance stopped" means.
 *
 * Every change that decides who holds a row is one compare-and-set UPDATE: its WHERE says what
 * must still be true (the lease is free or expired; this owner still holds it) and the number
 * of rows it changed says whether it was. Both SQLite (one writer at a time) and PostgreSQL
 * (a concurrent UPDATE waits for the row and then re-checks the WHERE on its new version, in
 * READ COMMITTED) make that exact, so no dialect capability is needed here.
 *
 * Timestamps are the ISO-8601 UTC text that `Date.toISOString()` gives, compared as text: the
 * same fixed-width format orders the same way as the instants it names.
 *
 * Two pieces:
 * - `LeaseTable` knows the table and its lease columns and runs the statements.
 * - `LeaseKeeper` renews, every third of the lease, what this process holds, and says which
 *   leases were lost (taken over after this process failed to renew them in time).
 */
import type { Expression, ExpressionBuilder, Kysely, Selectable, SelectType, SqlBool, UpdateObject } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import { startLoop, type Loop } from '../scheduler/loop.ts';

/** Columns of table `TB` whose values are text (the row's id). */
type TextColumn<DB, TB extends keyof DB> = {
  [C in keyof DB[TB] & string]: SelectType<DB[TB][C]> extends string ? C : never;
}[keyof DB[TB] & string];
/** Columns of table `TB` that hold text or null (the lease's owner and its end). */
type NullableTextColumn<DB, TB extends keyof DB> = {
  [C in keyof DB[TB] & string]: null extends SelectType<DB[TB][C]> ? (NonNullable<SelectType<DB[TB][C]>> extends string ? C : never) : never;
}[keyof DB[TB] & string];

/** An extra condition on the row, in the table's own types. */
export type RowCondition<DB, TB extends keyof DB> = (eb: ExpressionBuilder<DB, TB>) => Expression<SqlBool>;

export interface LeaseSpec<DB, TB extends keyof DB & string> {
  table: TB;
  id: TextColumn<DB, TB>;
  owner: NullableTextColumn<DB, TB>;
  expiresAt: NullableTextColumn<DB, TB>;
  /**
   * When the row's lease means something (push jobs and server-task runs: `state = 'running'`).
   * Renewing, releasing, updating while held and finding expired leases apply to such rows
   * only; a finished row keeps no lease even if its columns were left set.
   */
  held?: RowCondition<DB, TB>;
}

/** What a change writes besides the lease columns, and what else it requires of the row. */
export interface LeaseChange<DB, TB extends keyof DB> {
  set?: UpdateObject<DB, TB>;
  where?: RowCondition<DB, TB>;
}

/**
 * The statements are built on an untyped view of the database: Kysely cannot check a query
 * whose table and column names are type parameters. The public methods are typed by the spec
 * (columns of the right kind in the right table); only this file sees the untyped view.
 */
type AnyRow = Record<string, unknown>;
type AnyDb = Record<string, AnyRow>;

export class LeaseTable<DB, TB extends keyof DB & string> {
  readonly #k: Kysely<AnyDb>;
  readonly #given: LeaseSpec<DB, TB>;
  readonly #spec: { table: string; id: string; owner: string; expiresAt: string; held?: RowCondition<DB, TB> };
  constructor(kysely: Kysely<DB>, spec: LeaseSpec<DB, TB>) {
    this.#k = kysely as unknown as Kysely<AnyDb>;
    this.#given = spec;
    this.#spec = spec;
  }

  /** The same lease on another connection or transaction (`Transaction<DB>` is a `Kysely<DB>`). */
  on(kysely: Kysely<DB>): LeaseTable<DB, TB> {
    return new LeaseTable(kysely, this.#given);
  }

  /**
   * Gives row `id` to `owner` until `until` if its lease is free or expired at `now` (and
   * `change.where` holds); true when this owner got it. Of owners racing for one row, exactly
   * one gets true.
   */
  async claim(id: string, lease: { owner: string; now: string; until: string }, change: LeaseChange<DB, TB> = {}): Promise<boolean> {
    const s = this.#spec;
    let q = this.#k
      .updateTable(s.table)
      .set({ ...(change.set as AnyRow | undefined), [s.owner]: lease.owner, [s.expiresAt]: lease.until })
      .where(s.id, '=', id)
      .where((eb) => eb.or([eb(s.owner, 'is', null), this.#expired(eb, lease.now)]));
    if (change.where) q = q.where(this.#cond(change.where));
    return Number((await q.executeTakeFirst()).numUpdatedRows) === 1;
  }

  /** Extends the leases `owner` still holds among `ids` to `until`; returns those (the others are lost). */
  async renew(ids: readonly string[], owner: string, until: string): Promise<string[]> {
    if (ids.length === 0) return [];
    const s = this.#spec;
    const rows = await this.#k
      .updateTable(s.table)
      .set({ [s.expiresAt]: until })
      .where(s.id, 'in', [...ids])
      .where((eb) => this.#heldBy(eb, owner))
      .returning(s.id)
      .execute();
    return rows.map((r) => r[s.id] as string);
  }

  /** Ends `owner`'s lease on `id`, writing `change.set` with it; false when `owner` no longer held it. */
  async release(id: string, owner: string, change: LeaseChange<DB, TB> = {}): Promise<boolean> {
    const s = this.#spec;
    return this.updateHeld(id, owner, { ...change, set: { ...change.set, [s.owner]: null, [s.expiresAt]: null } as UpdateObject<DB, TB> });
  }

  /** Writes `change.set` on `id` only while `owner` holds it (progress of the work); false when it does not. */
  async updateHeld(id: string, owner: string, change: LeaseChange<DB, TB>): Promise<boolean> {
    const s = this.#spec;
    let q = this.#k
      .updateTable(s.table)
      .set((change.set ?? {}) as AnyRow)
      .where(s.id, '=', id)
      .where((eb) => this.#heldBy(eb, owner));
    if (change.where) q = q.where(this.#cond(change.where));
    return Number((await q.executeTakeFirst()).numUpdatedRows) === 1;
  }

  /** Held rows whose lease had run out at `now` (their owner stopped renewing: it died or lost the database). */
  async expired(now: string): Promise<Selectable<DB[TB]>[]> {
    const s = this.#spec;
    let q = this.#k.selectFrom(s.table).selectAll().where((eb) => this.#expired(eb, now));
    if (s.held) q = q.where(this.#cond(s.held));
    return (await q.execute()) as Selectable<DB[TB]>[];
  }

  /**
   * Ends the lease on `id` if it is still expired at `now`, writing `change.set` with it (an
   * abandoned row handed back or marked as interrupted); false when its owner renewed it in
   * the meantime or someone else ended it first.
   */
  async endExpired(id: string, now: string, change: LeaseChange<DB, TB> = {}): Promise<boolean> {
    const s = this.#spec;
    let q = this.#k
      .updateTable(s.table)
      .set({ ...(change.set as AnyRow | undefined), [s.owner]: null, [s.expiresAt]: null })
      .where(s.id, '=', id)
      .where((eb) => this.#expired(eb, now));
    if (s.held) q = q.where(this.#cond(s.held));
    if (change.where) q = q.where(this.#cond(change.where));
    return Number((await q.executeTakeFirst()).numUpdatedRows) === 1;
  }

  /** A lease without an end (a row left half-written) counts as expired: nobody vouches for it. */
  #expired(eb: ExpressionBuilder<AnyDb, string>, now: string): Expression<SqlBool> {
    const s = this.#spec;
    return eb.or([eb(s.expiresAt, 'is', null), eb(s.expiresAt, '<', now)]);
  }
  /** Held by `owner`, in the state in which a lease counts. */
  #heldBy(eb: ExpressionBuilder<AnyDb, string>, owner: string): Expression<SqlBool> {
    const s = this.#spec;
    return eb.and([eb(s.owner, '=', owner), ...(s.held ? [this.#cond(s.held)(eb)] : [])]);
  }
  #cond(c: RowCondition<DB, TB>): RowCondition<AnyDb, string> {
    return c as unknown as RowCondition<AnyDb, string>;
  }
}

/** What a `LeaseKeeper` renews through (a store's method over its `LeaseTable`). */
export type RenewLeases = (ids: readonly string[], owner: string, until: string) => Promise<readonly string[]>;

export interface LeaseKeeperOptions {
  /** The loop's name in the log. */
  name: string;
  owner: string;
  leaseMs: number;
  renew: RenewLeases;
  clock: Clock;
  log: Logger;
  /**
   * Leases this process held but could not renew: another owner took them over (this process
   * was too slow, or cut off from the database, for longer than a lease). The work on them
   * should stop; its results belong to whoever holds the row now. Called once per id.
   */
  onLost?: (ids: string[]) => void;
}

/**
 * Renews what this process holds, every third of the lease: two renewals can fail (a slow
 * database, a long pause) before the lease runs out. The ids it renews are the ones given to
 * `hold` and not yet to `forget`; call `forget` *before* releasing a row in the database, so
 * that a renewal in flight does not report a row that was released as lost.
 */
export class LeaseKeeper {
  readonly owner: string;
  readonly leaseMs: number;
  readonly #opts: LeaseKeeperOptions;
  readonly #held = new Set<string>();
  readonly #loop: Loop;

  constructor(opts: LeaseKeeperOptions) {
    this.owner = opts.owner;
    this.leaseMs = opts.leaseMs;
    this.#opts = opts;
    this.#loop = startLoop(opts.name, Math.max(50, Math.floor(opts.leaseMs / 3)), () => this.#renew(), opts.log);
  }

  /** The end of a lease taken or renewed now. */
  until(): string {
    return new Date(this.#opts.clock.now().getTime() + this.leaseMs).toISOString();
  }
  /** Starts renewing `id` (just claimed or inserted by this owner). */
  hold(id: string): void {
    this.#held.add(id);
  }
  /** Stops renewing `id`: call it before releasing the row. */
  forget(id: string): void {
    this.#held.delete(id);
  }
  held(): string[] {
    return [...this.#held];
  }
  /** Renews now and waits (tests; the loop does it on its own). */
  renewNow(): Promise<void> {
    return this.#loop.runNow();
  }
  /** Stops renewing; resolves once a renewal in flight has finished. Releasing is the caller's. */
  stop(): Promise<void> {
    return this.#loop.stop();
  }

  async #renew(): Promise<void> {
    const ids = [...this.#held];
    if (ids.length === 0) return;
    const renewed = new Set(await this.#opts.renew(ids, this.owner, this.until()));
    // Still held here after the renewal: not forgotten (and released) while it ran, so really lost.
    const lost = ids.filter((id) => !renewed.has(id) && this.#held.has(id));
    if (lost.length === 0) return;
    for (const id of lost) this.#held.delete(id);
    this.#opts.log.warn({ loop: this.#opts.name, owner: this.owner, ids: lost }, 'leases lost: another owner took them over');
    this.#opts.onLost?.(lost);
  }
}
