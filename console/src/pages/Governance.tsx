// Governance: the audit log (filters, paging, chain verification, export),
// AI decisions, compliance reports, and for ADMIN users and API tokens.
import { useState } from 'preact/hooks';
import { del, download, errorMessage, get, getPermissions, getSession, patch, post } from '../api';
import { auditActions, auditQuery, detailsText, emptyAuditFilter, resourceTypes, type AuditFilter } from '../audit';
import { fmtTime, localInputToRFC3339, shortID, toLocalInput, truncate } from '../format';
import { can } from '../session';
import type { AuditRecord, Instance, TokenInfo, UserInfo } from '../types';
import { Confirm, Empty, ErrorBox, Link, Loading, StatusBadge, toast, useAsync } from '../components/ui';

const pageSize = 50;

export function GovernancePage({ tab }: { tab: string }) {
  const perms = getPermissions();
  const tabs: [string, string, boolean][] = [
    ['audit', 'Audit log', can(perms, 'audit', 'read')],
    ['ai', 'AI decisions', can(perms, 'ai_decisions', 'read')],
    ['reports', 'Reports', can(perms, 'reports', 'create')],
    ['users', 'Users', can(perms, 'users', 'read')],
    ['tokens', 'API tokens', can(perms, 'tokens', 'read')],
  ];
  const shown = tabs.filter((t) => t[2]);
  const active = shown.some((t) => t[0] === tab) ? tab : 'audit';
  return (
    <section>
      <div class="page-head">
        <h1>Governance</h1>
      </div>
      <nav class="tabs" aria-label="Governance">
        {shown.map(([id, label]) => (
          <Link href={`/governance/${id}`} class={id === active ? 'tab active' : 'tab'} data-testid={'tab-' + id}>
            {label}
          </Link>
        ))}
      </nav>
      {active === 'audit' && <AuditLog />}
      {active === 'ai' && <AIDecisions />}
      {active === 'reports' && <Reports />}
      {active === 'users' && <Users />}
      {active === 'tokens' && <Tokens />}
    </section>
  );
}

function ChainStatus() {
  const v = useAsync((signal) => get<{ ok: boolean; checked: number; first_broken?: number; reason: string }>('/api/audit/verify', signal), []);
  return (
    <div class={'chain ' + (v.data ? (v.data.ok ? 'chain-ok' : 'chain-broken') : '')} data-testid="chain-status">
      {v.loading ? (
        <span>Verifying the hash chain…</span>
      ) : v.error ? (
        <span>Verification failed: {v.error}</span>
      ) : v.data!.ok ? (
        <span>✓ Hash chain intact — {v.data!.checked} records checked</span>
      ) : (
        <span>
          ✗ Hash chain broken at record #{v.data!.first_broken}: {v.data!.reason}
        </span>
      )}
      <button class="btn btn-small" onClick={v.reload} disabled={v.loading}>
        Verify again
      </button>
    </div>
  );
}

function AuditLog() {
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
      {recs.error ? (
        <ErrorBox error={recs.error} retry={recs.reload} />
      ) : recs.loading && !recs.data ? (
        <Loading what="Loading the audit log" />
      ) : !recs.data?.length ? (
        <Empty>No audit records match.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="table" data-testid="audit-table">
            <thead>
              <tr>
                <th>#</th>
                <th>Time</th>
                <th>User</th>
                <th>Action</th>
                <th>Resource</th>
                <th>Details</th>
                <th>IP</th>
              </tr>
            </thead>
            <tbody>
              {recs.data.map((r) => (
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
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div class="pager">
        <button class="btn btn-small" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - pageSize))}>
          ← Newer
        </button>
        <span>
          Records {offset + 1}–{offset + (recs.data?.length ?? 0)}
        </span>
        <button class="btn btn-small" disabled={(recs.data?.length ?? 0) < pageSize} onClick={() => setOffset(offset + pageSize)}>
          Older →
        </button>
      </div>
    </div>
  );
}

interface AIDecision {
  id: number;
  time: string;
  instance_id: string;
  edge_id?: string;
  flow_name: string;
  model: string;
  prompt: string;
  response: string;
  confidence: number;
  tokens_used: number;
  latency_ms: number;
}

function AIDecisions() {
  const [draft, setDraft] = useState({ instance_id: '', model: '', start: '', end: '' });
  const [filter, setFilter] = useState(draft);
  const [offset, setOffset] = useState(0);
  const instances = useAsync((signal) => get<{ instances: Instance[] }>('/api/instances', signal).then((r) => r.instances ?? []), []);
  const names = Object.fromEntries((instances.data ?? []).map((i) => [i.id, i.name]));
  const list = useAsync(
    (signal) => {
      const q = new URLSearchParams({ limit: String(pageSize), offset: String(offset) });
      if (filter.instance_id) q.set('instance_id', filter.instance_id);
      if (filter.model.trim()) q.set('model', filter.model.trim());
      const s = localInputToRFC3339(filter.start);
      const e = localInputToRFC3339(filter.end);
      if (s) q.set('start_date', s);
      if (e) q.set('end_date', e);
      return get<{ decisions: AIDecision[] }>('/api/audit/ai_decisions?' + q, signal).then((r) => r.decisions ?? []);
    },
    [filter, offset],
  );
  const set = (k: keyof typeof draft) => (e: Event) => setDraft({ ...draft, [k]: (e.target as HTMLInputElement).value });
  return (
    <div class="card">
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setOffset(0);
          setFilter(draft);
        }}
      >
        <select aria-label="Instance" value={draft.instance_id} onChange={set('instance_id')}>
          <option value="">Any instance</option>
          {(instances.data ?? []).map((i) => (
            <option value={i.id}>{i.name}</option>
          ))}
        </select>
        <input aria-label="Model" placeholder="Model" value={draft.model} onInput={set('model')} />
        <label class="inline">
          From <input type="datetime-local" value={draft.start} onInput={set('start')} aria-label="From" />
        </label>
        <label class="inline">
          To <input type="datetime-local" value={draft.end} onInput={set('end')} aria-label="To" />
        </label>
        <button class="btn btn-primary" type="submit">
          Apply
        </button>
      </form>
      {list.error ? (
        <ErrorBox error={list.error} retry={list.reload} />
      ) : list.loading && !list.data ? (
        <Loading what="Loading AI decisions" />
      ) : !list.data?.length ? (
        <Empty>No AI decisions recorded{filter.instance_id || filter.model ? ' for these filters' : ''}. Instances record them with POST /api/audit/ai_decision.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="table">
            <thead>
              <tr>
                <th>Time</th>
                <th>Instance</th>
                <th>Flow</th>
                <th>Model</th>
                <th>Confidence</th>
                <th>Tokens</th>
                <th>Latency</th>
                <th>Prompt → response</th>
              </tr>
            </thead>
            <tbody>
              {list.data.map((d) => (
                <tr>
                  <td class="nowrap">{fmtTime(d.time)}</td>
                  <td>{names[d.instance_id] || shortID(d.instance_id) || (d.edge_id ? 'edge ' + shortID(d.edge_id) : '—')}</td>
                  <td>{d.flow_name}</td>
                  <td class="mono">{d.model}</td>
                  <td>{d.confidence ? d.confidence.toFixed(2) : '—'}</td>
                  <td>{d.tokens_used}</td>
                  <td>{d.latency_ms} ms</td>
                  <td class="details" title={d.prompt + '\n→ ' + d.response}>
                    {truncate(d.prompt, 40)} → {truncate(d.response, 40)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div class="pager">
        <button class="btn btn-small" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - pageSize))}>
          ← Newer
        </button>
        <button class="btn btn-small" disabled={(list.data?.length ?? 0) < pageSize} onClick={() => setOffset(offset + pageSize)}>
          Older →
        </button>
      </div>
    </div>
  );
}

function Reports() {
  const [type, setType] = useState('soc2_change');
  // The API needs both ends: the last 30 days up to the next minute by default.
  const [start, setStart] = useState(() => toLocalInput(new Date(Date.now() - 30 * 86400_000)));
  const [end, setEnd] = useState(() => toLocalInput(new Date(Date.now() + 60_000)));
  const [subject, setSubject] = useState('');
  const [format, setFormat] = useState('pdf');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const generate = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    const body: any = { type, format };
    const s = localInputToRFC3339(start);
    const en = localInputToRFC3339(end);
    if (s) body.start = s;
    if (en) body.end = en;
    if (subject.trim()) body.subject_user_id = subject.trim();
    try {
      const name = await download('POST', '/api/reports/generate', body, 'redforge-report.' + format);
      toast('ok', `Report ${name} downloaded`);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card form" onSubmit={generate} aria-label="Generate a report">
      <h2>Compliance report</h2>
      <div class="form-row">
        <label class="field">
          Type
          <select value={type} onChange={(e) => setType((e.target as HTMLSelectElement).value)}>
            <option value="soc2_change">SOC 2 change management</option>
            <option value="hipaa_access">HIPAA access</option>
            <option value="gdpr_access">GDPR subject access</option>
          </select>
        </label>
        <label class="field">
          From
          <input type="datetime-local" required value={start} onInput={(e) => setStart((e.target as HTMLInputElement).value)} />
        </label>
        <label class="field">
          To
          <input type="datetime-local" required value={end} onInput={(e) => setEnd((e.target as HTMLInputElement).value)} />
        </label>
        {type === 'gdpr_access' && (
          <label class="field">
            Subject user id
            <input value={subject} onInput={(e) => setSubject((e.target as HTMLInputElement).value)} />
          </label>
        )}
        <label class="field">
          Format
          <select value={format} onChange={(e) => setFormat((e.target as HTMLSelectElement).value)}>
            <option value="pdf">PDF</option>
            <option value="csv">CSV</option>
            <option value="json">JSON</option>
          </select>
        </label>
      </div>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      <button class="btn btn-primary" type="submit" disabled={busy}>
        {busy ? 'Generating…' : 'Generate and download'}
      </button>
    </form>
  );
}

const roles = ['ADMIN', 'OPERATOR', 'VIEWER'];

function Users() {
  const users = useAsync((signal) => get<{ users: UserInfo[] }>('/api/users', signal).then((r) => r.users ?? []), []);
  const [form, setForm] = useState({ username: '', password: '', role: 'VIEWER', email: '' });
  const [error, setError] = useState('');
  const [deleting, setDeleting] = useState<UserInfo | null>(null);
  const me = getSession()?.user.id;
  const create = async (e: Event) => {
    e.preventDefault();
    setError('');
    try {
      const body: any = { username: form.username.trim(), password: form.password, role: form.role };
      if (form.email.trim()) body.email = form.email.trim();
      const u = await post<UserInfo>('/api/users', body);
      toast('ok', `User ${u.username} created`);
      setForm({ username: '', password: '', role: 'VIEWER', email: '' });
      users.reload();
    } catch (err) {
      setError(errorMessage(err));
    }
  };
  const change = async (u: UserInfo, body: object, what: string) => {
    try {
      await patch(`/api/users/${u.id}`, body);
      toast('ok', `${u.username}: ${what}`);
      users.reload();
    } catch (err) {
      toast('error', `${u.username}: ${errorMessage(err)}`);
    }
  };
  const set = (k: keyof typeof form) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });
  return (
    <div class="card">
      <form class="form-row" onSubmit={create} aria-label="New user">
        <label class="field">
          Username
          <input value={form.username} onInput={set('username')} required />
        </label>
        <label class="field">
          Email
          <input type="email" value={form.email} onInput={set('email')} />
        </label>
        <label class="field">
          Password
          <input type="password" autocomplete="new-password" value={form.password} onInput={set('password')} required />
        </label>
        <label class="field">
          Role
          <select value={form.role} onChange={set('role')}>
            {roles.map((r) => (
              <option>{r}</option>
            ))}
          </select>
        </label>
        <button class="btn btn-primary" type="submit">
          Add user
        </button>
      </form>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      {users.error ? (
        <ErrorBox error={users.error} retry={users.reload} />
      ) : users.loading && !users.data ? (
        <Loading what="Loading users" />
      ) : (
        <div class="table-wrap">
          <table class="table" data-testid="users-table">
            <thead>
              <tr>
                <th>User</th>
                <th>Email</th>
                <th>Role</th>
                <th>State</th>
                <th>Created</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {(users.data ?? []).map((u) => (
                <tr>
                  <td>{u.username}</td>
                  <td>{u.email || '—'}</td>
                  <td>
                    <select aria-label={`Role of ${u.username}`} value={u.role} disabled={u.id === me} onChange={(e) => change(u, { role: (e.target as HTMLSelectElement).value }, 'role changed')}>
                      {roles.map((r) => (
                        <option>{r}</option>
                      ))}
                    </select>
                  </td>
                  <td>
                    <StatusBadge status={u.disabled ? 'disabled' : 'active'} />
                  </td>
                  <td class="nowrap">{fmtTime(u.created_at)}</td>
                  <td class="actions">
                    {u.id !== me && (
                      <>
                        <button class="btn btn-small" onClick={() => change(u, { disabled: !u.disabled }, u.disabled ? 'enabled' : 'disabled')}>
                          {u.disabled ? 'Enable' : 'Disable'}
                        </button>
                        <button class="btn btn-small btn-danger" onClick={() => setDeleting(u)}>
                          Delete
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {deleting && (
        <Confirm
          title={`Delete ${deleting.username}?`}
          action="Delete"
          danger
          onClose={() => setDeleting(null)}
          onConfirm={async () => {
            try {
              await del(`/api/users/${deleting.id}`);
              toast('ok', `${deleting.username} deleted`);
              users.reload();
            } catch (err) {
              toast('error', errorMessage(err));
            }
          }}
        >
          <p>Their sessions end at once. Audit records keep their name.</p>
        </Confirm>
      )}
    </div>
  );
}

function Tokens() {
  const tokens = useAsync((signal) => get<{ tokens: TokenInfo[] }>('/api/tokens', signal).then((r) => r.tokens ?? []), []);
  const instances = useAsync((signal) => get<{ instances: Instance[] }>('/api/instances', signal).then((r) => r.instances ?? []), []);
  const [form, setForm] = useState({ name: '', role: 'VIEWER', scope: 'all', instance_id: '', expires: '' });
  const [secret, setSecret] = useState('');
  const [error, setError] = useState('');
  const [revoking, setRevoking] = useState<TokenInfo | null>(null);
  const create = async (e: Event) => {
    e.preventDefault();
    setError('');
    const body: any = { name: form.name.trim(), role: form.role, scope: form.scope };
    if (form.scope === 'instance') body.instance_id = form.instance_id;
    const exp = localInputToRFC3339(form.expires);
    if (exp) body.expires_at = exp;
    try {
      const res = await post<{ token: string }>('/api/tokens', body);
      setSecret(res.token);
      tokens.reload();
    } catch (err) {
      setError(errorMessage(err));
    }
  };
  const set = (k: keyof typeof form) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });
  return (
    <div class="card">
      <form class="form-row" onSubmit={create} aria-label="New API token">
        <label class="field">
          Name
          <input value={form.name} onInput={set('name')} required />
        </label>
        <label class="field">
          Role
          <select value={form.role} onChange={set('role')}>
            {roles.map((r) => (
              <option>{r}</option>
            ))}
          </select>
        </label>
        <label class="field">
          Scope
          <select value={form.scope} onChange={set('scope')}>
            <option value="all">all</option>
            <option value="instance">one instance</option>
          </select>
        </label>
        {form.scope === 'instance' && (
          <label class="field">
            Instance
            <select value={form.instance_id} onChange={set('instance_id')}>
              <option value="">Choose…</option>
              {(instances.data ?? []).map((i) => (
                <option value={i.id}>{i.name}</option>
              ))}
            </select>
          </label>
        )}
        <label class="field">
          Expires
          <input type="datetime-local" value={form.expires} onInput={set('expires')} />
        </label>
        <button class="btn btn-primary" type="submit">
          Create token
        </button>
      </form>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      {secret && (
        <div class="notice secret" role="status">
          Store this token now; it is not shown again:
          <code class="mono" data-testid="token-secret">
            {secret}
          </code>
          <button class="btn btn-small" onClick={() => navigator.clipboard?.writeText(secret).then(() => toast('ok', 'Copied'))}>
            Copy
          </button>
          <button class="btn btn-small" onClick={() => setSecret('')}>
            Done
          </button>
        </div>
      )}
      {tokens.error ? (
        <ErrorBox error={tokens.error} retry={tokens.reload} />
      ) : tokens.loading && !tokens.data ? (
        <Loading what="Loading tokens" />
      ) : !tokens.data?.length ? (
        <Empty>No API tokens.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="table" data-testid="tokens-table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Role</th>
                <th>Scope</th>
                <th>Created</th>
                <th>Expires</th>
                <th>State</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {tokens.data.map((t) => (
                <tr>
                  <td>{t.name || shortID(t.id)}</td>
                  <td>{t.role}</td>
                  <td>{t.scope === 'instance' ? `instance ${shortID(t.instance_id)}` : t.scope}</td>
                  <td class="nowrap">
                    {fmtTime(t.created_at)} {t.created_by ? `by ${t.created_by}` : ''}
                  </td>
                  <td class="nowrap">{fmtTime(t.expires_at)}</td>
                  <td>
                    <StatusBadge status={t.revoked ? 'revoked' : 'active'} />
                  </td>
                  <td>
                    {!t.revoked && (
                      <button class="btn btn-small btn-danger" onClick={() => setRevoking(t)}>
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {revoking && (
        <Confirm
          title={`Revoke ${revoking.name || 'this token'}?`}
          action="Revoke"
          danger
          onClose={() => setRevoking(null)}
          onConfirm={async () => {
            try {
              await del(`/api/tokens/${revoking.id}`);
              toast('ok', 'Token revoked');
              tokens.reload();
            } catch (err) {
              toast('error', errorMessage(err));
            }
          }}
        >
          <p>Anything using this token is refused from now on.</p>
        </Confirm>
      )}
    </div>
  );
}
