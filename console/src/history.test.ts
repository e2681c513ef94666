import { describe, expect, it } from 'vitest';
import { fromStatusEvent, healthSeries, levelLabels, mergeTransitions, rowOf, statusLevel, versionLabel } from './history';
import type { FlowsVersion, Transition } from './types';

const tr = (id: number, time: string, status: string, row = 'i1', row_name = 'alpha'): Transition => ({ id, time, instance_id: 'i1', row_id: row, row_name, status });

describe('history', () => {
  it('statusLevel orders healthy above starting above down above stopped', () => {
    expect(statusLevel('running')).toBe(3);
    expect(statusLevel('unhealthy')).toBe(2);
    expect(statusLevel('crash_looping')).toBe(1);
    expect(statusLevel('stopped')).toBe(0);
    expect(statusLevel('weird')).toBeNull();
    expect(levelLabels[3]).toBe('healthy');
  });
  it('mergeTransitions keeps newest first without duplicates', () => {
    const a = [tr(2, '2026-11-27T10:01:00Z', 'running'), tr(1, '2026-11-27T10:00:00Z', 'starting')];
    const live = { ...tr(0, '2026-11-27T10:01:00.000Z', 'running') };
    delete live.id;
    const out = mergeTransitions(a, [live, tr(3, '2026-11-27T10:02:00Z', 'stopped')]);
    expect(out.map((t) => t.status)).toEqual(['stopped', 'running', 'starting']);
    expect(mergeTransitions(out, [tr(4, '2026-11-27T10:03:00Z', 'starting')], 2).map((t) => t.id)).toEqual([4, 3]);
  });
  it('rowOf accepts the logical row and its color rows only', () => {
    const inst = { id: 'i1', name: 'alpha' };
    expect(rowOf(inst, 'i1')).toBe(true);
    expect(rowOf(inst, 'i1-ab12cd34', 'alpha.ab12cd34')).toBe(true);
    expect(rowOf(inst, 'i2', 'alphabet')).toBe(false);
    expect(rowOf(inst, 'i2', 'beta.ab12cd34')).toBe(false);
  });
  it('fromStatusEvent adds a live transition with the previous status, once', () => {
    const inst = { id: 'i1', name: 'alpha' };
    const list = [tr(1, '2026-11-27T10:00:00Z', 'running')];
    const e = { type: 'instance.status', time: '2026-11-27T10:05:00Z', data: { instance_id: 'i1', name: 'alpha', status: 'failed', message: 'exit 1', since: '2026-11-27T10:04:59Z' } };
    expect(fromStatusEvent(inst, list, e)).toEqual({ time: '2026-11-27T10:04:59Z', instance_id: 'i1', row_id: 'i1', row_name: 'alpha', status: 'failed', prev_status: 'running', message: 'exit 1' });
    expect(fromStatusEvent(inst, list, { ...e, data: { ...e.data, status: 'running' } })).toBeNull();
    expect(fromStatusEvent(inst, list, { ...e, data: { ...e.data, instance_id: 'i9', name: 'other' } })).toBeNull();
    expect(fromStatusEvent(inst, list, { ...e, type: 'instance.metrics' })).toBeNull();
    const green = fromStatusEvent(inst, list, { ...e, data: { instance_id: 'i1-ab', name: 'alpha.ab', status: 'starting' } });
    expect(green?.row_id).toBe('i1-ab');
    expect(green?.prev_status).toBe('');
    expect(green?.time).toBe(e.time);
  });
  it('healthSeries draws one held step series per row up to now', () => {
    const list = [
      tr(4, '2026-11-27T10:03:00Z', 'running', 'g', 'alpha.ab'),
      tr(3, '2026-11-27T10:02:00Z', 'starting', 'g', 'alpha.ab'),
      tr(2, '2026-11-27T10:01:00Z', 'running'),
      tr(1, '2026-11-27T10:00:00Z', 'starting'),
    ];
    const t0 = Date.parse('2026-11-27T10:00:00Z') / 1000;
    const s = healthSeries(list, t0 + 600);
    expect(s.rows).toEqual(['alpha', 'alpha.ab']);
    expect(s.points).toBe(4);
    expect(s.data[0]).toEqual([t0, t0 + 60, t0 + 120, t0 + 180, t0 + 600]);
    expect(s.data[1]).toEqual([2, 3, 3, 3, 3]);
    expect(s.data[2]).toEqual([null, null, 2, 3, 3]);
  });
  it('healthSeries merges transitions at one time and skips unknown statuses', () => {
    const list = [tr(3, '2026-11-27T10:00:00Z', 'running', 'g', 'alpha.ab'), tr(2, '2026-11-27T10:00:00Z', 'weird'), tr(1, '2026-11-27T10:00:00Z', 'stopped')];
    const t0 = Date.parse('2026-11-27T10:00:00Z') / 1000;
    const s = healthSeries(list, t0);
    expect(s.data).toEqual([[t0], [0], [3]]);
    expect(healthSeries([], t0)).toEqual({ rows: [], data: [[]], points: 0 });
  });
  it('healthSeries keeps the most recent rows', () => {
    const list = ['a', 'b', 'c'].map((r, i) => tr(i, `2026-11-27T10:0${i}:00Z`, 'running', r, 'alpha.' + r)).reverse();
    expect(healthSeries(list, 0, 2).rows).toEqual(['alpha.b', 'alpha.c']);
  });
  it('versionLabel names version, time, who and source', () => {
    const v: FlowsVersion = { instance_id: 'i1', version: 3, sha256: 'ab', size: 10, source: 'deployment', username: 'alice', time: '2026-11-27T10:00:00Z' };
    expect(versionLabel(v, () => 'T')).toBe('v3 · T · alice · deployment');
    expect(versionLabel({ ...v, username: undefined }, () => 'T')).toBe('v3 · T · unknown · deployment');
  });
});
