/**
 * Who a task applies to: one device (local), a group (with or without its subgroups), or a
 * global set (a device list and/or a selection by tags, OS, name pattern, product). Below
 * the choice, a preview of the devices the scope targets now (POST /scopes/preview).
 */
import { useRef, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { getDevice, listDevices, previewScope, type DeviceView, type Scope, type Selection } from '@garrison/protocol';
import { call, useOp } from '../api.ts';
import { ErrorMessage, Loading, useGroups } from '../ui.tsx';
import { Labeled, ListInput, useDebounced } from './controls.tsx';
import type { ProductInfo, ScopePreview } from './model.ts';
import './tasks.css';

const SCOPE_TYPES: { type: Scope['type']; label: string; hint: string }[] = [
  { type: 'local', label: 'Local (one device)', hint: 'The task belongs to one device.' },
  { type: 'group', label: 'Group', hint: 'Every device of a group; devices that join later get the task too.' },
  { type: 'global', label: 'Global (chosen devices)', hint: 'A list of devices and/or a selection re-evaluated as devices change, regardless of group.' },
];

/** Whether the scope is complete enough to save or preview. */
export function scopeComplete(s: Scope): boolean {
  if (s.type === 'local') return s.deviceId !== '';
  if (s.type === 'group') return s.groupId !== '';
  return !!s.deviceIds?.length || (!!s.selection && Object.keys(s.selection).length > 0);
}

export function ScopePicker({ value, onChange, products }: { value: Scope; onChange: (s: Scope) => void; products: ProductInfo[] | undefined }) {
  // What each kind of scope was, so switching back and forth keeps the choices made.
  const [memory, setMemory] = useState<Partial<Record<Scope['type'], Scope>>>({});
  const switchTo = (type: Scope['type']) => {
    if (type === value.type) return;
    setMemory((m) => ({ ...m, [value.type]: value }));
    onChange(memory[type] ?? (type === 'local' ? { type, deviceId: '' } : type === 'group' ? { type, groupId: '' } : { type }));
  };
  return (
    <div className="scope-picker">
      <Labeled label="Scope type" hint={SCOPE_TYPES.find((s) => s.type === value.type)?.hint}>
        <select value={value.type} onChange={(e) => switchTo(e.target.value as Scope['type'])}>
          {SCOPE_TYPES.map((s) => (
            <option key={s.type} value={s.type}>
              {s.label}
            </option>
          ))}
        </select>
      </Labeled>
      {value.type === 'local' ? <DevicePicker deviceId={value.deviceId} onChange={(deviceId) => onChange({ type: 'local', deviceId })} /> : null}
      {value.type === 'group' ? (
        <div className="row">
          <GroupChoice value={value.groupId} onChange={(groupId) => onChange({ ...value, groupId })} />
          <Labeled inline label="Include subgroups" hint="Unless a subgroup blocks inheritance">
            <input type="checkbox" checked={value.includeSubgroups !== false} onChange={(e) => onChange({ ...value, includeSubgroups: e.target.checked })} />
          </Labeled>
        </div>
      ) : null}
      {value.type === 'global' ? <GlobalFields value={value} onChange={onChange} products={products} /> : null}
      <ScopePreviewPanel scope={value} />
    </div>
  );
}

/** The group tree as a select, each group by its path (labelled "Group" and nothing more). */
function GroupChoice({ value, onChange }: { value: string; onChange: (id: string) => void }) {
  const groups = useGroups();
  return (
    <Labeled label="Group">
      <select value={value} required onChange={(e) => onChange(e.target.value)}>
        {value ? null : <option value="">{groups.data ? 'Choose a group…' : 'Loading groups…'}</option>}
        {value && groups.data && !groups.data.some((g) => g.id === value) ? <option value={value}>{value} (unknown group)</option> : null}
        {(groups.data ?? []).map((g) => (
          <option key={g.id} value={g.id}>
            {g.path}
          </option>
        ))}
      </select>
    </Labeled>
  );
}

/** Finds devices by name or hostname (GET /devices?search=). */
function DeviceSearch({ onPick, exclude = [], label }: { onPick: (d: DeviceView) => void; exclude?: readonly string[]; label: string }) {
  const [text, setText] = useState('');
  const input = useRef<HTMLInputElement>(null);
  const search = useDebounced(text.trim(), 300);
  const found = useOp(listDevices, search ? { query: { search, limit: 20 } } : null, { staleTime: 10_000 });
  const list = (found.data?.items ?? []).filter((d) => !exclude.includes(d.id));
  return (
    <div className="device-search">
      <Labeled label={label} hint="Type part of a device name or host name">
        <input ref={input} type="search" value={text} onChange={(e) => setText(e.target.value)} autoComplete="off" />
      </Labeled>
      {search ? (
        found.error ? (
          <ErrorMessage error={found.error} />
        ) : found.isPending ? (
          <Loading label="Searching…" />
        ) : list.length === 0 ? (
          <p className="muted small">No device matches “{search}”.</p>
        ) : (
          <ul className="pick-list" aria-label="Matching devices">
            {list.map((d) => (
              <li key={d.id}>
                <button
                  type="button"
                  className="pick"
                  onClick={() => {
                    setText('');
                    onPick(d);
                    // The list goes away with the search text: focus goes back to the search field.
                    input.current?.focus();
                  }}
                >
                  <strong>{d.name}</strong> <span className="muted">{d.hostname !== d.name ? d.hostname : ''} · {d.groupPath}</span>
                </button>
              </li>
            ))}
          </ul>
        )
      ) : null}
    </div>
  );
}

function DevicePicker({ deviceId, onChange }: { deviceId: string; onChange: (id: string) => void }) {
  const device = useOp(getDevice, deviceId ? { params: { id: deviceId } } : null, { staleTime: 30_000 });
  return (
    <div>
      <p className="selected-device" aria-live="polite">
        Device:{' '}
        {deviceId ? (
          <>
            <strong>{device.data?.name ?? deviceId}</strong> {device.data ? <span className="muted">({device.data.hostname}, {device.data.groupPath})</span> : null}
          </>
        ) : (
          <span className="muted">none chosen yet</span>
        )}
      </p>
      <DeviceSearch label={deviceId ? 'Choose another device' : 'Find the device'} onPick={(d) => onChange(d.id)} exclude={deviceId ? [deviceId] : []} />
    </div>
  );
}

function GlobalFields({ value, onChange, products }: { value: Extract<Scope, { type: 'global' }>; onChange: (s: Scope) => void; products: ProductInfo[] | undefined }) {
  const ids = value.deviceIds ?? [];
  const sel: Selection = value.selection ?? {};
  // Names of the devices picked in this session (others are read by id).
  const [names, setNames] = useState<Record<string, string>>({});
  const setSel = (patch: Partial<Selection>) => {
    const next: Selection = { ...sel, ...patch };
    for (const k of Object.keys(next) as (keyof Selection)[]) {
      const v = next[k];
      if (v === undefined || v === '' || (Array.isArray(v) && v.length === 0)) delete next[k];
    }
    const { selection: _drop, ...rest } = value;
    onChange(Object.keys(next).length ? { ...rest, selection: next } : rest);
  };
  const setIds = (next: string[]) => {
    const { deviceIds: _drop, ...rest } = value;
    onChange(next.length ? { ...rest, deviceIds: next } : rest);
  };
  return (
    <>
      <fieldset>
        <legend>Devices</legend>
        {ids.length === 0 ? (
          <p className="muted small">No devices listed.</p>
        ) : (
          <ul className="chips" aria-label="Listed devices">
            {ids.map((id) => (
              <li key={id} className="chip">
                <DeviceName id={id} known={names[id]} />
                <button type="button" className="icon" aria-label={`Remove ${names[id] ?? id}`} onClick={() => setIds(ids.filter((x) => x !== id))}>
                  ×
                </button>
              </li>
            ))}
          </ul>
        )}
        <DeviceSearch
          label="Add a device"
          exclude={ids}
          onPick={(d) => {
            setNames((n) => ({ ...n, [d.id]: d.name }));
            setIds([...ids, d.id]);
          }}
        />
      </fieldset>
      <fieldset>
        <legend>Selection</legend>
        <p className="hint small">Devices matching every criterion given, re-evaluated as devices change. Leave all empty for no selection.</p>
        <div className="row">
          <Labeled label="Tags" hint="Comma-separated; the device has all of them">
            <ListInput value={sel.tags ?? []} onChange={(tags) => setSel({ tags })} />
          </Labeled>
          <Labeled label="Operating systems" hint="Comma-separated platforms or OS names (linux, windows, darwin, Ubuntu…); any of them">
            <ListInput value={sel.os ?? []} onChange={(os) => setSel({ os })} />
          </Labeled>
        </div>
        <div className="row">
          <Labeled label="Name pattern" hint="* and ? on the device name or host name, e.g. web-*">
            <input type="text" value={sel.namePattern ?? ''} onChange={(e) => setSel({ namePattern: e.target.value })} spellCheck={false} />
          </Labeled>
          <Labeled label="Product installed">
            <select value={sel.product ?? ''} onChange={(e) => setSel({ product: e.target.value })}>
              <option value="">Any</option>
              {sel.product && !products?.some((p) => p.id === sel.product) ? <option value={sel.product}>{sel.product}</option> : null}
              {(products ?? []).map((p) => (
                <option key={p.id} value={p.id}>
                  {p.name}
                </option>
              ))}
            </select>
          </Labeled>
        </div>
      </fieldset>
    </>
  );
}

function DeviceName({ id, known }: { id: string; known?: string | undefined }) {
  const d = useOp(getDevice, known ? null : { params: { id } }, { staleTime: 60_000 });
  return <span>{known ?? d.data?.name ?? (d.error ? `${id} (not found)` : id)}</span>;
}

const PREVIEW_SHOWN = 50;

/** The devices the scope targets now: total and the first ones, read 400 ms after the last change. */
function ScopePreviewPanel({ scope }: { scope: Scope }) {
  const complete = scopeComplete(scope);
  const key = useDebounced(complete ? JSON.stringify(scope) : '', 400);
  const [all, setAll] = useState(false);
  const groups = useGroups();
  const preview = useQuery<ScopePreview, Error>({
    queryKey: ['/scopes/preview', key],
    queryFn: () => call(previewScope, { body: { scope: JSON.parse(key) as Scope } }),
    enabled: key !== '',
    staleTime: 5_000,
    placeholderData: (prev) => prev,
    retry: false,
  });
  const pending = complete && (key !== JSON.stringify(scope) || preview.isFetching);
  const groupPath = (id: string) => groups.data?.find((g) => g.id === id)?.path ?? '';
  const devices = preview.data?.devices ?? [];
  const shown = all ? devices : devices.slice(0, PREVIEW_SHOWN);
  return (
    <section className="scope-preview" aria-label="Devices in scope" aria-busy={pending}>
      <h3>Devices in scope now</h3>
      {!complete ? (
        <p className="muted">Complete the scope to see the devices it targets.</p>
      ) : preview.error && !preview.data ? (
        <ErrorMessage error={preview.error} />
      ) : !preview.data ? (
        <Loading label="Finding devices…" />
      ) : (
        <>
          <p role="status">
            <strong>{preview.data.total.toLocaleString()}</strong> {preview.data.total === 1 ? 'device' : 'devices'}
            {pending ? <span className="muted"> (updating…)</span> : null}
          </p>
          {devices.length ? (
            <ul className="preview-list">
              {shown.map((d) => (
                <li key={d.id}>
                  {d.name} <span className="muted small">{d.hostname !== d.name ? `${d.hostname} · ` : ''}{groupPath(d.groupId)}</span>
                </li>
              ))}
            </ul>
          ) : null}
          {devices.length > PREVIEW_SHOWN ? (
            <button type="button" className="link" onClick={() => setAll((a) => !a)}>
              {all ? `Show the first ${PREVIEW_SHOWN}` : `Show ${devices.length} devices`}
            </button>
          ) : null}
          {preview.data.total > devices.length ? <p className="muted small">…and {(preview.data.total - devices.length).toLocaleString()} more.</p> : null}
        </>
      )}
    </section>
  );
}
