/**
 * The event log: filters (severity, kind, product, group, device, task, time range), newest
 * first with paging to older events, export of the filtered log as CSV or JSON lines. New
 * events appear as they are stored.
 */
import { useState } from 'react';
import { useSearch } from 'wouter';
import type { EventView } from '@garrison/protocol';
import { download, qs, useApi } from '../api.ts';
import { Async, Empty, ErrorMessage, Field, GroupSelect, Page, Section, useBusy } from '../ui.tsx';
import { EventTable } from './DeviceDetails.tsx';

const PAGE = 200;

function toIso(local: string): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

export function Events() {
  const initial = new URLSearchParams(useSearch());
  const [severity, setSeverity] = useState('');
  const [kind, setKind] = useState('');
  const [product, setProduct] = useState('');
  const [groupId, setGroupId] = useState('');
  const [deviceId, setDeviceId] = useState(initial.get('deviceId') ?? '');
  const [taskId, setTaskId] = useState(initial.get('taskId') ?? '');
  const [since, setSince] = useState('');
  const [until, setUntil] = useState('');
  const [pages, setPages] = useState<number[]>([]);
  const filter = {
    severity: severity || undefined,
    kind: kind.trim() || undefined,
    product: product.trim() || undefined,
    groupId: groupId || undefined,
    deviceId: deviceId.trim() || undefined,
    taskId: taskId.trim() || undefined,
    since: toIso(since),
    until: toIso(until),
  };
  const beforeId = pages.at(-1);
  const events = useApi<EventView[]>(`/events${qs({ ...filter, limit: PAGE, beforeId })}`, { placeholderData: (p) => p });
  const exporting = useBusy();
  const reset = () => setPages([]);
  return (
    <Page
      title="Event log"
      actions={
        <>
          <button type="button" disabled={exporting.busy} onClick={() => exporting.run(() => download(`/events${qs({ ...filter, limit: 10000, format: 'csv' })}`, 'garrison-events.csv'))}>
            Export CSV
          </button>
          <button type="button" disabled={exporting.busy} onClick={() => exporting.run(() => download(`/events${qs({ ...filter, limit: 10000, format: 'jsonl' })}`, 'garrison-events.jsonl'))}>
            Export JSON lines
          </button>
        </>
      }
    >
      <ErrorMessage error={exporting.error} />
      <Section title="Filters">
        <form className="toolbar" role="search" aria-label="Event filters" onSubmit={(e) => e.preventDefault()}>
          <Field label="Severity">
            <select value={severity} onChange={(e) => { setSeverity(e.target.value); reset(); }}>
              <option value="">All</option>
              <option value="info">Info</option>
              <option value="warning">Warning</option>
              <option value="error">Error</option>
            </select>
          </Field>
          <Field label="Kind" hint="exact, e.g. run.failed">
            <input value={kind} onChange={(e) => { setKind(e.target.value); reset(); }} />
          </Field>
          <Field label="Product">
            <input value={product} onChange={(e) => { setProduct(e.target.value); reset(); }} />
          </Field>
          <GroupSelect label="Group" value={groupId} allowEmpty onChange={(v) => { setGroupId(v); reset(); }} />
          <Field label="Device id">
            <input value={deviceId} onChange={(e) => { setDeviceId(e.target.value); reset(); }} />
          </Field>
          <Field label="Task id">
            <input value={taskId} onChange={(e) => { setTaskId(e.target.value); reset(); }} />
          </Field>
          <Field label="From">
            <input type="datetime-local" value={since} onChange={(e) => { setSince(e.target.value); reset(); }} />
          </Field>
          <Field label="To">
            <input type="datetime-local" value={until} onChange={(e) => { setUntil(e.target.value); reset(); }} />
          </Field>
        </form>
      </Section>
      <Section title={beforeId ? 'Older events' : 'Latest events'}>
        <Async q={events}>
          {(list) => (
            <>
              {list.length === 0 ? <Empty>No events match.</Empty> : <EventTable events={list} />}
              <div className="toolbar">
                <button type="button" disabled={pages.length === 0} onClick={() => setPages(pages.slice(0, -1))}>
                  Newer
                </button>
                <button type="button" disabled={list.length < PAGE} onClick={() => setPages([...pages, list.at(-1)!.id])}>
                  Older
                </button>
              </div>
            </>
          )}
        </Async>
      </Section>
    </Page>
  );
}
