// Edges: every enrolled edge with its state, last heartbeat, config
// versions and per-stream sync watermarks; refreshed every 10 s.
import { useEffect, useState } from 'preact/hooks';
import { errorMessage, get, getPermissions, post } from '../api';
import { fmtAgo, fmtTime } from '../format';
import { can } from '../session';
import { Empty, ErrorBox, Loading, StatusBadge, toast, useAsync } from '../components/ui';

interface Watermark {
  seq: number;
  count: number;
  updated_at: string;
}

interface EdgeView {
  id: string;
  name: string;
  region?: string;
  state: string;
  last_heartbeat?: string;
  desired_config_version: number;
  applied_config_version: number;
  created_at: string;
  streams: Record<string, Watermark> | null;
}

export function EdgesPage() {
  const edges = useAsync((signal) => get<{ edges: EdgeView[] }>('/api/edges', signal).then((r) => r.edges ?? []), []);
  const [token, setToken] = useState<{ token: string; expires_at: string } | null>(null);
  useEffect(() => {
    const t = setInterval(edges.reload, 10_000);
    return () => clearInterval(t);
  }, []);
  const enroll = async () => {
    try {
      setToken(await post('/api/edges/tokens'));
    } catch (e) {
      toast('error', errorMessage(e));
    }
  };
  return (
    <section>
      <div class="page-head">
        <h1>Edges</h1>
        <div class="spacer" />
        {can(getPermissions(), 'edges', 'create') && (
          <button class="btn btn-primary" onClick={enroll}>
            New enrollment token
          </button>
        )}
      </div>
      {token && (
        <div class="notice secret" role="status">
          One-time enrollment token (expires {fmtTime(token.expires_at)}); give it to <code>redforge-edge --enroll</code>:
          <code class="mono">{token.token}</code>
          <button class="btn btn-small" onClick={() => setToken(null)}>
            Done
          </button>
        </div>
      )}
      <div class="card">
        {edges.error ? (
          <ErrorBox error={edges.error} retry={edges.reload} />
        ) : edges.loading && !edges.data ? (
          <Loading what="Loading edges" />
        ) : !edges.data?.length ? (
          <Empty>No edges enrolled. Create an enrollment token and start redforge-edge with it.</Empty>
        ) : (
          <div class="table-wrap">
            <table class="table" data-testid="edges-table">
              <thead>
                <tr>
                  <th>Edge</th>
                  <th>Region</th>
                  <th>State</th>
                  <th>Last heartbeat</th>
                  <th>Config (applied / desired)</th>
                  <th>Streams (synced seq, last sync)</th>
                </tr>
              </thead>
              <tbody>
                {edges.data.map((e) => (
                  <tr>
                    <td>{e.name}</td>
                    <td>{e.region || '—'}</td>
                    <td>
                      <StatusBadge status={e.state} />
                    </td>
                    <td title={fmtTime(e.last_heartbeat)}>{fmtAgo(e.last_heartbeat)}</td>
                    <td class={e.applied_config_version < e.desired_config_version ? 'warn' : ''}>
                      v{e.applied_config_version} / v{e.desired_config_version}
                    </td>
                    <td>
                      {Object.entries(e.streams ?? {}).length === 0
                        ? '—'
                        : Object.entries(e.streams ?? {}).map(([name, w]) => (
                            <div class="stream">
                              <span class="mono">{name}</span> #{w.seq} · {fmtAgo(w.updated_at)}
                            </div>
                          ))}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <p class="muted small">The hub knows what it has received (the synced watermark per stream); the edge's own backlog is not reported by the API yet.</p>
      </div>
    </section>
  );
}
