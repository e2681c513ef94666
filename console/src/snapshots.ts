// Snapshot comparisons as the console shows them: one line per node
// added, changed or removed, then settings and node packages (pure:
// snapshots.test.ts).

export interface DiffNode {
  id: string;
  type: string;
  name?: string;
  fields?: string[];
}

export interface Comparison {
  from: string;
  to: string;
  flows: { added: DiffNode[]; changed: DiffNode[]; removed: DiffNode[] };
  settings: { setting: string; from: string; to: string }[];
  nodes: { added: string[]; removed: string[]; changed: string[] };
  summary: string;
}

export interface DiffLine {
  mark: '+' | '~' | '-';
  text: string;
}

/** diffLines turns a comparison into readable lines, nodes by name and type. */
export function diffLines(c: Comparison): DiffLine[] {
  const node = (n: DiffNode) => `${n.name || '(unnamed)'} · ${n.type}`;
  const out: DiffLine[] = [];
  for (const n of c.flows.added) out.push({ mark: '+', text: node(n) });
  for (const n of c.flows.changed) out.push({ mark: '~', text: `${node(n)} (${(n.fields ?? []).join(', ')})` });
  for (const n of c.flows.removed) out.push({ mark: '-', text: node(n) });
  for (const s of c.settings) out.push({ mark: '~', text: `setting ${s.setting}: ${s.from || '—'} → ${s.to || '—'}` });
  for (const p of c.nodes.added) out.push({ mark: '+', text: `package ${p}` });
  for (const p of c.nodes.changed) out.push({ mark: '~', text: `package ${p}` });
  for (const p of c.nodes.removed) out.push({ mark: '-', text: `package ${p}` });
  return out;
}
