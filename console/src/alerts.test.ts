import { describe, expect, it } from 'vitest';
import { deliverySummary, emptyRule, fmtFor, labelText, ruleBody } from './alerts';

describe('alerts', () => {
  it('builds the rule body from the form', () => {
    const f = { ...emptyRule(), name: ' down ', matchLabel: 'name', matchValue: 'agents', channels: [{ type: 'email', target: 'a@example.com, b@example.com' }, { type: 'slack', target: ' https://hooks.example.com/x ' }] };
    expect(ruleBody(f)).toEqual({
      name: 'down', metric: 'nodered_instance_up', condition: '<', threshold: 1, for: '0s', severity: 'critical',
      match: { name: 'agents' },
      channels: [{ type: 'email', to: ['a@example.com', 'b@example.com'] }, { type: 'slack', url: 'https://hooks.example.com/x' }],
    });
    expect(ruleBody({ ...emptyRule(), threshold: '' }).threshold).toBeNull();
  });
  it('formats durations, deliveries and labels', () => {
    expect(fmtFor(0)).toBe('0s');
    expect(fmtFor(90e9)).toBe('1m30s');
    expect(fmtFor(3600e9)).toBe('1h');
    expect(deliverySummary([{ event: 'firing', status: 'sent', attempts: 1, channel: { type: 'webhook' } }, { event: 'firing', status: 'retrying', attempts: 2, channel: { type: 'slack' } }])).toBe('1 sent, 1 retrying');
    expect(deliverySummary([])).toBe('none');
    expect(labelText({ alertname: 'x', severity: 'critical', rule_id: 'r', name: 'agents', instance_id: 'i-1', color: '' })).toBe('instance_id=i-1 name=agents');
  });
});
