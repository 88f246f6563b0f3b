/**
 * The secret store: values are encrypted with AES-256-GCM under a key that never enters the
 * database (a file in the data folder, mode 0600, or GARRISON_SECRET_KEY). Settings refer to
 * secrets by name; `resolve` replaces references with values only when a task is handed to
 * the agent that runs it. No read API returns a value.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { isSecretRef, replaceAt, secretPlacements, type SecretPlacement } from '@garrison/protocol';
import type { GroupTree } from '@garrison/core';
import { AppError } from '../errors.ts';
import type { SecretMeta, SecretStore } from '../storage/secret-store.ts';
import type { Clock } from '../clock.ts';
import { allowed, authorize, inReach, Permission, reachOf, type Actor } from './actor.ts';
import type { EventService } from './event-service.ts';
import { secretRefs } from '../plugins/registry.ts';

/** Same reference at the same place: what a change may keep without the right to use the secret. */
function samePlacement(a: SecretPlacement, b: SecretPlacement): boolean {
  return a.name === b.name && a.path.length === b.path.length && a.path.every((k, i) => k === b.path[i]);
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export class SecretService {
  readonly #store: SecretStore;
  readonly #key: Buffer;
  readonly #clock: Clock;
  readonly #events: EventService;
  /** Decrypted values cached by name and version; resolved on every task hand-out. */
  #cache = new Map<string, { updatedAt: string; value: string }>();
  /** Bumped when any secret changes, so that agents' task-list etags change and they re-fetch values. */
  generation = Date.now();

  readonly #tree: () => GroupTree;

  constructor(deps: { store: SecretStore; key: Buffer; clock: Clock; events: EventService; tree: () => GroupTree }) {
    if (deps.key.length !== 32) throw new Error('the secret-store key must be 32 bytes');
    this.#store = deps.store;
    this.#key = deps.key;
    this.#clock = deps.clock;
    this.#events = deps.events;
    this.#tree = deps.tree;
  }
  /** The group a secret belongs to: its own, or the root when it has none (or its group is gone). */
  #groupOf(groupId: string | null): string {
    const tree = this.#tree();
    return groupId && tree.get(groupId) ? groupId : (tree.roots()[0]?.id ?? 'root');
  }
  encrypt(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return ['v1', iv.toString('base64'), cipher.getAuthTag().toString('base64'), body.toString('base64')].join(':');
  }
  decrypt(stored: string): string {
    const [v, iv, tag, body] = stored.split(':');
    if (v !== 'v1' || !iv || !tag || body === undefined) throw new Error('unknown secret format');
    const d = createDecipheriv('aes-256-gcm', this.#key, Buffer.from(iv, 'base64'));
    d.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([d.update(Buffer.from(body, 'base64')), d.final()]).toString('utf8');
  }
  /** Names and descriptions of the secrets whose group the caller may see. */
  async list(actor: Actor): Promise<SecretMeta[]> {
    const reach = reachOf(actor, Permission.read, this.#tree());
    return (await this.#store.listSecrets()).filter((m) => inReach(reach, this.#groupOf(m.groupId)));
  }
  /**
   * Sets a value. A secret belongs to a group (default: the root, or the one it has): setting it
   * needs secrets:write there, and an existing secret of another group cannot be taken over.
   */
  async put(actor: Actor, name: string, value: string, description?: string, groupId?: string): Promise<void> {
    if (!NAME.test(name)) throw new AppError('VALIDATION_FAILED', 'a secret name is 1-100 letters, digits, ".", "_" or "-"');
    if (value.length === 0 || value.length > 65536) throw new AppError('VALIDATION_FAILED', 'a secret value is 1 to 65536 characters');
    if (groupId !== undefined && !this.#tree().get(groupId)) throw new AppError('NOT_FOUND', `group ${groupId} does not exist`);
    const existing = await this.#store.getMeta(name);
    if (existing) authorize(actor, Permission.manageSecrets, this.#tree(), [this.#groupOf(existing.groupId)]);
    const group = this.#groupOf(groupId ?? existing?.groupId ?? null);
    authorize(actor, Permission.manageSecrets, this.#tree(), [group]);
    const stored = this.#tree().get(group)?.parentId === null ? null : group;
    await this.#store.putSecret(name, this.encrypt(value), description, this.#clock.now().toISOString(), stored);
    this.generation++;
    await this.#events.audit(actor, 'secret.set', `secret "${name}" set`, { groupId: group });
  }
  async remove(actor: Actor, name: string): Promise<void> {
    const existing = await this.#store.getMeta(name);
    if (!existing || !inReach(reachOf(actor, Permission.read, this.#tree()), this.#groupOf(existing.groupId))) throw new AppError('NOT_FOUND', `secret "${name}" does not exist`);
    authorize(actor, Permission.manageSecrets, this.#tree(), [this.#groupOf(existing.groupId)]);
    if (!(await this.#store.deleteSecret(name))) throw new AppError('NOT_FOUND', `secret "${name}" does not exist`);
    this.#cache.delete(name);
    this.generation++;
    await this.#events.audit(actor, 'secret.deleted', `secret "${name}" deleted`, { groupId: this.#groupOf(existing.groupId) });
  }
  /** Refuses settings that refer to secrets that do not exist. */
  async assertRefsExist(settings: unknown): Promise<void> {
    const names = [...secretRefs(settings)];
    const found = await this.#store.getCiphertexts(names);
    const missing = names.filter((n) => !found.has(n));
    if (missing.length > 0) throw new AppError('SECRET_NOT_FOUND', `no secret named ${missing.map((m) => `"${m}"`).join(', ')}`, { missing });
  }
  /**
   * Refuses the secret references that `settings` introduce or change (compared with `before`,
   * place by place) unless the caller may use them: secrets:write on the secret's group, and
   * every group the settings will reach (`scopeGroups`; none: a global or server-wide object,
   * which needs a secret of the root group) within that group, so that a value only ever goes
   * to devices of the secret's own subtree. A reference already in place stays.
   */
  async assertMayReference(actor: Actor, settings: unknown, before: unknown, scopeGroups: readonly string[]): Promise<void> {
    const old = before === undefined ? [] : secretPlacements(before);
    const added = secretPlacements(settings).filter((p) => !old.some((o) => samePlacement(o, p)));
    if (added.length === 0) return;
    const metas = await this.#store.getCiphertexts([...new Set(added.map((p) => p.name))]);
    const tree = this.#tree();
    for (const p of added) {
      const meta = metas.get(p.name);
      if (!meta) throw new AppError('SECRET_NOT_FOUND', `no secret named "${p.name}"`, { missing: [p.name] });
      const group = this.#groupOf(meta.groupId);
      if (!allowed(actor, Permission.manageSecrets, tree, [group])) {
        throw new AppError('SECRET_REFERENCE_REFUSED', `using secret "${p.name}" needs ${Permission.manageSecrets} on its group "${tree.path(group)}"`, { secret: p.name, path: p.path });
      }
      const root = tree.get(group)?.parentId === null;
      const outside = scopeGroups.length === 0 ? !root : scopeGroups.some((g) => !tree.isAncestorOrSelf(group, g));
      if (outside) throw new AppError('SECRET_REFERENCE_REFUSED', `secret "${p.name}" belongs to "${tree.path(group)}" and may only be handed to devices there`, { secret: p.name, path: p.path });
    }
  }
  /**
   * A device's own change to settings (a local task edited on the device) may not introduce or
   * change a secret reference: only references already at the same place survive. A secret's
   * value sent back in place of its reference (an agent older than secretPlacements) is put
   * back as the reference; a value anywhere else is refused, never stored.
   */
  async normalizeDeviceSettings(settings: Record<string, unknown>, before: Record<string, unknown> | undefined): Promise<Record<string, unknown>> {
    const old = before === undefined ? [] : secretPlacements(before);
    const values = await this.values([...new Set(old.map((p) => p.name))]);
    let out = settings;
    if (old.length) {
      out = replaceAt(settings, old, (p, current) => (typeof current === 'string' && current === values.get(p.name) ? { $secret: p.name } : current));
    }
    for (const p of secretPlacements(out)) {
      if (!old.some((o) => samePlacement(o, p))) throw new AppError('SECRET_REFERENCE_REFUSED', 'settings changed on a device may not introduce or change a secret reference', { path: p.path });
    }
    const leaked = [...values.values()].filter((v) => v.length >= 4 && JSON.stringify(out).includes(JSON.stringify(v).slice(1, -1)));
    if (leaked.length) throw new AppError('SECRET_REFERENCE_REFUSED', "the settings hold the value of one of the task's secrets outside its place; it is never stored");
    return out;
  }
  /** The values of the named secrets (for resolving and for masking output). */
  async values(names: readonly string[]): Promise<Map<string, string>> {
    const rows = await this.#store.getCiphertexts([...names]);
    const out = new Map<string, string>();
    for (const [name, row] of rows) {
      const cached = this.#cache.get(name);
      if (cached && cached.updatedAt === row.updatedAt) out.set(name, cached.value);
      else {
        const value = this.decrypt(row.ciphertext);
        this.#cache.set(name, { updatedAt: row.updatedAt, value });
        out.set(name, value);
      }
    }
    return out;
  }
  /**
   * A copy of `settings` with every {"$secret": name} replaced by its value. For a device
   * (`forGroupId`), a secret of another subtree is never resolved: SECRET_REFERENCE_REFUSED.
   */
  async resolve<T>(settings: T, forGroupId?: string): Promise<T> {
    const names = secretRefs(settings);
    if (names.size === 0) return settings;
    const values = await this.values([...names]);
    if (forGroupId !== undefined) {
      const groups = await this.#store.getCiphertexts([...names]);
      const tree = this.#tree();
      for (const [name, row] of groups) {
        if (!tree.isAncestorOrSelf(this.#groupOf(row.groupId), forGroupId)) throw new AppError('SECRET_REFERENCE_REFUSED', `secret "${name}" belongs to another subtree than this device's group`);
      }
    }
    const walk = (v: unknown): unknown => {
      if (isSecretRef(v)) {
        const value = values.get(v.$secret);
        if (value === undefined) throw new AppError('SECRET_NOT_FOUND', `no secret named "${v.$secret}"`);
        return value;
      }
      if (Array.isArray(v)) return v.map(walk);
      if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
      return v;
    };
    return walk(settings) as T;
  }
}
