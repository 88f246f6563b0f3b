/**
 * The signed-in administrator: what they hold (roles on groups), console password, second
 * factor (TOTP: the secret and its otpauth:// address for an authenticator app, confirmed with
 * a code), and API tokens with expiry and last use (values shown once).
 */
import { useState, type FormEvent } from 'react';
import { useQueryClient } from '@tanstack/react-query';
import { beginTotp, changePassword, confirmTotp, createApiToken, listApiTokens, removeTotp, revokeApiToken, type ApiTokenView, type Me } from '@garrison/protocol';
import { call } from '../api.ts';
import { useMe } from '../access.tsx';
import { Async, ConfirmButton, CopyButton, Empty, ErrorMessage, Field, OneTimeCodeField, Page, Section, StateBadge, Time, useBusy, useToast } from '../ui.tsx';
import { EXPIRY_CHOICES, useAllPages } from '../admin/common.tsx';
import type { TotpSetup } from '@garrison/protocol';

const VIA: Record<string, string> = { console: 'a console session', cli: 'the CLI', 'api-token': 'an API token', agent: 'an agent', system: 'the system' };

export function Account() {
  const me = useMe();
  const m = me.data;
  return (
    <Page title="Account" subtitle={m ? `Signed in as ${m.name}${m.displayName ? ` (${m.displayName})` : ''}${m.via ? ` through ${VIA[m.via] ?? m.via}` : ''}` : undefined}>
      <div className="grid">
        {m ? <YourAccess me={m} /> : null}
        <PasswordForm session={m?.session ?? true} />
        {m?.kind === 'admin' ? <SecondFactor enabled={m.totpEnabled === true} /> : null}
      </div>
      <ApiTokens />
    </Page>
  );
}

function YourAccess({ me }: { me: Me }) {
  return (
    <Section title="Your access">
      {me.kind === 'system' ? (
        <p>A system token: it may do everything.</p>
      ) : !me.grants?.length ? (
        <Empty>You hold no role: ask an administrator for one.</Empty>
      ) : (
        <>
          <ul className="plain-list">
            {me.grants.map((g) => (
              <li key={`${g.roleId}/${g.groupId}`}>
                <strong>{g.roleName}</strong> on {g.groupPath}
              </li>
            ))}
          </ul>
          <p className="muted small">A role on a group applies to its subgroups too.</p>
        </>
      )}
    </Section>
  );
}

function PasswordForm({ session }: { session: boolean }) {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [again, setAgain] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const toast = useToast();
  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    if (next !== again) {
      setError(new Error('The two new passwords differ.'));
      return;
    }
    setBusy(true);
    try {
      await call(changePassword, { body: { newPassword: next, ...(session ? { currentPassword: current } : {}) } });
      setCurrent('');
      setNext('');
      setAgain('');
      toast('Password changed; your other console sessions were ended.');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return (
    <Section title="Console password">
      <form onSubmit={submit} aria-label="Change password">
        {session ? (
          <Field label="Current password">
            <input type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} required />
          </Field>
        ) : null}
        <Field label="New password" hint="At least 10 characters. Your other console sessions end.">
          <input type="password" autoComplete="new-password" minLength={10} value={next} onChange={(e) => setNext(e.target.value)} required />
        </Field>
        <Field label="New password again">
          <input type="password" autoComplete="new-password" minLength={10} value={again} onChange={(e) => setAgain(e.target.value)} required />
        </Field>
        <ErrorMessage error={error} />
        <button type="submit" className="primary" disabled={busy}>
          Change password
        </button>
      </form>
    </Section>
  );
}

/** The second factor: set up (secret and otpauth address, then a code to confirm), or removed with a current code. */
function SecondFactor({ enabled }: { enabled: boolean }) {
  const [setup, setSetup] = useState<TotpSetup | null>(null);
  const [code, setCode] = useState('');
  const { busy, error, setError, run } = useBusy();
  const toast = useToast();
  const qc = useQueryClient();
  const refreshMe = () => qc.invalidateQueries({ queryKey: ['/me'] });
  const done = (message: string) => {
    setCode('');
    setSetup(null);
    toast(message);
    void refreshMe();
  };
  return (
    <Section title="Second factor">
      {enabled ? (
        <>
          <p>
            <StateBadge state="active" label="on" /> Signing in with your password also asks for the code of your authenticator app.
          </p>
          <form
            aria-label="Remove the second factor"
            onSubmit={async (e) => {
              e.preventDefault();
              if (await run(async () => (await call(removeTotp, { body: { code } }), true))) done('Second factor removed');
            }}
          >
            <OneTimeCodeField value={code} onChange={setCode} hint="The code your app shows now, to remove the second factor." />
            <ErrorMessage error={error} onDismiss={() => setError(null)} />
            <button type="submit" className="danger" disabled={busy}>
              Remove second factor
            </button>
          </form>
        </>
      ) : setup ? (
        <form
          aria-label="Confirm the second factor"
          onSubmit={async (e) => {
            e.preventDefault();
            if (await run(async () => (await call(confirmTotp, { body: { code } }), true))) done('Second factor set: sign-ins now ask for a code');
          }}
        >
          <p>1. In your authenticator app, add an account with this setup key (a time-based code):</p>
          <div className="adm-command">
            <pre aria-label="Setup key">{setup.secret.replace(/(.{4})(?=.)/g, '$1 ')}</pre>
            <CopyButton text={setup.secret} label="Copy key" />
          </div>
          <p className="muted small">Or give it the whole otpauth address (some apps take it pasted, or from a QR code made of it):</p>
          <div className="adm-command">
            <pre aria-label="otpauth address" className="adm-mono">
              {setup.uri}
            </pre>
            <CopyButton text={setup.uri} label="Copy address" />
          </div>
          <p>2. Type the code the app shows, to check that it works:</p>
          <OneTimeCodeField value={code} onChange={setCode} />
          <ErrorMessage error={error} onDismiss={() => setError(null)} />
          <div className="adm-form-actions">
            <button type="submit" className="primary" disabled={busy}>
              Turn on second factor
            </button>
            <button type="button" onClick={() => setSetup(null)}>
              Cancel
            </button>
          </div>
        </form>
      ) : (
        <>
          <p>
            <StateBadge state="cancelled" label="off" /> Ask for a code from an authenticator app when you sign in with your password.
          </p>
          <ErrorMessage error={error} onDismiss={() => setError(null)} />
          <button
            type="button"
            disabled={busy}
            onClick={async () => {
              const s = await run(() => call(beginTotp, {}));
              if (s) {
                setCode('');
                setSetup(s);
              }
            }}
          >
            Set up second factor
          </button>
        </>
      )}
    </Section>
  );
}

/** Expiry choices of API tokens, in days (the day-or-longer ones of the installers' list). */
const TOKEN_EXPIRY = EXPIRY_CHOICES.filter((c) => Number(c.value) >= 1440).map((c) => ({ value: String(Math.round(Number(c.value) / 1440)), label: c.label }));

function tokenState(t: ApiTokenView, now = Date.now()): 'revoked' | 'expired' | 'active' {
  if (t.revokedAt) return 'revoked';
  if (t.expiresAt && Date.parse(t.expiresAt) <= now) return 'expired';
  return 'active';
}

function ApiTokens() {
  const tokens = useAllPages(listApiTokens);
  const [name, setName] = useState('');
  const [expiry, setExpiry] = useState('91');
  const [created, setCreated] = useState<{ name: string; token: string } | null>(null);
  const { busy, error, setError, run } = useBusy();
  const toast = useToast();
  return (
    <Section title="API tokens">
      <p className="muted">For the CLI and scripts (Authorization: Bearer …); a token does what you may do. Its value is shown once.</p>
      <form
        className="row"
        aria-label="Create an API token"
        onSubmit={async (e) => {
          e.preventDefault();
          const r = await run(() => call(createApiToken, { body: { name, ...(expiry ? { expiresInDays: Number(expiry) } : {}) } }));
          if (r) {
            setCreated({ name: r.name, token: r.token });
            setName('');
            await tokens.refetch();
          }
        }}
      >
        <Field label="Token name">
          <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
        </Field>
        <Field label="Expires after">
          <select value={expiry} onChange={(e) => setExpiry(e.target.value)}>
            {TOKEN_EXPIRY.map((c) => (
              <option key={c.value} value={c.value}>
                {c.label}
              </option>
            ))}
            <option value="">Never</option>
          </select>
        </Field>
        <div className="field">
          <button type="submit" disabled={busy}>
            Create token
          </button>
        </div>
      </form>
      <ErrorMessage error={error} onDismiss={() => setError(null)} />
      {created ? (
        <div className="adm-one-time" role="status">
          <p>
            <strong>Token “{created.name}”: copy its value now, it is shown only once.</strong>
          </p>
          <div className="adm-command">
            <pre aria-label="New API token value">{created.token}</pre>
            <CopyButton text={created.token} label="Copy token" />
          </div>
          <button type="button" onClick={() => setCreated(null)}>
            I have copied it
          </button>
        </div>
      ) : null}
      <Async q={tokens}>
        {(list) =>
          list.length === 0 ? (
            <Empty>No API tokens.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Created</th>
                    <th scope="col">Expires</th>
                    <th scope="col">Last used</th>
                    <th scope="col">State</th>
                    <th scope="col">
                      <span className="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {[...list]
                    .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
                    .map((t) => {
                      const state = tokenState(t);
                      return (
                        <tr key={t.id}>
                          <td>{t.name}</td>
                          <td className="nowrap">
                            <Time iso={t.createdAt} />
                          </td>
                          <td className="nowrap">{t.expiresAt ? <Time iso={t.expiresAt} /> : <span className="muted">never</span>}</td>
                          <td className="nowrap">{t.lastUsedAt ? <Time iso={t.lastUsedAt} /> : <span className="muted">never</span>}</td>
                          <td>{state === 'revoked' ? <span className="muted">revoked <Time iso={t.revokedAt} /></span> : <StateBadge state={state} />}</td>
                          <td>
                            {state === 'revoked' ? null : (
                              <ConfirmButton
                                label="Revoke"
                                ariaLabel={`Revoke ${t.name}`}
                                danger
                                confirmLabel={`Revoke ${t.name}`}
                                question={<p>Revoke the token “{t.name}”? Scripts using it stop working at once.</p>}
                                onConfirm={async () => {
                                  await call(revokeApiToken, { params: { id: t.id } });
                                  toast(`Token “${t.name}” revoked`);
                                  await tokens.refetch();
                                }}
                              />
                            )}
                          </td>
                        </tr>
                      );
                    })}
                </tbody>
              </table>
            </div>
          )
        }
      </Async>
    </Section>
  );
}
