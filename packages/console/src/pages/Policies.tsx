/**
 * Product policies (docs/adr/0020-policies.md): the list (name, product, revision, the groups
 * each is assigned to, compliance counts) with create, copy, delete, export and import; one
 * policy's editor, generated from its product's policy type, with its profiles, a preview of
 * which devices a change would change before it is saved, and a save that names the revision
 * it started from (a policy changed meanwhile is refused, POLICY_REVISION_CONFLICT, and said
 * so plainly); and the policy's compliance: counts by state and the devices with their drift.
 */
import { useRef, useState, type FormEvent } from 'react';
import { Link, useLocation } from 'wouter';
import { useQueryClient } from '@tanstack/react-query';
import { copyPolicy, createPolicy, deletePolicy, exportPolicy, getPolicy, getPolicyCompliance, importPolicy, listPolicies, operationPath, previewPolicy, updatePolicy, type Policy, type PolicyComplianceItem, type PolicyListItem, type PolicyPreview } from '@garrison/protocol';
import { ApiError, call, download, useOp } from '../api.ts';
import { useAccess } from '../access.tsx';
import { Async, ConfirmButton, Dialog, DialogForm, Empty, ErrorMessage, Field, Loading, Page, PageNav, Section, StackedBar, StateBadge, Tabs, Time, tabPanelProps, useBusy, useGroups, useToast } from '../ui.tsx';
import { COMPLIANCE_STATES, POLICIES_WRITE, draftOf, groupPathOf, productName, usePolicyTypes, valueText, type PolicyDetails, type PolicyDraft, type PolicyType } from '../policies/model.ts';

export { usePolicyTypes };
import { PolicySettingsForm, PreviewView, ProfilesEditor } from '../policies/PolicySettings.tsx';

const LIST_PAGE = 50;
const plural = (n: number, one: string) => `${n.toLocaleString()} ${one}${n === 1 ? '' : 's'}`;

export function Policies() {
  const [product, setProduct] = useState('');
  const types = usePolicyTypes();
  // One request per page: each policy comes with its groups and compliance counts.
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const list = useOp(listPolicies, { query: { limit: LIST_PAGE, compliance: true, ...(product ? { product } : {}), ...(cursor ? { cursor } : {}) } }, { placeholderData: (prev) => prev });
  const busy = useBusy();
  const toast = useToast();
  const [, navigate] = useLocation();
  const fileRef = useRef<HTMLInputElement>(null);
  const may = useAccess().can(POLICIES_WRITE);
  const importFile = (file: File) =>
    busy.run(async () => {
      let doc: unknown;
      try {
        doc = JSON.parse(await file.text());
      } catch (err) {
        throw new Error(`${file.name} is not a JSON file: ${err instanceof Error ? err.message : String(err)}`);
      }
      const p = await call(importPolicy, { body: doc });
      toast(`Imported policy ${p.name}`);
      navigate(`/policies/${p.id}`);
    });
  return (
    <Page
      title="Policies"
      subtitle="How each product is configured on the devices of the groups a policy is assigned to"
      actions={
        may ? (
          <>
            <Link href="/policies/new" className="button primary">
              New policy
            </Link>
            <button type="button" disabled={busy.busy} onClick={() => fileRef.current?.click()}>
              Import
            </button>
            <input
              ref={fileRef}
              type="file"
              accept=".json,application/json"
              aria-label="Policy export file to import"
              hidden
              onChange={(e) => {
                const f = e.target.files?.[0];
                e.target.value = '';
                if (f) void importFile(f);
              }}
            />
          </>
        ) : null
      }
    >
      <ErrorMessage error={busy.error} onDismiss={() => busy.setError(null)} />
      <div className="toolbar">
        <Field label="Product">
          <select
            value={product}
            onChange={(e) => {
              setProduct(e.target.value);
              setCursors([]);
            }}
          >
            <option value="">All products</option>
            {(types.data?.items ?? []).map((t) => (
              <option key={t.product} value={t.product}>
                {t.productName}
              </option>
            ))}
          </select>
        </Field>
      </div>
      <Async q={list}>
        {(page) =>
          page.items.length === 0 && cursors.length === 0 ? (
            <Empty>No policies{product ? ' for this product' : ''} yet. A new policy sets some settings of a product; assign it to a group on the Devices page or here.</Empty>
          ) : (
            <>
            <p className="muted small" aria-live="polite">
              {(page.total ?? page.items.length).toLocaleString()} {(page.total ?? page.items.length) === 1 ? 'policy' : 'policies'}
              {page.items.length && (cursors.length > 0 || page.nextCursor) ? ` · showing ${(cursors.length * LIST_PAGE + 1).toLocaleString()}–${(cursors.length * LIST_PAGE + page.items.length).toLocaleString()}` : ''}
            </p>
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Product</th>
                    <th scope="col" className="num">
                      Revision
                    </th>
                    <th scope="col">Assigned to</th>
                    <th scope="col">Compliance</th>
                    <th scope="col">
                      <span className="muted">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {page.items.map((p) => (
                    <PolicyRow key={p.id} p={p} types={types.data?.items} may={may} />
                  ))}
                </tbody>
              </table>
            </div>
            <PageNav label="Policy pages" cursors={cursors} setCursors={setCursors} nextCursor={page.nextCursor} />
            </>
          )
        }
      </Async>
    </Page>
  );
}

function PolicyRow({ p, types, may }: { p: PolicyListItem; types: PolicyType[] | undefined; may: boolean }) {
  const [copying, setCopying] = useState(false);
  const toast = useToast();
  const qc = useQueryClient();
  const assigned = p.assignedTo;
  const c = p.compliance;
  return (
    <tr>
      <td>
        <Link href={`/policies/${p.id}`}>{p.name}</Link>
        {p.description ? <div className="muted small">{p.description}</div> : null}
      </td>
      <td>{productName(types, p.product)}</td>
      <td className="num">{p.revision}</td>
      <td className="small">
        {assigned.length ? assigned.map((a) => a.path).join(', ') : p.assignedElsewhere ? null : <span className="muted">no group</span>}
        {p.assignedElsewhere ? <span className="muted">{assigned.length ? ' and ' : ''}{plural(p.assignedElsewhere, 'group')} you cannot see</span> : null}
      </td>
      <td>{c ? <StackedBar compact label={`Compliance of ${p.name}`} what="devices" segments={COMPLIANCE_STATES.map((s) => ({ key: s.key, label: s.label, n: c[s.key] }))} /> : '…'}</td>
      <td>
        <div className="actions">
          <button type="button" aria-label={`Export ${p.name}`} onClick={() => void download(operationPath(exportPolicy, { id: p.id }), `${p.name.replace(/[^A-Za-z0-9_.-]+/g, '-')}.policy.json`)}>
            Export
          </button>
          {may ? (
            <>
              <button type="button" aria-label={`Copy ${p.name}`} onClick={() => setCopying(true)}>
                Copy
              </button>
              <ConfirmButton
                label="Delete"
                ariaLabel={`Delete ${p.name}`}
                confirmLabel={`Delete ${p.name}`}
                danger
                question={<p>Delete the policy “{p.name}”? A policy assigned to a group cannot be deleted (POLICY_IN_USE): unassign it first.</p>}
                onConfirm={async () => {
                  await call(deletePolicy, { params: { id: p.id } });
                  toast(`Policy ${p.name} deleted`);
                  await qc.invalidateQueries({ predicate: (q) => String(q.queryKey[0]).startsWith('/policies') });
                }}
              />
            </>
          ) : null}
        </div>
        <CopyDialog open={copying} p={p} onClose={() => setCopying(false)} />
      </td>
    </tr>
  );
}

function CopyDialog({ open, p, onClose }: { open: boolean; p: Policy; onClose: () => void }) {
  const [name, setName] = useState(`${p.name} (copy)`);
  const { busy, error, run } = useBusy();
  const [, navigate] = useLocation();
  async function submit(e: FormEvent) {
    e.preventDefault();
    const c = await run(() => call(copyPolicy, { params: { id: p.id }, body: { name } }));
    if (c) navigate(`/policies/${c.id}`);
  }
  return (
    <Dialog open={open} title={`Copy ${p.name}`} onClose={onClose}>
      <DialogForm onSubmit={submit} onCancel={onClose} submitLabel="Copy policy" disabled={busy} error={error}>
        <Field label="Name of the copy" hint="The copy starts at revision 1 and is assigned to no group.">
          <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
        </Field>
      </DialogForm>
    </Dialog>
  );
}

type Tab = 'edit' | 'compliance';

/** /policies/new and /policies/:id. */
export function PolicyEdit({ id }: { id?: string }) {
  const types = usePolicyTypes();
  const policy = useOp(getPolicy, id ? { params: { id } } : null);
  const [tab, setTab] = useState<Tab>('edit');
  if (types.error || (id && policy.error)) {
    return (
      <Page title={id ? 'Policy' : 'New policy'}>
        <ErrorMessage error={types.error ?? policy.error} />
      </Page>
    );
  }
  if (!types.data || (id && !policy.data)) return <Loading />;
  const p = policy.data;
  if (!p) return <Editor types={types.data.items} />;
  return (
    <Page title={p.name} subtitle={<>{productName(types.data.items, p.product)} · revision {p.revision} · <Link href="/policies">all policies</Link></>}>
      <Tabs label="Policy sections" idBase="policy" value={tab} onChange={setTab} tabs={[{ id: 'edit', label: 'Settings' }, { id: 'compliance', label: 'Compliance' }]} />
      <div {...tabPanelProps('policy', tab)}>{tab === 'edit' ? <Editor key={p.id} types={types.data.items} policy={p} onReload={() => void policy.refetch()} /> : <Compliance id={p.id} />}</div>
    </Page>
  );
}

function Editor({ types, policy: current, onReload }: { types: PolicyType[]; policy?: PolicyDetails; onReload?: () => void }) {
  // The revision the edit started from: a change made elsewhere meanwhile (the live feed reads it) does not replace the draft.
  const [policy, setBase] = useState(current);
  const [draft, setDraft] = useState<PolicyDraft>(() => (policy ? draftOf(policy) : { name: '', description: '', product: types[0]?.product ?? '', settings: {}, locked: [], profiles: [] }));
  const [preview, setPreview] = useState<PolicyPreview | null>(null);
  const busy = useBusy();
  const toast = useToast();
  const [, navigate] = useLocation();
  const may = useAccess().can(POLICIES_WRITE);
  const groups = useGroups();
  const type = types.find((t) => t.product === draft.product);
  const change = (d: Partial<PolicyDraft>) => {
    setDraft((cur) => ({ ...cur, ...d }));
    setPreview(null);
  };
  const body = { name: draft.name, description: draft.description, settings: draft.settings, locked: draft.locked, profiles: draft.profiles };
  const conflict = busy.error instanceof ApiError && busy.error.code === 'POLICY_REVISION_CONFLICT';
  async function save(e: FormEvent) {
    e.preventDefault();
    if (!policy) {
      const p = await busy.run(() => call(createPolicy, { body: { ...body, product: draft.product } }));
      if (p) {
        toast(`Policy ${p.name} created`);
        navigate(`/policies/${p.id}`);
      }
      return;
    }
    const p = await busy.run(() => call(updatePolicy, { params: { id: policy.id }, body: { revision: policy.revision, ...body } }));
    if (p) {
      toast(`Policy ${p.name} saved: revision ${p.revision}`);
      setBase({ ...policy, ...p });
      setDraft(draftOf(p));
      setPreview(null);
      onReload?.();
    }
  }
  const runPreview = () =>
    policy &&
    busy.run(async () => {
      setPreview(await call(previewPolicy, { params: { id: policy.id }, query: { limit: 200 }, body: { revision: policy.revision, ...body } }));
    });
  const reload = () =>
    policy &&
    busy.run(async () => {
      const fresh = await call(getPolicy, { params: { id: policy.id } });
      setBase(fresh);
      setDraft(draftOf(fresh));
      setPreview(null);
      onReload?.();
    });
  const changedElsewhere = !!policy && !!current && current.revision > policy.revision && !conflict;
  const form = (
    <form onSubmit={save}>
      <Section title="Policy">
        <div className="form-row">
          <Field label="Name">
            <input value={draft.name} onChange={(e) => change({ name: e.target.value })} required maxLength={200} />
          </Field>
          <Field label="Product" hint={policy ? 'A policy configures one product; copy it to start one for another.' : undefined}>
            <select value={draft.product} disabled={!!policy} onChange={(e) => change({ product: e.target.value, settings: {}, locked: [], profiles: [] })} required>
              {types.map((t) => (
                <option key={t.product} value={t.product}>
                  {t.productName}
                </option>
              ))}
            </select>
          </Field>
        </div>
        <Field label="Description" optional>
          <input value={draft.description} onChange={(e) => change({ description: e.target.value })} maxLength={2000} />
        </Field>
        {policy ? (
          <p className="small">
            Assigned to: {policy.assignedTo.length ? policy.assignedTo.map((a, i) => <span key={a.groupId}>{i ? ', ' : ''}<Link href={`/devices?group=${a.groupId}`}>{a.path || groupPathOf(groups.data, a.groupId)}</Link></span>) : <span className="muted">no group yet: assign it from a group on the Devices page.</span>}
          </p>
        ) : null}
      </Section>
      {type ? (
        <>
          <Section title="Settings">
            <p className="muted">A setting this policy does not set is inherited from the policy of the group above, else its default. A locked setting cannot be changed by the groups below nor on the device.</p>
            <PolicySettingsForm type={type} value={{ settings: draft.settings, locked: draft.locked }} onChange={(v) => change(v)} />
          </Section>
          <ProfilesEditor type={type} profiles={draft.profiles} onChange={(profiles) => change({ profiles })} />
        </>
      ) : (
        <Empty>No management plug-in declares a policy type for {draft.product || 'any product'}.</Empty>
      )}
      {conflict ? (
        <div className="error" role="alert">
          <p>
            <strong>Someone else changed this policy since you opened it (you started from revision {policy?.revision}).</strong> <code className="code">POLICY_REVISION_CONFLICT</code>
          </p>
          <p>Nothing was saved. Reload to see the current revision, then make your change again.</p>
          <button type="button" onClick={() => void reload()}>
            Reload the policy
          </button>
        </div>
      ) : (
        <ErrorMessage error={busy.error} onDismiss={() => busy.setError(null)} />
      )}
      {changedElsewhere ? (
        <p className="notice" role="status">
          This policy was changed elsewhere since you opened it (revision {current!.revision} now; you started from {policy!.revision}): saving would be refused.{' '}
          <button type="button" className="link" onClick={() => void reload()}>
            Reload it
          </button>{' '}
          (your changes here are discarded).
        </p>
      ) : null}
      {preview ? <PreviewView preview={preview} /> : null}
      {may ? (
        <div className="actions form-actions">
          {policy ? (
            <button type="button" disabled={busy.busy} onClick={() => void runPreview()}>
              Preview
            </button>
          ) : null}
          <button type="submit" className="primary" disabled={busy.busy || !type}>
            {policy ? 'Save policy' : 'Create policy'}
          </button>
          {policy ? <span className="muted small">Saves revision {policy.revision + 1}; devices that change get it at once.</span> : null}
        </div>
      ) : null}
    </form>
  );
  return policy ? form : <Page title="New policy">{form}</Page>;
}

const CPAGE = 50;

/** The policy's compliance: counts of every state over all its devices, then a page of devices (by name), filtered by state and name. */
function Compliance({ id }: { id: string }) {
  const [state, setState] = useState<'' | PolicyComplianceItem['state']>('');
  const [search, setSearch] = useState('');
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const q = useOp(getPolicyCompliance, { params: { id }, query: { limit: CPAGE, ...(state ? { state } : {}), ...(search.trim() ? { search: search.trim() } : {}), ...(cursor ? { cursor } : {}) } }, { placeholderData: (prev) => prev });
  const groups = useGroups();
  return (
    <Section title="Compliance">
      <Async q={q}>
        {(r) => {
          const all = COMPLIANCE_STATES.reduce((n, s) => n + r.states[s.key], 0);
          return (
          <>
            <StackedBar label="Compliance" what="devices" segments={COMPLIANCE_STATES.map((s) => ({ key: s.key, label: s.label, n: r.states[s.key] }))} />
            <div className="toolbar">
              <Field label="State">
                <select
                  value={state}
                  onChange={(e) => {
                    setState(e.target.value as typeof state);
                    setCursors([]);
                  }}
                >
                  <option value="">All states ({all.toLocaleString()})</option>
                  {COMPLIANCE_STATES.map((s) => (
                    <option key={s.key} value={s.key}>
                      {s.label} ({r.states[s.key].toLocaleString()})
                    </option>
                  ))}
                </select>
              </Field>
              <Field label="Device">
                <input
                  type="search"
                  value={search}
                  onChange={(e) => {
                    setSearch(e.target.value);
                    setCursors([]);
                  }}
                />
              </Field>
              <p className="muted small" aria-live="polite">
                {r.total !== undefined && r.total !== all ? `${r.total.toLocaleString()} of ${plural(all, 'device')}` : plural(all, 'device')}
                {r.items.length ? ` · showing ${(cursors.length * CPAGE + 1).toLocaleString()}–${(cursors.length * CPAGE + r.items.length).toLocaleString()}` : ''}
              </p>
            </div>
            {r.items.length === 0 ? (
              <Empty>{all === 0 ? 'No devices: the policy reaches none yet.' : 'No device matches.'}</Empty>
            ) : (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Device</th>
                      <th scope="col">Group</th>
                      <th scope="col">State</th>
                      <th scope="col">Reported</th>
                      <th scope="col">Drift</th>
                    </tr>
                  </thead>
                  <tbody>
                    {r.items.map((c) => (
                      <tr key={`${c.deviceId}-${c.product}`}>
                        <td>
                          <Link href={`/devices/${c.deviceId}`}>{c.deviceName}</Link>
                        </td>
                        <td className="small">{groupPathOf(groups.data, c.groupId)}</td>
                        <td>
                          <StateBadge state={c.state === 'compliant' ? 'succeeded' : c.state === 'pending' ? 'pending' : 'failed'} label={c.state} />
                        </td>
                        <td className="nowrap">
                          <Time iso={c.reportedAt} />
                        </td>
                        <td className="small">
                          {c.drift.length ? (
                            <ul className="plain">
                              {c.drift.map((d) => (
                                <li key={d.setting}>
                                  {d.setting}: expected <code>{valueText(d.expected, 40)}</code>, found <code>{valueText(d.found, 40)}</code> ({d.action === 'restored' ? 'put back' : 'local change kept'})
                                </li>
                              ))}
                            </ul>
                          ) : (
                            (c.reason ?? '—')
                          )}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
            <PageNav label="Compliance pages" cursors={cursors} setCursors={setCursors} nextCursor={r.nextCursor} />
          </>
          );
        }}
      </Async>
    </Section>
  );
}
