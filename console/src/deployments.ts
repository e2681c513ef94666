// Deployment state helpers, tested by deployments.test.ts.
import type { Deployment } from './types';

export const phases = ['DRAIN', 'DEPLOY', 'VERIFY', 'RESUME', 'AUDIT', 'CLEANUP'] as const;

export type PhaseState = 'done' | 'current' | 'failed' | 'todo';

/** phaseStates says, per phase, whether the deployment has passed it, is in it, failed in it or not reached it. */
export function phaseStates(d: Pick<Deployment, 'phase' | 'status'>): Record<string, PhaseState> {
  const at = phases.indexOf((d.phase || '') as (typeof phases)[number]);
  const out: Record<string, PhaseState> = {};
  phases.forEach((p, i) => {
    if (at < 0) out[p] = 'todo';
    else if (i < at) out[p] = 'done';
    else if (i > at) out[p] = 'todo';
    else if (d.status === 'failed' || d.status === 'rolled_back') out[p] = 'failed';
    else if (d.status === 'succeeded') out[p] = 'done';
    else out[p] = 'current';
  });
  return out;
}

/** finished reports whether the deployment has ended. */
export function finished(d: Pick<Deployment, 'status'>): boolean {
  return d.status === 'succeeded' || d.status === 'failed' || d.status === 'rolled_back';
}

export interface SmokeResult {
  name: string;
  ok: boolean;
  message?: string;
  duration?: string;
}

/** smokeResults reads the deployment's smoke field, whatever shape hub/deploy wrote. */
export function smokeResults(smoke: unknown): SmokeResult[] {
  const list = Array.isArray(smoke) ? smoke : smoke && typeof smoke === 'object' && Array.isArray((smoke as any).results) ? (smoke as any).results : [];
  return list.filter((r: any) => r && typeof r.name === 'string').map((r: any) => ({ name: r.name, ok: !!r.ok, message: r.message, duration: r.duration }));
}

/** validateFlows checks the text is a JSON array of objects (what Node-RED's /flows takes), or returns the problem. */
export function validateFlows(text: string): string {
  if (!text.trim()) return 'paste or upload a flows JSON document';
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return 'not valid JSON: ' + (e as Error).message;
  }
  if (v && typeof v === 'object' && !Array.isArray(v) && Array.isArray((v as any).flows)) v = (v as any).flows;
  if (!Array.isArray(v)) return 'flows must be a JSON array of nodes';
  if (v.some((n) => !n || typeof n !== 'object' || Array.isArray(n))) return 'every element of the flows array must be an object';
  return '';
}

/** flowsArray returns the flows array of a document (a bare array or {flows: [...]}). */
export function flowsArray(text: string): unknown[] {
  const v = JSON.parse(text);
  return Array.isArray(v) ? v : v.flows;
}
