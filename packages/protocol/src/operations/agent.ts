/**
 * The agent endpoints over plain HTTP (ADR 0021 for the shape of an operation): enrolment, and
 * the check-in, reports and device-events messages the WebSocket carries, for agents that
 * cannot hold a connection; the credential rotation and uninstall confirmations; the CA.
 *
 * They are under /agent/v1, not the admin API's /api/v1. Their bodies and answers are the agent
 * protocol's messages (protocol/src/agent.ts) exactly as agents send and receive them. The
 * server checks a body with the protocol's own checkers rather than with the schema given here
 * (see server/src/http/agent-routes.ts), so that an agent gets the errors it always got.
 */
import { Type } from 'typebox';
import { AckMessage, CheckInRequest, CheckInResult, CredentialRotation, DeviceEventsRequest, EnrolRequest, EnrolResponse, ReportsRequest } from '../agent.ts';
import { operation } from '../contract.ts';

/** The agent endpoints' root; the paths below are those of agent.ts's AGENT_*_PATH under it (the server checks they agree). */
export const AGENT_BASE = '/agent/v1';
const tag = 'agent';
const Ok = Type.Object({ ok: Type.Literal(true) }, { additionalProperties: false });

export const enrolAgent = operation({
  id: 'enrolAgent',
  method: 'POST',
  base: AGENT_BASE,
  path: '/enrol',
  tag,
  summary: "Enrol a machine with an enrolment token (the body's token is the credential): answers the device's id and credential",
  body: EnrolRequest,
  status: 201,
  response: EnrolResponse,
  errors: ['TOKEN_INVALID', 'TOKEN_EXPIRED', 'TOKEN_REVOKED', 'TOKEN_EXHAUSTED'],
});
export const checkInAgent = operation({
  id: 'checkInAgent',
  method: 'POST',
  base: AGENT_BASE,
  path: '/check-in',
  tag,
  summary: "A device's check-in: its inventory, local task changes and policy status; answers its tasks and policies (when their etags changed), run requests and deployment steps",
  body: CheckInRequest,
  response: CheckInResult,
});
export const submitAgentReports = operation({
  id: 'submitAgentReports',
  method: 'POST',
  base: AGENT_BASE,
  path: '/reports',
  tag,
  summary: "A device's run reports; the ack lists the runs stored and those refused (idempotent on run id and sequence number)",
  body: ReportsRequest,
  response: AckMessage,
  errors: ['DEVICE_QUARANTINED'],
});
export const submitAgentDeviceEvents = operation({
  id: 'submitAgentDeviceEvents',
  method: 'POST',
  base: AGENT_BASE,
  path: '/device-events',
  tag,
  summary: 'Device events that are not a run\'s (real-time detections, locked settings put back); the ack lists the eventIds stored',
  body: DeviceEventsRequest,
  response: AckMessage,
  errors: ['DEVICE_QUARANTINED'],
});
export const registerAgentCredential = operation({
  id: 'registerAgentCredential',
  method: 'POST',
  base: AGENT_BASE,
  path: '/credential',
  tag,
  summary: 'Register the new credential secret the agent made, signed with its device key over the challenge the server gave; answered before the agent switches to it',
  body: CredentialRotation,
  response: Ok,
  errors: ['CREDENTIAL_PROOF_INVALID'],
});
export const confirmAgentUninstalled = operation({
  id: 'confirmAgentUninstalled',
  method: 'POST',
  base: AGENT_BASE,
  path: '/uninstalled',
  tag,
  summary: 'The agent confirms it is removing itself (asked from the console, or run locally)',
  response: Ok,
});
export const getAgentCa = operation({
  id: 'getAgentCa',
  method: 'GET',
  base: AGENT_BASE,
  path: '/ca',
  tag,
  summary: "The server's CA certificate (PEM), for clients that hold its fingerprint; UNAVAILABLE when the server speaks plain HTTP behind a proxy",
  response: null,
  produces: ['application/x-pem-file'],
});
