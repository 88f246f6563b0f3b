/**
 * A task's settings in its edit form: the form generated from the type's schema, or the
 * settings object as JSON (always for a schema the form cannot show), and a warning when a
 * credential is written as a literal value. The client and server task forms share it; the
 * form remounts it (a `key`) when the task type changes.
 */
import { useState } from 'react';
import { Link } from 'wouter';
import { listSecrets } from '@garrison/protocol';
import { useAllPages } from '../admin/common.tsx';
import { Section } from '../ui.tsx';
import { Labeled } from './controls.tsx';
import { SchemaForm } from './SchemaForm.tsx';
import { credentialLiterals } from './model.ts';
import { isFormable, type JsonSchema } from './schema.ts';
import './tasks.css';

export function SettingsEditor({
  schema,
  value,
  onChange,
  onJsonError,
  onProblem,
}: {
  schema: JsonSchema | undefined;
  value: Record<string, unknown>;
  onChange: (v: Record<string, unknown>) => void;
  /** Whether the JSON text is valid (null) or what is wrong with it: the form does not save invalid JSON. */
  onJsonError: (error: string | null) => void;
  /** A message for the form's error area (null clears it). */
  onProblem: (message: string | null) => void;
}) {
  const formable = isFormable(schema);
  const [json, setJson] = useState<{ text: string; error: string | null } | null>(formable ? null : { text: JSON.stringify(value, null, 2), error: null });
  const secrets = useAllPages(listSecrets, { staleTime: 30_000 });
  const literals = credentialLiterals(value);
  const setJsonText = (next: { text: string; error: string | null } | null) => {
    setJson(next);
    onJsonError(next?.error ?? null);
  };

  return (
    <Section
      title="Settings"
      actions={
        formable ? (
          <button
            type="button"
            aria-pressed={json !== null}
            onClick={() => {
              if (json === null) return setJsonText({ text: JSON.stringify(value, null, 2), error: null });
              if (json.error) return onProblem('The settings are not valid JSON; correct them to go back to the form.');
              onProblem(null);
              setJsonText(null);
            }}
          >
            {json === null ? 'Edit as JSON' : 'Edit as form'}
          </button>
        ) : null
      }
    >
      {json !== null ? (
        <>
          <Labeled label="Settings (JSON)" hint={formable ? 'The settings object as the API takes it; secret references are written {"$secret": "name"}.' : 'This task type’s settings cannot be shown as a form; edit them as JSON. Secret references are written {"$secret": "name"}.'}>
            <textarea
              rows={16}
              spellCheck={false}
              aria-invalid={json.error ? true : undefined}
              value={json.text}
              onChange={(e) => {
                const text = e.target.value;
                try {
                  const v: unknown = JSON.parse(text);
                  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('the settings must be a JSON object');
                  onChange(v as Record<string, unknown>);
                  setJsonText({ text, error: null });
                } catch (err) {
                  setJsonText({ text, error: err instanceof Error ? err.message : 'not JSON' });
                }
              }}
            />
          </Labeled>
          {json.error ? <p className="warn-text">Not valid: {json.error}</p> : null}
          {schema ? (
            <details>
              <summary>Settings schema</summary>
              <pre>{JSON.stringify(schema, null, 2)}</pre>
            </details>
          ) : null}
        </>
      ) : schema ? (
        <SchemaForm schema={schema} value={value} onChange={onChange} secrets={secrets.data} />
      ) : null}
      {literals.length ? (
        <p className="notice" role="status">
          The server refuses credentials written as literal values ({literals.join(', ')}). Store them on the <Link href="/secrets">Secrets</Link> page and choose them as secrets.
        </p>
      ) : null}
    </Section>
  );
}
