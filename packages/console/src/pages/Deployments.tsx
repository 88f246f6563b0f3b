/**
 * Product deployment: the products assigned to a group (its own and those inherited from its
 * ancestors), with branch, pinned version and staged rollout; and compliance, the deployment
 * state of every device and product.
 */
import { useMemo, useState, type FormEvent } from 'react';
import { Link } from 'wouter';
import { useQuery } from '@tanstack/react-query';
import {
  assignDeployment,
  getDeploymentCompliance,
  listGroupDeployments,
  listPackages,
  PAGE_LIMIT_MAX,
  resumeRollout,
  unassignDeployment,
  type Branch,
  type DeploymentAssignBody,
  type DeploymentComplianceItem,
  type DeploymentState,
  type EffectiveDeployment,
} from '@garrison/protocol';
import { allPages, call, useOp } from '../api.ts';
import { plural } from '../format.ts';
import { Async, ConfirmButton, Dialog, DialogForm, Empty, ErrorMessage, GroupSelect, Page, PageNav, Section, StateBadge, Time, useBusy, useGroups, useToast } from '../ui.tsx';
import { BRANCHES, StateBar, Tabs, checkError, optionalInt, tabPanelProps, useRootGroupId, Field } from '../admin/common.tsx';
import { Permission, useAccess } from '../access.tsx';

type Effective = EffectiveDeployment;
type ComplianceRow = DeploymentComplianceItem;

const DEPLOYMENT_STATES: { state: DeploymentState; label: string }[] = [
  { state: 'compliant', label: 'Compliant' },
  { state: 'installing', label: 'Installing' },
  { state: 'pending', label: 'Pending' },
  { state: 'failed', label: 'Failed' },
  { state: 'unavailable', label: 'Unavailable' },
];
const PRODUCT_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const DEFAULT_FAILURE_THRESHOLD = 10;
const PAGE = 100;

/** Every package of the repository, for the assignment form's product and version pickers (a repository holds versions, not devices: few). */
function useAllPackages() {
  return useQuery({ queryKey: ['/repository/packages?all'], queryFn: ({ signal }) => allPages(listPackages, { query: { limit: PAGE_LIMIT_MAX } }, { signal }), staleTime: 60_000 });
}

type Tab = 'assignments' | 'compliance';

export function Deployments() {
  const [tab, setTab] = useState<Tab>('assignments');
  return (
    <Page title="Deployments" subtitle="Products assigned to groups are installed and kept up to date by the agents' deployment task at every check-in; subgroups inherit them.">
      <Tabs
        label="Deployment views"
        idBase="deployments"
        value={tab}
        onChange={setTab}
        tabs={[
          { id: 'assignments', label: 'Assignments' },
          { id: 'compliance', label: 'Compliance' },
        ]}
      />
      <div {...tabPanelProps('deployments', tab)}>{tab === 'assignments' ? <Assignments /> : <ComplianceView />}</div>
    </Page>
  );
}

// ---------------------------------------------------------------------------------------------
// Assignments
// ---------------------------------------------------------------------------------------------

function Assignments() {
  const root = useRootGroupId();
  const [picked, setPicked] = useState('');
  const groupId = picked || root;
  const groups = useGroups();
  const group = groups.data?.find((g) => g.id === groupId);
  const list = useOp(listGroupDeployments, groupId ? { params: { id: groupId } } : null);
  const [editing, setEditing] = useState<{ initial: Effective | null } | null>(null);
  const toast = useToast();
  const access = useAccess();
  const manage = groupId !== '' && access.canIn(Permission.manageDeployments, groupId);

  return (
    <Section
      title={group ? `Products of ${group.path}` : 'Products of a group'}
      actions={
        manage ? (
          <button type="button" className="primary" onClick={() => setEditing({ initial: null })}>
            Assign a product
          </button>
        ) : null
      }
    >
      <div className="toolbar">
        <GroupSelect value={groupId} onChange={setPicked} />
      </div>
      {group?.blockInheritance ? <p className="notice">This group blocks inheritance: its parents' assignments do not apply here.</p> : null}
      {!groupId ? (
        groups.error ? <ErrorMessage error={groups.error} /> : <Empty>Choose a group.</Empty>
      ) : (
        <Async q={list}>
          {(rows) =>
            rows.length === 0 ? (
              <Empty>No product is assigned to this group or its parents.</Empty>
            ) : (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Product</th>
                      <th scope="col">Action</th>
                      <th scope="col">Version</th>
                      <th scope="col">Rollout</th>
                      <th scope="col">Set on</th>
                      <th scope="col">Updated</th>
                      <th scope="col">
                        <span className="muted">Actions</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {rows.map((a) => {
                      const own = a.inheritedFrom === groupId;
                      return (
                        <tr key={`${a.inheritedFrom}/${a.product}`}>
                          <td>
                            <strong>{a.product}</strong>
                          </td>
                          <td>
                            <StateBadge state={a.action} label={a.action === 'install' ? 'install' : 'remove'} />
                            {a.removeConflicts ? <div className="muted small">removes conflicting products first</div> : null}
                            {a.urgent ? <div className="muted small">urgent: ignores maintenance windows</div> : null}
                          </td>
                          <td>{a.action === 'remove' ? <span className="muted">—</span> : a.pinnedVersion ? <>pinned <code>{a.pinnedVersion}</code></> : <>newest in <StateBadge state={a.branch} /></>}</td>
                          <td>
                            <RolloutCell a={a} />
                          </td>
                          <td>{own ? <span>this group</span> : <span className="muted">inherited from {a.groupPath}</span>}</td>
                          <td className="nowrap">
                            <Time iso={a.updatedAt} />
                          </td>
                          <td>
                            <div className="actions">
                              {a.rolloutState?.state === 'halted' && access.canIn(Permission.manageDeployments, a.groupId) ? (
                                <ConfirmButton
                                  label="Resume rollout"
                                  question={
                                    <p>
                                      Resume the rollout of {a.product} {a.rolloutState.targetVersion} on {a.groupPath}? It halted because {a.rolloutState.reason ?? 'too many installs failed'}. Resume once a fixed
                                      package is checked in or the failures are understood.
                                    </p>
                                  }
                                  onConfirm={async () => {
                                    await call(resumeRollout, { params: { id: a.groupId, product: a.product } });
                                    toast(`Rollout of ${a.product} resumed`);
                                    await list.refetch();
                                  }}
                                />
                              ) : null}
                              {manage ? (
                                <>
                                  <button type="button" onClick={() => setEditing({ initial: a })} aria-label={own ? `Change ${a.product}` : `Override ${a.product} on this group`}>
                                    {own ? 'Change' : 'Override'}
                                  </button>
                                  {own ? (
                                    <ConfirmButton
                                      label="Unassign"
                                      danger
                                      confirmLabel={`Unassign ${a.product}`}
                                      question={
                                        <p>
                                          Remove the assignment of <strong>{a.product}</strong> from {a.groupPath}? Devices keep what is installed; an assignment inherited from a parent group applies
                                          again.
                                        </p>
                                      }
                                      onConfirm={async () => {
                                        await call(unassignDeployment, { params: { id: groupId, product: a.product } });
                                        toast(`${a.product} unassigned from ${a.groupPath}`);
                                        await list.refetch();
                                      }}
                                    />
                                  ) : null}
                                </>
                              ) : null}
                            </div>
                          </td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              </div>
            )
          }
        </Async>
      )}
      <Dialog open={editing !== null} title={editing?.initial ? `${editing.initial.inheritedFrom === groupId ? 'Change' : 'Override'} ${editing.initial.product}` : 'Assign a product'} onClose={() => setEditing(null)} wide>
        {editing && group ? (
          <AssignForm
            groupId={groupId}
            groupPath={group.path}
            initial={editing.initial}
            onClose={() => setEditing(null)}
            onSaved={() => {
              setEditing(null);
              void list.refetch();
            }}
          />
        ) : null}
      </Dialog>
    </Section>
  );
}

function RolloutCell({ a }: { a: Effective }) {
  if (!a.rollout) return <span className="muted">all at once</span>;
  const phases = a.rolloutState?.phases ?? [...(a.rollout.pilotGroupId ? ['pilot'] : []), ...(a.rollout.percentages?.length ? a.rollout.percentages : [100]).map((p) => `${p}%`)];
  const r = a.rolloutState;
  return (
    <div>
      <div className="small">
        staged: {phases.join(' → ')}, halts above {a.rollout.failureThresholdPercent ?? DEFAULT_FAILURE_THRESHOLD}% failed
        {a.rollout.maxConcurrentInstalls ? `, at most ${a.rollout.maxConcurrentInstalls} installing at once` : ''}
      </div>
      {r ? (
        <div>
          <StateBadge state={r.state} /> <code>{r.targetVersion}</code>{' '}
          <span className="small">
            {r.state === 'completed' ? 'every phase done' : `phase ${Math.min(r.phase + 1, r.phases.length)} of ${r.phases.length} (${r.phases[r.phase] ?? '—'})`}
          </span>
          {r.reason ? <div className="small state-halted">{r.reason}</div> : null}
        </div>
      ) : (
        <div className="muted small">waiting for a new version</div>
      )}
    </div>
  );
}

function AssignForm({ groupId, groupPath, initial, onClose, onSaved }: { groupId: string; groupPath: string; initial: Effective | null; onClose: () => void; onSaved: () => void }) {
  const packages = useAllPackages();
  const [product, setProduct] = useState(initial?.product ?? '');
  const [action, setAction] = useState<'install' | 'remove'>(initial?.action ?? 'install');
  const [branch, setBranch] = useState<Branch>(initial?.branch ?? 'current');
  const [pinned, setPinned] = useState(initial?.pinnedVersion ?? '');
  const [removeConflicts, setRemoveConflicts] = useState(initial?.removeConflicts ?? false);
  const [urgent, setUrgent] = useState(initial?.urgent ?? false);
  const [staged, setStaged] = useState(!!initial?.rollout);
  const [pilot, setPilot] = useState(initial?.rollout?.pilotGroupId ?? '');
  const [phases, setPhases] = useState(initial?.rollout?.percentages?.join(', ') ?? '10, 50, 100');
  const [threshold, setThreshold] = useState(initial?.rollout?.failureThresholdPercent !== undefined ? String(initial.rollout.failureThresholdPercent) : '');
  const [maxConcurrent, setMaxConcurrent] = useState(initial?.rollout?.maxConcurrentInstalls !== undefined ? String(initial.rollout.maxConcurrentInstalls) : '');
  const { busy, error, setError, run } = useBusy();
  const toast = useToast();

  const products = useMemo(() => [...new Set((packages.data ?? []).map((p) => p.product))].sort(), [packages.data]);
  const versions = (packages.data ?? []).filter((p) => p.product === product.trim());
  const inBranch = versions.find((p) => p.branch === branch);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const p = product.trim();
    if (!PRODUCT_ID.test(p)) return setError(checkError('A product id is lower-case letters, digits, ".", "_" or "-" (e.g. sample-scanner).'));
    const body: DeploymentAssignBody = { action, removeConflicts, urgent };
    if (action === 'install') {
      body.branch = branch;
      body.pinnedVersion = pinned || null;
      if (staged) {
        const percentages = phases.trim() ? phases.split(/[\s,;]+/).filter(Boolean).map(Number) : [];
        if (percentages.some((n) => !Number.isInteger(n) || n < 1 || n > 100)) return setError(checkError('Phases are percentages from 1 to 100, separated by commas (e.g. 10, 50, 100).'));
        if (percentages.length > 10) return setError(checkError('A rollout has at most 10 percentage phases.'));
        if (percentages.some((n, i) => i > 0 && n <= percentages[i - 1]!)) return setError(checkError('Phases grow: each percentage is larger than the one before (they are shares of all devices).'));
        const t = optionalInt(threshold);
        if (t !== undefined && (Number.isNaN(t) || t < 0 || t > 100)) return setError(checkError('The failure threshold is a percentage from 0 to 100.'));
        const cap = optionalInt(maxConcurrent);
        if (cap !== undefined && (Number.isNaN(cap) || cap < 1)) return setError(checkError('The most devices installing at once is a whole number, 1 or more.'));
        if (!pilot && percentages.length === 0 && cap === undefined) return setError(checkError('A staged rollout needs a pilot group, percentage phases, a limit of devices installing at once, or several of these.'));
        body.rollout = {
          ...(pilot ? { pilotGroupId: pilot } : {}),
          ...(percentages.length ? { percentages } : {}),
          ...(t !== undefined ? { failureThresholdPercent: t } : {}),
          ...(cap !== undefined ? { maxConcurrentInstalls: cap } : {}),
        };
      } else {
        body.rollout = null;
      }
    }
    const saved = await run(() => call(assignDeployment, { params: { id: groupId, product: p }, body }));
    if (saved) {
      toast(`${saved.product}: ${saved.action === 'remove' ? 'removed from' : `installed ${saved.pinnedVersion ? `at ${saved.pinnedVersion}` : `from ${saved.branch}`} on`} ${saved.groupPath} and its subgroups`);
      onSaved();
    }
  };

  return (
    <DialogForm onSubmit={submit} onCancel={onClose} submitLabel={busy ? 'Saving…' : initial && initial.inheritedFrom === groupId ? 'Save assignment' : 'Assign'} disabled={busy} error={error} onDismissError={() => setError(null)}>
      <p className="muted">
        On <strong>{groupPath}</strong> and its subgroups (unless they block inheritance or assign the product themselves).
      </p>
      {initial ? (
        <p>
          Product <strong>{initial.product}</strong>
        </p>
      ) : (
        <Field label="Product" hint={packages.data && products.length === 0 ? 'The repository has no packages yet: check one in on the Repository page.' : 'A product with packages in the repository.'}>
          <input value={product} onChange={(e) => setProduct(e.target.value)} list="deploy-products" required autoComplete="off" spellCheck={false} />
        </Field>
      )}
      {initial ? null : (
        <datalist id="deploy-products">
          {products.map((p) => (
            <option key={p} value={p} />
          ))}
        </datalist>
      )}
      <fieldset>
        <legend>Action</legend>
        <div className="adm-radio-row">
          <label>
            <input type="radio" name="action" value="install" checked={action === 'install'} onChange={() => setAction('install')} /> Install and keep up to date
          </label>
          <label>
            <input type="radio" name="action" value="remove" checked={action === 'remove'} onChange={() => setAction('remove')} /> Remove from the devices
          </label>
        </div>
      </fieldset>
      {action === 'install' ? (
        <>
          <div className="row adm-top">
            <Field label="Branch" hint={product.trim() ? (inBranch ? `${branch} is ${inBranch.version}` : `${product.trim()} has no package in ${branch}`) : 'current: the default; previous: a rollback; evaluation: for pilots.'}>
              <select value={branch} onChange={(e) => setBranch(e.target.value as Branch)}>
                {BRANCHES.map((b) => (
                  <option key={b} value={b}>
                    {b}
                  </option>
                ))}
              </select>
            </Field>
            <Field label="Version" hint="Pin a version to install exactly it, whatever the branch holds.">
              <select value={pinned} onChange={(e) => setPinned(e.target.value)}>
                <option value="">Newest in the branch</option>
                {versions.map((v) => (
                  <option key={v.id} value={v.version}>
                    {v.version}
                    {v.branch ? ` (${v.branch})` : ''}
                  </option>
                ))}
                {pinned && !versions.some((v) => v.version === pinned) ? <option value={pinned}>{pinned} (not in the repository)</option> : null}
              </select>
            </Field>
          </div>
          <fieldset>
            <legend>Staged rollout</legend>
            <Field inline label="Roll new versions out in phases">
              <input type="checkbox" checked={staged} onChange={(e) => setStaged(e.target.checked)} />
            </Field>
            {staged ? (
              <>
                <p className="muted small">
                  A new version goes first to the pilot group, then to growing shares of the other devices; each phase opens when every device of the previous one runs it. The rollout halts by
                  itself when too many installs fail.
                </p>
                <div className="row adm-top">
                  <GroupSelect label="Pilot group" value={pilot} onChange={setPilot} allowEmpty emptyLabel="No pilot group" />
                  <Field label="Phases (% of devices)" hint="Cumulative, e.g. 10, 50, 100.">
                    <input value={phases} onChange={(e) => setPhases(e.target.value)} inputMode="numeric" autoComplete="off" />
                  </Field>
                  <Field label="Failure threshold (%)" hint={`Halt when more installs fail; default ${DEFAULT_FAILURE_THRESHOLD}.`}>
                    <input type="number" min={0} max={100} value={threshold} onChange={(e) => setThreshold(e.target.value)} placeholder={String(DEFAULT_FAILURE_THRESHOLD)} />
                  </Field>
                  <Field label="At most installing at once" hint="Devices of the group installing at the same time; the others wait their turn. Empty: no limit.">
                    <input type="number" min={1} value={maxConcurrent} onChange={(e) => setMaxConcurrent(e.target.value)} placeholder="no limit" />
                  </Field>
                </div>
              </>
            ) : (
              <p className="muted small">New versions go to every device at once.</p>
            )}
          </fieldset>
        </>
      ) : null}
      <Field inline label="Remove conflicting products first" hint="Uninstall the products the package's manifest lists as conflicting before installing.">
        <input type="checkbox" checked={removeConflicts} onChange={(e) => setRemoveConflicts(e.target.checked)} />
      </Field>
      <Field inline label="Urgent (ignore maintenance windows)" hint="Devices carry it out at once; otherwise installs and removals wait for the maintenance windows of the agent policy.">
        <input type="checkbox" checked={urgent} onChange={(e) => setUrgent(e.target.checked)} />
      </Field>
    </DialogForm>
  );
}

// ---------------------------------------------------------------------------------------------
// Compliance
// ---------------------------------------------------------------------------------------------

/**
 * Deployment compliance: the per-product summary over the group and product filter (counted by
 * the server over every device), then a page of device rows (by product, then device) with
 * the state filter showing the count of each state.
 */
function ComplianceView() {
  const [groupId, setGroupId] = useState('');
  const [product, setProduct] = useState('');
  const [state, setState] = useState<'' | DeploymentState>('');
  const [search, setSearch] = useState('');
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const [open, setOpen] = useState<Set<string>>(new Set());
  const q = useOp(
    getDeploymentCompliance,
    { query: { limit: PAGE, ...(groupId ? { groupId } : {}), ...(product ? { product } : {}), ...(state ? { state } : {}), ...(search.trim() ? { search: search.trim() } : {}), ...(cursor ? { cursor } : {}) } },
    { placeholderData: (prev) => prev },
  );
  // The products of the summary (every product with deployment state under the group filter), and the one chosen.
  const [known, setKnown] = useState<string[]>([]);
  const summaryProducts = (q.data?.summary ?? []).map((s) => s.product);
  if (!product && summaryProducts.some((p) => !known.includes(p))) setKnown([...new Set([...known, ...summaryProducts])].sort());
  const products = [...new Set([...known, ...summaryProducts, ...(product ? [product] : [])])].sort();
  const filter = (set: () => void) => {
    set();
    setCursors([]);
  };

  const toggle = (key: string) =>
    setOpen((s) => {
      const n = new Set(s);
      if (n.has(key)) n.delete(key);
      else n.add(key);
      return n;
    });

  const counts: Record<string, number> = {};
  for (const s of q.data?.summary ?? []) for (const [k, n] of Object.entries(s.states)) counts[k] = (counts[k] ?? 0) + n;
  const all = Object.values(counts).reduce((a, n) => a + n, 0);

  return (
    <>
      <Section title="Filters">
        <div className="toolbar">
          <GroupSelect value={groupId} onChange={(g) => filter(() => setGroupId(g))} allowEmpty emptyLabel="All groups" />
          <Field label="Product">
            <select value={product} onChange={(e) => filter(() => setProduct(e.target.value))}>
              <option value="">All products</option>
              {products.map((p) => (
                <option key={p} value={p}>
                  {p}
                </option>
              ))}
            </select>
          </Field>
          <Field label="State">
            <select value={state} onChange={(e) => filter(() => setState(e.target.value as '' | DeploymentState))}>
              <option value="">All states ({all.toLocaleString()})</option>
              {DEPLOYMENT_STATES.map((s) => (
                <option key={s.state} value={s.state}>
                  {s.label} ({(counts[s.state] ?? 0).toLocaleString()})
                </option>
              ))}
            </select>
          </Field>
          <Field label="Device">
            <input type="search" value={search} onChange={(e) => filter(() => setSearch(e.target.value))} placeholder="Name contains…" />
          </Field>
        </div>
      </Section>
      <Async q={q}>
        {(data) => {
          const rows = data.items;
          const total = data.total ?? rows.length;
          return (
            <>
              <Section title="By product">
                {data.summary.length === 0 ? (
                  <Empty>No deployment state yet: devices report it after their deployment task runs.</Empty>
                ) : (
                  <div className="adm-summary-list">
                    {[...data.summary]
                      .sort((a, b) => a.product.localeCompare(b.product))
                      .map((s) => {
                        const total = Object.values(s.states).reduce((a, n) => a + n, 0);
                        const compliant = s.states.compliant ?? 0;
                        return (
                          <div key={s.product}>
                            <h3>
                              {s.product}
                              <span className="muted small">
                                {compliant} of {plural(total, 'device')} compliant ({total ? Math.round((100 * compliant) / total) : 0}%)
                              </span>
                            </h3>
                            <StateBar what="devices" items={DEPLOYMENT_STATES.map((d) => ({ ...d, n: s.states[d.state] ?? 0 }))} />
                            <p className="adm-versions">
                              Installed:{' '}
                              {Object.entries(s.versions)
                                .sort((a, b) => b[1] - a[1])
                                .map(([v, n]) => `${v} (${n})`)
                                .join(', ')}
                            </p>
                          </div>
                        );
                      })}
                  </div>
                )}
              </Section>
              <Section title={`Devices (${total.toLocaleString()})`}>
                <p className="muted small" aria-live="polite">
                  {total !== all ? `${total.toLocaleString()} of ${plural(all, 'device-product row')}` : plural(all, 'device-product row')}
                  {rows.length ? ` · showing ${(cursors.length * PAGE + 1).toLocaleString()}–${(cursors.length * PAGE + rows.length).toLocaleString()}` : ''}
                </p>
                {rows.length === 0 ? (
                  <Empty>No device matches.</Empty>
                ) : (
                  <div className="table-wrap">
                    <table>
                      <thead>
                        <tr>
                          <th scope="col">Device</th>
                          <th scope="col">Product</th>
                          <th scope="col">State</th>
                          <th scope="col">Installed</th>
                          <th scope="col">Target</th>
                          <th scope="col" className="num">
                            Exit code
                          </th>
                          <th scope="col">Detail</th>
                          <th scope="col">Updated</th>
                        </tr>
                      </thead>
                      <tbody>
                        {rows.map((d) => {
                          const key = `${d.deviceId}/${d.product}`;
                          const expanded = open.has(key);
                          return <DeviceStateRows key={key} d={d} expanded={expanded} onToggle={() => toggle(key)} />;
                        })}
                      </tbody>
                    </table>
                  </div>
                )}
                <PageNav label="Device pages" cursors={cursors} setCursors={setCursors} nextCursor={data.nextCursor} />
              </Section>
            </>
          );
        }}
      </Async>
      {q.error && q.data ? <ErrorMessage error={q.error} /> : null}
    </>
  );
}

function DeviceStateRows({ d, expanded, onToggle }: { d: ComplianceRow; expanded: boolean; onToggle: () => void }) {
  const outputId = `output-${d.deviceId}-${d.product}`;
  return (
    <>
      <tr>
        <td>
          <Link href={`/devices/${encodeURIComponent(d.deviceId)}`}>{d.deviceName}</Link>
        </td>
        <td>{d.product}</td>
        <td>
          <StateBadge state={d.state} />
        </td>
        <td>{d.installedVersion ? <code>{d.installedVersion}</code> : <span className="muted">not installed</span>}</td>
        <td>{d.targetVersion ? <code>{d.targetVersion}</code> : <span className="muted">—</span>}</td>
        <td className="num">{d.exitCode ?? <span className="muted">—</span>}</td>
        <td>
          {d.detail ?? <span className="muted">—</span>}
          {d.outputTail ? (
            <div>
              <button type="button" className="link" aria-expanded={expanded} aria-controls={outputId} onClick={onToggle}>
                {expanded ? 'Hide output' : 'Show output'}
              </button>
            </div>
          ) : null}
        </td>
        <td className="nowrap">
          <Time iso={d.updatedAt} />
        </td>
      </tr>
      {expanded && d.outputTail ? (
        <tr className="adm-detail-row" id={outputId}>
          <td colSpan={8}>
            <pre aria-label={`Output of ${d.product} on ${d.deviceName}`}>{d.outputTail}</pre>
          </td>
        </tr>
      ) : null}
    </>
  );
}
