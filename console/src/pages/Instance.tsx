// One instance: metadata, the health history chart and CPU and memory
// charts from the stored transitions and samples (extended live), logs
// (tail and follow) and actions.
import { useEffect, useRef, useState } from 'preact/hooks';
import { errorMessage, del, get, getPermissions, post, request } from '../api';
import { fmtAgo, fmtBytes, fmtPercent, fmtTime, maskEnv } from '../format';
import { navigate } from '../router';
import { can } from '../session';
import type { HubEvent, Instance, Transition } from '../types';
import { useEvents } from '../ws';
import { Chart } from '../components/Chart';
import { StatusChart } from '../components/StatusChart';
import { fromStatusEvent, mergeTransitions } from '../history';
import { isUp } from '../fleet';
import { applyStatusEvent } from '../replicas';
import { Replicas } from '../components/Replicas';
import { Confirm, Empty, ErrorBox, HealthBadge, LiveBadge, Link, Loading, toast, useAsync } from '../components/ui';
import { EditorButton } from '../components/EditorButton';
import { NodesPanel } from '../components/NodesPanel';
import { SnapshotsPanel } from '../components/SnapshotsPanel';

interface Sample {
  time: string;
  name: string;
  value: number;
}

export function InstancePage({ id }: { id: string }) {
  const inst = useAsync((signal) => get<Instance>(`/api/instances/${encodeURIComponent(id)}`, signal), [id]);
  const [cpu, setCpu] = useState<number[][]>([[], []]);
  const [mem, setMem] = useState<number[][]>([[], []]);
  const [history, setHistory] = useState<Transition[]>([]);
  const [historyError, setHistoryError] = useState('');
  const [confirm, setConfirm] = useState(false);
  const perms = getPermissions();
  const current = inst.data;

  const loadSamples = async () => {
    if (!current) return;
    const start = new Date(Date.now() - 3600_000).toISOString();
    const q = (name: string) => get<{ samples: Sample[] | null }>(`/api/instances/${current.id}/metrics?name=${name}&start=${start}&limit=2000`);
    try {
      const [c, m] = await Promise.all([q('cpu_percent'), q('memory_bytes')]);
      setCpu(series(c.samples ?? []));
      setMem(series(m.samples ?? []));
    } catch (e) {
      toast('error', 'Metrics: ' + errorMessage(e));
    }
  };
  const loadHistory = async () => {
    if (!current) return;
    const since = new Date(Date.now() - 24 * 3600_000).toISOString();
    try {
      const r = await get<{ transitions: Transition[] | null }>(`/api/instances/${current.id}/history?since=${since}&limit=1000`);
      setHistory((h) => mergeTransitions(h, r.transitions ?? []));
      setHistoryError('');
    } catch (e) {
      setHistoryError(errorMessage(e));
    }
  };
  useEffect(() => {
    setHistory([]);
    loadSamples();
    loadHistory();
  }, [current?.id]);

  const live = useEvents(['instance.status', 'instance.metrics', 'instance.placement'], (e: HubEvent) => {
    if (!current) return;
    if (e.type === 'instance.placement') {
      if (e.data?.instance === current.id || e.data?.instance === current.live_row) inst.reload();
      return;
    }
    if (e.type === 'instance.status') {
      setHistory((h) => {
        const t = fromStatusEvent(current, h, e);
        return t ? mergeTransitions(h, [t]) : h;
      });
    }
    if (e.data?.instance_id !== current.id && e.data?.instance_id !== current.live_row) return;
    if (e.type === 'instance.status') {
      if (e.data.allocation && !(current.allocations ?? []).some((a) => a.id === e.data.allocation)) {
        inst.reload(); // a replica placed since the page loaded
        return;
      }
      inst.set(applyStatusEvent(current, e));
    } else {
      const t = Date.parse(e.data.at || e.time) / 1000;
      setCpu((d) => append(d, t, e.data.cpu_percent));
      setMem((d) => append(d, t, e.data.memory_bytes));
    }
  }, loadHistory);

  if (inst.loading && !current) return <Loading what="Loading the instance" />;
  if (inst.error) return <ErrorBox error={inst.error} retry={inst.reload} />;
  if (!current) return null;

  const act = async (what: 'start' | 'stop' | 'restart') => {
    try {
      const updated = await post<Instance>(`/api/instances/${current.id}/${what}`);
      inst.set(updated);
      toast('ok', `${current.name}: ${what} requested`);
    } catch (e) {
      toast('error', `${current.name}: ${errorMessage(e)}`);
    }
  };
  const destroy = async () => {
    try {
      await del(`/api/instances/${current.id}`);
      toast('ok', `${current.name} destroyed`);
      navigate('/instances');
    } catch (e) {
      toast('error', errorMessage(e));
    }
  };
  const running = isUp(current);
  const env = Object.entries(current.env ?? {});
  const secrets = current.secret_env_keys ?? [];

  return (
    <section>
      <div class="page-head">
        <Link href="/instances" class="back">
          ← Instances
        </Link>
        <h1>{current.name}</h1>
        <HealthBadge status={current.observed?.status} />
        <LiveBadge state={live} />
        <div class="spacer" />
        <EditorButton inst={current} />
        {can(perms, 'instances', 'update') && (
          <div class="actions">
            {running ? (
              <button class="btn" onClick={() => act('stop')}>
                Stop
              </button>
            ) : (
              <button class="btn" onClick={() => act('start')}>
                Start
              </button>
            )}
            {running && (
              <button class="btn" onClick={() => act('restart')}>
                Restart
              </button>
            )}
            {can(perms, 'deployments', 'create') && (
              <button class="btn" onClick={() => navigate(`/deployments?instance=${current.id}`)}>
                Redeploy
              </button>
            )}
          </div>
        )}
        {can(perms, 'instances', 'delete') && (
          <button class="btn btn-danger" onClick={() => setConfirm(true)} data-testid="destroy">
            Destroy
          </button>
        )}
      </div>
      {current.observed?.message && <p class="notice">{current.observed.message}</p>}
      <Replicas inst={current} canScale={can(perms, 'instances', 'update')} onChange={inst.set} />
      <div class="two-col">
        <div class="card">
          <h2>Details</h2>
          <dl class="kv kv-wide">
            <dt>ID</dt>
            <dd class="mono">{current.id}</dd>
            <dt>Status</dt>
            <dd>
              {current.observed?.status || 'pending'} since {fmtAgo(current.observed?.since)} (desired: {current.desired_state})
            </dd>
            <dt>Region</dt>
            <dd>
              {current.region || '—'} ({current.placement || 'pinned'})
            </dd>
            <dt>Runtime</dt>
            <dd>{current.driver || '—'}</dd>
            <dt>Image / version</dt>
            <dd>{[current.image, current.node_red_version].filter(Boolean).join(' · ') || 'default Node-RED'}</dd>
            <dt>Resources</dt>
            <dd>
              {current.resources?.cpu ? `${current.resources.cpu} CPU` : 'no CPU limit'} · {current.resources?.memory_mb ?? '—'} MB
            </dd>
            <dt>Flows version</dt>
            <dd class="mono">{current.flows_version || 'none deployed'}</dd>
            <dt>Created</dt>
            <dd>{fmtTime(current.created_at)}</dd>
          </dl>
          <h3>Environment</h3>
          {env.length === 0 && secrets.length === 0 ? (
            <p class="muted">No environment variables.</p>
          ) : (
            <table class="table">
              <tbody>
                {env.map(([k, v]) => (
                  <tr>
                    <td class="mono">{k}</td>
                    <td class="mono" title={current.env_masked ? 'hidden: only operators and admins see env values' : undefined}>
                      {current.env_masked ? '••••••••' : maskEnv(k, v)}
                    </td>
                  </tr>
                ))}
                {secrets.map((k) => (
                  <tr>
                    <td class="mono">{k}</td>
                    <td class="muted" title="a secret: its value is never shown, only replaced">secret (write-only)</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
        <div class="card">
          <h2>Health history</h2>
          {historyError ? (
            <ErrorBox error={historyError} retry={loadHistory} />
          ) : history.length === 0 ? (
            <Empty>No status changes recorded in the last 24 hours.</Empty>
          ) : (
            <StatusChart transitions={history} />
          )}
          <ol class="timeline-list" data-testid="status-history">
            {history.slice(0, 20).map((h) => (
              <li>
                <HealthBadge status={h.status} /> <span class="muted">{fmtTime(h.time)}</span>
                {h.row_id !== current.id && <span class="mono small"> {h.row_name}</span>}
                {h.prev_status && <span class="muted small"> (was {h.prev_status.replace(/_/g, ' ')})</span>}
                {h.message && <span> — {h.message}</span>}
              </li>
            ))}
          </ol>
          <p class="muted small">Every status change the fleet recorded in the last 24 hours; new ones arrive live.</p>
        </div>
      </div>
      <div class="two-col">
        <div class="card">
          {cpu[0].length === 0 ? <Empty>No CPU samples in the last hour yet.</Empty> : <Chart title="CPU (last hour)" series={[{ label: 'CPU', colour: '#4aa3ff', format: (v) => fmtPercent(v) }]} data={cpu} />}
        </div>
        <div class="card">
          {mem[0].length === 0 ? <Empty>No memory samples in the last hour yet.</Empty> : <Chart title="Memory (last hour)" series={[{ label: 'Memory', colour: '#b48cff', format: (v) => fmtBytes(v) }]} data={mem} />}
        </div>
      </div>
      <div class="two-col">
        <NodesPanel inst={current} />
        <SnapshotsPanel inst={current} />
      </div>
      <Logs inst={current} />
      {confirm && (
        <Confirm title={`Destroy ${current.name}?`} action="Destroy" danger confirmText={current.name} onConfirm={destroy} onClose={() => setConfirm(false)}>
          <p>This stops the instance and removes it and its runtime. Its flows and context are lost unless deployed elsewhere. This cannot be undone.</p>
        </Confirm>
      )}
    </section>
  );
}

function series(samples: Sample[]): number[][] {
  const sorted = samples.slice().sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
  return [sorted.map((s) => Date.parse(s.time) / 1000), sorted.map((s) => s.value)];
}

function append(d: number[][], t: number, v: number): number[][] {
  if (d[0].length && t <= d[0][d[0].length - 1]) return d;
  return [[...d[0], t].slice(-2000), [...d[1], v].slice(-2000)];
}

function Logs({ inst }: { inst: Instance }) {
  const [text, setText] = useState('');
  const [error, setError] = useState('');
  const [follow, setFollow] = useState(false);
  const pre = useRef<HTMLPreElement>(null);
  const hasRuntime = !!inst.observed?.runtime_id;
  useEffect(() => {
    const ac = new AbortController();
    setError('');
    if (!hasRuntime) {
      setText('');
      return;
    }
    (async () => {
      try {
        const res = await request<Response>('GET', `/api/instances/${inst.id}/logs?tail=200${follow ? '&follow=1' : ''}`, { raw: true, signal: ac.signal });
        if (!follow) {
          setText(await res.text());
          return;
        }
        setText('');
        const reader = res.body!.getReader();
        const dec = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const chunk = dec.decode(value, { stream: true });
          setText((t) => (t + chunk).slice(-200_000));
        }
      } catch (e) {
        if (!ac.signal.aborted) setError(errorMessage(e));
      }
    })();
    return () => ac.abort();
  }, [inst.id, follow, inst.observed?.runtime_id]);
  useEffect(() => {
    if (pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [text]);
  return (
    <div class="card">
      <div class="card-head">
        <h2>Logs</h2>
        <label class="check">
          <input type="checkbox" checked={follow} onChange={(e) => setFollow((e.target as HTMLInputElement).checked)} data-testid="follow" /> Follow
        </label>
      </div>
      {error ? <ErrorBox error={error} /> : <pre class="logs" ref={pre} tabIndex={0} aria-label="Recent logs">{text || (hasRuntime ? 'No log output yet.' : 'The instance is not running: no logs.')}</pre>}
      <p class="muted small">Last 200 lines; “Follow” streams new output.</p>
    </div>
  );
}
