/**
 * A settings form generated from a task type's settings schema (JSON Schema from TypeBox):
 * text and long text, numbers with their limits, yes/no, choices, lists, nested objects,
 * name → value maps, and secret references ({"$secret": "name"}) where the schema accepts
 * them. What it cannot show as controls is edited as JSON in place.
 */
import { useEffect, useId, useRef, useState, type ReactNode } from 'react';
import { Link } from 'wouter';
import { SECRET_REF_KEY, isSecretRef, type SecretMeta } from '@garrison/protocol';
import { Labeled, NumberInput } from './controls.tsx';
import { CREDENTIAL_NAME } from './model.ts';
import { classify, initialValue, isLongText, labelOf, limitsText, type JsonSchema, type Primitive } from './schema.ts';
import './tasks.css';

type Change = (v: unknown) => void;

interface FieldProps {
  /** The property name (for labels and hints). */
  name: string;
  schema: JsonSchema;
  value: unknown;
  onChange: Change;
  required: boolean;
  secrets: readonly SecretMeta[] | undefined;
  depth: number;
  /** Set when the control has no visible label of its own (a list row). */
  ariaLabel?: string;
  /** Given by Labeled: the control's id and its description (hint). */
  id?: string;
  'aria-describedby'?: string;
}

export function SchemaForm({
  schema,
  value,
  onChange,
  secrets,
}: {
  schema: JsonSchema;
  value: Record<string, unknown>;
  onChange: (v: Record<string, unknown>) => void;
  secrets: readonly SecretMeta[] | undefined;
}) {
  const props = Object.entries(schema.properties ?? {});
  if (props.length === 0) return <p className="muted">This task type has no settings.</p>;
  return <ObjectFields schema={schema} value={value} onChange={onChange} secrets={secrets} depth={0} />;
}

function ObjectFields({
  schema,
  value,
  onChange,
  secrets,
  depth,
}: {
  schema: JsonSchema;
  value: Record<string, unknown>;
  onChange: (v: Record<string, unknown>) => void;
  secrets: readonly SecretMeta[] | undefined;
  depth: number;
}) {
  const required = new Set(schema.required ?? []);
  const set = (key: string, v: unknown) => {
    const next = { ...value };
    if (v === undefined) delete next[key];
    else next[key] = v;
    onChange(next);
  };
  return (
    <div className="schema-fields">
      {Object.entries(schema.properties ?? {}).map(([key, sub]) =>
        sub.readOnly ? null : <SchemaField key={key} name={key} schema={sub} value={value[key]} onChange={(v) => set(key, v)} required={required.has(key)} secrets={secrets} depth={depth + 1} />,
      )}
    </div>
  );
}

function hintOf(schema: JsonSchema, extra?: ReactNode): ReactNode {
  const parts: string[] = [];
  if (schema.description) parts.push(schema.description);
  const limits = limitsText(schema);
  if (limits) parts.push(limits);
  if (schema.default !== undefined) parts.push(`default ${JSON.stringify(schema.default)}`);
  if (!parts.length && !extra) return undefined;
  return (
    <>
      {parts.join(' · ')}
      {extra ? <> {extra}</> : null}
    </>
  );
}

function labelText(name: string, schema: JsonSchema, required: boolean): ReactNode {
  return (
    <>
      {labelOf(name, schema)}
      {required ? null : <span className="muted optional"> (optional)</span>}
    </>
  );
}

/** One setting with its label and hint. */
function SchemaField(p: FieldProps) {
  const k = classify(p.schema);
  const label = labelOf(p.name, p.schema);
  const optional = !p.required;
  switch (k.kind) {
    case 'const':
      return (
        <div className="field">
          <span className="field-label">{label}</span>
          <code>{JSON.stringify(k.value)}</code>
        </div>
      );
    case 'enum':
    case 'number':
      return (
        <Labeled label={label} optional={optional} hint={hintOf(p.schema)}>
          <SchemaControl {...p} />
        </Labeled>
      );
    case 'string':
      if (k.secret) return <SecretOrTextField {...p} />;
      return (
        <Labeled label={label} optional={optional} hint={hintOf(p.schema, credentialWarning(p.name, p.value))}>
          <SchemaControl {...p} />
        </Labeled>
      );
    case 'boolean':
      return (
        <Labeled inline={p.required || p.schema.default !== undefined} label={label} optional={optional} hint={hintOf(p.schema)}>
          <SchemaControl {...p} />
        </Labeled>
      );
    case 'secret':
      return (
        <Labeled label={label} optional={optional} hint={hintOf(p.schema)}>
          <SecretSelect value={isSecretRef(p.value) ? p.value.$secret : ''} onChange={(n) => p.onChange({ [SECRET_REF_KEY]: n })} secrets={p.secrets} />
        </Labeled>
      );
    case 'nullable':
      return <SchemaField {...p} schema={{ ...k.inner, description: k.inner.description ?? p.schema.description, title: k.inner.title ?? p.schema.title }} value={p.value === null ? undefined : p.value} onChange={(v) => p.onChange(v === undefined ? (p.required ? null : undefined) : v)} />;
    default:
      return (
        <fieldset className="schema-group">
          <legend>
            {label}
            {optional ? <span className="muted optional"> (optional)</span> : null}
          </legend>
          {hintOf(p.schema) ? <p className="hint small">{hintOf(p.schema)}</p> : null}
          <SchemaControl {...p} />
        </fieldset>
      );
  }
}

function credentialWarning(name: string, value: unknown): ReactNode {
  if (!CREDENTIAL_NAME.test(name) || typeof value !== 'string' || !value) return null;
  return <strong className="warn-text">The server refuses a credential typed here as a literal value; store it as a secret.</strong>;
}

/** The control alone (its label is around it, or given as ariaLabel). */
function SchemaControl(p: FieldProps): ReactNode {
  const k = classify(p.schema);
  const aria = {
    ...(p.ariaLabel ? { 'aria-label': p.ariaLabel } : {}),
    ...(p.id ? { id: p.id } : {}),
    ...(p['aria-describedby'] ? { 'aria-describedby': p['aria-describedby'] } : {}),
  };
  switch (k.kind) {
    case 'const':
      return <code>{JSON.stringify(k.value)}</code>;
    case 'enum': {
      const idx = k.options.findIndex((o) => o.value === p.value);
      const showEmpty = !p.required || idx < 0;
      return (
        <select {...aria} value={idx < 0 ? '' : String(idx)} required={p.required} onChange={(e) => p.onChange(e.target.value === '' ? undefined : k.options[Number(e.target.value)]?.value)}>
          {showEmpty ? <option value="">{p.required ? 'Choose…' : p.schema.default !== undefined ? `Default (${String(p.schema.default)})` : 'Default'}</option> : null}
          {k.options.map((o, i) => (
            <option key={i} value={String(i)}>
              {o.label}
            </option>
          ))}
        </select>
      );
    }
    case 'string': {
      if (k.secret) return <SecretOrText {...p} />;
      const text = typeof p.value === 'string' ? p.value : '';
      const set = (v: string) => p.onChange(v === '' && !p.required ? undefined : v);
      const common = {
        ...aria,
        value: text,
        required: p.required && (p.schema.minLength ?? 0) > 0,
        maxLength: p.schema.maxLength,
        placeholder: typeof p.schema.default === 'string' ? p.schema.default : typeof p.schema.examples?.[0] === 'string' ? (p.schema.examples[0] as string) : undefined,
        spellCheck: false,
      };
      if (isLongText(p.name, p.schema, p.value)) return <textarea {...common} rows={/script|body/i.test(p.name) ? 12 : 5} onChange={(e) => set(e.target.value)} />;
      const type = p.schema.format === 'email' ? 'email' : p.schema.format === 'uri' || p.schema.format === 'url' ? 'url' : 'text';
      return <input {...common} type={type} onChange={(e) => set(e.target.value)} />;
    }
    case 'number':
      return (
        <NumberInput
          {...aria}
          integer={k.integer}
          value={typeof p.value === 'number' ? p.value : undefined}
          onChange={(v) => p.onChange(v)}
          min={p.schema.minimum ?? p.schema.exclusiveMinimum}
          max={p.schema.maximum ?? p.schema.exclusiveMaximum}
          required={p.required}
          placeholder={typeof p.schema.default === 'number' ? String(p.schema.default) : undefined}
        />
      );
    case 'boolean':
      if (p.required || p.schema.default !== undefined)
        return <input {...aria} type="checkbox" checked={typeof p.value === 'boolean' ? p.value : p.schema.default === true} onChange={(e) => p.onChange(e.target.checked)} />;
      return (
        <select {...aria} value={p.value === true ? 'yes' : p.value === false ? 'no' : ''} onChange={(e) => p.onChange(e.target.value === '' ? undefined : e.target.value === 'yes')}>
          <option value="">Default</option>
          <option value="yes">Yes</option>
          <option value="no">No</option>
        </select>
      );
    case 'secret':
      return <SecretSelect {...aria} value={isSecretRef(p.value) ? p.value.$secret : ''} onChange={(n) => p.onChange({ [SECRET_REF_KEY]: n })} secrets={p.secrets} />;
    case 'nullable':
      return <SchemaControl {...p} schema={k.inner} value={p.value === null ? undefined : p.value} onChange={(v) => p.onChange(v === undefined ? (p.required ? null : undefined) : v)} />;
    case 'array':
      return <ArrayEditor {...p} items={k.items} />;
    case 'multi':
      return <MultiChoice {...p} options={k.options} />;
    case 'object':
      return <NestedObject {...p} />;
    case 'record':
      return <RecordEditor {...p} values={k.values} keyPattern={k.keyPattern} />;
    default:
      return <JsonValue {...p} />;
  }
}

function ArrayEditor(p: FieldProps & { items: JsonSchema }) {
  const list = Array.isArray(p.value) ? (p.value as unknown[]) : [];
  const label = p.ariaLabel ?? labelOf(p.name, p.schema);
  const itemLabel = labelOf(p.name, p.items) === labelOf(p.name, p.schema) ? label : labelOf(p.name, p.items);
  const set = (next: unknown[]) => p.onChange(next.length === 0 && !p.required ? undefined : next);
  const max = p.schema.maxItems ?? Infinity;
  const complex = ['object', 'array', 'record', 'json'].includes(classify(p.items).kind);
  return (
    <div className="schema-list">
      {list.length === 0 ? <p className="muted small">None.</p> : null}
      <ol className="schema-rows">
        {list.map((item, i) => (
          <li key={i} className="schema-row">
            {complex ? (
              <fieldset className="schema-row-control">
                <legend>
                  {itemLabel} {i + 1}
                </legend>
                <SchemaControl
                  name={p.name}
                  schema={p.items}
                  value={item}
                  required
                  secrets={p.secrets}
                  depth={p.depth + 1}
                  ariaLabel={`${itemLabel} ${i + 1}`}
                  onChange={(v) => set(list.map((x, j) => (j === i ? v : x)))}
                />
              </fieldset>
            ) : (
              <div className="schema-row-control">
                <SchemaControl
                  name={p.name}
                  schema={p.items}
                  value={item}
                  required
                  secrets={p.secrets}
                  depth={p.depth + 1}
                  ariaLabel={`${itemLabel} ${i + 1}`}
                  onChange={(v) => set(list.map((x, j) => (j === i ? v : x)))}
                />
              </div>
            )}
            <button type="button" aria-label={`Remove ${itemLabel} ${i + 1}`} onClick={() => set(list.filter((_, j) => j !== i))}>
              Remove
            </button>
          </li>
        ))}
      </ol>
      <button type="button" aria-label={`Add to ${label}`} disabled={list.length >= max} onClick={() => set([...list, initialValue(p.items) ?? (classify(p.items).kind === 'number' ? undefined : '')])}>
        Add
      </button>
    </div>
  );
}

function MultiChoice(p: FieldProps & { options: { value: Primitive; label: string }[] }) {
  const list = Array.isArray(p.value) ? (p.value as unknown[]) : [];
  return (
    <div className="checks" role="group" aria-label={p.ariaLabel ?? labelOf(p.name, p.schema)}>
      {p.options.map((o, i) => (
        <label key={i} className="check">
          <input
            type="checkbox"
            checked={list.includes(o.value)}
            onChange={(e) => {
              const next = e.target.checked ? [...list, o.value] : list.filter((x) => x !== o.value);
              // Keep the schema's order.
              const ordered = p.options.map((x) => x.value).filter((v) => next.includes(v));
              p.onChange(ordered.length === 0 && !p.required ? undefined : ordered);
            }}
          />
          {o.label}
        </label>
      ))}
    </div>
  );
}

function NestedObject(p: FieldProps) {
  const present = p.value !== undefined && p.value !== null && typeof p.value === 'object' && !Array.isArray(p.value);
  const obj = present ? (p.value as Record<string, unknown>) : {};
  if (p.depth > 8) return <JsonValue {...p} />;
  return (
    <>
      {p.required ? null : (
        <label className="field inline">
          <input type="checkbox" checked={present} onChange={(e) => p.onChange(e.target.checked ? (initialValue(p.schema) ?? {}) : undefined)} />
          <span>Set {(p.ariaLabel ?? labelOf(p.name, p.schema)).toLowerCase()}</span>
        </label>
      )}
      {present || p.required ? <ObjectFields schema={p.schema} value={obj} onChange={p.onChange} secrets={p.secrets} depth={p.depth} /> : null}
    </>
  );
}

type Row = { id: number; key: string; value: unknown };

/** A name → value map (such as environment variables): rows of name and value. */
function RecordEditor(p: FieldProps & { values: JsonSchema; keyPattern?: string | undefined }) {
  const nextId = useRef(0);
  const toRows = (v: unknown): Row[] =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.entries(v as Record<string, unknown>).map(([key, value]) => ({ id: nextId.current++, key, value })) : [];
  const [rows, setRows] = useState<Row[]>(() => toRows(p.value));
  const emitted = useRef<unknown>(p.value);
  useEffect(() => {
    if (p.value !== emitted.current) {
      emitted.current = p.value;
      setRows(toRows(p.value));
    }
    // toRows only reads a ref: the rows are re-read when the value changes from outside.
  }, [p.value]);
  const emit = (next: Row[]) => {
    setRows(next);
    const obj: Record<string, unknown> = {};
    for (const r of next) if (r.key) obj[r.key] = r.value;
    const out = Object.keys(obj).length === 0 && !p.required ? undefined : obj;
    emitted.current = out;
    p.onChange(out);
  };
  const label = p.ariaLabel ?? labelOf(p.name, p.schema);
  const pattern = p.keyPattern ? safeRegExp(p.keyPattern) : null;
  const seen = new Set<string>();
  const valueKind = classify(p.values);
  return (
    <div className="schema-list">
      {rows.length === 0 ? <p className="muted small">None.</p> : null}
      <ol className="schema-rows">
        {rows.map((r, i) => {
          const dup = r.key !== '' && seen.has(r.key);
          seen.add(r.key);
          const badKey = r.key !== '' && pattern && !pattern.test(r.key);
          const credential = CREDENTIAL_NAME.test(r.key) && typeof r.value === 'string' && r.value !== '';
          return (
            <li key={r.id} className="schema-row record">
              <input
                type="text"
                className="record-key"
                aria-label={`${label}: name ${i + 1}`}
                aria-invalid={dup || badKey ? true : undefined}
                placeholder="NAME"
                spellCheck={false}
                value={r.key}
                onChange={(e) => emit(rows.map((x) => (x.id === r.id ? { ...x, key: e.target.value } : x)))}
              />
              <div className="schema-row-control">
                <SchemaControl
                  name={r.key || 'value'}
                  schema={p.values}
                  value={r.value}
                  required
                  secrets={p.secrets}
                  depth={p.depth + 1}
                  ariaLabel={`${label}: value of ${r.key || `row ${i + 1}`}`}
                  onChange={(v) => emit(rows.map((x) => (x.id === r.id ? { ...x, value: v } : x)))}
                />
                {dup ? <small className="warn-text">This name is given twice; the last one counts.</small> : null}
                {badKey ? <small className="warn-text">A name must match {p.keyPattern}.</small> : null}
                {credential ? <small className="warn-text">A credential as a literal value is refused by the server; choose a secret.</small> : null}
              </div>
              <button type="button" aria-label={`Remove ${label} ${r.key || `row ${i + 1}`}`} onClick={() => emit(rows.filter((x) => x.id !== r.id))}>
                Remove
              </button>
            </li>
          );
        })}
      </ol>
      <button type="button" aria-label={`Add to ${label}`} onClick={() => emit([...rows, { id: nextId.current++, key: '', value: initialValue(p.values) ?? (valueKind.kind === 'string' ? '' : undefined) }])}>
        Add
      </button>
    </div>
  );
}

function safeRegExp(pattern: string): RegExp | null {
  try {
    return new RegExp(pattern);
  } catch {
    return null;
  }
}

/** A string setting that also takes a secret reference: typed text or a secret by name. */
function SecretOrTextField(p: FieldProps) {
  const id = useId();
  return (
    <div className="field" role="group" aria-labelledby={`${id}-label`}>
      <span className="field-label" id={`${id}-label`}>
        {labelText(p.name, p.schema, p.required)}
      </span>
      <SecretOrText {...p} ariaLabel={labelOf(p.name, p.schema)} />
      {hintOf(p.schema) ? <small className="hint">{hintOf(p.schema)}</small> : null}
    </div>
  );
}

function SecretOrText(p: FieldProps) {
  const ref = isSecretRef(p.value) ? p.value.$secret : null;
  const isRef = ref !== null;
  const label = p.ariaLabel ?? labelOf(p.name, p.schema);
  const credential = CREDENTIAL_NAME.test(p.name);
  return (
    <div className="secret-or-text">
      <select
        aria-label={`${label}: kind of value`}
        value={isRef ? 'secret' : 'text'}
        onChange={(e) => p.onChange(e.target.value === 'secret' ? { [SECRET_REF_KEY]: '' } : p.required ? '' : undefined)}
      >
        <option value="text">Text</option>
        <option value="secret">Secret</option>
      </select>
      {isRef ? (
        <SecretSelect aria-label={`${label}: secret`} value={ref ?? ''} onChange={(n) => p.onChange({ [SECRET_REF_KEY]: n })} secrets={p.secrets} />
      ) : (
        <>
          <input
            type="text"
            aria-label={label}
            spellCheck={false}
            value={typeof p.value === 'string' ? p.value : ''}
            maxLength={p.schema.maxLength}
            onChange={(e) => p.onChange(e.target.value === '' && !p.required ? undefined : e.target.value)}
          />
          {credential && typeof p.value === 'string' && p.value ? <small className="warn-text">A credential as a literal value is refused by the server; choose “Secret”.</small> : null}
        </>
      )}
    </div>
  );
}

/** Picks a stored secret by name; a name no longer stored stays visible as missing. */
export function SecretSelect({
  value,
  onChange,
  secrets,
  ...rest
}: {
  value: string;
  onChange: (name: string) => void;
  secrets: readonly SecretMeta[] | undefined;
  'aria-label'?: string;
  id?: string;
  'aria-describedby'?: string;
}) {
  const known = secrets ?? [];
  const missing = value !== '' && secrets !== undefined && !known.some((s) => s.name === value);
  return (
    <span className="secret-select">
      <select {...rest} value={value} required onChange={(e) => onChange(e.target.value)}>
        <option value="">{secrets === undefined ? 'Loading secrets…' : known.length ? 'Choose a secret…' : 'No secrets stored'}</option>
        {missing ? <option value={value}>{value} (missing)</option> : null}
        {known.map((s) => (
          <option key={s.name} value={s.name}>
            {s.name}
            {s.description ? ` — ${s.description}` : ''}
          </option>
        ))}
      </select>
      {secrets !== undefined && known.length === 0 ? (
        <small className="hint">
          <Link href="/secrets">Store a secret</Link> first.
        </small>
      ) : null}
    </span>
  );
}

/** A value the form cannot show as controls, edited as JSON. */
function JsonValue(p: FieldProps) {
  const [text, setText] = useState(() => (p.value === undefined ? '' : JSON.stringify(p.value, null, 2)));
  const [error, setError] = useState<string | null>(null);
  const emitted = useRef<unknown>(p.value);
  useEffect(() => {
    if (p.value !== emitted.current) {
      emitted.current = p.value;
      setText(p.value === undefined ? '' : JSON.stringify(p.value, null, 2));
      setError(null);
    }
  }, [p.value]);
  return (
    <>
      <textarea
        aria-label={p.ariaLabel ? `${p.ariaLabel} (JSON)` : `${labelOf(p.name, p.schema)} (JSON)`}
        aria-invalid={error ? true : undefined}
        rows={4}
        spellCheck={false}
        value={text}
        onChange={(e) => {
          setText(e.target.value);
          if (e.target.value.trim() === '') {
            setError(null);
            emitted.current = undefined;
            p.onChange(undefined);
            return;
          }
          try {
            const v: unknown = JSON.parse(e.target.value);
            setError(null);
            emitted.current = v;
            p.onChange(v);
          } catch (err) {
            setError(err instanceof Error ? err.message : 'not JSON');
          }
        }}
      />
      <small className={error ? 'warn-text' : 'hint'}>{error ? `Not valid JSON: ${error}` : 'Edited as JSON.'}</small>
    </>
  );
}
