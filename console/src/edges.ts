// Edge sync state as the Edges page shows it: the backlog an edge reports
// in its heartbeat, per stream. Pure functions, tested by edges.test.ts.
import { fmtDuration } from './format';

/** StreamBacklog is what an edge reports of one outbox stream. */
export interface StreamBacklog {
  depth: number;
  bytes: number;
  oldest_unsynced_seconds: number;
  reported_at: string;
  /** records dropped under the edge's disk budget, ever (optional). */
  evicted?: number;
}

export interface BacklogRow extends StreamBacklog {
  stream: string;
}

/** backlogRows lists the streams of a backlog, the largest depth first (then by name). */
export function backlogRows(backlog: Record<string, StreamBacklog> | null | undefined): BacklogRow[] {
  return Object.entries(backlog ?? {})
    .filter(([, b]) => b && typeof b === 'object')
    .map(([stream, b]) => ({ stream, depth: num(b.depth), bytes: num(b.bytes), oldest_unsynced_seconds: num(b.oldest_unsynced_seconds), reported_at: b.reported_at, evicted: num(b.evicted) }))
    .sort((a, b) => b.depth - a.depth || a.stream.localeCompare(b.stream));
}

/** oldestUnsynced is the age in seconds of the oldest record not yet synced on any stream, or null with nothing pending. */
export function oldestUnsynced(backlog: Record<string, StreamBacklog> | null | undefined): number | null {
  const ages = backlogRows(backlog)
    .filter((r) => r.depth > 0)
    .map((r) => r.oldest_unsynced_seconds);
  return ages.length ? Math.max(...ages) : null;
}

/** fmtAge renders an age in seconds: "none" for null, else as fmtDuration. */
export function fmtAge(seconds: number | null): string {
  return seconds == null ? 'none' : fmtDuration(seconds * 1000);
}

/** configVersion renders an applied or desired config version, numeric or not. */
export function configVersion(v: string | number | null | undefined): string {
  if (v == null || v === '') return '—';
  return typeof v === 'number' || /^\d+$/.test(v) ? `v${v}` : v;
}

/** configBehind reports whether applied is known to lag desired (both numeric). */
export function configBehind(applied: string | number | null | undefined, desired: string | number | null | undefined): boolean {
  const a = Number(applied);
  const d = Number(desired);
  return applied != null && desired != null && applied !== '' && Number.isFinite(a) && Number.isFinite(d) && a < d;
}

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}
