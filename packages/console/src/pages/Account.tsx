/** The signed-in administrator: console password and API tokens (values shown once). */
import { useState, type FormEvent } from 'react';
import type { Me } from '@garrison/protocol';
import { del, post, put, useApi } from '../api.ts';
import { Async, ConfirmButton, CopyButton, Empty, ErrorMessage, Field, Page, Section, StateBadge, Time, useBusy, useToast } from '../ui.tsx';

interface ApiTokenRow {
  id: string;
  name: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export function Account() {
  const me = useApi<Me & { session?: boolean }>('/me');
  return (
    <Page title="Account" subtitle={me.data ? `Signed in as ${me.data.name} (${me.data.role ?? me.data.kind})` : undefined}>
      <div className="grid">
        <PasswordForm session={me.data?.session ?? true} />
        <ApiTokens />
      </div>
    </Page>
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
      await put('/me/password', { newPassword: next, ...(session ? { currentPassword: current } : {}) });
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

function ApiTokens() {
  const tokens = useApi<ApiTokenRow[]>('/api-tokens');
  const [name, setName] = useState('');
  const [created, setCreated] = useState<string | null>(null);
  const { busy, error, run } = useBusy();
  return (
    <Section title="API tokens">
      <p className="muted">For the CLI and scripts (Authorization: Bearer …). A token's value is shown once.</p>
      <form
        className="row"
        aria-label="Create an API token"
        onSubmit={async (e) => {
          e.preventDefault();
          const r = await run(() => post<{ token: string }>('/api-tokens', { name }));
          if (r) {
            setCreated(r.token);
            setName('');
            await tokens.refetch();
          }
        }}
      >
        <Field label="Token name">
          <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
        </Field>
        <button type="submit" disabled={busy}>
          Create token
        </button>
      </form>
      <ErrorMessage error={error} />
      {created ? (
        <div className="notice" role="status">
          <p>New token (shown once; store it now):</p>
          <pre>{created}</pre>
          <CopyButton text={created} />
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
                    <th>Name</th>
                    <th>Created</th>
                    <th>Last used</th>
                    <th>State</th>
                    <th>
                      <span className="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((t) => (
                    <tr key={t.id}>
                      <td>{t.name}</td>
                      <td>
                        <Time iso={t.createdAt} />
                      </td>
                      <td>
                        <Time iso={t.lastUsedAt} />
                      </td>
                      <td>{t.revokedAt ? <StateBadge state="revoked" /> : <StateBadge state="active" />}</td>
                      <td>
                        {t.revokedAt ? null : (
                          <ConfirmButton
                            label="Revoke"
                            ariaLabel={`Revoke ${t.name}`}
                            danger
                            question={<p>Revoke the token “{t.name}”? Scripts using it stop working at once.</p>}
                            onConfirm={async () => {
                              await del(`/api-tokens/${t.id}`);
                              await tokens.refetch();
                            }}
                          />
                        )}
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
  );
}
