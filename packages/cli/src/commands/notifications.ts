/** `garrison notification`: notification rules and their delivery history (ADR 0022). */
import type { Command } from 'commander';
import {
  createNotificationRule,
  deleteNotificationRule,
  listNotificationDeliveries,
  listNotificationRules,
  testNotificationRule,
  NOTIFICATION_DELIVERY_STATES,
  NOTIFICATION_SEVERITIES,
  PAGE_LIMIT_MAX,
  type NotificationActions,
  type NotificationDeliveryState,
  type NotificationDelivery,
  type NotificationRule,
  type NotificationRuleCreate,
  type NotificationSeverity,
} from '@garrison/protocol';
import { ApiError, UsageError, type Client } from '../client.ts';
import { act, type RunState } from '../context.ts';
import { formatTime, parseIntOption, table } from '../format.ts';
import { Groups, resolveTaskId } from '../resolve.ts';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** A rule by id or (case-insensitive) name. */
async function resolveRule(client: Client, ref: string): Promise<NotificationRule> {
  const rules = await client.api.all(listNotificationRules, { query: { limit: PAGE_LIMIT_MAX } });
  const byId = rules.find((r) => r.id === ref);
  if (byId) return byId;
  const named = rules.filter((r) => r.name.toLowerCase() === ref.toLowerCase());
  if (named.length === 1) return named[0]!;
  if (named.length > 1) throw new UsageError(`${named.length} rules are named "${ref}": give the id (${named.map((r) => r.id).join(', ')})`);
  throw new ApiError('NOT_FOUND', `notification rule "${ref}" does not exist`);
}

function actionsText(a: NotificationActions): string {
  const parts: string[] = [];
  if (a.email) parts.push(`mail ${a.email.to.join(', ')}`);
  if (a.webhook) parts.push(`webhook ${a.webhook.url}${a.webhook.secret ? ' (signed)' : ''}`);
  if (a.runTask) parts.push(`run task ${a.runTask.taskId}`);
  return parts.join('; ');
}

/** "2/10": 2 events within 10 minutes; "1": every event. */
function parseThreshold(text: string | undefined): NotificationRuleCreate['threshold'] {
  if (text === undefined) return undefined;
  const m = /^(\d+)(?:\/(\d+))?$/.exec(text.trim());
  if (!m) throw new UsageError('--threshold is COUNT or COUNT/MINUTES, e.g. 2/10 (2 events within 10 minutes)');
  return { count: parseIntOption(m[1], '--threshold count', 1, 100000)!, minutes: parseIntOption(m[2] ?? '60', '--threshold minutes', 1, 10080)! };
}

export function registerNotificationCommands(program: Command, state: RunState): void {
  const notification = program.command('notification').description('Notifications: rules on events that mail, call a webhook or run a task, and their deliveries');
  const rule = notification.command('rule').description('Notification rules');

  act(rule.command('list').description('The notification rules you may see'), state, async (io) => {
    const client = await io.client();
    const rules = await client.api.all(listNotificationRules, { query: { limit: PAGE_LIMIT_MAX } });
    io.print(rules, () =>
      table(
        ['NAME', 'ENABLED', 'GROUP', 'KINDS', 'SEVERITY', 'THRESHOLD', 'THROTTLE', 'ACTIONS', 'LAST NOTIFIED', 'ID'],
        rules.map((r) => [r.name, r.enabled ? 'yes' : 'no', r.groupPath, r.kinds.join(','), `>= ${r.minSeverity}`, `${r.threshold.count}/${r.threshold.minutes}m`, r.throttleMinutes ? `${r.throttleMinutes}m` : '-', actionsText(r.actions), r.lastNotifiedAt ? formatTime(r.lastNotifiedAt) : '-', r.id]),
      ),
    );
  });

  act(
    rule
      .command('create')
      .description('Create a rule: when THRESHOLD matching events happen, notify (at most once per throttle period)')
      .argument('<name>')
      .requiredOption('--kind <kind>', 'an event kind (run.failed) or a prefix ending with "." (run.); repeat for more', collect)
      .option('--group <group>', 'events of devices in this group and below (default: the root, with server-wide events)')
      .option('--severity <level>', `minimum severity: ${NOTIFICATION_SEVERITIES.join(', ')}`)
      .option('--product <product>', "only events of this product's tasks")
      .option('--threshold <count/minutes>', 'COUNT matching events within MINUTES (default 1/60: every event)')
      .option('--throttle <minutes>', 'at most one notification per this many minutes (default 0)')
      .option('--email <address>', 'mail this address; repeat for more', collect)
      .option('--webhook <url>', 'POST a JSON body to this http(s) URL')
      .option('--webhook-secret <secret>', 'the stored secret whose value signs the webhook body (HMAC-SHA256)')
      .option('--run-task <task>', 'run this task now on its targets (id or name)')
      .option('--disabled', 'create it turned off'),
    state,
    async (io, opts, [name]) => {
      const client = await io.client();
      const actions: NotificationActions = {};
      if (opts.email) actions.email = { to: opts.email as string[] };
      if (opts.webhook) actions.webhook = { url: opts.webhook as string, ...(opts.webhookSecret ? { secret: { $secret: opts.webhookSecret as string } } : {}) };
      else if (opts.webhookSecret) throw new UsageError('--webhook-secret needs --webhook');
      if (opts.runTask) actions.runTask = { taskId: await resolveTaskId(client, opts.runTask as string) };
      if (!actions.email && !actions.webhook && !actions.runTask) throw new UsageError('give at least one action: --email, --webhook or --run-task');
      if (opts.severity !== undefined && !(NOTIFICATION_SEVERITIES as readonly string[]).includes(opts.severity as string)) throw new UsageError(`--severity is one of ${NOTIFICATION_SEVERITIES.join(', ')}`);
      const body: NotificationRuleCreate = { name: name!, kinds: opts.kind as string[], actions };
      if (opts.group !== undefined) body.groupId = await new Groups(client).id(opts.group as string);
      if (opts.severity !== undefined) body.minSeverity = opts.severity as NotificationSeverity;
      if (opts.product !== undefined) body.product = opts.product as string;
      const threshold = parseThreshold(opts.threshold as string | undefined);
      if (threshold) body.threshold = threshold;
      const throttle = parseIntOption(opts.throttle as string | undefined, '--throttle', 0, 10080);
      if (throttle !== undefined) body.throttleMinutes = throttle;
      if (opts.disabled) body.enabled = false;
      const created = await client.api.call(createNotificationRule, { body });
      io.print(created, () => `created notification rule "${created.name}" (${created.id})\n`);
    },
  );

  act(rule.command('delete').description('Delete a rule (its delivery history stays)').argument('<rule>', 'id or name'), state, async (io, _opts, [ref]) => {
    const client = await io.client();
    const r = await resolveRule(client, ref!);
    await client.api.call(deleteNotificationRule, { params: { id: r.id } });
    io.print({ deleted: r.id }, () => `deleted notification rule "${r.name}"\n`);
  });

  act(rule.command('test').description("Send one test notification through the rule's actions now").argument('<rule>', 'id or name'), state, async (io, _opts, [ref]) => {
    const client = await io.client();
    const r = await resolveRule(client, ref!);
    const out = await client.api.call(testNotificationRule, { params: { id: r.id } });
    io.print(out, () => `test notification ${out.notificationId} queued: ${out.deliveries.map((d) => `${d.action} to ${d.target}`).join('; ')}\n(see: garrison notification deliveries --rule ${r.id})\n`);
  });

  act(
    notification
      .command('deliveries')
      .description('The delivery history, newest first')
      .option('--rule <rule>', 'of this rule only (id or name)')
      .option('--state <state>', `only ${NOTIFICATION_DELIVERY_STATES.join(', ')}`)
      .option('--limit <n>', 'at most this many (default 50)'),
    state,
    async (io, opts) => {
      const client = await io.client();
      if (opts.state !== undefined && !(NOTIFICATION_DELIVERY_STATES as readonly string[]).includes(opts.state as string)) throw new UsageError(`--state is one of ${NOTIFICATION_DELIVERY_STATES.join(', ')}`);
      const limit = parseIntOption(opts.limit as string | undefined, '--limit', 1, 100000) ?? 50;
      const query: { ruleId?: string; state?: NotificationDeliveryState; limit: number } = { limit: Math.min(limit, PAGE_LIMIT_MAX) };
      if (opts.rule !== undefined) query.ruleId = (await resolveRule(client, opts.rule as string)).id;
      if (opts.state !== undefined) query.state = opts.state as NotificationDeliveryState;
      const items: NotificationDelivery[] = [];
      for await (const d of client.api.each(listNotificationDeliveries, { query })) {
        items.push(d);
        if (items.length >= limit) break;
      }
      io.print(items, () =>
        table(
          ['CREATED', 'RULE', 'ACTION', 'TARGET', 'STATE', 'ATTEMPTS', 'STATUS', 'RESULT', 'ID'],
          items.map((d) => [formatTime(d.createdAt), `${d.ruleName}${d.test ? ' (test)' : ''}`, d.action, d.target, d.state, d.attempts, d.status ?? '', d.error ?? d.result ?? '', d.id]),
        ),
      );
    },
  );
}
