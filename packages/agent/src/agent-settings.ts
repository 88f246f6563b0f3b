/**
 * The agent's own settings on the device: the built-in product "garrison"'s policy
 * (AgentPolicySettings in protocol/policy.ts) as it is in force here.
 *
 * They live in `<state>/agent-settings.json`, a plain file the device's administrator can
 * read (and edit: what the file says is what the agent finds at its next enforcement). The
 * garrison plug-in's applyPolicy reconciles the file with the effective policy
 * (reconcilePolicy from @garrison/core): a locked setting found changed — through the local
 * API or by editing the file by hand — is put back, with a `policy.restored` event to the
 * local log and the central event log; an unlocked one the local user changed stands until the
 * administrator changes that setting. A value in the file that is not a valid value of its
 * setting is put back too. The local API changes unlocked settings through setLocal(), which
 * refuses locked ones (POLICY_SETTING_LOCKED).
 *
 * What is in force is handed to onChange (the agent then re-arms its check-in and enforcement
 * clocks, reconfigures its event log, and so on); at each enforcement, rotated log files older
 * than logRetentionDays are deleted.
 */
import { canonicalJson, reconcilePolicy } from '@garrison/core';
import { AgentPolicySettings, DEFAULT_AGENT_POLICY, checker, type Checker } from '@garrison/protocol';
import type { TSchema } from 'typebox';
import type { LocalEventLog } from './event-log.ts';
import type { PolicyApplication, PolicyContext, PolicyOutcome } from './plugins.ts';
import { readJson, writeJsonAtomic } from './state-file.ts';

export const AGENT_SETTINGS_FILE = 'agent-settings.json';
const DAY_MS = 86_400_000;

const settingSchemas = (AgentPolicySettings as unknown as { properties: Record<string, TSchema> }).properties;
const settingCheckers = new Map<string, Checker<TSchema>>(Object.entries(settingSchemas).map(([k, s]) => [k, checker(s)]));
const wholeChecker = checker(AgentPolicySettings);

/** Why a local change is refused: `code` is an ErrorCode. */
export class SettingsChangeError extends Error {
  readonly code: 'POLICY_SETTING_LOCKED' | 'VALIDATION_FAILED';
  readonly status: number;
  constructor(code: SettingsChangeError['code'], message: string) {
    super(message);
    this.code = code;
    this.status = code === 'POLICY_SETTING_LOCKED' ? 403 : 400;
  }
}

/** The problems of one setting's value, as sentences (empty: valid). */
export function settingProblems(key: string, value: unknown): string[] {
  const c = settingCheckers.get(key);
  if (!c) return [`"${key}" is not a setting of the agent (settings: ${[...settingCheckers.keys()].join(', ')})`];
  if (c.check(value)) return [];
  return c.issues(value, 3).map((i) => `${key}${i.path === '/' ? '' : i.path}: ${i.message}`);
}

export interface AgentSettingsOptions {
  /** `<state>/agent-settings.json` */
  file: string;
  /** The settings now in force (after load, an application or a local change). */
  onChange?(settings: AgentPolicySettings): void | Promise<void>;
  /** For logRetentionDays at enforcement. */
  events?: LocalEventLog;
}

export class AgentSettings {
  readonly #o: AgentSettingsOptions;
  #current: AgentPolicySettings = structuredClone(DEFAULT_AGENT_POLICY);
  #locked: readonly string[] = [];
  /** One change at a time: an application and a local change never interleave their read and write. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(o: AgentSettingsOptions) {
    this.#o = o;
  }

  get current(): Readonly<AgentPolicySettings> {
    return this.#current;
  }
  /** The settings the policy last applied locks. */
  get locked(): readonly string[] {
    return this.#locked;
  }

  /** Reads the file: its valid values over the defaults (an invalid or missing file: the defaults). */
  async load(locked: readonly string[] = []): Promise<void> {
    this.#locked = [...locked];
    const { valid } = await this.#read();
    this.#current = { ...structuredClone(DEFAULT_AGENT_POLICY), ...(valid as Partial<AgentPolicySettings>) };
    await this.#o.onChange?.(this.#current);
  }

  /** What the file holds now, split into valid values and the names of settings with invalid ones. */
  async #read(): Promise<{ valid: Record<string, unknown>; invalid: string[]; raw: unknown }> {
    const raw = await readJson<unknown>(this.#o.file).catch(() => null);
    const valid: Record<string, unknown> = {};
    const invalid: string[] = [];
    if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
      for (const [k, v] of Object.entries(raw)) {
        if (!settingCheckers.has(k)) continue;
        if (settingProblems(k, v).length) invalid.push(k);
        else valid[k] = v;
      }
    }
    return { valid, invalid, raw };
  }

  #serial<T>(job: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(job, job);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** The garrison plug-in's applyPolicy. */
  applyPolicy(p: PolicyApplication, ctx: PolicyContext): Promise<PolicyOutcome> {
    return this.#serial(async () => {
      const wanted = { ...structuredClone(DEFAULT_AGENT_POLICY), ...p.settings } as Record<string, unknown>;
      for (const k of Object.keys(wanted)) if (!settingCheckers.has(k)) delete wanted[k];
      if (!wholeChecker.check(wanted)) {
        return { state: 'failed', reason: `the policy's settings are not valid agent settings: ${wholeChecker.issues(wanted, 5).map((i) => `${i.path} ${i.message}`).join('; ')}` };
      }
      const { valid: found, invalid, raw } = await this.#read();
      const r = reconcilePolicy({ settings: wanted, locked: p.locked }, p.previous, found);
      const drift = r.drift.map((d) => ({ setting: d.setting, expected: d.expected, found: d.found, action: d.action, fresh: d.fresh }));
      for (const key of invalid) {
        const have = (raw as Record<string, unknown>)[key];
        if (p.previous !== null) drift.push({ setting: key, expected: (wanted as Record<string, unknown>)[key], found: have, action: 'restored', fresh: true });
      }
      const target = r.target as unknown as AgentPolicySettings;
      if (canonicalJson(raw) !== canonicalJson(target)) await writeJsonAtomic(this.#o.file, target);
      this.#current = target;
      this.#locked = [...p.locked];
      await this.#o.onChange?.(target);
      for (const d of drift) {
        if (!d.fresh || d.action !== 'restored') continue;
        const locked = p.locked.includes(d.setting);
        await ctx
          .emit({
            severity: 'warning',
            kind: 'policy.restored',
            message: locked
              ? `the locked setting ${d.setting} was changed on the device and has been put back to the policy's value`
              : `the setting ${d.setting} changed on the device was replaced by the administrator's new value`,
            data: { setting: d.setting, expected: d.expected, found: d.found, locked },
          })
          .catch(() => {});
      }
      if (target.logRetentionDays > 0 && this.#o.events) await this.#o.events.pruneRotated(new Date(Date.now() - target.logRetentionDays * DAY_MS)).catch(() => 0);
      return { state: 'compliant', drift: drift.map(({ fresh: _f, ...d }) => d), applied: structuredClone(target) as unknown as Record<string, unknown> };
    });
  }

  /**
   * The device's user changes some settings (the local API): refused whole if one is unknown,
   * invalid or locked by the policy; else written and in force at once, and standing until the
   * administrator changes them.
   */
  setLocal(changes: Record<string, unknown>): Promise<AgentPolicySettings> {
    return this.#serial(async () => {
      if (!changes || typeof changes !== 'object' || Array.isArray(changes) || !Object.keys(changes).length) throw new SettingsChangeError('VALIDATION_FAILED', 'give at least one setting to change');
      for (const [k, v] of Object.entries(changes)) {
        const problems = settingProblems(k, v);
        if (problems.length) throw new SettingsChangeError('VALIDATION_FAILED', problems.join('; '));
        if (this.#locked.includes(k)) throw new SettingsChangeError('POLICY_SETTING_LOCKED', `${k} is locked by the policy on this device: only the administrator can change it`);
      }
      const { valid } = await this.#read();
      // Other unlocked settings edited in the file by hand stand as well; locked ones stay as in force.
      const unlocked = Object.fromEntries(Object.entries(valid).filter(([k]) => !this.#locked.includes(k)));
      const next = { ...structuredClone(this.#current), ...unlocked, ...structuredClone(changes) } as AgentPolicySettings;
      await writeJsonAtomic(this.#o.file, next);
      this.#current = next;
      await this.#o.onChange?.(next);
      return structuredClone(next);
    });
  }
}
