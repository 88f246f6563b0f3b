/**
 * The event log (issue 16): filters kept in the page's URL (back, forward and reload keep
 * them; a link can carry them), pick lists for device and task (searched by name) and kind
 * (the kinds the log holds), relative time presets, named saved selections (the built-in
 * ones first, like KSC's predefined event selections), newest first with "Load more", an
 * event's detail with every field and links to its device, task and run, and export of
 * everything the filters match as CSV or JSON lines. New events appear as they are stored
 * (the live feed refreshes /events).
 */
import { useMemo, useState, type FormEvent, type ReactNode } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import {
  createSavedSelection,
  deleteSavedSelection,
  EVENT_EXPORT_MAX,
  getDevice,
  getTask,
  listDevices,
  listEventKinds,
  listEvents,
  listSavedSelections,
  listTasks,
  PAGE_LIMIT_MAX,
  type EventListQuery,
  type EventView,
  type SavedSelection,
} from '@garrison/protocol';
import { allPages, call, download, qs, useOp } from '../api.ts';
import { Async, ConfirmButton, Dialog, DialogForm, Empty, ErrorMessage, Field, GroupSelect, Page, Section, StateBadge, Time, useBusy, useToast } from '../ui.tsx';
import './events.css';

const PAGE = 100;
/** The URL's filter parameters: the same names as the API's query, plus `range` for a relative time. */
const FILTER_KEYS = ['severity', 'kind', 'product', 'groupId', 'deviceId', 'taskId', 'runId', 'range', 'since', 'until'] as const;
type FilterKey = (typeof FILTER_KEYS)[number];
type Filters = Partial<Record<FilterKey, string>>;
export const RANGES: { value: string; label: string; ms: number }[] = [
  { value: '1h', label: 'Last hour', ms: 3600_000 },
  { value: '24h', label: 'Last 24 hours', ms: 86400_000 },
  { value: '7d', label: 'Last 7 days', ms: 7 * 86400_000 },
  { value: '30d', label: 'Last 30 days', ms: 30 * 86400_000 },
];

function filtersOf(search: string): Filters {
  const p = new URLSearchParams(search);
  const out: Filters = {};
  for (const k of FILTER_KEYS) {
    const v = p.get(k);
    if (v) out[k] = v;
  }
  return out;
}
function toSearch(f: Filters): string {
  const p = new URLSearchParams();
  for (const k of FILTER_KEYS) if (f[k]) p.set(k, f[k]!);
  const s = p.toString();
  return s ? `?${s}` : '';
}
function toIso(local: string | undefined): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}
/** An ISO time as a datetime-local input's value (local time, minutes). */
function toLocal(iso: string | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** The API query of the URL's filters; a relative range is measured back from `now`. */
function apiQuery(f: Filters, now: number): Omit<EventListQuery, 'cursor' | 'limit' | 'format'> {
  const range = RANGES.find((r) => r.value === f.range);
  const since = range ? new Date(now - range.ms).toISOString() : toIso(f.since);
  const until = range ? undefined : toIso(f.until);
  return {
    ...(f.severity === 'info' || f.severity === 'warning' || f.severity === 'error' ? { severity: f.severity } : {}),
    ...(f.kind ? { kind: f.kind } : {}),
    ...(f.product ? { product: f.product } : {}),
    ...(f.groupId ? { groupId: f.groupId } : {}),
    ...(f.deviceId ? { deviceId: f.deviceId } : {}),
    ...(f.taskId ? { taskId: f.taskId } : {}),
    ...(f.runId ? { runId: f.runId } : {}),
    ...(since ? { since } : {}),
    ...(until ? { until } : {}),
  };
}

export function Events() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const filters = useMemo(() => filtersOf(search), [search]);
  // A relative range is anchored when the filters change (or on Refresh), so that the read's key stays put between renders.
  const [anchor, setAnchor] = useState(() => ({ search, now: Date.now() }));
  const now = anchor.search === search ? anchor.now : Date.now();
  if (anchor.search !== search) setAnchor({ search, now });
  const query = useMemo(() => apiQuery(filters, now), [filters, now]);
  const setFilters = (next: Filters, opts: { replace?: boolean } = {}) => navigate(`/events${toSearch(next)}`, opts);
  const set = (k: FilterKey, v: string) => setFilters({ ...filters, [k]: v || undefined });

  const key = `/events${qs(query)}`;
  const events = useInfiniteQuery({
    queryKey: [key],
    queryFn: ({ pageParam, signal }) => call(listEvents, { query: { ...query, limit: PAGE, ...(pageParam ? { cursor: pageParam } : {}) } }, { signal }),
    initialPageParam: '',
    getNextPageParam: (last) => last.nextCursor ?? undefined,
    placeholderData: (p) => p,
  });
  const [detail, setDetail] = useState<EventView | null>(null);
  const exporting = useBusy();
  const exportAs = (format: 'csv' | 'jsonl') => exporting.run(() => download(`/events${qs({ ...query, format })}`, `garrison-events.${format}`));
  const list = events.data?.pages.flatMap((p) => p.items) ?? [];

  return (
    <Page
      title="Event log"
      actions={
        <>
          <button type="button" disabled={exporting.busy} onClick={() => exportAs('csv')} title={`Every event the filters match, at most ${EVENT_EXPORT_MAX.toLocaleString()}`}>
            Export CSV
          </button>
          <button type="button" disabled={exporting.busy} onClick={() => exportAs('jsonl')}>
            Export JSON lines
          </button>
        </>
      }
    >
      <ErrorMessage error={exporting.error} />
      <Selections filters={filters} onApply={(f) => setFilters(f)} />
      <Section title="Filters">
        <form className="toolbar" role="search" aria-label="Event filters" onSubmit={(e) => e.preventDefault()}>
          <Field label="Time">
            <select value={filters.range ?? (filters.since || filters.until ? 'custom' : '')} onChange={(e) => setFilters({ ...filters, range: e.target.value === 'custom' || !e.target.value ? undefined : e.target.value, ...(e.target.value === 'custom' ? {} : { since: undefined, until: undefined }), ...(e.target.value === 'custom' && !filters.since ? { since: new Date(now - 86400_000).toISOString() } : {}) })}>
              <option value="">Any time</option>
              {RANGES.map((r) => (
                <option key={r.value} value={r.value}>
                  {r.label}
                </option>
              ))}
              <option value="custom">Custom…</option>
            </select>
          </Field>
          {!filters.range && (filters.since || filters.until) ? (
            <>
              <Field label="From">
                <input type="datetime-local" value={toLocal(filters.since)} onChange={(e) => set('since', toIso(e.target.value) ?? '')} />
              </Field>
              <Field label="To">
                <input type="datetime-local" value={toLocal(filters.until)} onChange={(e) => set('until', toIso(e.target.value) ?? '')} />
              </Field>
            </>
          ) : null}
          <Field label="Severity">
            <select value={filters.severity ?? ''} onChange={(e) => set('severity', e.target.value)}>
              <option value="">All</option>
              <option value="info">Info and above</option>
              <option value="warning">Warnings and errors</option>
              <option value="error">Errors</option>
            </select>
          </Field>
          <KindPicker value={filters.kind ?? ''} onChange={(v) => set('kind', v)} />
          <GroupSelect label="Group" value={filters.groupId ?? ''} allowEmpty emptyLabel="All groups" onChange={(v) => set('groupId', v)} />
          <DevicePicker value={filters.deviceId ?? ''} onChange={(v) => set('deviceId', v)} />
          <TaskPicker value={filters.taskId ?? ''} onChange={(v) => set('taskId', v)} />
          <TextFilter label="Product" value={filters.product ?? ''} onChange={(v) => set('product', v)} />
          {filters.runId ? (
            <Field label="Run">
              <span className="mono small">{filters.runId}</span>{' '}
              <button type="button" className="link" onClick={() => set('runId', '')} aria-label="Clear the run filter">
                Clear
              </button>
            </Field>
          ) : null}
          {Object.keys(filters).length ? (
            <button type="button" onClick={() => setFilters({})}>
              Clear filters
            </button>
          ) : null}
        </form>
      </Section>
      <Section
        title="Events"
        actions={
          <button type="button" onClick={() => setAnchor({ search, now: Date.now() })} disabled={events.isFetching}>
            Refresh
          </button>
        }
      >
        <Async q={{ data: events.data, error: events.error, isPending: events.isPending }}>
          {() => (
            <>
              {list.length === 0 ? <Empty>No events match.</Empty> : <EventList events={list} onOpen={setDetail} />}
              <div className="toolbar">
                <span className="muted small" aria-live="polite">
                  {list.length} event{list.length === 1 ? '' : 's'} shown{events.hasNextPage ? ', more are older' : ''}
                </span>
                {events.hasNextPage ? (
                  <button type="button" disabled={events.isFetchingNextPage} onClick={() => void events.fetchNextPage()}>
                    {events.isFetchingNextPage ? 'Loading…' : 'Load more'}
                  </button>
                ) : null}
              </div>
            </>
          )}
        </Async>
      </Section>
      <EventDetail event={detail} onClose={() => setDetail(null)} onFilter={(f) => {
        setDetail(null);
        setFilters(f);
      }} />
    </Page>
  );
}

function EventList({ events, onOpen }: { events: EventView[]; onOpen: (e: EventView) => void }) {
  return (
    <div className="table-wrap">
      <table>
        <thead>
          <tr>
            <th>Time</th>
            <th>Severity</th>
            <th>Kind</th>
            <th>Device</th>
            <th>Task</th>
            <th>Message</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr key={e.id}>
              <td className="nowrap">
                <button type="button" className="link" onClick={() => onOpen(e)}>
                  <Time iso={e.time} />
                  <span className="sr-only"> details of event {e.id}</span>
                </button>
              </td>
              <td>
                <StateBadge state={e.severity} />
              </td>
              <td className="mono small">{e.kind}</td>
              <td>{e.deviceId ? <Link href={`/devices/${encodeURIComponent(e.deviceId)}`}>{e.deviceName ?? e.deviceId}</Link> : null}</td>
              <td>{e.taskId ? <Link href={`/tasks/${encodeURIComponent(e.taskId)}`}>{e.taskName ?? e.taskId}</Link> : null}</td>
              <td>
                {e.message}
                {e.actor ? <span className="muted small"> · by {e.actor}</span> : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Every field of one event, its data, and links to what it is about. */
function EventDetail({ event: e, onClose, onFilter }: { event: EventView | null; onClose: () => void; onFilter: (f: Filters) => void }) {
  const rows: [string, ReactNode][] = e
    ? [
        ['Id', <span className="mono">{e.id}</span>],
        ['Time', <Time iso={e.time} />],
        ['Severity', <StateBadge state={e.severity} />],
        ['Kind', <span className="mono">{e.kind}</span>],
        ['Message', e.message],
        ['Device', e.deviceId ? <Link href={`/devices/${encodeURIComponent(e.deviceId)}`}>{e.deviceName ?? e.deviceId}</Link> : '—'],
        ['Task', e.taskId ? <Link href={`/tasks/${encodeURIComponent(e.taskId)}`}>{e.taskName ?? e.taskId}</Link> : '—'],
        ['Run', e.runId ? <button type="button" className="link" onClick={() => onFilter({ runId: e.runId! })}>Events of run {e.runId}</button> : '—'],
        ['Group', e.groupId ?? '—'],
        ['Product', e.product ?? '—'],
        ['Actor', e.actor ?? '—'],
        ['Administrator id', e.actorId ?? '—'],
        ['Via', e.via ?? '—'],
        ['Address', e.address ?? '—'],
      ]
    : [];
  return (
    <Dialog open={e !== null} title={e ? `Event ${e.id}` : 'Event'} onClose={onClose} wide>
      {e ? (
        <div className="dialog-body">
          <dl className="details">
            {rows.map(([k, v]) => (
              <div key={k}>
                <dt>{k}</dt>
                <dd>{v}</dd>
              </div>
            ))}
          </dl>
          <h3>Data</h3>
          {e.data && Object.keys(e.data).length ? <pre className="mono small" aria-label="Event data">{JSON.stringify(e.data, null, 2)}</pre> : <p className="muted">No data.</p>}
          <div className="toolbar">
            <button type="button" onClick={() => onFilter({ kind: e.kind })}>
              Events of this kind
            </button>
            {e.deviceId ? (
              <button type="button" onClick={() => onFilter({ deviceId: e.deviceId! })}>
                Events of this device
              </button>
            ) : null}
          </div>
        </div>
      ) : null}
    </Dialog>
  );
}

/** A text filter applied on Enter or when leaving the field (not at every keystroke). */
function TextFilter({ label, value, onChange, list, hint }: { label: string; value: string; onChange: (v: string) => void; list?: string; hint?: string }) {
  const [draft, setDraft] = useState<string | null>(null);
  const commit = () => {
    if (draft !== null && draft.trim() !== value) onChange(draft.trim());
    setDraft(null);
  };
  return (
    <Field label={label} {...(hint ? { hint } : {})}>
      <input
        value={draft ?? value}
        {...(list ? { list } : {})}
        onChange={(e) => setDraft(e.target.value)}
        onBlur={commit}
        onKeyDown={(e) => {
          if (e.key === 'Enter') {
            e.preventDefault();
            commit();
          }
        }}
      />
    </Field>
  );
}

/** The kinds the log holds, to pick from (typing searches them); patterns with * and comma lists can be typed too. */
function KindPicker({ value, onChange }: { value: string; onChange: (v: string) => void }) {
  const kinds = useQuery({ queryKey: ['/event-kinds'], queryFn: ({ signal }) => allPages(listEventKinds, { query: { limit: PAGE_LIMIT_MAX } }, { signal }), staleTime: 60_000 });
  return (
    <>
      <TextFilter label="Kind" value={value} onChange={onChange} list="event-kinds" hint="pick or type; * matches anything, commas separate" />
      <datalist id="event-kinds">
        {(kinds.data ?? []).map((k) => (
          <option key={k} value={k} />
        ))}
      </datalist>
    </>
  );
}

/** A device or task chosen by name: a search box and its matches, or the chosen one with Clear. */
function NamePicker({ label, value, name, matches, search, setSearch, onChange }: { label: string; value: string; name: string | undefined; matches: { id: string; name: string; detail?: string }[] | undefined; search: string; setSearch: (s: string) => void; onChange: (id: string) => void }) {
  if (value) {
    return (
      <Field label={label}>
        <span>
          <strong>{name ?? value}</strong>{' '}
          <button type="button" className="link" onClick={() => onChange('')} aria-label={`Clear the ${label.toLowerCase()} filter`}>
            Clear
          </button>
        </span>
      </Field>
    );
  }
  return (
    <Field label={label}>
      <span className="picker">
        <input type="search" value={search} placeholder="Search by name" aria-label={`${label}: search by name`} onChange={(e) => setSearch(e.target.value)} />
        {search.trim() && matches ? (
          <ul className="picker-matches" aria-label={`Matching ${label.toLowerCase()}s`}>
            {matches.length === 0 ? <li className="muted small">none match</li> : null}
            {matches.map((m) => (
              <li key={m.id}>
                <button
                  type="button"
                  className="link"
                  onClick={() => {
                    setSearch('');
                    onChange(m.id);
                  }}
                >
                  {m.name}
                  {m.detail ? <span className="muted small"> {m.detail}</span> : null}
                </button>
              </li>
            ))}
          </ul>
        ) : null}
      </span>
    </Field>
  );
}

function DevicePicker({ value, onChange }: { value: string; onChange: (id: string) => void }) {
  const [search, setSearch] = useState('');
  const chosen = useOp(getDevice, value ? { params: { id: value } } : null, { retry: false, staleTime: 60_000 });
  const found = useOp(listDevices, search.trim() && !value ? { query: { search: search.trim(), limit: 10 } } : null, { placeholderData: (p) => p });
  return <NamePicker label="Device" value={value} name={chosen.data?.name} matches={found.data?.items.map((d) => ({ id: d.id, name: d.name, detail: d.hostname !== d.name ? d.hostname : d.groupPath }))} search={search} setSearch={setSearch} onChange={onChange} />;
}

function TaskPicker({ value, onChange }: { value: string; onChange: (id: string) => void }) {
  const [search, setSearch] = useState('');
  const chosen = useOp(getTask, value ? { params: { id: value } } : null, { retry: false, staleTime: 60_000 });
  const found = useOp(listTasks, search.trim() && !value ? { query: { search: search.trim(), limit: 10 } } : null, { placeholderData: (p) => p });
  return <NamePicker label="Task" value={value} name={chosen.data?.name} matches={found.data?.items.map((t) => ({ id: t.id, name: t.name }))} search={search} setSearch={setSearch} onChange={onChange} />;
}

/** The saved selections of the event log: the built-in ones first, then the caller's own (save, apply, delete). */
function Selections({ filters, onApply }: { filters: Filters; onApply: (f: Filters) => void }) {
  const selections = useQuery({ queryKey: ['/saved-selections?page=events'], queryFn: ({ signal }) => allPages(listSavedSelections, { query: { page: 'events', limit: PAGE_LIMIT_MAX } }, { signal }) });
  const [saving, setSaving] = useState(false);
  const toast = useToast();
  const current = toSearch(filters);
  const apply = (s: SavedSelection) => onApply(filtersOf(new URLSearchParams(s.query).toString()));
  return (
    <Section
      title="Selections"
      actions={
        <button type="button" onClick={() => setSaving(true)} disabled={!current}>
          Save the current filters…
        </button>
      }
    >
      <Async q={selections}>
        {(list) => (
          <ul className="chips" aria-label="Saved selections">
            {list.map((s) => {
              const active = toSearch(filtersOf(new URLSearchParams(s.query).toString())) === current;
              return (
                <li key={s.id}>
                  <button type="button" aria-pressed={active} onClick={() => apply(s)}>
                    {s.name}
                  </button>
                  {s.builtIn ? null : (
                    <ConfirmButton
                      label="×"
                      ariaLabel={`Delete the selection ${s.name}`}
                      danger
                      confirmLabel="Delete"
                      question={<p>Delete the saved selection “{s.name}”?</p>}
                      onConfirm={async () => {
                        await call(deleteSavedSelection, { params: { id: s.id } });
                        toast(`Selection “${s.name}” deleted`);
                        await selections.refetch();
                      }}
                    />
                  )}
                </li>
              );
            })}
          </ul>
        )}
      </Async>
      <SaveSelection
        open={saving}
        filters={filters}
        onClose={() => setSaving(false)}
        onSaved={async (s) => {
          setSaving(false);
          toast(`Selection “${s.name}” saved`);
          await selections.refetch();
        }}
      />
    </Section>
  );
}

function SaveSelection({ open, filters, onClose, onSaved }: { open: boolean; filters: Filters; onClose: () => void; onSaved: (s: SavedSelection) => void }) {
  const [name, setName] = useState('');
  const { busy, error, setError, run } = useBusy();
  async function submit(e: FormEvent) {
    e.preventDefault();
    const query: Record<string, string> = {};
    for (const k of FILTER_KEYS) if (filters[k]) query[k] = filters[k]!;
    const s = await run(() => call(createSavedSelection, { body: { page: 'events', name: name.trim(), query } }));
    if (s) {
      setName('');
      onSaved(s);
    }
  }
  return (
    <Dialog open={open} title="Save the current filters" onClose={onClose}>
      <DialogForm onSubmit={submit} onCancel={onClose} submitLabel="Save" disabled={busy || !name.trim()} error={error} onDismissError={() => setError(null)}>
        <Field label="Name" hint="a selection of the same name is replaced">
          <input value={name} maxLength={100} required onChange={(e) => setName(e.target.value)} />
        </Field>
      </DialogForm>
    </Dialog>
  );
}
