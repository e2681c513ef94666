// Replica bookkeeping shared by the instance page: applying an
// instance.status event (one replica's status, from the hub running it)
// to an instance as the API showed it.
import type { HubEvent, Instance, Replica } from './types';

/** applyStatusEvent returns inst with the replica the event is about updated, or inst itself when it is about another row. */
export function applyStatusEvent(inst: Instance, e: HubEvent): Instance {
  const row = inst.live_row || inst.id;
  if (e.type !== 'instance.status' || (e.data?.instance_id !== row && e.data?.instance_id !== inst.id)) return inst;
  const allocations = (inst.allocations ?? []).map((a: Replica) =>
    a.id === e.data.allocation ? { ...a, status: e.data.status, message: e.data.message, since: e.data.since, hub: e.data.hub ?? a.hub } : a,
  );
  const running = allocations.filter((a) => a.status === 'running').length;
  const best = running > 0 ? 'running' : e.data.status;
  const message = allocations.length > 1 ? `${running}/${allocations.length} replicas running` : e.data.message;
  return { ...inst, allocations, observed: { ...inst.observed, status: best, since: e.data.since, message } };
}

/** replicaSummary is "2/3 running" for an instance. */
export function replicaSummary(inst: Instance): string {
  const as = inst.allocations ?? [];
  const running = as.filter((a) => a.status === 'running').length;
  return `${running}/${inst.replicas || 1} running`;
}
