// Users (/api/users, ADMIN): add a user, change a role, disable, enable
// and delete; one's own row cannot be changed here.
import { useState } from 'preact/hooks';
import { del, errorMessage, get, getSession, patch, post } from '../../api';
import { fmtTime } from '../../format';
import type { UserInfo } from '../../types';
import { Confirm, StatusBadge, toast, useAsync } from '../../components/ui';
import { AsyncTable } from '../../components/AsyncTable';
import { roles } from '../../session';

export function UsersPage() {
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
      <AsyncTable
        state={users}
        what="users"
        empty="No users."
        testid="users-table"
        head={['User', 'Email', 'Role', 'State', 'Created', '']}
        row={(u) => (
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
        )}
      />
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
