import { DEVICE_CREDENTIAL_PREFIX, type EnrolRequest, type EnrolResponse, type EnrolmentTokenView, type Page, type PageRequest } from '@garrison/protocol';
import { pageOf } from '../paging.ts';
import { AppError, notFound } from '../errors.ts';
import type { Clock } from '../clock.ts';
import { hashSecret, newId, newSecret, sameHash } from '../ids.ts';
import type { DeviceStore, StoredCredential } from '../storage/device-store.ts';
import { BatchReader } from './batch-reader.ts';
import type { EnrolmentStore, EnrolmentToken } from '../storage/enrolment-store.ts';
import { allowed, authorize, inReach, Permission, reachOf, type Actor, actorName } from './actor.ts';
import type { Catalog } from './catalog.ts';
import type { EventService } from './event-service.ts';
import type { DomainBus } from './domain-bus.ts';

type TokenView = EnrolmentTokenView;

export class EnrolmentService {
  readonly #tokens: EnrolmentStore;
  readonly #devices: DeviceStore;
  readonly #catalog: Catalog;
  readonly #clock: Clock;
  readonly #events: EventService;
  readonly #signingPublicKey: string;
  readonly #bus: DomainBus;
  /** Verified credentials, so that reconnect storms do not each hit the database. */
  readonly #credentialCache = new Map<string, string>();
  /**
   * Credentials not in the cache are read a batch at a time: an instance that takes over a
   * dead one's agents checks thousands a second, one query per few milliseconds instead of
   * one per connection.
   */
  readonly #credentials: BatchReader<string, StoredCredential>;
  /** Grows at every forgetCredential: a read that overlapped one is not cached (it may predate a revocation). */
  #forgets = 0;

  constructor(deps: { tokens: EnrolmentStore; devices: DeviceStore; catalog: Catalog; clock: Clock; events: EventService; signingPublicKey: string; bus: DomainBus }) {
    this.#bus = deps.bus;
    this.#signingPublicKey = deps.signingPublicKey;
    this.#tokens = deps.tokens;
    this.#devices = deps.devices;
    this.#credentials = new BatchReader({ read: (ids) => deps.devices.getCredentials(ids) });
    this.#catalog = deps.catalog;
    this.#clock = deps.clock;
    this.#events = deps.events;
  }
  #view(t: EnrolmentToken): TokenView {
    const now = this.#clock.now().toISOString();
    const state = t.revokedAt ? 'revoked' : t.expiresAt && t.expiresAt <= now ? 'expired' : t.maxUses !== null && t.uses >= t.maxUses ? 'exhausted' : 'active';
    return { ...t, groupPath: this.#catalog.tree.path(t.groupId), state };
  }
  async createToken(actor: Actor, input: { groupId: string; name?: string; expiresInMinutes?: number; maxUses?: number }): Promise<TokenView & { token: string }> {
    if (!this.#catalog.group(input.groupId) || !allowed(actor, Permission.read, this.#catalog.tree, [input.groupId])) throw notFound('group', input.groupId);
    authorize(actor, Permission.manageTokens, this.#catalog.tree, [input.groupId]);
    const now = this.#clock.now();
    const secret = `get.${newSecret()}`;
    const t: EnrolmentToken = {
      id: newId(),
      groupId: input.groupId,
      name: input.name ?? `token for ${this.#catalog.tree.path(input.groupId)}`,
      expiresAt: input.expiresInMinutes ? new Date(now.getTime() + input.expiresInMinutes * 60_000).toISOString() : null,
      maxUses: input.maxUses ?? null,
      uses: 0,
      revokedAt: null,
      createdAt: now.toISOString(),
      createdBy: actorName(actor),
    };
    await this.#tokens.insertToken(t, hashSecret(secret));
    await this.#events.audit(actor, 'token.created', `enrolment token "${t.name}" created`, { groupId: t.groupId, data: { tokenId: t.id, expiresAt: t.expiresAt, maxUses: t.maxUses } });
    return { ...this.#view(t), token: secret };
  }
  /** Tokens of the groups the caller reads. */
  async listTokens(actor: Actor): Promise<TokenView[]> {
    const reach = reachOf(actor, Permission.read, this.#catalog.tree);
    return (await this.#tokens.listTokens()).filter((t) => inReach(reach, t.groupId)).map((t) => this.#view(t));
  }
  /** A page of the tokens of the groups the caller reads, newest first. */
  async pageTokens(actor: Actor, q: { state?: TokenView['state'] } & PageRequest): Promise<Page<TokenView>> {
    const tokens = (await this.listTokens(actor)).filter((t) => !q.state || t.state === q.state);
    return pageOf(tokens, { key: (t) => [t.createdAt, t.id], descending: true }, q);
  }
  async revokeToken(actor: Actor, id: string): Promise<TokenView> {
    const t = await this.#tokens.getToken(id);
    if (!t || !allowed(actor, Permission.read, this.#catalog.tree, [t.groupId])) throw notFound('enrolment token', id);
    authorize(actor, Permission.manageTokens, this.#catalog.tree, [t.groupId]);
    await this.#tokens.revoke(id, this.#clock.now().toISOString());
    await this.#events.audit(actor, 'token.revoked', `enrolment token "${t.name}" revoked`, { groupId: t.groupId, data: { tokenId: id } });
    return this.#view((await this.#tokens.getToken(id))!);
  }

  /** Checks a token without using it (installers); throws TOKEN_* when it cannot enrol. */
  async checkToken(secret: string): Promise<TokenView> {
    const t = secret.length >= 8 && secret.length <= 200 ? await this.#tokens.findByHash(hashSecret(secret)) : undefined;
    if (!t) throw new AppError('TOKEN_INVALID', 'this installer link is not known to this server');
    const v = this.#view(t);
    if (v.state === 'revoked') throw new AppError('TOKEN_REVOKED', 'this installer link was revoked');
    if (v.state === 'expired') throw new AppError('TOKEN_EXPIRED', `this installer link expired at ${t.expiresAt}`);
    if (v.state === 'exhausted') throw new AppError('TOKEN_EXHAUSTED', `this installer link was used ${t.uses} of ${t.maxUses} times`);
    if (!this.#catalog.group(t.groupId)) throw new AppError('TOKEN_INVALID', "this installer link's group no longer exists");
    return v;
  }

  /** Enrols a device with a token: checks it, counts a use, and creates the device and its credential. */
  async enrol(req: EnrolRequest, remoteAddress: string): Promise<EnrolResponse> {
    const now = this.#clock.now().toISOString();
    const t = await this.#tokens.findByHash(hashSecret(req.token));
    if (!t) throw new AppError('TOKEN_INVALID', 'the enrolment token is not known to this server');
    if (t.revokedAt) throw new AppError('TOKEN_REVOKED', 'the enrolment token was revoked');
    if (t.expiresAt && t.expiresAt <= now) throw new AppError('TOKEN_EXPIRED', `the enrolment token expired at ${t.expiresAt}`);
    // A group made through another instance a moment ago may not be in this one's catalog yet.
    if (!this.#catalog.group(t.groupId)) await this.#catalog.reloadGroups();
    if (!this.#catalog.group(t.groupId)) throw new AppError('TOKEN_INVALID', "the enrolment token's group no longer exists");
    if (!(await this.#tokens.consumeUse(t.id, now))) {
      const again = (await this.#tokens.getToken(t.id))!;
      if (again.revokedAt) throw new AppError('TOKEN_REVOKED', 'the enrolment token was revoked');
      if (again.expiresAt && again.expiresAt <= now) throw new AppError('TOKEN_EXPIRED', 'the enrolment token has expired');
      throw new AppError('TOKEN_EXHAUSTED', `the enrolment token was used ${again.uses} of ${again.maxUses} times`);
    }
    const deviceId = newId();
    const secret = newSecret();
    const name = req.name ?? req.inventory.hostname;
    await this.#devices.insertDevice({ id: deviceId, groupId: t.groupId, name, inventory: req.inventory, credentialHash: hashSecret(secret), at: now, machineIdentity: req.machineIdentity ?? null, publicKey: req.publicKey ?? null });
    const device = (await this.#devices.getDevice(deviceId))!;
    this.#catalog.putDevice(device);
    this.#events.record({
      severity: 'info',
      kind: 'agent.enrolled',
      message: `device "${name}" enrolled into "${this.#catalog.tree.path(t.groupId)}"`,
      deviceId,
      groupId: t.groupId,
      data: { tokenId: t.id, remoteAddress, hostname: req.inventory.hostname },
    });
    this.#bus.publish({ type: 'device.enrolled', deviceId, name, groupId: t.groupId, machineIdentity: req.machineIdentity ?? null, hasPublicKey: req.publicKey !== undefined });
    return { deviceId, credential: `${DEVICE_CREDENTIAL_PREFIX}.${deviceId}.${secret}`, groupId: t.groupId, policy: this.#catalog.policyOf(t.groupId), signingPublicKey: this.#signingPublicKey };
  }

  /** Returns the device id of a valid credential, or throws DEVICE_CREDENTIAL_INVALID. */
  async authenticateDevice(credential: string | undefined): Promise<string> {
    // Built only on failure: an error captures a stack trace, which reconnect storms would pay for.
    const invalid = () => new AppError('DEVICE_CREDENTIAL_INVALID', 'the device credential is unknown or revoked');
    if (!credential) throw invalid();
    const parts = credential.split('.');
    if (parts.length !== 3 || parts[0] !== DEVICE_CREDENTIAL_PREFIX || !parts[1] || !parts[2]) throw invalid();
    const [, deviceId, secret] = parts as [string, string, string];
    const hash = hashSecret(secret);
    const cached = this.#credentialCache.get(deviceId);
    if (cached !== undefined && sameHash(cached, hash)) return deviceId;
    const forgets = this.#forgets;
    let stored = await this.#credentials.load(deviceId);
    // A revocation or rotation while the batch was read: read this one again, on its own.
    if (forgets !== this.#forgets) stored = await this.#devices.getCredential(deviceId);
    if (!stored || stored.revoked) throw invalid();
    if (sameHash(stored.hash, hash)) {
      // The agent uses its rotated credential: the previous one stops working now, and so do
      // the connections opened with it.
      if (forgets === this.#forgets) this.#credentialCache.set(deviceId, stored.hash);
      if (stored.prevHash) {
        await this.#devices.dropPreviousCredential(deviceId);
        // Connections opened with the previous secret (which stops working now) close at once, everywhere.
        this.#bus.publish({ type: 'credential.superseded', deviceId, credentialHash: stored.hash });
      }
      return deviceId;
    }
    // During a rotation the previous credential works until the new one is first used (not cached).
    if (stored.prevHash && sameHash(stored.prevHash, hash)) return deviceId;
    throw invalid();
  }
  /** The hash a credential's secret is stored under (what a connection remembers of the credential it was opened with). */
  credentialHash(credential: string | undefined): string | undefined {
    const secret = credential?.split('.')[2];
    return secret ? hashSecret(secret) : undefined;
  }
  forgetCredential(deviceId: string): void {
    this.#forgets++;
    this.#credentialCache.delete(deviceId);
  }
}
