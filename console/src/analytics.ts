// Fleet analytics for the Analytics page: the API's answer (GET
// /api/metrics/fleet), turned into chart columns, and the Grafana
// dashboards' embed address.

export interface WorkflowStats {
  runs: number;
  errors: number;
  error_rate: number;
  per_minute: number;
  active: number;
  avg_seconds: number;
  p50_seconds: number;
  p95_seconds: number;
  p99_seconds: number;
}

export interface ModelStats {
  model: string;
  prompt_tokens: number;
  completion_tokens: number;
  tokens: number;
  requests: number;
  cost_usd: number;
}

export interface Point {
  time: string;
  runs: number;
  errors: number;
  p50_seconds: number;
  p95_seconds: number;
  p99_seconds: number;
  tokens: number;
  cost_usd: number;
}

export interface Counts {
  total: number;
  healthy: number;
  unhealthy: number;
  by_status: Record<string, number>;
}

export interface FleetStats {
  window: string;
  from: string;
  to: string;
  step: string;
  instances: Counts;
  replicas: Counts;
  workflows: WorkflowStats;
  llm: { tokens: number; cost_usd: number; by_model: ModelStats[] };
  series: Point[];
}

export interface Dashboard {
  uid: string;
  title: string;
  key: string;
}

export const windows = ['15m', '1h', '6h', '24h', '7d'] as const;

/** stepMinutes reads a Go duration such as "1m0s" or "24m0s" as minutes (1 when unreadable). */
export function stepMinutes(step: string): number {
  let total = 0;
  for (const [, n, unit] of step.matchAll(/([\d.]+)(h|m|s|ms)/g)) {
    const v = Number(n);
    total += unit === 'h' ? v * 60 : unit === 'm' ? v : unit === 's' ? v / 60 : v / 60000;
  }
  return total > 0 ? total : 1;
}

/** columns turns the series into uPlot columns: times (s), then each of fields. */
export function columns(series: Point[], fields: ((p: Point) => number)[]): number[][] {
  const out: number[][] = [series.map((p) => Date.parse(p.time) / 1000)];
  for (const f of fields) out.push(series.map(f));
  return out;
}

/** throughput is runs per minute at each point. */
export function throughput(series: Point[], step: string): number[][] {
  const m = stepMinutes(step);
  return columns(series, [(p) => p.runs / m, (p) => p.errors / m]);
}

/** errorRate is errors per run at each point (0 without runs). */
export function errorRate(series: Point[]): number[][] {
  return columns(series, [(p) => (p.runs > 0 ? p.errors / p.runs : 0)]);
}

/** latency is p50, p95 and p99 at each point. */
export function latency(series: Point[]): number[][] {
  return columns(series, [(p) => p.p50_seconds, (p) => p.p95_seconds, (p) => p.p99_seconds]);
}

/** fmtUSD shows a dollar amount with cents, or fractions of a cent when small. */
export function fmtUSD(v: number | undefined | null): string {
  if (v == null || !isFinite(v)) return '—';
  if (v === 0) return '$0';
  if (Math.abs(v) < 0.01) return '$' + v.toPrecision(2);
  return '$' + v.toFixed(2);
}

/** fmtSeconds shows a duration in seconds as ms or s. */
export function fmtSeconds(v: number | undefined | null): string {
  if (v == null || !isFinite(v) || v === 0) return '—';
  return v < 1 ? `${Math.round(v * 1000)} ms` : `${v.toFixed(2)} s`;
}

/** fmtCount shows a count with thousands separators and k/M past them. */
export function fmtCount(v: number | undefined | null): string {
  if (v == null || !isFinite(v)) return '—';
  if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (v >= 1e4) return (v / 1e3).toFixed(1) + 'k';
  return Math.round(v).toLocaleString('en-US');
}

/**
 * dashboardURL is where a dashboard is embedded from: the Grafana base URL
 * (without trailing slashes) + /d/{uid}, in kiosk mode over the window.
 * Only http(s) Grafana URLs are used.
 */
export function dashboardURL(grafana: string, uid: string, window: string): string {
  let base: URL;
  try {
    base = new URL(grafana);
  } catch {
    return '';
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') return '';
  const path = base.pathname.replace(/\/+$/, '');
  const q = new URLSearchParams({ orgId: '1', kiosk: '', theme: 'dark', from: 'now-' + window, to: 'now' });
  return `${base.origin}${path}/d/${encodeURIComponent(uid)}?${q.toString().replace('kiosk=&', 'kiosk&')}`;
}
