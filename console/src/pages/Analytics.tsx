// Fleet analytics: counts, workflow throughput, error rate and latency
// percentiles, LLM tokens and cost by model over a window, from
// GET /api/metrics/fleet; and the four Grafana dashboards, embedded when
// the hub was started with --grafana-url.
import { useEffect, useState } from 'preact/hooks';
import { get } from '../api';
import { dashboardURL, errorRate, fmtCount, fmtSeconds, fmtUSD, latency, throughput, windows, type Dashboard, type FleetStats } from '../analytics';
import { fmtPercent } from '../format';
import { useLocation, navigate } from '../router';
import { Chart } from '../components/Chart';
import { Empty, ErrorBox, useAsync } from '../components/ui';
import { AsyncView, Table } from '../components/AsyncTable';

const windowSeconds: Record<string, number> = { '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800 };

export function AnalyticsPage() {
  const { query } = useLocation();
  const win = (windows as readonly string[]).includes(query.get('window') || '') ? query.get('window')! : '1h';
  const stats = useAsync((signal) => get<FleetStats>('/api/metrics/fleet?window=' + win, signal), [win]);
  const dashboards = useAsync((signal) => get<{ grafana_url: string; dashboards: Dashboard[] }>('/api/metrics/dashboards', signal), []);
  useEffect(() => {
    const t = setInterval(() => stats.reload(), 15_000);
    return () => clearInterval(t);
  }, [win]);
  return (
    <section>
      <div class="page-head">
        <h1>Analytics</h1>
        <div class="spacer" />
        <label class="inline-field">
          Window{' '}
          <select value={win} onChange={(e) => navigate('/analytics?window=' + (e.target as HTMLSelectElement).value)} data-testid="analytics-window">
            {windows.map((w) => (
              <option value={w}>{w}</option>
            ))}
          </select>
        </label>
      </div>
      <AsyncView state={stats} what="fleet analytics">
        {(s) => <Overview s={s} win={win} />}
      </AsyncView>
      <Dashboards data={dashboards.data} error={dashboards.error} win={win} />
    </section>
  );
}

/** Overview is the fleet's numbers over the window win, its charts and its LLM tokens and cost by model. */
function Overview({ s, win }: { s: FleetStats; win: string }) {
  const empty = 'No samples in this window yet.';
  return (
    <>
      <div class="kpis" data-testid="analytics-kpis">
        <Kpi label="Instances" value={`${s.instances.healthy} / ${s.instances.total}`} sub={s.instances.unhealthy ? `${s.instances.unhealthy} unhealthy` : 'healthy / total'} warn={s.instances.unhealthy > 0} />
        <Kpi label="Workflows" value={fmtCount(s.workflows.runs)} sub={`${s.workflows.per_minute.toFixed(1)} per minute`} testid="kpi-runs" />
        <Kpi label="Active now" value={fmtCount(s.workflows.active)} sub="in flight" />
        <Kpi label="Error rate" value={fmtPercent(s.workflows.error_rate * 100)} sub={`${fmtCount(s.workflows.errors)} errors`} warn={s.workflows.error_rate > 0.05} testid="kpi-errors" />
        <Kpi label="Latency p50 / p95 / p99" value={`${fmtSeconds(s.workflows.p50_seconds)} · ${fmtSeconds(s.workflows.p95_seconds)} · ${fmtSeconds(s.workflows.p99_seconds)}`} sub={`average ${fmtSeconds(s.workflows.avg_seconds)}`} />
        <Kpi label="LLM tokens" value={fmtCount(s.llm.tokens)} sub={`${s.llm.by_model.length} models`} />
        <Kpi label="Estimated cost" value={fmtUSD(s.llm.cost_usd)} sub={`over ${s.window}`} testid="kpi-cost" />
      </div>
      {s.workflows.runs === 0 && s.llm.tokens === 0 && (
        <Empty>No workflow or LLM metrics in this window yet: flows report them through the RedForge workflow and LLM usage nodes.</Empty>
      )}
      <div class="chart-grid">
        <div class="card">
          <Chart key={'t' + win} title="Throughput (workflows per minute)" window={windowSeconds[win]} data={throughput(s.series, s.step)} empty={empty}
            series={[{ label: 'workflows/min', colour: '#4aa3ff', format: (v) => v.toFixed(1) }, { label: 'errors/min', colour: '#f85149', format: (v) => v.toFixed(1) }]} />
        </div>
        <div class="card">
          <Chart key={'e' + win} title="Error rate" window={windowSeconds[win]} data={errorRate(s.series)} empty={empty} series={[{ label: 'errors per run', colour: '#f85149', format: (v) => fmtPercent(v * 100) }]} />
        </div>
        <div class="card">
          <Chart key={'l' + win} title="Latency percentiles" window={windowSeconds[win]} data={latency(s.series)} empty={empty}
            series={[{ label: 'p50', colour: '#3fb950', format: fmtSeconds }, { label: 'p95', colour: '#d29922', format: fmtSeconds }, { label: 'p99', colour: '#f85149', format: fmtSeconds }]} />
        </div>
        <div class="card">
          <h2>Tokens and cost by model</h2>
          {!s.llm.by_model.length ? (
            <Empty>No LLM calls in this window.</Empty>
          ) : (
            <Table
              testid="models-table"
              head={['Model', { label: 'Calls', class: 'num' }, { label: 'Tokens', class: 'num' }, { label: 'Cost', class: 'num' }, 'Share']}
              rows={s.llm.by_model}
              row={(m) => (
                <tr>
                  <td class="mono">{m.model}</td>
                  <td class="num">{fmtCount(m.requests)}</td>
                  <td class="num">{fmtCount(m.tokens)}</td>
                  <td class="num">{fmtUSD(m.cost_usd)}</td>
                  <td>
                    <span class="share" style={{ width: `${Math.round((100 * m.tokens) / Math.max(s.llm.tokens, 1))}%` }} />
                  </td>
                </tr>
              )}
            />
          )}
        </div>
      </div>
    </>
  );
}

function Kpi({ label, value, sub, warn, testid }: { label: string; value: string; sub: string; warn?: boolean; testid?: string }) {
  return (
    <div class={'kpi' + (warn ? ' kpi-warn' : '')} data-testid={testid}>
      <div class="kpi-label">{label}</div>
      <div class="kpi-value">{value}</div>
      <div class="kpi-sub">{sub}</div>
    </div>
  );
}

function Dashboards({ data, error, win }: { data?: { grafana_url: string; dashboards: Dashboard[] }; error?: string; win: string }) {
  const [key, setKey] = useState('fleet');
  if (error) return <ErrorBox error={error} />;
  if (!data) return null;
  const d = data.dashboards.find((x) => x.key === key) ?? data.dashboards[0];
  const src = data.grafana_url && d ? dashboardURL(data.grafana_url, d.uid, win) : '';
  return (
    <div class="card">
      <div class="card-head">
        <h2>Grafana dashboards</h2>
        <div class="tabs" role="tablist" aria-label="Dashboards">
          {data.dashboards.map((x) => (
            <button role="tab" aria-selected={x.key === d?.key} class={'tab' + (x.key === d?.key ? ' active' : '')} onClick={() => setKey(x.key)} data-testid={'dashboard-' + x.key}>
              {x.title.replace(/^RedForge /, '')}
            </button>
          ))}
        </div>
      </div>
      {src ? (
        <iframe class="grafana" src={src} title={d.title} data-testid="grafana-frame" />
      ) : (
        <Empty>
          Start the hub with <code>--grafana-url</code> (the Grafana of <code>docker compose up</code> is <code>http://127.0.0.1:3300</code>) to see the {d?.title} dashboard here.
        </Empty>
      )}
    </div>
  );
}
