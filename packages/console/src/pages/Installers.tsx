/**
 * Installers and enrolment tokens: an installer link serves an install script that installs
 * the agent and enrols the machine into a group, pinning this server; a bare enrolment token
 * is for installing the agent by hand. A token's value is shown once, when it is created.
 */
import { useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { createEnrolmentToken, createInstaller, listEnrolmentTokens, revokeEnrolmentToken, type EnrolmentTokenView, type InstallPlatform, type InstallerView } from '@garrison/protocol';
import { call } from '../api.ts';
import { useMorePages } from '../tasks/queries.ts';
import { Async, ConfirmButton, CopyButton, Dialog, DialogForm, Empty, ErrorMessage, GroupSelect, Page, Section, StateBadge, Time, useBusy, useToast } from '../ui.tsx';
import { EXPIRY_CHOICES, Tabs, checkError, optionalInt, tabPanelProps, useRootGroupId, Field } from '../admin/common.tsx';
import { Permission, useAccess } from '../access.tsx';

type Platform = InstallPlatform;
const PLATFORMS: { id: Platform; label: string; how: string }[] = [
  { id: 'linux', label: 'Linux', how: 'In a terminal, as a user who may use sudo (systemd service).' },
  { id: 'macos', label: 'macOS', how: 'In Terminal, as an administrator (launchd service).' },
  { id: 'windows', label: 'Windows', how: 'In a command prompt or PowerShell run as Administrator (Windows service).' },
];
const TOKENS = '/enrolment-tokens';

export function Installers() {
  const [created, setCreated] = useState<InstallerView | null>(null);
  const mayCreate = useAccess().can(Permission.manageTokens);
  return (
    <Page title="Installers" subtitle="Links and tokens that install the agent and enrol machines into a group. For hosts reachable over SSH, see Push installation.">
      {created ? <InstallerResult view={created} onDone={() => setCreated(null)} /> : mayCreate ? <CreateInstaller onCreated={setCreated} /> : null}
      <Tokens />
    </Page>
  );
}

/** Expiry and use limit, shared by both creation forms. */
function LimitFields({ expiry, setExpiry, maxUses, setMaxUses, allowNever }: { expiry: string; setExpiry: (v: string) => void; maxUses: string; setMaxUses: (v: string) => void; allowNever?: boolean }) {
  return (
    <>
      <Field label="Expires after">
        <select value={expiry} onChange={(e) => setExpiry(e.target.value)}>
          {allowNever ? <option value="">Never</option> : null}
          {EXPIRY_CHOICES.map((c) => (
            <option key={c.value} value={c.value}>
              {c.label}
            </option>
          ))}
        </select>
      </Field>
      <Field label="Maximum uses" hint="Machines that may enrol with it; empty for no limit.">
        <input type="number" min={1} max={1000000} value={maxUses} onChange={(e) => setMaxUses(e.target.value)} inputMode="numeric" />
      </Field>
    </>
  );
}

function limits(expiry: string, maxUses: string): { expiresInMinutes?: number; maxUses?: number } | Error {
  const m = optionalInt(maxUses);
  if (m !== undefined && (Number.isNaN(m) || m < 1 || m > 1_000_000)) return checkError('Maximum uses is a whole number from 1 to 1,000,000, or empty for no limit.');
  return { ...(expiry ? { expiresInMinutes: Number(expiry) } : {}), ...(m !== undefined ? { maxUses: m } : {}) };
}

function CreateInstaller({ onCreated }: { onCreated: (v: InstallerView) => void }) {
  const root = useRootGroupId();
  const [groupId, setGroupId] = useState('');
  const [name, setName] = useState('');
  const [expiry, setExpiry] = useState('10080');
  const [maxUses, setMaxUses] = useState('');
  const [serverUrl, setServerUrl] = useState('');
  const { busy, error, setError, run } = useBusy();
  const qc = useQueryClient();
  const group = groupId || root;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!group) return setError(checkError('Choose the group the machines enrol into.'));
    const l = limits(expiry, maxUses);
    if (l instanceof Error) return setError(l);
    const url = serverUrl.trim().replace(/\/+$/, '');
    if (url && !/^https:\/\/[A-Za-z0-9.\-[\]:]+$/.test(url)) return setError(checkError('The server address is https://host or https://host:port, without a path.'));
    const view = await run(() => call(createInstaller, { body: { groupId: group, ...(name.trim() ? { name: name.trim() } : {}), ...l, ...(url ? { serverUrl: url } : {}) } }));
    if (view) {
      onCreated(view);
      // The link's token joins the token list below.
      void qc.invalidateQueries({ predicate: (q) => String(q.queryKey[0]).startsWith(TOKENS) });
    }
  };

  return (
    <Section title="Create an installer link">
      <form onSubmit={submit} aria-label="Create an installer link">
        <p className="muted small">
          The link serves an install script for Linux, macOS and Windows. Run on a machine, it installs the agent as a service, pins this server's certificate and enrols the machine into the group;
          the group's deployments then install its products.
        </p>
        <div className="row adm-top">
          <GroupSelect value={group} onChange={setGroupId} required />
          <Field label="Name" hint="Optional; shown in the token list.">
            <input value={name} onChange={(e) => setName(e.target.value)} maxLength={200} placeholder={`installer for …`} />
          </Field>
        </div>
        <div className="row adm-top">
          <LimitFields expiry={expiry} setExpiry={setExpiry} maxUses={maxUses} setMaxUses={setMaxUses} />
          <Field label="Server address" hint="How machines reach this server; default: the address of this page.">
            <input type="url" value={serverUrl} onChange={(e) => setServerUrl(e.target.value)} placeholder={`https://${location.host}`} autoComplete="off" spellCheck={false} />
          </Field>
        </div>
        <ErrorMessage error={error} onDismiss={() => setError(null)} />
        <div className="adm-form-actions">
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Creating…' : 'Create installer link'}
          </button>
        </div>
      </form>
    </Section>
  );
}

function InstallerResult({ view, onDone }: { view: InstallerView; onDone: () => void }) {
  const [platform, setPlatform] = useState<Platform>('linux');
  const p = PLATFORMS.find((x) => x.id === platform)!;
  return (
    <Section
      title={`Installer link for ${view.token.groupPath}`}
      actions={
        <button type="button" onClick={onDone}>
          Done
        </button>
      }
    >
      <div className="adm-one-time" role="status">
        <p>
          <strong>Copy the link or a command now: it is shown only once.</strong> The enrolment token in it is not stored in a readable form and cannot be shown again; create a new link if you
          lose it.
        </p>
        <p className="muted small">
          Anyone with the link can enrol machines into {view.token.groupPath}
          {view.token.expiresAt ? (
            <>
              {' '}
              until <Time iso={view.token.expiresAt} />
            </>
          ) : null}
          {view.token.maxUses ? `, at most ${view.token.maxUses} times` : ''}. Revoke it below when it is no longer needed.
        </p>
      </div>
      <Tabs label="Platform" idBase="installer-platform" value={platform} onChange={setPlatform} tabs={PLATFORMS.map((x) => ({ id: x.id, label: x.label }))} />
      <div {...tabPanelProps('installer-platform', platform)}>
        <p className="muted small">{p.how}</p>
        <div className="adm-command">
          <pre aria-label={`${p.label} install command`}>{view.commands[platform]}</pre>
          <CopyButton text={view.commands[platform]} label={`Copy ${p.label} command`} />
        </div>
      </div>
      <h3>Link</h3>
      <div className="adm-command">
        <pre aria-label="Installer link">{view.url}</pre>
        <CopyButton text={view.url} label="Copy link" />
      </div>
      <details className="adm-disclosure">
        <summary>What the link pins</summary>
        <dl className="props">
          <dt>CA fingerprint (SHA-256)</dt>
          <dd className="adm-mono">{view.caFingerprint}</dd>
          <dt>Certificate fingerprint</dt>
          <dd className="adm-mono">{view.certFingerprint}</dd>
          <dt>Public key pin</dt>
          <dd className="adm-mono">{view.publicKeyPin}</dd>
          <dt>Agent builds</dt>
          <dd>{view.agentPlatforms.length ? view.agentPlatforms.join(', ') : <span className="muted">none available</span>}</dd>
        </dl>
      </details>
    </Section>
  );
}

function Tokens() {
  const [filter, setFilter] = useState<'active' | 'all'>('active');
  // Newest first, a page at a time; "active" is the server's filter, so every page is full.
  const tokens = useMorePages(listEnrolmentTokens, { query: filter === 'active' ? { state: 'active' } : {} });
  const [creating, setCreating] = useState(false);
  const [createdToken, setCreatedToken] = useState<EnrolmentTokenView | null>(null);
  const toast = useToast();
  const access = useAccess();
  const shown = tokens.items;

  return (
    <Section
      title="Enrolment tokens"
      actions={
        access.can(Permission.manageTokens) ? (
          <button
            type="button"
            onClick={() => {
              setCreatedToken(null);
              setCreating(true);
            }}
          >
            Create enrolment token
          </button>
        ) : null
      }
    >
      {createdToken?.token ? <OneTimeToken token={createdToken} onDismiss={() => setCreatedToken(null)} /> : null}
      <div className="toolbar">
        <Field label="Show">
          <select value={filter} onChange={(e) => setFilter(e.target.value as 'active' | 'all')}>
            <option value="active">Active tokens</option>
            <option value="all">All tokens</option>
          </select>
        </Field>
      </div>
      <Async q={tokens}>
        {() =>
          shown.length === 0 ? (
            <Empty>{filter === 'active' ? 'No active token.' : 'No enrolment token yet.'}</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Group</th>
                    <th scope="col">State</th>
                    <th scope="col" className="num">
                      Uses
                    </th>
                    <th scope="col">Expires</th>
                    <th scope="col">Created</th>
                    <th scope="col">
                      <span className="muted">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {shown.map((t) => (
                    <tr key={t.id}>
                      <td>{t.name}</td>
                      <td>{t.groupPath}</td>
                      <td>
                        <StateBadge state={t.state} />
                      </td>
                      <td className="num nowrap">
                        {t.uses.toLocaleString()} / {t.maxUses === null ? '∞' : t.maxUses.toLocaleString()}
                      </td>
                      <td className="nowrap">{t.revokedAt ? <span className="muted">revoked <Time iso={t.revokedAt} /></span> : t.expiresAt ? <Time iso={t.expiresAt} /> : <span className="muted">never</span>}</td>
                      <td className="nowrap">
                        <Time iso={t.createdAt} />
                        <br />
                        <span className="muted small">by {t.createdBy}</span>
                      </td>
                      <td>
                        {t.state === 'active' && access.canIn(Permission.manageTokens, t.groupId) ? (
                          <ConfirmButton
                            label="Revoke"
                            danger
                            confirmLabel={`Revoke ${t.name}`}
                            question={
                              <p>
                                Revoke <strong>{t.name}</strong>? Machines can no longer enrol with it, and installer links that carry it stop working. Devices already enrolled are not affected.
                              </p>
                            }
                            onConfirm={async () => {
                              await call(revokeEnrolmentToken, { params: { id: t.id } });
                              toast(`Token "${t.name}" revoked`);
                              await tokens.refetch();
                            }}
                          />
                        ) : null}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {tokens.hasNextPage ? (
                <p>
                  <button type="button" disabled={tokens.isFetchingNextPage} onClick={() => void tokens.fetchNextPage()}>
                    {tokens.isFetchingNextPage ? 'Loading…' : 'Load more'}
                  </button>
                </p>
              ) : null}
            </div>
          )
        }
      </Async>
      {tokens.error && tokens.data ? <ErrorMessage error={tokens.error} /> : null}
      <Dialog open={creating} title="Create enrolment token" onClose={() => setCreating(false)}>
        {creating ? (
          <CreateToken
            onClose={() => setCreating(false)}
            onCreated={(t) => {
              setCreating(false);
              setCreatedToken(t);
              void tokens.refetch();
            }}
          />
        ) : null}
      </Dialog>
    </Section>
  );
}

function OneTimeToken({ token, onDismiss }: { token: EnrolmentTokenView; onDismiss: () => void }) {
  return (
    <div className="adm-one-time" role="status">
      <p>
        <strong>Token “{token.name}” for {token.groupPath}. Copy its value now: it is shown only once.</strong>
      </p>
      <div className="adm-command">
        <pre aria-label="Enrolment token value">{token.token}</pre>
        <CopyButton text={token.token ?? ''} label="Copy token" />
      </div>
      <p className="muted small">
        Use it where the agent is already installed: <code>garrison agent enrol --server https://{location.host} --ca-fingerprint SHA256 --token-stdin</code> and paste it when asked (never put it on the command line). An installer link does all of it in
        one command.
      </p>
      <button type="button" onClick={onDismiss}>
        I have copied it
      </button>
    </div>
  );
}

function CreateToken({ onClose, onCreated }: { onClose: () => void; onCreated: (t: EnrolmentTokenView) => void }) {
  const root = useRootGroupId();
  const [groupId, setGroupId] = useState('');
  const [name, setName] = useState('');
  const [expiry, setExpiry] = useState('1440');
  const [maxUses, setMaxUses] = useState('');
  const { busy, error, setError, run } = useBusy();
  const group = groupId || root;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!group) return setError(checkError('Choose the group the machines enrol into.'));
    const l = limits(expiry, maxUses);
    if (l instanceof Error) return setError(l);
    const t = await run(() => call(createEnrolmentToken, { body: { groupId: group, ...(name.trim() ? { name: name.trim() } : {}), ...l } }));
    if (t) onCreated(t);
  };
  return (
    <DialogForm onSubmit={submit} onCancel={onClose} submitLabel={busy ? 'Creating…' : 'Create token'} disabled={busy} error={error} onDismissError={() => setError(null)}>
      <GroupSelect value={group} onChange={setGroupId} required />
      <Field label="Name" hint="Optional; shown in the token list.">
        <input value={name} onChange={(e) => setName(e.target.value)} maxLength={200} />
      </Field>
      <LimitFields expiry={expiry} setExpiry={setExpiry} maxUses={maxUses} setMaxUses={setMaxUses} allowNever />
    </DialogForm>
  );
}
