/**
 * The console's frame: sign-in gate, navigation, live-update status and the routes. Each page
 * is one module under pages/ reading the REST API.
 */
import { useEffect, useState, type ReactNode } from 'react';
import { Link, Route, Switch, useLocation } from 'wouter';
import { useQueryClient } from '@tanstack/react-query';
import { deleteSession } from '@garrison/protocol';
import { call, session } from './api.ts';
import { AccessProvider, Permission, useAccess, useMe, type Access } from './access.tsx';
import { LiveProvider, useLiveState } from './live.tsx';
import { ErrorMessage, Loading, ToastProvider } from './ui.tsx';
import { SignIn, hasOidcReturn } from './pages/SignIn.tsx';
import { Dashboard } from './pages/Dashboard.tsx';
import { Devices } from './pages/Devices.tsx';
import { DeviceDetails } from './pages/DeviceDetails.tsx';
import { Tasks } from './pages/Tasks.tsx';
import { TaskEdit } from './pages/TaskEdit.tsx';
import { TaskDetails } from './pages/TaskDetails.tsx';
import { ServerTasks } from './pages/ServerTasks.tsx';
import { ServerTaskEdit } from './pages/ServerTaskEdit.tsx';
import { ServerTaskDetails } from './pages/ServerTaskDetails.tsx';
import { Events } from './pages/Events.tsx';
import { Policies, PolicyEdit } from './pages/Policies.tsx';
import { Repository } from './pages/Repository.tsx';
import { Deployments } from './pages/Deployments.tsx';
import { Installers } from './pages/Installers.tsx';
import { Push, PushJob } from './pages/Push.tsx';
import { Secrets } from './pages/Secrets.tsx';
import { Notifications } from './pages/Notifications.tsx';
import { Account } from './pages/Account.tsx';
import { Administrators } from './pages/Administrators.tsx';
import { Roles } from './pages/Roles.tsx';

/** The pages, each shown to administrators who may read it (server-wide ones need read on the root group). */
const NAV: { href: string; label: string; show: (a: Access) => boolean }[] = [
  { href: '/', label: 'Dashboard', show: () => true },
  { href: '/devices', label: 'Devices', show: (a) => a.can(Permission.read) },
  { href: '/tasks', label: 'Tasks', show: (a) => a.can(Permission.read) },
  { href: '/policies', label: 'Policies', show: (a) => a.can(Permission.read) },
  { href: '/server-tasks', label: 'Server tasks', show: (a) => a.canOnRoot(Permission.read) },
  { href: '/events', label: 'Events', show: (a) => a.can(Permission.read) },
  { href: '/repository', label: 'Repository', show: (a) => a.can(Permission.read) },
  { href: '/deployments', label: 'Deployments', show: (a) => a.can(Permission.read) },
  { href: '/installers', label: 'Installers', show: (a) => a.can(Permission.read) },
  { href: '/push', label: 'Push installation', show: (a) => a.can(Permission.read) },
  { href: '/secrets', label: 'Secrets', show: (a) => a.can(Permission.read) },
  { href: '/notifications', label: 'Notifications', show: (a) => a.can(Permission.read) },
  { href: '/administrators', label: 'Administrators', show: (a) => a.canOnRoot(Permission.read) },
  { href: '/roles', label: 'Roles', show: (a) => a.canOnRoot(Permission.read) },
];

export function App() {
  // Back from the OpenID provider (/?oidc=…): the sign-in page exchanges the code, even over a session this browser had.
  const [token, setToken] = useState(() => (hasOidcReturn() ? null : session.token()));
  const qc = useQueryClient();
  useEffect(
    () =>
      session.onSignedOut(() => {
        setToken(null);
        qc.clear();
      }),
    [qc],
  );
  return (
    <ToastProvider>
      {token ? (
        <LiveProvider>
          <Shell />
        </LiveProvider>
      ) : (
        <SignIn onSignedIn={(t) => {
          session.set(t);
          setToken(t);
        }} />
      )}
    </ToastProvider>
  );
}

function isCurrent(location: string, href: string): boolean {
  return href === '/' ? location === '/' : location === href || location.startsWith(`${href}/`);
}

function Shell() {
  const me = useMe();
  return (
    <AccessProvider me={me.data}>
      <Frame me={me} />
    </AccessProvider>
  );
}

function Frame({ me }: { me: ReturnType<typeof useMe> }) {
  const [location] = useLocation();
  const [menuOpen, setMenuOpen] = useState(false);
  const live = useLiveState();
  useEffect(() => setMenuOpen(false), [location]);
  const access = useAccess();
  // Until /me is read the menu and the pages wait, so that nothing shows that the role then hides.
  const known = me.data !== undefined || me.error !== null;
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <button type="button" className="menu-toggle" aria-expanded={menuOpen} aria-controls="nav" onClick={() => setMenuOpen((o) => !o)}>
          <span aria-hidden="true">☰</span> Menu
        </button>
        <Link href="/" className="brand">
          Garrison
        </Link>
        <span className={`live live-${live}`} role="status" title={live === 'live' ? 'Pages update as things change' : 'Live updates are reconnecting; pages refresh every 15 s'}>
          {live === 'live' ? 'Live' : live === 'connecting' ? 'Connecting…' : 'Reconnecting…'}
        </span>
        <nav className="user" aria-label="Account">
          <Link href="/account">{me.data?.name ?? 'Account'}</Link>
          <button
            type="button"
            className="link"
            onClick={async () => {
              await call(deleteSession, {}).catch(() => {});
              session.clear();
            }}
          >
            Sign out
          </button>
        </nav>
      </header>
      <div className="body">
        <nav id="nav" className={`sidenav ${menuOpen ? 'open' : ''}`} aria-label="Main">
          <ul>
            {!known ? null : NAV.filter((n) => n.show(access)).map((n) => (
              <li key={n.href}>
                <Link href={n.href} aria-current={isCurrent(location, n.href) ? 'page' : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" tabIndex={-1}>
          {me.error ? <ErrorMessage error={me.error} /> : null}
          {known ? <Routes /> : <Loading />}
        </main>
      </div>
    </div>
  );
}

function Routes(): ReactNode {
  return (
    <Switch>
      <Route path="/" component={Dashboard} />
      <Route path="/devices" component={Devices} />
      <Route path="/devices/:id">{(p) => <DeviceDetails id={p.id} />}</Route>
      <Route path="/tasks" component={Tasks} />
      <Route path="/tasks/new">{() => <TaskEdit />}</Route>
      <Route path="/tasks/:id/edit">{(p) => <TaskEdit id={p.id} />}</Route>
      <Route path="/tasks/:id">{(p) => <TaskDetails id={p.id} />}</Route>
      <Route path="/policies" component={Policies} />
      <Route path="/policies/new">{() => <PolicyEdit />}</Route>
      <Route path="/policies/:id">{(p) => <PolicyEdit id={p.id} />}</Route>
      <Route path="/server-tasks" component={ServerTasks} />
      <Route path="/server-tasks/new">{() => <ServerTaskEdit />}</Route>
      <Route path="/server-tasks/:id/edit">{(p) => <ServerTaskEdit id={p.id} />}</Route>
      <Route path="/server-tasks/:id">{(p) => <ServerTaskDetails id={p.id} />}</Route>
      <Route path="/events" component={Events} />
      <Route path="/repository" component={Repository} />
      <Route path="/deployments" component={Deployments} />
      <Route path="/installers" component={Installers} />
      <Route path="/push" component={Push} />
      <Route path="/push/:id">{(p) => <PushJob id={p.id} />}</Route>
      <Route path="/secrets" component={Secrets} />
      <Route path="/notifications" component={Notifications} />
      <Route path="/administrators" component={Administrators} />
      <Route path="/roles" component={Roles} />
      <Route path="/account" component={Account} />
      <Route>
        <section className="page">
          <h1 id="page-title">Page not found</h1>
          <p>
            <Link href="/">Back to the dashboard</Link>
          </p>
        </section>
      </Route>
    </Switch>
  );
}

