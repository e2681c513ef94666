// A small history router: the console's pages by path. matchRoute is pure
// (router.test.ts); navigate and useRoute bind it to the browser.
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { name: 'login' }
  | { name: 'fleet' }
  | { name: 'instance'; id: string }
  | { name: 'deployments' }
  | { name: 'deployment'; id: string }
  | { name: 'edges' }
  | { name: 'regions' }
  | { name: 'models' }
  | { name: 'governance'; tab: string }
  | { name: 'analytics' }
  | { name: 'alerts' }
  | { name: 'notfound'; path: string };

export const governanceTabs = ['audit', 'ai', 'reports', 'users', 'tokens'] as const;

/** matchRoute maps a path to a page. */
export function matchRoute(path: string): Route {
  const parts = path.split('?')[0].split('/').filter(Boolean).map(decodeURIComponent);
  const [a, b] = parts;
  switch (a) {
    case undefined:
      return { name: 'fleet' };
    case 'login':
      return { name: 'login' };
    case 'instances':
      return b ? { name: 'instance', id: b } : { name: 'fleet' };
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
      return { name: 'governance', tab: (governanceTabs as readonly string[]).includes(b) ? b : 'audit' };
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
