/**
 * The dashboard: the monitors the administrator chose, in their order ("Customize"), each figure
 * a link to the filtered list behind it (the device list, the event log, a task). Monitors:
 * devices online and offline, task outcomes of the last 24 hours, detections, devices not seen
 * for N days, agent and OS versions, trends per day over 7 or 30 days (runs, detections,
 * enrolments), deployment compliance and recent failures. Only what the chosen monitors need
 * is read.
 */
import { useState, type ReactNode } from 'react';
import { Link } from 'wouter';
import { useQueryClient } from '@tanstack/react-query';
import {
  DASHBOARD_MONITOR_LABELS,
  DASHBOARD_MONITORS,
  getDashboardLayout,
  getDashboardMonitors,
  getDashboardSummary,
  getDashboardTrend,
  putDashboardLayout,
  resetDashboardLayout,
  type DashboardMonitorId,
  type DashboardTrendDay,
  type ValueCounts,
} from '@garrison/protocol';
import { call, useOp } from '../api.ts';
import { RUN_STATE_ORDER, formatAgo, stateLabel } from '../format.ts';
import { Async, Dialog, Empty, ErrorMessage, Page, Section, StackedBar, StateBadge, Time, useBusy } from '../ui.tsx';

const DEPLOYMENT_STATES: { key: string; label: string }[] = [
  { key: 'compliant', label: 'Compliant' },
  { key: 'installing', label: 'Installing' },
  { key: 'pending', label: 'Pending' },
  { key: 'failed', label: 'Failed' },
  { key: 'unavailable', label: 'Unavailable' },
];
/** Monitors read from the summary, from the monitors operation, and from the trend. */
const SUMMARY_MONITORS: readonly DashboardMonitorId[] = ['devices', 'runOutcomes', 'compliance', 'recentFailures'];
const COUNT_MONITORS: readonly DashboardMonitorId[] = ['detections', 'notSeen', 'agentVersions', 'osVersions'];
const TREND_MONITORS: readonly DashboardMonitorId[] = ['runTrend', 'detectionTrend', 'enrolmentTrend'];
const NOT_SEEN_CHOICES = [1, 7, 30] as const;
const DETECTIONS = '*.detection';
const RUNS_SUCCEEDED = 'run.succeeded,run.succeeded_with_warnings';
const RUNS_FAILED = 'run.failed,run.timed_out';

/** A console path with its query (empty values left out). */
function href(path: string, query: Record<string, string | number | undefined> = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `${path}?${s}` : path;
}
/** The device list of those enrolled in a period, newest first. */
const enrolledIn = (r: { since: string; until: string }) => href('/devices', { enrolledSince: r.since, enrolledUntil: r.until, sort: 'enrolledAt', order: 'desc' });
const eventsOf = (kind: string, range: { range?: string; since?: string; until?: string }) => href('/events', { kind, ...range });
const dayLabel = (p: DashboardTrendDay) => new Date(p.since).toLocaleDateString(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
const n = (v: number) => v.toLocaleString();

export function Dashboard() {
  const layout = useOp(getDashboardLayout, {});
  const [customizing, setCustomizing] = useState(false);
  const monitors = layout.data?.monitors ?? [];
  return (
    <Page
      title="Dashboard"
      actions={
        <button type="button" onClick={() => setCustomizing(true)} disabled={!layout.data}>
          Customize
        </button>
      }
    >
      <Async q={layout}>{() => (monitors.length === 0 ? <Empty>No monitors are chosen. Use “Customize” to choose what the dashboard shows.</Empty> : <Monitors chosen={monitors} />)}</Async>
      {customizing && layout.data ? <CustomizeDialog current={monitors} onClose={() => setCustomizing(false)} /> : null}
    </Page>
  );
}

function Monitors({ chosen }: { chosen: readonly DashboardMonitorId[] }) {
  const [notSeenDays, setNotSeenDays] = useState<number>(7);
  const [trendDays, setTrendDays] = useState<7 | 30>(7);
  const needs = (set: readonly DashboardMonitorId[]) => chosen.some((m) => set.includes(m));
  // Refreshed on a timer rather than on every change: they count over the whole fleet.
  const summary = useOp(getDashboardSummary, needs(SUMMARY_MONITORS) ? {} : null, { refetchInterval: 10_000 });
  const counts = useOp(getDashboardMonitors, needs(COUNT_MONITORS) ? { query: { notSeenDays } } : null, { refetchInterval: 30_000, placeholderData: (prev) => prev });
  const trend = useOp(getDashboardTrend, needs(TREND_MONITORS) ? { query: { days: trendDays } } : null, { refetchInterval: 60_000, placeholderData: (prev) => prev });
  const periodPicker = (
    <div className="actions" role="group" aria-label="Trend period">
      {([7, 30] as const).map((d) => (
        <button key={d} type="button" aria-pressed={trendDays === d} className={trendDays === d ? 'primary' : ''} onClick={() => setTrendDays(d)}>
          {d} days
        </button>
      ))}
    </div>
  );
  const one = (m: DashboardMonitorId): ReactNode => {
    const title = DASHBOARD_MONITOR_LABELS[m];
    switch (m) {
      case 'devices':
        return (
          <Section key={m} title="Devices">
            <Async q={summary}>
              {(s) => (
                <>
                  <p className="stat">
                    <Link href="/devices">{n(s.devices.total)}</Link>
                  </p>
                  <p className="stat-label">managed devices</p>
                  <StackedBar
                    label="Devices"
                    what="devices"
                    segments={[
                      { key: 'online', label: 'Online', n: s.devices.online },
                      { key: 'offline', label: 'Offline', n: s.devices.offline },
                    ]}
                  />
                  <p className="actions">
                    <Link href="/devices?status=online">{n(s.devices.online)} online</Link>
                    <Link href="/devices?status=offline">{n(s.devices.offline)} offline</Link>
                  </p>
                </>
              )}
            </Async>
          </Section>
        );
      case 'runOutcomes':
        return (
          <Section key={m} title={title}>
            <Async q={summary}>
              {(s) => {
                const outcomes = RUN_STATE_ORDER.filter((r) => r.state !== 'notRun').map((r) => ({ key: r.state, label: r.label, n: s.runs.states[r.state] ?? 0 }));
                const total = outcomes.reduce((a, o) => a + o.n, 0);
                return (
                  <>
                    <p className="stat">
                      <Link href={eventsOf('run.*', { range: '24h' })}>{n(total)}</Link>
                    </p>
                    <p className="stat-label">finished runs</p>
                    <StackedBar label="Run outcomes" segments={outcomes} what="runs" />
                    <p className="actions">
                      {outcomes
                        .filter((o) => o.n > 0)
                        .map((o) => (
                          <Link key={o.key} href={eventsOf(`run.${o.key}`, { range: '24h' })}>
                            {n(o.n)} {o.label.toLowerCase()}
                          </Link>
                        ))}
                      <Link href="/tasks">Tasks</Link>
                    </p>
                  </>
                );
              }}
            </Async>
          </Section>
        );
      case 'detections':
        return (
          <Section key={m} title={title}>
            <Async q={counts}>
              {(c) => (
                <>
                  <p className="stat">
                    <Link href={eventsOf(DETECTIONS, { range: '24h' })}>{n(c.detections.last24h)}</Link>
                  </p>
                  <p className="stat-label">in the last 24 hours</p>
                  <p className="actions">
                    <Link href={eventsOf(DETECTIONS, { range: '7d' })}>{n(c.detections.last7d)} in 7 days</Link>
                    <Link href={eventsOf(DETECTIONS, { range: '30d' })}>{n(c.detections.last30d)} in 30 days</Link>
                  </p>
                </>
              )}
            </Async>
          </Section>
        );
      case 'notSeen':
        return (
          <Section key={m} title={title}>
            <Async q={counts}>
              {(c) => (
                <>
                  <label className="field inline">
                    <select value={notSeenDays} onChange={(e) => setNotSeenDays(Number(e.target.value))}>
                      {NOT_SEEN_CHOICES.map((d) => (
                        <option key={d} value={d}>
                          {d === 1 ? '1 day' : `${d} days`}
                        </option>
                      ))}
                    </select>
                    <span>Not seen for</span>
                  </label>
                  <p className="stat">
                    <Link href={href('/devices', { seen: `notfor:${c.notSeen.days}` })}>{n(c.notSeen.count)}</Link>
                  </p>
                  <p className="stat-label">
                    of {n(c.devices)} devices not seen for {c.notSeen.days === 1 ? 'a day' : `${c.notSeen.days} days`} or never
                  </p>
                  <p className="actions">
                    {c.notSeen.buckets.map((b) => (
                      <Link key={b.days} href={href('/devices', { seen: `notfor:${b.days}` })}>
                        {n(b.count)} over {b.days === 1 ? '1 day' : `${b.days} days`}
                      </Link>
                    ))}
                  </p>
                </>
              )}
            </Async>
          </Section>
        );
      case 'agentVersions':
        return (
          <Section key={m} title={title}>
            <Async q={counts}>{(c) => <ValueBars counts={c.agentVersions} what="agent version" link={(v) => href('/devices', { agent: v })} other={href('/devices', { sort: 'agentVersion', order: 'desc' })} />}</Async>
          </Section>
        );
      case 'osVersions':
        return (
          <Section key={m} title={title}>
            <Async q={counts}>{(c) => <ValueBars counts={c.osVersions} what="operating system" link={(v) => href('/devices', { os: v })} other={href('/devices', { sort: 'osName' })} />}</Async>
          </Section>
        );
      case 'runTrend':
        return (
          <Section key={m} title={title} actions={periodPicker}>
            <Async q={trend}>
              {(t) => (
                <TrendChart
                  label="Task runs per day"
                  points={t.points}
                  series={[
                    { key: 'succeeded', label: 'succeeded', className: 'state-succeeded', value: (p) => p.succeeded, link: (r) => eventsOf(RUNS_SUCCEEDED, r) },
                    { key: 'failed', label: 'failed', className: 'state-failed', value: (p) => p.failed, link: (r) => eventsOf(RUNS_FAILED, r) },
                  ]}
                  dayLink={(p) => eventsOf(`${RUNS_SUCCEEDED},${RUNS_FAILED}`, { since: p.since, until: p.until })}
                />
              )}
            </Async>
          </Section>
        );
      case 'detectionTrend':
        return (
          <Section key={m} title={title} actions={periodPicker}>
            <Async q={trend}>
              {(t) => (
                <TrendChart
                  label="Detections per day"
                  points={t.points}
                  series={[{ key: 'detections', label: 'detections', className: 'state-warning', value: (p) => p.detections, link: (r) => eventsOf(DETECTIONS, r) }]}
                  dayLink={(p) => eventsOf(DETECTIONS, { since: p.since, until: p.until })}
                />
              )}
            </Async>
          </Section>
        );
      case 'enrolmentTrend':
        return (
          <Section key={m} title={title} actions={periodPicker}>
            <Async q={trend}>
              {(t) => (
                <TrendChart
                  label="Devices enrolled per day"
                  points={t.points}
                  series={[{ key: 'enrolled', label: 'enrolled', className: 'state-info', value: (p) => p.enrolled, link: (r) => enrolledIn(r) }]}
                  dayLink={(p) => enrolledIn(p)}
                />
              )}
            </Async>
          </Section>
        );
      case 'compliance':
        return (
          <Section key={m} title={title}>
            <Async q={summary}>
              {(s) => (
                <>
                  {s.compliance.length === 0 ? (
                    <Empty>No products are assigned to groups.</Empty>
                  ) : (
                    s.compliance.map((c) => {
                      const total = Object.values(c.states).reduce((a, v) => a + v, 0);
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
                </>
              )}
            </Async>
          </Section>
        );
      case 'recentFailures':
        return (
          <Section key={m} title={title}>
            <Async q={summary}>
              {(s) =>
                s.runs.failures.length === 0 ? (
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
                              <Link href={`/tasks/${encodeURIComponent(r.taskId)}?state=${encodeURIComponent(r.state)}`}>{r.taskName}</Link>
                            </td>
                            <td>
                              <Link href={`/devices/${encodeURIComponent(r.deviceId)}`}>{r.deviceName}</Link>
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
                )
              }
            </Async>
          </Section>
        );
    }
  };
  return <div className="grid">{chosen.map(one)}</div>;
}

/** Counts per value as bars, each value a link to the devices that have it; "other" sums the rest. */
function ValueBars({ counts, what, link, other }: { counts: ValueCounts; what: string; link: (value: string) => string; other: string }) {
  if (counts.total === 0) return <Empty>No devices.</Empty>;
  const max = Math.max(1, ...counts.top.map((v) => v.count), counts.other);
  const row = (key: string, label: ReactNode, count: number, to: string, name: string) => (
    <li key={key} style={{ display: 'grid', gridTemplateColumns: 'minmax(0, 1fr) auto', gap: '0.1rem 0.5rem', marginBottom: '0.35rem' }}>
      <Link href={to} aria-label={name} style={{ overflowWrap: 'anywhere' }}>
        {label}
      </Link>
      <strong>{n(count)}</strong>
      <span aria-hidden="true" className="progress-bar" style={{ gridColumn: '1 / -1', minWidth: 0, height: '0.45rem' }}>
        <span className="seg state-info" style={{ width: `${(100 * count) / max}%` }} />
      </span>
    </li>
  );
  return (
    <ul style={{ listStyle: 'none', padding: 0, margin: 0 }} aria-label={`Devices by ${what}`}>
      {counts.top.map((v) => row(v.value, v.value || '(none)', v.count, link(v.value), `${v.value || 'none'}: ${n(v.count)} devices`))}
      {counts.other > 0
        ? row('other', <span>Other ({n(counts.otherValues)} more)</span>, counts.other, other, `Other ${what}s (${n(counts.otherValues)} more): ${n(counts.other)} devices`)
        : null}
    </ul>
  );
}

interface TrendSeries {
  key: string;
  label: string;
  className: string;
  value: (p: DashboardTrendDay) => number;
  /** The list behind the figure of a day, or of the whole period. */
  link: (r: { since: string; until: string }) => string;
}

/**
 * Bars per UTC day (each day a link to what it counts), stacked by series; the text alternative
 * is the totals above the bars and the table of every day's figures below them (each a link).
 */
function TrendChart({ label, points, series, dayLink }: { label: string; points: readonly DashboardTrendDay[]; series: TrendSeries[]; dayLink: (p: DashboardTrendDay) => string }) {
  const totalOf = (s: TrendSeries) => points.reduce((a, p) => a + s.value(p), 0);
  const max = Math.max(1, ...points.map((p) => series.reduce((a, s) => a + s.value(p), 0)));
  const first = points[0];
  const last = points.at(-1);
  const range = { since: first?.since ?? '', until: last?.until ?? '' };
  return (
    <figure style={{ margin: 0 }}>
      <figcaption className="actions">
        {series.map((s) => (
          <Link key={s.key} href={s.link(range)}>
            <span className={`dot ${s.className}`} aria-hidden="true" /> {n(totalOf(s))} {s.label}
          </Link>
        ))}
        <span className="muted small">in {points.length} days</span>
      </figcaption>
      <ol aria-label={`${label}, one bar per day`} style={{ display: 'flex', alignItems: 'stretch', gap: '2px', listStyle: 'none', padding: 0, margin: '0.5rem 0 0', height: '6rem' }}>
        {points.map((p) => {
          const text = `${dayLabel(p)}: ${series.map((s) => `${n(s.value(p))} ${s.label}`).join(', ')}`;
          return (
            <li key={p.date} style={{ flex: '1 1 0', minWidth: 0, display: 'flex' }}>
              <Link href={dayLink(p)} aria-label={text} title={text} style={{ display: 'flex', flexDirection: 'column-reverse', width: '100%', background: 'var(--bg)', borderBottom: '1px solid var(--border)' }}>
                {series.map((s) => (s.value(p) > 0 ? <span key={s.key} className={`seg ${s.className}`} style={{ height: `${(100 * s.value(p)) / max}%`, width: '100%' }} /> : null))}
              </Link>
            </li>
          );
        })}
      </ol>
      <p className="muted small" style={{ display: 'flex', justifyContent: 'space-between', margin: '0.2rem 0 0' }} aria-hidden="true">
        <span>{first ? dayLabel(first) : ''}</span>
        <span>{last ? dayLabel(last) : ''}</span>
      </p>
      <details>
        <summary>Figures per day</summary>
        <div className="table-wrap">
          <table>
            <caption className="sr-only">{label}</caption>
            <thead>
              <tr>
                <th scope="col">Day (UTC)</th>
                {series.map((s) => (
                  <th key={s.key} scope="col">
                    {s.label[0]!.toUpperCase() + s.label.slice(1)}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {[...points].reverse().map((p) => (
                <tr key={p.date}>
                  <th scope="row">{dayLabel(p)}</th>
                  {series.map((s) => (
                    <td key={s.key}>
                      <Link href={s.link(p)}>{n(s.value(p))}</Link>
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </figure>
  );
}

/** Choose the monitors (check boxes) and their order (Move up / Move down): keyboard only works. */
function CustomizeDialog({ current, onClose }: { current: readonly DashboardMonitorId[]; onClose: () => void }) {
  const qc = useQueryClient();
  // The chosen ones first in their order, then the others in the default order.
  const [order, setOrder] = useState<DashboardMonitorId[]>(() => [...current, ...DASHBOARD_MONITORS.filter((m) => !current.includes(m))]);
  const [shown, setShown] = useState<Set<DashboardMonitorId>>(() => new Set(current));
  const { busy, error, setError, run } = useBusy();
  const move = (i: number, by: -1 | 1) => {
    const next = [...order];
    const [m] = next.splice(i, 1);
    next.splice(i + by, 0, m!);
    setOrder(next);
  };
  const done = async (save: () => Promise<unknown>) => {
    const ok = await run(async () => {
      await save();
      await qc.invalidateQueries({ predicate: (q) => String(q.queryKey[0]).startsWith('/dashboard/layout') });
      return true;
    });
    if (ok) onClose();
  };
  return (
    <Dialog open title="Customize the dashboard" onClose={onClose} wide>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void done(() => call(putDashboardLayout, { body: { monitors: order.filter((m) => shown.has(m)) } }));
        }}
      >
        <div className="dialog-body">
          <p className="muted">Choose the monitors to show and their order.</p>
          <ol aria-label="Monitors" style={{ listStyle: 'none', padding: 0, margin: 0 }}>
            {order.map((m, i) => (
              <li key={m} style={{ display: 'flex', flexWrap: 'wrap', alignItems: 'center', gap: '0.5rem', padding: '0.3rem 0', borderBottom: '1px solid var(--border)' }}>
                <label style={{ flex: '1 1 12rem', display: 'flex', gap: '0.5rem', alignItems: 'center' }}>
                  <input
                    type="checkbox"
                    checked={shown.has(m)}
                    onChange={(e) => {
                      const next = new Set(shown);
                      if (e.target.checked) next.add(m);
                      else next.delete(m);
                      setShown(next);
                    }}
                  />
                  {DASHBOARD_MONITOR_LABELS[m]}
                </label>
                <span className="actions">
                  <button type="button" aria-label={`Move ${DASHBOARD_MONITOR_LABELS[m]} up`} disabled={i === 0} onClick={() => move(i, -1)}>
                    ↑ Up
                  </button>
                  <button type="button" aria-label={`Move ${DASHBOARD_MONITOR_LABELS[m]} down`} disabled={i === order.length - 1} onClick={() => move(i, 1)}>
                    ↓ Down
                  </button>
                </span>
              </li>
            ))}
          </ol>
        </div>
        <ErrorMessage error={error} onDismiss={() => setError(null)} />
        <footer className="dialog-footer">
          <button type="button" disabled={busy} onClick={() => void done(() => call(resetDashboardLayout, {}))}>
            Reset to default
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy}>
            Save
          </button>
        </footer>
      </form>
    </Dialog>
  );
}
