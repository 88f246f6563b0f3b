/**
 * Push installation (the "Protect computers" wizard): hosts, a target group and SSH credentials
 * typed once; the server connects to each host, checks it, installs the agent and enrols it.
 * The credentials go in the request that starts the job and are dropped from the page at
 * once: the server uses them for that job only and never stores them.
 */
import { useDeferredValue, useMemo, useState, type FormEvent } from 'react';
import { Link, useLocation } from 'wouter';
import {
  expandHostList,
  splitHostList,
  PUSH_DEFAULT_CONNECT_TIMEOUT_SECONDS,
  PUSH_DEFAULT_INSTALL_DIR,
  PUSH_DEFAULT_INSTALL_TIMEOUT_MINUTES,
  PUSH_DEFAULT_PARALLEL,
  PUSH_DEFAULT_PORT,
  PUSH_MAX_HOSTS,
  PUSH_MAX_PARALLEL,
  PUSH_STEPS,
  cancelPushInstall,
  getPushInstall,
  listPushInstalls,
  startPushInstall,
} from '@garrison/protocol';
import type { PushHostState, PushHostView, PushInstallCreate, PushJobView } from '@garrison/protocol';
import { call, useOp } from '../api.ts';
import { useMorePages } from '../tasks/queries.ts';
import { plural } from '../format.ts';
import { Async, ConfirmButton, Empty, ErrorMessage, GroupSelect, Page, Section, StateBadge, Time, useBusy, useToast } from '../ui.tsx';
import { Permission, useAccess } from '../access.tsx';
import { StateBar, checkError, hostTarget, optionalInt, useRootGroupId, Field } from '../admin/common.tsx';

const ROW_LIMIT = 500;
const INSTALL_DIR = /^(?!.*\/\.\.?(\/|$))\/[A-Za-z0-9._+@-]+(\/[A-Za-z0-9._+@-]+)*$/;

function summaryItems(s: PushJobView['summary']) {
  return [
    { state: 'succeeded', label: 'Succeeded', n: s.succeeded },
    { state: 'failed', label: 'Failed', n: s.failed },
    { state: 'running', label: 'Running', n: s.running },
    { state: 'pending', label: 'Pending', n: s.pending },
  ];
}

// ---------------------------------------------------------------------------------------------
// Start a job, and the list of jobs
// ---------------------------------------------------------------------------------------------

export function Push() {
  const mayPush = useAccess().can(Permission.pushInstall);
  return (
    <Page title="Push installation" subtitle="Install the agent on machines over SSH and enrol them into a group. The credentials are used for this job only and never stored.">
      {mayPush ? <StartPush /> : null}
      <Jobs />
    </Page>
  );
}

function intIn(text: string, min: number, max: number, what: string): number | undefined | Error {
  const n = optionalInt(text);
  if (n === undefined) return undefined;
  if (Number.isNaN(n) || n < min || n > max) return checkError(`${what} is a whole number from ${min} to ${max}.`);
  return n;
}

function StartPush() {
  const root = useRootGroupId();
  const [, navigate] = useLocation();
  const [groupId, setGroupId] = useState('');
  const [hosts, setHosts] = useState('');
  const [port, setPort] = useState('');
  const [username, setUsername] = useState('');
  const [auth, setAuth] = useState<'password' | 'key'>('password');
  const [password, setPassword] = useState('');
  const [privateKey, setPrivateKey] = useState('');
  const [passphrase, setPassphrase] = useState('');
  const [keyInput, setKeyInput] = useState(0);
  const [parallel, setParallel] = useState('');
  const [removeConflicting, setRemoveConflicting] = useState(false);
  const [installDir, setInstallDir] = useState('');
  const [connectTimeout, setConnectTimeout] = useState('');
  const [installTimeout, setInstallTimeout] = useState('');
  const { busy, error, setError, run } = useBusy();
  const toast = useToast();
  const group = groupId || root;

  // The list is checked as it is typed, with the grammar the server applies.
  const deferredHosts = useDeferredValue(hosts);
  const portNumber = optionalInt(port);
  const defaultPort = portNumber !== undefined && !Number.isNaN(portNumber) && portNumber >= 1 && portNumber <= 65535 ? portNumber : PUSH_DEFAULT_PORT;
  const check = useMemo(() => (deferredHosts.trim() ? expandHostList(splitHostList(deferredHosts), { defaultPort }) : null), [deferredHosts, defaultPort]);

  const forgetCredentials = () => {
    setPassword('');
    setPrivateKey('');
    setPassphrase('');
    setKeyInput((k) => k + 1);
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!group) return setError(checkError('Choose the group the hosts enrol into.'));
    const entries = splitHostList(hosts);
    const expanded = expandHostList(entries, { defaultPort });
    if (!expanded.ok) return setError(checkError(expanded.entry ? `"${expanded.entry}": ${expanded.reason}` : expanded.reason, 'HOSTS_INVALID'));
    if (!username.trim()) return setError(checkError('Type the SSH login (root, or a user who may use sudo).'));
    if (auth === 'password' && !password) return setError(checkError('Type the SSH password, or choose a private key.', 'CREDENTIALS_INVALID'));
    if (auth === 'key' && !privateKey.trim()) return setError(checkError('Paste the private key or load it from a file, or choose a password.', 'CREDENTIALS_INVALID'));
    const nums = {
      port: intIn(port, 1, 65535, 'The SSH port'),
      parallel: intIn(parallel, 1, PUSH_MAX_PARALLEL, 'Hosts at once'),
      connectTimeoutSeconds: intIn(connectTimeout, 1, 300, 'The connect timeout'),
      installTimeoutMinutes: intIn(installTimeout, 1, 240, 'The install timeout'),
    };
    for (const v of Object.values(nums)) if (v instanceof Error) return setError(v);
    const dir = installDir.trim();
    if (dir && !INSTALL_DIR.test(dir)) return setError(checkError('The install folder is an absolute path of letters, digits and . _ + @ - without "." or ".." parts.'));

    const body = {
      groupId: group,
      hosts: entries,
      username: username.trim(),
      ...(auth === 'password' ? { password } : { privateKey: privateKey.endsWith('\n') ? privateKey : `${privateKey}\n`, ...(passphrase ? { passphrase } : {}) }),
      ...Object.fromEntries(Object.entries(nums).filter(([, v]) => v !== undefined)),
      ...(removeConflicting ? { removeConflicting: true } : {}),
      ...(dir ? { installDir: dir } : {}),
    } as PushInstallCreate;
    // The credentials leave the page with this request; they are not kept, whatever the answer.
    forgetCredentials();
    const job = await run(() => call(startPushInstall, { body }));
    if (job) {
      toast(`Push installation started on ${plural(job.summary.total, 'host')}`);
      navigate(`/push/${encodeURIComponent(job.id)}`);
    }
  };

  return (
    <Section title="Start a push installation">
      <form onSubmit={submit} autoComplete="off" aria-label="Start a push installation">
        <div className="row adm-top">
          <GroupSelect value={group} onChange={setGroupId} required label="Enrol into group" />
          <Field label="SSH port" hint={`For hosts given without :port; default ${PUSH_DEFAULT_PORT}.`}>
            <input type="number" min={1} max={65535} value={port} onChange={(e) => setPort(e.target.value)} placeholder={String(PUSH_DEFAULT_PORT)} inputMode="numeric" />
          </Field>
        </div>
        <Field
          label="Hosts"
          hint={`Host names, addresses, ranges (10.0.0.5-20, 10.0.0.5-10.0.1.9) and CIDR blocks up to /22, each with an optional :port ([v6]:port); separated by commas, spaces or lines. At most ${PUSH_MAX_HOSTS.toLocaleString()} hosts.`}
        >
          <textarea value={hosts} onChange={(e) => setHosts(e.target.value)} rows={4} spellCheck={false} autoComplete="off" aria-describedby="push-host-check" />
        </Field>
        <p id="push-host-check" className={`adm-host-check ${check ? (check.ok ? 'ok' : 'bad') : ''}`} aria-live="polite">
          {check === null ? '' : check.ok ? `${plural(check.hosts.length, 'host')}: ${check.hosts.slice(0, 3).map(hostTarget).join(', ')}${check.hosts.length > 3 ? ', …' : ''}` : `${check.entry ? `“${check.entry}”: ` : ''}${check.reason}`}
        </p>

        <fieldset>
          <legend>SSH credentials (used for this job only, never stored)</legend>
          <div className="row adm-top">
            <Field label="Username" hint="root, or a user who may use sudo.">
              <input value={username} onChange={(e) => setUsername(e.target.value)} required maxLength={256} autoComplete="off" spellCheck={false} />
            </Field>
          </div>
          <div className="adm-radio-row" role="radiogroup" aria-label="SSH sign-in">
            <label>
              <input type="radio" name="push-auth" value="password" checked={auth === 'password'} onChange={() => setAuth('password')} /> Use a password
            </label>
            <label>
              <input type="radio" name="push-auth" value="key" checked={auth === 'key'} onChange={() => setAuth('key')} /> Use a private key
            </label>
          </div>
          {auth === 'password' ? (
            <Field label="Password" hint="Also used for sudo.">
              <input type="password" value={password} onChange={(e) => setPassword(e.target.value)} maxLength={1024} autoComplete="off" spellCheck={false} />
            </Field>
          ) : (
            <>
              <Field label="Private key" hint="An OpenSSH or PEM private key.">
                <textarea value={privateKey} onChange={(e) => setPrivateKey(e.target.value)} rows={5} maxLength={65536} spellCheck={false} autoComplete="off" placeholder="-----BEGIN OPENSSH PRIVATE KEY-----" />
              </Field>
              <div className="row adm-top">
                <Field label="Load the key from a file">
                  <input
                    key={keyInput}
                    type="file"
                    className="adm-file"
                    onChange={async (e) => {
                      const f = e.target.files?.[0];
                      if (!f) return;
                      if (f.size > 65536) return setError(checkError(`${f.name} is too large for a private key.`));
                      setPrivateKey(await f.text());
                      // The file input keeps no copy once read.
                      setKeyInput((k) => k + 1);
                    }}
                  />
                </Field>
                <Field label="Passphrase" hint="Only if the key has one.">
                  <input type="password" value={passphrase} onChange={(e) => setPassphrase(e.target.value)} maxLength={1024} autoComplete="off" spellCheck={false} />
                </Field>
              </div>
            </>
          )}
        </fieldset>

        <fieldset>
          <legend>Options</legend>
          <div className="row adm-top">
            <Field label="Hosts at once" hint={`1 to ${PUSH_MAX_PARALLEL}; default ${PUSH_DEFAULT_PARALLEL}.`}>
              <input type="number" min={1} max={PUSH_MAX_PARALLEL} value={parallel} onChange={(e) => setParallel(e.target.value)} placeholder={String(PUSH_DEFAULT_PARALLEL)} inputMode="numeric" />
            </Field>
            <Field label="Install folder" hint={`Default ${PUSH_DEFAULT_INSTALL_DIR}.`}>
              <input value={installDir} onChange={(e) => setInstallDir(e.target.value)} placeholder={PUSH_DEFAULT_INSTALL_DIR} spellCheck={false} autoComplete="off" />
            </Field>
            <Field label="Connect timeout (s)" hint={`Default ${PUSH_DEFAULT_CONNECT_TIMEOUT_SECONDS}.`}>
              <input type="number" min={1} max={300} value={connectTimeout} onChange={(e) => setConnectTimeout(e.target.value)} placeholder={String(PUSH_DEFAULT_CONNECT_TIMEOUT_SECONDS)} inputMode="numeric" />
            </Field>
            <Field label="Install timeout (min)" hint={`Default ${PUSH_DEFAULT_INSTALL_TIMEOUT_MINUTES}.`}>
              <input type="number" min={1} max={240} value={installTimeout} onChange={(e) => setInstallTimeout(e.target.value)} placeholder={String(PUSH_DEFAULT_INSTALL_TIMEOUT_MINUTES)} inputMode="numeric" />
            </Field>
          </div>
          <Field inline label="Remove a previous agent first" hint="Runs the previous agent's uninstall.sh in the install folder before installing.">
            <input type="checkbox" checked={removeConflicting} onChange={(e) => setRemoveConflicting(e.target.checked)} />
          </Field>
        </fieldset>

        <ErrorMessage error={error} onDismiss={() => setError(null)} />
        <div className="adm-form-actions">
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Starting…' : 'Start push installation'}
          </button>
          <span className="muted small">The password or key is cleared from this form when you start.</span>
        </div>
      </form>
    </Section>
  );
}

function Jobs() {
  // Newest first, a page at a time; the live feed refreshes the pages shown on push events.
  const jobs = useMorePages(listPushInstalls, { query: {} });
  const list = jobs.items;
  return (
    <Section title="Push installations">
      <Async q={jobs}>
        {() =>
          list.length === 0 ? (
            <Empty>No push installation yet.</Empty>
          ) : (
            <div className="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Started</th>
                    <th scope="col">Group</th>
                    <th scope="col">State</th>
                    <th scope="col">Hosts</th>
                    <th scope="col">Requested by</th>
                    <th scope="col">Finished</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((j) => (
                    <tr key={j.id}>
                      <td className="nowrap">
                        <Link href={`/push/${encodeURIComponent(j.id)}`}>
                          <Time iso={j.createdAt} />
                          <span className="sr-only">: push installation into {j.groupPath}</span>
                        </Link>
                      </td>
                      <td>{j.groupPath}</td>
                      <td>
                        <StateBadge state={j.state} />
                      </td>
                      <td style={{ minWidth: '12rem' }}>
                        <StateBar compact what="hosts" items={summaryItems(j.summary)} />
                        <span className="small">
                          {plural(j.summary.total, 'host')}: {j.summary.succeeded} succeeded, {j.summary.failed} failed
                          {j.summary.running ? `, ${j.summary.running} running` : ''}
                          {j.summary.pending ? `, ${j.summary.pending} pending` : ''}
                        </span>
                      </td>
                      <td>{j.requestedBy}</td>
                      <td className="nowrap">
                        <Time iso={j.finishedAt} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {jobs.hasNextPage ? (
                <p>
                  <button type="button" disabled={jobs.isFetchingNextPage} onClick={() => void jobs.fetchNextPage()}>
                    {jobs.isFetchingNextPage ? 'Loading…' : 'Load more'}
                  </button>
                </p>
              ) : null}
            </div>
          )
        }
      </Async>
      {jobs.error && jobs.data ? <ErrorMessage error={jobs.error} /> : null}
    </Section>
  );
}

// ---------------------------------------------------------------------------------------------
// One job
// ---------------------------------------------------------------------------------------------

export function PushJob({ id }: { id: string }) {
  // The live feed refreshes this on push events; while the job runs it is also read every 2 s.
  const job = useOp(getPushInstall, { params: { id } }, { refetchInterval: (q) => (q.state.data?.state === 'running' ? 2000 : false) });
  const toast = useToast();
  const j = job.data;
  const access = useAccess();
  return (
    <Page
      title="Push installation"
      subtitle={
        j ? (
          <>
            Into {j.groupPath}, started <Time iso={j.createdAt} /> by {j.requestedBy}
          </>
        ) : (
          <Link href="/push">All push installations</Link>
        )
      }
      actions={
        <>
          <Link href="/push" className="button">
            All push installations
          </Link>
          {j?.state === 'running' && access.canIn(Permission.pushInstall, j.groupId) ? (
            <ConfirmButton
              label="Cancel push installation"
              danger
              confirmLabel="Cancel the job"
              question={<p>Cancel this push installation? Pending hosts are not started and running ones are disconnected; hosts already done keep their agent.</p>}
              onConfirm={async () => {
                await call(cancelPushInstall, { params: { id } });
                toast('Push installation cancelled');
                await job.refetch();
              }}
            />
          ) : null}
        </>
      }
    >
      <Async q={job}>{(data) => <JobBody job={data} />}</Async>
      {job.error && job.data ? <ErrorMessage error={job.error} /> : null}
    </Page>
  );
}

function JobBody({ job }: { job: PushJobView }) {
  const [filter, setFilter] = useState<'' | PushHostState>('');
  const [search, setSearch] = useState('');
  const [limit, setLimit] = useState(ROW_LIMIT);
  const [open, setOpen] = useState<Set<string>>(new Set());
  const hosts = job.hosts ?? [];
  const needle = search.trim().toLowerCase();
  const rows = hosts.filter((h) => (!filter || h.state === filter) && (!needle || hostTarget(h).toLowerCase().includes(needle)));
  const shown = rows.slice(0, limit);
  const s = job.summary;
  const outcomes = Object.entries(s.outcomes).filter(([, n]) => (n ?? 0) > 0);
  const o = job.options;

  const toggle = (key: string) =>
    setOpen((cur) => {
      const n = new Set(cur);
      if (n.has(key)) n.delete(key);
      else n.add(key);
      return n;
    });

  return (
    <>
      <Section title="Summary">
        <p role="status" aria-live="polite">
          <StateBadge state={job.state} /> {plural(s.total, 'host')}: {s.succeeded} succeeded, {s.failed} failed, {s.running} running, {s.pending} pending
        </p>
        <StateBar what="hosts" items={summaryItems(s)} />
        {outcomes.length ? (
          <p className="small">
            Outcomes:{' '}
            {outcomes.map(([k, n], i) => (
              <span key={k}>
                {i ? ', ' : ''}
                <code>{k}</code> {n}
              </span>
            ))}
          </p>
        ) : null}
        <dl className="props">
          <dt>Group</dt>
          <dd>{job.groupPath}</dd>
          <dt>Started</dt>
          <dd>
            <Time iso={job.createdAt} /> by {job.requestedBy}
          </dd>
          <dt>Finished</dt>
          <dd>{job.finishedAt ? <Time iso={job.finishedAt} /> : <span className="muted">running</span>}</dd>
          <dt>Options</dt>
          <dd>
            port {o.port}, {o.auth === 'key' ? 'private key' : 'password'} login, {o.parallel} at once, install folder <code>{o.installDir}</code>
            {o.removeConflicting ? ', removes a previous agent' : ''}, connect timeout {o.connectTimeoutSeconds} s, install timeout {o.installTimeoutMinutes} min
          </dd>
          <dt>Job id</dt>
          <dd>
            <code>{job.id}</code>
          </dd>
        </dl>
      </Section>

      <Section title="Hosts">
        <div className="toolbar">
          <Field label="State">
            <select value={filter} onChange={(e) => setFilter(e.target.value as '' | PushHostState)}>
              <option value="">All ({hosts.length})</option>
              <option value="failed">Failed ({s.failed})</option>
              <option value="running">Running ({s.running})</option>
              <option value="pending">Pending ({s.pending})</option>
              <option value="succeeded">Succeeded ({s.succeeded})</option>
            </select>
          </Field>
          <Field label="Host">
            <input type="search" value={search} onChange={(e) => setSearch(e.target.value)} placeholder="Address contains…" />
          </Field>
        </div>
        {rows.length === 0 ? (
          <Empty>No host matches.</Empty>
        ) : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Host</th>
                  <th scope="col">State</th>
                  <th scope="col">Step</th>
                  <th scope="col">Outcome</th>
                  <th scope="col" className="num">
                    Exit code
                  </th>
                  <th scope="col">Device</th>
                  <th scope="col">
                    <span className="muted">Details</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {shown.map((h) => {
                  const key = hostTarget(h);
                  return <HostRows key={key} h={h} expanded={open.has(key)} onToggle={() => toggle(key)} />;
                })}
              </tbody>
            </table>
          </div>
        )}
        {rows.length > shown.length ? (
          <p>
            <button type="button" onClick={() => setLimit((l) => l + ROW_LIMIT)}>
              Show {Math.min(ROW_LIMIT, rows.length - shown.length)} more of {(rows.length - shown.length).toLocaleString()}
            </button>
          </p>
        ) : null}
      </Section>
    </>
  );
}

function stepText(h: PushHostView): string {
  if (h.state === 'pending' || !h.step) return '—';
  const i = PUSH_STEPS.indexOf(h.step);
  return `${i + 1} of ${PUSH_STEPS.length}: ${h.step}`;
}

function HostRows({ h, expanded, onToggle }: { h: PushHostView; expanded: boolean; onToggle: () => void }) {
  const target = hostTarget(h);
  const detailId = `push-host-${target.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  const current = h.steps.find((st) => st.name === h.step);
  const pct = Math.max(0, Math.min(100, Math.round(h.percent)));
  return (
    <>
      <tr>
        <td>
          <code>{target}</code>
          {h.platform ? <div className="muted small">{h.platform}</div> : null}
        </td>
        <td>
          <StateBadge state={h.state} />
        </td>
        <td className="nowrap">
          {h.state === 'pending' ? (
            <span className="muted">waiting</span>
          ) : (
            <>
              <span className={`adm-mini-progress ${h.state === 'succeeded' ? 'ok' : h.state === 'failed' ? 'bad' : ''}`} role="progressbar" aria-label={`${target} progress`} aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct}>
                <span style={{ width: `${pct}%` }} />
              </span>
              <span className="small">
                {pct}% · step {stepText(h)}
              </span>
              {h.state === 'running' && current?.message ? <div className="muted small">{current.message}</div> : null}
            </>
          )}
        </td>
        <td>
          {h.outcome ? <code>{h.outcome}</code> : <span className="muted">—</span>}
          {h.message && h.state !== 'running' ? <div className="small">{h.message}</div> : null}
        </td>
        <td className="num">{h.exitCode ?? <span className="muted">—</span>}</td>
        <td>{h.deviceId ? <Link href={`/devices/${encodeURIComponent(h.deviceId)}`}>Open device</Link> : <span className="muted">—</span>}</td>
        <td>
          {h.state !== 'pending' ? (
            <button type="button" className="link" aria-expanded={expanded} aria-controls={detailId} onClick={onToggle} aria-label={`${expanded ? 'Hide' : h.outputTail ? 'Steps and output' : 'Steps'} of ${target}`}>
              {expanded ? 'Hide' : h.outputTail ? 'Steps and output' : 'Steps'}
            </button>
          ) : null}
        </td>
      </tr>
      {expanded ? (
        <tr className="adm-detail-row" id={detailId}>
          <td colSpan={7}>
            <ol className="adm-step-list" aria-label={`Steps on ${target}`}>
              {h.steps.map((st) => (
                <li key={st.name}>
                  <strong>{st.name}</strong> <StateBadge state={st.state} />
                  {st.message ? <span className="small">{st.message}</span> : null}
                </li>
              ))}
            </ol>
            <dl className="props small">
              {h.hostKeySha256 ? (
                <>
                  <dt>Host key</dt>
                  <dd className="adm-mono">{h.hostKeySha256}</dd>
                </>
              ) : null}
              <dt>Started</dt>
              <dd>
                <Time iso={h.startedAt} />
              </dd>
              <dt>Finished</dt>
              <dd>
                <Time iso={h.finishedAt} />
              </dd>
            </dl>
            {h.outputTail ? <pre aria-label={`Output of ${target} (last lines)`}>{h.outputTail}</pre> : <p className="muted small">No output.</p>}
          </td>
        </tr>
      ) : null}
    </>
  );
}
