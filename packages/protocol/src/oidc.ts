/**
 * Sign-in with the organisation's OpenID Connect provider: the server settings that configure
 * it and what the console needs to offer it. The client secret is only ever a reference to a
 * stored secret, never a value.
 */
import { Type, type Static } from 'typebox';
import { SecretRefSchema } from './script-settings.ts';

/** Where the provider sends the browser back to: register `https://<server>` + this path at the provider. */
export const OIDC_CALLBACK_PATH = '/api/v1/oidc/callback';
/** Where the console's "Sign in with …" button sends the browser. */
export const OIDC_LOGIN_PATH = '/api/v1/oidc/login';
/** The console's page gets `?oidc=<one-time code>` after a sign-in, or `?oidc-error=<ERROR_CODE>`. */
export const OIDC_CODE_PARAM = 'oidc';
export const OIDC_ERROR_PARAM = 'oidc-error';

export const OIDC_DEFAULT_SCOPES = ['openid', 'profile', 'email'] as const;
export const OIDC_DEFAULT_GROUPS_CLAIM = 'groups';
export const OIDC_DEFAULT_DISPLAY_NAME = 'OpenID Connect';

/** Members of the provider's group `claimValue` get role `roleId` on group `groupId` (and its subtree). */
export const OidcRoleMapping = Type.Object(
  {
    claimValue: Type.String({ minLength: 1, maxLength: 500, description: 'A value of the groups claim (a group name, or an id such as Entra ID object ids)' }),
    roleId: Type.String({ minLength: 1, maxLength: 100 }),
    groupId: Type.String({ minLength: 1, maxLength: 100 }),
  },
  { additionalProperties: false },
);
export type OidcRoleMapping = Static<typeof OidcRoleMapping>;

export const OidcTokenAuthMethod = Type.Union([Type.Literal('client_secret_basic'), Type.Literal('client_secret_post')]);
export type OidcTokenAuthMethod = Static<typeof OidcTokenAuthMethod>;

export const OidcSettingsInput = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ description: 'Offer the sign-in (default true)' })),
    issuer: Type.String({ minLength: 1, maxLength: 2000, description: "The provider's issuer URL (https://); its /.well-known/openid-configuration is read" }),
    clientId: Type.String({ minLength: 1, maxLength: 500 }),
    clientSecret: Type.Optional(
      Type.Union([SecretRefSchema, Type.Null(), Type.String({ maxLength: 65536, description: 'refused with SECRET_LITERAL_REFUSED: store the value as a secret and give {"$secret": name}' })], {
        description: 'A reference {"$secret": name} to a stored secret of the root group; null for a public client; absent keeps the current one',
      }),
    ),
    tokenEndpointAuthMethod: Type.Optional(OidcTokenAuthMethod),
    displayName: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'The name on the console\'s button: "Sign in with <displayName>"' })),
    scopes: Type.Optional(Type.Array(Type.String({ pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]{1,100}$' }), { maxItems: 50, uniqueItems: true, description: 'Default openid, profile, email; openid is always asked for' })),
    groupsClaim: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'The claim that lists the groups (default "groups"; a dotted path such as realm_access.roles reaches into objects)' })),
    createUsers: Type.Optional(Type.Boolean({ description: 'Create an administrator at the first sign-in of an unknown user whose groups map to a role (default true)' })),
    roleMappings: Type.Optional(Type.Array(OidcRoleMapping, { maxItems: 500 })),
    caPem: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 65536 }), Type.Null()], { description: "A CA certificate (PEM) to trust for the provider instead of the system's, for an internal PKI" })),
    redirectUri: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 2000 }), Type.Null()], { description: 'The callback URL registered at the provider (default: https://<the address the browser used>/api/v1/oidc/callback)' })),
  },
  { additionalProperties: false },
);
export type OidcSettingsInput = Static<typeof OidcSettingsInput>;

const NullableString = Type.Union([Type.String(), Type.Null()]);
export const OidcSettingsView = Type.Object(
  {
    configured: Type.Boolean({ description: 'False until settings were saved' }),
    enabled: Type.Boolean(),
    issuer: NullableString,
    clientId: NullableString,
    clientSecret: Type.Union([SecretRefSchema, Type.Null()], { description: 'The reference to the stored secret (never its value)' }),
    tokenEndpointAuthMethod: OidcTokenAuthMethod,
    displayName: Type.String(),
    scopes: Type.Array(Type.String()),
    groupsClaim: Type.String(),
    createUsers: Type.Boolean(),
    roleMappings: Type.Array(OidcRoleMapping),
    caPem: NullableString,
    redirectUri: NullableString,
    callbackPath: Type.String(),
    updatedAt: NullableString,
  },
  { additionalProperties: false },
);
export type OidcSettingsView = Static<typeof OidcSettingsView>;

/** Public: whether the console shows the button, and its name. */
export const OidcStatus = Type.Object({ enabled: Type.Boolean(), displayName: NullableString, loginPath: Type.String() }, { additionalProperties: false });
export type OidcStatus = Static<typeof OidcStatus>;

export const OidcSessionExchange = Type.Object({ code: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });
export type OidcSessionExchange = Static<typeof OidcSessionExchange>;
