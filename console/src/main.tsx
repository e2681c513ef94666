// The console's entry: session gating, the layout and the page router.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { getPermissions, getSession, loadPermissions, logout, onSessionChange } from './api';
import { can } from './session';
import { matchRoute, navigate, useLocation } from './router';
import { Link, Loading, Toasts, ErrorBox } from './components/ui';
import { LoginPage } from './pages/Login';
import { InstancesPage } from './pages/Instances';
import { InstancePage } from './pages/Instance';
import { DeploymentsPage, DeploymentPage } from './pages/Deployments';
import { GovernancePage } from './pages/governance/Governance';
import { EdgesPage } from './pages/Edges';
import { ModelsPage } from './pages/Models';
import { RegionsPage } from './pages/Regions';
import { AnalyticsPage } from './pages/Analytics';
import { AlertsPage } from './pages/Alerts';
import { errorMessage } from './api';
import './styles.css';

function App() {
  const { path } = useLocation();
  const [, setTick] = useState(0);
  const [loaded, setReady] = useState(false);
  const [bootError, setBootError] = useState('');
  useEffect(() => onSessionChange(() => setTick((n) => n + 1)), []);
  const session = getSession();
  const ready = loaded || getPermissions().length > 0;
  const route = matchRoute(path);

  useEffect(() => {
    if (route.name === 'redirect') navigate(route.to + location.search + location.hash, true);
  }, [path]);

  useEffect(() => {
    if (route.name === 'redirect') return;
    if (!session && route.name !== 'login') {
      const back = path === '/' ? '' : '?next=' + encodeURIComponent(path + location.search);
      navigate('/login' + back, true);
    } else if (session && route.name === 'login') {
      navigate(new URLSearchParams(location.search).get('next') || '/', true);
    }
  }, [session, route.name]);

  useEffect(() => {
    if (session && !ready) {
      loadPermissions().then(
        () => setReady(true),
        (e) => setBootError(errorMessage(e)),
      );
    }
    if (!session) setReady(false);
  }, [session]);

  if (route.name === 'redirect') return null;
  if (!session || route.name === 'login') {
    return (
      <>
        <LoginPage />
        <Toasts />
      </>
    );
  }
  if (!ready) return bootError ? <ErrorBox error={bootError} /> : <Loading what="Loading your session" />;
  return (
    <Layout current={route.name}>
      {route.name === 'instances' && <InstancesPage />}
      {route.name === 'instance' && <InstancePage id={route.id} />}
      {route.name === 'deployments' && <DeploymentsPage />}
      {route.name === 'deployment' && <DeploymentPage id={route.id} />}
      {route.name === 'governance' && <GovernancePage tab={route.tab} />}
      {route.name === 'edges' && <EdgesPage />}
      {route.name === 'regions' && <RegionsPage />}
      {route.name === 'analytics' && <AnalyticsPage />}
      {route.name === 'alerts' && <AlertsPage />}
      {route.name === 'models' && <ModelsPage />}
      {route.name === 'notfound' && (
        <ErrorBox error={`There is no page at ${route.path}.`} />
      )}
    </Layout>
  );
}

function Layout({ current, children }: { current: string; children: any }) {
  const s = getSession()!;
  const perms = getPermissions();
  const items: [string, string, string[], boolean][] = [
    ['/instances', 'Instances', ['instances', 'instance'], can(perms, 'instances', 'read')],
    ['/deployments', 'Deployments', ['deployments', 'deployment'], can(perms, 'deployments', 'read')],
    ['/edges', 'Edges', ['edges'], can(perms, 'edges', 'read')],
    ['/regions', 'Regions', ['regions'], can(perms, 'regions', 'read')],
    ['/analytics', 'Analytics', ['analytics'], can(perms, 'metrics', 'read')],
    ['/alerts', 'Alerts', ['alerts'], can(perms, 'alerts', 'read')],
    ['/models', 'Models', ['models'], can(perms, 'models', 'read')],
    ['/audit', 'Governance', ['governance'], can(perms, 'audit', 'read')],
  ];
  return (
    <div class="shell">
      <header class="topbar">
        <Link href="/" class="brand">
          <span class="brand-mark" aria-hidden="true">▲</span> RedForge <span class="brand-sub">Control Tower</span>
        </Link>
        <nav class="nav" aria-label="Main">
          {items
            .filter((i) => i[3])
            .map(([href, label, names]) => (
              <Link href={href} class={names.includes(current) ? 'nav-item active' : 'nav-item'}>
                {label}
              </Link>
            ))}
        </nav>
        <div class="who">
          <span class="who-name" data-testid="whoami">
            {s.user.username}
          </span>
          <span class={'role role-' + s.user.role.toLowerCase()} data-testid="role">
            {s.user.role}
          </span>
          <button class="btn btn-small" onClick={() => logout()} data-testid="logout">
            Log out
          </button>
        </div>
      </header>
      <main class="content">{children}</main>
      <Toasts />
    </div>
  );
}

render(<App />, document.getElementById('app')!);
