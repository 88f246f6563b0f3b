/**
 * The agent protocol. An agent enrols once over HTTP, then holds a WebSocket at
 * AGENT_WS_PATH and exchanges the JSON messages below. Every request message an agent can
 * send over the socket can also be POSTed to the HTTP endpoint of the same name, so that an
 * agent that cannot hold a connection still gets its work at check-in.
 */
import { Type, type Static } from 'typebox';
import { Inventory } from './inventory.ts';
import { AgentTask } from './task.ts';
import { RunStateSchema } from './run.ts';
import { Schedule } from './schedule.ts';
import type { DeploymentInstruction } from './deployment.ts';
import { AgentProductPolicy, DeviceEvent, PolicyStatusReport } from './policy.ts';

export const PROTOCOL_VERSION = 1;
export const AGENT_WS_PATH = '/agent/v1/ws';
export const AGENT_ENROL_PATH = '/agent/v1/enrol';
export const AGENT_CHECK_IN_PATH = '/agent/v1/check-in';
export const AGENT_REPORTS_PATH = '/agent/v1/reports';
export const AGENT_DEVICE_EVENTS_PATH = '/agent/v1/device-events';
/** GET `${AGENT_PACKAGES_PATH}/<packageId>`: a package archive, for an authenticated device. */
export const AGENT_PACKAGES_PATH = '/agent/v1/packages';
/** The header an agent names its machine identity in, on the WebSocket upgrade and HTTP calls: a duplicate's connection is kept apart from the device's. */
export const MACHINE_IDENTITY_HEADER = 'x-garrison-machine-identity';
/** The largest agent message the server accepts (WebSocket frame or HTTP body). */
export const AGENT_MESSAGE_MAX_BYTES = 1024 * 1024;
/** Device credentials look like `gdc.<deviceId>.<secret>`; sent as `Authorization: Bearer`. */
export const DEVICE_CREDENTIAL_PREFIX = 'gdc';

/** The agent's two intervals, from its effective policy (product "garrison"); kept in every check-in result for agents that predate policies. */
export const AgentIntervals = Type.Object({
  checkInIntervalMinutes: Type.Integer({ minimum: 1 }),
  policyEnforcementMinutes: Type.Integer({ minimum: 1 }),
});
export type AgentIntervals = Static<typeof AgentIntervals>;

/** SHA-256 (hex) of what identifies the machine itself (machine-id, hardware UUID): a cloned image tells itself apart by it. */
export const MachineIdentity = Type.String({ pattern: '^[0-9a-f]{64}$' });
/**
 * The device's Ed25519 public key (SPKI DER, base64url), made by the agent at enrolment; its
 * private key never leaves the device. Re-registering the credential secret is signed with it.
 */
export const DevicePublicKey = Type.String({ pattern: '^[A-Za-z0-9_-]{40,120}$' });
export const EnrolRequest = Type.Object(
  {
    token: Type.String({ minLength: 8, maxLength: 200 }),
    inventory: Inventory,
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    machineIdentity: Type.Optional(MachineIdentity),
    publicKey: Type.Optional(DevicePublicKey),
  },
  { additionalProperties: false },
);
export type EnrolRequest = Static<typeof EnrolRequest>;
export const EnrolResponse = Type.Object({
  deviceId: Type.String(),
  credential: Type.String(),
  groupId: Type.String(),
  policy: AgentIntervals,
  /** The server's Ed25519 package-signing public key (PEM): agents verify every package with it. */
  signingPublicKey: Type.String(),
});
export type EnrolResponse = Static<typeof EnrolResponse>;

/** An event a run reports, e.g. a detection; recorded centrally as `<task's product>.<kind>`. */
export const RunEvent = Type.Object(
  {
    severity: Type.Union([Type.Literal('info'), Type.Literal('warning'), Type.Literal('error')]),
    kind: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' }),
    message: Type.String({ minLength: 1, maxLength: 2000 }),
    time: Type.Optional(Type.String({ maxLength: 40 })),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
);
export type RunEvent = Static<typeof RunEvent>;

/**
 * Run events the agent itself reports about a run's life (not a product's): the central log
 * records them under these kinds as they are, where other run events become
 * `<product>.<kind>`. An executor cannot report them (the agent drops them).
 */
export const AGENT_RUN_EVENT = {
  /** An attempt ended with the agent (kill -9, crash, power loss, or a stop): what it had started and what was done about it. */
  interrupted: 'run.interrupted',
  /** The run goes on as its next attempt after an interruption. */
  resumed: 'run.resumed',
} as const;
export type AgentRunEventKind = (typeof AGENT_RUN_EVENT)[keyof typeof AGENT_RUN_EVENT];
export function isAgentRunEventKind(kind: string): kind is AgentRunEventKind {
  return (Object.values(AGENT_RUN_EVENT) as string[]).includes(kind);
}

/** One report of a run's state. `seq` grows with each report of the same run; the server keeps the highest. */
export const RunReport = Type.Object(
  {
    runId: Type.String({ minLength: 1, maxLength: 80 }),
    taskId: Type.String({ minLength: 1, maxLength: 80 }),
    requestId: Type.Optional(Type.Union([Type.String({ maxLength: 80 }), Type.Null()])),
    attempt: Type.Integer({ minimum: 1, maximum: 1000 }),
    seq: Type.Integer({ minimum: 0 }),
    state: RunStateSchema,
    cause: Type.String({ minLength: 1, maxLength: 40 }),
    percent: Type.Optional(Type.Union([Type.Integer({ minimum: 0, maximum: 100 }), Type.Null()])),
    createdAt: Type.String({ maxLength: 40 }),
    startedAt: Type.Optional(Type.Union([Type.String({ maxLength: 40 }), Type.Null()])),
    endedAt: Type.Optional(Type.Union([Type.String({ maxLength: 40 }), Type.Null()])),
    exitCode: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
    reason: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
    outputTail: Type.Optional(Type.Union([Type.String({ maxLength: 65536 }), Type.Null()])),
    /** Events the run produced (a scanner's detections), recorded in the central event log. */
    events: Type.Optional(Type.Array(RunEvent, { maxItems: 100 })),
  },
  { additionalProperties: false },
);
export type RunReport = Static<typeof RunReport>;

/** A local task as the device's user left it. `baseRevision` is the server revision the change started from (null: created on the device). */
export const LocalTaskChange = Type.Object(
  {
    taskId: Type.String({ minLength: 1, maxLength: 80 }),
    baseRevision: Type.Union([Type.Integer(), Type.Null()]),
    deleted: Type.Optional(Type.Boolean()),
    changedAt: Type.String({ maxLength: 40 }),
    task: Type.Object(
      {
        name: Type.String({ minLength: 1, maxLength: 200 }),
        product: Type.String({ minLength: 1, maxLength: 100 }),
        type: Type.String({ minLength: 1, maxLength: 100 }),
        settings: Type.Record(Type.String(), Type.Unknown()),
        schedule: Schedule,
        enabled: Type.Boolean(),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);
export type LocalTaskChange = Static<typeof LocalTaskChange>;

export const LocalTaskResolution = Type.Object({
  taskId: Type.String(),
  outcome: Type.Union([Type.Literal('applied'), Type.Literal('overridden'), Type.Literal('rejected')]),
  revision: Type.Union([Type.Integer(), Type.Null()]),
  reason: Type.Optional(Type.String()),
});
export type LocalTaskResolution = Static<typeof LocalTaskResolution>;

/** A run the server asks for now (run-now), or delivers at check-in until it expires. */
export const RunRequest = Type.Object({
  runId: Type.String(),
  requestId: Type.String(),
  taskId: Type.String(),
  expiresAt: Type.String(),
  task: AgentTask,
});
export type RunRequest = Static<typeof RunRequest>;

const Id = Type.Optional(Type.Union([Type.String({ maxLength: 64 }), Type.Integer()]));

export const CheckInRequest = Type.Object(
  {
    type: Type.Literal('check-in'),
    id: Id,
    inventory: Inventory,
    /** The etag of the task list the agent holds; the reply carries the list only when it changed. */
    tasksEtag: Type.Optional(Type.String({ maxLength: 128 })),
    localChanges: Type.Optional(Type.Array(LocalTaskChange, { maxItems: 1000 })),
    machineIdentity: Type.Optional(MachineIdentity),
    /** Sent by agents enrolled before device keys: registered once, if the device has none. */
    publicKey: Type.Optional(DevicePublicKey),
    /** The etag of the policies the agent holds; the reply carries them only when they changed. */
    policiesEtag: Type.Optional(Type.String({ maxLength: 128 })),
    /** Per product, the outcome of the last policy application, sent when it changed. */
    policyStatus: Type.Optional(Type.Array(PolicyStatusReport, { maxItems: 100 })),
  },
  { additionalProperties: false },
);
export type CheckInRequest = Static<typeof CheckInRequest>;

export const ReportsRequest = Type.Object(
  { type: Type.Literal('reports'), id: Id, reports: Type.Array(RunReport, { minItems: 1, maxItems: 1000 }) },
  { additionalProperties: false },
);
export type ReportsRequest = Static<typeof ReportsRequest>;

/** Device events that are not a run's (real-time detections, locked settings put back), spooled by the agent until acknowledged. */
export const DeviceEventsRequest = Type.Object(
  { type: Type.Literal('device-events'), id: Id, events: Type.Array(DeviceEvent, { minItems: 1, maxItems: 500 }) },
  { additionalProperties: false },
);
export type DeviceEventsRequest = Static<typeof DeviceEventsRequest>;

export const AgentToServer = Type.Union([CheckInRequest, ReportsRequest, DeviceEventsRequest]);
export type AgentToServer = Static<typeof AgentToServer>;

const Re = Type.Optional(Type.Union([Type.String(), Type.Integer()], { description: "The request's id, when it gave one" }));
const NullableString = Type.Union([Type.String(), Type.Null()]);
/**
 * A deployment step as the agent receives it. Its exact type is deployment.ts's (that area's
 * interface); the schema documents it without pinning the package manifest, which package.ts owns.
 */
const DeploymentStep = Type.Unsafe<DeploymentInstruction>(
  Type.Object({
    action: Type.Union([Type.Literal('install'), Type.Literal('uninstall')]),
    product: Type.String(),
    version: NullableString,
    fromVersion: NullableString,
    reason: Type.String(),
    package: Type.Optional(Type.Object({ id: Type.String(), product: Type.String(), version: Type.String(), sha256: Type.String(), signature: Type.String(), manifest: Type.Unknown() })),
    urgent: Type.Optional(Type.Boolean({ description: "Carried out at once, even outside the device's maintenance windows" })),
  }),
);

/**
 * - `rotate-credential`: make a new secret and register it at AGENT_CREDENTIAL_PATH, signed
 *   with the device key over the challenge (credentialRotationPayload);
 * - `uninstall`: remove the agent from this machine, confirming at AGENT_UNINSTALLED_PATH first;
 * - `reidentify`: this machine is a clone of another device's, approved as a device of its own;
 *   take this new identity, make a new device key, and drop the state that belongs to the
 *   other device (unsent reports, cached tasks);
 * - `quarantined`: this machine presented another device's credential and waits for an
 *   administrator's approval; nothing it sends is recorded until then.
 */
export const IdentityDirective = Type.Union([
  Type.Object({ action: Type.Literal('rotate-credential'), challenge: Type.String() }, { additionalProperties: false }),
  Type.Object({ action: Type.Literal('uninstall') }, { additionalProperties: false }),
  Type.Object({ action: Type.Literal('reidentify'), deviceId: Type.String(), credential: Type.String(), groupId: Type.String(), reason: Type.String() }, { additionalProperties: false }),
  Type.Object({ action: Type.Literal('quarantined'), reason: Type.String() }, { additionalProperties: false }),
]);
export type IdentityDirective = Static<typeof IdentityDirective>;

export const CheckInResult = Type.Object(
  {
    type: Type.Literal('check-in-result'),
    re: Re,
    deviceId: Type.String(),
    groupId: Type.String(),
    policy: AgentIntervals,
    policies: Type.Optional(
      Type.Object({ etag: Type.String(), products: Type.Array(AgentProductPolicy) }, { additionalProperties: false, description: "The device's effective policies, present when the agent's policiesEtag differs from the server's" }),
    ),
    tasksEtag: Type.String(),
    tasks: Type.Optional(Type.Array(AgentTask, { description: "Present when the agent's etag differs from the server's" })),
    runRequests: Type.Array(RunRequest),
    localResolutions: Type.Array(LocalTaskResolution),
    deployment: Type.Optional(Type.Object({ steps: Type.Array(DeploymentStep) }, { additionalProperties: false, description: 'What the deployment task should install or remove now; absent when nothing is assigned' })),
    identity: Type.Optional(IdentityDirective),
    serverTime: Type.String(),
  },
  { additionalProperties: false },
);
export type CheckInResult = Static<typeof CheckInResult>;
export const AGENT_CREDENTIAL_PATH = '/agent/v1/credential';
export const CredentialRotation = Type.Object(
  {
    secret: Type.String({ pattern: '^[A-Za-z0-9_-]{32,128}$' }),
    challenge: Type.String({ pattern: '^[A-Za-z0-9_-]{16,128}$' }),
    /** Ed25519 signature (base64url) of credentialRotationPayload by the device key. */
    signature: Type.String({ pattern: '^[A-Za-z0-9_-]{40,200}$' }),
    /** For a device without a registered key (enrolled before device keys): registered with this rotation. */
    publicKey: Type.Optional(DevicePublicKey),
  },
  { additionalProperties: false },
);
export type CredentialRotation = Static<typeof CredentialRotation>;
/** What the device signs to register a new credential secret: bound to the device, the server's challenge and the secret. */
export function credentialRotationPayload(deviceId: string, challenge: string, secret: string): string {
  return `garrison-credential-rotation\n${deviceId}\n${challenge}\n${secret}`;
}
export const AGENT_UNINSTALLED_PATH = '/agent/v1/uninstalled';
export const AckMessage = Type.Object(
  {
    type: Type.Literal('ack'),
    re: Re,
    runIds: Type.Array(Type.String(), { description: 'Reports stored (or already stored: the server is idempotent on runId and seq)' }),
    rejected: Type.Array(Type.Object({ runId: Type.String(), code: Type.String(), message: Type.String() }, { additionalProperties: false }), {
      description: 'Reports refused, with why; an agent drops them rather than resend forever',
    }),
    eventIds: Type.Optional(Type.Array(Type.String(), { description: 'Device events stored (or already stored), in answer to device-events' })),
  },
  { additionalProperties: false },
);
export type AckMessage = Static<typeof AckMessage>;
export interface RunNowMessage {
  type: 'run-now';
  requests: RunRequest[];
}
export interface StopMessage {
  type: 'stop';
  taskId: string;
  runIds?: string[];
}
/** The server's task list for this device changed: check in now. */
export interface SyncMessage {
  type: 'sync';
}
export interface ErrorMessage {
  type: 'error';
  re?: string | number;
  code: string;
  message: string;
}
export type ServerToAgent = CheckInResult | AckMessage | RunNowMessage | StopMessage | SyncMessage | ErrorMessage;
