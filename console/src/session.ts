// Session and permission state: the tokens from /api/auth/login and the
// permissions from /api/auth/me. Pure functions, tested by session.test.ts.

export type Role = 'ADMIN' | 'OPERATOR' | 'VIEWER' | string;

export interface User {
  id: string;
  username: string;
  role: Role;
}

export interface Session {
  access_token: string;
  refresh_token: string;
  expires_at: string;
  user: User;
}

export interface Permission {
  resource: string;
  action: string;
}

/** parseSession validates a stored or received session, or returns null. */
export function parseSession(v: unknown): Session | null {
  if (!v || typeof v !== 'object') return null;
  const s = v as Partial<Session>;
  if (typeof s.access_token !== 'string' || !s.access_token) return null;
  if (typeof s.refresh_token !== 'string' || !s.user || typeof s.user.username !== 'string') return null;
  return {
    access_token: s.access_token,
    refresh_token: s.refresh_token,
    expires_at: typeof s.expires_at === 'string' ? s.expires_at : '',
    user: { id: String(s.user.id ?? ''), username: s.user.username, role: String(s.user.role ?? '') },
  };
}

/** expiresSoon reports whether the access token expires within skewMs of now (or has no known expiry). */
export function expiresSoon(s: Session, now: number = Date.now(), skewMs = 30_000): boolean {
  const t = Date.parse(s.expires_at);
  if (!Number.isFinite(t)) return false;
  return t - now < skewMs;
}

/** can reports whether perms allow action on resource. */
export function can(perms: Permission[] | undefined, resource: string, action: string): boolean {
  return !!perms?.some((p) => p.resource === resource && p.action === action);
}

/** roles are the roles a user or an API token can have, most powerful first. */
export const roles: Role[] = ['ADMIN', 'OPERATOR', 'VIEWER'];
