/**
 * The dashboard (protocol operations/dashboard.ts): the monitors and trends, counted over the
 * devices of the groups the caller may read (an administrator confined to a subtree sees only
 * its devices' figures, and the events of its groups), and each administrator's layout.
 *
 * Everything is counted by the database (storage/dashboard-store.ts says which index each
 * count reads); nothing lists devices, runs or events into memory.
 */
import { DASHBOARD_MONITORS, DASHBOARD_TOP_DEFAULT, NOT_SEEN_BUCKETS, type DashboardLayout, type DashboardMonitorId, type DashboardMonitors, type DashboardTrend, type DashboardTrendDay, type ValueCounts } from '@garrison/protocol';
import { createHash } from 'node:crypto';
import { AppError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import type { DashboardStore } from '../storage/dashboard-store.ts';
import { Permission, reachList, reachOf, type Actor } from './actor.ts';
import type { Catalog } from './catalog.ts';

const DAY_MS = 86_400_000;
const DEFAULT_NOT_SEEN_DAYS = 7;
/**
 * How long the figures of past days are kept: they hardly change once the day is over (runs
 * end at the server's time; only a detection an agent kept while offline, a purge or a
 * deleted device changes them), while counting 30 days of runs reads every run of the period.
 */
export const PAST_DAYS_TTL_MS = 10 * 60_000;
/** How many callers' reaches keep their past days (the least recently used are dropped). */
const PAST_DAYS_CACHED = 200;

type DayCounts = Omit<DashboardTrendDay, 'date' | 'since' | 'until'>;
interface PastDays {
  /** The first day counted (midnight UTC, ms) and today's midnight when counted: the days in between are `days`. */
  from: number;
  today: number;
  at: number;
  days: Map<string, DayCounts>;
}

/** The layout of an administrator who has not chosen: every monitor, in the default order. */
export const DEFAULT_LAYOUT: readonly DashboardMonitorId[] = DASHBOARD_MONITORS;

function adminOf(actor: Actor): string {
  if (actor.kind !== 'admin') throw new AppError('FORBIDDEN', 'dashboard layouts belong to administrators');
  return actor.adminId;
}
/** The first `top` values, the rest summed. */
function topOf(rows: readonly { value: string; count: number }[], top: number): ValueCounts {
  const named = rows.slice(0, top);
  const rest = rows.slice(top);
  return { total: rows.reduce((a, r) => a + r.count, 0), top: named, other: rest.reduce((a, r) => a + r.count, 0), otherValues: rest.length };
}
/** Midnight UTC of the day `t` is in. */
function startOfDay(t: number): number {
  return Math.floor(t / DAY_MS) * DAY_MS;
}

export class DashboardService {
  readonly #store: DashboardStore;
  readonly #catalog: Catalog;
  readonly #clock: Clock;
  /** Past days' trend figures per reach (see PAST_DAYS_TTL_MS); today's are always counted afresh. */
  readonly #past = new Map<string, PastDays>();
  constructor(deps: { store: DashboardStore; catalog: Catalog; clock: Clock }) {
    this.#store = deps.store;
    this.#catalog = deps.catalog;
    this.#clock = deps.clock;
  }

  /** The caller's read reach for a query: undefined for all groups. */
  #groups(actor: Actor): string[] | undefined {
    return reachList(reachOf(actor, Permission.read, this.#catalog.tree));
  }

  async layout(actor: Actor): Promise<DashboardLayout> {
    const stored = await this.#store.layout(adminOf(actor));
    if (!stored) return { monitors: [...DEFAULT_LAYOUT], custom: false, updatedAt: null };
    // A monitor a later release no longer has is left out rather than failing the page.
    const known = new Set<string>(DASHBOARD_MONITORS);
    return { monitors: stored.monitors.filter((m): m is DashboardMonitorId => known.has(m)), custom: true, updatedAt: stored.updatedAt };
  }

  async putLayout(actor: Actor, monitors: readonly string[]): Promise<DashboardLayout> {
    const adminId = adminOf(actor);
    const known = new Set<string>(DASHBOARD_MONITORS);
    const unknown = [...new Set(monitors.filter((m) => !known.has(m)))];
    const seen = new Set<string>();
    const duplicates = [...new Set(monitors.filter((m) => (seen.has(m) ? true : (seen.add(m), false))))];
    if (unknown.length || duplicates.length) {
      const parts = [unknown.length ? `unknown monitor${unknown.length === 1 ? '' : 's'} ${unknown.map((m) => `"${m.slice(0, 64)}"`).join(', ')}` : '', duplicates.length ? `named more than once: ${duplicates.map((m) => `"${m.slice(0, 64)}"`).join(', ')}` : ''].filter(Boolean);
      throw new AppError('DASHBOARD_LAYOUT_INVALID', `the layout is not valid: ${parts.join('; ')} (monitors: ${DASHBOARD_MONITORS.join(', ')})`, { unknown, duplicates });
    }
    await this.#store.putLayout(adminId, monitors, this.#clock.now().toISOString());
    return this.layout(actor);
  }

  async resetLayout(actor: Actor): Promise<DashboardLayout> {
    await this.#store.deleteLayout(adminOf(actor));
    return this.layout(actor);
  }

  async monitors(actor: Actor, q: { notSeenDays?: number; top?: number }): Promise<DashboardMonitors> {
    const groups = this.#groups(actor);
    const now = this.#clock.now();
    const t = now.getTime();
    const days = q.notSeenDays ?? DEFAULT_NOT_SEEN_DAYS;
    const top = q.top ?? DASHBOARD_TOP_DEFAULT;
    const cutoffs = [days, ...NOT_SEEN_BUCKETS].map((d) => new Date(t - d * DAY_MS).toISOString());
    const since = [DAY_MS, 7 * DAY_MS, 30 * DAY_MS].map((ms) => new Date(t - ms).toISOString());
    const kinds = await this.#store.detectionKinds();
    const [seen, agents, oses, detections] = await Promise.all([
      this.#store.notSeen(cutoffs, groups),
      this.#store.countsBy('agent_version', groups),
      this.#store.countsBy('os_name', groups),
      this.#store.detectionsSince(kinds, since, groups),
    ]);
    return {
      at: now.toISOString(),
      devices: seen.total,
      detections: { last24h: detections[0]!, last7d: detections[1]!, last30d: detections[2]! },
      notSeen: { days, count: seen.notSeen[0]!, buckets: NOT_SEEN_BUCKETS.map((d, i) => ({ days: d, count: seen.notSeen[i + 1]! })) },
      agentVersions: topOf(agents, top),
      osVersions: topOf(oses, top),
    };
  }

  /**
   * Per UTC day over the last `days` days, today included. Today is counted on every call (an
   * index range of today's rows only); the days before are counted once and kept for
   * PAST_DAYS_TTL_MS per reach (a 7-day trend reuses a 30-day one's days).
   */
  async trend(actor: Actor, days = 7): Promise<DashboardTrend> {
    const groups = this.#groups(actor);
    const now = this.#clock.now().getTime();
    const today = startOfDay(now);
    const first = today - (days - 1) * DAY_MS;
    const kinds = await this.#store.detectionKinds();
    const [past, current] = await Promise.all([this.#pastDays(groups, kinds, first, today, now), this.#count(groups, kinds, today)]);
    const points: DashboardTrendDay[] = [];
    for (let i = 0; i < days; i++) {
      const start = new Date(first + i * DAY_MS);
      const date = start.toISOString().slice(0, 10);
      const c = (first + i * DAY_MS === today ? current : past).get(date);
      points.push({ date, since: start.toISOString(), until: new Date(first + (i + 1) * DAY_MS).toISOString(), succeeded: c?.succeeded ?? 0, failed: c?.failed ?? 0, detections: c?.detections ?? 0, enrolled: c?.enrolled ?? 0 });
    }
    return { days, since: points[0]!.since, until: points.at(-1)!.until, points };
  }

  /** The figures per day from `from` (midnight UTC, ms) until `until` (excluded; none: now). */
  async #count(groups: string[] | undefined, kinds: string[], from: number, until?: number): Promise<Map<string, DayCounts>> {
    const since = new Date(from).toISOString();
    const end = until === undefined ? undefined : new Date(until).toISOString();
    const [runs, detections, enrolled] = await Promise.all([this.#store.runOutcomesPerDay(since, groups, end), this.#store.detectionsPerDay(kinds, since, groups, end), this.#store.enrolledPerDay(since, groups, end)]);
    const out = new Map<string, DayCounts>();
    for (const day of new Set([...runs.keys(), ...detections.keys(), ...enrolled.keys()])) {
      out.set(day, { succeeded: runs.get(day)?.succeeded ?? 0, failed: runs.get(day)?.failed ?? 0, detections: detections.get(day) ?? 0, enrolled: enrolled.get(day) ?? 0 });
    }
    return out;
  }

  async #pastDays(groups: string[] | undefined, kinds: string[], from: number, today: number, now: number): Promise<Map<string, DayCounts>> {
    if (from >= today) return new Map();
    const key = groups ? createHash('sha256').update([...groups].sort().join('\n')).digest('base64url') : '*';
    const kept = this.#past.get(key);
    if (kept && kept.today === today && kept.from <= from && now - kept.at < PAST_DAYS_TTL_MS) {
      // Most recently used last.
      this.#past.delete(key);
      this.#past.set(key, kept);
      return kept.days;
    }
    const days = await this.#count(groups, kinds, from, today);
    this.#past.delete(key);
    this.#past.set(key, { from, today, at: now, days });
    while (this.#past.size > PAST_DAYS_CACHED) this.#past.delete(this.#past.keys().next().value!);
    return days;
  }
}
