// Formatting for the console's tables and cards. Pure functions: tested by
// format.test.ts.

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** fmtBytes renders a byte count with a binary unit: 1536 → "1.5 KiB". */
export function fmtBytes(n: number | undefined | null): string {
  if (n == null || !Number.isFinite(n) || n < 0) return '—';
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n < 10 ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

/** fmtPercent renders 12.345 as "12.3%". */
export function fmtPercent(n: number | undefined | null): string {
  if (n == null || !Number.isFinite(n)) return '—';
  return `${n < 10 ? n.toFixed(1) : Math.round(n)}%`;
}

/** fmtDuration renders milliseconds as "850 ms", "12 s", "3 m 4 s", "2 h 5 m". */
export function fmtDuration(ms: number | undefined | null): string {
  if (ms == null || !Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} m`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** isZeroTime reports an absent time: empty, unparsable or Go's zero time. */
export function isZeroTime(t: string | undefined | null): boolean {
  if (!t) return true;
  const ms = Date.parse(t);
  return !Number.isFinite(ms) || ms <= Date.parse('0001-01-02T00:00:00Z');
}

/** fmtAgo renders a time relative to now: "just now", "5 s ago", "3 m ago", "in 2 m". */
export function fmtAgo(t: string | undefined | null, now: number = Date.now()): string {
  if (isZeroTime(t)) return 'never';
  const d = now - Date.parse(t!);
  const abs = Math.abs(d);
  if (abs < 2000) return 'just now';
  const s = fmtDuration(abs).replace(/ \d+ (s|m)$/, '');
  return d >= 0 ? `${s} ago` : `in ${s}`;
}

/** fmtTime renders an RFC 3339 time as "2026-11-27 16:10:05" in local time. */
export function fmtTime(t: string | undefined | null): string {
  if (isZeroTime(t)) return '—';
  const d = new Date(t!);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** between returns the duration from a to b (or now when b is absent), in ms. */
export function between(a: string | undefined, b?: string, now: number = Date.now()): number | undefined {
  if (isZeroTime(a)) return undefined;
  const end = isZeroTime(b) ? now : Date.parse(b!);
  return end - Date.parse(a!);
}

/** shortID shortens a UUID to its first 8 characters. */
export function shortID(id: string | undefined): string {
  return id ? id.slice(0, 8) : '—';
}

/** truncate cuts s to n characters with an ellipsis. */
export function truncate(s: string | undefined, n: number): string {
  if (!s) return '';
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

const secretName = /(SECRET|TOKEN|PASSW|PASSWD|KEY|CREDENTIAL|PRIVATE|AUTH)/i;

/** maskEnv returns the value to show for an environment variable: secrets masked. */
export function maskEnv(name: string, value: string): string {
  return secretName.test(name) ? '••••••••' : value;
}

/** localInputToRFC3339 turns a datetime-local input value into RFC 3339 UTC, or "" when empty/invalid. */
export function localInputToRFC3339(v: string): string {
  if (!v) return '';
  const d = new Date(v);
  return Number.isFinite(d.getTime()) ? d.toISOString() : '';
}

/** parseEnv reads NAME=value lines, or returns a message naming the bad line. */
export function parseEnv(text: string): Record<string, string> | string {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n].trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) return `line ${n + 1}: write NAME=value`;
    out[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  return out;
}

/** toLocalInput renders a time as a datetime-local input value (local time, minutes). */
export function toLocalInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
