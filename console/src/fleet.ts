// Fleet state: the instance list kept current by /api/ws events. Pure
// functions, tested by fleet.test.ts.
import type { HubEvent, Instance, Metrics } from './types';

export type Health = 'green' | 'yellow' | 'red' | 'grey';

/** health maps an observed status to a badge colour: running is green;
 * starting, creating and unhealthy yellow; failed, crash-looping and error
 * red; stopped and unknown grey. */
export function health(status: string | undefined): Health {
  switch (status) {
    case 'running':
      return 'green';
    case 'creating':
    case 'starting':
    case 'unhealthy':
      return 'yellow';
    case 'failed':
    case 'crash_looping':
    case 'error':
      return 'red';
  }
  return 'grey';
}

/** healthLabel is the words on a badge. */
export function healthLabel(status: string | undefined): string {
  if (!status) return 'pending';
  if (status === 'running') return 'healthy';
  return status.replace(/_/g, ' ');
}

export interface FleetState {
  instances: Instance[];
  metrics: Record<string, Metrics>;
  /** stale is set when an event names an instance the list lacks: reload it. */
  stale: boolean;
}

export const emptyFleet: FleetState = { instances: [], metrics: {}, stale: false };

/** applyEvent returns the state after a hub event. */
export function applyEvent(s: FleetState, e: HubEvent): FleetState {
  const d = e.data ?? {};
  switch (e.type) {
    case 'instance.status': {
      const i = s.instances.findIndex((x) => x.id === d.instance_id);
      if (i < 0) return { ...s, stale: true };
      const inst = s.instances[i];
      const observed = { ...inst.observed, status: d.status, message: d.message, since: d.since, port: d.port ?? inst.observed.port };
      const instances = s.instances.slice();
      instances[i] = { ...inst, observed };
      return { ...s, instances };
    }
    case 'instance.metrics': {
      if (!s.instances.some((x) => x.id === d.instance_id)) return s;
      return { ...s, metrics: { ...s.metrics, [d.instance_id]: d as Metrics } };
    }
    case 'instance.created':
    case 'instance.deleted':
      return { ...s, stale: true };
  }
  return s;
}

/** upsert puts inst into the list (sorted by name). */
export function upsert(s: FleetState, inst: Instance): FleetState {
  const instances = s.instances.filter((x) => x.id !== inst.id);
  instances.push(inst);
  instances.sort((a, b) => a.name.localeCompare(b.name));
  return { ...s, instances };
}

/** remove drops an instance. */
export function remove(s: FleetState, id: string): FleetState {
  const metrics = { ...s.metrics };
  delete metrics[id];
  return { ...s, instances: s.instances.filter((x) => x.id !== id), metrics };
}

/** replaceAll sets the list from GET /api/instances, keeping metrics of those still present. */
export function replaceAll(s: FleetState, list: Instance[]): FleetState {
  const instances = list.slice().sort((a, b) => a.name.localeCompare(b.name));
  const ids = new Set(instances.map((x) => x.id));
  const metrics: Record<string, Metrics> = {};
  for (const [k, v] of Object.entries(s.metrics)) if (ids.has(k)) metrics[k] = v;
  return { instances, metrics, stale: false };
}

export interface FleetFilter {
  q: string;
  health: '' | Health;
  region: string;
}

/** filterInstances applies the search box and the filters. */
export function filterInstances(list: Instance[], f: FleetFilter): Instance[] {
  const q = f.q.trim().toLowerCase();
  return list.filter(
    (i) =>
      (!q || i.name.toLowerCase().includes(q) || i.id.startsWith(q) || (i.flows_version ?? '').toLowerCase().includes(q)) &&
      (!f.health || health(i.observed?.status) === f.health) &&
      (!f.region || i.region === f.region),
  );
}

/** memoryFraction is memory use over the limit (the metrics' limit, else the configured memory), 0..1. */
export function memoryFraction(m: Metrics | undefined, inst: Instance): number | undefined {
  if (!m) return undefined;
  const limit = m.memory_limit_bytes || (inst.resources?.memory_mb ?? 0) * 1024 * 1024;
  if (!limit) return undefined;
  return Math.min(1, m.memory_bytes / limit);
}

/** cpuFraction is CPU use over the instance's CPU limit (or one core), 0..1. */
export function cpuFraction(m: Metrics | undefined, inst: Instance): number | undefined {
  if (!m) return undefined;
  const cores = inst.resources?.cpu || 1;
  return Math.min(1, m.cpu_percent / 100 / cores);
}

/** regions lists the distinct regions of the fleet. */
export function regionsOf(list: Instance[]): string[] {
  return [...new Set(list.map((i) => i.region).filter((r): r is string => !!r))].sort();
}

const liveStatuses = new Set(['running', 'starting', 'creating', 'unhealthy']);

/** isUp reports whether to offer Stop and Restart rather than Start. The
 * observed status decides when there is one (status events do not carry
 * the desired state, and after a blue-green deployment the logical
 * instance's desired state is blue's while green serves it); a failed
 * instance gets Start, which clears its crash history. */
export function isUp(inst: Instance): boolean {
  const status = inst.observed?.status || '';
  if (status) return liveStatuses.has(status);
  return inst.desired_state !== 'stopped';
}
