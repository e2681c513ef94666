import { describe, expect, it } from 'vitest';
import { applyEvent, isUp, cpuFraction, emptyFleet, filterInstances, health, healthLabel, memoryFraction, regionsOf, remove, replaceAll, upsert } from './fleet';
import type { Instance } from './types';

const inst = (id: string, name: string, status = 'running', region = 'eu'): Instance => ({
  id,
  name,
  region,
  resources: { memory_mb: 512 },
  observed: { status },
  created_at: '',
  updated_at: '',
});

describe('fleet', () => {
  it('maps statuses to badge colours', () => {
    expect(health('running')).toBe('green');
    expect(health('starting')).toBe('yellow');
    expect(health('unhealthy')).toBe('yellow');
    expect(health('crash_looping')).toBe('red');
    expect(health('error')).toBe('red');
    expect(health('stopped')).toBe('grey');
    expect(health(undefined)).toBe('grey');
    expect(healthLabel('running')).toBe('healthy');
    expect(healthLabel('crash_looping')).toBe('crash looping');
    expect(healthLabel(undefined)).toBe('pending');
  });

  it('applies status events to the named instance only', () => {
    let s = replaceAll(emptyFleet, [inst('b', 'beta', 'starting'), inst('a', 'alpha', 'starting')]);
    expect(s.instances.map((i) => i.name)).toEqual(['alpha', 'beta']);
    s = applyEvent(s, { type: 'instance.status', time: '', data: { instance_id: 'b', status: 'running', since: '2026-01-01T00:00:00Z', port: 1880 } });
    expect(s.instances[1].observed).toMatchObject({ status: 'running', port: 1880 });
    expect(s.instances[0].observed.status).toBe('starting');
    expect(s.stale).toBe(false);
  });

  it('marks the list stale for an unknown instance or a create/delete', () => {
    const s = replaceAll(emptyFleet, [inst('a', 'alpha')]);
    expect(applyEvent(s, { type: 'instance.status', time: '', data: { instance_id: 'zz', status: 'running' } }).stale).toBe(true);
    expect(applyEvent(s, { type: 'instance.deleted', time: '', data: {} }).stale).toBe(true);
    expect(applyEvent(s, { type: 'hello', time: '', data: {} })).toBe(s);
  });

  it('keeps metrics for known instances and drops them on remove and reload', () => {
    let s = replaceAll(emptyFleet, [inst('a', 'alpha'), inst('b', 'beta')]);
    const m = { instance_id: 'a', cpu_percent: 50, memory_bytes: 256 * 1024 * 1024, at: '' };
    s = applyEvent(s, { type: 'instance.metrics', time: '', data: m });
    s = applyEvent(s, { type: 'instance.metrics', time: '', data: { ...m, instance_id: 'nope' } });
    expect(Object.keys(s.metrics)).toEqual(['a']);
    expect(memoryFraction(s.metrics.a, s.instances[0])).toBe(0.5);
    expect(cpuFraction(s.metrics.a, { ...s.instances[0], resources: { cpu: 2 } })).toBe(0.25);
    expect(memoryFraction(undefined, s.instances[0])).toBeUndefined();
    expect(Object.keys(replaceAll(s, [inst('b', 'beta')]).metrics)).toEqual([]);
    expect(remove(s, 'a').instances.map((i) => i.id)).toEqual(['b']);
  });

  it('upserts in name order', () => {
    let s = replaceAll(emptyFleet, [inst('b', 'beta')]);
    s = upsert(s, inst('a', 'alpha'));
    s = upsert(s, { ...inst('b', 'beta'), flows_version: 'v2' });
    expect(s.instances.map((i) => i.name)).toEqual(['alpha', 'beta']);
    expect(s.instances[1].flows_version).toBe('v2');
  });

  it('filters by search, health and region', () => {
    const list = [inst('1', 'orders', 'running', 'eu'), inst('2', 'billing', 'failed', 'us'), inst('3', 'ordering-bot', 'stopped', 'us')];
    expect(filterInstances(list, { q: 'order', health: '', region: '' }).map((i) => i.id)).toEqual(['1', '3']);
    expect(filterInstances(list, { q: '', health: 'red', region: '' }).map((i) => i.id)).toEqual(['2']);
    expect(filterInstances(list, { q: 'ORDER', health: '', region: 'us' }).map((i) => i.id)).toEqual(['3']);
    expect(regionsOf(list)).toEqual(['eu', 'us']);
  });

  it('offers Stop while the instance is meant to run or is still served', () => {
    expect(isUp({ ...inst('a', 'a', 'running'), desired_state: 'running' })).toBe(true);
    expect(isUp({ ...inst('a', 'a', 'running'), desired_state: 'stopped' })).toBe(true);
    expect(isUp({ ...inst('a', 'a', 'stopped'), desired_state: 'stopped' })).toBe(false);
    expect(isUp({ ...inst('a', 'a', 'failed'), desired_state: 'running' })).toBe(false);
    expect(isUp({ ...inst('a', 'a', 'stopped'), desired_state: 'running' })).toBe(false);
    expect(isUp({ ...inst('a', 'a', ''), desired_state: 'running' })).toBe(true);
  });
});
