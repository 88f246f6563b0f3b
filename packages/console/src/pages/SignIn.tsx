/**
 * Sign-in: name and password give a console session (12 h), with the code of the
 * authenticator app when the administrator has a second factor (the server answers
 * SECOND_FACTOR_REQUIRED and the code field appears); an API token works too, for
 * administrators who have none or use the CLI's token. When the server offers sign-in with the
 * organisation's OpenID provider, a button leads there; the provider's way back is
 * `/?oidc=<one-time code>`, exchanged here for a session, or `/?oidc-error=<CODE>` (ADR 0014).
 */
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { createSession, exchangeOidcSession, OIDC_CODE_PARAM, OIDC_DEFAULT_DISPLAY_NAME, OIDC_ERROR_PARAM, OIDC_LOGIN_PATH, errorCodeInfo, isErrorCode } from '@garrison/protocol';
import { API, ApiError, call } from '../api.ts';
import { ErrorMessage, Field, OneTimeCodeField, Tabs, tabPanelProps } from '../ui.tsx';


/** The provider's answer in the address, read once at load and taken out of the address (the code is single-use and must not stay in history). */
const oidcReturn: { code: string | null; error: string | null } = (() => {
  const q = new URLSearchParams(location.search);
  const code = q.get(OIDC_CODE_PARAM);
  const error = q.get(OIDC_ERROR_PARAM);
  if (code === null && error === null) return { code: null, error: null };
  q.delete(OIDC_CODE_PARAM);
  q.delete(OIDC_ERROR_PARAM);
  const rest = q.toString();
  history.replaceState(history.state, '', `${location.pathname}${rest ? `?${rest}` : ''}${location.hash}`);
  return { code, error };
})();
let oidcCodeUsed = false;

/** True when the page was opened by the provider's redirect back, with a code to exchange. */
export function hasOidcReturn(): boolean {
  return oidcReturn.code !== null && !oidcCodeUsed;
}

function oidcError(code: string): ApiError {
  const known = isErrorCode(code) ? errorCodeInfo[code] : undefined;
  return new ApiError(code, known ? 'Signing in with the identity provider did not work.' : `Signing in with the identity provider failed (${code}).`, known?.status ?? 400);
}

/** GET /oidc: whether the server offers the button (a server without it answers 404: no button). */
function useOidcStatus(): { name: string; href: string } | null {
  const [status, setStatus] = useState<{ name: string; href: string } | null>(null);
  useEffect(() => {
    let live = true;
    fetch(`${API}/oidc`, { headers: { accept: 'application/json' } })
      .then(async (res) => {
        if (!res.ok) return;
        const s = (await res.json()) as { enabled?: boolean; name?: string | null; displayName?: string | null; loginPath?: string };
        if (!live || s.enabled !== true) return;
        // Only a path of this server's API: the button never leads anywhere else directly.
        const href = typeof s.loginPath === 'string' && s.loginPath.startsWith(`${API}/`) ? s.loginPath : OIDC_LOGIN_PATH;
        setStatus({ name: s.displayName || s.name || OIDC_DEFAULT_DISPLAY_NAME, href });
      })
      .catch(() => {
        /* no button when the server cannot say */
      });
    return () => {
      live = false;
    };
  }, []);
  return status;
}

export function SignIn({ onSignedIn }: { onSignedIn: (token: string) => void }) {
  const [mode, setMode] = useState<'password' | 'token'>('password');
  const [name, setName] = useState('admin');
  const [password, setPassword] = useState('');
  const [otp, setOtp] = useState('');
  const [needOtp, setNeedOtp] = useState(false);
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [exchanging, setExchanging] = useState(hasOidcReturn);
  const [error, setError] = useState<unknown>(() => (oidcReturn.error ? oidcError(oidcReturn.error) : null));
  const otpRef = useRef<HTMLInputElement>(null);
  const oidc = useOidcStatus();

  // The provider sent the browser back with a one-time code: exchange it for a session (once).
  useEffect(() => {
    if (!oidcReturn.code || oidcCodeUsed) return;
    oidcCodeUsed = true;
    call(exchangeOidcSession, { body: { code: oidcReturn.code } })
      .then((s) => onSignedIn(s.token))
      .catch((err: unknown) => {
        setError(err);
        setExchanging(false);
      });
  }, [onSignedIn]);

  useEffect(() => {
    // Shown once: after a later sign-out the page starts clean.
    oidcReturn.error = null;
  }, []);

  useEffect(() => {
    if (needOtp) otpRef.current?.focus();
  }, [needOtp]);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (mode === 'password') {
        const s = await call(createSession, { body: { name, password, ...(needOtp && otp ? { otp: otp.trim() } : {}) } });
        onSignedIn(s.token);
      } else {
        const value = token.trim();
        // The token is checked before it is kept.
        const res = await fetch('/api/v1/me', { headers: { authorization: `Bearer ${value}` } });
        if (!res.ok) throw new ApiError('UNAUTHENTICATED', 'this API token is not valid', 401);
        onSignedIn(value);
      }
    } catch (err) {
      if (err instanceof ApiError && err.code === 'SECOND_FACTOR_REQUIRED') {
        // Not a failure: the password was right, the code is asked for next.
        setNeedOtp(true);
      } else {
        setError(err);
        if (needOtp) setOtp('');
        else setPassword('');
      }
    } finally {
      setBusy(false);
    }
  }
  if (exchanging)
    return (
      <main id="main" className="signin card">
        <h1>Sign in to Garrison</h1>
        <p className="loading" role="status">
          Signing in with the identity provider…
        </p>
      </main>
    );
  return (
    <main id="main" className="signin card">
      <h1>Sign in to Garrison</h1>
      {oidc ? (
        <>
          <a className="button primary signin-oidc" href={oidc.href}>
            Sign in with {oidc.name}
          </a>
          <p className="muted small signin-or">or</p>
        </>
      ) : null}
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
                <input
                  name="username"
                  autoComplete="username"
                  value={name}
                  onChange={(e) => {
                    setName(e.target.value);
                    setNeedOtp(false);
                  }}
                  required
                  autoFocus
                />
              </Field>
              <Field label="Password" hint="On a new server the password of admin is in DATA/initial-admin-password.">
                <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
              </Field>
              {needOtp ? (
                <>
                  <p className="notice" role="status">
                    This administrator has a second factor: type the 6-digit code your authenticator app shows now.
                  </p>
                  <OneTimeCodeField value={otp} onChange={setOtp} inputRef={otpRef} />
                </>
              ) : null}
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
