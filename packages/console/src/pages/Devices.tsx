/**
 * The group tree with its devices: pick a group (the list filters to it and its subgroups),
 * sort, filter and choose the columns of its devices, select some or everything a filter
 * matches and act on them in bulk; create, rename, configure and delete groups. Each group
 * shows its device count and its worst status with the reason (OK / Warning / Critical, as
 * KSC shows them). Filters live in the URL, so a saved selection is the page's query.
 * Duplicates: machines that presented another device's credential (a cloned image, copied
 * state), held until they are approved as devices of their own or rejected.
 */
import { useMemo, useState, type FormEvent } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import {
  approveDeviceDuplicate,
  bulkDevices,
  createGroup,
  createSavedSelection,
  deleteGroup,
  deleteSavedSelection,
  DEVICE_STATUSES,
  listDeviceDuplicates,
  listDevices,
  listGroupPolicies,
  listGroupStatuses,
  listSavedSelections,
  listTasks,
  PAGE_LIMIT_MAX,
  rejectDeviceDuplicate,
  updateGroup,
  getDevice,
  type DeviceBulkAction,
  type DeviceBulkActionName,
  type DeviceFilter,
  type DeviceListQuery,
  type DeviceSort,
  type DeviceView,
  type GroupStatus,
  type GroupView,
  type DeviceDuplicateView,
} from '@garrison/protocol';
import { allPages, call, useOp, qs } from '../api.ts';
import { Permission, useAccess } from '../access.tsx';
import { Async, ConfirmButton, Dialog, DialogForm, Empty, ErrorMessage, Field, GroupSelect, Page, Section, StateBadge, Tabs, Time, tabPanelProps, useBusy, useGroups, useToast } from '../ui.tsx';
import { formatAgo, formatTime, plural } from '../format.ts';
import { GroupPolicies } from '../policies/GroupPolicies.tsx';

const PAGE = 100;

interface TreeNode {
  group: GroupView;
  children: TreeNode[];
}

function buildTree(groups: GroupView[]): TreeNode[] {
  const nodes = new Map(groups.map((g) => [g.id, { group: g, children: [] as TreeNode[] }]));
  const roots: TreeNode[] = [];
  for (const n of nodes.values()) {
    const parent = n.group.parentId ? nodes.get(n.group.parentId) : undefined;
    if (parent) parent.children.push(n);
    else roots.push(n);
  }
  const sort = (list: TreeNode[]) => {
    list.sort((a, b) => a.group.name.localeCompare(b.group.name));
    list.forEach((n) => sort(n.children));
  };
  sort(roots);
  return roots;
}

const STATUS_LABEL = { ok: 'OK', warning: 'Warning', critical: 'Critical' } as const;
const STATUS_BADGE = { ok: 'ok', warning: 'warning', critical: 'error' } as const;

/** The statuses of every visible group (a tree is small next to its devices); refreshed by the live feed under /groups. */
function useGroupStatuses() {
  return useQuery<Map<string, GroupStatus>, Error, Map<string, GroupStatus>, string[]>({
    queryKey: ['/groups/statuses'],
    queryFn: async ({ signal }) => new Map((await allPages(listGroupStatuses, { query: { limit: PAGE_LIMIT_MAX } }, { signal })).map((s) => [s.groupId, s])),
    staleTime: 10_000,
  });
}

function GroupStatusBadge({ status }: { status: GroupStatus }) {
  return (
    <span className={`badge state-${STATUS_BADGE[status.status]}`} title={status.reason ?? 'No problem'}>
      {STATUS_LABEL[status.status]}
    </span>
  );
}

function Tree({ nodes, selected, onSelect, statuses, collapsed, onToggle }: { nodes: TreeNode[]; selected: string; onSelect: (id: string) => void; statuses: Map<string, GroupStatus> | undefined; collapsed: Set<string>; onToggle: (id: string) => void }) {
  return (
    <ul className="tree">
      {nodes.map((n) => {
        const st = statuses?.get(n.group.id);
        const open = !collapsed.has(n.group.id);
        return (
          <li key={n.group.id}>
            <div className="tree-row">
              {n.children.length ? (
                <button type="button" className="tree-toggle" aria-expanded={open} aria-label={open ? 'Collapse' : 'Expand'} aria-describedby={`tree-name-${n.group.id}`} onClick={() => onToggle(n.group.id)}>
                  {open ? '▾' : '▸'}
                </button>
              ) : (
                <span className="tree-toggle" aria-hidden="true" />
              )}
              <button type="button" id={`tree-name-${n.group.id}`} className="tree-name" aria-current={n.group.id === selected} onClick={() => onSelect(n.group.id)}>
                {n.group.name}
              </button>
              {st ? (
                <span className="count" title={`${plural(st.devicesWithSubgroups, 'device')} with its subgroups (${st.devices.toLocaleString()} in the group itself), ${st.onlineWithSubgroups.toLocaleString()} online`}>
                  {st.devicesWithSubgroups.toLocaleString()}
                </span>
              ) : null}
              {st && st.status !== 'ok' ? <GroupStatusBadge status={st} /> : null}
            </div>
            {n.children.length && open ? <Tree nodes={n.children} selected={selected} onSelect={onSelect} statuses={statuses} collapsed={collapsed} onToggle={onToggle} /> : null}
          </li>
        );
      })}
    </ul>
  );
}

type View = 'tree' | 'duplicates';

export function Devices() {
  const search = new URLSearchParams(useSearch());
  const [, navigate] = useLocation();
  const view: View = search.get('view') === 'duplicates' ? 'duplicates' : 'tree';
  const pending = useOp(listDeviceDuplicates, { query: { state: 'pending', limit: 1 } });
  const waiting = pending.data ? (pending.data.total ?? pending.data.items.length) : 0;
  return (
    <Page title="Devices" subtitle="The group tree and the devices in it">
      <Tabs
        label="Device views"
        idBase="devices"
        value={view}
        onChange={(v) => navigate(v === 'duplicates' ? '/devices?view=duplicates' : `/devices${qs({ group: search.get('group') })}`)}
        tabs={[
          { id: 'tree', label: 'Group tree' },
          { id: 'duplicates', label: pending.data?.items.length ? `Duplicates (${waiting || '1+'})` : 'Duplicates' },
        ]}
      />
      <div {...tabPanelProps('devices', view)}>{view === 'duplicates' ? <Duplicates /> : <GroupTree search={search} />}</div>
    </Page>
  );
}

/** The device list's filters, in the page's URL (saved selections keep them as they are). */
const FILTER_KEYS = ['q', 'status', 'os', 'agent', 'tag', 'seen', 'enrolledSince', 'enrolledUntil', 'sub', 'sort', 'order'] as const;
type FilterKey = (typeof FILTER_KEYS)[number];
const SEEN_CHOICES = [
  { value: '', label: 'Any time' },
  { value: 'within:1', label: 'Seen in the last day' },
  { value: 'within:7', label: 'Seen in the last 7 days' },
  { value: 'notfor:1', label: 'Not seen for 1 day' },
  { value: 'notfor:7', label: 'Not seen for 7 days' },
  { value: 'notfor:30', label: 'Not seen for 30 days' },
];

function filterOf(search: URLSearchParams, groupId: string): DeviceFilter {
  const f: DeviceFilter = { groupId };
  if (search.get('sub') === '0') f.recursive = false;
  const text = search.get('q')?.trim();
  if (text) f.search = text;
  const status = search.get('status');
  if (status && (DEVICE_STATUSES as readonly string[]).includes(status)) f.status = status as DeviceFilter['status'];
  if (search.get('os')) f.osName = search.get('os')!;
  if (search.get('agent')) f.agentVersion = search.get('agent')!;
  if (search.get('tag')) f.tag = search.get('tag')!;
  const [kind, days] = (search.get('seen') ?? '').split(':');
  if (days && Number(days) >= 1) {
    if (kind === 'within') f.seenWithinDays = Number(days);
    if (kind === 'notfor') f.notSeenForDays = Number(days);
  }
  // A period of enrolment (the dashboard's links): ISO times, ignored when they do not parse.
  for (const k of ['enrolledSince', 'enrolledUntil'] as const) {
    const v = search.get(k);
    if (v && !Number.isNaN(Date.parse(v))) f[k] = new Date(v).toISOString();
  }
  return f;
}

function GroupTree({ search }: { search: URLSearchParams }) {
  const groups = useGroups();
  const statuses = useGroupStatuses();
  const [, navigate] = useLocation();
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const tree = useMemo(() => buildTree(groups.data ?? []), [groups.data]);
  // The top of the tree this administrator sees: the root group, or the group they were granted.
  const groupId = search.get('group') || (tree[0]?.group.id ?? '');
  const group = groups.data?.find((g) => g.id === groupId);
  const status = statuses.data?.get(groupId);
  // Picking a group keeps the other filters: its devices stay in view with them.
  const params = (changes: Partial<Record<FilterKey | 'group', string | undefined>>) => {
    const next: Record<string, string | undefined> = { group: search.get('group') ?? undefined };
    for (const k of FILTER_KEYS) next[k] = search.get(k) ?? undefined;
    return { ...next, ...changes };
  };
  const go = (changes: Partial<Record<FilterKey | 'group', string | undefined>>) => navigate(`/devices${qs(params(changes))}`, { replace: true });
  return (
    <div className="split">
      <Section title="Groups">
        <Async q={groups}>
          {() => (
            <nav aria-label="Group tree">
              <Tree
                nodes={tree}
                selected={groupId}
                onSelect={(id) => navigate(`/devices${qs(params({ group: id }))}`)}
                statuses={statuses.data}
                collapsed={collapsed}
                onToggle={(id) =>
                  setCollapsed((c) => {
                    const n = new Set(c);
                    if (n.has(id)) n.delete(id);
                    else n.add(id);
                    return n;
                  })
                }
              />
            </nav>
          )}
        </Async>
      </Section>
      <div>
        {group ? <GroupActions group={group} status={status} onDeleted={() => navigate(`/devices?group=${group.parentId ?? ''}`)} /> : null}
        {groupId ? <DeviceList groupId={groupId} search={search} go={go} /> : null}
      </div>
    </div>
  );
}

function GroupActions({ group, status, onDeleted }: { group: GroupView; status: GroupStatus | undefined; onDeleted: () => void }) {
  const [dialog, setDialog] = useState<'new' | 'settings' | null>(null);
  const toast = useToast();
  const isRoot = group.parentId === null;
  const manage = useAccess().canIn(Permission.manageGroups, group.id);
  return (
    <Section
      title={group.path}
      actions={
        manage ? (
          <>
            <button type="button" onClick={() => setDialog('new')}>
              New subgroup
            </button>
            <button type="button" onClick={() => setDialog('settings')}>
              Group settings
            </button>
            {isRoot ? null : (
              <ConfirmButton
                label="Delete group"
                danger
                question={<p>Delete the group “{group.path}”? Only an empty group (no devices, subgroups or tasks) can be deleted.</p>}
                onConfirm={async () => {
                  await call(deleteGroup, { params: { id: group.id } });
                  toast(`Group ${group.name} deleted`);
                  onDeleted();
                }}
              />
            )}
          </>
        ) : null
      }
    >
      <dl className="props">
        {status ? (
          <>
            <dt>Status</dt>
            <dd>
              <GroupStatusBadge status={status} /> {status.reason ?? 'no device offline for long, no failure, no detection'}
            </dd>
            <dt>Devices</dt>
            <dd>
              {plural(status.devicesWithSubgroups, 'device')}, {status.onlineWithSubgroups.toLocaleString()} online{status.devicesWithSubgroups !== status.devices ? ` (${status.devices.toLocaleString()} in the group itself)` : ''}
            </dd>
          </>
        ) : null}
        <dt>Check-in interval</dt>
        <dd>
          {group.effectivePolicy.checkInIntervalMinutes} min {group.checkInIntervalMinutes === null ? <span className="muted">(inherited)</span> : null} · <AgentPolicyLink group={group} />
        </dd>
        <dt>Policy enforcement</dt>
        <dd>
          {group.effectivePolicy.policyEnforcementMinutes} min {group.policyEnforcementMinutes === null ? <span className="muted">(inherited)</span> : null} · <AgentPolicyLink group={group} />
        </dd>
        <dt>Inheritance</dt>
        <dd>{group.blockInheritance ? 'blocked: tasks of parent groups do not apply' : 'tasks of parent groups apply'}</dd>
      </dl>
      <NewGroupDialog open={dialog === 'new'} parent={group} onClose={() => setDialog(null)} />
      <GroupSettingsDialog open={dialog === 'settings'} group={group} onClose={() => setDialog(null)} />
      <GroupPolicies group={group} />
    </Section>
  );
}

/** The intervals are settings of the group's agent ("garrison") policy: a link to it, or to the policies when it has none. */
function AgentPolicyLink({ group }: { group: GroupView }) {
  const own = useOp(listGroupPolicies, { params: { id: group.id } });
  const a = own.data?.items.find((x) => x.product === 'garrison' && x.policyId);
  return a ? <Link href={`/policies/${a.policyId}`}>in the agent policy “{a.policyName ?? a.policyId}”</Link> : <Link href="/policies">agent policies</Link>;
}

function NewGroupDialog({ open, parent, onClose }: { open: boolean; parent: GroupView; onClose: () => void }) {
  const [name, setName] = useState('');
  const { busy, error, run } = useBusy();
  const groups = useGroups();
  const [, navigate] = useLocation();
  async function submit(e: FormEvent) {
    e.preventDefault();
    const g = await run(() => call(createGroup, { body: { name, parentId: parent.id } }));
    if (g) {
      setName('');
      await groups.refetch();
      onClose();
      navigate(`/devices?group=${g.id}`);
    }
  }
  return (
    <Dialog open={open} title={`New group under ${parent.path}`} onClose={onClose}>
      <DialogForm onSubmit={submit} onCancel={onClose} submitLabel={'Create group'} disabled={busy} error={error}>
        <Field label="Group name">
          <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} autoFocus />
        </Field>
      </DialogForm>
    </Dialog>
  );
}

function GroupSettingsDialog({ open, group, onClose }: { open: boolean; group: GroupView; onClose: () => void }) {
  const [name, setName] = useState(group.name);
  const [parentId, setParentId] = useState(group.parentId ?? '');
  const [checkIn, setCheckIn] = useState(group.checkInIntervalMinutes?.toString() ?? '');
  const [enforce, setEnforce] = useState(group.policyEnforcementMinutes?.toString() ?? '');
  const [block, setBlock] = useState(group.blockInheritance);
  const { busy, error, run } = useBusy();
  const groups = useGroups();
  const isRoot = group.parentId === null;
  async function submit(e: FormEvent) {
    e.preventDefault();
    const body = {
      ...(isRoot ? {} : { name, parentId }),
      blockInheritance: block,
      checkInIntervalMinutes: checkIn === '' ? null : Number(checkIn),
      policyEnforcementMinutes: enforce === '' ? null : Number(enforce),
    };
    const r = await run(() => call(updateGroup, { params: { id: group.id }, body }));
    if (r) {
      await groups.refetch();
      onClose();
    }
  }
  return (
    <Dialog open={open} title={`Settings of ${group.path}`} onClose={onClose}>
      <DialogForm onSubmit={submit} onCancel={onClose} submitLabel={'Save settings'} disabled={busy} error={error}>
        {isRoot ? null : (
          <>
            <Field label="Group name">
              <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
            </Field>
            <GroupSelect label="Parent group" value={parentId} onChange={setParentId} required />
          </>
        )}
        <p className="notice small">These two intervals are settings of the group's agent policy (product “garrison”): saving them here sets them in that policy, made for the group if it has none. The Policies section of the group and the <Link href="/policies">Policies</Link> page show and change all its settings.</p>
        <Field label="Check-in interval (minutes)" hint="Empty: inherited from the parent group.">
          <input type="number" min={1} max={10080} value={checkIn} onChange={(e) => setCheckIn(e.target.value)} />
        </Field>
        <Field label="Policy enforcement interval (minutes)" hint="Empty: inherited.">
          <input type="number" min={1} max={10080} value={enforce} onChange={(e) => setEnforce(e.target.value)} />
        </Field>
        <Field label="Block inheritance of parent groups' tasks" inline>
          <input type="checkbox" checked={block} onChange={(e) => setBlock(e.target.checked)} />
        </Field>
      </DialogForm>
    </Dialog>
  );
}

const COLUMNS = [
  { id: 'status', label: 'Status' },
  { id: 'lastContact', label: 'Last contact' },
  { id: 'group', label: 'Group' },
  { id: 'os', label: 'OS' },
  { id: 'addresses', label: 'Addresses' },
  { id: 'agentVersion', label: 'Agent version' },
  { id: 'tags', label: 'Tags' },
] as const;
type ColumnId = (typeof COLUMNS)[number]['id'];
const DEFAULT_COLUMNS: ColumnId[] = ['status', 'lastContact', 'group', 'os', 'agentVersion', 'tags'];
const COLUMNS_KEY = 'garrison.devices.columns';
/** The sort each sortable column header sets. */
const COLUMN_SORT: Partial<Record<ColumnId | 'name', DeviceSort>> = { name: 'name', lastContact: 'lastContact', group: 'group', os: 'osName', agentVersion: 'agentVersion' };

/** The columns this browser shows, kept in localStorage. */
function useColumns(): [Set<ColumnId>, (id: ColumnId, on: boolean) => void] {
  const [cols, setCols] = useState<Set<ColumnId>>(() => {
    try {
      const saved = JSON.parse(localStorage.getItem(COLUMNS_KEY) ?? 'null') as unknown;
      if (Array.isArray(saved)) return new Set(saved.filter((c): c is ColumnId => COLUMNS.some((k) => k.id === c)));
    } catch {
      /* unreadable: the defaults */
    }
    return new Set(DEFAULT_COLUMNS);
  });
  const set = (id: ColumnId, on: boolean) =>
    setCols((c) => {
      const n = new Set(c);
      if (on) n.add(id);
      else n.delete(id);
      localStorage.setItem(COLUMNS_KEY, JSON.stringify([...n]));
      return n;
    });
  return [cols, set];
}

function statusOf(d: DeviceView): { state: string; label: string } {
  if (d.uninstalledAt) return { state: 'offline', label: 'uninstalled' };
  if (d.credentialRevoked) return { state: 'revoked', label: 'revoked' };
  return d.online ? { state: 'online', label: 'online' } : { state: 'offline', label: 'offline' };
}

type Go = (changes: Partial<Record<FilterKey | 'group', string | undefined>>) => void;

function DeviceList({ groupId, search, go }: { groupId: string; search: URLSearchParams; go: Go }) {
  const filter = filterOf(search, groupId);
  const sort = (search.get('sort') as DeviceSort | null) ?? 'name';
  const order = search.get('order') === 'desc' ? 'desc' : 'asc';
  // A new filter or sort starts again at the first page with nothing selected.
  const key = JSON.stringify([filter, sort, order]);
  return (
    <Section title="Devices" actions={<SavedSelections search={search} />}>
      {/* Keyed by the query: a saved selection applied (a new URL) shows its own values. */}
      <DeviceFilters key={search.toString()} search={search} go={go} />
      <DevicePages key={key} filter={filter} sort={sort} order={order} go={go} />
    </Section>
  );
}

function DeviceFilters({ search, go }: { search: URLSearchParams; go: Go }) {
  const [text, setText] = useState(search.get('q') ?? '');
  return (
    <form
      className="toolbar"
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        const form = new FormData(e.currentTarget);
        const value = (k: string) => String(form.get(k) ?? '').trim() || undefined;
        go({ q: value('q'), os: value('os'), agent: value('agent'), tag: value('tag') });
      }}
    >
      <Field label="Search">
        <input type="search" name="q" value={text} placeholder="name or host name" onChange={(e) => setText(e.target.value)} onBlur={() => go({ q: text.trim() || undefined })} />
      </Field>
      <Field label="Status">
        <select value={search.get('status') ?? ''} onChange={(e) => go({ status: e.target.value || undefined })}>
          <option value="">All</option>
          <option value="online">Online</option>
          <option value="offline">Offline</option>
          <option value="revoked">Revoked</option>
          <option value="duplicate">With a pending duplicate</option>
        </select>
      </Field>
      <Field label="Last contact">
        <select value={search.get('seen') ?? ''} onChange={(e) => go({ seen: e.target.value || undefined })}>
          {SEEN_CHOICES.map((c) => (
            <option key={c.value} value={c.value}>
              {c.label}
            </option>
          ))}
        </select>
      </Field>
      <Field label="OS name">
        <input name="os" defaultValue={search.get('os') ?? ''} placeholder="e.g. Ubuntu" onBlur={(e) => go({ os: e.target.value.trim() || undefined })} />
      </Field>
      <Field label="Agent version">
        <input name="agent" defaultValue={search.get('agent') ?? ''} placeholder="e.g. 1.4.0" onBlur={(e) => go({ agent: e.target.value.trim() || undefined })} />
      </Field>
      <Field label="Tag">
        <input name="tag" defaultValue={search.get('tag') ?? ''} onBlur={(e) => go({ tag: e.target.value.trim() || undefined })} />
      </Field>
      <Field label="Include subgroups" inline>
        <input type="checkbox" checked={search.get('sub') !== '0'} onChange={(e) => go({ sub: e.target.checked ? undefined : '0' })} />
      </Field>
      {search.get('enrolledSince') || search.get('enrolledUntil') ? (
        <p className="chips" role="status">
          <span>
            Enrolled {search.get('enrolledSince') ? `from ${formatTime(search.get('enrolledSince')!)}` : ''} {search.get('enrolledUntil') ? `until ${formatTime(search.get('enrolledUntil')!)}` : ''}
          </span>
          <button type="button" onClick={() => go({ enrolledSince: undefined, enrolledUntil: undefined })}>
            Any enrolment time
          </button>
        </p>
      ) : null}
      <button type="submit" className="sr-only">
        Apply filters
      </button>
    </form>
  );
}

function ColumnChooser({ cols, set }: { cols: Set<ColumnId>; set: (id: ColumnId, on: boolean) => void }) {
  return (
    <details className="column-chooser">
      <summary>Columns</summary>
      <fieldset>
        <legend className="sr-only">Columns shown</legend>
        {COLUMNS.map((c) => (
          <label key={c.id}>
            <input type="checkbox" checked={cols.has(c.id)} onChange={(e) => set(c.id, e.target.checked)} /> {c.label}
          </label>
        ))}
      </fieldset>
    </details>
  );
}

function SortHeader({ id, label, sort, order, go }: { id: ColumnId | 'name'; label: string; sort: DeviceSort; order: 'asc' | 'desc'; go: Go }) {
  const by = COLUMN_SORT[id];
  if (!by) return <th scope="col">{label}</th>;
  const active = sort === by;
  return (
    <th scope="col" aria-sort={active ? (order === 'asc' ? 'ascending' : 'descending') : 'none'}>
      <button type="button" className="link sort" onClick={() => go({ sort: by === 'name' ? undefined : by, order: active && order === 'asc' ? 'desc' : undefined })}>
        {label}
        {active ? (order === 'asc' ? ' ▲' : ' ▼') : ''}
      </button>
    </th>
  );
}

function DevicePages({ filter, sort, order, go }: { filter: DeviceFilter; sort: DeviceSort; order: 'asc' | 'desc'; go: Go }) {
  const [cursors, setCursors] = useState<string[]>([]);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [allMatching, setAllMatching] = useState(false);
  const [action, setAction] = useState<DeviceBulkActionName | null>(null);
  const [cols, setCol] = useColumns();
  const query: DeviceListQuery = { ...filter, sort, order, limit: PAGE, ...(cursors.length ? { cursor: cursors[cursors.length - 1] } : {}) };
  const devices = useOp(listDevices, { query }, { placeholderData: (prev) => prev });
  const access = useAccess();
  const mayAct = access.can(Permission.manageDevices) || access.can(Permission.runTasks);
  const total = devices.data?.total ?? 0;
  const count = allMatching ? total : selected.size;
  const toggle = (id: string) => {
    setAllMatching(false);
    setSelected((s) => {
      const n = new Set(s);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });
  };
  const target: Pick<DeviceBulkAction, 'deviceIds' | 'filter'> = allMatching ? { filter } : { deviceIds: [...selected] };
  return (
    <>
      <div className="toolbar">
        <span aria-live="polite">{devices.data ? `${plural(total, 'device')}${filter.search || filter.status || filter.tag || filter.osName || filter.agentVersion || filter.seenWithinDays || filter.notSeenForDays || filter.enrolledSince || filter.enrolledUntil ? ' match' : ''}` : ''}</span>
        <ColumnChooser cols={cols} set={setCol} />
        {mayAct ? <BulkMenu count={count} onPick={setAction} /> : null}
      </div>
      <Async q={devices}>
        {(page) => {
          const list = page.items;
          const pageSelected = list.length > 0 && list.every((d) => allMatching || selected.has(d.id));
          return list.length === 0 && cursors.length === 0 ? (
            <Empty>No devices here match. Enrol machines from Installers or Push installation, or change the filters.</Empty>
          ) : (
            <>
              {mayAct && pageSelected && !allMatching && total > list.length ? (
                <p className="notice small">
                  The {plural(list.length, 'device')} of this page {list.length === 1 ? 'is' : 'are'} selected.{' '}
                  <button type="button" className="link" onClick={() => setAllMatching(true)}>
                    Select all {total.toLocaleString()} matching
                  </button>
                </p>
              ) : null}
              {allMatching ? (
                <p className="notice small">
                  All {plural(total, 'device')} matching the filters are selected.{' '}
                  <button type="button" className="link" onClick={() => { setAllMatching(false); setSelected(new Set()); }}>
                    Clear the selection
                  </button>
                </p>
              ) : null}
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      {mayAct ? (
                        <th scope="col">
                          <input
                            type="checkbox"
                            aria-label="Select all devices on this page"
                            checked={pageSelected}
                            onChange={(e) => {
                              setAllMatching(false);
                              setSelected(e.target.checked ? new Set(list.map((d) => d.id)) : new Set());
                            }}
                          />
                        </th>
                      ) : null}
                      <SortHeader id="name" label="Name" sort={sort} order={order} go={go} />
                      {COLUMNS.filter((c) => cols.has(c.id)).map((c) => (
                        <SortHeader key={c.id} id={c.id} label={c.label} sort={sort} order={order} go={go} />
                      ))}
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((d) => {
                      const st = statusOf(d);
                      const isSelected = allMatching || selected.has(d.id);
                      return (
                        <tr key={d.id} className={isSelected ? 'selected' : ''}>
                          {mayAct ? (
                            <td>
                              <input type="checkbox" aria-label={`Select ${d.name}`} checked={isSelected} disabled={allMatching} onChange={() => toggle(d.id)} />
                            </td>
                          ) : null}
                          <td>
                            <Link href={`/devices/${d.id}`}>{d.name}</Link>
                            {d.hostname !== d.name ? <div className="muted small">{d.hostname}</div> : null}
                          </td>
                          {cols.has('status') ? (
                            <td>
                              <StateBadge state={st.state} label={st.label} />
                            </td>
                          ) : null}
                          {cols.has('lastContact') ? <td className="nowrap small">{d.online ? 'now' : d.lastContactAt ? <span title={d.lastContactAt}>{formatAgo(d.lastContactAt)}</span> : 'never'}</td> : null}
                          {cols.has('group') ? <td>{d.groupPath}</td> : null}
                          {cols.has('os') ? (
                            <td>
                              {d.osName} {d.osVersion}
                            </td>
                          ) : null}
                          {cols.has('addresses') ? <td className="small">{d.addresses.slice(0, 2).join(', ')}</td> : null}
                          {cols.has('agentVersion') ? <td className="small">{d.agentVersion}</td> : null}
                          {cols.has('tags') ? <td className="small">{d.tags.join(', ')}</td> : null}
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              </div>
              <div className="toolbar">
                <span className="muted">
                  {list.length ? `${(cursors.length * PAGE + 1).toLocaleString()}–${(cursors.length * PAGE + list.length).toLocaleString()} of ${total.toLocaleString()}` : 'none'}
                  {count ? ` · ${plural(count, 'device')} selected` : ''}
                </span>
                <button type="button" disabled={cursors.length === 0} onClick={() => setCursors((c) => c.slice(0, -1))}>
                  Previous
                </button>
                <button type="button" disabled={!page.nextCursor} onClick={() => page.nextCursor && setCursors((c) => [...c, page.nextCursor!])}>
                  Next
                </button>
              </div>
            </>
          );
        }}
      </Async>
      {action ? (
        <BulkDialog
          action={action}
          count={count}
          target={target}
          onClose={() => setAction(null)}
          onDone={() => {
            setSelected(new Set());
            setAllMatching(false);
            if (action === 'delete' || action === 'move') setCursors([]);
          }}
        />
      ) : null}
    </>
  );
}

const BULK_LABELS: Record<DeviceBulkActionName, string> = {
  addTags: 'Add tags…',
  removeTags: 'Remove tags…',
  move: 'Move to group…',
  checkIn: 'Check in now…',
  runTask: 'Run a task now…',
  delete: 'Delete…',
};

function BulkMenu({ count, onPick }: { count: number; onPick: (a: DeviceBulkActionName) => void }) {
  const access = useAccess();
  const actions = (Object.keys(BULK_LABELS) as DeviceBulkActionName[]).filter((a) => (a === 'runTask' ? access.can(Permission.runTasks) : access.can(Permission.manageDevices)));
  return (
    <Field label="With the selection">
      <select
        value=""
        disabled={count === 0}
        onChange={(e) => {
          if (e.target.value) onPick(e.target.value as DeviceBulkActionName);
        }}
      >
        <option value="">{count ? `${plural(count, 'device')}: choose an action` : 'Select devices first'}</option>
        {actions.map((a) => (
          <option key={a} value={a}>
            {BULK_LABELS[a]}
          </option>
        ))}
      </select>
    </Field>
  );
}

function BulkDialog({ action, count, target, onClose, onDone }: { action: DeviceBulkActionName; count: number; target: Pick<DeviceBulkAction, 'deviceIds' | 'filter'>; onClose: () => void; onDone: () => void }) {
  const [tags, setTags] = useState('');
  const [groupId, setGroupId] = useState('');
  const [taskId, setTaskId] = useState('');
  const tasks = useOp(listTasks, action === 'runTask' ? { query: { limit: PAGE_LIMIT_MAX } } : null);
  const { busy, error, run } = useBusy();
  const toast = useToast();
  const qc = useQueryClient();
  const n = plural(count, 'device');
  const question = {
    addTags: `Add these tags to ${n}?`,
    removeTags: `Remove these tags from ${n}?`,
    move: `Move ${n} to another group? Their tasks and policies change with the group; connected agents are told at once.`,
    checkIn: `Ask the connected agents of ${n} to check in now? Offline devices check in at their next contact as usual.`,
    runTask: `Run a task now on ${n}? Only those that are targets of the task run it; offline ones receive it at their next contact until it expires.`,
    delete: `Delete ${n}? Their agents can no longer connect; this cannot be undone.`,
  }[action];
  async function submit(e: FormEvent) {
    e.preventDefault();
    const body: DeviceBulkAction = { action, ...target };
    if (action === 'addTags' || action === 'removeTags') body.tags = tags.split(/[\s,]+/).filter(Boolean);
    if (action === 'move') body.groupId = groupId;
    if (action === 'runTask') body.taskId = taskId;
    const r = await run(() => call(bulkDevices, { body }));
    if (!r) return;
    await qc.invalidateQueries({ predicate: (q) => /^\/(devices|groups\/statuses|tasks)/.test(String(q.queryKey[0])) });
    const parts = [`${plural(r.done, 'device')} done`];
    if (r.unchanged) parts.push(`${r.unchanged} unchanged`);
    if (r.refused) parts.push(`${r.refused} refused (no permission on their group)`);
    if (r.notFound) parts.push(`${r.notFound} not found`);
    toast(parts.join(', '));
    onDone();
    onClose();
  }
  const verb = { addTags: 'Tag', removeTags: 'Untag', move: 'Move', checkIn: 'Check in', runTask: 'Run on', delete: 'Delete' }[action];
  return (
    <Dialog open title={BULK_LABELS[action].replace('…', '')} onClose={onClose}>
      <DialogForm onSubmit={submit} onCancel={onClose} submitLabel={`${verb} ${n}`} disabled={busy || (action === 'move' && !groupId) || (action === 'runTask' && !taskId)} error={error}>
        <p>{question}</p>
        {action === 'addTags' || action === 'removeTags' ? (
          <Field label="Tags" hint="Separated by spaces or commas: letters, digits, “.”, “_”, “:”, “-”.">
            <input value={tags} onChange={(e) => setTags(e.target.value)} required autoFocus />
          </Field>
        ) : null}
        {action === 'move' ? <GroupSelect label="Target group" value={groupId} onChange={setGroupId} required /> : null}
        {action === 'runTask' ? (
          <Field label="Task">
            <select value={taskId} onChange={(e) => setTaskId(e.target.value)} required>
              <option value="">Choose a task…</option>
              {(tasks.data?.items ?? []).map((t) => (
                <option key={t.id} value={t.id}>
                  {t.name}
                </option>
              ))}
            </select>
          </Field>
        ) : null}
      </DialogForm>
    </Dialog>
  );
}

/** Named selections of the device list (the page's filters), like KSC's selections; built-in ones first. */
function SavedSelections({ search }: { search: URLSearchParams }) {
  const list = useOp(listSavedSelections, { query: { page: 'devices', limit: PAGE_LIMIT_MAX } });
  const [, navigate] = useLocation();
  const [saving, setSaving] = useState(false);
  const [name, setName] = useState('');
  const { busy, error, run } = useBusy();
  const qc = useQueryClient();
  const toast = useToast();
  const current: Record<string, string> = {};
  for (const k of ['group', ...FILTER_KEYS]) if (search.get(k)) current[k] = search.get(k)!;
  // Saved selections are an addition: when the server has none to offer, the list works without them.
  if (list.error) return null;
  const items = list.data?.items ?? [];
  return (
    <div className="actions">
      <Field label="Saved selection">
        <select
          value=""
          onChange={(e) => {
            const sel = items.find((s) => s.id === e.target.value);
            if (sel) navigate(`/devices${qs(sel.query)}`);
          }}
        >
          <option value="">{items.length ? 'Apply…' : 'None saved'}</option>
          {items.map((s) => (
            <option key={s.id} value={s.id}>
              {s.name}
            </option>
          ))}
        </select>
      </Field>
      <button type="button" onClick={() => setSaving(true)}>
        Save selection…
      </button>
      {items.some((s) => !s.builtIn) ? (
        <details className="column-chooser">
          <summary>Manage</summary>
          <ul className="plain">
            {items
              .filter((s) => !s.builtIn)
              .map((s) => (
                <li key={s.id}>
                  {s.name}{' '}
                  <button
                    type="button"
                    className="link"
                    aria-label={`Delete the saved selection ${s.name}`}
                    onClick={async () => {
                      await call(deleteSavedSelection, { params: { id: s.id } });
                      await qc.invalidateQueries({ predicate: (q) => String(q.queryKey[0]).startsWith('/saved-selections') });
                    }}
                  >
                    Delete
                  </button>
                </li>
              ))}
          </ul>
        </details>
      ) : null}
      <Dialog open={saving} title="Save this selection" onClose={() => setSaving(false)}>
        <DialogForm
          onSubmit={async (e) => {
            e.preventDefault();
            const r = await run(() => call(createSavedSelection, { body: { page: 'devices', name: name.trim(), query: current } }));
            if (!r) return;
            await qc.invalidateQueries({ predicate: (q) => String(q.queryKey[0]).startsWith('/saved-selections') });
            toast(`Selection “${r.name}” saved`);
            setName('');
            setSaving(false);
          }}
          onCancel={() => setSaving(false)}
          submitLabel="Save"
          disabled={busy || !name.trim()}
          error={error}
        >
          <p className="muted">The group and the filters of the list now: {Object.keys(current).length ? Object.entries(current).map(([k, v]) => `${k}=${v}`).join(', ') : 'none (every device)'}.</p>
          <Field label="Name">
            <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} autoFocus />
          </Field>
        </DialogForm>
      </Dialog>
    </div>
  );
}

const DUPLICATE_STATES = [
  { value: 'pending', label: 'Pending' },
  { value: 'approved', label: 'Approved' },
  { value: 'rejected', label: 'Rejected' },
  { value: '', label: 'All' },
];

function Duplicates() {
  const [state, setState] = useState<'' | 'pending' | 'approved' | 'rejected'>('pending');
  const [limit, setLimit] = useState(PAGE);
  // "Load more" asks for a longer first page: duplicates are few, and one list keeps the rows' order stable.
  const list = useOp(listDeviceDuplicates, { query: { state: state || undefined, limit } }, { placeholderData: (prev) => prev });
  return (
    <Section title={state === 'pending' ? 'Pending duplicates' : 'Duplicates'}>
      <p className="muted">
        A machine that presents the credential of another device with another machine identity (a cloned disk image, agent state copied elsewhere) is held here instead of taking that device's place; nothing of the two is merged. Approve it
        as a new device in the original's group (it gets a credential of its own at its next check-in), or reject it: it is refused from then on.
      </p>
      <div className="toolbar">
        <Field label="Show">
          <select value={state} onChange={(e) => { setState(e.target.value as typeof state); setLimit(PAGE); }}>
            {DUPLICATE_STATES.map((s) => (
              <option key={s.value} value={s.value}>
                {s.label}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <Async q={list}>
        {({ items: rows, nextCursor }) =>
          rows.length === 0 ? (
            <Empty>{state === 'pending' ? 'No machine is waiting: no duplicate credential was presented.' : 'None.'}</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Machine</th>
                    <th scope="col">Credential of</th>
                    <th scope="col">Address</th>
                    <th scope="col" className="num">
                      Seen
                    </th>
                    <th scope="col">First seen</th>
                    <th scope="col">Last seen</th>
                    <th scope="col">State</th>
                    <th scope="col">
                      <span className="muted">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((d) => (
                    <DuplicateRow key={d.id} d={d} />
                  ))}
                </tbody>
              </table>
              {nextCursor && limit < PAGE_LIMIT_MAX ? (
                <button type="button" onClick={() => setLimit(Math.min(PAGE_LIMIT_MAX, limit + PAGE))}>
                  Load more
                </button>
              ) : null}
            </div>
          )
        }
      </Async>
      {list.error && list.data ? <ErrorMessage error={list.error} /> : null}
    </Section>
  );
}

function DuplicateRow({ d }: { d: DeviceDuplicateView }) {
  const original = useOp(getDevice, { params: { id: d.deviceId } }, { staleTime: 60_000 });
  const may = useAccess().canIn(Permission.manageDevices, original.data?.groupId ?? null);
  const qc = useQueryClient();
  const toast = useToast();
  const originalName = original.data?.name ?? d.deviceId;
  const decide = async (what: 'approve' | 'reject') => {
    await call(what === 'approve' ? approveDeviceDuplicate : rejectDeviceDuplicate, { params: { id: d.id } });
    toast(what === 'approve' ? `${d.hostname} approved as a new device` : `${d.hostname} rejected`);
    await qc.invalidateQueries({ predicate: (q) => /^\/device(s|-duplicates)/.test(String(q.queryKey[0])) });
  };
  return (
    <tr>
      <td>
        <strong>{d.hostname}</strong>
        <div className="muted small">
          {d.inventory.osName} {d.inventory.osVersion}
        </div>
        <div className="mono small" title="Machine identity">
          {d.machineIdentity.slice(0, 12)}…
        </div>
      </td>
      <td>
        <Link href={`/devices/${encodeURIComponent(d.deviceId)}`}>{originalName}</Link>
        {original.data ? <div className="muted small">{original.data.groupPath}</div> : null}
      </td>
      <td className="small">{d.remoteAddress ?? '—'}</td>
      <td className="num">{d.seenCount.toLocaleString()}</td>
      <td className="nowrap">
        <Time iso={d.firstSeenAt} />
      </td>
      <td className="nowrap">
        <Time iso={d.lastSeenAt} />
      </td>
      <td>
        <StateBadge state={d.state === 'approved' ? 'active' : d.state === 'rejected' ? 'revoked' : 'pending'} label={d.state} />
        {d.decidedAt ? (
          <div className="muted small">
            by {d.decidedBy} <Time iso={d.decidedAt} />
          </div>
        ) : null}
        {d.newDeviceId ? (
          <div className="small">
            as <Link href={`/devices/${encodeURIComponent(d.newDeviceId)}`}>new device</Link>
          </div>
        ) : null}
      </td>
      <td>
        {d.state === 'pending' && may ? (
          <div className="actions">
            <ConfirmButton
              label="Approve"
              ariaLabel={`Approve ${d.hostname}`}
              confirmLabel={`Approve ${d.hostname}`}
              question={
                <p>
                  Approve the machine “{d.hostname}” as a new device in {original.data?.groupPath ?? 'the group of the original'}? It takes a credential of its own at its next check-in; “{originalName}” is not changed.
                </p>
              }
              onConfirm={() => decide('approve')}
            />
            <ConfirmButton
              label="Reject"
              ariaLabel={`Reject ${d.hostname}`}
              confirmLabel={`Reject ${d.hostname}`}
              danger
              question={<p>Reject the machine “{d.hostname}”? It is refused from now on; “{originalName}” keeps its credential.</p>}
              onConfirm={() => decide('reject')}
            />
          </div>
        ) : null}
      </td>
    </tr>
  );
}
