// The Models page's pure helpers: money and latency formats, labels of
// recommendations, and cost per workflow by model from /api/models/usage.

export interface UsageRow {
  instance_id: string;
  flow: string;
  model: string;
  calls: number;
  failed: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  fallbacks: number;
}

/** fmtUSD renders dollars with enough digits for sub-cent LLM costs. */
export function fmtUSD(v: number | undefined | null): string {
  if (v == null || !isFinite(v)) return '—';
  if (v === 0) return '$0';
  if (Math.abs(v) >= 1) return '$' + v.toFixed(2);
  if (Math.abs(v) >= 0.01) return '$' + v.toFixed(4);
  return '$' + v.toPrecision(2);
}

/** fmtMS renders a latency in milliseconds, "—" for none. */
export function fmtMS(v: number | undefined | null): string {
  if (!v) return '—';
  return v >= 100 ? Math.round(v) + ' ms' : v.toFixed(1) + ' ms';
}

const recLabels: Record<string, string> = {
  best_quality: 'Best for quality',
  best_cost: 'Best for cost',
  best_within_sla: 'Best within SLA',
};

/** recLabel names a recommendation kind. */
export function recLabel(kind: string): string {
  return recLabels[kind] ?? kind.replace(/_/g, ' ');
}

export interface WorkflowCost {
  flow: string;
  total: number;
  calls: number;
  byModel: { model: string; cost: number; calls: number; tokens: number }[];
}

/** costByWorkflow groups usage rows by flow (across instances), models
 * within each flow by cost, flows by total cost, most expensive first. */
export function costByWorkflow(rows: UsageRow[]): WorkflowCost[] {
  const flows = new Map<string, WorkflowCost>();
  for (const r of rows) {
    let f = flows.get(r.flow);
    if (!f) {
      f = { flow: r.flow, total: 0, calls: 0, byModel: [] };
      flows.set(r.flow, f);
    }
    f.total += r.cost_usd;
    f.calls += r.calls;
    let m = f.byModel.find((x) => x.model === r.model);
    if (!m) {
      m = { model: r.model, cost: 0, calls: 0, tokens: 0 };
      f.byModel.push(m);
    }
    m.cost += r.cost_usd;
    m.calls += r.calls;
    m.tokens += r.input_tokens + r.output_tokens;
  }
  const out = [...flows.values()];
  out.forEach((f) => f.byModel.sort((a, b) => b.cost - a.cost || a.model.localeCompare(b.model)));
  return out.sort((a, b) => b.total - a.total || a.flow.localeCompare(b.flow));
}

/** splitList turns "a, b,,c" into ["a", "b", "c"]. */
export function splitList(s: string): string[] {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}
