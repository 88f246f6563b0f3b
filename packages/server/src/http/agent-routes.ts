/**
 * Agent endpoints over plain HTTP: enrolment, and the same check-in, reports and device-events
 * messages the WebSocket carries, for agents that cannot hold a connection.
 */
import { AGENT_CA_PATH } from '@garrison/protocol/tls';
import type { FastifyInstance } from 'fastify';
import {
  AGENT_CREDENTIAL_PATH,
  AGENT_UNINSTALLED_PATH,
  CredentialRotation,
  AGENT_CHECK_IN_PATH,
  AGENT_ENROL_PATH,
  AGENT_REPORTS_PATH,
  AGENT_DEVICE_EVENTS_PATH,
  DeviceEventsRequest,
  MACHINE_IDENTITY_HEADER,
  CheckInRequest,
  EnrolRequest,
  ReportsRequest,
  checker,
  type CheckInRequest as CheckIn,
  type EnrolRequest as Enrol,
  type ReportsRequest as Reports,
  type DeviceEventsRequest as DeviceEvents,
} from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { AppError } from '../errors.ts';
import { deviceAccess, publicAccess } from './access.ts';

const enrolChecker = checker(EnrolRequest);
const checkInChecker = checker(CheckInRequest);
const reportsChecker = checker(ReportsRequest);
const deviceEventsChecker = checker(DeviceEventsRequest);
const rotationChecker = checker(CredentialRotation);

export function registerAgentRoutes(app: FastifyInstance, s: Pick<Services, 'agents' | 'enrolment' | 'identity' | 'trust'>): void {
  const device = { config: deviceAccess, schema: { tags: ['agent'], hide: true } };
  // Public: clients check it against the fingerprint they were given before trusting it.
  app.get(AGENT_CA_PATH, { config: publicAccess, schema: { tags: ['agent'], summary: "The server's CA certificate (PEM), for clients that hold its fingerprint", security: [] } }, async (_req, reply) => {
    if (!s.trust) throw new AppError('UNAVAILABLE', 'this server speaks plain HTTP behind a proxy; its CA is the proxy\'s');
    return reply.type('application/x-pem-file').send(s.trust.caPem);
  });
  // Public: the enrolment token in the body is the credential.
  app.post(AGENT_ENROL_PATH, { config: publicAccess, schema: { tags: ['agent'], hide: true } }, async (req, reply) => {
    if (!enrolChecker.check(req.body)) throw new AppError('VALIDATION_FAILED', 'invalid enrolment request', { issues: enrolChecker.issues(req.body) });
    return reply.status(201).send(await s.enrolment.enrol(req.body as Enrol, req.ip));
  });
  app.post(AGENT_CHECK_IN_PATH, device, async (req) => {
    if (!checkInChecker.check(req.body)) throw new AppError('VALIDATION_FAILED', 'invalid check-in', { issues: checkInChecker.issues(req.body) });
    return s.agents.checkIn(req.deviceId!, req.body as CheckIn, req.ip);
  });
  app.post(AGENT_REPORTS_PATH, device, async (req) => {
    const identity = req.headers[MACHINE_IDENTITY_HEADER];
    if (typeof identity === 'string' && s.identity.isForeign(req.deviceId!, identity)) throw new AppError('DEVICE_QUARANTINED', "this machine presented another device's credential: its reports are not taken until an administrator approves it");
    if (!reportsChecker.check(req.body)) throw new AppError('VALIDATION_FAILED', 'invalid reports', { issues: reportsChecker.issues(req.body) });
    return s.agents.submitReports(req.deviceId!, (req.body as Reports).reports);
  });
  // Device events (ADR 0020): the same checks as reports; the ack lists the eventIds stored.
  app.post(AGENT_DEVICE_EVENTS_PATH, device, async (req) => {
    const identity = req.headers[MACHINE_IDENTITY_HEADER];
    if (typeof identity === 'string' && s.identity.isForeign(req.deviceId!, identity)) throw new AppError('DEVICE_QUARANTINED', "this machine presented another device's credential: its events are not taken until an administrator approves it");
    if (!deviceEventsChecker.check(req.body)) throw new AppError('VALIDATION_FAILED', 'invalid device events', { issues: deviceEventsChecker.issues(req.body) });
    return s.agents.submitDeviceEvents(req.deviceId!, (req.body as DeviceEvents).events);
  });
  // The agent registers the new secret it made, signed with its device key; answered before it switches to it.
  app.post(AGENT_CREDENTIAL_PATH, device, async (req) => {
    s.agents.admit(req.deviceId!);
    if (!rotationChecker.check(req.body)) throw new AppError('VALIDATION_FAILED', 'invalid credential rotation', { issues: rotationChecker.issues(req.body) });
    await s.identity.rotated(req.deviceId!, req.body as CredentialRotation);
    return { ok: true };
  });
  // The agent confirms it is removing itself (asked from the console, or run locally).
  app.post(AGENT_UNINSTALLED_PATH, device, async (req) => {
    s.agents.admit(req.deviceId!);
    await s.identity.uninstalled(req.deviceId!);
    return { ok: true };
  });
}
