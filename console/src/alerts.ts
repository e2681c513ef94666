// Alerting for the Alerts page: the API's types and the rule form's
// request body.

export interface AlertChannel {
  type: string;
  url?: string;
  to?: string[];
}

export interface AlertRule {
  id: string;
  name: string;
  description?: string;
  metric: string;
  match?: Record<string, string>;
  condition: string;
  threshold: number;
  for: number; // nanoseconds
  severity: string;
  channels: AlertChannel[];
  disabled?: boolean;
  created_by?: string;
  created_at: string;
  updated_at: string;
}

export interface AlertDelivery {
  event: string;
  channel: AlertChannel;
  status: string;
  attempts: number;
  last_error?: string;
  next_at?: string;
  at?: string;
}

export interface Alert {
  id: string;
  rule_id: string;
  rule_name: string;
  severity: string;
  labels: Record<string, string>;
  state: string;
  value: number;
  summary: string;
  starts_at: string;
  ends_at?: string;
  deliveries?: AlertDelivery[];
}

export interface MetricInfo {
  name: string;
  help: string;
  labels: string[];
}

export interface RuleForm {
  name: string;
  metric: string;
  matchLabel: string;
  matchValue: string;
  condition: string;
  threshold: string;
  for: string;
  severity: string;
  channels: { type: string; target: string }[];
}

export const emptyRule = (): RuleForm => ({
  name: '',
  metric: 'nodered_instance_up',
  matchLabel: '',
  matchValue: '',
  condition: '<',
  threshold: '1',
  for: '0s',
  severity: 'critical',
  channels: [{ type: 'webhook', target: '' }],
});

/** ruleBody is the POST /api/alerts/rules body of a form; the API validates it and names a bad field. */
export function ruleBody(f: RuleForm): Record<string, unknown> {
  const body: Record<string, unknown> = {
    name: f.name.trim(),
    metric: f.metric,
    condition: f.condition,
    threshold: f.threshold.trim() === '' ? null : Number(f.threshold),
    for: f.for.trim() || '0s',
    severity: f.severity,
    channels: f.channels.map((c) =>
      c.type === 'email'
        ? { type: 'email', to: c.target.split(',').map((s) => s.trim()).filter(Boolean) }
        : { type: c.type, url: c.target.trim() },
    ),
  };
  if (f.matchLabel && f.matchValue.trim()) body.match = { [f.matchLabel]: f.matchValue.trim() };
  return body;
}

/** fmtFor shows a rule's for (nanoseconds) as a Go-style duration. */
export function fmtFor(ns: number): string {
  const s = Math.round(ns / 1e9);
  if (s === 0) return '0s';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return (h ? h + 'h' : '') + (m ? m + 'm' : '') + (r ? r + 's' : '');
}

/** deliverySummary says how an alert's notifications went: "3 sent, 1 retrying". */
export function deliverySummary(ds: AlertDelivery[] | undefined): string {
  if (!ds?.length) return 'none';
  const n: Record<string, number> = {};
  for (const d of ds) n[d.status] = (n[d.status] ?? 0) + 1;
  return ['sent', 'retrying', 'pending', 'failed'].filter((k) => n[k]).map((k) => `${n[k]} ${k}`).join(', ');
}

/** channelTarget shows where a channel goes (its URL as the API shows it, or its addresses). */
export function channelTarget(c: AlertChannel): string {
  return c.type === 'email' ? (c.to ?? []).join(', ') : c.url ?? '';
}

/** labelText shows an alert's identifying labels, without the rule's own. */
export function labelText(labels: Record<string, string>): string {
  return Object.entries(labels)
    .filter(([k, v]) => v && !['alertname', 'severity', 'rule_id'].includes(k))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}
