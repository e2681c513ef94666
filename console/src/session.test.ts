import { describe, expect, it } from 'vitest';
import { can, expiresSoon, parseSession } from './session';
import { backoff, wsURL } from './ws';

describe('session', () => {
  const good = { access_token: 'a', refresh_token: 'r', expires_at: '2026-11-27T16:15:00Z', user: { id: 'u1', username: 'ann', role: 'ADMIN' } };
  it('parses a login response and refuses junk', () => {
    expect(parseSession(good)).toEqual(good);
    expect(parseSession(null)).toBeNull();
    expect(parseSession({ ...good, access_token: '' })).toBeNull();
    expect(parseSession({ ...good, user: undefined })).toBeNull();
  });
  it('knows when the access token is about to expire', () => {
    const s = parseSession(good)!;
    expect(expiresSoon(s, Date.parse('2026-11-27T16:10:00Z'))).toBe(false);
    expect(expiresSoon(s, Date.parse('2026-11-27T16:14:45Z'))).toBe(true);
    expect(expiresSoon({ ...s, expires_at: '' })).toBe(false);
  });
  it('checks permissions', () => {
    const perms = [{ resource: 'instances', action: 'read' }];
    expect(can(perms, 'instances', 'read')).toBe(true);
    expect(can(perms, 'instances', 'update')).toBe(false);
    expect(can(undefined, 'instances', 'read')).toBe(false);
  });
});

describe('ws', () => {
  it('backs off to 10 s', () => {
    expect([0, 1, 2, 3, 10].map(backoff)).toEqual([500, 1000, 2000, 4000, 10_000]);
  });
  it('builds the event stream address', () => {
    expect(wsURL({ protocol: 'https:', host: 'hub:3000' }, 't k', ['instance.status', 'instance.metrics'])).toBe(
      'wss://hub:3000/api/ws?access_token=t+k&types=instance.status%2Cinstance.metrics',
    );
    expect(wsURL({ protocol: 'http:', host: 'h' }, 't', [])).toBe('ws://h/api/ws?access_token=t');
  });
});
