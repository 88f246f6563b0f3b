/**
 * Console sign-in (ADR 0021 for the shape of an operation): a session from a name and password
 * (and the second-factor code), or from an OpenID Connect sign-in; signing out; the caller's
 * password; the OpenID Connect settings. The browser legs of an OpenID Connect sign-in (its
 * login and callback paths, oidc.ts) are navigations answered with redirects, not API calls,
 * and are not operations.
 */
import { Type, type Static } from 'typebox';
import { operation } from '../contract.ts';
import { OidcSessionExchange, OidcSettingsInput, OidcSettingsView, OidcStatus } from '../oidc.ts';
import { PASSWORD_MIN_LENGTH } from './identity.ts';

export const SignInBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    password: Type.String({ minLength: 1, maxLength: 1024 }),
    otp: Type.Optional(Type.String({ maxLength: 10, description: 'The current code of the authenticator app, for an administrator with a second factor' })),
  },
  { additionalProperties: false },
);
export type SignInBody = Static<typeof SignInBody>;
export const PasswordChange = Type.Object(
  {
    currentPassword: Type.Optional(Type.String({ maxLength: 1024, description: 'Needed from a console session' })),
    newPassword: Type.String({ minLength: PASSWORD_MIN_LENGTH, maxLength: 1024 }),
  },
  { additionalProperties: false },
);
export type PasswordChange = Static<typeof PasswordChange>;
/** A console session: its token is used as a bearer token until it expires. */
export const SessionView = Type.Object(
  { token: Type.String(), expiresAt: Type.String({ format: 'date-time' }), name: Type.String({ description: "The administrator's name" }) },
  { additionalProperties: false },
);
export type SessionView = Static<typeof SessionView>;

export const createSession = operation({
  id: 'createSession',
  method: 'POST',
  path: '/session',
  tag: 'auth',
  summary: 'Sign in with a name and password (and the second-factor code when set); returns a session token (12 h) used as a bearer token. At most 10 attempts a minute per address',
  body: SignInBody,
  status: 201,
  response: SessionView,
  errors: ['SECOND_FACTOR_REQUIRED', 'RATE_LIMITED'],
});
export const deleteSession = operation({
  id: 'deleteSession',
  method: 'DELETE',
  path: '/session',
  tag: 'auth',
  summary: 'Sign out: ends the console session used for this request',
  status: 204,
  response: null,
});
export const changePassword = operation({
  id: 'changePassword',
  method: 'PUT',
  path: '/me/password',
  tag: 'auth',
  summary: "Set the caller's console password (the current one is needed from a console session); other sessions end",
  body: PasswordChange,
  status: 204,
  response: null,
});
export const exchangeOidcSession = operation({
  id: 'exchangeOidcSession',
  method: 'POST',
  path: '/session/oidc',
  tag: 'auth',
  summary: 'Exchange the one-time code of an OpenID Connect sign-in (from /?oidc=…, within 60 s, from the same browser) for a console session, as createSession returns',
  body: OidcSessionExchange,
  status: 201,
  response: SessionView,
  errors: ['OIDC_CODE_INVALID'],
});
export const getOidcStatus = operation({
  id: 'getOidcStatus',
  method: 'GET',
  path: '/oidc',
  tag: 'auth',
  summary: 'Whether the console offers sign-in with OpenID Connect, and the name of its button',
  response: OidcStatus,
});
export const getOidcSettings = operation({
  id: 'getOidcSettings',
  method: 'GET',
  path: '/settings/oidc',
  tag: 'auth',
  summary: 'Sign-in with OpenID Connect: the settings (the client secret only as its secret reference; read on the root group)',
  response: OidcSettingsView,
});
export const putOidcSettings = operation({
  id: 'putOidcSettings',
  method: 'PUT',
  path: '/settings/oidc',
  tag: 'auth',
  summary:
    'Set sign-in with OpenID Connect: issuer (https://), client, the client secret as {"$secret": name}, the groups claim and role mappings (admins:write on the root). When enabled, the provider is discovered before saving',
  body: OidcSettingsInput,
  response: OidcSettingsView,
  errors: ['OIDC_SETTINGS_INVALID', 'SECRET_LITERAL_REFUSED', 'SECRET_NOT_FOUND', 'SECRET_REFERENCE_REFUSED', 'OIDC_PROVIDER_UNAVAILABLE'],
});
