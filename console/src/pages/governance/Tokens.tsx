// API tokens (/api/tokens, ADMIN): create a token for a role, for every
// instance or one, with an optional expiry (its secret is shown once), and
// revoke one.
import { useState } from 'preact/hooks';
import { del, errorMessage, get, post } from '../../api';
import { fmtTime, localInputToRFC3339, shortID } from '../../format';
import type { Instance, TokenInfo } from '../../types';
import { Confirm, StatusBadge, toast, useAsync } from '../../components/ui';
import { AsyncTable } from '../../components/AsyncTable';
import { roles } from '../../session';

export function TokensPage() {
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
      <AsyncTable
        state={tokens}
        what="tokens"
        empty="No API tokens."
        testid="tokens-table"
        head={['Name', 'Role', 'Scope', 'Created', 'Expires', 'State', '']}
        row={(t) => (
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
        )}
      />
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
