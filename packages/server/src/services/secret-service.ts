/**
 * The secret store: values are encrypted with AES-256-GCM under a key that never enters the
 * database (a file in the data folder, mode 0600, or GARRISON_SECRET_KEY). Settings refer to
 * secrets by name; `resolve` replaces references with values only when a task is handed to
 * the agent that runs it. No read API returns a value.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { isSecretRef } from '@garrison/protocol';
import { AppError } from '../errors.ts';
import type { SecretMeta, SecretStore } from '../storage/secret-store.ts';
import type { Clock } from '../clock.ts';
import { authorize, Permission, type Actor } from './actor.ts';
import type { EventService } from './event-service.ts';
import { secretRefs } from '../plugins/registry.ts';

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

  constructor(deps: { store: SecretStore; key: Buffer; clock: Clock; events: EventService }) {
    if (deps.key.length !== 32) throw new Error('the secret-store key must be 32 bytes');
    this.#store = deps.store;
    this.#key = deps.key;
    this.#clock = deps.clock;
    this.#events = deps.events;
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
  async list(actor: Actor): Promise<SecretMeta[]> {
    authorize(actor, Permission.read);
    return this.#store.listSecrets();
  }
  async put(actor: Actor, name: string, value: string, description?: string): Promise<void> {
    authorize(actor, Permission.manageSecrets);
    if (!NAME.test(name)) throw new AppError('VALIDATION_FAILED', 'a secret name is 1-100 letters, digits, ".", "_" or "-"');
    if (value.length === 0 || value.length > 65536) throw new AppError('VALIDATION_FAILED', 'a secret value is 1 to 65536 characters');
    await this.#store.putSecret(name, this.encrypt(value), description, this.#clock.now().toISOString());
    this.generation++;
    await this.#events.audit(actor, 'secret.set', `secret "${name}" set`, {});
  }
  async remove(actor: Actor, name: string): Promise<void> {
    authorize(actor, Permission.manageSecrets);
    if (!(await this.#store.deleteSecret(name))) throw new AppError('NOT_FOUND', `secret "${name}" does not exist`);
    this.#cache.delete(name);
    this.generation++;
    await this.#events.audit(actor, 'secret.deleted', `secret "${name}" deleted`, {});
  }
  /** Refuses settings that refer to secrets that do not exist. */
  async assertRefsExist(settings: unknown): Promise<void> {
    const names = [...secretRefs(settings)];
    const found = await this.#store.getCiphertexts(names);
    const missing = names.filter((n) => !found.has(n));
    if (missing.length > 0) throw new AppError('SECRET_NOT_FOUND', `no secret named ${missing.map((m) => `"${m}"`).join(', ')}`, { missing });
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
  /** A copy of `settings` with every {"$secret": name} replaced by its value. */
  async resolve<T>(settings: T): Promise<T> {
    const names = secretRefs(settings);
    if (names.size === 0) return settings;
    const values = await this.values([...names]);
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
