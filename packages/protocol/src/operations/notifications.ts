/**
 * Notifications and automatic responses (issue 16, ADR 0022): rules on the events the server
 * records (kinds, minimum severity, group subtree, product) with a threshold (N matching events
 * within T minutes) and a throttle (at most one notification per rule per X minutes), whose
 * actions mail addresses, POST a signed JSON body to a webhook or run a task now. Every action
 * of a notification is one delivery, stored before it is sent and retried with backoff, so the
 * history (listNotificationDeliveries) says what went where and how it ended.
 */
import { Type, type Static } from 'typebox';
import { operation, Page, PageQuery } from '../contract.ts';
import { SecretRefSchema } from '../script-settings.ts';
import { IdParams } from './common.ts';

export const NOTIFICATION_SEVERITIES = ['info', 'warning', 'error'] as const;
export type NotificationSeverity = (typeof NOTIFICATION_SEVERITIES)[number];
const Severity = Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('error')]);

/** An event kind (`run.failed`), or a prefix ending with a dot (`run.`) for every kind under it. */
const EventKind = Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_.:-]+$', description: 'An event kind ("run.failed") or a prefix ending with "." ("run.")' });
const Email = Type.String({ minLength: 3, maxLength: 254, description: 'name@example.com' });

export const NotificationActions = Type.Object(
  {
    email: Type.Optional(Type.Object({ to: Type.Array(Email, { minItems: 1, maxItems: 50 }) }, { additionalProperties: false })),
    webhook: Type.Optional(
      Type.Object(
        {
          url: Type.String({ minLength: 8, maxLength: 2000, description: 'An http:// or https:// URL; redirects are not followed' }),
          secret: Type.Optional(Type.Union([SecretRefSchema, Type.Null()], { description: 'A stored secret whose value signs the body: X-Garrison-Signature: sha256=<HMAC-SHA256 hex>' })),
        },
        { additionalProperties: false },
      ),
    ),
    runTask: Type.Optional(
      Type.Object(
        {
          taskId: Type.String({ minLength: 1, maxLength: 100 }),
        },
        { additionalProperties: false, description: "Runs the task now on its targets (it needs tasks:run on the task's groups)" },
      ),
    ),
  },
  { additionalProperties: false, description: 'At least one of email, webhook, runTask' },
);
export type NotificationActions = Static<typeof NotificationActions>;

export const NotificationThreshold = Type.Object(
  {
    count: Type.Integer({ minimum: 1, maximum: 100000, description: 'Matching events needed (1: every event)' }),
    minutes: Type.Integer({ minimum: 1, maximum: 10080, description: 'Within this many minutes' }),
  },
  { additionalProperties: false },
);
export type NotificationThreshold = Static<typeof NotificationThreshold>;

export const NotificationRule = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    enabled: Type.Boolean(),
    /** Events of devices in this group's subtree (and, on the root group, server-wide events). */
    groupId: Type.String(),
    groupPath: Type.String(),
    kinds: Type.Array(Type.String()),
    minSeverity: Severity,
    product: Type.Union([Type.String(), Type.Null()]),
    threshold: NotificationThreshold,
    throttleMinutes: Type.Integer({ minimum: 0 }),
    actions: NotificationActions,
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
    createdBy: Type.String(),
    lastNotifiedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    /** This instance's in-memory counters: matching events in the current window, and those held by the throttle since the last notification. */
    window: Type.Object({ events: Type.Integer({ minimum: 0 }), suppressed: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);
export type NotificationRule = Static<typeof NotificationRule>;

const RuleFields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  enabled: Type.Boolean(),
  groupId: Type.String({ minLength: 1, maxLength: 100 }),
  kinds: Type.Array(EventKind, { minItems: 1, maxItems: 50 }),
  minSeverity: Severity,
  product: Type.Union([Type.String({ minLength: 1, maxLength: 100 }), Type.Null()]),
  threshold: NotificationThreshold,
  throttleMinutes: Type.Integer({ minimum: 0, maximum: 10080, description: 'At most one notification per this many minutes (0: no throttle)' }),
  actions: NotificationActions,
};
export const NotificationRuleCreate = Type.Object(
  {
    name: RuleFields.name,
    enabled: Type.Optional(RuleFields.enabled),
    groupId: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Default: the root group' })),
    kinds: RuleFields.kinds,
    minSeverity: Type.Optional(RuleFields.minSeverity),
    product: Type.Optional(RuleFields.product),
    threshold: Type.Optional(RuleFields.threshold),
    throttleMinutes: Type.Optional(RuleFields.throttleMinutes),
    actions: RuleFields.actions,
  },
  { additionalProperties: false },
);
export type NotificationRuleCreate = Static<typeof NotificationRuleCreate>;
export const NotificationRulePatch = Type.Object(
  {
    name: Type.Optional(RuleFields.name),
    enabled: Type.Optional(RuleFields.enabled),
    groupId: Type.Optional(RuleFields.groupId),
    kinds: Type.Optional(RuleFields.kinds),
    minSeverity: Type.Optional(RuleFields.minSeverity),
    product: Type.Optional(RuleFields.product),
    threshold: Type.Optional(RuleFields.threshold),
    throttleMinutes: Type.Optional(RuleFields.throttleMinutes),
    actions: Type.Optional(RuleFields.actions),
  },
  { additionalProperties: false },
);
export type NotificationRulePatch = Static<typeof NotificationRulePatch>;

export const NOTIFICATION_ACTION_KINDS = ['email', 'webhook', 'run-task'] as const;
export type NotificationActionKind = (typeof NOTIFICATION_ACTION_KINDS)[number];
export const NOTIFICATION_DELIVERY_STATES = ['pending', 'sent', 'failed'] as const;
const DeliveryState = Type.Union([Type.Literal('pending'), Type.Literal('sent'), Type.Literal('failed')]);
export type NotificationDeliveryState = (typeof NOTIFICATION_DELIVERY_STATES)[number];

export const NotificationDelivery = Type.Object(
  {
    id: Type.String(),
    /** The deliveries of one notification (one per action) share it. */
    notificationId: Type.String(),
    ruleId: Type.String(),
    ruleName: Type.String(),
    groupId: Type.String(),
    action: Type.Union([Type.Literal('email'), Type.Literal('webhook'), Type.Literal('run-task')]),
    /** The addresses, the URL or the task. */
    target: Type.String(),
    /** pending: not sent yet or to be retried; sent; failed: given up. */
    state: DeliveryState,
    test: Type.Boolean(),
    summary: Type.String(),
    eventCount: Type.Integer({ minimum: 0 }),
    suppressed: Type.Integer({ minimum: 0 }),
    attempts: Type.Integer({ minimum: 0 }),
    createdAt: Type.String({ format: 'date-time' }),
    nextAttemptAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    finishedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    /** The webhook's HTTP status. */
    status: Type.Union([Type.Integer(), Type.Null()]),
    /** What the last attempt gave: the message id, the run request, or why it failed. */
    result: Type.Union([Type.String(), Type.Null()]),
    error: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false },
);
export type NotificationDelivery = Static<typeof NotificationDelivery>;

export const SMTP_SECURITY_MODES = ['tls', 'starttls', 'none'] as const;
export const SmtpSettings = Type.Object(
  {
    host: Type.String({ minLength: 1, maxLength: 255 }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    security: Type.Union([Type.Literal('tls'), Type.Literal('starttls'), Type.Literal('none')], { description: '"tls" from the first byte (465), "starttls" required (587), "none"' }),
    user: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 200 }), Type.Null()])),
    password: Type.Optional(Type.Union([SecretRefSchema, Type.Null()], { description: 'A stored secret (never the value)' })),
    from: Type.String({ minLength: 3, maxLength: 300, description: 'name@example.com or "Display Name <name@example.com>"' }),
    rejectUnauthorized: Type.Optional(Type.Boolean({ description: "Verify the mail server's certificate (default true)" })),
    timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 600 })),
  },
  { additionalProperties: false },
);
export type SmtpSettings = Static<typeof SmtpSettings>;
export const SmtpSettingsAnswer = Type.Object({ smtp: Type.Union([SmtpSettings, Type.Null()]) }, { additionalProperties: false });
export type SmtpSettingsAnswer = Static<typeof SmtpSettingsAnswer>;

export const NotificationRuleListQuery = Type.Object({ ...PageQuery, groupId: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })) }, { additionalProperties: false });
export const NotificationDeliveryListQuery = Type.Object(
  {
    ...PageQuery,
    ruleId: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    state: Type.Optional(DeliveryState),
  },
  { additionalProperties: false },
);
export const NotificationTestAnswer = Type.Object({ notificationId: Type.String(), deliveries: Type.Array(NotificationDelivery) }, { additionalProperties: false });
export type NotificationTestAnswer = Static<typeof NotificationTestAnswer>;

const tag = 'notifications';
export const listNotificationRules = operation({ id: 'listNotificationRules', method: 'GET', path: '/notifications/rules', tag, summary: 'Notification rules of the groups the caller reads, by name', query: NotificationRuleListQuery, response: Page(NotificationRule) });
export const createNotificationRule = operation({
  id: 'createNotificationRule',
  method: 'POST',
  path: '/notifications/rules',
  tag,
  summary: 'Create a notification rule (notifications:write on its group; tasks:run for a run-task action)',
  body: NotificationRuleCreate,
  status: 201,
  response: NotificationRule,
  errors: ['SECRET_NOT_FOUND', 'SECRET_REFERENCE_REFUSED'],
});
export const getNotificationRule = operation({ id: 'getNotificationRule', method: 'GET', path: '/notifications/rules/{id}', tag, summary: 'One notification rule', params: IdParams, response: NotificationRule });
export const updateNotificationRule = operation({
  id: 'updateNotificationRule',
  method: 'PATCH',
  path: '/notifications/rules/{id}',
  tag,
  summary: 'Change a notification rule',
  params: IdParams,
  body: NotificationRulePatch,
  response: NotificationRule,
  errors: ['SECRET_NOT_FOUND', 'SECRET_REFERENCE_REFUSED'],
});
export const deleteNotificationRule = operation({ id: 'deleteNotificationRule', method: 'DELETE', path: '/notifications/rules/{id}', tag, summary: 'Delete a notification rule (its delivery history stays)', params: IdParams, status: 204, response: null });
export const testNotificationRule = operation({
  id: 'testNotificationRule',
  method: 'POST',
  path: '/notifications/rules/{id}/test',
  tag,
  summary: "Send one test notification through the rule's actions now (bypasses threshold and throttle)",
  params: IdParams,
  status: 202,
  response: NotificationTestAnswer,
});
export const listNotificationDeliveries = operation({
  id: 'listNotificationDeliveries',
  method: 'GET',
  path: '/notifications/deliveries',
  tag,
  summary: 'The delivery history of the rules of the groups the caller reads, newest first',
  query: NotificationDeliveryListQuery,
  response: Page(NotificationDelivery),
});
export const getSmtpSettings = operation({ id: 'getSmtpSettings', method: 'GET', path: '/notifications/smtp', tag, summary: 'The mail server notifications are sent through (root only)', response: SmtpSettingsAnswer });
export const putSmtpSettings = operation({
  id: 'putSmtpSettings',
  method: 'PUT',
  path: '/notifications/smtp',
  tag,
  summary: 'Set the mail server notifications are sent through (settings:write on the root)',
  body: SmtpSettings,
  response: SmtpSettingsAnswer,
  errors: ['SECRET_NOT_FOUND', 'SECRET_REFERENCE_REFUSED'],
});
