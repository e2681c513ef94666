import { describe, expect, it } from 'vitest';
import { dashboardURL, errorRate, fmtUSD, stepMinutes, throughput, type Point } from './analytics';

const pt = (time: string, runs: number, errors: number): Point => ({ time, runs, errors, p50_seconds: 0.1, p95_seconds: 0.4, p99_seconds: 0.5, tokens: 0, cost_usd: 0 });

describe('analytics', () => {
  it('reads Go durations as minutes', () => {
    expect(stepMinutes('1m0s')).toBe(1);
    expect(stepMinutes('24m0s')).toBe(24);
    expect(stepMinutes('15s')).toBe(0.25);
    expect(stepMinutes('2h48m0s')).toBe(168);
    expect(stepMinutes('garbage')).toBe(1);
  });
  it('turns points into per-minute throughput and error rate', () => {
    const s = [pt('2026-01-01T00:00:00Z', 120, 6), pt('2026-01-01T00:02:00Z', 0, 0)];
    expect(throughput(s, '2m0s')).toEqual([[1767225600, 1767225720], [60, 0], [3, 0]]);
    expect(errorRate(s)[1]).toEqual([0.05, 0]);
  });
  it('formats dollars', () => {
    expect(fmtUSD(0)).toBe('$0');
    expect(fmtUSD(12.345)).toBe('$12.35');
    expect(fmtUSD(0.00075)).toBe('$0.00075');
    expect(fmtUSD(undefined)).toBe('—');
  });
  it('embeds dashboards from http(s) Grafana only', () => {
    expect(dashboardURL('http://127.0.0.1:3300/', 'redforge-fleet', '1h')).toBe('http://127.0.0.1:3300/d/redforge-fleet?orgId=1&kiosk&theme=dark&from=now-1h&to=now');
    expect(dashboardURL('https://ops.example.com/grafana//', 'redforge-cost', '24h')).toBe('https://ops.example.com/grafana/d/redforge-cost?orgId=1&kiosk&theme=dark&from=now-24h&to=now');
    expect(dashboardURL('javascript:alert(1)', 'x', '1h')).toBe('');
    expect(dashboardURL('not a url', 'x', '1h')).toBe('');
  });
});
