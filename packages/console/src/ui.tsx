/**
 * The console's shared components. Pages build on these so that errors, progress, dialogs and
 * form fields look and behave the same everywhere (labels, keyboard, screen readers).
 */
import { cloneElement, createContext, isValidElement, useCallback, useContext, useEffect, useId, useRef, useState, type FormEvent, type KeyboardEvent, type ReactNode, type Ref } from 'react';
import { useQuery } from '@tanstack/react-query';
import { listGroups, PAGE_LIMIT_MAX, type GroupView, type TaskProgress } from '@garrison/protocol';
import { allPages, describeError } from './api.ts';
import { RUN_STATE_ORDER, formatAgo, formatTime } from './format.ts';

export function Page({ title, actions, children, subtitle }: { title: string; subtitle?: ReactNode; actions?: ReactNode; children: ReactNode }) {
  useEffect(() => {
    document.title = `${title} · Garrison`;
  }, [title]);
  return (
    <section className="page" aria-labelledby="page-title">
      <header className="page-header">
        <div>
          <h1 id="page-title">{title}</h1>
          {subtitle ? <p className="subtitle">{subtitle}</p> : null}
        </div>
        {actions ? <div className="actions">{actions}</div> : null}
      </header>
      {children}
    </section>
  );
}

export function Section({ title, actions, children }: { title: string; actions?: ReactNode; children: ReactNode }) {
  return (
    <section className="card" aria-label={title}>
      <header className="card-header">
        <h2>{title}</h2>
        {actions ? <div className="actions">{actions}</div> : null}
      </header>
      {children}
    </section>
  );
}

/** An API or network error, with its stable code, the issues the server listed and its request id. */
export function ErrorMessage({ error, onDismiss }: { error: unknown; onDismiss?: () => void }) {
  if (!error) return null;
  const d = describeError(error);
  return (
    <div className="error" role="alert">
      <p>
        <strong>{d.detail}</strong>
        {d.code ? <code className="code">{d.code}</code> : null}
      </p>
      <p className="muted">{d.title}</p>
      {d.issues?.length ? (
        <ul>
          {d.issues.map((i, n) => (
            <li key={n}>
              <code>{i.path}</code>: {i.message}
            </li>
          ))}
        </ul>
      ) : null}
      {d.requestId ? <p className="muted small">Request id {d.requestId}</p> : null}
      {onDismiss ? (
        <button type="button" className="link" onClick={onDismiss}>
          Dismiss
        </button>
      ) : null}
    </div>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p className="loading" role="status">
      {label}
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

/** Loading, error or the content, for one read. */
export function Async<T>({ q, children }: { q: { data: T | undefined; error: Error | null; isPending: boolean }; children: (data: T) => ReactNode }) {
  if (q.error && q.data === undefined) return <ErrorMessage error={q.error} />;
  if (q.data === undefined) return <Loading />;
  return <>{children(q.data)}</>;
}

export function StateBadge({ state, label }: { state: string; label?: string }) {
  return <span className={`badge state-${state}`}>{label ?? state.replaceAll('_', ' ')}</span>;
}

export function OnlineBadge({ online, lastContactAt }: { online: boolean; lastContactAt?: string | null }) {
  return (
    <span className={`badge ${online ? 'state-online' : 'state-offline'}`} title={lastContactAt ? `last contact ${formatTime(lastContactAt)}` : undefined}>
      {online ? 'online' : lastContactAt ? `offline · ${formatAgo(lastContactAt)}` : 'offline'}
    </span>
  );
}

/** The revision, creation and change times and id of a task or server task, as rows of a <dl>. */
export function DefinitionFacts({ definition: d }: { definition: { id: string; revision: number; createdAt: string; updatedAt: string } }) {
  return (
    <>
      <dt>Revision</dt>
      <dd>{d.revision}</dd>
      <dt>Created</dt>
      <dd>
        <Time iso={d.createdAt} />
      </dd>
      <dt>Changed</dt>
      <dd>
        <Time iso={d.updatedAt} />
      </dd>
      <dt>Id</dt>
      <dd>
        <code>{d.id}</code>
      </dd>
    </>
  );
}

export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span className="muted">—</span>;
  return (
    <time dateTime={iso} title={formatAgo(iso)}>
      {formatTime(iso)}
    </time>
  );
}

/** A task's targets by the state of their latest run, as one stacked bar with a legend. */
export function ProgressBar({ progress, compact }: { progress: Pick<TaskProgress, 'targets' | 'notRun' | 'states'>; compact?: boolean }) {
  const segments = RUN_STATE_ORDER.map((s) => ({ key: s.state, label: s.label, n: s.state === 'notRun' ? progress.notRun : (progress.states[s.state] ?? 0) }));
  return <StackedBar label="Progress" segments={segments} compact={compact} what="target devices" total={progress.targets} />;
}

/** A modal dialog on the native <dialog>: focus is trapped, Escape closes it. */
export function Dialog({ open, title, onClose, children, wide }: { open: boolean; title: string; onClose: () => void; children: ReactNode; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} className={wide ? 'wide' : ''} aria-labelledby={open ? 'dialog-title' : undefined} onClose={onClose} onCancel={onClose}>
      {open ? (
        <>
          <header className="dialog-header">
            <h2 id="dialog-title">{title}</h2>
            <button type="button" className="icon" aria-label="Close" onClick={onClose}>
              ×
            </button>
          </header>
          {children}
        </>
      ) : null}
    </dialog>
  );
}

/** A button that asks before doing something that cannot be undone. */
export function ConfirmButton({ label, question, confirmLabel, onConfirm, danger, disabled, ariaLabel }: { label: string; question: ReactNode; confirmLabel?: string; onConfirm: () => Promise<unknown> | void; danger?: boolean; disabled?: boolean; /** The trigger's name when `label` alone is ambiguous (one per table row). */ ariaLabel?: string }) {
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <>
      <button type="button" className={danger ? 'danger' : ''} disabled={disabled} aria-label={ariaLabel} onClick={() => setOpen(true)}>
        {label}
      </button>
      <Dialog open={open} title={label} onClose={() => setOpen(false)}>
        <div className="dialog-body">{question}</div>
        <ErrorMessage error={error} />
        <footer className="dialog-footer">
          <button type="button" onClick={() => setOpen(false)}>
            Cancel
          </button>
          <button
            type="button"
            className={danger ? 'danger' : 'primary'}
            disabled={busy}
            onClick={async () => {
              setBusy(true);
              setError(null);
              try {
                await onConfirm();
                setOpen(false);
              } catch (e) {
                setError(e);
              } finally {
                setBusy(false);
              }
            }}
          >
            {confirmLabel ?? label}
          </button>
        </footer>
      </Dialog>
    </>
  );
}

/**
 * A labelled form field: the label names the control (its accessible name is the label alone,
 * not the hint or a select's options) and the hint describes it.
 */
export function Field({ label, hint, children, inline, optional }: { label: ReactNode; hint?: ReactNode; children: ReactNode; inline?: boolean; optional?: boolean }) {
  const autoId = useId();
  const hintId = `${autoId}-hint`;
  const optionalId = `${autoId}-optional`;
  let controlId = autoId;
  let control = children;
  if (isValidElement<{ id?: string; 'aria-describedby'?: string }>(children)) {
    controlId = children.props.id ?? autoId;
    const describedBy = [optional ? optionalId : '', hint ? hintId : '', children.props['aria-describedby'] ?? ''].filter(Boolean).join(' ');
    control = cloneElement(children, { id: controlId, ...(describedBy ? { 'aria-describedby': describedBy } : {}) });
  }
  return (
    <div className={`field ${inline ? 'inline' : ''}`}>
      <span className="field-label">
        <label htmlFor={controlId}>{label}</label>
        {optional ? (
          <span className="muted optional" id={optionalId}>
            {' '}
            (optional)
          </span>
        ) : null}
      </span>
      {control}
      {hint ? (
        <small className="hint" id={hintId}>
          {hint}
        </small>
      ) : null}
    </div>
  );
}

/** The 6-digit code of an authenticator app (TOTP), in a labelled field: digits only, offered by password managers as a one-time code. */
export function OneTimeCodeField({ value, onChange, label = 'Authentication code', hint, inputRef, name = 'otp' }: { value: string; onChange: (code: string) => void; label?: string; hint?: ReactNode; inputRef?: Ref<HTMLInputElement>; name?: string }) {
  return (
    <Field label={label} hint={hint}>
      <input
        ref={inputRef}
        name={name}
        inputMode="numeric"
        autoComplete="one-time-code"
        pattern="[0-9]{6}"
        minLength={6}
        maxLength={6}
        size={8}
        value={value}
        onChange={(e) => onChange(e.target.value.replace(/\D/g, '').slice(0, 6))}
        required
      />
    </Field>
  );
}

/**
 * Previous and next of a keyset-paged list: `cursors` are those of the pages before the
 * current one (previous drops the last, next adds the answer's nextCursor). Nothing on a
 * list that fits one page.
 */
export function PageNav({ label, cursors, setCursors, nextCursor }: { label: string; cursors: readonly string[]; setCursors: (f: (c: string[]) => string[]) => void; nextCursor: string | null | undefined }) {
  if (cursors.length === 0 && !nextCursor) return null;
  return (
    <nav className="toolbar" aria-label={label}>
      <button type="button" disabled={cursors.length === 0} onClick={() => setCursors((c) => c.slice(0, -1))}>
        Previous page
      </button>
      <button type="button" disabled={!nextCursor} onClick={() => nextCursor && setCursors((c) => [...c, nextCursor])}>
        Next page
      </button>
    </nav>
  );
}

/** The group tree as a select, each group by its path. */
export function GroupSelect({ value, onChange, label = 'Group', allowEmpty, emptyLabel = 'All groups', required }: { value: string; onChange: (id: string) => void; label?: string; allowEmpty?: boolean; emptyLabel?: string; required?: boolean }) {
  const groups = useGroups();
  return (
    <Field label={label}>
      <select value={value} onChange={(e) => onChange(e.target.value)} required={required}>
        {allowEmpty || !value ? <option value="">{allowEmpty ? emptyLabel : 'Choose a group…'}</option> : null}
        {(groups.data ?? []).map((g) => (
          <option key={g.id} value={g.id}>
            {g.path}
          </option>
        ))}
      </select>
    </Field>
  );
}

/** Every group the caller may see, sorted by path (every page of listGroups: a tree is small next to its devices). */
export function useGroups({ enabled = true }: { enabled?: boolean } = {}) {
  return useQuery<GroupView[], Error, GroupView[], string[]>({
    queryKey: ['/groups'],
    queryFn: ({ signal }) => allPages(listGroups, { query: { limit: PAGE_LIMIT_MAX } }, { signal }),
    staleTime: 10_000,
    enabled,
  });
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
          setDone(true);
          setTimeout(() => setDone(false), 1500);
        } catch {
          /* clipboard refused (not a secure context): the text stays selectable */
        }
      }}
    >
      {done ? 'Copied' : label}
    </button>
  );
}

type Toast = { id: number; text: string; kind: 'ok' | 'error' };
const ToastContext = createContext<(text: string, kind?: Toast['kind']) => void>(() => {});
export const useToast = () => useContext(ToastContext);

/** Short confirmations ("Task run on 3 devices") read out by screen readers. */
export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const push = useCallback((text: string, kind: Toast['kind'] = 'ok') => {
    const id = Date.now() + Math.random();
    setToasts((t) => [...t.slice(-3), { id, text, kind }]);
    setTimeout(() => setToasts((t) => t.filter((x) => x.id !== id)), 6000);
  }, []);
  return (
    <ToastContext.Provider value={push}>
      {children}
      <div className="toasts" role="status" aria-live="polite">
        {toasts.map((t) => (
          <p key={t.id} className={`toast ${t.kind}`}>
            {t.text}
          </p>
        ))}
      </div>
    </ToastContext.Provider>
  );
}

/** Runs an async action with a busy flag and keeps its error for display. */
export function useBusy() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = useCallback(async <T,>(fn: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, setError, run };
}

/** Counts by state as one stacked bar with a legend; the colours are the state-* classes. */
export function StackedBar({ segments, label, compact, what = 'items', total: given }: { segments: { key: string; label: string; n: number }[]; label: string; compact?: boolean; what?: string; total?: number }) {
  const shown = segments.filter((s) => s.n > 0);
  const total = Math.max(given ?? 0, shown.reduce((a, s) => a + s.n, 0));
  const text = total === 0 ? `no ${what}` : `${shown.map((s) => `${s.label} ${s.n}`).join(', ')} of ${total} ${what}`;
  return (
    <div className={`progress ${compact ? 'compact' : ''}`}>
      <div className="progress-bar" role="img" aria-label={`${label}: ${text}`}>
        {shown.map((s) => (
          <span key={s.key} className={`seg state-${s.key}`} style={{ width: `${(100 * s.n) / Math.max(total, 1)}%` }} />
        ))}
      </div>
      {compact ? null : (
        <ul className="legend" aria-hidden="true">
          {shown.map((s) => (
            <li key={s.key}>
              <span className={`dot state-${s.key}`} />
              {s.label} <strong>{s.n.toLocaleString()}</strong>
            </li>
          ))}
          {total === 0 ? <li className="muted">no {what}</li> : null}
        </ul>
      )}
    </div>
  );
}

/** A row of tabs (arrow keys move between them); the page renders the panel with `tabPanelProps`. */
export function Tabs<T extends string>({ tabs, value, onChange, label, idBase }: { tabs: { id: T; label: ReactNode }[]; value: T; onChange: (id: T) => void; label: string; idBase: string }) {
  const refs = useRef<(HTMLButtonElement | null)[]>([]);
  const onKey = (e: KeyboardEvent, i: number) => {
    const delta = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    const to = e.key === 'Home' ? 0 : e.key === 'End' ? tabs.length - 1 : delta ? (i + delta + tabs.length) % tabs.length : -1;
    if (to < 0) return;
    e.preventDefault();
    onChange(tabs[to]!.id);
    refs.current[to]?.focus();
  };
  return (
    <div className="tabs" role="tablist" aria-label={label}>
      {tabs.map((t, i) => (
        <button
          key={t.id}
          ref={(el) => {
            refs.current[i] = el;
          }}
          type="button"
          role="tab"
          id={`${idBase}-tab-${t.id}`}
          aria-selected={t.id === value}
          aria-controls={`${idBase}-panel`}
          tabIndex={t.id === value ? 0 : -1}
          onClick={() => onChange(t.id)}
          onKeyDown={(e) => onKey(e, i)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

export function tabPanelProps(idBase: string, value: string) {
  return { role: 'tabpanel', id: `${idBase}-panel`, 'aria-labelledby': `${idBase}-tab-${value}` } as const;
}

/**
 * The form inside a dialog: its fields, the error of the last attempt, then Cancel and the
 * submit button.
 */
export function DialogForm({ onSubmit, onCancel, submitLabel, disabled, error, onDismissError, children }: { onSubmit: (e: FormEvent<HTMLFormElement>) => unknown; onCancel: () => void; submitLabel: ReactNode; disabled?: boolean; error: unknown; onDismissError?: () => void; children: ReactNode }) {
  return (
    <form onSubmit={onSubmit}>
      <div className="dialog-body">{children}</div>
      <ErrorMessage error={error} {...(onDismissError ? { onDismiss: onDismissError } : {})} />
      <footer className="dialog-footer">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="submit" className="primary" disabled={disabled}>
          {submitLabel}
        </button>
      </footer>
    </form>
  );
}
