/**
 * Sign-in: name and password give a console session (12 h); an API token works too, for
 * administrators who have none or use the CLI's token.
 */
import { useState, type FormEvent } from 'react';
import { ApiError, request } from '../api.ts';
import { ErrorMessage, Field, Tabs, tabPanelProps } from '../ui.tsx';

export function SignIn({ onSignedIn }: { onSignedIn: (token: string) => void }) {
  const [mode, setMode] = useState<'password' | 'token'>('password');
  const [name, setName] = useState('admin');
  const [password, setPassword] = useState('');
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (mode === 'password') {
        const s = await request<{ token: string }>('POST', '/session', { name, password });
        onSignedIn(s.token);
      } else {
        const value = token.trim();
        // The token is checked before it is kept.
        const res = await fetch('/api/v1/me', { headers: { authorization: `Bearer ${value}` } });
        if (!res.ok) throw new ApiError('UNAUTHENTICATED', 'this API token is not valid', 401);
        onSignedIn(value);
      }
    } catch (err) {
      setError(err);
      setPassword('');
    } finally {
      setBusy(false);
    }
  }
  return (
    <main id="main" className="signin card">
      <h1>Sign in to Garrison</h1>
      <Tabs
        label="Sign-in method"
        idBase="signin"
        value={mode}
        onChange={setMode}
        tabs={[
          { id: 'password', label: 'Password' },
          { id: 'token', label: 'API token' },
        ]}
      />
      <div {...tabPanelProps('signin', mode)}>
      <form onSubmit={submit} aria-label="Sign in">
        {mode === 'password' ? (
          <>
            <Field label="Name">
              <input name="username" autoComplete="username" value={name} onChange={(e) => setName(e.target.value)} required autoFocus />
            </Field>
            <Field label="Password" hint="On a new server the password of admin is in DATA/initial-admin-password.">
              <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
            </Field>
          </>
        ) : (
          <Field label="API token" hint="A token from garrison token create, or DATA/admin-token.">
            <input name="token" type="password" autoComplete="off" value={token} onChange={(e) => setToken(e.target.value)} required placeholder="gat.…" />
          </Field>
        )}
        <ErrorMessage error={error} />
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      </div>
    </main>
  );
}
