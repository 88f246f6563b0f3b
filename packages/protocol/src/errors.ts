/**
 * The closed list of error codes that Garrison's API, agent endpoints and CLI use.
 * Clients branch on `code`, never on `message`. Each code has one HTTP status and says
 * whether retrying the same request later may succeed.
 */
export const ErrorCode = {
  BAD_REQUEST: 'BAD_REQUEST',
  VALIDATION_FAILED: 'VALIDATION_FAILED',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  GROUP_NOT_EMPTY: 'GROUP_NOT_EMPTY',
  GROUP_CYCLE: 'GROUP_CYCLE',
  ROOT_GROUP_IMMUTABLE: 'ROOT_GROUP_IMMUTABLE',
  TOKEN_INVALID: 'TOKEN_INVALID',
  TOKEN_EXPIRED: 'TOKEN_EXPIRED',
  TOKEN_REVOKED: 'TOKEN_REVOKED',
  TOKEN_EXHAUSTED: 'TOKEN_EXHAUSTED',
  DEVICE_CREDENTIAL_INVALID: 'DEVICE_CREDENTIAL_INVALID',
  PRODUCT_NOT_INSTALLED: 'PRODUCT_NOT_INSTALLED',
  TASK_TYPE_UNKNOWN: 'TASK_TYPE_UNKNOWN',
  SETTINGS_INVALID: 'SETTINGS_INVALID',
  SECRET_LITERAL_REFUSED: 'SECRET_LITERAL_REFUSED',
  SECRET_NOT_FOUND: 'SECRET_NOT_FOUND',
  SCHEDULE_INVALID: 'SCHEDULE_INVALID',
  SCOPE_INVALID: 'SCOPE_INVALID',
  IMPORT_INVALID: 'IMPORT_INVALID',
  RUN_NOT_FOUND: 'RUN_NOT_FOUND',
  HOSTS_INVALID: 'HOSTS_INVALID',
  CREDENTIALS_INVALID: 'CREDENTIALS_INVALID',
  AGENT_BUILD_UNAVAILABLE: 'AGENT_BUILD_UNAVAILABLE',
  INSTALLER_UNAVAILABLE: 'INSTALLER_UNAVAILABLE',
  SERVER_NOT_TRUSTED: 'SERVER_NOT_TRUSTED',
  CA_FINGERPRINT_MISMATCH: 'CA_FINGERPRINT_MISMATCH',
  CA_INVALID: 'CA_INVALID',
  CA_UNAVAILABLE: 'CA_UNAVAILABLE',
  CA_REQUIRED: 'CA_REQUIRED',
  TLS_REQUIRED: 'TLS_REQUIRED',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  URI_TOO_LONG: 'URI_TOO_LONG',
  HEADERS_TOO_LARGE: 'HEADERS_TOO_LARGE',
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  RATE_LIMITED: 'RATE_LIMITED',
  SECOND_FACTOR_REQUIRED: 'SECOND_FACTOR_REQUIRED',
  OIDC_NOT_CONFIGURED: 'OIDC_NOT_CONFIGURED',
  OIDC_SETTINGS_INVALID: 'OIDC_SETTINGS_INVALID',
  OIDC_PROVIDER_UNAVAILABLE: 'OIDC_PROVIDER_UNAVAILABLE',
  OIDC_STATE_INVALID: 'OIDC_STATE_INVALID',
  OIDC_SIGN_IN_FAILED: 'OIDC_SIGN_IN_FAILED',
  OIDC_ACCOUNT_UNKNOWN: 'OIDC_ACCOUNT_UNKNOWN',
  OIDC_NO_ROLE: 'OIDC_NO_ROLE',
  OIDC_CODE_INVALID: 'OIDC_CODE_INVALID',
  NOT_ASSIGNED: 'NOT_ASSIGNED',
  SECRET_REFERENCE_REFUSED: 'SECRET_REFERENCE_REFUSED',
  DEVICE_QUARANTINED: 'DEVICE_QUARANTINED',
  CREDENTIAL_PROOF_INVALID: 'CREDENTIAL_PROOF_INVALID',
  STATE_FOLDER_IN_USE: 'STATE_FOLDER_IN_USE',
  DATA_FOLDER_IN_USE: 'DATA_FOLDER_IN_USE',
  INSTANCE_KEY_MISMATCH: 'INSTANCE_KEY_MISMATCH',
  VERSION_INVALID: 'VERSION_INVALID',
  VERSION_SCHEME_MISMATCH: 'VERSION_SCHEME_MISMATCH',
  LOCAL_TASKS_NOT_ALLOWED: 'LOCAL_TASKS_NOT_ALLOWED',
  POLICY_SETTING_LOCKED: 'POLICY_SETTING_LOCKED',
  POLICY_INVALID: 'POLICY_INVALID',
  POLICY_TYPE_UNKNOWN: 'POLICY_TYPE_UNKNOWN',
  POLICY_REVISION_CONFLICT: 'POLICY_REVISION_CONFLICT',
  POLICY_IN_USE: 'POLICY_IN_USE',
  POLICY_IMPORT_INVALID: 'POLICY_IMPORT_INVALID',
  UNAVAILABLE: 'UNAVAILABLE',
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface ErrorCodeInfo {
  status: number;
  retryable: boolean;
  summary: string;
}

/** One table maps every code to its HTTP status; a test keeps it complete. */
export const errorCodeInfo: Record<ErrorCode, ErrorCodeInfo> = {
  BAD_REQUEST: { status: 400, retryable: false, summary: 'The request is malformed.' },
  VALIDATION_FAILED: { status: 400, retryable: false, summary: 'The request body, query or message does not match its schema.' },
  UNAUTHENTICATED: { status: 401, retryable: false, summary: 'No valid API token or device credential was given.' },
  FORBIDDEN: { status: 403, retryable: false, summary: 'The caller may not do this.' },
  NOT_FOUND: { status: 404, retryable: false, summary: 'The object does not exist.' },
  CONFLICT: { status: 409, retryable: false, summary: 'The change conflicts with the current state.' },
  GROUP_NOT_EMPTY: { status: 409, retryable: false, summary: 'A group with devices, subgroups or tasks cannot be deleted.' },
  GROUP_CYCLE: { status: 409, retryable: false, summary: 'A group cannot move under itself or its descendants.' },
  ROOT_GROUP_IMMUTABLE: { status: 409, retryable: false, summary: 'The root group cannot be moved or deleted.' },
  TOKEN_INVALID: { status: 401, retryable: false, summary: 'The enrolment token is unknown.' },
  TOKEN_EXPIRED: { status: 401, retryable: false, summary: 'The enrolment token has expired.' },
  TOKEN_REVOKED: { status: 401, retryable: false, summary: 'The enrolment token was revoked.' },
  TOKEN_EXHAUSTED: { status: 401, retryable: false, summary: 'The enrolment token has reached its use limit.' },
  DEVICE_CREDENTIAL_INVALID: { status: 401, retryable: false, summary: 'The device credential is unknown or revoked.' },
  PRODUCT_NOT_INSTALLED: { status: 422, retryable: false, summary: 'No management plug-in for this product is installed on the server.' },
  TASK_TYPE_UNKNOWN: { status: 422, retryable: false, summary: 'The product has no task type of this name.' },
  SETTINGS_INVALID: { status: 422, retryable: false, summary: "The task settings do not match the task type's schema." },
  SECRET_LITERAL_REFUSED: { status: 422, retryable: false, summary: 'A credential was given as a literal value; store it as a secret and refer to it.' },
  SECRET_NOT_FOUND: { status: 422, retryable: false, summary: 'A secret reference names no stored secret.' },
  SCHEDULE_INVALID: { status: 422, retryable: false, summary: 'The schedule is not valid.' },
  SCOPE_INVALID: { status: 422, retryable: false, summary: 'The scope names no valid device, group or selection.' },
  IMPORT_INVALID: { status: 422, retryable: false, summary: 'The task export document is not valid.' },
  RUN_NOT_FOUND: { status: 404, retryable: false, summary: 'The run does not exist for this device.' },
  HOSTS_INVALID: { status: 400, retryable: false, summary: 'A host list entry is not a host name, address, range or CIDR block (at most /22), or the list has more than 4,096 hosts.' },
  CREDENTIALS_INVALID: { status: 400, retryable: false, summary: 'Give exactly one of a password or a private key (with its passphrase if it has one).' },
  AGENT_BUILD_UNAVAILABLE: { status: 404, retryable: false, summary: 'This server cannot build an agent for that platform (it builds for its own platform only).' },
  INSTALLER_UNAVAILABLE: { status: 503, retryable: false, summary: 'Installers need the server to serve TLS itself (not --http behind a proxy).' },
  SERVER_NOT_TRUSTED: { status: 502, retryable: false, summary: "(client side) The server's certificate does not chain to the pinned CA or does not name the address used." },
  CA_FINGERPRINT_MISMATCH: { status: 502, retryable: false, summary: "(client side) The server's CA does not have the expected fingerprint: it is not the server you were sent to." },
  CA_INVALID: { status: 400, retryable: false, summary: '(client side) The CA certificate or fingerprint given cannot be read.' },
  CA_UNAVAILABLE: { status: 503, retryable: true, summary: "(client side) The server's CA certificate could not be fetched." },
  CA_REQUIRED: { status: 400, retryable: false, summary: "(client side) Enrolment needs the server's CA: a fingerprint or a PEM file." },
  TLS_REQUIRED: { status: 400, retryable: false, summary: '(client side) Agents and the CLI talk to servers over https:// only.' },
  PAYLOAD_TOO_LARGE: { status: 413, retryable: false, summary: 'The body or message is too large.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false, summary: 'The body has a content type the route does not take (the API and agent endpoints take application/json).' },
  URI_TOO_LONG: { status: 414, retryable: false, summary: 'A path segment (an id, name or token in the URL) is longer than the server reads (200 characters).' },
  HEADERS_TOO_LARGE: { status: 431, retryable: false, summary: "The request line and headers together are larger than the server reads (Node's limit, 16 KB by default)." },
  REQUEST_TIMEOUT: { status: 408, retryable: true, summary: 'The request was not received in time; send it again.' },
  RATE_LIMITED: { status: 429, retryable: true, summary: 'Too many requests; retry later.' },
  SECOND_FACTOR_REQUIRED: { status: 401, retryable: false, summary: 'This administrator has a second factor: give the current code of the authenticator app.' },
  OIDC_NOT_CONFIGURED: { status: 409, retryable: false, summary: 'Sign-in with OpenID Connect is not configured on this server, or is turned off.' },
  OIDC_SETTINGS_INVALID: { status: 422, retryable: false, summary: 'The OpenID Connect settings are not valid: an issuer or callback that is not https://, a role or group in a mapping that does not exist, or a CA certificate that cannot be read.' },
  OIDC_PROVIDER_UNAVAILABLE: { status: 502, retryable: true, summary: "The identity provider could not be reached, or its discovery document (/.well-known/openid-configuration) is not valid for the issuer." },
  OIDC_STATE_INVALID: { status: 400, retryable: false, summary: 'This sign-in is unknown, expired (after 10 minutes), was completed already, or was started in another browser: start it again.' },
  OIDC_SIGN_IN_FAILED: { status: 401, retryable: false, summary: 'The identity provider refused the sign-in, or its answer (the code, the ID token) did not validate.' },
  OIDC_ACCOUNT_UNKNOWN: { status: 403, retryable: false, summary: 'No administrator is linked to this identity, and this server does not create administrators at their first sign-in.' },
  OIDC_NO_ROLE: { status: 403, retryable: false, summary: "None of this identity's groups maps to a role on this server: ask for a role mapping of one of your groups." },
  OIDC_CODE_INVALID: { status: 401, retryable: false, summary: 'The one-time sign-in code is unknown, expired (after 60 seconds), used already, or belongs to another browser.' },
  NOT_ASSIGNED: { status: 403, retryable: false, summary: 'A device reported for a run, task or package that the server did not give it.' },
  SECRET_REFERENCE_REFUSED: { status: 403, retryable: false, summary: "A secret reference may not be introduced or changed here: settings from a device never may, and an administrator only within the secret's group and their role." },
  DEVICE_QUARANTINED: { status: 403, retryable: true, summary: "This machine presented another device's credential: it waits until an administrator approves it as a new device." },
  CREDENTIAL_PROOF_INVALID: { status: 401, retryable: false, summary: "A new device credential must be signed with the device's key over the challenge the server issued." },
  STATE_FOLDER_IN_USE: { status: 409, retryable: true, summary: "(agent side) Another agent process runs on this state folder (its lock file names the pid): stop it, or use another --state folder." },
  DATA_FOLDER_IN_USE: { status: 409, retryable: true, summary: "(server side) Another server process runs on this SQLite data folder (its lock file names the pid): stop it, or use another --data folder." },
  INSTANCE_KEY_MISMATCH: { status: 409, retryable: false, summary: "(server side) This server's secret-store key, package signing key, TLS certificate authority or TLS key is not the one the database knows (another instance's, or one made on a data folder of its own): it refuses to start rather than fail every secret, signature or pinned connection later. Give it the secret-store key of the instances that share the database and remove its own signing key or tls/ folder, which it then takes from the database." },
  VERSION_INVALID: { status: 422, retryable: false, summary: "The package's version does not parse under its version scheme (semver, dpkg, rpm or windows), so it cannot be ordered; nothing was stored." },
  VERSION_SCHEME_MISMATCH: { status: 409, retryable: false, summary: "The package names another version scheme than the product's packages already in the repository; all packages of a product use one scheme." },
  LOCAL_TASKS_NOT_ALLOWED: { status: 403, retryable: false, summary: "The device's policy does not allow its local user to create, change or delete local tasks." },
  POLICY_SETTING_LOCKED: { status: 403, retryable: false, summary: 'The setting is locked by the policy on this device; only the administrator can change it.' },
  POLICY_INVALID: { status: 422, retryable: false, summary: "The policy's settings, locks or profiles are not valid for its product's policy type (details.problems lists each): a value that does not match the setting's schema, a setting the type does not have, a lock on a setting that cannot be locked, or a rule of the type broken by the effective settings. Nothing was stored." },
  POLICY_TYPE_UNKNOWN: { status: 422, retryable: false, summary: 'No installed management plug-in declares a policy type for this product.' },
  POLICY_REVISION_CONFLICT: { status: 409, retryable: false, summary: 'The policy changed since the revision this change started from: reload it and apply the change again.' },
  POLICY_IN_USE: { status: 409, retryable: false, summary: 'The policy is assigned to groups (details.groupIds): unassign it from them before deleting it.' },
  POLICY_IMPORT_INVALID: { status: 422, retryable: false, summary: 'The document is not a Garrison policy export (format garrison-policy, formatVersion 1), or what it holds is not valid for its product; nothing was imported.' },
  UNAVAILABLE: { status: 503, retryable: true, summary: 'The server cannot serve this now; retry later.' },
  INTERNAL: { status: 500, retryable: true, summary: 'An unexpected error; the server log has details under the request id.' },
};

/** The JSON body of every error response and of agent `error` messages. */
export interface ErrorBody {
  error: {
    code: ErrorCode;
    message: string;
    retryable: boolean;
    details?: unknown;
    requestId?: string;
  };
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorCodeInfo, value);
}
