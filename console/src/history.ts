// Instance status history and flows versions: the transitions the API
// recorded, extended live by instance.status events, and what the health
// chart draws of them. Pure functions, tested by history.test.ts.
import type { FlowsVersion, HubEvent, Instance, Transition } from './types';

/** statusLevel places a status on the health chart's axis: 3 healthy,
 * 2 on the way (creating, starting, unhealthy), 1 down (failed, crash
 * looping, error), 0 stopped; null for an unknown status. */
export function statusLevel(status: string | undefined): number | null {
  switch (status) {
    case 'running':
      return 3;
    case 'creating':
    case 'starting':
    case 'unhealthy':
      return 2;
    case 'failed':
    case 'crash_looping':
    case 'error':
      return 1;
    case 'stopped':
      return 0;
  }
  return null;
}

/** levelLabels name the chart's axis ticks. */
export const levelLabels: Record<number, string> = { 0: 'stopped', 1: 'down', 2: 'starting', 3: 'healthy' };

const key = (t: Transition) => `${t.row_id}|${t.status}|${Date.parse(t.time)}`;

/** mergeTransitions merges transitions into a newest-first list without
 * duplicates (the same row, status and time), keeping at most max. */
export function mergeTransitions(list: Transition[], add: Transition[], max = 1000): Transition[] {
  const seen = new Set(list.map(key));
  const out = list.slice();
  for (const t of add) {
    if (seen.has(key(t))) continue;
    seen.add(key(t));
    out.push(t);
  }
  out.sort((a, b) => Date.parse(b.time) - Date.parse(a.time) || (b.id ?? 0) - (a.id ?? 0));
  return out.slice(0, max);
}

/** rowOf reports whether a row (by id and name) belongs to the logical
 * instance inst: its own row or a deployment color row "{name}.{hex}". */
export function rowOf(inst: Pick<Instance, 'id' | 'name'>, rowID: string, rowName?: string): boolean {
  return rowID === inst.id || (!!rowName && rowName.startsWith(inst.name + '.'));
}

/** fromStatusEvent turns an instance.status event into a transition of
 * inst, or null when the event is about another instance or repeats the
 * row's latest status. The previous status is the row's latest in list. */
export function fromStatusEvent(inst: Pick<Instance, 'id' | 'name'>, list: Transition[], e: HubEvent): Transition | null {
  const d = e.data ?? {};
  if (e.type !== 'instance.status' || !d.instance_id || !rowOf(inst, d.instance_id, d.name)) return null;
  const prev = list.find((t) => t.row_id === d.instance_id);
  if (prev && prev.status === d.status) return null;
  return {
    time: d.since || e.time,
    instance_id: inst.id,
    row_id: d.instance_id,
    row_name: d.name,
    status: d.status,
    prev_status: prev?.status ?? '',
    message: d.message,
  };
}

export interface HealthSeries {
  /** rows are the series' labels (row names), oldest row first. */
  rows: string[];
  /** data is uPlot's aligned data: times in seconds, then one level per row (null before its first transition). */
  data: (number | null)[][];
  /** points is how many transitions the chart draws. */
  points: number;
}

/** healthSeries turns a newest-first transition list into step series, one
 * per catalog row, each held at its last level until now (seconds). */
export function healthSeries(list: Transition[], now: number, maxRows = 4): HealthSeries {
  const asc = list.slice().reverse().filter((t) => statusLevel(t.status) != null);
  const rowIDs: string[] = [];
  const names: Record<string, string> = {};
  for (const t of asc) {
    if (!rowIDs.includes(t.row_id)) rowIDs.push(t.row_id);
    names[t.row_id] = t.row_name || t.row_id.slice(0, 8);
  }
  const rows = rowIDs.slice(-maxRows);
  const kept = asc.filter((t) => rows.includes(t.row_id));
  const xs: number[] = [];
  const ys: (number | null)[][] = rows.map(() => []);
  const last: (number | null)[] = rows.map(() => null);
  const push = (x: number) => {
    xs.push(x);
    rows.forEach((_, i) => ys[i].push(last[i]));
  };
  for (const t of kept) {
    const x = Date.parse(t.time) / 1000;
    last[rows.indexOf(t.row_id)] = statusLevel(t.status);
    if (xs.length && xs[xs.length - 1] === x) {
      rows.forEach((_, i) => (ys[i][ys[i].length - 1] = last[i]));
    } else {
      push(x);
    }
  }
  if (xs.length && now > xs[xs.length - 1]) push(now);
  return { rows: rows.map((id) => names[id]), data: [xs, ...ys], points: kept.length };
}

/** versionLabel describes a flows version for a picker: "v3 · 2026-11-27 16:10:05 · alice · deployment". */
export function versionLabel(v: FlowsVersion, fmt: (t: string) => string): string {
  return [`v${v.version}`, fmt(v.time), v.username || 'unknown', v.source].join(' · ');
}
