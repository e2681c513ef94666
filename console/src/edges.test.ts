import { describe, expect, it } from 'vitest';
import { backlogRows, configBehind, configVersion, fmtAge, oldestUnsynced } from './edges';

const at = '2026-11-27T10:00:00Z';

describe('edges', () => {
  it('backlogRows sorts by depth, then stream, and tolerates bad values', () => {
    const rows = backlogRows({
      audit: { depth: 5, bytes: 100, oldest_unsynced_seconds: 12.5, reported_at: at },
      vectors: { depth: 50, bytes: 4096, oldest_unsynced_seconds: 90, reported_at: at },
      metrics: { depth: 5, bytes: 10, oldest_unsynced_seconds: 1, reported_at: at },
      bad: null as any,
      odd: { depth: 'x', bytes: null, oldest_unsynced_seconds: NaN, reported_at: at } as any,
    });
    expect(rows.map((r) => r.stream)).toEqual(['vectors', 'audit', 'metrics', 'odd']);
    expect(rows[3]).toEqual({ stream: 'odd', depth: 0, bytes: 0, oldest_unsynced_seconds: 0, reported_at: at, evicted: 0 });
    expect(backlogRows({ a: { depth: 1, bytes: 1, oldest_unsynced_seconds: 1, reported_at: at, evicted: 7 } })[0].evicted).toBe(7);
    expect(backlogRows(undefined)).toEqual([]);
  });
  it('oldestUnsynced is the oldest age over streams with a backlog', () => {
    expect(oldestUnsynced({ a: { depth: 1, bytes: 1, oldest_unsynced_seconds: 30, reported_at: at }, b: { depth: 0, bytes: 0, oldest_unsynced_seconds: 900, reported_at: at }, c: { depth: 2, bytes: 1, oldest_unsynced_seconds: 75.5, reported_at: at } })).toBe(75.5);
    expect(oldestUnsynced({ b: { depth: 0, bytes: 0, oldest_unsynced_seconds: 900, reported_at: at } })).toBeNull();
    expect(oldestUnsynced(null)).toBeNull();
  });
  it('fmtAge renders seconds', () => {
    expect(fmtAge(null)).toBe('none');
    expect(fmtAge(75.5)).toBe('1 m 15 s');
    expect(fmtAge(0.2)).toBe('200 ms');
  });
  it('config versions may be numbers or strings', () => {
    expect(configVersion(3)).toBe('v3');
    expect(configVersion('4')).toBe('v4');
    expect(configVersion('abc123')).toBe('abc123');
    expect(configVersion(undefined)).toBe('—');
    expect(configBehind(2, 3)).toBe(true);
    expect(configBehind('3', 3)).toBe(false);
    expect(configBehind('abc', 3)).toBe(false);
    expect(configBehind(undefined, 3)).toBe(false);
  });
});
