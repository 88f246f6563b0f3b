/**
 * A device's effective policy per product, on the device page: every setting's value and
 * where it comes from ("default", "policy X at group Y", "profile P of policy X"), who locked
 * it and what the lock overrode, the agent's last compliance report with its drift, and the
 * next maintenance window.
 */
import { Link } from 'wouter';
import { getDevicePolicy } from '@garrison/protocol';
import { useOp } from '../api.ts';
import { Async, Empty, Section, StateBadge, Time, useGroups } from '../ui.tsx';
import { labelOf } from '../tasks/schema.ts';
import { originText, productName, usePolicyTypes, valueText } from './model.ts';
import './policies.css';

export function DevicePolicy({ id }: { id: string }) {
  const q = useOp(getDevicePolicy, { params: { id } });
  const types = usePolicyTypes();
  const groups = useGroups();
  return (
    <Async q={q}>
      {(d) => (
        <>
          <Section title="Maintenance window">
            <p>
              {d.nextMaintenanceWindow ? (
                <>
                  Next: <Time iso={d.nextMaintenanceWindow.start} /> to <Time iso={d.nextMaintenanceWindow.end} />
                </>
              ) : (
                <span className="muted">No maintenance window: updates may happen at any time.</span>
              )}
            </p>
          </Section>
          {d.products.length === 0 ? <Empty>No product policies apply to this device.</Empty> : null}
          {d.products.map((p) => {
            const c = d.compliance.find((x) => x.product === p.product);
            const schema = types.data?.items.find((t) => t.product === p.product)?.settingsSchema.properties ?? {};
            return (
              <Section key={p.product} title={`${productName(types.data?.items, p.product)} policy`}>
                <p>
                  {c ? (
                    <>
                      <StateBadge state={c.state === 'compliant' ? 'succeeded' : c.state === 'pending' ? 'pending' : 'failed'} label={c.state} /> {c.reportedAt ? <>reported <Time iso={c.reportedAt} /></> : 'not reported yet'}
                      {c.reason ? <span className="muted"> · {c.reason}</span> : null}
                    </>
                  ) : (
                    <span className="muted">No report from the agent yet.</span>
                  )}
                  {p.profiles.length ? <span className="small"> · active profiles: {p.profiles.map((x) => x.profileName).join(', ')}</span> : null}
                </p>
                {c?.drift.length ? (
                  <ul className="small">
                    {c.drift.map((dr) => (
                      <li key={dr.setting}>
                        {dr.setting}: expected <code>{valueText(dr.expected, 40)}</code>, found <code>{valueText(dr.found, 40)}</code> ({dr.action === 'restored' ? 'put back' : 'local change kept'})
                      </li>
                    ))}
                  </ul>
                ) : null}
                <div className="table-wrap">
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">Setting</th>
                        <th scope="col">Value</th>
                        <th scope="col">Origin</th>
                        <th scope="col">Lock</th>
                      </tr>
                    </thead>
                    <tbody>
                      {Object.entries(p.settings).map(([k, s]) => (
                        <tr key={k}>
                          <th scope="row">{labelOf(k, schema[k] ?? {})}</th>
                          <td className="mono small">{valueText(s.value)}</td>
                          <td className="origin">
                            {s.origin.kind === 'default' ? 'default' : <Link href={`/policies/${s.origin.policyId}`}>{originText(s.origin, groups.data)}</Link>}
                            {s.overridden.map((o, i) => (
                              <div key={i} className="small muted">
                                overrode <code>{valueText(o.value, 40)}</code> from {originText(o.origin, groups.data)}
                              </div>
                            ))}
                          </td>
                          <td className="small">{s.lockedBy ? `locked by ${originText(s.lockedBy, groups.data)}` : '—'}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              </Section>
            );
          })}
        </>
      )}
    </Async>
  );
}
