/**
 * What each instance does with the domain events (ADR 0019): the agents connected here are
 * told to check in when their tasks, group, facts, deployments or identity changed, and their
 * connections close when their credential stops working. An event from another instance
 * first makes this one reload what it names (its in-memory views are older than the change).
 */
import type { Logger } from 'pino';
import type { Catalog } from './catalog.ts';
import type { DomainBus } from './domain-bus.ts';
import type { FleetPresence } from './fleet-presence.ts';
import type { EnrolmentService } from './enrolment-service.ts';
import type { DeploymentService } from './deployment-service.ts';
import type { IdentityService } from './identity-service.ts';
import type { PolicyService } from './policy-service.ts';

export function wireInstanceSync(deps: {
  bus: DomainBus;
  catalog: Catalog;
  presence: FleetPresence;
  enrolment: Pick<EnrolmentService, 'forgetCredential'>;
  deployments: Pick<DeploymentService, 'load' | 'reloadPackages'>;
  identity: Pick<IdentityService, 'load'>;
  policies: Pick<PolicyService, 'load' | 'etagsHere' | 'changedSince'>;
  log: Logger;
}): void {
  const { bus, catalog, presence } = deps;
  const sync = (deviceIds: Iterable<string>) => presence.send(deviceIds, { type: 'sync' });
  const targetsOf = (taskIds: readonly string[]): Set<string> => {
    const out = new Set<string>();
    for (const id of taskIds) {
      const task = catalog.task(id);
      if (task) for (const d of catalog.targetsOf(task)) out.add(d.id);
    }
    return out;
  };

  bus.on('tasks.changed', async (e, origin) => {
    if (origin === 'local') return void sync(e.deviceIds);
    // The devices whose list changed: the targets before the reload and after it.
    const affected = targetsOf(e.taskIds);
    await catalog.reloadTasks();
    for (const d of targetsOf(e.taskIds)) affected.add(d);
    sync(affected);
  });
  bus.on('groups.changed', async (e, origin) => {
    if (origin === 'remote') await catalog.reloadGroups();
    sync(catalog.devicesInGroups(e.groupIds));
  });
  bus.on('devices.changed', async (e, origin) => {
    if (origin === 'remote') await catalog.reloadDevicesById(e.deviceIds);
    sync(e.deviceIds);
  });
  // Policies changed: here, the service told which agents' policies changed; from elsewhere,
  // compare the etags of the agents connected here before and after the reload.
  bus.on('policies.changed', async (e, origin) => {
    if (origin === 'local') return void sync(e.deviceIds);
    const before = deps.policies.etagsHere(e.groupIds, (id) => presence.isOnlineHere(id));
    await deps.policies.load();
    sync(deps.policies.changedSince(before));
  });
  bus.on('devices.check-in', (e) => void sync(e.deviceIds));
  bus.on('device.enrolled', async (e, origin) => {
    if (origin === 'remote') await catalog.loadDevice(e.deviceId);
  });
  // A package checked in elsewhere: deployment plans here know it (its instance nudges the devices).
  bus.on('repository.content', async (_e, origin) => {
    if (origin === 'remote') await deps.deployments.reloadPackages();
  });
  bus.on('deployments.changed', async (e, origin) => {
    if (origin === 'remote') await deps.deployments.load();
    sync(e.deviceIds);
  });
  bus.on('identity.changed', async (e, origin) => {
    if (origin === 'remote') await deps.identity.load();
    sync(e.deviceIds);
  });
  bus.on('device.disconnect', (e) => {
    deps.enrolment.forgetCredential(e.deviceId);
    presence.local.disconnect(e.deviceId, e.reason);
  });
  bus.on('credential.superseded', (e) => {
    deps.enrolment.forgetCredential(e.deviceId);
    presence.local.closeSuperseded(e.deviceId, e.credentialHash);
  });
  bus.on('duplicate.nudge', (e) => presence.local.nudgeDuplicate(e.deviceId, e.machineIdentity));
  // Notifications may have been missed while the bus was reconnecting: read everything again.
  bus.onResync(async () => {
    await Promise.all([catalog.load(), deps.deployments.load(), deps.identity.load(), deps.policies.load()]);
    deps.log.info('catalog, deployments and identities reloaded after the event bus reconnected');
  });
}
