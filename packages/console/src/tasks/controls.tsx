/** Small controls the task forms share: labelled fields, numbers, comma-separated lists, a debounced value. */
import { useEffect, useState, type InputHTMLAttributes } from 'react';

/** Field of ui.tsx under the name the task pages use. */
export { Field as Labeled } from '../ui.tsx';

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
