/** The dashboard: devices online and offline, run outcomes of the last 24 hours, deployment compliance, recent failures. */
import { Link } from 'wouter';
import type { DashboardSummary } from '@garrison/protocol';
import { useApi } from '../api.ts';
import { RUN_STATE_ORDER, formatAgo, stateLabel } from '../format.ts';
import { Async, Empty, Page, Section, StackedBar, StateBadge, Time } from '../ui.tsx';

const DEPLOYMENT_STATES: { key: string; label: string }[] = [
  { key: 'compliant', label: 'Compliant' },
  { key: 'installing', label: 'Installing' },
  { key: 'pending', label: 'Pending' },
  { key: 'failed', label: 'Failed' },
  { key: 'unavailable', label: 'Unavailable' },
];

export function Dashboard() {
  // The summary is refreshed every 10 s rather than on every change: it counts over all runs.
  const q = useApi<DashboardSummary>('/summary', { refetchInterval: 10_000 });
  return (
    <Page title="Dashboard">
      <Async q={q}>
        {(s) => {
          const outcomes = RUN_STATE_ORDER.filter((r) => r.state !== 'notRun').map((r) => ({ key: r.state, label: r.label, n: s.runs.states[r.state] ?? 0 }));
          const totalRuns = outcomes.reduce((a, o) => a + o.n, 0);
          return (
            <>
              <div className="grid">
                <Section title="Devices">
                  <p className="stat">{s.devices.total.toLocaleString()}</p>
                  <p className="stat-label">managed devices</p>
                  <StackedBar
                    label="Devices"
                    what="devices"
                    segments={[
                      { key: 'online', label: 'Online', n: s.devices.online },
                      { key: 'offline', label: 'Offline', n: s.devices.offline },
                    ]}
                  />
                  <p>
                    <Link href="/devices">All devices</Link>
                  </p>
                </Section>
                <Section title="Task outcomes, last 24 hours">
                  <p className="stat">{totalRuns.toLocaleString()}</p>
                  <p className="stat-label">finished runs</p>
                  <StackedBar label="Run outcomes" segments={outcomes} what="runs" />
                  <p>
                    <Link href="/tasks">Tasks</Link>
                  </p>
                </Section>
                <Section title="Deployment compliance">
                  {s.compliance.length === 0 ? (
                    <Empty>No products are assigned to groups.</Empty>
                  ) : (
                    s.compliance.map((c) => {
                      const total = Object.values(c.states).reduce((a, n) => a + n, 0);
                      return (
                        <div key={c.product} className="compliance">
                          <h3>
                            {c.product} <span className="muted small">{Math.round((100 * (c.states.compliant ?? 0)) / Math.max(total, 1))}% compliant</span>
                          </h3>
                          <StackedBar label={`${c.product} compliance`} what="devices" segments={DEPLOYMENT_STATES.map((d) => ({ ...d, n: c.states[d.key] ?? 0 }))} />
                        </div>
                      );
                    })
                  )}
                  <p>
                    <Link href="/deployments">Deployments</Link>
                  </p>
                </Section>
              </div>
              <Section title="Recent failures">
                {s.runs.failures.length === 0 ? (
                  <Empty>No failed runs in the last 24 hours.</Empty>
                ) : (
                  <div className="table-wrap">
                    <table>
                      <thead>
                        <tr>
                          <th>When</th>
                          <th>Task</th>
                          <th>Device</th>
                          <th>State</th>
                          <th>Detail</th>
                        </tr>
                      </thead>
                      <tbody>
                        {s.runs.failures.map((r) => (
                          <tr key={r.id}>
                            <td title={formatAgo(r.updatedAt)}>
                              <Time iso={r.endedAt ?? r.updatedAt} />
                            </td>
                            <td>
                              <Link href={`/tasks/${r.taskId}`}>{r.taskName}</Link>
                            </td>
                            <td>
                              <Link href={`/devices/${r.deviceId}`}>{r.deviceName}</Link>
                            </td>
                            <td>
                              <StateBadge state={r.state} label={stateLabel(r.state)} />
                            </td>
                            <td>{r.exitCode !== null ? `exit code ${r.exitCode}` : (r.reason ?? '')}</td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  </div>
                )}
              </Section>
            </>
          );
        }}
      </Async>
    </Page>
  );
}
