/**
 * A group's own policies, per product, on the Devices page: which policy is assigned here (or
 * none: the group takes the policy above), whether it blocks its ancestors' policies (their
 * locked settings still apply), and assigning, changing or removing one, with the preview of
 * which devices would change before it is done.
 */
import { useState, type FormEvent } from 'react';
import { Link } from 'wouter';
import { useQueryClient } from '@tanstack/react-query';
import { assignGroupPolicy, listGroupPolicies, listPolicies, PAGE_LIMIT_MAX, previewGroupPolicy, unassignGroupPolicy, type GroupView, type PolicyPreview } from '@garrison/protocol';
import { call, useOp } from '../api.ts';
import { useAccess } from '../access.tsx';
import { Async, Dialog, ErrorMessage, Field, Section, useBusy, useToast } from '../ui.tsx';
import { POLICIES_WRITE, usePolicyTypes, type GroupAssignment, type PolicyType } from './model.ts';
import { PreviewView } from './PolicySettings.tsx';

export function GroupPolicies({ group }: { group: GroupView }) {
  const types = usePolicyTypes();
  const own = useOp(listGroupPolicies, { params: { id: group.id } });
  const [editing, setEditing] = useState<string | null>(null);
  const may = useAccess().canIn(POLICIES_WRITE, group.id);
  return (
    <Section title="Policies">
      <Async q={types}>
        {(t) => (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Product</th>
                  <th scope="col">Policy of this group</th>
                  <th scope="col">Inheritance</th>
                  <th scope="col">
                    <span className="muted">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {t.items.map((type) => {
                  const a = own.data?.items.find((x) => x.product === type.product);
                  return (
                    <tr key={type.product}>
                      <td>{type.productName}</td>
                      <td>{a?.policyId ? <Link href={`/policies/${a.policyId}`}>{a.policyName ?? a.policyId}</Link> : <span className="muted">none: the policy of the group above applies</span>}</td>
                      <td className="small">{a?.blockInheritance ? 'blocked (locked settings above still apply)' : 'inherits'}</td>
                      <td>
                        {may ? (
                          <button type="button" aria-label={`Assign a ${type.productName} policy to ${group.name}`} onClick={() => setEditing(type.product)}>
                            {a?.policyId ? 'Change' : 'Assign'}
                          </button>
                        ) : null}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </Async>
      {editing ? <AssignDialog group={group} type={types.data!.items.find((x) => x.product === editing)!} current={own.data?.items.find((x) => x.product === editing)} onClose={() => setEditing(null)} /> : null}
    </Section>
  );
}

function AssignDialog({ group, type, current, onClose }: { group: GroupView; type: PolicyType; current: GroupAssignment | undefined; onClose: () => void }) {
  // The picker: one page of the product's policies, the largest there is (a product has far fewer).
  const policies = useOp(listPolicies, { query: { product: type.product, limit: PAGE_LIMIT_MAX } });
  const [policyId, setPolicyId] = useState(current?.policyId ?? '');
  const [block, setBlock] = useState(current?.blockInheritance ?? false);
  const [preview, setPreview] = useState<PolicyPreview | null>(null);
  const busy = useBusy();
  const toast = useToast();
  const qc = useQueryClient();
  const body = { policyId: policyId || null, blockInheritance: block };
  const refresh = () => qc.invalidateQueries({ predicate: (q) => /^\/(groups|policies|devices)/.test(String(q.queryKey[0])) });
  async function submit(e: FormEvent) {
    e.preventDefault();
    const done = await busy.run(async () => {
      if (!policyId && !block) {
        if (current) await call(unassignGroupPolicy, { params: { id: group.id, product: type.product } });
      } else await call(assignGroupPolicy, { params: { id: group.id, product: type.product }, body });
      return true;
    });
    if (done) {
      toast(policyId ? `Policy assigned to ${group.name}` : `${group.name} has no ${type.productName} policy of its own now`);
      await refresh();
      onClose();
    }
  }
  return (
    <Dialog open title={`${type.productName} policy of ${group.path}`} onClose={onClose} wide>
      <form onSubmit={submit}>
        <div className="dialog-body">
          <Field label="Policy" hint="None: the devices take the policy of the group above.">
            <select
              value={policyId}
              onChange={(e) => {
                setPolicyId(e.target.value);
                setPreview(null);
              }}
            >
              <option value="">None</option>
              {(policies.data?.items ?? []).map((p) => (
                <option key={p.id} value={p.id}>
                  {p.name}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Block inheritance of parent groups' policies" hint="Their locked settings still apply." inline>
            <input
              type="checkbox"
              checked={block}
              onChange={(e) => {
                setBlock(e.target.checked);
                setPreview(null);
              }}
            />
          </Field>
          {preview ? <PreviewView preview={preview} /> : null}
        </div>
        <ErrorMessage error={busy.error} onDismiss={() => busy.setError(null)} />
        <footer className="dialog-footer">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="button" disabled={busy.busy} onClick={() => void busy.run(async () => setPreview(await call(previewGroupPolicy, { params: { id: group.id, product: type.product }, body })))}>
            Preview
          </button>
          <button type="submit" className="primary" disabled={busy.busy}>
            Save
          </button>
        </footer>
      </form>
    </Dialog>
  );
}
