import { Type } from 'typebox';
import { BUILTIN_PRODUCT, START_TASK_TYPE, STOP_TASK_TYPE, checker, isSecretRef, type Checker } from '@garrison/protocol';
import type { TSchema } from 'typebox';
import { AppError } from '../errors.ts';
import type { PolicyTypeDefinition, ServerPlugin, TaskTypeDefinition } from './plugin.ts';
import { PluginLoadError } from './loader.ts';

/** A product's policy type as the registry keeps it: checked at load, one checker per setting. */
export interface InstalledPolicyType {
  product: string;
  productName: string;
  definition: PolicyTypeDefinition;
  defaults: Readonly<Record<string, unknown>>;
  /** Resolved: every setting when the plug-in does not say. */
  lockable: readonly string[];
  settingCheckers: ReadonlyMap<string, Checker<TSchema>>;
}

/**
 * Checks a plug-in's policy type (ADR 0020) and compiles it: an object schema whose
 * properties are the settings, complete defaults valid against it, lockable settings that
 * exist. A broken type stops the start with a clear message, as a broken task type does.
 */
export function compilePolicyType(product: string, productName: string, def: PolicyTypeDefinition): InstalledPolicyType {
  const fail = (why: string) => new PluginLoadError(`plug-in ${product}: its policy type ${why}`);
  const schema = def.settingsSchema as TSchema & { type?: unknown; properties?: Record<string, TSchema> };
  if (!schema || typeof schema !== 'object' || schema.type !== 'object' || !schema.properties || typeof schema.properties !== 'object') throw fail('needs an object settingsSchema whose properties are the settings');
  const keys = Object.keys(schema.properties);
  if (keys.length === 0) throw fail('has no settings');
  for (const k of keys) if (!/^[A-Za-z][A-Za-z0-9_.-]{0,99}$/.test(k)) throw fail(`has a setting named "${k}" (letters, digits, "_", ".", "-"; starting with a letter)`);
  if (!def.defaults || typeof def.defaults !== 'object') throw fail('needs defaults');
  const missing = keys.filter((k) => !Object.hasOwn(def.defaults, k));
  if (missing.length) throw fail(`has no default for ${missing.join(', ')} (defaults must be complete)`);
  const extra = Object.keys(def.defaults).filter((k) => !keys.includes(k));
  if (extra.length) throw fail(`has defaults for settings it does not declare: ${extra.join(', ')}`);
  const whole = checker(schema);
  if (!whole.check(def.defaults)) throw fail(`has defaults that do not match its schema: ${whole.issues(def.defaults).map((i) => `${i.path} ${i.message}`).join('; ')}`);
  const lockable = def.lockable ?? keys;
  if (!Array.isArray(lockable)) throw fail('lockable must be a list of setting names');
  const unknown = lockable.filter((k) => !keys.includes(k));
  if (unknown.length) throw fail(`lists lockable settings it does not declare: ${unknown.join(', ')}`);
  const problems = def.validate?.({ ...def.defaults }) ?? [];
  if (problems.length) throw fail(`refuses its own defaults: ${problems.join('; ')}`);
  const settingCheckers = new Map<string, Checker<TSchema>>();
  for (const k of keys) settingCheckers.set(k, checker(schema.properties[k]!));
  return { product, productName, definition: def, defaults: structuredClone(def.defaults), lockable: [...lockable], settingCheckers };
}

/**
 * Field names that mean a credential. A literal string under such a name is refused: the
 * value belongs in the secret store, and the settings refer to it with {"$secret": name}.
 */
const CREDENTIAL_NAME = /pass(word|wd|phrase)?$|^pwd$|secret|token|api[_-]?key|private[_-]?key|credential/i;

export interface SecretLiteral {
  path: string;
}

/** Walks settings and reports literal values under credential-like names (including env maps). */
export function findCredentialLiterals(value: unknown, path = ''): SecretLiteral[] {
  const found: SecretLiteral[] = [];
  if (Array.isArray(value)) {
    value.forEach((v, i) => found.push(...findCredentialLiterals(v, `${path}/${i}`)));
  } else if (value !== null && typeof value === 'object' && !isSecretRef(value)) {
    for (const [k, v] of Object.entries(value)) {
      const p = `${path}/${k}`;
      if (CREDENTIAL_NAME.test(k) && typeof v === 'string' && v.length > 0) found.push({ path: p });
      else found.push(...findCredentialLiterals(v, p));
    }
  }
  return found;
}

/** Refuses settings holding a credential as a literal (client and server tasks alike). */
export function assertNoCredentialLiterals(settings: unknown): void {
  const literals = findCredentialLiterals(settings);
  if (literals.length > 0) {
    throw new AppError(
      'SECRET_LITERAL_REFUSED',
      `settings hold a credential as a literal value at ${literals.map((l) => l.path).join(', ')}; store it with "garrison secret set" and refer to it as {"$secret": "name"}`,
      { paths: literals.map((l) => l.path) },
    );
  }
}

/** Every secret name the settings refer to. */
export function secretRefs(value: unknown, out = new Set<string>()): Set<string> {
  if (isSecretRef(value)) out.add(value.$secret);
  else if (Array.isArray(value)) for (const v of value) secretRefs(v, out);
  else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) secretRefs(v, out);
  return out;
}

/** Start and stop: offered for every product but the agent itself. */
const lifecycleTaskTypes: TaskTypeDefinition[] = [
  { id: START_TASK_TYPE, name: 'Start the application', description: "Starts the product's application.", settingsSchema: Type.Object({}, { additionalProperties: false }) },
  { id: STOP_TASK_TYPE, name: 'Stop the application', description: "Stops the product's application; its running tasks are cancelled.", settingsSchema: Type.Object({}, { additionalProperties: false }) },
];

export class PluginRegistry {
  readonly #plugins = new Map<string, ServerPlugin>();
  readonly #checkers = new Map<string, Checker<TSchema>>();
  readonly #policyTypes = new Map<string, InstalledPolicyType>();

  install(plugin: ServerPlugin): void {
    if (this.#plugins.has(plugin.product.id)) throw new Error(`a plug-in for product ${plugin.product.id} is already installed`);
    const policyType = plugin.policyType ? compilePolicyType(plugin.product.id, plugin.product.name, plugin.policyType) : null;
    if (policyType) this.#policyTypes.set(plugin.product.id, policyType);
    this.#plugins.set(plugin.product.id, plugin);
    for (const t of [...plugin.taskTypes, ...(plugin.product.id !== BUILTIN_PRODUCT ? lifecycleTaskTypes : [])]) {
      if (!this.#checkers.has(`${plugin.product.id}/${t.id}`)) this.#checkers.set(`${plugin.product.id}/${t.id}`, checker(t.settingsSchema));
    }
  }
  /** The installed policy types, by product. */
  policyTypes(): InstalledPolicyType[] {
    return [...this.#policyTypes.values()].sort((a, b) => (a.product < b.product ? -1 : a.product > b.product ? 1 : 0));
  }
  policyType(product: string): InstalledPolicyType | undefined {
    return this.#policyTypes.get(product);
  }
  list(): ServerPlugin[] {
    return [...this.#plugins.values()];
  }
  taskType(product: string, type: string): TaskTypeDefinition {
    const plugin = this.#plugins.get(product);
    if (!plugin) throw new AppError('PRODUCT_NOT_INSTALLED', `no management plug-in for product "${product}" is installed`);
    const t = plugin.taskTypes.find((x) => x.id === type) ?? (product !== BUILTIN_PRODUCT ? lifecycleTaskTypes.find((x) => x.id === type) : undefined);
    if (!t) throw new AppError('TASK_TYPE_UNKNOWN', `product "${product}" has no task type "${type}"`, { available: plugin.taskTypes.map((x) => x.id) });
    return t;
  }
  /** Validates settings against the type's schema and rules, and refuses credential literals. */
  validateSettings(product: string, type: string, settings: Record<string, unknown>): void {
    const t = this.taskType(product, type);
    assertNoCredentialLiterals(settings);
    const c = this.#checkers.get(`${product}/${type}`)!;
    if (!c.check(settings)) throw new AppError('SETTINGS_INVALID', `settings do not match the schema of ${product}/${type}`, { issues: c.issues(settings) });
    const problems = t.validate?.(settings) ?? [];
    if (problems.length > 0) throw new AppError('SETTINGS_INVALID', problems.join('; '), { issues: problems.map((m) => ({ path: '/', message: m })) });
  }
}
