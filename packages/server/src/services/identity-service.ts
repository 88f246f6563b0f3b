/**
 * A device's identity over its life (ADR 0009): credential rotation and revocation, uninstall
 * from the console, and cloned machines. The check-in path only reads an in-memory map; the
 * database is touched when something changes.
 *
 * A clone is an agent that presents a valid credential from a machine whose identity
 * (machine-id, hardware UUID) differs from the one recorded for that device: the machine was
 * imaged with the agent's state inside. The server never merges the two: it creates a new
 * device for the clone, in the same group, and tells that agent to take the new identity and
 * drop the state that belongs to the original (`reidentify`). The original keeps its device.
 */
import { DEVICE_CREDENTIAL_PREFIX, type CheckInRequest, type IdentityDirective } from '@garrison/protocol';
import { notFound, AppError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import { hashSecret, newId, newSecret } from '../ids.ts';
import type { DeviceStore } from '../storage/device-store.ts';
import { authorize, Permission, type Actor } from './actor.ts';
import type { Catalog } from './catalog.ts';
import type { EventService } from './event-service.ts';
import type { DeviceService } from './device-service.ts';
import type { EnrolmentService } from './enrolment-service.ts';
import type { Presence } from './presence.ts';

interface IdentityState {
  machineIdentity: string | null;
  rotateRequested: boolean;
  uninstallRequested: boolean;
}

/** How long the identity given to a clone is handed out again if the clone asks again before adopting it. */
const SPLIT_MEMORY_MS = 15 * 60_000;

export class IdentityService {
  readonly #store: DeviceStore;
  readonly #catalog: Catalog;
  readonly #clock: Clock;
  readonly #events: EventService;
  readonly #enrolment: EnrolmentService;
  readonly #devices: DeviceService;
  presence: Presence;
  onChanged: (deviceIds: string[]) => void = () => {};
  readonly #state = new Map<string, IdentityState>();
  /** Devices by machine identity: which devices a newly enrolled machine already is. */
  readonly #byIdentity = new Map<string, Set<string>>();
  readonly #splits = new Map<string, { at: number; directive: Extract<IdentityDirective, { action: 'reidentify' }> }>();

  constructor(deps: { store: DeviceStore; catalog: Catalog; clock: Clock; events: EventService; enrolment: EnrolmentService; devices: DeviceService; presence: Presence }) {
    this.#store = deps.store;
    this.#catalog = deps.catalog;
    this.#clock = deps.clock;
    this.#events = deps.events;
    this.#enrolment = deps.enrolment;
    this.#devices = deps.devices;
    this.presence = deps.presence;
    deps.enrolment.onEnrolled = (device, identity) => this.#enrolled(device, identity);
  }

  async load(): Promise<void> {
    for (const r of await this.#store.listIdentities()) this.#put(r.id, { machineIdentity: r.machineIdentity, rotateRequested: r.rotateRequested, uninstallRequested: r.uninstallRequested });
  }

  #enrolled(device: { id: string; name: string; groupId: string }, identity: string | null): void {
    const same = identity ? [...(this.#byIdentity.get(identity) ?? [])].filter((id) => id !== device.id) : [];
    this.#put(device.id, { machineIdentity: identity, rotateRequested: false, uninstallRequested: false });
    if (same.length) {
      // The same machine enrolled again (re-installed, or moved back from another server): a
      // new device, never a merge; the administrator sees which devices share the machine.
      this.#events.record({
        severity: 'warning',
        kind: 'device.reenrolled',
        message: `device "${device.name}" runs on a machine already enrolled as ${same.map((id) => `"${this.#catalog.device(id)?.name ?? id}" (${id})`).join(', ')}; it was enrolled as a new device and nothing was merged`,
        deviceId: device.id,
        groupId: device.groupId,
        data: { previousDeviceIds: same },
      });
    }
  }

  /**
   * Called first at every check-in. Returns a directive for the agent, and whether the check-in
   * belongs to another device (a clone): then nothing of it may be recorded for this device.
   */
  async onCheckIn(deviceId: string, req: CheckInRequest): Promise<{ directive?: IdentityDirective; foreign: boolean }> {
    let s = this.#state.get(deviceId);
    if (!s) {
      s = { machineIdentity: null, rotateRequested: false, uninstallRequested: false };
      this.#put(deviceId, s);
    }
    const reported = req.machineIdentity ?? null;
    if (reported && s.machineIdentity && reported !== s.machineIdentity) return { directive: await this.#split(deviceId, reported, req), foreign: true };
    if (reported && !s.machineIdentity) {
      s = { ...s, machineIdentity: reported };
      this.#put(deviceId, s);
      await this.#store.setIdentityFields(deviceId, { machine_identity: reported }, this.#clock.now().toISOString());
    }
    if (s.uninstallRequested) return { directive: { action: 'uninstall' }, foreign: false };
    if (s.rotateRequested) return { directive: { action: 'rotate-credential' }, foreign: false };
    return { foreign: false };
  }

  async #split(originalId: string, identity: string, req: CheckInRequest): Promise<Extract<IdentityDirective, { action: 'reidentify' }>> {
    const key = `${originalId}:${identity}`;
    const now = this.#clock.now();
    const remembered = this.#splits.get(key);
    if (remembered && now.getTime() - remembered.at < SPLIT_MEMORY_MS) return remembered.directive;
    const original = this.#catalog.device(originalId);
    if (!original) throw new AppError('DEVICE_CREDENTIAL_INVALID', 'the device credential is unknown or revoked');
    const id = newId();
    const secret = newSecret();
    const at = now.toISOString();
    const name = req.inventory.hostname;
    await this.#store.insertDevice({ id, groupId: original.groupId, name, inventory: req.inventory, credentialHash: hashSecret(secret), at, machineIdentity: identity, clonedFrom: originalId });
    this.#catalog.putDevice((await this.#store.getDevice(id))!);
    this.#put(id, { machineIdentity: identity, rotateRequested: false, uninstallRequested: false });
    const reason = `this machine's identity differs from the one recorded for device ${originalId}: it is a copy (a cloned image, or state copied from another machine)`;
    this.#events.record({
      severity: 'warning',
      kind: 'device.duplicate-identity',
      message: `a machine presenting the credential of "${original.name}" (${originalId}) is another machine ("${name}"): it became the new device ${id}; nothing was merged`,
      deviceId: id,
      groupId: original.groupId,
      data: { originalDeviceId: originalId, hostname: name, addresses: req.inventory.addresses },
    });
    const directive = { action: 'reidentify' as const, deviceId: id, credential: `${DEVICE_CREDENTIAL_PREFIX}.${id}.${secret}`, groupId: original.groupId, reason };
    this.#splits.set(key, { at: now.getTime(), directive });
    for (const [k, v] of this.#splits) if (now.getTime() - v.at >= SPLIT_MEMORY_MS) this.#splits.delete(k);
    return directive;
  }

  async #deviceForAdmin(actor: Actor, id: string) {
    const d = await this.#store.getDevice(id);
    if (!d) throw notFound('device', id);
    authorize(actor, Permission.manageDevices, this.#catalog.tree, [d.groupId]);
    return d;
  }

  /** Asks the agent for a new credential at its next check-in (at once if it is connected). */
  async requestRotation(actor: Actor, id: string) {
    const d = await this.#deviceForAdmin(actor, id);
    if (d.credentialRevoked) throw new AppError('CONFLICT', 'the device credential is revoked; enrol the machine again');
    await this.#store.setIdentityFields(id, { rotate_requested_at: this.#clock.now().toISOString() }, this.#clock.now().toISOString());
    this.#stateOf(id).rotateRequested = true;
    await this.#events.audit(actor, 'device.credential-rotation-requested', `credential rotation requested for device "${d.name}"`, { deviceId: id, groupId: d.groupId });
    this.onChanged([id]);
    return this.#devices.get(actor, id);
  }

  /** Revokes the credential and disconnects the agent at once; the machine needs a new enrolment. */
  async revoke(actor: Actor, id: string) {
    const d = await this.#deviceForAdmin(actor, id);
    await this.#store.revokeCredential(id, this.#clock.now().toISOString());
    this.#remove(id);
    this.#enrolment.forgetCredential(id);
    this.presence.disconnect(id, 'credential revoked');
    await this.#events.audit(actor, 'device.revoked', `credential of device "${d.name}" revoked; the agent was disconnected`, { deviceId: id, groupId: d.groupId });
    return this.#devices.get(actor, id);
  }

  /** Asks the agent to uninstall itself at its next check-in (at once if connected). */
  async requestUninstall(actor: Actor, id: string) {
    const d = await this.#deviceForAdmin(actor, id);
    if (d.credentialRevoked) throw new AppError('CONFLICT', 'the device credential is revoked: the agent can no longer be reached');
    await this.#store.setIdentityFields(id, { uninstall_requested_at: this.#clock.now().toISOString() }, this.#clock.now().toISOString());
    this.#stateOf(id).uninstallRequested = true;
    await this.#events.audit(actor, 'device.uninstall-requested', `uninstall of the agent requested on device "${d.name}"`, { deviceId: id, groupId: d.groupId });
    this.onChanged([id]);
    return this.#devices.get(actor, id);
  }

  /** The agent registers its new secret; the previous one stays valid until the new one is used. */
  async rotated(deviceId: string, secret: string): Promise<void> {
    const at = this.#clock.now().toISOString();
    if (!(await this.#store.rotateCredential(deviceId, hashSecret(secret), at))) throw new AppError('DEVICE_CREDENTIAL_INVALID', 'the device credential is unknown or revoked');
    this.#enrolment.forgetCredential(deviceId);
    this.#stateOf(deviceId).rotateRequested = false;
    const d = this.#catalog.device(deviceId);
    this.#events.record({ severity: 'info', kind: 'device.credential-rotated', message: `device "${d?.name ?? deviceId}" rotated its credential`, deviceId, ...(d ? { groupId: d.groupId } : {}) });
  }

  /** The agent confirms it is uninstalling: its credential is revoked, its record and history kept. */
  async uninstalled(deviceId: string): Promise<void> {
    const at = this.#clock.now().toISOString();
    await this.#store.setIdentityFields(deviceId, { uninstalled_at: at, uninstall_requested_at: null }, at);
    await this.#store.revokeCredential(deviceId, at);
    this.#remove(deviceId);
    this.#enrolment.forgetCredential(deviceId);
    const d = this.#catalog.device(deviceId);
    this.#events.record({ severity: 'info', kind: 'agent.uninstalled', message: `the agent of device "${d?.name ?? deviceId}" was uninstalled; its record and history are kept`, deviceId, ...(d ? { groupId: d.groupId } : {}) });
    setTimeout(() => this.presence.disconnect(deviceId, 'agent uninstalled'), 200).unref();
  }

  #put(id: string, state: IdentityState): void {
    this.#remove(id);
    this.#state.set(id, state);
    if (state.machineIdentity) {
      let ids = this.#byIdentity.get(state.machineIdentity);
      if (!ids) this.#byIdentity.set(state.machineIdentity, (ids = new Set()));
      ids.add(id);
    }
  }
  #remove(id: string): void {
    const old = this.#state.get(id);
    this.#state.delete(id);
    const ids = old?.machineIdentity ? this.#byIdentity.get(old.machineIdentity) : undefined;
    if (ids) {
      ids.delete(id);
      if (!ids.size) this.#byIdentity.delete(old!.machineIdentity!);
    }
  }

  #stateOf(id: string): IdentityState {
    let s = this.#state.get(id);
    if (!s) this.#put(id, (s = { machineIdentity: null, rotateRequested: false, uninstallRequested: false }));
    return s;
  }
}
