/**
 * Notifications and automatic responses (issue 16, ADR 0022).
 *
 * Rules live in memory, indexed by event kind, and every batch of events the event service
 * stores is matched against them there: the event path pays a map lookup per event, never a
 * query. Each rule counts its matching events in a window (threshold: N within T minutes) and
 * keeps the last few as samples; when the threshold is reached outside the rule's quiet period
 * (throttle) a notification fires. Firing takes the rule's throttle slot with a compare-and-set
 * in the database (so that instances sharing it throttle a rule together) and writes one
 * delivery per action, in the outbox table; nothing is sent from the event path.
 *
 * A loop sends what is due: it claims deliveries with a lease (one instance sends each), sends
 * (mail through nodemailer, a webhook with fetch, a run-now through the run service), and
 * records the outcome: sent, or pending again with a backoff, or failed after the last attempt.
 * A shutdown aborts what is in flight and hands it back as pending, so nothing is lost on a
 * restart; a crash leaves a claim that runs out and is taken again (at least once).
 */
import { createHmac } from 'node:crypto';
import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { WebhookAddresses } from './webhook-address.ts';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import {
  type NotificationActionKind,
  type NotificationActions,
  type NotificationDelivery,
  type NotificationRule,
  type NotificationRuleCreate,
  type NotificationRulePatch,
  type NotificationSeverity,
  type NotificationTestAnswer,
  type NotificationThreshold,
  type Page,
  type PageRequest,
  type SmtpSettings,
  type SmtpSettingsAnswer,
  type NotificationDeliveryState,
} from '@garrison/protocol';
import { AppError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import { newId } from '../ids.ts';
import { pageOf } from '../paging.ts';
import { startLoop, type Loop } from '../scheduler/loop.ts';
import { sendMail, type SmtpSettings as MailSettings } from '../server-tasks/mail.ts';
import type { NewEvent } from '../storage/event-store.ts';
import type { DeliveryRow, NotificationDeliveriesTable, NotificationRulesTable, NotificationStore } from '../storage/notification-store.ts';
import type { SettingsStore } from '../storage/settings-store.ts';
import { actorName, authorize, inReach, notVisible, Permission, reachList, reachOf, systemActor, type Actor } from './actor.ts';
import type { Catalog } from './catalog.ts';
import type { EventService } from './event-service.ts';
import type { RunService } from './run-service.ts';
import type { SecretService } from './secret-service.ts';
import type { TaskService } from './task-service.ts';

export const SMTP_SETTINGS_KEY = 'notifications.smtp';
/** Attempts before a delivery is given up (the first and five retries: about 1.5 hours with the backoff below). */
export const MAX_ATTEMPTS = 6;
const RETRY_BASE_MS = 30_000;
const RETRY_MAX_MS = 3600_000;
/** Sample events a notification reports (the count says how many there were). */
const SAMPLES = 20;
const WEBHOOK_TIMEOUT_MS = 10_000;
const MAIL_TIMEOUT_SECONDS = 30;
const CLAIM_BATCH = 20;
/** Longer than the slowest send (mail timeout), so that a live claim never runs out. */
const LEASE_MS = 5 * 60_000;
const RULE_RELOAD_MS = 30_000;
const PURGE_EVERY_MS = 3600_000;

const severityRank: Record<string, number> = { info: 0, warning: 1, error: 2 };
const EMAIL = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const FROM_WITH_NAME = /^([^<>"\r\n]{1,100}) <([^<>\s]+)>$/;
const HOST = /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$/;

interface RuleMatch {
  kinds: string[];
  minSeverity: NotificationSeverity;
  product: string | null;
}

/** What a notification reports about one event. */
export interface EventSample {
  time: string;
  kind: string;
  severity: string;
  message: string;
  deviceId: string | null;
  deviceName: string | null;
  groupId: string | null;
  taskId: string | null;
  runId: string | null;
  product: string | null;
}

/** The body of a notification: what the mail says and the webhook receives. */
export interface NotificationPayload {
  notificationId: string;
  rule: { id: string; name: string; groupId: string; groupPath: string };
  test: boolean;
  /** Matching events in the window that fired it. */
  count: number;
  /** Matching events the throttle held since the previous notification. */
  suppressed: number;
  threshold: NotificationThreshold;
  events: EventSample[];
  firedAt: string;
}

/** A rule as matched in memory, with its window. */
interface LiveRule {
  row: NotificationRulesTable;
  match: RuleMatch;
  threshold: NotificationThreshold;
  actions: NotificationActions;
  minRank: number;
  /** Times (ms) of the matching events in the window, oldest first. */
  times: number[];
  samples: EventSample[];
  suppressed: number;
  lastNotifiedMs: number | null;
}

/** A failure not worth retrying (the task is gone, no mail server is set, the receiver refused the request). */
class PermanentFailure extends Error {
  readonly status: number | null;
  constructor(message: string, status: number | null = null) {
    super(message);
    this.status = status;
  }
}

function invalid(path: string, message: string): AppError {
  return new AppError('VALIDATION_FAILED', message, { issues: [{ path, message }] });
}

function parseJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

export class NotificationService {
  readonly #store: NotificationStore;
  readonly #settings: SettingsStore;
  readonly #secrets: SecretService;
  readonly #catalog: Catalog;
  readonly #tasks: TaskService;
  readonly #runs: RunService;
  readonly #events: EventService;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #owner: string;
  readonly #tickMs: number;
  readonly #webhookAddresses: WebhookAddresses;
  readonly #rules = new Map<string, LiveRule>();
  /** Enabled rules by exact kind, and those with a prefix kind. */
  #byKind = new Map<string, LiveRule[]>();
  #prefixed: { prefix: string; rule: LiveRule }[] = [];
  #loop: Loop | null = null;
  #again = false;
  #lastReload = 0;
  #lastPurge = 0;
  readonly #abort = new AbortController();
  readonly #inFlight = new Set<Promise<unknown>>();

  constructor(deps: { store: NotificationStore; settings: SettingsStore; secrets: SecretService; catalog: Catalog; tasks: TaskService; runs: RunService; events: EventService; clock: Clock; log: Logger; owner: string; tickMs?: number; webhookAddresses?: WebhookAddresses }) {
    this.#store = deps.store;
    this.#settings = deps.settings;
    this.#secrets = deps.secrets;
    this.#catalog = deps.catalog;
    this.#tasks = deps.tasks;
    this.#runs = deps.runs;
    this.#events = deps.events;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#owner = deps.owner;
    this.#tickMs = deps.tickMs ?? 2000;
    this.#webhookAddresses = deps.webhookAddresses ?? new WebhookAddresses();
  }

  /** Reads the rules, keeping the windows of those that did not change. */
  async load(): Promise<void> {
    const rows = await this.#store.listRules();
    const seen = new Set<string>();
    for (const row of rows) {
      seen.add(row.id);
      const old = this.#rules.get(row.id);
      if (old && old.row.updated_at === row.updated_at) {
        old.row = row;
        old.lastNotifiedMs = row.last_notified_at ? Date.parse(row.last_notified_at) : old.lastNotifiedMs;
        continue;
      }
      this.#rules.set(row.id, this.#live(row, old));
    }
    for (const id of [...this.#rules.keys()]) if (!seen.has(id)) this.#rules.delete(id);
    this.#index();
    this.#lastReload = this.#clock.now().getTime();
  }

  #live(row: NotificationRulesTable, old?: LiveRule): LiveRule {
    const match = parseJson<RuleMatch>(row.match);
    return {
      row,
      match,
      threshold: parseJson<NotificationThreshold>(row.threshold),
      actions: parseJson<NotificationActions>(row.actions),
      minRank: severityRank[match.minSeverity] ?? 0,
      times: old?.times ?? [],
      samples: old?.samples ?? [],
      suppressed: old?.suppressed ?? 0,
      lastNotifiedMs: row.last_notified_at ? Date.parse(row.last_notified_at) : null,
    };
  }

  #index(): void {
    const byKind = new Map<string, LiveRule[]>();
    const prefixed: { prefix: string; rule: LiveRule }[] = [];
    for (const r of this.#rules.values()) {
      if (!r.row.enabled) continue;
      for (const k of r.match.kinds) {
        if (k.endsWith('.')) prefixed.push({ prefix: k, rule: r });
        else byKind.set(k, [...(byKind.get(k) ?? []), r]);
      }
    }
    this.#byKind = byKind;
    this.#prefixed = prefixed;
  }

  // --- Matching (the event path) -----------------------------------------------------------

  /** Called with every batch of events this instance stores; never throws, never waits. */
  onEvents(batch: readonly NewEvent[]): void {
    if (this.#byKind.size === 0 && this.#prefixed.length === 0) return;
    const now = this.#clock.now().getTime();
    for (const e of batch) {
      const exact = this.#byKind.get(e.kind);
      let candidates: LiveRule[] | undefined = exact;
      if (this.#prefixed.length) {
        for (const p of this.#prefixed) {
          if (!e.kind.startsWith(p.prefix)) continue;
          candidates = candidates === exact ? [...(exact ?? [])] : candidates!;
          if (!candidates.includes(p.rule)) candidates.push(p.rule);
        }
      }
      if (!candidates) continue;
      for (const rule of candidates) if (this.#matches(rule, e)) this.#count(rule, e, now);
    }
  }

  #matches(rule: LiveRule, e: NewEvent): boolean {
    if ((severityRank[e.severity] ?? 0) < rule.minRank) return false;
    if (rule.match.product !== null && e.product !== rule.match.product) return false;
    const tree = this.#catalog.tree;
    // Events of no group (server-wide) belong to the root group's rules only.
    if (!e.groupId) return tree.get(rule.row.group_id)?.parentId === null;
    return tree.isAncestorOrSelf(rule.row.group_id, e.groupId);
  }

  #count(rule: LiveRule, e: NewEvent, now: number): void {
    const windowMs = rule.threshold.minutes * 60_000;
    rule.times.push(now);
    while (rule.times.length && rule.times[0]! <= now - windowMs) rule.times.shift();
    rule.samples.push(this.#sample(e));
    if (rule.samples.length > SAMPLES) rule.samples.shift();
    if (rule.samples.length > rule.times.length) rule.samples.splice(0, rule.samples.length - rule.times.length);
    const quiet = rule.row.throttle_minutes > 0 && rule.lastNotifiedMs !== null && now - rule.lastNotifiedMs < rule.row.throttle_minutes * 60_000;
    if (quiet) {
      rule.suppressed++;
      return;
    }
    if (rule.times.length < rule.threshold.count) return;
    const count = rule.times.length;
    const samples = rule.samples;
    const suppressed = rule.suppressed;
    rule.times = [];
    rule.samples = [];
    rule.suppressed = 0;
    rule.lastNotifiedMs = now;
    this.#track(
      this.#fire(rule, { count, samples, suppressed }, now).catch((err: unknown) => {
        this.#log.error({ err, ruleId: rule.row.id }, 'a notification could not be stored');
      }),
    );
  }

  #sample(e: NewEvent): EventSample {
    return {
      time: e.time,
      kind: e.kind,
      severity: e.severity,
      message: e.message,
      deviceId: e.deviceId ?? null,
      deviceName: e.deviceId ? (this.#catalog.device(e.deviceId)?.name ?? null) : null,
      groupId: e.groupId ?? null,
      taskId: e.taskId ?? null,
      runId: e.runId ?? null,
      product: e.product ?? null,
    };
  }

  async #fire(rule: LiveRule, what: { count: number; samples: EventSample[]; suppressed: number }, nowMs: number): Promise<void> {
    const now = new Date(nowMs).toISOString();
    const quietSince = rule.row.throttle_minutes > 0 ? new Date(nowMs - rule.row.throttle_minutes * 60_000).toISOString() : null;
    if (!(await this.#store.takeNotifySlot(rule.row.id, now, quietSince))) {
      // Another instance notified within the quiet period: these events count for its next one.
      rule.suppressed += what.count + what.suppressed;
      return;
    }
    rule.row = { ...rule.row, last_notified_at: now };
    await this.#notify(rule.row, rule.actions, { test: false, count: what.count, suppressed: what.suppressed, events: what.samples, threshold: rule.threshold }, now);
  }

  /** Stores one delivery per action of the rule, and wakes the sender. */
  async #notify(row: NotificationRulesTable, actions: NotificationActions, n: Pick<NotificationPayload, 'test' | 'count' | 'suppressed' | 'events' | 'threshold'>, now: string): Promise<DeliveryRow[]> {
    const notificationId = newId();
    const payload: NotificationPayload = {
      notificationId,
      rule: { id: row.id, name: row.name, groupId: row.group_id, groupPath: this.#groupPath(row.group_id) },
      ...n,
      firedAt: now,
    };
    const summary = summaryOf(payload);
    const base = {
      notification_id: notificationId,
      rule_id: row.id,
      rule_name: row.name,
      group_id: row.group_id,
      state: 'pending',
      test: n.test ? 1 : 0,
      summary,
      payload: JSON.stringify(payload),
      event_count: n.count,
      suppressed: n.suppressed,
      attempts: 0,
      created_at: now,
      next_attempt_at: now,
      finished_at: null,
      status: null,
      result: null,
      error: null,
      lease_owner: null,
      lease_until: null,
    } satisfies Omit<NotificationDeliveriesTable, 'id' | 'action_kind' | 'action' | 'target'>;
    const rows: NotificationDeliveriesTable[] = [];
    // Ids in creation order within the notification, so the newest-first history lists them in a stable order.
    const id = () => `${notificationId}-${rows.length}`;
    if (actions.email) rows.push({ ...base, id: id(), action_kind: 'email', action: JSON.stringify(actions.email), target: actions.email.to.join(', ') });
    if (actions.webhook) rows.push({ ...base, id: id(), action_kind: 'webhook', action: JSON.stringify(actions.webhook), target: actions.webhook.url });
    if (actions.runTask) {
      const name = this.#catalog.task(actions.runTask.taskId)?.name;
      rows.push({ ...base, id: id(), action_kind: 'run-task', action: JSON.stringify(actions.runTask), target: name ? `task "${name}" (${actions.runTask.taskId})` : `task ${actions.runTask.taskId}` });
    }
    await this.#store.insertDeliveries(rows);
    this.kick();
    return rows as DeliveryRow[];
  }

  // --- Rules (the API) ---------------------------------------------------------------------

  async page(actor: Actor, q: PageRequest & { groupId?: string }): Promise<Page<NotificationRule>> {
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    if (q.groupId !== undefined && (!this.#catalog.group(q.groupId) || !inReach(reach, q.groupId))) throw new AppError('NOT_FOUND', `group ${q.groupId} does not exist`);
    const tree = this.#catalog.tree;
    const rules = [...this.#rules.values()].filter((r) => inReach(reach, r.row.group_id) && (q.groupId === undefined || tree.isAncestorOrSelf(q.groupId, r.row.group_id)));
    return pageOf(rules, { key: (r) => [r.row.name.toLowerCase(), r.row.id] }, q, (r) => this.#view(r));
  }

  async get(actor: Actor, id: string): Promise<NotificationRule> {
    return this.#view(this.#visible(actor, id));
  }

  #visible(actor: Actor, id: string): LiveRule {
    const rule = this.#rules.get(id);
    if (!rule || !inReach(reachOf(actor, Permission.read, this.#catalog.tree), rule.row.group_id)) throw notVisible('notification rule', id);
    return rule;
  }

  async create(actor: Actor, input: NotificationRuleCreate): Promise<NotificationRule> {
    const groupId = input.groupId ?? this.#rootId();
    authorize(actor, Permission.manageNotifications, this.#catalog.tree, [groupId]);
    const now = this.#clock.now().toISOString();
    const row: NotificationRulesTable = {
      id: newId(),
      name: input.name.trim(),
      enabled: input.enabled === false ? 0 : 1,
      group_id: groupId,
      match: JSON.stringify({ kinds: input.kinds, minSeverity: input.minSeverity ?? 'info', product: input.product ?? null } satisfies RuleMatch),
      threshold: JSON.stringify(input.threshold ?? { count: 1, minutes: 60 }),
      throttle_minutes: input.throttleMinutes ?? 0,
      actions: JSON.stringify(input.actions),
      created_at: now,
      updated_at: now,
      created_by: actorName(actor),
      last_notified_at: null,
    };
    await this.#check(actor, row, undefined);
    await this.#store.insertRule(row);
    this.#rules.set(row.id, this.#live(row));
    this.#index();
    await this.#events.audit(actor, 'notification-rule.created', `notification rule "${row.name}" created`, { groupId });
    return this.#view(this.#rules.get(row.id)!);
  }

  async update(actor: Actor, id: string, patch: NotificationRulePatch): Promise<NotificationRule> {
    const rule = this.#visible(actor, id);
    authorize(actor, Permission.manageNotifications, this.#catalog.tree, [rule.row.group_id]);
    if (patch.groupId !== undefined) authorize(actor, Permission.manageNotifications, this.#catalog.tree, [patch.groupId]);
    const match: RuleMatch = { kinds: patch.kinds ?? rule.match.kinds, minSeverity: patch.minSeverity ?? rule.match.minSeverity, product: patch.product === undefined ? rule.match.product : patch.product };
    const row: NotificationRulesTable = {
      ...rule.row,
      name: patch.name?.trim() ?? rule.row.name,
      enabled: patch.enabled === undefined ? rule.row.enabled : patch.enabled ? 1 : 0,
      group_id: patch.groupId ?? rule.row.group_id,
      match: JSON.stringify(match),
      threshold: JSON.stringify(patch.threshold ?? rule.threshold),
      throttle_minutes: patch.throttleMinutes ?? rule.row.throttle_minutes,
      actions: JSON.stringify(patch.actions ?? rule.actions),
      updated_at: this.#laterThan(rule.row.updated_at),
    };
    // Only renaming or turning a rule off needs no right to its run-task action's task (compared
    // by value: the console sends the whole rule back).
    const quiets =
      row.enabled <= rule.row.enabled &&
      row.throttle_minutes === rule.row.throttle_minutes &&
      isDeepStrictEqual(match, rule.match) &&
      isDeepStrictEqual(parseJson(row.threshold), rule.threshold) &&
      isDeepStrictEqual(parseJson(row.actions), rule.actions);
    await this.#check(actor, row, rule, quiets);
    if (!(await this.#store.updateRule(row))) throw notVisible('notification rule', id);
    // A changed match or threshold starts a new window.
    this.#rules.set(id, this.#live(row, patch.kinds || patch.threshold || patch.groupId || patch.minSeverity || patch.product !== undefined ? undefined : rule));
    this.#index();
    await this.#events.audit(actor, 'notification-rule.changed', `notification rule "${row.name}" changed`, { groupId: row.group_id });
    return this.#view(this.#rules.get(id)!);
  }

  async remove(actor: Actor, id: string): Promise<void> {
    const rule = this.#visible(actor, id);
    authorize(actor, Permission.manageNotifications, this.#catalog.tree, [rule.row.group_id]);
    if (!(await this.#store.deleteRule(id))) throw notVisible('notification rule', id);
    this.#rules.delete(id);
    this.#index();
    await this.#events.audit(actor, 'notification-rule.deleted', `notification rule "${rule.row.name}" deleted`, { groupId: rule.row.group_id });
  }

  /** One notification through every action now, whatever the threshold and the throttle say. */
  async test(actor: Actor, id: string): Promise<NotificationTestAnswer> {
    const rule = this.#visible(actor, id);
    authorize(actor, Permission.manageNotifications, this.#catalog.tree, [rule.row.group_id]);
    // A test fires the run-task action now: only for one who could run the task now.
    if (rule.actions.runTask && this.#catalog.task(rule.actions.runTask.taskId)) {
      const task = this.#tasks.get(actor, rule.actions.runTask.taskId);
      authorize(actor, Permission.runTasks, this.#catalog.tree, this.#tasks.scopeGroups(task.scope));
    }
    const now = this.#clock.now().toISOString();
    const sample: EventSample = { time: now, kind: 'notification.test', severity: 'info', message: `test notification of rule "${rule.row.name}", sent by ${actorName(actor)}`, deviceId: null, deviceName: null, groupId: rule.row.group_id, taskId: null, runId: null, product: null };
    const rows = await this.#notify(rule.row, rule.actions, { test: true, count: 1, suppressed: 0, events: [sample], threshold: rule.threshold }, now);
    await this.#events.audit(actor, 'notification-rule.tested', `notification rule "${rule.row.name}" tested`, { groupId: rule.row.group_id });
    return { notificationId: rows[0]?.notification_id ?? '', deliveries: rows.map(deliveryView) };
  }

  async deliveries(actor: Actor, q: PageRequest & { ruleId?: string; state?: NotificationDeliveryState }): Promise<Page<NotificationDelivery>> {
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    const page = await this.#store.pageDeliveries({ groupIds: reachList(reach), ruleId: q.ruleId, state: q.state }, q);
    return { items: page.items.map(deliveryView), nextCursor: page.nextCursor };
  }

  async getSmtp(actor: Actor): Promise<SmtpSettingsAnswer> {
    authorize(actor, Permission.manageSettings, this.#catalog.tree, []);
    return { smtp: (await this.#settings.get<SmtpSettings>(SMTP_SETTINGS_KEY)) ?? null };
  }

  async putSmtp(actor: Actor, smtp: SmtpSettings): Promise<SmtpSettingsAnswer> {
    authorize(actor, Permission.manageSettings, this.#catalog.tree, []);
    const problems: string[] = [];
    const from = FROM_WITH_NAME.exec(smtp.from);
    if (!EMAIL.test(smtp.from) && !(from && EMAIL.test(from[2]!))) problems.push(`from ${JSON.stringify(smtp.from)} is not "name@example.com" or "Display Name <name@example.com>"`);
    if (!HOST.test(smtp.host)) problems.push(`host ${JSON.stringify(smtp.host)} is not a host name or IP address`);
    if (smtp.password && !smtp.user) problems.push('password is given without user');
    if (smtp.user && !smtp.password) problems.push('user is given without password (a secret reference)');
    if (smtp.password && smtp.security === 'none') problems.push('security "none" would send the password unencrypted: use "starttls" or "tls"');
    if (problems.length) throw new AppError('VALIDATION_FAILED', problems.join('; '), { issues: problems.map((message) => ({ path: '/', message })) });
    const before = await this.#settings.get<SmtpSettings>(SMTP_SETTINGS_KEY);
    await this.#secrets.assertMayReference(actor, smtp, before, []);
    await this.#settings.set(SMTP_SETTINGS_KEY, smtp);
    await this.#events.audit(actor, 'notification-smtp.set', `mail server for notifications set to ${smtp.host}:${smtp.port}`, {});
    return { smtp };
  }

  /** Refuses a rule that names what it may not use; the caller has been authorized on its group. */
  async #check(actor: Actor, row: NotificationRulesTable, before: LiveRule | undefined, quiets = false): Promise<void> {
    if (!row.name) throw invalid('/name', 'a rule needs a name');
    if (!this.#catalog.group(row.group_id)) throw new AppError('NOT_FOUND', `group ${row.group_id} does not exist`);
    const match = parseJson<RuleMatch>(row.match);
    if (new Set(match.kinds).size !== match.kinds.length) throw invalid('/kinds', 'kinds lists a kind more than once');
    const actions = parseJson<NotificationActions>(row.actions);
    if (!actions.email && !actions.webhook && !actions.runTask) throw invalid('/actions', 'a rule needs at least one action: email, webhook or runTask');
    if (actions.email) {
      const bad = actions.email.to.filter((a) => !EMAIL.test(a));
      if (bad.length) throw invalid('/actions/email/to', `not e-mail addresses: ${bad.map((a) => JSON.stringify(a)).join(', ')}`);
    }
    if (actions.webhook) {
      let url: URL | null = null;
      try {
        url = new URL(actions.webhook.url);
      } catch {
        url = null;
      }
      if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || !url.hostname) throw invalid('/actions/webhook/url', `webhook url ${JSON.stringify(actions.webhook.url)} is not an http:// or https:// URL`);
      if (url.username || url.password) throw invalid('/actions/webhook/url', 'a webhook url may not hold credentials (they would show in the delivery history): sign the body with a secret instead');
      const literal = this.#webhookAddresses.literalRefusal(url);
      if (literal) throw invalid('/actions/webhook/url', `webhook url ${JSON.stringify(actions.webhook.url)}: ${literal}`);
    }
    if (actions.runTask) {
      // The task must be one the caller could run now (tasks:run on every group it reaches),
      // unless the change only renames the rule or turns it off (`quiets`).
      const task = this.#tasks.get(actor, actions.runTask.taskId);
      const changed = before?.actions.runTask?.taskId !== actions.runTask.taskId || before.row.group_id !== row.group_id || !quiets;
      if (changed) authorize(actor, Permission.runTasks, this.#catalog.tree, this.#tasks.scopeGroups(task.scope));
    }
    await this.#secrets.assertMayReference(actor, actions, before?.actions, [row.group_id]);
  }

  #view(r: LiveRule): NotificationRule {
    const now = this.#clock.now().getTime();
    const windowMs = r.threshold.minutes * 60_000;
    return {
      id: r.row.id,
      name: r.row.name,
      enabled: r.row.enabled === 1,
      groupId: r.row.group_id,
      groupPath: this.#groupPath(r.row.group_id),
      kinds: r.match.kinds,
      minSeverity: r.match.minSeverity,
      product: r.match.product,
      threshold: r.threshold,
      throttleMinutes: r.row.throttle_minutes,
      actions: r.actions,
      createdAt: r.row.created_at,
      updatedAt: r.row.updated_at,
      createdBy: r.row.created_by,
      lastNotifiedAt: r.row.last_notified_at,
      window: { events: r.times.filter((t) => t > now - windowMs).length, suppressed: r.suppressed },
    };
  }

  #groupPath(groupId: string): string {
    return this.#catalog.group(groupId) ? this.#catalog.tree.path(groupId) : '(deleted group)';
  }
  #rootId(): string {
    return this.#catalog.tree.roots()[0]!.id;
  }
  /** A new updated_at, later than the last even within one millisecond (it tells instances the rule changed). */
  #laterThan(previous: string): string {
    const now = this.#clock.now().getTime();
    return new Date(Math.max(now, Date.parse(previous) + 1)).toISOString();
  }

  // --- Sending -----------------------------------------------------------------------------

  start(): void {
    if (this.#loop) return;
    this.#loop = startLoop('notifications', this.#tickMs, () => this.#tick(), this.#log);
    this.kick();
  }

  /** Sends what is due now (new deliveries, the start); a tick in flight goes round once more. */
  kick(): void {
    if (!this.#loop || this.#abort.signal.aborted) return;
    this.#again = true;
    void this.#loop.runNow();
  }

  /** Sends due deliveries now and waits (tests). */
  async sendDue(): Promise<void> {
    await this.#tick();
  }

  async #tick(): Promise<void> {
    if (this.#clock.now().getTime() - this.#lastReload >= RULE_RELOAD_MS) await this.load();
    if (this.#clock.now().getTime() - this.#lastPurge >= PURGE_EVERY_MS) await this.#purge();
    let claimed: DeliveryRow[];
    do {
      this.#again = false;
      if (this.#abort.signal.aborted) return;
      const now = this.#clock.now();
      claimed = await this.#store.claimDue(this.#owner, now.toISOString(), new Date(now.getTime() + LEASE_MS).toISOString(), CLAIM_BATCH);
      await Promise.all(claimed.map((d) => this.#track(this.#deliver(d))));
    } while (this.#again || claimed.length === CLAIM_BATCH);
  }

  /** The history keeps as long as the event log (the server's event retention); pending deliveries stay. */
  async #purge(): Promise<void> {
    this.#lastPurge = this.#clock.now().getTime();
    const days = (await this.#settings.serverSettings()).eventRetentionDays;
    const removed = await this.#store.deleteDeliveriesBefore(new Date(this.#lastPurge - days * 86400_000).toISOString());
    if (removed) this.#log.info({ removed }, 'notification deliveries past retention purged');
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p)).catch(() => {});
    return p;
  }

  /** One attempt at one delivery, its outcome recorded; never throws. */
  async #deliver(d: DeliveryRow): Promise<void> {
    const attempts = d.attempts + 1;
    try {
      let outcome: { result: string; status: number | null };
      try {
        outcome = await this.#send(d, this.#abort.signal);
      } catch (err) {
        if (this.#abort.signal.aborted) {
          // Shut down mid-send: handed back as it was, for the next start (or another instance).
          await this.#store.finishAttempt(d.id, this.#owner, { next_attempt_at: this.#clock.now().toISOString(), error: 'interrupted by a server shutdown; sent after the restart' });
          return;
        }
        const permanent = err instanceof PermanentFailure;
        const message = (err instanceof Error ? err.message : String(err)).slice(0, 2000);
        const status = permanent ? err.status : ((err as { status?: number }).status ?? null);
        const now = this.#clock.now();
        const last = permanent || attempts >= MAX_ATTEMPTS;
        await this.#store.finishAttempt(d.id, this.#owner, {
          attempts,
          state: last ? 'failed' : 'pending',
          next_attempt_at: last ? null : new Date(now.getTime() + Math.min(RETRY_BASE_MS * 4 ** (attempts - 1), RETRY_MAX_MS)).toISOString(),
          finished_at: last ? now.toISOString() : null,
          status,
          error: last ? message : `${message} (attempt ${attempts} of ${MAX_ATTEMPTS}; retried later)`,
        });
        if (last) this.#log.warn({ deliveryId: d.id, ruleId: d.rule_id, action: d.action_kind, error: message }, 'a notification could not be delivered');
        return;
      }
      await this.#store.finishAttempt(d.id, this.#owner, { attempts, state: 'sent', next_attempt_at: null, finished_at: this.#clock.now().toISOString(), status: outcome.status, result: outcome.result, error: null });
    } catch (err) {
      // The database failed: the claim runs out and the delivery is tried again.
      this.#log.error({ err, deliveryId: d.id }, 'recording a notification delivery failed');
    }
  }

  async #send(d: DeliveryRow, signal: AbortSignal): Promise<{ result: string; status: number | null }> {
    const payload = parseJson<NotificationPayload>(d.payload);
    switch (d.action_kind) {
      case 'email':
        return this.#sendMail(parseJson<NonNullable<NotificationActions['email']>>(d.action), payload, signal);
      case 'webhook':
        return this.#sendWebhook(d, parseJson<NonNullable<NotificationActions['webhook']>>(d.action), payload, signal);
      case 'run-task': {
        const { taskId } = parseJson<NonNullable<NotificationActions['runTask']>>(d.action);
        if (!this.#catalog.task(taskId)) throw new PermanentFailure(`task ${taskId} does not exist any more`);
        const r = await this.#runs.runNow(systemActor, taskId);
        return { result: `run request ${r.requestId}: ${r.targets} device${r.targets === 1 ? '' : 's'}, ${r.delivered} connected`, status: null };
      }
    }
  }

  async #sendMail(email: NonNullable<NotificationActions['email']>, p: NotificationPayload, signal: AbortSignal): Promise<{ result: string; status: null }> {
    const smtp = await this.#settings.get<SmtpSettings>(SMTP_SETTINGS_KEY);
    if (!smtp) throw new PermanentFailure('no mail server is set for notifications (PUT /api/v1/notifications/smtp)');
    let password: string | undefined;
    if (smtp.password) {
      password = (await this.#secrets.values([smtp.password.$secret])).get(smtp.password.$secret);
      if (password === undefined) throw new PermanentFailure(`the secret "${smtp.password.$secret}" for the mail server's password does not exist`);
    }
    const settings: MailSettings = {
      host: smtp.host,
      port: smtp.port,
      security: smtp.security,
      from: smtp.from,
      ...(smtp.user ? { user: smtp.user } : {}),
      ...(password !== undefined ? { password } : {}),
      ...(smtp.rejectUnauthorized !== undefined ? { rejectUnauthorized: smtp.rejectUnauthorized } : {}),
      timeoutSeconds: smtp.timeoutSeconds ?? MAIL_TIMEOUT_SECONDS,
    };
    const text = mailText(p);
    const sent = await sendMail(settings, { to: email.to, subject: mailSubject(p), text, html: `<pre>${escapeHtml(text)}</pre>`, attachments: [] }, signal);
    if (sent.accepted.length === 0) throw new Error(`the mail server accepted none of the recipients (${sent.rejected.join(', ')})`);
    return { result: `message ${sent.messageId} accepted for ${sent.accepted.length} recipient${sent.accepted.length === 1 ? '' : 's'}${sent.rejected.length ? `, refused for ${sent.rejected.join(', ')}` : ''}`, status: null };
  }

  async #sendWebhook(d: DeliveryRow, hook: NonNullable<NotificationActions['webhook']>, p: NotificationPayload, signal: AbortSignal): Promise<{ result: string; status: number }> {
    const body = JSON.stringify({ ...p, deliveryId: d.id, attempt: d.attempts + 1 });
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'Garrison-Notifications', 'x-garrison-delivery': d.id, 'x-garrison-notification': d.notification_id };
    if (hook.secret) {
      const key = (await this.#secrets.values([hook.secret.$secret])).get(hook.secret.$secret);
      if (key === undefined) throw new PermanentFailure(`the secret "${hook.secret.$secret}" that signs the webhook does not exist`);
      headers['x-garrison-signature'] = `sha256=${createHmac('sha256', key).update(body).digest('hex')}`;
    }
    const url = new URL(hook.url);
    const literal = this.#webhookAddresses.literalRefusal(url);
    if (literal) throw new PermanentFailure(`the webhook may not be called: ${literal}`);
    let res: { status: number; location: string | undefined };
    try {
      // Redirects are not followed (a receiver that moved is told by the failure, and a signed
      // body never goes elsewhere); the address is checked as the socket connects.
      res = await postOnce(url, headers, body, AbortSignal.any([signal, AbortSignal.timeout(WEBHOOK_TIMEOUT_MS)]), this.#webhookAddresses.lookup);
    } catch (err) {
      const e = err as Error & { code?: string };
      if (e.name === 'TimeoutError') throw new Error(`the webhook did not answer within ${WEBHOOK_TIMEOUT_MS / 1000} s`);
      if (e.code === 'WEBHOOK_ADDRESS_DENIED') throw new PermanentFailure(`the webhook may not be called: ${e.message}`);
      throw new Error(`the webhook could not be reached: ${e.code ?? e.message}`);
    }
    if (res.status >= 200 && res.status < 300) return { result: `HTTP ${res.status}`, status: res.status };
    const why = res.status >= 300 && res.status < 400 ? `HTTP ${res.status}: the webhook redirects${res.location ? ` to ${res.location}` : ''}, and redirects are not followed` : `HTTP ${res.status}`;
    // Client errors other than a timeout or a rate limit will not get better by retrying.
    if (res.status >= 300 && res.status < 500 && res.status !== 408 && res.status !== 429) throw new PermanentFailure(why, res.status);
    throw Object.assign(new Error(why), { status: res.status });
  }

  /** Stops sending: in-flight deliveries are aborted and handed back as pending. */
  async close(): Promise<void> {
    this.#abort.abort(new Error('the server is shutting down'));
    await this.#loop?.stop();
    await Promise.allSettled([...this.#inFlight]);
  }
}

function deliveryView(r: DeliveryRow): NotificationDelivery {
  return {
    id: r.id,
    notificationId: r.notification_id,
    ruleId: r.rule_id,
    ruleName: r.rule_name,
    groupId: r.group_id,
    action: r.action_kind as NotificationActionKind,
    target: r.target,
    state: r.state as NotificationDeliveryState,
    test: r.test === 1,
    summary: r.summary,
    eventCount: Number(r.event_count),
    suppressed: Number(r.suppressed),
    attempts: Number(r.attempts),
    createdAt: r.created_at,
    nextAttemptAt: r.next_attempt_at,
    finishedAt: r.finished_at,
    status: r.status === null ? null : Number(r.status),
    result: r.result,
    error: r.error,
  };
}

function summaryOf(p: NotificationPayload): string {
  if (p.test) return `test notification of rule "${p.rule.name}"`;
  const kinds = [...new Set(p.events.map((e) => e.kind))].slice(0, 5).join(', ');
  const held = p.suppressed ? `, and ${p.suppressed} more held by the throttle` : '';
  const last = p.events[p.events.length - 1];
  return `${p.count} matching event${p.count === 1 ? '' : 's'} (${kinds}) within ${p.threshold.minutes} min${held}${last ? `; last: ${last.message}` : ''}`.slice(0, 1000);
}

function mailSubject(p: NotificationPayload): string {
  const s = p.test ? `[Garrison] Test: ${p.rule.name}` : `[Garrison] ${p.rule.name}: ${p.count} event${p.count === 1 ? '' : 's'}${p.suppressed ? ` (+${p.suppressed} held)` : ''}`;
  // One line, whatever the rule's name holds.
  return s.replace(/[\r\n]+/g, ' ').slice(0, 200);
}

function mailText(p: NotificationPayload): string {
  const lines = [
    p.test ? `This is a test of the notification rule "${p.rule.name}" (group ${p.rule.groupPath}).` : `The notification rule "${p.rule.name}" (group ${p.rule.groupPath}) fired: ${p.count} matching event${p.count === 1 ? '' : 's'} within ${p.threshold.minutes} minutes.`,
  ];
  if (p.suppressed) lines.push(`${p.suppressed} more matching event${p.suppressed === 1 ? ' was' : 's were'} held by the rule's throttle since the previous notification.`);
  lines.push('');
  for (const e of p.events) lines.push(`${e.time}  ${e.severity.toUpperCase()}  ${e.kind}  ${e.deviceName ?? e.deviceId ?? '-'}  ${e.message}`);
  if (p.count > p.events.length) lines.push(`… and ${p.count - p.events.length} more`);
  lines.push('', `Notification ${p.notificationId}, ${p.firedAt}`);
  return lines.join('\n');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** One POST, its answer's status and Location; the body is read and dropped, never kept. */
function postOnce(url: URL, headers: OutgoingHttpHeaders, body: string, signal: AbortSignal, lookup: LookupFunction): Promise<{ status: number; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, { method: 'POST', headers: { ...headers, 'content-length': Buffer.byteLength(body) }, signal, lookup }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: typeof res.headers.location === 'string' ? res.headers.location : undefined }));
      res.on('error', reject);
    });
    req.on('error', (err) => reject(signal.aborted && signal.reason instanceof Error ? signal.reason : err));
    req.end(body);
  });
}
