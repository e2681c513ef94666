import { describe, expect, it } from 'vitest';
import { applyStatusEvent, replicaSummary } from './replicas';
import type { Instance } from './types';

const inst: Instance = {
  id: 'i1', name: 'app', resources: {}, created_at: '', updated_at: '', replicas: 2, live_row: 'i1',
  observed: { status: 'running' } as any,
  allocations: [
    { id: 'a0', replica: 0, hub: 'h1', color: 'app', status: 'running' },
    { id: 'a1', replica: 1, hub: 'h2', color: 'app', status: 'running' },
  ],
};

describe('replicas', () => {
  it('applies a replica status event to that replica only', () => {
    const got = applyStatusEvent(inst, { type: 'instance.status', time: '', data: { instance_id: 'i1', allocation: 'a1', status: 'failed', hub: 'h2' } });
    expect(got.allocations?.map((a) => a.status)).toEqual(['running', 'failed']);
    expect(got.observed.status).toBe('running');
    expect(replicaSummary(got)).toBe('1/2 running');
  });
  it('ignores events of other rows', () => {
    const got = applyStatusEvent(inst, { type: 'instance.status', time: '', data: { instance_id: 'other', allocation: 'a1', status: 'failed' } });
    expect(got).toBe(inst);
  });
});
