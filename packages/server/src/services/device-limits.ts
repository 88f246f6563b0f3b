/**
 * Per-device limits (ADR 0013): one device, even one holding a valid credential and sending
 * what it likes, cannot flood the server. Token buckets per device for messages (check-ins,
 * reports, credential and uninstall calls, over the WebSocket or HTTP), run events (what
 * reaches the central event log) and local task changes; a cap on local tasks per device.
 *
 * What is refused is counted per device and per error code (GET /api/v1/security/refusals),
 * and a warning event is written at most once per device per REFUSAL_EVENT_EVERY_MS, so that
 * the refusals themselves cannot fill the event log.
 *
 * Buckets are kept in memory per server instance: behind a load balancer that keeps an
 * agent's connection on one instance this is the device's whole budget; spread over N
 * instances a device gets at most N times it, still bounded.
 */
import type { RefusalCounts } from '@garrison/protocol';
import type { Clock } from '../clock.ts';
import type { EventService } from './event-service.ts';

export interface BucketSpec {
  /** Tokens available at once (the burst). */
  capacity: number;
  /** Tokens added per second. */
  perSecond: number;
}
export const DEVICE_LIMITS = {
  /** Agent messages: check-ins are minutes apart and reports are batched, so a few per second is generous. */
  messages: { capacity: 300, perSecond: 5 },
  /** Run events (detections, deployment steps) entering the central log: 3,600 an hour, 2,000 at once. */
  events: { capacity: 2000, perSecond: 1 },
  /** Local task changes from the device's user: 100 an hour. */
  localChanges: { capacity: 100, perSecond: 100 / 3600 },
} as const satisfies Record<string, BucketSpec>;
export type LimitKind = keyof typeof DEVICE_LIMITS;
/** Local tasks one device may hold (created on the device; administrators' local tasks are not counted). */
export const MAX_LOCAL_TASKS_PER_DEVICE = 100;
const REFUSAL_EVENT_EVERY_MS = 10 * 60_000;

interface Buckets {
  tokens: Record<LimitKind, number>;
  at: number;
}


export class DeviceLimits {
  readonly #clock: Clock;
  readonly #events: EventService;
  readonly #buckets = new Map<string, Buckets>();
  readonly #refusals = new Map<string, { total: number; byCode: Record<string, number>; lastAt: number; warnedAt: number }>();
  readonly #byCode: Record<string, number> = {};
  #total = 0;
  readonly #since: string;

  constructor(deps: { clock: Clock; events: EventService }) {
    this.#clock = deps.clock;
    this.#events = deps.events;
    this.#since = deps.clock.now().toISOString();
  }

  /**
   * Takes up to `n` tokens of a kind for a device; returns how many it got (0 when the bucket
   * is empty). A message asks for 1; a report with events asks for as many as it carries.
   */
  take(deviceId: string, kind: LimitKind, n = 1): number {
    const now = this.#clock.now().getTime();
    let b = this.#buckets.get(deviceId);
    if (!b) {
      b = { tokens: { messages: DEVICE_LIMITS.messages.capacity, events: DEVICE_LIMITS.events.capacity, localChanges: DEVICE_LIMITS.localChanges.capacity }, at: now };
      this.#buckets.set(deviceId, b);
    }
    const elapsed = Math.max(0, now - b.at) / 1000;
    if (elapsed > 0) {
      for (const k of Object.keys(DEVICE_LIMITS) as LimitKind[]) b.tokens[k] = Math.min(DEVICE_LIMITS[k].capacity, b.tokens[k] + elapsed * DEVICE_LIMITS[k].perSecond);
      b.at = now;
    }
    const got = Math.min(n, Math.floor(b.tokens[kind]));
    b.tokens[kind] -= got;
    return got;
  }

  /** Counts `n` refused items of a device under an error code, and tells the event log (rate-limited). */
  /** `what` says what happened, as a sentence start: "a run report was refused". */
  refused(deviceId: string, code: string, n = 1, what = 'messages were refused'): void {
    const now = this.#clock.now().getTime();
    let r = this.#refusals.get(deviceId);
    if (!r) this.#refusals.set(deviceId, (r = { total: 0, byCode: {}, lastAt: now, warnedAt: 0 }));
    r.total += n;
    r.byCode[code] = (r.byCode[code] ?? 0) + n;
    r.lastAt = now;
    this.#total += n;
    this.#byCode[code] = (this.#byCode[code] ?? 0) + n;
    if (now - r.warnedAt >= REFUSAL_EVENT_EVERY_MS) {
      r.warnedAt = now;
      this.#events.record({
        severity: 'warning',
        kind: 'device.refused',
        message: `${what} (${code}); more refusals of this device are counted without an event for ${REFUSAL_EVENT_EVERY_MS / 60_000} minutes`,
        deviceId,
        data: { code, counts: { ...r.byCode } },
      });
    }
  }

  counts(): RefusalCounts {
    const devices = [...this.#refusals.entries()]
      .sort((a, b) => b[1].total - a[1].total)
      .slice(0, 100)
      .map(([deviceId, r]) => ({ deviceId, total: r.total, byCode: { ...r.byCode }, lastAt: new Date(r.lastAt).toISOString() }));
    return { since: this.#since, total: this.#total, byCode: { ...this.#byCode }, devices };
  }
}
