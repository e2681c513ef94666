import { describe, expect, it } from 'vitest';
import { finished, flowsArray, phaseStates, smokeResults, validateFlows } from './deployments';
import { auditQuery, detailsText, emptyAuditFilter } from './audit';

describe('deployments', () => {
  it('marks phases done, current, failed or to do', () => {
    expect(phaseStates({ phase: 'VERIFY', status: 'running' })).toEqual({ DRAIN: 'done', DEPLOY: 'done', VERIFY: 'current', RESUME: 'todo', AUDIT: 'todo', CLEANUP: 'todo' });
    expect(phaseStates({ phase: 'DEPLOY', status: 'failed' }).DEPLOY).toBe('failed');
    expect(Object.values(phaseStates({ phase: 'CLEANUP', status: 'succeeded' }))).toEqual(Array(6).fill('done'));
    expect(Object.values(phaseStates({ phase: '', status: 'pending' }))).toEqual(Array(6).fill('todo'));
    expect(finished({ status: 'rolled_back' })).toBe(true);
    expect(finished({ status: 'running' })).toBe(false);
  });
  it('reads smoke results', () => {
    expect(smokeResults([{ name: 'health', ok: true, duration: '5ms' }, { bad: 1 }])).toEqual([{ name: 'health', ok: true, duration: '5ms', message: undefined }]);
    expect(smokeResults(null)).toEqual([]);
  });
  it('validates a flows document', () => {
    expect(validateFlows('')).toMatch(/paste or upload/);
    expect(validateFlows('{')).toMatch(/not valid JSON/);
    expect(validateFlows('{"a":1}')).toMatch(/array/);
    expect(validateFlows('[1]')).toMatch(/object/);
    expect(validateFlows('[{"id":"t","type":"tab"}]')).toBe('');
    expect(validateFlows('{"flows":[{"id":"t"}],"rev":"x"}')).toBe('');
    expect(flowsArray('{"flows":[{"id":"t"}],"rev":"x"}')).toEqual([{ id: 't' }]);
  });
});

describe('audit', () => {
  it('builds the query only from set filters', () => {
    expect(auditQuery(emptyAuditFilter, { limit: 50, offset: 0 })).toBe('limit=50&offset=0');
    const q = new URLSearchParams(auditQuery({ ...emptyAuditFilter, user_id: ' u1 ', action: 'LOGIN_FAILED', start: '2026-11-27T10:00' }, { format: 'csv' }));
    expect(q.get('user_id')).toBe('u1');
    expect(q.get('action')).toBe('LOGIN_FAILED');
    expect(q.get('start_date')).toMatch(/^2026-11-27T/);
    expect(q.get('end_date')).toBeNull();
    expect(q.get('format')).toBe('csv');
  });
  it('renders details compactly', () => {
    expect(detailsText({ name: 'x', resources: { memory_mb: 512 } })).toBe('name=x resources={"memory_mb":512}');
    expect(detailsText(null)).toBe('');
  });
});
