// Audit (GET /api/audit): the audit log with filters, paging, the
// hash-chain verification and CSV/JSON export of the filtered records.
import { useState } from 'preact/hooks';
import { download, errorMessage, get, getPermissions } from '../../api';
import { auditActions, auditQuery, detailsText, emptyAuditFilter, resourceTypes, type AuditFilter } from '../../audit';
import { fmtTime, shortID, truncate } from '../../format';
import { can } from '../../session';
import type { AuditRecord, UserInfo } from '../../types';
import { toast, useAsync } from '../../components/ui';
import { AsyncTable } from '../../components/AsyncTable';
import { ChainStatus } from './ChainStatus';
import { Pager, pageSize } from './Pager';

export function AuditPage() {
  const [draft, setDraft] = useState<AuditFilter>(emptyAuditFilter);
  const [filter, setFilter] = useState<AuditFilter>(emptyAuditFilter);
  const [offset, setOffset] = useState(0);
  const isAdmin = can(getPermissions(), 'users', 'read');
  const users = useAsync((signal) => (isAdmin ? get<{ users: UserInfo[] }>('/api/users', signal).then((r) => r.users ?? []) : Promise.resolve([] as UserInfo[])), []);
  const recs = useAsync((signal) => get<{ records: AuditRecord[] }>('/api/audit?' + auditQuery(filter, { limit: pageSize, offset }), signal).then((r) => r.records ?? []), [filter, offset]);
  const set = (k: keyof AuditFilter) => (e: Event) => setDraft({ ...draft, [k]: (e.target as HTMLInputElement).value });
  const apply = (e: Event) => {
    e.preventDefault();
    setOffset(0);
    setFilter(draft);
  };
  const exportAs = async (format: 'csv' | 'json') => {
    try {
      const name = await download('GET', '/api/audit/export?' + auditQuery(filter, { format }), undefined, 'redforge-audit.' + format);
      toast('ok', `Exported ${name}`);
    } catch (e) {
      toast('error', 'Export failed: ' + errorMessage(e));
    }
  };
  return (
    <div class="card">
      <div class="audit-head">
        <ChainStatus />
        <div class="actions">
          <button type="button" class="btn" onClick={() => exportAs('csv')} data-testid="export-csv" title="Export the records matching the applied filters">
            Export CSV
          </button>
          <button type="button" class="btn" onClick={() => exportAs('json')} data-testid="export-json" title="Export the records matching the applied filters">
            Export JSON
          </button>
        </div>
      </div>
      <form class="filters" onSubmit={apply} aria-label="Audit filters">
        {isAdmin ? (
          <select aria-label="User" value={draft.user_id} onChange={set('user_id')} data-testid="audit-user">
            <option value="">Any user</option>
            {(users.data ?? []).map((u) => (
              <option value={u.id}>{u.username}</option>
            ))}
          </select>
        ) : (
          <input aria-label="User id" placeholder="User id" value={draft.user_id} onInput={set('user_id')} data-testid="audit-user" />
        )}
        <select aria-label="Action" value={draft.action} onChange={set('action')} data-testid="audit-action">
          <option value="">Any action</option>
          {auditActions.map((a) => (
            <option value={a}>{a}</option>
          ))}
        </select>
        <select aria-label="Resource type" value={draft.resource_type} onChange={set('resource_type')}>
          <option value="">Any resource</option>
          {resourceTypes.map((a) => (
            <option value={a}>{a}</option>
          ))}
        </select>
        <label class="inline">
          From <input type="datetime-local" value={draft.start} onInput={set('start')} aria-label="From" />
        </label>
        <label class="inline">
          To <input type="datetime-local" value={draft.end} onInput={set('end')} aria-label="To" />
        </label>
        <button class="btn btn-primary" type="submit" data-testid="audit-apply">
          Apply
        </button>
      </form>
      <AsyncTable
        state={recs}
        what="the audit log"
        empty="No audit records match."
        testid="audit-table"
        head={['#', 'Time', 'User', 'Action', 'Resource', 'Details', 'IP']}
        row={(r) => (
          <tr data-action={r.action}>
            <td>{r.id}</td>
            <td class="nowrap">{fmtTime(r.time)}</td>
            <td>{r.username || '—'}</td>
            <td class="mono">{r.action}</td>
            <td>
              {r.resource_type} <span class="mono muted">{shortID(r.resource_id)}</span>
            </td>
            <td class="details" title={detailsText(r.details)}>
              {truncate(detailsText(r.details), 80)}
            </td>
            <td class="mono">{r.ip}</td>
          </tr>
        )}
      />
      <Pager offset={offset} shown={recs.data?.length ?? 0} setOffset={setOffset}>
        <span>
          Records {offset + 1}–{offset + (recs.data?.length ?? 0)}
        </span>
      </Pager>
    </div>
  );
}
