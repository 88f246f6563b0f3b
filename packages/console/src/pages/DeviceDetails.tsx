/**
 * One device: its inventory and installed products, its tasks (local ones marked), its runs
 * with their output, its events, and the actions on it (rename, move, tags, credential,
 * uninstall, delete). Online state and runs update live.
 */
import { useState, type FormEvent } from 'react';
import { Link, useLocation } from 'wouter';
import { deleteDevice, getDevice, listDeviceRuns, listEvents, listDeviceTasks, listTasks, PAGE_LIMIT_MAX, revokeDeviceCredential, rotateDeviceCredential, uninstallDeviceAgent, updateDevice, type DeviceView, type EventView, type Run, type Task } from '@garrison/protocol';
import { call, useOp } from '../api.ts';
import { Permission, useAccess } from '../access.tsx';
import { stateLabel } from '../format.ts';
import { DevicePolicy } from '../policies/DevicePolicy.tsx';
import { Async, ConfirmButton, Dialog, DialogForm, Empty, Field, GroupSelect, OnlineBadge, Page, Section, StateBadge, tabPanelProps, Tabs, Time, useBusy, useToast } from '../ui.tsx';

const RUNS_PAGE = 100;

type Tab = 'overview' | 'policy' | 'tasks' | 'runs' | 'events';
const TABS: { id: Tab; label: string }[] = [
  { id: 'overview', label: 'Overview' },
  { id: 'policy', label: 'Policy' },
  { id: 'tasks', label: 'Tasks' },
  { id: 'runs', label: 'Runs' },
  { id: 'events', label: 'Events' },
];

export function DeviceDetails({ id }: { id: string }) {
  const device = useOp(getDevice, { params: { id } });
  const [tab, setTab] = useState<Tab>('overview');
  const [editing, setEditing] = useState(false);
  const [, navigate] = useLocation();
  const toast = useToast();
  const access = useAccess();
  return (
    <Async q={device}>
      {(d) => (
        <Page
          title={d.name}
          subtitle={
            <>
              {d.uninstalledAt ? <span className="badge state-offline">uninstalled</span> : <OnlineBadge online={d.online} lastContactAt={d.lastContactAt} />} ·{' '}
              <Link href={`/devices?group=${d.groupId}`}>{d.groupPath}</Link>
            </>
          }
          actions={
            access.canIn(Permission.manageDevices, d.groupId) ? (
              <>
                <button type="button" onClick={() => setEditing(true)}>
                  Edit
                </button>
                <ConfirmButton
                  label="Rotate credential"
                  question={<p>Ask the agent to make a new credential? It happens at once if it is connected, else at its next check-in.</p>}
                  disabled={d.credentialRevoked}
                  onConfirm={async () => {
                    await call(rotateDeviceCredential, { params: { id } });
                    toast('Credential rotation requested');
                    await device.refetch();
                  }}
                />
                <ConfirmButton
                  label="Revoke credential"
                  danger
                  disabled={d.credentialRevoked}
                  question={<p>Revoke the device credential? The agent is disconnected at once and cannot come back without enrolling again.</p>}
                  onConfirm={async () => {
                    await call(revokeDeviceCredential, { params: { id } });
                    toast('Credential revoked');
                    await device.refetch();
                  }}
                />
                <ConfirmButton
                  label="Uninstall agent"
                  danger
                  disabled={d.credentialRevoked || d.uninstallRequested}
                  question={<p>Ask the agent to uninstall itself? The device record and its history are kept.</p>}
                  onConfirm={async () => {
                    await call(uninstallDeviceAgent, { params: { id } });
                    toast('Uninstall requested');
                    await device.refetch();
                  }}
                />
                <ConfirmButton
                  label="Delete device"
                  danger
                  question={<p>Delete “{d.name}” and revoke its credential? Its runs and events stay in the log.</p>}
                  onConfirm={async () => {
                    await call(deleteDevice, { params: { id } });
                    toast(`Device ${d.name} deleted`);
                    navigate('/devices');
                  }}
                />
              </>
            ) : null
          }
        >
          <Tabs label="Device sections" idBase="device" tabs={TABS} value={tab} onChange={setTab} />
          <div {...tabPanelProps('device', tab)}>
            {tab === 'overview' ? <Overview d={d} /> : null}
            {tab === 'policy' ? <DevicePolicy id={id} /> : null}
            {tab === 'tasks' ? <DeviceTasks id={id} groupId={d.groupId} /> : null}
            {tab === 'runs' ? <DeviceRuns id={id} /> : null}
            {tab === 'events' ? <DeviceEvents id={id} /> : null}
          </div>
          <EditDialog open={editing} d={d} onClose={() => setEditing(false)} onSaved={() => void device.refetch()} />
        </Page>
      )}
    </Async>
  );
}

function Overview({ d }: { d: DeviceView }) {
  return (
    <div className="grid">
      <Section title="Inventory">
        <dl className="props">
          <dt>Host name</dt>
          <dd>{d.hostname}</dd>
          <dt>Operating system</dt>
          <dd>
            {d.osName} {d.osVersion} ({d.osPlatform}, {d.arch})
          </dd>
          <dt>Addresses</dt>
          <dd>{d.addresses.join(', ') || '—'}</dd>
          <dt>Time zone</dt>
          <dd>{d.timeZone}</dd>
          <dt>Agent version</dt>
          <dd>{d.agentVersion}</dd>
          <dt>Tags</dt>
          <dd>{d.tags.length ? d.tags.map((t) => <span key={t} className="badge">{t}</span>) : '—'}</dd>
        </dl>
      </Section>
      <Section title="Agent">
        <dl className="props">
          <dt>Enrolled</dt>
          <dd>
            <Time iso={d.enrolledAt} />
          </dd>
          <dt>Last contact</dt>
          <dd>
            <Time iso={d.lastContactAt} />
          </dd>
          <dt>Credential</dt>
          <dd>
            {d.credentialRevoked ? <StateBadge state="revoked" /> : <StateBadge state="active" />}
            {d.rotateRequested ? <span className="muted"> · rotation requested</span> : null}
            {d.credentialRotatedAt ? (
              <div className="small muted">
                rotated <Time iso={d.credentialRotatedAt} />
              </div>
            ) : null}
          </dd>
          {d.uninstallRequested || d.uninstalledAt ? (
            <>
              <dt>Uninstall</dt>
              <dd>{d.uninstalledAt ? <>done <Time iso={d.uninstalledAt} /></> : 'requested, waiting for the agent'}</dd>
            </>
          ) : null}
          {d.clonedFrom ? (
            <>
              <dt>Cloned from</dt>
              <dd>
                <Link href={`/devices/${d.clonedFrom}`}>{d.clonedFrom}</Link>
              </dd>
            </>
          ) : null}
          <dt>Machine identity</dt>
          <dd className="mono small">{d.machineIdentity ?? '—'}</dd>
          <dt>Device id</dt>
          <dd className="mono small">{d.id}</dd>
        </dl>
      </Section>
      <Section title="Installed products">
        {d.products.length === 0 ? (
          <Empty>No managed products reported.</Empty>
        ) : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Product</th>
                  <th>Version</th>
                  <th>Service</th>
                </tr>
              </thead>
              <tbody>
                {d.products.map((p) => (
                  <tr key={p.id}>
                    <td>{p.id}</td>
                    <td>{p.version}</td>
                    <td>{p.running === undefined ? '—' : p.running ? <StateBadge state="running" label="running" /> : <StateBadge state="offline" label="stopped" />}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Section>
    </div>
  );
}

function scopeLabel(t: Task): string {
  if (t.scope.type === 'local') return 'local (this device)';
  if (t.scope.type === 'group') return 'group';
  return 'global';
}

function DeviceTasks({ id, groupId }: { id: string; groupId: string }) {
  const tasks = useOp(listDeviceTasks, { params: { id }, query: { limit: PAGE_LIMIT_MAX } });
  const mayCreate = useAccess().canIn(Permission.manageTasks, groupId);
  return (
    <Section title="Effective tasks" actions={mayCreate ? <Link href={`/tasks/new?deviceId=${encodeURIComponent(id)}`} className="button">New local task</Link> : null}>
      <Async q={tasks}>
        {({ items: list }) =>
          list.length === 0 ? (
            <Empty>No task applies to this device.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th>Task</th>
                    <th>Product / type</th>
                    <th>Scope</th>
                    <th>Enabled</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((t) => (
                    <tr key={t.id}>
                      <td>
                        <Link href={`/tasks/${t.id}`}>{t.name}</Link>
                      </td>
                      <td>
                        {t.product}/{t.type}
                      </td>
                      <td>{scopeLabel(t)}</td>
                      <td>{t.enabled ? 'yes' : 'no'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Async>
    </Section>
  );
}

export function RunOutput({ run }: { run: Run }) {
  const [open, setOpen] = useState(false);
  if (!run.outputTail) return <span className="muted">—</span>;
  return (
    <>
      <button type="button" className="link" onClick={() => setOpen(true)}>
        Output
      </button>
      <Dialog open={open} title={`Output of run ${run.id}`} onClose={() => setOpen(false)} wide>
        <div className="dialog-body">
          <pre>{run.outputTail}</pre>
        </div>
      </Dialog>
    </>
  );
}

function DeviceRuns({ id }: { id: string }) {
  // Page after page, newest first: Previous goes back along the cursors already followed.
  const [cursors, setCursors] = useState<string[]>([]);
  const runs = useOp(listDeviceRuns, { params: { id }, query: { limit: RUNS_PAGE, ...(cursors.length ? { cursor: cursors[cursors.length - 1] } : {}) } }, { placeholderData: (prev) => prev });
  const tasks = useOp(listTasks, { query: { limit: PAGE_LIMIT_MAX } });
  const name = (taskId: string) => tasks.data?.items.find((t) => t.id === taskId)?.name ?? taskId;
  return (
    <Section title="Runs">
      <Async q={runs}>
        {({ items: list, nextCursor }) =>
          list.length === 0 && cursors.length === 0 ? (
            <Empty>No runs yet.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th>Task</th>
                    <th>State</th>
                    <th>Cause</th>
                    <th>Started</th>
                    <th>Ended</th>
                    <th>Exit code</th>
                    <th>Output</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((r) => (
                    <tr key={r.id}>
                      <td>
                        <Link href={`/tasks/${r.taskId}`}>{name(r.taskId)}</Link>
                      </td>
                      <td>
                        <StateBadge state={r.state} label={stateLabel(r.state)} />
                        {r.percent !== null && r.state === 'running' ? ` ${r.percent}%` : ''}
                        {r.reason ? <div className="small muted">{r.reason}</div> : null}
                      </td>
                      <td>{r.cause}</td>
                      <td>
                        <Time iso={r.startedAt} />
                      </td>
                      <td>
                        <Time iso={r.endedAt} />
                      </td>
                      <td>{r.exitCode ?? '—'}</td>
                      <td>
                        <RunOutput run={r} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <div className="toolbar">
                <button type="button" disabled={cursors.length === 0} onClick={() => setCursors((c) => c.slice(0, -1))}>
                  Newer runs
                </button>
                <button type="button" disabled={!nextCursor} onClick={() => nextCursor && setCursors((c) => [...c, nextCursor])}>
                  Older runs
                </button>
              </div>
            </div>
          )
        }
      </Async>
    </Section>
  );
}

function DeviceEvents({ id }: { id: string }) {
  const events = useOp(listEvents, { query: { deviceId: id, limit: 200 } });
  return (
    <Section title="Events" actions={<Link href={`/events?deviceId=${id}`}>Open in the event log</Link>}>
      <Async q={events}>{(page) => (page.items.length === 0 ? <Empty>No events.</Empty> : <EventTable events={page.items} />)}</Async>
    </Section>
  );
}

export function EventTable({ events }: { events: EventView[] }) {
  return (
    <div className="table-wrap">
      <table>
        <thead>
          <tr>
            <th>Time</th>
            <th>Severity</th>
            <th>Kind</th>
            <th>Message</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr key={e.id}>
              <td className="nowrap">
                <Time iso={e.time} />
              </td>
              <td>
                <StateBadge state={e.severity} />
              </td>
              <td className="mono small">{e.kind}</td>
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

function EditDialog({ open, d, onClose, onSaved }: { open: boolean; d: DeviceView; onClose: () => void; onSaved: () => void }) {
  const [name, setName] = useState(d.name);
  const [groupId, setGroupId] = useState(d.groupId);
  const [tags, setTags] = useState(d.tags.join(', '));
  const { busy, error, run } = useBusy();
  async function submit(e: FormEvent) {
    e.preventDefault();
    const r = await run(() =>
      call(updateDevice, {
        params: { id: d.id },
        body: {
          name,
          groupId,
          tags: tags
            .split(',')
            .map((t) => t.trim())
            .filter(Boolean),
        },
      }),
    );
    if (r) {
      onSaved();
      onClose();
    }
  }
  return (
    <Dialog open={open} title={`Edit ${d.name}`} onClose={onClose}>
      <DialogForm onSubmit={submit} onCancel={onClose} submitLabel={'Save device'} disabled={busy} error={error}>
        <Field label="Device name">
          <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
        </Field>
        <GroupSelect label="Group" value={groupId} onChange={setGroupId} required />
        <Field label="Tags" hint="Comma-separated; global tasks can select devices by tag.">
          <input value={tags} onChange={(e) => setTags(e.target.value)} />
        </Field>
      </DialogForm>
    </Dialog>
  );
}
