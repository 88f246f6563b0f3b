/**
 * Reading a task type's settings schema (JSON Schema as TypeBox writes it) to decide how each
 * setting is edited: the form generator's vocabulary, kept apart from the components.
 */
import { SECRET_REF_KEY } from '@garrison/protocol';

export interface JsonSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  examples?: unknown[];
  const?: unknown;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  patternProperties?: Record<string, JsonSchema>;
  items?: JsonSchema | JsonSchema[];
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  multipleOf?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  contentMediaType?: string;
  readOnly?: boolean;
  [key: string]: unknown;
}

export type Primitive = string | number | boolean | null;

export type SchemaKind =
  | { kind: 'const'; value: unknown }
  | { kind: 'enum'; options: { value: Primitive; label: string }[] }
  | { kind: 'string'; secret: boolean }
  | { kind: 'secret' }
  | { kind: 'number'; integer: boolean }
  | { kind: 'boolean' }
  | { kind: 'array'; items: JsonSchema }
  | { kind: 'multi'; options: { value: Primitive; label: string }[] }
  | { kind: 'object' }
  | { kind: 'record'; values: JsonSchema; keyPattern?: string }
  | { kind: 'nullable'; inner: JsonSchema }
  | { kind: 'json' };

function types(s: JsonSchema): string[] {
  return Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
}

function isPrimitive(v: unknown): v is Primitive {
  return v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

/** `{ "$secret": "name" }` as a schema: an object whose only property is $secret. */
export function isSecretRefSchema(s: JsonSchema): boolean {
  return types(s).includes('object') && !!s.properties && Object.keys(s.properties).length === 1 && !!s.properties[SECRET_REF_KEY];
}

function alternatives(s: JsonSchema): JsonSchema[] | undefined {
  return s.anyOf ?? s.oneOf;
}

/** The options of an enum: `enum`, or a union of `const`s (TypeBox's Union of Literals). */
export function enumOptions(s: JsonSchema): { value: Primitive; label: string }[] | undefined {
  if (Array.isArray(s.enum) && s.enum.every(isPrimitive)) return s.enum.map((v) => ({ value: v, label: String(v) }));
  const alts = alternatives(s);
  if (alts?.length && alts.every((a) => a.const !== undefined && isPrimitive(a.const))) {
    return alts.map((a) => ({ value: a.const as Primitive, label: a.title ?? String(a.const) }));
  }
  return undefined;
}

/** How a schema is edited. Anything the form cannot show as controls is edited as JSON. */
export function classify(s: JsonSchema): SchemaKind {
  if (s.const !== undefined) return { kind: 'const', value: s.const };
  const options = enumOptions(s);
  if (options) return { kind: 'enum', options };
  const alts = alternatives(s);
  if (alts?.length) {
    const nonNull = alts.filter((a) => !(types(a).length === 1 && types(a)[0] === 'null'));
    if (nonNull.length === 1 && nonNull.length < alts.length) return { kind: 'nullable', inner: nonNull[0]! };
    const secret = alts.filter(isSecretRefSchema);
    const rest = alts.filter((a) => !isSecretRefSchema(a));
    if (secret.length && rest.length === 1 && types(rest[0]!).join() === 'string' && !enumOptions(rest[0]!)) return { kind: 'string', secret: true };
    if (secret.length && rest.length === 0) return { kind: 'secret' };
    return { kind: 'json' };
  }
  if (s.allOf?.length) return { kind: 'json' };
  if (isSecretRefSchema(s)) return { kind: 'secret' };
  const t = types(s).filter((x) => x !== 'null');
  if (t.length !== 1) return { kind: 'json' };
  if (types(s).includes('null')) return { kind: 'nullable', inner: { ...s, type: t[0]! } };
  switch (t[0]) {
    case 'string':
      return { kind: 'string', secret: false };
    case 'integer':
      return { kind: 'number', integer: true };
    case 'number':
      return { kind: 'number', integer: false };
    case 'boolean':
      return { kind: 'boolean' };
    case 'array': {
      if (!s.items || Array.isArray(s.items)) return { kind: 'json' };
      const itemOptions = enumOptions(s.items);
      if (itemOptions) return { kind: 'multi', options: itemOptions };
      return { kind: 'array', items: s.items };
    }
    case 'object': {
      const hasProps = !!s.properties && Object.keys(s.properties).length > 0;
      const patterns = s.patternProperties ? Object.entries(s.patternProperties) : [];
      const addl = typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined;
      if (!hasProps && patterns.length === 1 && !addl) return { kind: 'record', values: patterns[0]![1], keyPattern: patterns[0]![0] };
      if (!hasProps && patterns.length === 0 && addl) return { kind: 'record', values: addl };
      if (!hasProps && patterns.length === 0 && s.additionalProperties !== false && s.additionalProperties !== undefined) return { kind: 'json' };
      if (patterns.length || addl) return { kind: 'json' };
      return { kind: 'object' };
    }
    default:
      return { kind: 'json' };
  }
}

/** Whether the whole settings schema can be shown as a form (an object with properties). */
export function isFormable(s: JsonSchema | undefined): boolean {
  return !!s && classify(s).kind === 'object';
}

/** "workingDirectory" → "Working directory"; "maxFileBytes" → "Max file bytes". */
export function humanize(key: string): string {
  const words = key
    .replace(/[_-]+/g, ' ')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .trim()
    .toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export function labelOf(key: string, s: JsonSchema): string {
  return typeof s.title === 'string' && s.title ? s.title : humanize(key);
}

/** Strings edited in a multi-line box: scripts and long texts. */
export function isLongText(key: string, s: JsonSchema, value: unknown): boolean {
  if (typeof value === 'string' && value.includes('\n')) return true;
  if (/script|body|content|template|text$|^text|yaml|xml|json|pem|certificate/i.test(key)) return true;
  if (typeof s.contentMediaType === 'string') return true;
  return (s.maxLength ?? 0) > 32768;
}

/** The value a new form starts with: defaults, and an empty value for each required setting. */
export function initialValue(s: JsonSchema, required = true): unknown {
  if (s.default !== undefined) return structuredClone(s.default);
  if (!required) return undefined;
  const k = classify(s);
  switch (k.kind) {
    case 'const':
      return k.value;
    case 'enum':
      return k.options[0]?.value;
    case 'string':
      return '';
    case 'secret':
      return { [SECRET_REF_KEY]: '' };
    case 'number':
      return undefined;
    case 'boolean':
      return false;
    case 'array':
      return (s.minItems ?? 0) > 0 ? Array.from({ length: s.minItems ?? 0 }, () => initialValue(k.items) ?? '') : [];
    case 'multi':
      return [];
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const [key, sub] of Object.entries(s.properties ?? {})) {
        const v = initialValue(sub, (s.required ?? []).includes(key));
        if (v !== undefined) out[key] = v;
      }
      return out;
    }
    case 'record':
      return {};
    case 'nullable':
      return null;
    default:
      return undefined;
  }
}

/** Describes the limits of a setting for its hint: "1 to 3600", "at most 8192 characters". */
export function limitsText(s: JsonSchema): string | undefined {
  const parts: string[] = [];
  if (s.minimum !== undefined && s.maximum !== undefined) parts.push(`${s.minimum} to ${s.maximum}`);
  else if (s.minimum !== undefined) parts.push(`at least ${s.minimum}`);
  else if (s.maximum !== undefined) parts.push(`at most ${s.maximum}`);
  if (s.minItems !== undefined && s.minItems > 0) parts.push(`at least ${s.minItems} ${s.minItems === 1 ? 'entry' : 'entries'}`);
  if (s.maxItems !== undefined) parts.push(`at most ${s.maxItems} entries`);
  if (s.pattern) parts.push(`pattern ${s.pattern}`);
  if (s.format) parts.push(`format ${s.format}`);
  return parts.length ? parts.join(', ') : undefined;
}
