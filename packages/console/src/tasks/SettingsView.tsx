/** A task's settings, read-only: labels from the schema, secret references by name. */
import { Fragment, type ReactNode } from 'react';
import { isSecretRef } from '@garrison/protocol';
import { isLongText, labelOf, type JsonSchema } from './schema.ts';
import './tasks.css';

export function SettingsView({ settings, schema }: { settings: Record<string, unknown>; schema?: JsonSchema | undefined }) {
  const entries = Object.entries(settings);
  if (entries.length === 0) return <p className="muted">No settings.</p>;
  return (
    <div className="settings-view">
      <ValueView value={settings} schema={schema} name="" />
    </div>
  );
}

function subSchema(schema: JsonSchema | undefined, key: string): JsonSchema | undefined {
  if (!schema) return undefined;
  const direct = schema.properties?.[key];
  if (direct) return direct;
  if (schema.patternProperties) return Object.values(schema.patternProperties)[0];
  if (typeof schema.additionalProperties === 'object') return schema.additionalProperties;
  return undefined;
}

function ValueView({ value, schema, name }: { value: unknown; schema: JsonSchema | undefined; name: string }): ReactNode {
  if (isSecretRef(value))
    return (
      <span className="secret-ref" title="A secret reference: the value is given only to the agent that runs the task">
        <span className="badge">secret</span> <strong>{value.$secret}</strong>
      </span>
    );
  if (value === null || value === undefined) return <span className="muted">—</span>;
  if (typeof value === 'string') {
    if (value === '') return <span className="muted">(empty)</span>;
    return isLongText(name, schema ?? {}, value) ? <pre>{value}</pre> : <code>{value}</code>;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return <code>{String(value)}</code>;
  if (Array.isArray(value)) {
    if (value.length === 0) return <span className="muted">(none)</span>;
    const items = !schema?.items || Array.isArray(schema.items) ? undefined : schema.items;
    if (value.every((v) => typeof v !== 'object' || v === null || isSecretRef(v)) && value.length <= 20 && value.every((v) => typeof v !== 'string' || !v.includes('\n')))
      return (
        <ul className="inline-list">
          {value.map((v, i) => (
            <li key={i}>
              <ValueView value={v} schema={items} name={name} />
            </li>
          ))}
        </ul>
      );
    return (
      <ol>
        {value.map((v, i) => (
          <li key={i}>
            <ValueView value={v} schema={items} name={name} />
          </li>
        ))}
      </ol>
    );
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) return <span className="muted">(empty)</span>;
    const isRecord = !!schema && !schema.properties && (!!schema.patternProperties || typeof schema.additionalProperties === 'object');
    return (
      <dl className="props">
        {entries.map(([k, v]) => {
          const sub = subSchema(schema, k);
          return (
            <Fragment key={k}>
              <dt>{isRecord || !sub ? <code>{k}</code> : labelOf(k, sub)}</dt>
              <dd>
                <ValueView value={v} schema={sub} name={k} />
              </dd>
            </Fragment>
          );
        })}
      </dl>
    );
  }
  return <code>{JSON.stringify(value)}</code>;
}
