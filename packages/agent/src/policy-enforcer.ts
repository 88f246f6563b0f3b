/**
 * Policy enforcement on the device (PRODUCT.md "Policy", docs/adr/0020-policies.md).
 *
 * The agent receives its effective policies at check-in (only when their etag changed) and
 * keeps them here, in `<state>/policy/`, so that a restart enforces them without the server:
 *
 *   policies.json   the etag and every product's AgentProductPolicy, as last received
 *   applied.json    per product, the last successful application: its revision, the
 *                   administrator's values then (`policy`) and what was put on the device
 *                   (`applied`, with the local changes that stood): the `previous` of the next
 *   status.json     per product, the last PolicyStatusReport, and which of them the server
 *                   has not had yet (sent with the next check-in until a reply came back)
 *
 * For each product whose plug-in has applyPolicy, the enforcer calls it at once when the
 * product's revision differs from the one last applied (a new policy, a plug-in just
 * installed, a failed application after a restart) and again at every enforcement interval
 * (the garrison policy's policyEnforcementMinutes: the same clock as the `policy-enforcement`
 * task trigger, which onTick fires). Applications run one at a time; a request during one
 * runs once more after it. A plug-in that throws or does not answer within the time limit
 * gives state `failed` with the reason: the agent never fails with it, and `previous` stays
 * the last successful application.
 *
 * A status that differs from the product's last one (state, revision, drift or reason: not
 * merely its time) is kept as unsent and onStatusChanged is called, for the agent to check in
 * early (it debounces); an unchanged status sends nothing, so enforcement never loops with
 * check-ins.
 */
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { canonicalJson, reconcilePolicy } from '@garrison/core';
import type { AgentProductPolicy, PolicyStatusReport } from '@garrison/protocol';
import type { AgentPluginRegistry, PolicyApplication, PolicyContext, PolicyOutcome } from './plugins.ts';
import { readJson, writeJsonAtomic } from './state-file.ts';

export interface StoredPolicies {
  etag: string | null;
  products: AgentProductPolicy[];
}

export interface AppliedPolicy {
  revision: string;
  policy: Record<string, unknown>;
  applied: Record<string, unknown>;
  at: string;
}

interface StatusFile {
  reports: Record<string, PolicyStatusReport>;
  unsent: string[];
}

export interface PolicyEnforcerOptions {
  /** `<state>/policy` */
  dir: string;
  plugins: AgentPluginRegistry;
  /** The context handed to a product's applyPolicy (its emit writes the local log and the device-event spool). */
  context(product: string): PolicyContext;
  /** The enforcement interval now, in milliseconds (re-read after every tick). */
  intervalMs(): number;
  /** At each interval, after the applications were started: the `policy-enforcement` trigger. */
  onTick?(): void;
  /** A product's status changed: the agent checks in soon to send it. */
  onStatusChanged?(): void;
  /** How long an applyPolicy may take before it counts as failed. Default 5 minutes. */
  applyTimeoutMs?: number;
  log?(severity: 'info' | 'warning' | 'error', kind: string, message: string): void;
}

const MAX_REASON = 2000;
const MAX_DRIFT = 200;

export class PolicyEnforcer {
  readonly #o: PolicyEnforcerOptions;
  #stored: StoredPolicies = { etag: null, products: [] };
  #applied: Record<string, AppliedPolicy> = {};
  #status: StatusFile = { reports: {}, unsent: [] };
  /** Revisions attempted in this process (a failed one is tried again at the interval, not at every change request). */
  #attempted = new Map<string, string>();
  #running: Promise<void> | null = null;
  #again: { reason: 'changed' | 'enforcement' | 'requested' } | null = null;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;
  #initialised = false;

  constructor(o: PolicyEnforcerOptions) {
    this.#o = o;
  }

  async init(): Promise<void> {
    await mkdir(this.#o.dir, { recursive: true, mode: 0o700 });
    const log = (file: string) => (err: Error) => {
      this.#o.log?.('error', 'policy.state-corrupt', `${file}: ${err.message}; starting without it`);
      return undefined;
    };
    this.#stored = (await readJson<StoredPolicies>(this.#file('policies.json')).catch(log('policies.json'))) ?? this.#stored;
    this.#applied = (await readJson<Record<string, AppliedPolicy>>(this.#file('applied.json')).catch(log('applied.json'))) ?? {};
    this.#status = (await readJson<StatusFile>(this.#file('status.json')).catch(log('status.json'))) ?? this.#status;
    if (!Array.isArray(this.#stored.products)) this.#stored = { etag: null, products: [] };
    this.#initialised = true;
  }

  /** The etag of the policies held, for the check-in (null: none received yet). */
  get etag(): string | null {
    return this.#stored.etag;
  }
  policies(): readonly AgentProductPolicy[] {
    return this.#stored.products;
  }
  policy(product: string): AgentProductPolicy | undefined {
    return this.#stored.products.find((p) => p.product === product);
  }
  /** The last successful application of a product's policy. */
  applied(product: string): AppliedPolicy | undefined {
    return this.#applied[product];
  }
  status(product: string): PolicyStatusReport | undefined {
    return this.#status.reports[product];
  }

  /**
   * Starts the interval loop and enforces every policy held now: what changed on the device
   * while the agent was stopped is put right at start, not an interval later.
   */
  start(): void {
    this.#assertInitialised();
    this.#stopped = false;
    this.#arm();
    void this.enforce('enforcement');
  }
  /** The interval changed (a new garrison policy): the next tick comes after the new one. */
  rearm(): void {
    if (this.#timer) this.#arm();
  }
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running?.catch(() => {});
  }
  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#stopped) return;
      void this.enforce('enforcement');
      this.#o.onTick?.();
      this.#arm();
    }, Math.max(1, this.#o.intervalMs()));
    this.#timer.unref?.();
  }

  /** The check-in brought policies: kept durably, and those whose revision changed are applied now. */
  async setPolicies(p: StoredPolicies): Promise<void> {
    this.#assertInitialised();
    this.#stored = { etag: p.etag, products: p.products.map((x) => structuredClone(x)) };
    await writeJsonAtomic(this.#file('policies.json'), this.#stored);
    await this.enforce('changed');
  }

  /**
   * Applies policies: for 'changed', the products whose revision was not yet applied (or
   * attempted) in this process; for 'enforcement', every product with a policy and applyPolicy.
   * Resolves when this request's applications are done.
   */
  enforce(reason: 'changed' | 'enforcement' | 'requested'): Promise<void> {
    if (this.#running) {
      if (!this.#again || reason !== 'changed') this.#again = { reason };
      return this.#running;
    }
    this.#running = (async () => {
      let next: 'changed' | 'enforcement' | 'requested' | 'requested' | null = reason;
      while (next && !this.#stopped) {
        this.#again = null;
        await this.#enforceOnce(next);
        const again = this.#again as { reason: 'changed' | 'enforcement' | 'requested' } | null;
        next = again?.reason ?? null;
      }
    })().finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  async #enforceOnce(reason: 'changed' | 'enforcement' | 'requested'): Promise<void> {
    for (const policy of this.#stored.products) {
      if (this.#stopped) return;
      const plugin = this.#o.plugins.get(policy.product);
      if (!plugin?.applyPolicy) continue;
      if (reason === 'changed' && (this.#applied[policy.product]?.revision === policy.revision || this.#attempted.get(policy.product) === policy.revision)) continue;
      await this.#apply(policy, reason);
    }
  }

  /** One product now (a plug-in just loaded): applied unless this revision already is. */
  async applyProduct(product: string): Promise<void> {
    this.#attempted.delete(product);
    await this.enforce('changed');
  }

  async #apply(policy: AgentProductPolicy, reason: 'changed' | 'enforcement' | 'requested'): Promise<void> {
    const plugin = this.#o.plugins.get(policy.product)!;
    const prev = this.#applied[policy.product];
    this.#attempted.set(policy.product, policy.revision);
    let outcome: PolicyOutcome;
    const timeoutMs = this.#o.applyTimeoutMs ?? 5 * 60_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const application = {
        revision: policy.revision,
        settings: structuredClone(policy.settings),
        locked: [...policy.locked],
        previous: prev ? { policy: structuredClone(prev.policy), applied: structuredClone(prev.applied) } : null,
        reason,
      };
      const app: PolicyApplication = { ...application, reconcile: (found) => reconcilePolicy({ settings: application.settings, locked: application.locked }, application.previous, found) };
      outcome = await Promise.race([
        Promise.resolve().then(() => plugin.applyPolicy!(app, this.#o.context(policy.product))),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`applyPolicy did not finish within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
        }),
      ]);
      if (!outcome || typeof outcome !== 'object' || !['compliant', 'drifted', 'failed'].includes((outcome as PolicyOutcome).state)) throw new Error('applyPolicy returned no outcome');
    } catch (err) {
      outcome = { state: 'failed', reason: `applying the policy failed: ${(err as Error)?.message ?? String(err)}` } as PolicyOutcome;
    } finally {
      clearTimeout(timer);
    }
    const at = new Date().toISOString();
    if (outcome.state !== 'failed') {
      this.#applied[policy.product] = {
        revision: policy.revision,
        policy: structuredClone(policy.settings),
        applied: structuredClone(outcome.applied && typeof outcome.applied === 'object' ? outcome.applied : policy.settings),
        at,
      };
      await writeJsonAtomic(this.#file('applied.json'), this.#applied).catch((err: Error) => this.#o.log?.('error', 'policy.state-failed', `cannot keep the applied policy of ${policy.product}: ${err.message}`));
    } else {
      this.#o.log?.('error', 'policy.failed', `the policy of ${policy.product} (revision ${policy.revision}) could not be applied: ${outcome.reason ?? 'no reason given'}`);
    }
    await this.#record(statusReport(policy, outcome, at));
  }

  async #record(report: PolicyStatusReport): Promise<void> {
    const last = this.#status.reports[report.product];
    const { at: _a, ...a } = report;
    const same = last !== undefined && canonicalJson(a) === canonicalJson((({ at: _b, ...rest }) => rest)(last));
    if (same) return;
    this.#status.reports[report.product] = report;
    if (!this.#status.unsent.includes(report.product)) this.#status.unsent.push(report.product);
    await writeJsonAtomic(this.#file('status.json'), this.#status).catch((err: Error) => this.#o.log?.('error', 'policy.state-failed', `cannot keep the policy status of ${report.product}: ${err.message}`));
    this.#o.onStatusChanged?.();
  }

  /** The statuses the server has not had yet, for the next check-in. */
  pendingStatus(): PolicyStatusReport[] {
    return this.#status.unsent.map((p) => this.#status.reports[p]).filter((r): r is PolicyStatusReport => r !== undefined);
  }
  /** A check-in reply came back: the statuses it carried are the server's (unless a newer one came meanwhile). */
  async statusSent(sent: readonly PolicyStatusReport[]): Promise<void> {
    if (!sent.length) return;
    const before = this.#status.unsent.length;
    this.#status.unsent = this.#status.unsent.filter((p) => !sent.some((s) => s.product === p && s === this.#status.reports[p]));
    if (this.#status.unsent.length !== before) await writeJsonAtomic(this.#file('status.json'), this.#status).catch(() => {});
  }

  #file(name: string): string {
    return path.join(this.#o.dir, name);
  }
  #assertInitialised(): void {
    if (!this.#initialised) throw new Error('PolicyEnforcer.init() must be awaited before use');
  }
}

/** The outcome in the form of the protocol (bounded as its schema is). */
export function statusReport(policy: { product: string; revision: string }, outcome: PolicyOutcome, at: string): PolicyStatusReport {
  const drift = (outcome.drift ?? []).slice(0, MAX_DRIFT).map((d) => ({
    setting: String(d.setting).slice(0, 100),
    ...(d.expected !== undefined ? { expected: d.expected } : {}),
    ...(d.found !== undefined ? { found: d.found } : {}),
    action: d.action === 'kept-local' ? ('kept-local' as const) : ('restored' as const),
  }));
  return {
    product: policy.product,
    revision: policy.revision,
    state: outcome.state,
    at,
    ...(drift.length ? { drift } : {}),
    ...(outcome.reason ? { reason: String(outcome.reason).slice(0, MAX_REASON) } : {}),
  };
}
