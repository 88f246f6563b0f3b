/**
 * The group tree with its devices: pick a group, search and filter its devices, move them to
 * another group; create, rename, configure and delete groups. Online state updates live.
 * Duplicates: machines that presented another device's credential (a cloned image, copied
 * state), held until they are approved as devices of their own or rejected.
 */
import { useMemo, useState, type FormEvent } from 'react';
import { Link, useLocation, useSearch } from 'wouter';
import { useQueryClient } from '@tanstack/react-query';
import type { DeviceView, GroupView } from '@garrison/protocol';
import { del, patch, post, qs, useApi } from '../api.ts';
import { Permission, useAccess } from '../access.tsx';
import { Async, ConfirmButton, Dialog, DialogForm, Empty, ErrorMessage, Field, GroupSelect, OnlineBadge, Page, Section, StateBadge, Tabs, Time, tabPanelProps, useBusy, useGroups, useToast } from '../ui.tsx';
import { plural } from '../format.ts';
import { GroupPolicies } from '../policies/GroupPolicies.tsx';
import type { GroupAssignment } from '../policies/model.ts';
import type { DeviceDuplicateView } from '@garrison/protocol';

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

function Tree({ nodes, selected, onSelect }: { nodes: TreeNode[]; selected: string; onSelect: (id: string) => void }) {
  return (
    <ul className="tree">
      {nodes.map((n) => (
        <li key={n.group.id}>
          <button type="button" aria-current={n.group.id === selected} onClick={() => onSelect(n.group.id)}>
            {n.group.name}
          </button>
          {n.children.length ? <Tree nodes={n.children} selected={selected} onSelect={onSelect} /> : null}
        </li>
      ))}
    </ul>
  );
}

const DUPLICATES = `/device-duplicates${qs({ state: 'pending' })}`;

type View = 'tree' | 'duplicates';

export function Devices() {
  const search = new URLSearchParams(useSearch());
  const [, navigate] = useLocation();
  const view: View = search.get('view') === 'duplicates' ? 'duplicates' : 'tree';
  const pending = useApi<DeviceDuplicateView[]>(DUPLICATES);
  const waiting = pending.data?.length ?? 0;
  return (
    <Page title="Devices" subtitle="The group tree and the devices in it">
      <Tabs
        label="Device views"
        idBase="devices"
        value={view}
        onChange={(v) => navigate(v === 'duplicates' ? '/devices?view=duplicates' : `/devices${qs({ group: search.get('group') })}`)}
        tabs={[
          { id: 'tree', label: 'Group tree' },
          { id: 'duplicates', label: waiting ? `Duplicates (${waiting})` : 'Duplicates' },
        ]}
      />
      <div {...tabPanelProps('devices', view)}>{view === 'duplicates' ? <Duplicates /> : <GroupTree picked={search.get('group')} />}</div>
    </Page>
  );
}

function GroupTree({ picked }: { picked: string | null }) {
  const groups = useGroups();
  const [, navigate] = useLocation();
  const tree = useMemo(() => buildTree(groups.data ?? []), [groups.data]);
  // The top of the tree this administrator sees: the root group, or the group they were granted.
  const groupId = picked || (tree[0]?.group.id ?? '');
  const group = groups.data?.find((g) => g.id === groupId);
  return (
    <div className="split">
      <Section title="Groups">
        <Async q={groups}>
          {() => (
            <nav aria-label="Group tree">
              <Tree nodes={tree} selected={groupId} onSelect={(id) => navigate(`/devices?group=${id}`)} />
            </nav>
          )}
        </Async>
      </Section>
      <div>
        {group ? <GroupActions group={group} onDeleted={() => navigate(`/devices?group=${group.parentId ?? ''}`)} /> : null}
        {groupId ? <DeviceList groupId={groupId} /> : null}
      </div>
    </div>
  );
}

function GroupActions({ group, onDeleted }: { group: GroupView; onDeleted: () => void }) {
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
                  await del(`/groups/${group.id}`);
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
  const own = useApi<{ items: GroupAssignment[] }>(`/groups/${group.id}/policies`);
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
    const g = await run(() => post<GroupView>('/groups', { name, parentId: parent.id }));
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
    const r = await run(() => patch<GroupView>(`/groups/${group.id}`, body));
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

function DeviceList({ groupId }: { groupId: string }) {
  const [text, setText] = useState('');
  const [online, setOnline] = useState('');
  const [recursive, setRecursive] = useState(true);
  const [offset, setOffset] = useState(0);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [moving, setMoving] = useState(false);
  const path = `/devices${qs({ groupId, recursive, search: text.trim() || undefined, online: online || undefined, limit: PAGE, offset })}`;
  const devices = useApi<DeviceView[]>(path, { placeholderData: (prev) => prev });
  const mayMove = useAccess().can(Permission.manageDevices);
  const toggle = (id: string) =>
    setSelected((s) => {
      const n = new Set(s);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });
  return (
    <Section title="Devices" actions={mayMove ? <button type="button" disabled={selected.size === 0} onClick={() => setMoving(true)}>Move to group…</button> : null}>
      <div className="toolbar" role="search">
        <Field label="Search">
          <input type="search" value={text} placeholder="name, host name, address" onChange={(e) => { setText(e.target.value); setOffset(0); }} />
        </Field>
        <Field label="State">
          <select value={online} onChange={(e) => { setOnline(e.target.value); setOffset(0); }}>
            <option value="">All</option>
            <option value="true">Online</option>
            <option value="false">Offline</option>
          </select>
        </Field>
        <Field label="Include subgroups" inline>
          <input type="checkbox" checked={recursive} onChange={(e) => { setRecursive(e.target.checked); setOffset(0); }} />
        </Field>
      </div>
      <Async q={devices}>
        {(list) =>
          list.length === 0 && offset === 0 ? (
            <Empty>No devices here{text ? ' match the search' : ''}. Enrol machines from Installers or Push installation.</Empty>
          ) : (
            <>
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      {mayMove ? (
                        <th>
                          <input
                            type="checkbox"
                            aria-label="Select all devices on this page"
                            checked={list.length > 0 && list.every((d) => selected.has(d.id))}
                            onChange={(e) => setSelected(e.target.checked ? new Set(list.map((d) => d.id)) : new Set())}
                          />
                        </th>
                      ) : null}
                      <th>Name</th>
                      <th>State</th>
                      <th>Group</th>
                      <th>OS</th>
                      <th>Addresses</th>
                      <th>Agent</th>
                      <th>Tags</th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((d) => (
                      <tr key={d.id} className={selected.has(d.id) ? 'selected' : ''}>
                        {mayMove ? (
                          <td>
                            <input type="checkbox" aria-label={`Select ${d.name}`} checked={selected.has(d.id)} onChange={() => toggle(d.id)} />
                          </td>
                        ) : null}
                        <td>
                          <Link href={`/devices/${d.id}`}>{d.name}</Link>
                          {d.hostname !== d.name ? <div className="muted small">{d.hostname}</div> : null}
                        </td>
                        <td>{d.uninstalledAt ? <span className="badge state-offline">uninstalled</span> : <OnlineBadge online={d.online} lastContactAt={d.lastContactAt} />}</td>
                        <td>{d.groupPath}</td>
                        <td>
                          {d.osName} {d.osVersion}
                        </td>
                        <td className="small">{d.addresses.slice(0, 2).join(', ')}</td>
                        <td className="small">{d.agentVersion}</td>
                        <td className="small">{d.tags.join(', ')}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              <div className="toolbar">
                <span className="muted">
                  {list.length ? `${offset + 1}–${offset + list.length}` : 'none'}
                  {selected.size ? ` · ${plural(selected.size, 'device')} selected` : ''}
                </span>
                <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - PAGE))}>
                  Previous
                </button>
                <button type="button" disabled={list.length < PAGE} onClick={() => setOffset(offset + PAGE)}>
                  Next
                </button>
              </div>
            </>
          )
        }
      </Async>
      <MoveDialog open={moving} ids={[...selected]} onClose={() => setMoving(false)} onMoved={() => setSelected(new Set())} />
    </Section>
  );
}

function MoveDialog({ open, ids, onClose, onMoved }: { open: boolean; ids: string[]; onClose: () => void; onMoved: () => void }) {
  const [target, setTarget] = useState('');
  const { busy, error, run } = useBusy();
  const toast = useToast();
  const qc = useQueryClient();
  return (
    <Dialog open={open} title={`Move ${plural(ids.length, 'device')}`} onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          const done = await run(async () => {
            for (const id of ids) await patch(`/devices/${id}`, { groupId: target });
            return true;
          });
          if (done) {
            await qc.invalidateQueries({ predicate: (q) => String(q.queryKey[0]).startsWith('/devices') });
            toast(`${plural(ids.length, 'device')} moved`);
            onMoved();
            onClose();
          }
        }}
      >
        <div className="dialog-body">
          <GroupSelect label="Target group" value={target} onChange={setTarget} required />
          <p className="muted">The devices' tasks change with their group; connected agents are told at once.</p>
        </div>
        <ErrorMessage error={error} />
        <footer className="dialog-footer">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy || !target}>
            Move
          </button>
        </footer>
      </form>
    </Dialog>
  );
}

const DUPLICATE_STATES = [
  { value: 'pending', label: 'Pending' },
  { value: 'approved', label: 'Approved' },
  { value: 'rejected', label: 'Rejected' },
  { value: '', label: 'All' },
];

function Duplicates() {
  const [state, setState] = useState('pending');
  const list = useApi<DeviceDuplicateView[]>(`/device-duplicates${qs({ state })}`);
  return (
    <Section title={state === 'pending' ? 'Pending duplicates' : 'Duplicates'}>
      <p className="muted">
        A machine that presents the credential of another device with another machine identity (a cloned disk image, agent state copied elsewhere) is held here instead of taking that device's place; nothing of the two is merged. Approve it
        as a new device in the original's group (it gets a credential of its own at its next check-in), or reject it: it is refused from then on.
      </p>
      <div className="toolbar">
        <Field label="Show">
          <select value={state} onChange={(e) => setState(e.target.value)}>
            {DUPLICATE_STATES.map((s) => (
              <option key={s.value} value={s.value}>
                {s.label}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <Async q={list}>
        {(rows) =>
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
            </div>
          )
        }
      </Async>
      {list.error && list.data ? <ErrorMessage error={list.error} /> : null}
    </Section>
  );
}

function DuplicateRow({ d }: { d: DeviceDuplicateView }) {
  const original = useApi<DeviceView>(`/devices/${encodeURIComponent(d.deviceId)}`, { staleTime: 60_000 });
  const may = useAccess().canIn(Permission.manageDevices, original.data?.groupId ?? null);
  const qc = useQueryClient();
  const toast = useToast();
  const originalName = original.data?.name ?? d.deviceId;
  const decide = async (what: 'approve' | 'reject') => {
    await post(`/device-duplicates/${encodeURIComponent(d.id)}/${what}`);
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
