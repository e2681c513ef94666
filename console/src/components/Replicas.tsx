// Replicas: where an instance's runtimes run (hub, region, address,
// status), with a scale control for those who may update the instance.
import { useState } from 'preact/hooks';
import { errorMessage, post } from '../api';
import { fmtAgo } from '../format';
import { replicaSummary } from '../replicas';
import type { Instance } from '../types';
import { HealthBadge, toast } from './ui';

export function Replicas({ inst, canScale, onChange }: { inst: Instance; canScale: boolean; onChange: (i: Instance) => void }) {
  const [want, setWant] = useState(inst.replicas || 1);
  const [busy, setBusy] = useState(false);
  const as = [...(inst.allocations ?? [])].sort((a, b) => a.replica - b.replica);
  const scale = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      onChange(await post<Instance>(`/api/instances/${inst.id}/scale`, { replicas: want }));
      toast('ok', `${inst.name}: scaling to ${want}`);
    } catch (err) {
      toast('error', `${inst.name}: ${errorMessage(err)}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="card" data-testid="replicas">
      <div class="card-head">
        <h2>Replicas</h2>
        <span class="muted">{replicaSummary(inst)}</span>
        <div class="spacer" />
        {canScale && (
          <form class="inline" onSubmit={scale}>
            <label>
              Replicas{' '}
              <input type="number" min={1} max={9} value={want} onInput={(e) => setWant(Number((e.target as HTMLInputElement).value))} data-testid="scale-input" />
            </label>{' '}
            <button class="btn" disabled={busy || want === (inst.replicas || 1)} data-testid="scale">
              Scale
            </button>
          </form>
        )}
      </div>
      {as.length === 0 ? (
        <p class="muted">Not placed yet: the scheduler places replicas on hubs of {inst.region || 'any region'}.</p>
      ) : (
        <div class="table-wrap">
        <table class="table">
          <thead>
            <tr>
              <th>#</th>
              <th>Hub</th>
              <th>Region</th>
              <th>Status</th>
              <th>Address</th>
              <th>Since</th>
              <th>Why here</th>
            </tr>
          </thead>
          <tbody>
            {as.map((a) => (
              <tr data-testid="replica-row">
                <td>{a.replica}</td>
                <td class="mono">{a.hub}</td>
                <td>{a.region || '—'}</td>
                <td>
                  <HealthBadge status={a.status} /> {a.stopping && <span class="muted small">stopping</span>}
                  {a.message && <div class="muted small">{a.message}</div>}
                </td>
                <td class="mono">{a.address || '—'}</td>
                <td>{fmtAgo(a.since)}</td>
                <td class="small">{a.reason || '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
        </div>
      )}
    </div>
  );
}
