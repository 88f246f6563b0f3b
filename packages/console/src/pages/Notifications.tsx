/**
 * Notifications (ADR 0022): rules on events that mail, call a webhook or run a task, the
 * delivery history (paged, newest first, "Load more") and, for root administrators, the mail
 * server the mails go through.
 */
import { useState, type FormEvent } from 'react';
import {
  createNotificationRule,
  deleteNotificationRule,
  getSmtpSettings,
  listNotificationDeliveries,
  listNotificationRules,
  putSmtpSettings,
  testNotificationRule,
  updateNotificationRule,
  NOTIFICATION_SEVERITIES,
  SMTP_SECURITY_MODES,
  type NotificationActions,
  type NotificationDelivery,
  type NotificationRule,
  type NotificationRuleCreate,
  type NotificationSeverity,
  type SmtpSettings,
} from '@garrison/protocol';
import { useQueryClient } from '@tanstack/react-query';
import { call, useOp } from '../api.ts';
import { Async, ConfirmButton, Dialog, DialogForm, Empty, ErrorMessage, Field, GroupSelect, Page, Section, StateBadge, Time, useBusy, useToast } from '../ui.tsx';
import { checkError } from '../admin/common.tsx';
import { Permission, useAccess } from '../access.tsx';

const RULES_PATH = '/notifications';
const list = (text: string) => text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);

interface Form {
  name: string;
  enabled: boolean;
  groupId: string;
  kinds: string;
  minSeverity: NotificationSeverity;
  product: string;
  count: string;
  minutes: string;
  throttle: string;
  email: string;
  webhookUrl: string;
  webhookSecret: string;
  taskId: string;
}

function formOf(r?: NotificationRule): Form {
  return {
    name: r?.name ?? '',
    enabled: r?.enabled ?? true,
    groupId: r?.groupId ?? '',
    kinds: r?.kinds.join(', ') ?? 'run.failed',
    minSeverity: r?.minSeverity ?? 'info',
    product: r?.product ?? '',
    count: String(r?.threshold.count ?? 1),
    minutes: String(r?.threshold.minutes ?? 60),
    throttle: String(r?.throttleMinutes ?? 0),
    email: r?.actions.email?.to.join(', ') ?? '',
    webhookUrl: r?.actions.webhook?.url ?? '',
    webhookSecret: r?.actions.webhook?.secret?.$secret ?? '',
    taskId: r?.actions.runTask?.taskId ?? '',
  };
}

function bodyOf(f: Form): NotificationRuleCreate {
  const actions: NotificationActions = {};
  if (list(f.email).length) actions.email = { to: list(f.email) };
  if (f.webhookUrl.trim()) actions.webhook = { url: f.webhookUrl.trim(), secret: f.webhookSecret.trim() ? { $secret: f.webhookSecret.trim() } : null };
  if (f.taskId.trim()) actions.runTask = { taskId: f.taskId.trim() };
  const int = (s: string, what: string, min: number, max: number) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < min || n > max) throw checkError(`${what} is a whole number from ${min} to ${max}.`);
    return n;
  };
  if (!f.name.trim()) throw checkError('Give the rule a name.');
  if (list(f.kinds).length === 0) throw checkError('Give at least one event kind, such as run.failed, or a prefix such as run.');
  if (!actions.email && !actions.webhook && !actions.runTask) throw checkError('Give at least one action: addresses to mail, a webhook URL or a task to run.');
  return {
    name: f.name.trim(),
    enabled: f.enabled,
    ...(f.groupId ? { groupId: f.groupId } : {}),
    kinds: list(f.kinds),
    minSeverity: f.minSeverity,
    product: f.product.trim() || null,
    threshold: { count: int(f.count, 'The event count', 1, 100000), minutes: int(f.minutes, 'The window', 1, 10080) },
    throttleMinutes: int(f.throttle, 'The throttle', 0, 10080),
    actions,
  };
}

function actionText(a: NotificationActions): string {
  return [a.email ? `mail ${a.email.to.join(', ')}` : '', a.webhook ? `webhook ${a.webhook.url}${a.webhook.secret ? ' (signed)' : ''}` : '', a.runTask ? `run task ${a.runTask.taskId}` : ''].filter(Boolean).join('; ');
}

function RuleDialog({ rule, onClose }: { rule: NotificationRule | null | 'new'; onClose: () => void }) {
  const existing = rule && rule !== 'new' ? rule : undefined;
  const [f, setF] = useState<Form>(() => formOf(existing));
  const { busy, error, setError, run } = useBusy();
  const qc = useQueryClient();
  const toast = useToast();
  const set = <K extends keyof Form>(k: K) => (v: Form[K]) => setF((x) => ({ ...x, [k]: v }));
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    let body: NotificationRuleCreate;
    try {
      body = bodyOf(f);
    } catch (err) {
      return setError(err);
    }
    const saved = await run(() => (existing ? call(updateNotificationRule, { params: { id: existing.id }, body }) : call(createNotificationRule, { body })));
    if (saved) {
      await qc.invalidateQueries({ predicate: (q) => String(q.queryKey[0]).startsWith(RULES_PATH) });
      toast(existing ? `Rule "${saved.name}" saved` : `Rule "${saved.name}" created`);
      onClose();
    }
  };
  return (
    <Dialog open={rule !== null} title={existing ? `Edit rule “${existing.name}”` : 'New notification rule'} onClose={onClose} wide>
      <DialogForm onSubmit={submit} onCancel={onClose} submitLabel={busy ? 'Saving…' : 'Save rule'} disabled={busy} error={error} onDismissError={() => setError(null)}>
        <Field label="Name">
          <input value={f.name} onChange={(e) => set('name')(e.target.value)} required maxLength={200} />
        </Field>
        <Field label="Enabled" inline>
          <input type="checkbox" checked={f.enabled} onChange={(e) => set('enabled')(e.target.checked)} />
        </Field>
        <GroupSelect value={f.groupId} onChange={set('groupId')} label="Group" allowEmpty emptyLabel="The root group (and server-wide events)" />
        <Field label="Event kinds" hint='Comma-separated: an exact kind ("run.failed") or a prefix ending with a dot ("run.").'>
          <input value={f.kinds} onChange={(e) => set('kinds')(e.target.value)} required spellCheck={false} />
        </Field>
        <div className="row">
          <Field label="Minimum severity">
            <select value={f.minSeverity} onChange={(e) => set('minSeverity')(e.target.value as NotificationSeverity)}>
              {NOTIFICATION_SEVERITIES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Product" optional>
            <input value={f.product} onChange={(e) => set('product')(e.target.value)} spellCheck={false} />
          </Field>
        </div>
        <div className="row">
          <Field label="Events" hint="How many matching events (1: every event)">
            <input type="number" min={1} max={100000} value={f.count} onChange={(e) => set('count')(e.target.value)} />
          </Field>
          <Field label="Within minutes">
            <input type="number" min={1} max={10080} value={f.minutes} onChange={(e) => set('minutes')(e.target.value)} />
          </Field>
          <Field label="Throttle minutes" hint="At most one notification per this many minutes; events in between are counted and reported in the next">
            <input type="number" min={0} max={10080} value={f.throttle} onChange={(e) => set('throttle')(e.target.value)} />
          </Field>
        </div>
        <Field label="Mail to" optional hint="Comma-separated addresses">
          <input value={f.email} onChange={(e) => set('email')(e.target.value)} spellCheck={false} />
        </Field>
        <div className="row">
          <Field label="Webhook URL" optional hint="http:// or https://; a JSON body is POSTed, redirects are not followed">
            <input value={f.webhookUrl} onChange={(e) => set('webhookUrl')(e.target.value)} spellCheck={false} />
          </Field>
          <Field label="Signing secret" optional hint="The name of a stored secret: X-Garrison-Signature: sha256=HMAC">
            <input value={f.webhookSecret} onChange={(e) => set('webhookSecret')(e.target.value)} spellCheck={false} />
          </Field>
        </div>
        <Field label="Run task (id)" optional hint="Runs the task now on its targets; you need tasks:run on its groups">
          <input value={f.taskId} onChange={(e) => set('taskId')(e.target.value)} spellCheck={false} />
        </Field>
      </DialogForm>
    </Dialog>
  );
}

function Deliveries() {
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  return (
    <Section title="Deliveries">
      {cursors.map((cursor, i) => (
        <DeliveryPage key={cursor ?? 'first'} cursor={cursor} header={i === 0} onMore={i === cursors.length - 1 ? (next) => setCursors((c) => [...c, next]) : undefined} />
      ))}
    </Section>
  );
}

function DeliveryPage({ cursor, header, onMore }: { cursor: string | undefined; header: boolean; onMore?: (next: string) => void }) {
  const page = useOp(listNotificationDeliveries, { query: { limit: 50, ...(cursor ? { cursor } : {}) } });
  return (
    <Async q={page}>
      {(p) =>
        p.items.length === 0 && header ? (
          <Empty>No notifications sent yet.</Empty>
        ) : (
          <>
            <div className="table-wrap">
              <table aria-label={header ? 'Deliveries' : undefined}>
                {header ? (
                  <thead>
                    <tr>
                      <th scope="col">Created</th>
                      <th scope="col">Rule</th>
                      <th scope="col">Action</th>
                      <th scope="col">Target</th>
                      <th scope="col">State</th>
                      <th scope="col">Attempts</th>
                      <th scope="col">Outcome</th>
                    </tr>
                  </thead>
                ) : null}
                <tbody>
                  {p.items.map((d: NotificationDelivery) => (
                    <tr key={d.id}>
                      <td>
                        <Time iso={d.createdAt} />
                      </td>
                      <td>
                        {d.ruleName}
                        {d.test ? <span className="muted"> (test)</span> : null}
                        <div className="muted small">{d.summary}</div>
                      </td>
                      <td>{d.action}</td>
                      <td className="mono">{d.target}</td>
                      <td>
                        <StateBadge state={d.state === 'sent' ? 'succeeded' : d.state === 'failed' ? 'failed' : 'pending'} label={d.state} />
                      </td>
                      <td>{d.attempts}</td>
                      <td>{d.error ?? d.result ?? (d.status !== null ? `HTTP ${d.status}` : '')}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {onMore && p.nextCursor ? (
              <button type="button" onClick={() => onMore(p.nextCursor!)}>
                Load more
              </button>
            ) : null}
          </>
        )
      }
    </Async>
  );
}

function MailServer() {
  const q = useOp(getSmtpSettings, {});
  return <Section title="Mail server">{<Async q={q}>{(a) => <MailServerForm key={JSON.stringify(a.smtp)} smtp={a.smtp} />}</Async>}</Section>;
}

function MailServerForm({ smtp }: { smtp: SmtpSettings | null }) {
  const [s, setS] = useState({ host: smtp?.host ?? '', port: String(smtp?.port ?? 587), security: smtp?.security ?? 'starttls', user: smtp?.user ?? '', password: smtp?.password?.$secret ?? '', from: smtp?.from ?? '' });
  const { busy, error, setError, run } = useBusy();
  const toast = useToast();
  const qc = useQueryClient();
  const save = async (e: FormEvent) => {
    e.preventDefault();
    const port = Number(s.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) return setError(checkError('The port is 1 to 65535.'));
    const body: SmtpSettings = { host: s.host.trim(), port, security: s.security, from: s.from.trim(), user: s.user.trim() || null, password: s.password.trim() ? { $secret: s.password.trim() } : null };
    const ok = await run(() => call(putSmtpSettings, { body }));
    if (ok) {
      toast('Mail server saved');
      await qc.invalidateQueries({ predicate: (x) => String(x.queryKey[0]).startsWith('/notifications/smtp') });
    }
  };
  return (
    <form onSubmit={save} aria-label="Mail server">
      <div className="row">
        <Field label="Host">
          <input value={s.host} onChange={(e) => setS({ ...s, host: e.target.value })} required spellCheck={false} />
        </Field>
        <Field label="Port">
          <input type="number" min={1} max={65535} value={s.port} onChange={(e) => setS({ ...s, port: e.target.value })} required />
        </Field>
        <Field label="TLS">
          <select value={s.security} onChange={(e) => setS({ ...s, security: e.target.value as SmtpSettings['security'] })}>
            {SMTP_SECURITY_MODES.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <div className="row">
        <Field label="User" optional>
          <input value={s.user} onChange={(e) => setS({ ...s, user: e.target.value })} autoComplete="off" spellCheck={false} />
        </Field>
        <Field label="Password secret" optional hint="The name of a stored secret holding the password">
          <input value={s.password} onChange={(e) => setS({ ...s, password: e.target.value })} autoComplete="off" spellCheck={false} />
        </Field>
        <Field label="From" hint='name@example.com or "Garrison <name@example.com>"'>
          <input value={s.from} onChange={(e) => setS({ ...s, from: e.target.value })} required spellCheck={false} />
        </Field>
      </div>
      <ErrorMessage error={error} onDismiss={() => setError(null)} />
      <button type="submit" className="primary" disabled={busy}>
        {busy ? 'Saving…' : 'Save mail server'}
      </button>
    </form>
  );
}

export function Notifications() {
  const access = useAccess();
  const rules = useOp(listNotificationRules, { query: { limit: 1000 } });
  const [editing, setEditing] = useState<NotificationRule | null | 'new'>(null);
  const toast = useToast();
  const qc = useQueryClient();
  const refresh = () => qc.invalidateQueries({ predicate: (q) => String(q.queryKey[0]).startsWith(RULES_PATH) });
  const mayWrite = (r: NotificationRule) => access.canIn(Permission.manageNotifications, r.groupId);
  const [testError, setTestError] = useState<unknown>(null);
  return (
    <Page
      title="Notifications"
      subtitle="Rules on events that send mail, call a webhook or run a task, with a threshold and a throttle."
      actions={
        access.can(Permission.manageNotifications) ? (
          <button type="button" className="primary" onClick={() => setEditing('new')}>
            New rule
          </button>
        ) : null
      }
    >
      <Section title="Rules">
        <ErrorMessage error={testError} onDismiss={() => setTestError(null)} />
        <Async q={rules}>
          {(p) =>
            p.items.length === 0 ? (
              <Empty>No notification rules yet.</Empty>
            ) : (
              <div className="table-wrap">
                <table aria-label="Notification rules">
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">Group</th>
                      <th scope="col">Events</th>
                      <th scope="col">Threshold</th>
                      <th scope="col">Actions</th>
                      <th scope="col">Last notified</th>
                      <th scope="col">
                        <span className="muted">Manage</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {p.items.map((r) => (
                      <tr key={r.id}>
                        <td>
                          {r.name}
                          {r.enabled ? null : <span className="muted"> (off)</span>}
                        </td>
                        <td>{r.groupPath}</td>
                        <td className="mono">
                          {r.kinds.join(', ')} ≥ {r.minSeverity}
                          {r.product ? ` (${r.product})` : ''}
                        </td>
                        <td>
                          {r.threshold.count} in {r.threshold.minutes} min{r.throttleMinutes ? `, at most every ${r.throttleMinutes} min` : ''}
                          {r.window.suppressed ? <div className="muted small">{r.window.suppressed} held by the throttle</div> : null}
                        </td>
                        <td>{actionText(r.actions)}</td>
                        <td>
                          <Time iso={r.lastNotifiedAt} />
                        </td>
                        <td className="actions">
                          {mayWrite(r) ? (
                            <>
                              <button
                                type="button"
                                aria-label={`Test ${r.name}`}
                                onClick={async () => {
                                  setTestError(null);
                                  try {
                                    const out = await call(testNotificationRule, { params: { id: r.id } });
                                    toast(`Test notification queued: ${out.deliveries.length} deliver${out.deliveries.length === 1 ? 'y' : 'ies'}`);
                                    await qc.invalidateQueries({ predicate: (q) => String(q.queryKey[0]).startsWith('/notifications/deliveries') });
                                  } catch (err) {
                                    setTestError(err);
                                  }
                                }}
                              >
                                Test
                              </button>
                              <button type="button" aria-label={`Edit ${r.name}`} onClick={() => setEditing(r)}>
                                Edit
                              </button>
                              <ConfirmButton
                                label="Delete"
                                ariaLabel={`Delete ${r.name}`}
                                danger
                                question={`Delete the rule “${r.name}”? Its delivery history stays.`}
                                onConfirm={async () => {
                                  await call(deleteNotificationRule, { params: { id: r.id } });
                                  await refresh();
                                }}
                              />
                            </>
                          ) : null}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )
          }
        </Async>
      </Section>
      <Deliveries />
      {access.canOnRoot(Permission.manageSettings) ? <MailServer /> : null}
      {editing !== null ? <RuleDialog rule={editing} onClose={() => setEditing(null)} /> : null}
    </Page>
  );
}
