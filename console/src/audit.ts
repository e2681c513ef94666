// Audit filter state → the query string of GET /api/audit and its export.
// Pure; tested by audit.test.ts.
import { localInputToRFC3339 } from './format';

/** auditActions mirrors hub/audit.Actions, for the action filter. */
export const auditActions = [
  'INSTANCE_CREATED', 'INSTANCE_UPDATED', 'INSTANCE_STARTED', 'INSTANCE_STOPPED', 'INSTANCE_RESTARTED', 'INSTANCE_DESTROYED',
  'FLOWS_DEPLOYED', 'DEPLOYMENT_STARTED', 'DEPLOYMENT_COMPLETED', 'DEPLOYMENT_ROLLED_BACK',
  'USER_CREATED', 'USER_UPDATED', 'USER_DELETED', 'ROLE_ASSIGNED', 'PASSWORD_CHANGED', 'CONFIG_UPDATED',
  'LOGIN_SUCCEEDED', 'LOGIN_FAILED', 'LOGOUT', 'TOKEN_CREATED', 'TOKEN_REVOKED', 'EDGE_TOKEN_CREATED', 'EDGE_ENROLLED',
];

export const resourceTypes = ['instance', 'deployment', 'user', 'token', 'edge', 'edge_token'];

export interface AuditFilter {
  user_id: string;
  action: string;
  resource_type: string;
  /** datetime-local input values */
  start: string;
  end: string;
}

export const emptyAuditFilter: AuditFilter = { user_id: '', action: '', resource_type: '', start: '', end: '' };

/** auditQuery builds the query string for a filter and page. */
export function auditQuery(f: AuditFilter, extra: Record<string, string | number> = {}): string {
  const q = new URLSearchParams();
  if (f.user_id.trim()) q.set('user_id', f.user_id.trim());
  if (f.action) q.set('action', f.action);
  if (f.resource_type) q.set('resource_type', f.resource_type);
  const s = localInputToRFC3339(f.start);
  const e = localInputToRFC3339(f.end);
  if (s) q.set('start_date', s);
  if (e) q.set('end_date', e);
  for (const [k, v] of Object.entries(extra)) q.set(k, String(v));
  return q.toString();
}

/** detailsText renders an audit record's details compactly. */
export function detailsText(d: unknown): string {
  if (d == null) return '';
  if (typeof d !== 'object') return String(d);
  return Object.entries(d as Record<string, unknown>)
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(' ');
}
