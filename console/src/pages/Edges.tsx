// Edges: every enrolled edge with its state, last heartbeat, config
// versions, the backlog per stream it reports (with the oldest unsynced
// age) and the hub's per-stream sync watermarks; refreshed every 10 s.
import { useEffect, useState } from 'preact/hooks';
import { errorMessage, get, getPermissions, post } from '../api';
import { fmtAgo, fmtBytes, fmtTime } from '../format';
import { backlogRows, configBehind, configVersion, fmtAge, oldestUnsynced, type StreamBacklog } from '../edges';
import { can } from '../session';
import { StatusBadge, toast, useAsync } from '../components/ui';
import { AsyncTable } from '../components/AsyncTable';

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
  desired_config_version: number | string;
  applied_config_version: number | string;
  created_at: string;
  streams: Record<string, Watermark> | null;
  /** What the edge reported in its last heartbeat, per stream (optional). */
  backlog?: Record<string, StreamBacklog> | null;
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
        <AsyncTable
          state={edges}
          what="edges"
          empty="No edges enrolled. Create an enrollment token and start redforge-edge with it."
          testid="edges-table"
          head={['Edge', 'Region', 'State', 'Last heartbeat', 'Config (applied / desired)', 'Backlog on the edge', 'Oldest unsynced', 'Streams (synced seq, last sync)']}
          row={(e) => (
            <tr>
              <td>{e.name}</td>
              <td>{e.region || '—'}</td>
              <td>
                <StatusBadge status={e.state} />
              </td>
              <td title={fmtTime(e.last_heartbeat)}>{fmtAgo(e.last_heartbeat)}</td>
              <td class={configBehind(e.applied_config_version, e.desired_config_version) ? 'warn' : ''} data-testid="edge-config">
                {configVersion(e.applied_config_version)} / {configVersion(e.desired_config_version)}
              </td>
              <td data-testid="edge-backlog">
                {e.backlog == null ? (
                  <span class="muted">not reported</span>
                ) : backlogRows(e.backlog).length === 0 ? (
                  'empty'
                ) : (
                  <div class="backlog">
                    {backlogRows(e.backlog).map((b) => (
                      <>
                        <span class="mono">{b.stream}</span>
                        <span>
                          {b.depth} rec · {fmtBytes(b.bytes)}
                          {b.evicted ? <span class="warn"> · {b.evicted} evicted</span> : null}
                        </span>
                        <span class="muted" title={`reported ${fmtTime(b.reported_at)}`}>
                          {b.depth > 0 ? fmtAge(b.oldest_unsynced_seconds) : '—'}
                        </span>
                      </>
                    ))}
                  </div>
                )}
              </td>
              <td data-testid="edge-oldest" class={(oldestUnsynced(e.backlog) ?? 0) > 300 ? 'warn' : ''}>
                {e.backlog == null ? '—' : fmtAge(oldestUnsynced(e.backlog))}
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
          )}
        />
        <p class="muted small">Backlog is what each edge reported in its last heartbeat (records and bytes waiting per stream, and how long the oldest has waited); the streams column is what the hub has received (the synced watermark).</p>
      </div>
    </section>
  );
}
