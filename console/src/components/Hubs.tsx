// Hubs: every hub of the cluster with its state, drain and load
// (replicas placed, running, memory reserved); ADMINs drain and undrain.
import { errorMessage, get, post } from '../api';
import { fmtAgo } from '../format';
import type { Hub } from '../types';
import { ErrorBox, Loading, StatusBadge, toast, useAsync } from './ui';

export function Hubs({ canDrain }: { canDrain: boolean }) {
  const r = useAsync((signal) => get<{ hubs: Hub[] }>('/api/hubs', signal), []);
  const drain = async (h: Hub, on: boolean) => {
    try {
      await post(`/api/hubs/${encodeURIComponent(h.id)}/${on ? 'drain' : 'undrain'}`);
      toast('ok', `${h.id}: ${on ? 'draining' : 'takes replicas again'}`);
      r.reload();
    } catch (e) {
      toast('error', `${h.id}: ${errorMessage(e)}`);
    }
  };
  if (r.error) return <ErrorBox error={r.error} retry={r.reload} />;
  if (!r.data) return <Loading what="Loading hubs" />;
  const max = Math.max(1, ...r.data.hubs.map((h) => h.reserved_mb));
  return (
    <div class="card" data-testid="hubs">
      <h2>Hubs and their load</h2>
      <div class="table-wrap">
      <table class="table">
        <thead>
          <tr>
            <th>Hub</th>
            <th>Region</th>
            <th>State</th>
            <th>Replicas</th>
            <th>Reserved memory</th>
            <th>Runtimes at</th>
            {canDrain && <th />}
          </tr>
        </thead>
        <tbody>
          {r.data.hubs.map((h) => (
            <tr data-testid="hub-row">
              <td class="mono">
                {h.id} {h.leader && <span class="badge badge-green">leader</span>}
              </td>
              <td>{h.region || '—'}</td>
              <td>
                <StatusBadge status={h.state} /> {h.draining && <span class="badge badge-yellow">draining</span>}
                <div class="muted small" title={h.reason}>
                  since {fmtAgo(h.since)}
                </div>
              </td>
              <td>
                {h.running}/{h.allocations} running
              </td>
              <td>
                <div class="load-bar" title={`${h.reserved_mb} MB`}>
                  <span style={{ width: `${Math.round((100 * h.reserved_mb) / max)}%` }} />
                </div>
                <span class="small">{h.reserved_mb} MB</span>
              </td>
              <td class="mono small">{h.advertise || '—'}</td>
              {canDrain && (
                <td>
                  <button class="btn btn-small" onClick={() => drain(h, !h.draining)} data-testid="drain">
                    {h.draining ? 'Undrain' : 'Drain'}
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      </div>
    </div>
  );
}
