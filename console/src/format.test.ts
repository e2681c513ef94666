import { describe, expect, it } from 'vitest';
import { between, fmtAgo, fmtBytes, fmtDuration, fmtPercent, isZeroTime, localInputToRFC3339, maskEnv, parseEnv, shortID, truncate } from './format';

describe('format', () => {
  it('fmtBytes uses binary units', () => {
    expect(fmtBytes(0)).toBe('0 B');
    expect(fmtBytes(1023)).toBe('1023 B');
    expect(fmtBytes(1536)).toBe('1.5 KiB');
    expect(fmtBytes(200 * 1024 * 1024)).toBe('200 MiB');
    expect(fmtBytes(undefined)).toBe('—');
    expect(fmtBytes(-1)).toBe('—');
  });
  it('fmtPercent keeps one decimal below 10', () => {
    expect(fmtPercent(3.14159)).toBe('3.1%');
    expect(fmtPercent(42.6)).toBe('43%');
    expect(fmtPercent(NaN)).toBe('—');
  });
  it('fmtDuration picks a unit', () => {
    expect(fmtDuration(850)).toBe('850 ms');
    expect(fmtDuration(12_400)).toBe('12 s');
    expect(fmtDuration(184_000)).toBe('3 m 4 s');
    expect(fmtDuration(2 * 3600_000 + 5 * 60_000)).toBe('2 h 5 m');
    expect(fmtDuration(3 * 86400_000 + 3600_000)).toBe('3 d 1 h');
    expect(fmtDuration(undefined)).toBe('—');
  });
  it('fmtAgo is relative to now and knows Go zero times', () => {
    const now = Date.parse('2026-11-27T16:00:00Z');
    expect(fmtAgo('2026-11-27T15:59:59.5Z', now)).toBe('just now');
    expect(fmtAgo('2026-11-27T15:59:30Z', now)).toBe('30 s ago');
    expect(fmtAgo('2026-11-27T15:57:00Z', now)).toBe('3 m ago');
    expect(fmtAgo('2026-11-27T16:02:00Z', now)).toBe('in 2 m');
    expect(fmtAgo('0001-01-01T00:00:00Z', now)).toBe('never');
    expect(fmtAgo(undefined, now)).toBe('never');
    expect(isZeroTime('garbage')).toBe(true);
  });
  it('between measures to now when unfinished', () => {
    const now = Date.parse('2026-11-27T16:00:10Z');
    expect(between('2026-11-27T16:00:00Z', '2026-11-27T16:00:05Z', now)).toBe(5000);
    expect(between('2026-11-27T16:00:00Z', undefined, now)).toBe(10_000);
    expect(between('2026-11-27T16:00:00Z', '0001-01-01T00:00:00Z', now)).toBe(10_000);
    expect(between(undefined)).toBeUndefined();
  });
  it('masks secret-looking environment variables only', () => {
    expect(maskEnv('OPENAI_API_KEY', 'sk-123')).toBe('••••••••');
    expect(maskEnv('db_password', 'x')).toBe('••••••••');
    expect(maskEnv('SLACK_TOKEN', 'x')).toBe('••••••••');
    expect(maskEnv('LOG_LEVEL', 'debug')).toBe('debug');
  });
  it('parseEnv reads NAME=value lines and names a bad line', () => {
    expect(parseEnv('A=1\n\n# note\nB = two=2\n')).toEqual({ A: '1', B: ' two=2' });
    expect(parseEnv('A=1\noops')).toBe('line 2: write NAME=value');
    expect(parseEnv('')).toEqual({});
  });
  it('shortens and truncates', () => {
    expect(shortID('0123456789abcdef')).toBe('01234567');
    expect(shortID(undefined)).toBe('—');
    expect(truncate('abcdef', 4)).toBe('abc…');
    expect(truncate('abc', 4)).toBe('abc');
  });
  it('localInputToRFC3339 converts or gives empty', () => {
    expect(localInputToRFC3339('')).toBe('');
    expect(localInputToRFC3339('not a date')).toBe('');
    expect(localInputToRFC3339('2026-11-27T10:00')).toMatch(/^2026-11-27T\d\d:00:00\.000Z$/);
  });
});

import { xRange } from './components/TimePlot';
describe('chart axis', () => {
  it('spans at least the window up to now', () => {
    expect(xRange(1000, 1000, 5000, 3600)).toEqual([1000, 5000]);
    expect(xRange(4900, 4950, 5000, 3600)).toEqual([1400, 5000]);
    expect(xRange(null, null, 5000, 3600)).toEqual([1400, 5000]);
  });
});

import { toLocalInput } from './format';
describe('toLocalInput', () => {
  it('round-trips through localInputToRFC3339', () => {
    const d = new Date('2026-11-27T16:05:00Z');
    expect(localInputToRFC3339(toLocalInput(d))).toBe('2026-11-27T16:05:00.000Z');
  });
});
