import { describe, expect, it } from 'vitest';
import { governancePaths, matchRoute } from './router';

describe('router', () => {
  it('maps paths to pages named as the API names them', () => {
    expect(matchRoute('/login')).toEqual({ name: 'login' });
    expect(matchRoute('/instances')).toEqual({ name: 'instances' });
    expect(matchRoute('/instances/')).toEqual({ name: 'instances' });
    expect(matchRoute('/instances/abc')).toEqual({ name: 'instance', id: 'abc' });
    expect(matchRoute('/deployments')).toEqual({ name: 'deployments' });
    expect(matchRoute('/deployments/d1')).toEqual({ name: 'deployment', id: 'd1' });
    expect(matchRoute('/audit')).toEqual({ name: 'governance', tab: 'audit' });
    expect(matchRoute('/audit/ai_decisions')).toEqual({ name: 'governance', tab: 'ai_decisions' });
    expect(matchRoute('/reports')).toEqual({ name: 'governance', tab: 'reports' });
    expect(matchRoute('/users')).toEqual({ name: 'governance', tab: 'users' });
    expect(matchRoute('/tokens?x=1')).toEqual({ name: 'governance', tab: 'tokens' });
    expect(matchRoute('/nope')).toEqual({ name: 'notfound', path: '/nope' });
  });

  it('has a page for each governance path', () => {
    for (const [tab, path] of Object.entries(governancePaths)) {
      expect(matchRoute(path)).toEqual({ name: 'governance', tab });
    }
  });

  it('refuses paths under a page that has none', () => {
    expect(matchRoute('/audit/verify')).toEqual({ name: 'notfound', path: '/audit/verify' });
    expect(matchRoute('/audit/ai_decisions/7')).toEqual({ name: 'notfound', path: '/audit/ai_decisions/7' });
    expect(matchRoute('/users/u1')).toEqual({ name: 'notfound', path: '/users/u1' });
  });

  it('redirects the former paths to the pages that replaced them', () => {
    const moved: [string, string][] = [
      ['/', '/instances'],
      ['/governance', '/audit'],
      ['/governance/', '/audit'],
      ['/governance/audit', '/audit'],
      ['/governance/ai', '/audit/ai_decisions'],
      ['/governance/reports', '/reports'],
      ['/governance/users', '/users'],
      ['/governance/tokens', '/tokens'],
      ['/governance/tokens?next=1', '/tokens'],
      // An unknown tab showed the audit log; so does its redirect.
      ['/governance/bogus', '/audit'],
      ['/governance/constructor', '/audit'],
    ];
    for (const [from, to] of moved) {
      expect([from, matchRoute(from)]).toEqual([from, { name: 'redirect', to }]);
      expect(matchRoute(to).name).not.toBe('redirect');
    }
  });
});
