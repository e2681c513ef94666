// AI decisions (GET /api/audit/ai_decisions): what the instances' models
// decided, filtered by instance, model and time, with paging.
import { useState } from 'preact/hooks';
import { get } from '../../api';
import { fmtTime, localInputToRFC3339, shortID, truncate } from '../../format';
import type { Instance } from '../../types';
import { useAsync } from '../../components/ui';
import { AsyncTable } from '../../components/AsyncTable';
import { Pager, pageSize } from './Pager';

interface AIDecision {
  id: number;
  time: string;
  instance_id: string;
  edge_id?: string;
  flow_name: string;
  model: string;
  prompt: string;
  response: string;
  confidence: number;
  tokens_used: number;
  latency_ms: number;
}

export function AIDecisionsPage() {
  const [draft, setDraft] = useState({ instance_id: '', model: '', start: '', end: '' });
  const [filter, setFilter] = useState(draft);
  const [offset, setOffset] = useState(0);
  const instances = useAsync((signal) => get<{ instances: Instance[] }>('/api/instances', signal).then((r) => r.instances ?? []), []);
  const names = Object.fromEntries((instances.data ?? []).map((i) => [i.id, i.name]));
  const list = useAsync(
    (signal) => {
      const q = new URLSearchParams({ limit: String(pageSize), offset: String(offset) });
      if (filter.instance_id) q.set('instance_id', filter.instance_id);
      if (filter.model.trim()) q.set('model', filter.model.trim());
      const s = localInputToRFC3339(filter.start);
      const e = localInputToRFC3339(filter.end);
      if (s) q.set('start_date', s);
      if (e) q.set('end_date', e);
      return get<{ decisions: AIDecision[] }>('/api/audit/ai_decisions?' + q, signal).then((r) => r.decisions ?? []);
    },
    [filter, offset],
  );
  const set = (k: keyof typeof draft) => (e: Event) => setDraft({ ...draft, [k]: (e.target as HTMLInputElement).value });
  return (
    <div class="card">
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setOffset(0);
          setFilter(draft);
        }}
      >
        <select aria-label="Instance" value={draft.instance_id} onChange={set('instance_id')}>
          <option value="">Any instance</option>
          {(instances.data ?? []).map((i) => (
            <option value={i.id}>{i.name}</option>
          ))}
        </select>
        <input aria-label="Model" placeholder="Model" value={draft.model} onInput={set('model')} />
        <label class="inline">
          From <input type="datetime-local" value={draft.start} onInput={set('start')} aria-label="From" />
        </label>
        <label class="inline">
          To <input type="datetime-local" value={draft.end} onInput={set('end')} aria-label="To" />
        </label>
        <button class="btn btn-primary" type="submit">
          Apply
        </button>
      </form>
      <AsyncTable
        state={list}
        what="AI decisions"
        empty={`No AI decisions recorded${filter.instance_id || filter.model ? ' for these filters' : ''}. Instances record them with POST /api/audit/ai_decision.`}
        head={['Time', 'Instance', 'Flow', 'Model', 'Confidence', 'Tokens', 'Latency', 'Prompt → response']}
        row={(d) => (
          <tr>
            <td class="nowrap">{fmtTime(d.time)}</td>
            <td>{names[d.instance_id] || shortID(d.instance_id) || (d.edge_id ? 'edge ' + shortID(d.edge_id) : '—')}</td>
            <td>{d.flow_name}</td>
            <td class="mono">{d.model}</td>
            <td>{d.confidence ? d.confidence.toFixed(2) : '—'}</td>
            <td>{d.tokens_used}</td>
            <td>{d.latency_ms} ms</td>
            <td class="details" title={d.prompt + '\n→ ' + d.response}>
              {truncate(d.prompt, 40)} → {truncate(d.response, 40)}
            </td>
          </tr>
        )}
      />
      <Pager offset={offset} shown={list.data?.length ?? 0} setOffset={setOffset} />
    </div>
  );
}
