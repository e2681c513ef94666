import { describe, expect, it } from 'vitest';
import { costByWorkflow, fmtMS, fmtUSD, recLabel, splitList } from './models';

describe('models helpers', () => {
  it('formats money for sub-cent costs', () => {
    expect(fmtUSD(0)).toBe('$0');
    expect(fmtUSD(1.5)).toBe('$1.50');
    expect(fmtUSD(0.0375)).toBe('$0.0375');
    expect(fmtUSD(0.000123)).toBe('$0.00012');
    expect(fmtUSD(undefined)).toBe('—');
  });
  it('formats latency', () => {
    expect(fmtMS(0)).toBe('—');
    expect(fmtMS(3.14159)).toBe('3.1 ms');
    expect(fmtMS(250.4)).toBe('250 ms');
  });
  it('labels recommendations', () => {
    expect(recLabel('best_within_sla')).toBe('Best within SLA');
    expect(recLabel('other_kind')).toBe('other kind');
  });
  it('sums cost per workflow by model, most expensive first', () => {
    const row = (flow: string, model: string, cost: number, instance = 'i1') => ({
      instance_id: instance, flow, model, calls: 1, failed: 0, input_tokens: 10, output_tokens: 5, cost_usd: cost, fallbacks: 0,
    });
    const got = costByWorkflow([row('triage', 'llama:v1', 0), row('triage', 'gpt:v1', 0.02), row('summary', 'gpt:v1', 0.5), row('triage', 'gpt:v1', 0.01, 'i2')]);
    expect(got.map((f) => f.flow)).toEqual(['summary', 'triage']);
    expect(got[1].total).toBeCloseTo(0.03);
    expect(got[1].byModel.map((m) => [m.model, m.calls])).toEqual([['gpt:v1', 2], ['llama:v1', 1]]);
  });
  it('splits lists', () => {
    expect(splitList(' a, b,,c ')).toEqual(['a', 'b', 'c']);
  });
});
