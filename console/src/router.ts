// A small history router: the console's pages by path, named as the API
// names what they show (/instances for /api/instances, /users for
// /api/users …). Former paths answer with a redirect, so bookmarks still
// land. matchRoute is pure (router.test.ts); navigate and useLocation bind
// it to the browser.
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { name: 'login' }
  | { name: 'instances' }
  | { name: 'instance'; id: string }
  | { name: 'deployments' }
  | { name: 'deployment'; id: string }
  | { name: 'edges' }
  | { name: 'regions' }
  | { name: 'models' }
  | { name: 'governance'; tab: string }
  | { name: 'analytics' }
  | { name: 'alerts' }
  | { name: 'redirect'; to: string }
  | { name: 'notfound'; path: string };

/** governancePaths are the governance pages by the API resource each shows. */
export const governancePaths = {
  audit: '/audit',
  ai_decisions: '/audit/ai_decisions',
  reports: '/reports',
  users: '/users',
  tokens: '/tokens',
} as const;

export type GovernanceTab = keyof typeof governancePaths;

/** formerTabs maps the tabs of the former /governance/{tab} pages to the pages that replaced them. */
const formerTabs: Record<string, GovernanceTab> = { audit: 'audit', ai: 'ai_decisions', reports: 'reports', users: 'users', tokens: 'tokens' };

/** matchRoute maps a path to a page. */
export function matchRoute(path: string): Route {
  const parts = path.split('?')[0].split('/').filter(Boolean).map(decodeURIComponent);
  const [a, b] = parts;
  switch (a) {
    case undefined:
      return { name: 'redirect', to: '/instances' };
    case 'login':
      return { name: 'login' };
    case 'instances':
      return b ? { name: 'instance', id: b } : { name: 'instances' };
    case 'deployments':
      return b ? { name: 'deployment', id: b } : { name: 'deployments' };
    case 'edges':
      return { name: 'edges' };
    case 'regions':
      return { name: 'regions' };
    case 'analytics':
      return { name: 'analytics' };
    case 'alerts':
      return { name: 'alerts' };
    case 'models':
      return { name: 'models' };
    case 'governance':
      return { name: 'redirect', to: governancePaths[Object.hasOwn(formerTabs, b) ? formerTabs[b] : 'audit'] };
    case 'audit':
      if (parts.length === 1) return { name: 'governance', tab: 'audit' };
      if (parts.length === 2 && b === 'ai_decisions') return { name: 'governance', tab: 'ai_decisions' };
      break;
    case 'reports':
    case 'users':
    case 'tokens':
      if (parts.length === 1) return { name: 'governance', tab: a };
      break;
  }
  return { name: 'notfound', path };
}

const listeners = new Set<() => void>();

/** navigate changes the page without a reload. */
export function navigate(to: string, replace = false) {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  window.scrollTo(0, 0);
  listeners.forEach((f) => f());
}

/** useLocation re-renders on navigation and returns the path and query. */
export function useLocation(): { path: string; query: URLSearchParams } {
  const [, set] = useState(0);
  useEffect(() => {
    const f = () => set((n) => n + 1);
    listeners.add(f);
    window.addEventListener('popstate', f);
    return () => {
      listeners.delete(f);
      window.removeEventListener('popstate', f);
    };
  }, []);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

/** onLinkClick makes an <a href> navigate in-app (keeping ctrl/middle clicks). */
export function onLinkClick(e: MouseEvent) {
  const a = (e.currentTarget as HTMLAnchorElement) ?? null;
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href') || '/');
}
