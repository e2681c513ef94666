// Regions: the cluster's regions with their hubs, leader and probe state,
// and the RTT matrix between hubs; refreshed every 10 s.
import { useEffect } from 'preact/hooks';
import { get, getPermissions } from '../api';
import { can } from '../session';
import { Empty, StatusBadge, useAsync } from '../components/ui';
import { AsyncView } from '../components/AsyncTable';
import { Hubs } from '../components/Hubs';

interface RegionHub {
  id: string;
  api: string;
  voter: boolean;
  member: boolean;
  leader: boolean;
  state: string;
}

interface Regions {
  leader_id: string;
  regions: { name: string; hubs: RegionHub[]; up: boolean }[] | null;
  rtt_ms: Record<string, Record<string, number>>;
  missing_rows?: string[];
}

export function RegionsPage() {
  const r = useAsync((signal) => get<Regions>('/api/regions', signal), []);
  useEffect(() => {
    const t = setInterval(r.reload, 10_000);
    return () => clearInterval(t);
  }, []);
  return (
    <section>
      <div class="page-head">
        <h1>Regions</h1>
      </div>
      <Hubs canDrain={can(getPermissions(), 'regions', 'update')} />
      <AsyncView state={r} what="regions" empty="No regions configured." isEmpty={(d) => !d.regions?.length}>
        {(data) => <RegionList data={data} />}
      </AsyncView>
    </section>
  );
}

/** RegionList shows each region with its hubs, and the RTT matrix between the hubs. */
function RegionList({ data }: { data: Regions }) {
  const regions = data.regions ?? [];
  const hubs = regions.flatMap((x) => x.hubs.map((h) => h.id));
  return (
    <>
      <div class="grid">
        {regions.map((reg) => (
          <article class="card" data-testid="region-card">
            <div class="card-head">
              <h2>{reg.name || '(no region)'}</h2>
              <StatusBadge status={reg.up ? 'up' : 'down'} />
            </div>
            {reg.hubs.length === 0 ? (
              <p class="muted">No hubs.</p>
            ) : (
              <ul class="plain">
                {reg.hubs.map((h) => (
                  <li>
                    <strong>{h.id}</strong> {h.leader && <span class="badge badge-green">leader</span>} <StatusBadge status={h.state} />{' '}
                    <span class="muted small">
                      {h.api} {h.member ? (h.voter ? '· voter' : '· non-voter') : '· not a member'}
                    </span>
                  </li>
                ))}
              </ul>
            )}
          </article>
        ))}
      </div>
      <div class="card">
        <h2>Round-trip times (ms)</h2>
        {hubs.length < 2 ? (
          <Empty>One hub: no RTT matrix.</Empty>
        ) : (
          <div class="table-wrap">
            <table class="table matrix">
              <thead>
                <tr>
                  <th>from \ to</th>
                  {hubs.map((h) => (
                    <th>{h}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {hubs.map((a) => (
                  <tr>
                    <th>{a}</th>
                    {hubs.map((b) => {
                      const v = data.rtt_ms?.[a]?.[b];
                      return <td>{a === b ? '—' : v == null ? '?' : v.toFixed(1)}</td>;
                    })}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {data.missing_rows?.length ? <p class="muted small">No answer from: {data.missing_rows.join(', ')}</p> : null}
      </div>
    </>
  );
}
