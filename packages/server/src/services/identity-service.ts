/**
 * A device's identity over its life (ADR 0009, ADR 0013): credential rotation and revocation,
 * uninstall from the console, and machines presenting another device's credential. The
 * check-in path only reads an in-memory map; the database is touched when something changes.
 *
 * A duplicate is an agent that presents a valid credential from a machine whose identity
 * (machine-id, hardware UUID) differs from the one recorded for that device: the machine was
 * imaged with the agent's state inside, or the credential was copied. The server never merges
 * the two and never makes devices on its own: the other machine becomes a pending duplicate
 * (at most MAX_DUPLICATES_PER_DEVICE per credential; beyond that it is refused), quarantined
 * with nothing recorded, until an administrator approves it as a device of its own (then it
 * is told to take the new identity: `reidentify`) or rejects it.
 *
 * Rotation: the administrator's request carries a challenge; the agent registers its new
 * secret with an Ed25519 signature by its device key over that challenge, so a stolen bearer
 * credential cannot re-register the secret. Revocation takes with it what was derived from
 * the credential: approved clones and pending duplicates.
 */
import { createPublicKey, timingSafeEqual, verify } from 'node:crypto';
import { DEVICE_CREDENTIAL_PREFIX, credentialRotationPayload, type CheckInRequest, type CredentialRotation, type IdentityDirective, type Page, type PageRequest } from '@garrison/protocol';
import { AppError } from '../errors.ts';
import type { Clock } from '../clock.ts';
import { hashSecret, newId, newSecret } from '../ids.ts';
import type { DeviceStore } from '../storage/device-store.ts';
import type { DeviceDuplicate, DuplicateStore } from '../storage/duplicate-store.ts';
import { actorName, authorize, inReach, notVisible, Permission, reachList, reachOf, type Actor } from './actor.ts';
import type { Catalog } from './catalog.ts';
import { decodeCursor, encodeCursor, pageLimit } from '../paging.ts';
import type { EventService } from './event-service.ts';
import type { DeviceService } from './device-service.ts';
import type { EnrolmentService } from './enrolment-service.ts';
import type { Presence } from './presence.ts';
import type { DomainBus } from './domain-bus.ts';

interface IdentityState {
  machineIdentity: string | null;
  /** Set while a rotation is requested: what the new secret's registration must sign. */
  rotateChallenge: string | null;
  uninstallRequested: boolean;
  hasPublicKey: boolean;
}

/** How many other machines may wait as duplicates of one device's credential; more are refused. */
export const MAX_DUPLICATES_PER_DEVICE = 20;
/** How long the identity handed to an approved clone is handed out again if it asks before adopting it. */
const SPLIT_MEMORY_MS = 15 * 60_000;
/** A quarantined machine's check-ins update its record at most this often. */
const SEEN_EVERY_MS = 60_000;

export class IdentityService {
  readonly #store: DeviceStore;
  readonly #duplicates: DuplicateStore;
  readonly #catalog: Catalog;
  readonly #clock: Clock;
  readonly #events: EventService;
  readonly #enrolment: EnrolmentService;
  readonly #devices: DeviceService;
  readonly presence: Presence;
  readonly #bus: DomainBus;
  readonly #state = new Map<string, IdentityState>();
  /** Devices by machine identity: which devices a newly enrolled machine already is. */
  readonly #byIdentity = new Map<string, Set<string>>();
  readonly #splits = new Map<string, { at: number; directive: Extract<IdentityDirective, { action: 'reidentify' }> }>();
  readonly #seen = new Map<string, number>();
  readonly #refusedWarned = new Map<string, number>();

  constructor(deps: { store: DeviceStore; duplicates: DuplicateStore; catalog: Catalog; clock: Clock; events: EventService; enrolment: EnrolmentService; devices: DeviceService; presence: Presence; bus: DomainBus }) {
    this.#bus = deps.bus;
    this.#store = deps.store;
    this.#duplicates = deps.duplicates;
    this.#catalog = deps.catalog;
    this.#clock = deps.clock;
    this.#events = deps.events;
    this.#enrolment = deps.enrolment;
    this.#devices = deps.devices;
    this.presence = deps.presence;
    // A device enrolled through another instance is tracked here too; the warnings are that instance's to record.
    deps.bus.on('device.enrolled', (e, origin) => {
      if (origin === 'local') this.#enrolled({ id: e.deviceId, name: e.name, groupId: e.groupId }, e.machineIdentity, e.hasPublicKey);
      else this.#put(e.deviceId, { machineIdentity: e.machineIdentity, rotateChallenge: null, uninstallRequested: false, hasPublicKey: e.hasPublicKey });
    });
  }

  async load(): Promise<void> {
    for (const r of await this.#store.listIdentities()) {
      this.#put(r.id, { machineIdentity: r.machineIdentity, rotateChallenge: r.rotateChallenge, uninstallRequested: r.uninstallRequested, hasPublicKey: r.hasPublicKey });
    }
  }

  #enrolled(device: { id: string; name: string; groupId: string }, identity: string | null, hasPublicKey: boolean): void {
    const same = identity ? [...(this.#byIdentity.get(identity) ?? [])].filter((id) => id !== device.id) : [];
    this.#put(device.id, { machineIdentity: identity, rotateChallenge: null, uninstallRequested: false, hasPublicKey });
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

  /** Whether a machine identity is another than the one recorded for the device (a duplicate's connection). */
  isForeign(deviceId: string, machineIdentity: string): boolean {
    const recorded = this.#state.get(deviceId)?.machineIdentity;
    return !!recorded && recorded !== machineIdentity;
  }

  /**
   * Called first at every check-in. Returns a directive for the agent, and whether the check-in
   * belongs to another machine than the device's (a duplicate): then nothing of it may be
   * recorded for this device.
   */
  async onCheckIn(deviceId: string, req: CheckInRequest, remoteAddress?: string): Promise<{ directive?: IdentityDirective; foreign: boolean }> {
    let s = this.#state.get(deviceId);
    if (!s) {
      s = { machineIdentity: null, rotateChallenge: null, uninstallRequested: false, hasPublicKey: false };
      this.#put(deviceId, s);
    }
    const reported = req.machineIdentity ?? null;
    if (reported && s.machineIdentity && reported !== s.machineIdentity) return { directive: await this.#duplicate(deviceId, reported, req, remoteAddress ?? null), foreign: true };
    if (reported && !s.machineIdentity) {
      s = { ...s, machineIdentity: reported };
      this.#put(deviceId, s);
      await this.#store.setIdentityFields(deviceId, { machine_identity: reported }, this.#clock.now().toISOString());
    }
    if (req.publicKey && !s.hasPublicKey) {
      // An agent enrolled before device keys: its key is taken once, from the machine recorded for the device.
      await this.#store.setPublicKeyIfNone(deviceId, req.publicKey, this.#clock.now().toISOString());
      s.hasPublicKey = true;
    }
    if (s.uninstallRequested) return { directive: { action: 'uninstall' }, foreign: false };
    if (s.rotateChallenge) return { directive: { action: 'rotate-credential', challenge: s.rotateChallenge }, foreign: false };
    return { foreign: false };
  }

  async #duplicate(originalId: string, identity: string, req: CheckInRequest, remoteAddress: string | null): Promise<IdentityDirective> {
    const key = `${originalId}:${identity}`;
    const now = this.#clock.now();
    const remembered = this.#splits.get(key);
    if (remembered && now.getTime() - remembered.at < SPLIT_MEMORY_MS) return remembered.directive;
    const original = this.#catalog.device(originalId);
    if (!original) throw new AppError('DEVICE_CREDENTIAL_INVALID', 'the device credential is unknown or revoked');
    const at = now.toISOString();
    let dup = await this.#duplicates.find(originalId, identity);
    if (!dup) {
      if ((await this.#duplicates.countFor(originalId)) >= MAX_DUPLICATES_PER_DEVICE) {
        const last = this.#refusedWarned.get(originalId) ?? 0;
        if (now.getTime() - last > 3600_000) {
          this.#refusedWarned.set(originalId, now.getTime());
          this.#events.record({
            severity: 'error',
            kind: 'device.duplicate-refused',
            message: `more than ${MAX_DUPLICATES_PER_DEVICE} other machines presented the credential of "${original.name}" (${originalId}); further ones are refused: revoke the credential if it leaked`,
            deviceId: originalId,
            data: { hostname: req.inventory.hostname, remoteAddress },
          });
        }
        throw new AppError('DEVICE_QUARANTINED', `more than ${MAX_DUPLICATES_PER_DEVICE} machines present this credential; this one is refused`);
      }
      if (await this.#duplicates.insertPending({ id: newId(), deviceId: originalId, machineIdentity: identity, inventory: req.inventory, remoteAddress, at })) {
        this.#events.record({
          severity: 'warning',
          kind: 'device.duplicate-pending',
          message: `a machine ("${req.inventory.hostname}") presented the credential of "${original.name}" (${originalId}) with another machine identity: it waits, quarantined, for an administrator to approve it as a new device or reject it`,
          deviceId: originalId,
          data: { hostname: req.inventory.hostname, addresses: req.inventory.addresses, remoteAddress },
        });
      }
      dup = (await this.#duplicates.find(originalId, identity))!;
    }
    if (dup.state === 'rejected') throw new AppError('DEVICE_QUARANTINED', 'this machine presented another device\'s credential and an administrator rejected it; enrol it with a token of its own');
    if (dup.state === 'pending') {
      const last = this.#seen.get(dup.id) ?? 0;
      if (now.getTime() - last > SEEN_EVERY_MS) {
        this.#seen.set(dup.id, now.getTime());
        await this.#duplicates.seen(dup.id, at);
      }
      return { action: 'quarantined', reason: `this machine's identity differs from the one recorded for device ${originalId}: it waits for an administrator to approve it as a device of its own` };
    }
    // Approved: hand the new device's identity to this machine, with a fresh credential.
    const secret = newSecret();
    await this.#store.setCredential(dup.newDeviceId!, hashSecret(secret), at);
    this.#enrolment.forgetCredential(dup.newDeviceId!);
    const directive = {
      action: 'reidentify' as const,
      deviceId: dup.newDeviceId!,
      credential: `${DEVICE_CREDENTIAL_PREFIX}.${dup.newDeviceId!}.${secret}`,
      groupId: this.#catalog.device(dup.newDeviceId!)?.groupId ?? original.groupId,
      reason: `this machine's identity differs from the one recorded for device ${originalId}: it is a copy (a cloned image, or state copied from another machine), approved as device ${dup.newDeviceId}`,
    };
    this.#splits.set(key, { at: now.getTime(), directive });
    for (const [k, v] of this.#splits) if (now.getTime() - v.at >= SPLIT_MEMORY_MS) this.#splits.delete(k);
    return directive;
  }

  /** Pending (or decided) duplicates of the devices the caller may see. */
  async listDuplicates(actor: Actor, filter: { state?: string } = {}): Promise<DeviceDuplicate[]> {
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    const deviceIds = reach.all ? undefined : this.#catalog.devicesInGroups(reachList(reach) ?? []);
    return this.#duplicates.list({ ...(filter.state ? { state: filter.state } : {}), ...(deviceIds ? { deviceIds } : {}) });
  }
  /** A page of the duplicates of the devices the caller may see, newest first. */
  async pageDuplicates(actor: Actor, q: { state?: string } & PageRequest): Promise<Page<DeviceDuplicate>> {
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    const deviceIds = reach.all ? undefined : this.#catalog.devicesInGroups(reachList(reach) ?? []);
    const limit = pageLimit(q);
    const after = decodeCursor(q.cursor, 2) as [string, string] | null;
    const rows = await this.#duplicates.page({ ...(q.state ? { state: q.state } : {}), ...(deviceIds ? { deviceIds } : {}), after, limit: limit + 1 });
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeCursor([last.firstSeenAt, last.id]) : null };
  }
  async #duplicateForAdmin(actor: Actor, id: string): Promise<{ dup: DeviceDuplicate; groupId: string }> {
    const dup = await this.#duplicates.get(id);
    const original = dup && this.#catalog.device(dup.deviceId);
    if (!dup || !original || !inReach(reachOf(actor, Permission.read, this.#catalog.tree), original.groupId)) throw notVisible('device duplicate', id);
    authorize(actor, Permission.manageDevices, this.#catalog.tree, [original.groupId]);
    if (dup.state !== 'pending') throw new AppError('CONFLICT', `this duplicate was already ${dup.state}`);
    return { dup, groupId: original.groupId };
  }
  /** Approves a duplicate as a device of its own, in the original's group; it takes that identity at its next check-in. */
  async approveDuplicate(actor: Actor, id: string): Promise<DeviceDuplicate> {
    const { dup, groupId } = await this.#duplicateForAdmin(actor, id);
    const at = this.#clock.now().toISOString();
    const deviceId = newId();
    // The credential is replaced by a fresh one when the machine comes to take it.
    await this.#store.insertDevice({ id: deviceId, groupId, name: dup.hostname, inventory: dup.inventory, credentialHash: hashSecret(newSecret()), at, machineIdentity: dup.machineIdentity, clonedFrom: dup.deviceId });
    if (!(await this.#duplicates.decide(id, 'approved', actorName(actor), at, deviceId))) {
      await this.#store.deleteDevice(deviceId);
      throw new AppError('CONFLICT', 'this duplicate was decided meanwhile');
    }
    this.#catalog.putDevice((await this.#store.getDevice(deviceId))!);
    this.#put(deviceId, { machineIdentity: dup.machineIdentity, rotateChallenge: null, uninstallRequested: false, hasPublicKey: false });
    await this.#events.audit(actor, 'device.duplicate-approved', `the machine "${dup.hostname}" that presented the credential of device ${dup.deviceId} was approved as the new device ${deviceId}; nothing was merged`, {
      deviceId,
      groupId,
      data: { duplicateId: id, originalDeviceId: dup.deviceId },
    });
    this.presence.nudgeDuplicate?.(dup.deviceId, dup.machineIdentity);
    return (await this.#duplicates.get(id))!;
  }
  async rejectDuplicate(actor: Actor, id: string): Promise<DeviceDuplicate> {
    const { dup, groupId } = await this.#duplicateForAdmin(actor, id);
    if (!(await this.#duplicates.decide(id, 'rejected', actorName(actor), this.#clock.now().toISOString(), null))) throw new AppError('CONFLICT', 'this duplicate was decided meanwhile');
    await this.#events.audit(actor, 'device.duplicate-rejected', `the machine "${dup.hostname}" that presented the credential of device ${dup.deviceId} was rejected`, { deviceId: dup.deviceId, groupId, data: { duplicateId: id } });
    this.presence.nudgeDuplicate?.(dup.deviceId, dup.machineIdentity);
    return (await this.#duplicates.get(id))!;
  }

  async #deviceForAdmin(actor: Actor, id: string) {
    const d = await this.#devices.stored(actor, id);
    authorize(actor, Permission.manageDevices, this.#catalog.tree, [d.groupId]);
    return d;
  }

  /** Asks the agent for a new credential at its next check-in (at once if it is connected), with the challenge it must sign. */
  async requestRotation(actor: Actor, id: string) {
    const d = await this.#deviceForAdmin(actor, id);
    if (d.credentialRevoked) throw new AppError('CONFLICT', 'the device credential is revoked; enrol the machine again');
    const challenge = this.#stateOf(id).rotateChallenge ?? newSecret();
    const at = this.#clock.now().toISOString();
    await this.#store.setIdentityFields(id, { rotate_requested_at: at, rotate_challenge: challenge }, at);
    this.#stateOf(id).rotateChallenge = challenge;
    await this.#events.audit(actor, 'device.credential-rotation-requested', `credential rotation requested for device "${d.name}"`, { deviceId: id, groupId: d.groupId });
    this.#bus.publish({ type: 'identity.changed', deviceIds: [id] });
    return this.#devices.get(actor, id);
  }

  /** Revokes the credential, and those of the devices made from it, and disconnects them at once; the machines need a new enrolment. */
  async revoke(actor: Actor, id: string) {
    const d = await this.#deviceForAdmin(actor, id);
    const at = this.#clock.now().toISOString();
    const all = [id];
    for (let i = 0; i < all.length && all.length < 10_000; i++) for (const child of await this.#store.derivedDevices(all[i]!)) if (!all.includes(child)) all.push(child);
    for (const dev of all) {
      await this.#store.revokeCredential(dev, at);
      this.#remove(dev);
      this.#enrolment.forgetCredential(dev);
      this.presence.disconnect(dev, 'credential revoked');
    }
    await this.#duplicates.rejectPendingOf(all, actorName(actor), at);
    const derived = all.slice(1);
    await this.#events.audit(actor, 'device.revoked', `credential of device "${d.name}" revoked${derived.length ? `, with the ${derived.length} device${derived.length === 1 ? '' : 's'} made from it` : ''}; the agent was disconnected`, {
      deviceId: id,
      groupId: d.groupId,
      ...(derived.length ? { data: { derivedDeviceIds: derived } } : {}),
    });
    return this.#devices.get(actor, id);
  }

  /** Asks the agent to uninstall itself at its next check-in (at once if connected). */
  async requestUninstall(actor: Actor, id: string) {
    const d = await this.#deviceForAdmin(actor, id);
    if (d.credentialRevoked) throw new AppError('CONFLICT', 'the device credential is revoked: the agent can no longer be reached');
    await this.#store.setIdentityFields(id, { uninstall_requested_at: this.#clock.now().toISOString() }, this.#clock.now().toISOString());
    this.#stateOf(id).uninstallRequested = true;
    await this.#events.audit(actor, 'device.uninstall-requested', `uninstall of the agent requested on device "${d.name}"`, { deviceId: id, groupId: d.groupId });
    this.#bus.publish({ type: 'identity.changed', deviceIds: [id] });
    return this.#devices.get(actor, id);
  }

  /**
   * The agent registers its new secret: only while a rotation is requested, with the challenge
   * issued for it, signed by the device key (a device without one registers its key with it).
   * The previous secret stays valid until the new one is used.
   */
  async rotated(deviceId: string, r: CredentialRotation): Promise<void> {
    const proof = await this.#store.rotationProof(deviceId);
    if (!proof || proof.revoked) throw new AppError('DEVICE_CREDENTIAL_INVALID', 'the device credential is unknown or revoked');
    const refused = (why: string) => {
      this.#events.record({ severity: 'warning', kind: 'device.credential-rotation-refused', message: `a new credential for device ${deviceId} was refused: ${why}`, deviceId });
      return new AppError('CREDENTIAL_PROOF_INVALID', why);
    };
    if (!proof.challenge) throw refused('no credential rotation was asked for this device');
    const a = Buffer.from(proof.challenge);
    const b = Buffer.from(r.challenge);
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw refused('the challenge is not the one the server issued');
    const keyText = proof.publicKey ?? r.publicKey;
    if (!keyText) throw refused('the device has no key and sent none');
    let ok = false;
    try {
      const key = createPublicKey({ key: Buffer.from(keyText, 'base64url'), format: 'der', type: 'spki' });
      ok = key.asymmetricKeyType === 'ed25519' && verify(null, Buffer.from(credentialRotationPayload(deviceId, r.challenge, r.secret)), key, Buffer.from(r.signature, 'base64url'));
    } catch {
      ok = false;
    }
    if (!ok) throw refused('the signature does not verify with the device key');
    const at = this.#clock.now().toISOString();
    if (!proof.publicKey) await this.#store.setPublicKeyIfNone(deviceId, keyText, at);
    if (!(await this.#store.rotateCredential(deviceId, hashSecret(r.secret), at))) throw new AppError('DEVICE_CREDENTIAL_INVALID', 'the device credential is unknown or revoked');
    this.#enrolment.forgetCredential(deviceId);
    const s = this.#stateOf(deviceId);
    s.rotateChallenge = null;
    s.hasPublicKey = true;
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
    if (!s) this.#put(id, (s = { machineIdentity: null, rotateChallenge: null, uninstallRequested: false, hasPublicKey: false }));
    return s;
  }
}
