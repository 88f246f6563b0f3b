/** Small controls the task forms share: labelled fields, numbers, comma-separated lists, a debounced value. */
import { cloneElement, useEffect, useId, useState, type InputHTMLAttributes, type ReactElement, type ReactNode } from 'react';

/**
 * A form field whose label names only the control: the label points at the control (for/id)
 * rather than wrapping it, and the hint and "optional" mark describe it (aria-describedby).
 * So the accessible name is exactly the label ("Command", "Group"), never the label plus a
 * hint or a select's options, and getByLabel(…, { exact: true }) finds it.
 */
export function Labeled({
  label,
  hint,
  optional,
  inline,
  children,
}: {
  label: ReactNode;
  hint?: ReactNode;
  optional?: boolean;
  inline?: boolean;
  children: ReactElement<{ id?: string; 'aria-describedby'?: string }>;
}) {
  const id = useId();
  const describedBy = [optional ? `${id}-optional` : '', hint ? `${id}-hint` : ''].filter(Boolean).join(' ');
  const control = cloneElement(children, { id, ...(describedBy ? { 'aria-describedby': describedBy } : {}) });
  return (
    <div className={`field ${inline ? 'inline' : ''}`}>
      <span className="field-label">
        <label htmlFor={id}>{label}</label>
        {optional ? (
          <span className="muted optional" id={`${id}-optional`}>
            {' '}
            (optional)
          </span>
        ) : null}
      </span>
      {control}
      {hint ? (
        <small className="hint" id={`${id}-hint`}>
          {hint}
        </small>
      ) : null}
    </div>
  );
}

/** A number field whose value is a number or undefined (empty). */
export function NumberInput({
  value,
  onChange,
  integer,
  ...rest
}: { value: number | undefined; onChange: (v: number | undefined) => void; integer?: boolean } & Omit<InputHTMLAttributes<HTMLInputElement>, 'value' | 'onChange' | 'type'>) {
  return (
    <input
      type="number"
      inputMode={integer ? 'numeric' : 'decimal'}
      step={integer ? 1 : 'any'}
      {...rest}
      value={value === undefined || Number.isNaN(value) ? '' : value}
      onChange={(e) => {
        const raw = e.target.value;
        if (raw.trim() === '') return onChange(undefined);
        const n = Number(raw);
        if (Number.isFinite(n)) onChange(n);
      }}
    />
  );
}

export function parseList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * A comma-separated list in one text field. The text typed is kept as typed (a trailing
 * comma stays) and re-read from the value only when the value changes from outside.
 */
export function ListInput({
  value,
  onChange,
  ...rest
}: { value: readonly string[]; onChange: (v: string[]) => void } & Omit<InputHTMLAttributes<HTMLInputElement>, 'value' | 'onChange'>) {
  const [text, setText] = useState(value.join(', '));
  const joined = value.join('\u0000');
  useEffect(() => {
    setText((t) => (parseList(t).join('\u0000') === joined ? t : joined.split('\u0000').filter(Boolean).join(', ')));
  }, [joined]);
  return (
    <input
      type="text"
      {...rest}
      value={text}
      onChange={(e) => {
        setText(e.target.value);
        onChange(parseList(e.target.value));
      }}
    />
  );
}

/** The value, once it has stopped changing for `ms`. */
export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}
