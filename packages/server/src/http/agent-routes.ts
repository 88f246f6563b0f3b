/**
 * Agent endpoints over plain HTTP (operations of protocol/src/operations/agent.ts): enrolment,
 * and the same check-in, reports and device-events messages the WebSocket carries, for agents
 * that cannot hold a connection.
 *
 * Their bodies are checked here, in each handler, with the protocol's checkers (the ones the
 * WebSocket uses), not by Fastify with the operation's body schema: the agent then gets the
 * error it always got over both transports ("invalid check-in", with the checker's issues), and
 * a reporting machine is told it is quarantined before its body is looked at. The operations'
 * body schemas are the same TypeBox values, so what is documented is what is checked.
 */
import { AGENT_CA_PATH } from '@garrison/protocol/tls';
import type { FastifyInstance } from 'fastify';
import {
  AGENT_CHECK_IN_PATH,
  AGENT_CREDENTIAL_PATH,
  AGENT_DEVICE_EVENTS_PATH,
  AGENT_ENROL_PATH,
  AGENT_REPORTS_PATH,
  AGENT_UNINSTALLED_PATH,
  CheckInRequest,
  CredentialRotation,
  DeviceEventsRequest,
  EnrolRequest,
  MACHINE_IDENTITY_HEADER,
  ReportsRequest,
  checkInAgent,
  checker,
  confirmAgentUninstalled,
  enrolAgent,
  getAgentCa,
  registerAgentCredential,
  submitAgentDeviceEvents,
  submitAgentReports,
  type OperationDef,
} from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { AppError } from '../errors.ts';
import { deviceAccess, publicAccess } from './access.ts';
import { route, routePath } from './operation.ts';

const enrolChecker = checker(EnrolRequest);
const checkInChecker = checker(CheckInRequest);
const reportsChecker = checker(ReportsRequest);
const deviceEventsChecker = checker(DeviceEventsRequest);
const rotationChecker = checker(CredentialRotation);

/** The agent's own path constants are what agents call: the operations must be served there. */
const AGENT_PATHS: [OperationDef, string][] = [
  [enrolAgent, AGENT_ENROL_PATH],
  [checkInAgent, AGENT_CHECK_IN_PATH],
  [submitAgentReports, AGENT_REPORTS_PATH],
  [submitAgentDeviceEvents, AGENT_DEVICE_EVENTS_PATH],
  [registerAgentCredential, AGENT_CREDENTIAL_PATH],
  [confirmAgentUninstalled, AGENT_UNINSTALLED_PATH],
  [getAgentCa, AGENT_CA_PATH],
];

export function registerAgentRoutes(app: FastifyInstance, s: Pick<Services, 'agents' | 'enrolment' | 'identity' | 'trust'>): void {
  for (const [op, path] of AGENT_PATHS) if (routePath(op) !== path) throw new Error(`operation ${op.id} is at ${routePath(op)}, but agents call ${path}`);
  // A plug-in context of their own, so that the validator compiler below applies to these routes only.
  void app.register(async (agentApp) => {
    // Bodies are the handlers' to check (see the header comment); these routes take no query or path parameters.
    agentApp.setValidatorCompiler(({ httpPart, url }) => {
      if (httpPart !== 'body') throw new Error(`agent endpoint ${url} declares a ${httpPart ?? 'request'} schema: only bodies are checked, by the handler`);
      return () => true;
    });

    // Public: clients check it against the fingerprint they were given before trusting it.
    route(agentApp, getAgentCa, publicAccess, async (_req, reply) => {
      if (!s.trust) throw new AppError('UNAVAILABLE', "this server speaks plain HTTP behind a proxy; its CA is the proxy's");
      return reply.type('application/x-pem-file').send(s.trust.caPem);
    });
    // Public: the enrolment token in the body is the credential.
    route(agentApp, enrolAgent, publicAccess, async (req) => {
      if (!enrolChecker.check(req.body)) throw new AppError('VALIDATION_FAILED', 'invalid enrolment request', { issues: enrolChecker.issues(req.body) });
      return s.enrolment.enrol(req.body, req.ip);
    });
    route(agentApp, checkInAgent, deviceAccess, async (req) => {
      if (!checkInChecker.check(req.body)) throw new AppError('VALIDATION_FAILED', 'invalid check-in', { issues: checkInChecker.issues(req.body) });
      return s.agents.checkIn(req.deviceId!, req.body, req.ip);
    });
    route(agentApp, submitAgentReports, deviceAccess, async (req) => {
      const identity = req.headers[MACHINE_IDENTITY_HEADER];
      if (typeof identity === 'string' && s.identity.isForeign(req.deviceId!, identity)) throw new AppError('DEVICE_QUARANTINED', "this machine presented another device's credential: its reports are not taken until an administrator approves it");
      if (!reportsChecker.check(req.body)) throw new AppError('VALIDATION_FAILED', 'invalid reports', { issues: reportsChecker.issues(req.body) });
      return s.agents.submitReports(req.deviceId!, req.body.reports);
    });
    // Device events (ADR 0020): the same checks as reports; the ack lists the eventIds stored.
    route(agentApp, submitAgentDeviceEvents, deviceAccess, async (req) => {
      const identity = req.headers[MACHINE_IDENTITY_HEADER];
      if (typeof identity === 'string' && s.identity.isForeign(req.deviceId!, identity)) throw new AppError('DEVICE_QUARANTINED', "this machine presented another device's credential: its events are not taken until an administrator approves it");
      if (!deviceEventsChecker.check(req.body)) throw new AppError('VALIDATION_FAILED', 'invalid device events', { issues: deviceEventsChecker.issues(req.body) });
      return s.agents.submitDeviceEvents(req.deviceId!, req.body.events);
    });
    // The agent registers the new secret it made, signed with its device key; answered before it switches to it.
    route(agentApp, registerAgentCredential, deviceAccess, async (req) => {
      s.agents.admit(req.deviceId!);
      if (!rotationChecker.check(req.body)) throw new AppError('VALIDATION_FAILED', 'invalid credential rotation', { issues: rotationChecker.issues(req.body) });
      await s.identity.rotated(req.deviceId!, req.body);
      return { ok: true as const };
    });
    // The agent confirms it is removing itself (asked from the console, or run locally).
    route(agentApp, confirmAgentUninstalled, deviceAccess, async (req) => {
      s.agents.admit(req.deviceId!);
      await s.identity.uninstalled(req.deviceId!);
      return { ok: true as const };
    });
  });
}
