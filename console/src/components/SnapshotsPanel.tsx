// The instance's snapshots: a named copy of its flows (their credentials
// sealed), settings and node packages. Take one, compare one with what
// runs now (nodes added, changed and removed by name and type), roll back
// to one (a blue-green deployment) or delete it.
import { useState } from 'preact/hooks';
import { del, errorMessage, get, getPermissions, post } from '../api';
import { fmtTime } from '../format';
import { navigate } from '../router';
import { can } from '../session';
import { diffLines, type Comparison } from '../snapshots';
import type { Instance } from '../types';
import { Confirm, Empty, ErrorBox, Loading, toast, useAsync } from './ui';

interface Snapshot {
  id: string;
  name: string;
  description?: string;
  flow_nodes: number;
  has_credentials: boolean;
  nodes: { name: string; version: string }[];
  created_by?: string;
  created_at: string;
}

export function SnapshotsPanel({ inst }: { inst: Instance }) {
  const list = useAsync((signal) => get<{ snapshots: Snapshot[] }>(`/api/instances/${inst.id}/snapshots`, signal), [inst.id]);
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const [cmp, setCmp] = useState<{ id: string; c: Comparison } | null>(null);
  const [rollback, setRollback] = useState<Snapshot | null>(null);
  const mayChange = can(getPermissions(), 'instances', 'update');

  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await post(`/api/instances/${inst.id}/snapshots`, { name: name.trim() });
      setName('');
      toast('ok', `${inst.name}: snapshot taken`);
      list.reload();
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  const compare = async (s: Snapshot) => {
    try {
      setCmp({ id: s.id, c: await get<Comparison>(`/api/instances/${inst.id}/snapshots/${s.id}/compare`) });
    } catch (err) {
      toast('error', errorMessage(err));
    }
  };
  const remove = async (s: Snapshot) => {
    try {
      await del(`/api/instances/${inst.id}/snapshots/${s.id}`);
      list.reload();
    } catch (err) {
      toast('error', errorMessage(err));
    }
  };
  const rollBack = async () => {
    const res = await post<{ deployment: { id: string } }>(`/api/instances/${inst.id}/snapshots/${rollback!.id}/rollback`, {});
    toast('ok', `${inst.name}: rolling back to “${rollback!.name}”`);
    navigate(`/deployments/${res.deployment.id}`);
  };

  const snaps = list.data?.snapshots ?? [];
  return (
    <div class="card" data-testid="snapshots-panel">
      <div class="card-head">
        <h2>Snapshots</h2>
      </div>
      {mayChange && (
        <form onSubmit={create} class="form-row">
          <label class="field">
            Name
            <input value={name} placeholder="before the release" onInput={(e) => setName((e.target as HTMLInputElement).value)} data-testid="snapshot-name" />
          </label>
          <button class="btn btn-primary" disabled={busy || !name.trim()} data-testid="snapshot-create">
            {busy ? 'Taking…' : 'Take snapshot'}
          </button>
        </form>
      )}
      {error && <p class="form-error">{error}</p>}
      {list.loading && !list.data ? (
        <Loading what="Loading the snapshots" />
      ) : list.error ? (
        <ErrorBox error={list.error} retry={list.reload} />
      ) : snaps.length === 0 ? (
        <Empty>No snapshots yet.</Empty>
      ) : (
        <table class="table" data-testid="snapshots">
          <thead>
            <tr>
              <th>Name</th>
              <th>Contents</th>
              <th>Taken</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {snaps.map((s) => (
              <tr>
                <td>{s.name}</td>
                <td class="small">
                  {s.flow_nodes} nodes{s.has_credentials ? ', credentials (sealed)' : ''}, {s.nodes.length} packages
                </td>
                <td class="small">
                  {fmtTime(s.created_at)}
                  {s.created_by ? ` by ${s.created_by}` : ''}
                </td>
                <td>
                  <button class="btn btn-small" onClick={() => compare(s)} data-testid="snapshot-compare">
                    Compare
                  </button>{' '}
                  {mayChange && (
                    <>
                      <button class="btn btn-small" onClick={() => setRollback(s)}>
                        Roll back
                      </button>{' '}
                      <button class="btn btn-small" onClick={() => remove(s)}>
                        Delete
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {cmp && (
        <div class="notice" data-testid="snapshot-diff">
          <p>
            <b>{snaps.find((s) => s.id === cmp.id)?.name ?? cmp.id}</b> → what runs now: {cmp.c.summary}
          </p>
          <ul class="diff-lines">
            {diffLines(cmp.c).map((l) => (
              <li class={`diff-${l.mark === '+' ? 'add' : l.mark === '-' ? 'del' : 'chg'}`}>
                <span class="mono">{l.mark}</span> {l.text}
              </li>
            ))}
          </ul>
        </div>
      )}
      {rollback && (
        <Confirm title={`Roll back to “${rollback.name}”?`} action="Roll back" onConfirm={rollBack} onClose={() => setRollback(null)}>
          <p>A blue-green deployment gives {inst.name} the snapshot's flows, credentials, settings and node packages. The current runtime is kept for the rollback window.</p>
        </Confirm>
      )}
    </div>
  );
}
