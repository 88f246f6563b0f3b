/**
 * Devices, duplicates of cloned machines, boundary refusals, enrolment tokens, the group
 * tree's statuses and bulk actions: operations of protocol/src/operations/devices.ts. Handlers
 * are thin: one service method with the caller's actor.
 */
import type { FastifyInstance } from 'fastify';
import {
  approveDeviceDuplicate,
  bulkDevices,
  createEnrolmentToken,
  deleteDevice,
  getDevice,
  getRefusalCounts,
  listDeviceDuplicates,
  listDeviceRuns,
  listDevices,
  listDeviceTasks,
  listEnrolmentTokens,
  listGroupStatuses,
  rejectDeviceDuplicate,
  revokeDeviceCredential,
  revokeEnrolmentToken,
  rotateDeviceCredential,
  uninstallDeviceAgent,
  updateDevice,
} from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { authorize, Permission } from '../services/actor.ts';
import { needs } from './access.ts';
import { route } from './operation.ts';
import { actor } from './admin-routes.ts';

const read = needs(Permission.read);
const manage = needs(Permission.manageDevices);

export function registerDeviceRoutes(app: FastifyInstance, s: Pick<Services, 'catalog' | 'devices' | 'enrolment' | 'identity' | 'limits' | 'runs' | 'tasks'>): void {
  // Devices
  route(app, listDevices, read, async (req) => s.devices.page(actor(req), req.query));
  // Registered before /devices/:id's POST routes; a bulk action needs manageDevices or runTasks somewhere, the service decides per device.
  route(app, bulkDevices, read, async (req) => s.devices.bulk(actor(req), req.body, { canSee: (a, t) => s.tasks.canSee(a, t), runNow: (a, taskId, body) => s.runs.runNow(a, taskId, body) }));
  route(app, getDevice, read, async (req) => s.devices.get(actor(req), req.params.id));
  route(app, updateDevice, manage, async (req) => s.devices.update(actor(req), req.params.id, req.body));
  route(app, deleteDevice, manage, async (req) => {
    await s.devices.remove(actor(req), req.params.id);
  });
  route(app, rotateDeviceCredential, manage, async (req) => s.identity.requestRotation(actor(req), req.params.id));
  route(app, revokeDeviceCredential, manage, async (req) => s.identity.revoke(actor(req), req.params.id));
  route(app, uninstallDeviceAgent, manage, async (req) => s.identity.requestUninstall(actor(req), req.params.id));
  route(app, listDeviceTasks, read, async (req) => {
    const a = actor(req);
    return s.devices.effectiveTasks(a, req.params.id, (t) => s.tasks.canSee(a, t), req.query);
  });
  route(app, listDeviceRuns, read, async (req) => {
    // Runs are filtered to the caller's reach: a device out of it has none to show.
    return s.runs.page(actor(req), { ...req.query, deviceId: req.params.id });
  });

  // Machines presenting another device's credential, quarantined until approved or rejected.
  route(app, listDeviceDuplicates, read, async (req) => s.identity.pageDuplicates(actor(req), req.query));
  route(app, approveDeviceDuplicate, manage, async (req) => s.identity.approveDuplicate(actor(req), req.params.id));
  route(app, rejectDeviceDuplicate, manage, async (req) => s.identity.rejectDuplicate(actor(req), req.params.id));
  // What the device boundary refused (per-device limits, reports for runs a device was not given, secret references), since the server started.
  route(app, getRefusalCounts, read, async (req) => {
    authorize(actor(req), Permission.read, s.catalog.tree);
    return s.limits.counts();
  });

  // Enrolment tokens
  route(app, listEnrolmentTokens, read, async (req) => s.enrolment.pageTokens(actor(req), req.query));
  route(app, createEnrolmentToken, needs(Permission.manageTokens), async (req) => s.enrolment.createToken(actor(req), req.body));
  route(app, revokeEnrolmentToken, needs(Permission.manageTokens), async (req) => s.enrolment.revokeToken(actor(req), req.params.id));

  // The group tree's statuses (KSC's OK / Warning / Critical).
  route(app, listGroupStatuses, read, async (req) => s.devices.groupStatuses(actor(req), req.query));
}
