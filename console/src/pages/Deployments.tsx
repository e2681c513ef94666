// Blue-green deployments: the form with its impact confirmation, the
// history table, and one deployment's live phase timeline with rollback.
import { useEffect, useState } from 'preact/hooks';
import { errorMessage, get, getPermissions, post } from '../api';
import { finished, flowsArray, phases, phaseStates, smokeResults, validateFlows } from '../deployments';
import { between, fmtAgo, fmtDuration, fmtTime, shortID } from '../format';
import { navigate, useLocation } from '../router';
import { can } from '../session';
import type { Deployment, FlowsVersion, HubEvent, Instance } from '../types';
import { versionLabel } from '../history';
import { useEvents } from '../ws';
import { Confirm, Empty, ErrorBox, LiveBadge, Link, Loading, StatusBadge, toast, useAsync } from '../components/ui';
import { AsyncTable } from '../components/AsyncTable';

function useInstances() {
  return useAsync((signal) => get<{ instances: Instance[] }>('/api/instances', signal).then((r) => r.instances ?? []), []);
}

export function DeploymentsPage() {
  const { query } = useLocation();
  const perms = getPermissions();
  const instances = useInstances();
  const list = useAsync((signal) => get<{ deployments: Deployment[] }>('/api/deployments', signal).then((r) => (r.deployments ?? []).sort((a, b) => Date.parse(b.started_at) - Date.parse(a.started_at))), []);
  const live = useEvents(['deployment.phase'], () => list.reload());
  const names = Object.fromEntries((instances.data ?? []).map((i) => [i.id, i.name]));
  return (
    <section>
      <div class="page-head">
        <h1>Deployments</h1>
        <LiveBadge state={live} />
      </div>
      {can(perms, 'deployments', 'create') && <DeployForm instances={instances.data ?? []} preselect={query.get('instance') || ''} />}
      <div class="card">
        <h2>History</h2>
        <AsyncTable
          state={list}
          what="deployments"
          empty="No deployments yet."
          testid="deployments-table"
          head={['Started', 'Instance', 'Status', 'Phase', 'Duration', 'By', 'Flows']}
          row={(d) => (
            <tr>
              <td>
                <Link href={`/deployments/${d.id}`}>{fmtTime(d.started_at)}</Link>
              </td>
              <td>{names[d.instance_id] || shortID(d.instance_id)}</td>
              <td>
                <StatusBadge status={d.status} />
              </td>
              <td>{d.phase || '—'}</td>
              <td>{fmtDuration(between(d.started_at, d.finished_at))}</td>
              <td>{d.started_by || '—'}</td>
              <td class="mono" data-testid="deployment-flows">
                {flowsPair(d)}
              </td>
            </tr>
          )}
        />
      </div>
    </section>
  );
}

/** flowsPair shows what a deployment went from and to: recorded version numbers when known, else the flows hashes. */
function flowsPair(d: Deployment): string {
  const from = d.from_version ? `v${d.from_version}` : shortID(d.from_flows_version);
  const to = d.to_version ? `v${d.to_version}` : shortID(d.to_flows_version);
  return `${from} → ${to}`;
}

function DeployForm({ instances, preselect }: { instances: Instance[]; preselect: string }) {
  const [instance, setInstance] = useState(preselect);
  const [source, setSource] = useState<'file' | 'version'>('file');
  const [versions, setVersions] = useState<FlowsVersion[] | null>(null);
  const [versionsError, setVersionsError] = useState('');
  const [picked, setPicked] = useState('');
  const [flows, setFlows] = useState('');
  const [drain, setDrain] = useState('30s');
  const [window, setWindow] = useState('10m');
  const [smokePath, setSmokePath] = useState('');
  const [error, setError] = useState('');
  const [confirming, setConfirming] = useState(false);
  useEffect(() => setInstance(preselect), [preselect]);
  const inst = instances.find((i) => i.id === instance);
  useEffect(() => {
    setVersions(null);
    setPicked('');
    setVersionsError('');
    if (!instance) return;
    const ac = new AbortController();
    get<{ versions: FlowsVersion[] | null }>(`/api/instances/${encodeURIComponent(instance)}/flows/versions?limit=100`, ac.signal)
      .then((r) => {
        const vs = (r.versions ?? []).sort((a, b) => b.version - a.version);
        setVersions(vs);
        setPicked(vs.length ? String(vs[0].version) : '');
      })
      .catch((e) => {
        if (!ac.signal.aborted) setVersionsError(errorMessage(e));
      });
    return () => ac.abort();
  }, [instance]);
  const pickedVersion = versions?.find((v) => String(v.version) === picked);

  const loadCurrent = async () => {
    if (!inst) return setError('pick an instance first');
    try {
      setFlows(JSON.stringify(await get(`/api/instances/${inst.id}/flows`), null, 2));
      setError('');
    } catch (e) {
      setError(errorMessage(e));
    }
  };
  const upload = async (e: Event) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (f) setFlows(await f.text());
  };
  const review = (e: Event) => {
    e.preventDefault();
    if (!inst) return setError('pick an instance');
    if (source === 'version') {
      if (!pickedVersion) return setError('pick a flows version');
    } else {
      const problem = validateFlows(flows);
      if (problem) return setError(problem);
    }
    setError('');
    setConfirming(true);
  };
  const start = async () => {
    try {
      const body: any = { instance: instance, drain_timeout: drain, rollback_window: window };
      if (source === 'version') body.flows_version = Number(picked);
      else body.flows = flowsArray(flows);
      if (smokePath.trim()) body.smoke = { http: { path: smokePath.trim() } };
      const d = await post<Deployment>('/api/deployments', body);
      toast('ok', `Deployment to ${inst?.name} started`);
      navigate(`/deployments/${d.id}`);
    } catch (e) {
      setError(errorMessage(e));
      toast('error', 'Deployment refused: ' + errorMessage(e));
    }
  };
  return (
    <form class="card form" onSubmit={review} aria-label="New deployment">
      <h2>New blue-green deployment</h2>
      <div class="form-row">
        <label class="field">
          Instance
          <select value={instance} onChange={(e) => setInstance((e.target as HTMLSelectElement).value)} data-testid="deploy-instance">
            <option value="">Choose…</option>
            {instances.map((i) => (
              <option value={i.id}>{i.name}</option>
            ))}
          </select>
        </label>
        <label class="field">
          Strategy
          <select disabled>
            <option>blue-green</option>
          </select>
        </label>
        <label class="field">
          Drain timeout
          <input value={drain} onInput={(e) => setDrain((e.target as HTMLInputElement).value)} placeholder="5m" />
        </label>
        <label class="field">
          Rollback window
          <input value={window} onInput={(e) => setWindow((e.target as HTMLInputElement).value)} placeholder="10m" />
        </label>
        <label class="field">
          Smoke HTTP path (optional)
          <input value={smokePath} onInput={(e) => setSmokePath((e.target as HTMLInputElement).value)} placeholder="/health" />
        </label>
      </div>
      <fieldset class="field-group" aria-label="Flows to deploy">
        <legend>Flows</legend>
        <label class="check">
          <input type="radio" name="flows-source" checked={source === 'file'} onChange={() => setSource('file')} data-testid="source-file" /> Upload or paste a flows file
        </label>
        <label class="check">
          <input type="radio" name="flows-source" checked={source === 'version'} onChange={() => setSource('version')} data-testid="source-version" /> Redeploy a recorded version
        </label>
      </fieldset>
      {source === 'version' ? (
        <label class="field">
          Flows version
          {!instance ? (
            <span class="muted small">Pick an instance to see its versions.</span>
          ) : versionsError ? (
            <ErrorBox error={versionsError} />
          ) : versions == null ? (
            <Loading what="Loading versions" />
          ) : versions.length === 0 ? (
            <span class="muted small">No flows have been deployed to {inst?.name ?? 'this instance'} yet.</span>
          ) : (
            <select value={picked} onChange={(e) => setPicked((e.target as HTMLSelectElement).value)} data-testid="deploy-version">
              {versions.map((v) => (
                <option value={String(v.version)}>{versionLabel(v, fmtTime)}</option>
              ))}
            </select>
          )}
        </label>
      ) : (
        <label class="field">
          Flows JSON
          <textarea rows={6} class="mono" value={flows} onInput={(e) => setFlows((e.target as HTMLTextAreaElement).value)} placeholder='[{"id":"tab1","type":"tab","label":"Flow 1"}]' data-testid="deploy-flows" />
        </label>
      )}
      <div class="actions">
        {source === 'file' && (
          <label class="btn">
            Upload file… <input type="file" accept=".json,application/json" class="visually-hidden" onChange={upload} data-testid="deploy-file" />
          </label>
        )}
        {source === 'file' && (
          <button type="button" class="btn" onClick={loadCurrent}>
            Start from the current flows
          </button>
        )}
        <div class="spacer" />
        <button type="submit" class="btn btn-primary" data-testid="deploy-review">
          Review and deploy…
        </button>
      </div>
      {error && (
        <p class="form-error" role="alert">
          {error}
        </p>
      )}
      {confirming && inst && (
        <Confirm title={`Deploy to ${inst.name}?`} action="Deploy" onConfirm={start} onClose={() => setConfirming(false)}>
          <ul>
            <li>
              <strong>DRAIN:</strong> new input messages to {inst.name} are held (up to {drain}) while in-flight work finishes; they are replayed in order on RESUME.
            </li>
            <li>
              <strong>DEPLOY / VERIFY:</strong> a green copy starts with{' '}
              {source === 'version' && pickedVersion ? `flows version v${pickedVersion.version} (deployed ${fmtTime(pickedVersion.time)} by ${pickedVersion.username || 'unknown'})` : `the new flows (${flowsArray(flows).length} nodes)`} and must pass smoke tests; any
              failure rolls back to blue with nothing lost.
            </li>
            <li>
              <strong>Rollback window:</strong> the old (blue) instance is kept for {window} so you can roll back.
            </li>
          </ul>
        </Confirm>
      )}
    </form>
  );
}

export function DeploymentPage({ id }: { id: string }) {
  const perms = getPermissions();
  const dep = useAsync((signal) => get<Deployment>(`/api/deployments/${encodeURIComponent(id)}`, signal), [id]);
  const [confirm, setConfirm] = useState(false);
  const live = useEvents(['deployment.phase', 'deployment.progress'], (e: HubEvent) => {
    if (e.data?.id !== id) return;
    if (e.type === 'deployment.phase') {
      if (e.data.status === 'succeeded') toast('ok', `Deployment ${shortID(id)} succeeded`);
      if (e.data.status === 'failed') toast('error', `Deployment ${shortID(id)} failed: ${e.data.message || ''}`);
      if (e.data.status === 'rolled_back') toast('ok', `Deployment ${shortID(id)} rolled back`);
    }
    dep.reload();
  }, dep.reload);
  const d = dep.data;
  if (dep.error && !d) return <ErrorBox error={dep.error} retry={dep.reload} />;
  if (!d) return <Loading what="Loading the deployment" />;
  const states = phaseStates(d);
  const smoke = smokeResults(d.smoke);
  const rollback = async () => {
    try {
      const r = await post<Deployment>(`/api/deployments/${d.id}/rollback`);
      toast('ok', r.status === 'rolled_back' ? 'Rolled back to the previous flows' : 'Rollback started');
      dep.reload();
    } catch (e) {
      toast('error', 'Rollback refused: ' + errorMessage(e));
    }
  };
  return (
    <section>
      <div class="page-head">
        <Link href="/deployments" class="back">
          ← Deployments
        </Link>
        <h1>Deployment {shortID(d.id)}</h1>
        <StatusBadge status={d.status} />
        <LiveBadge state={live} />
        <div class="spacer" />
        {can(perms, 'deployments', 'update') && d.status !== 'rolled_back' && d.status !== 'failed' && (
          <button class="btn btn-danger" onClick={() => setConfirm(true)} data-testid="rollback">
            Roll back
          </button>
        )}
      </div>
      <div class="card">
        <ol class="phases" data-testid="phases">
          {phases.map((p) => (
            <li class={'phase phase-' + states[p]} data-phase={p} data-state={states[p]}>
              <span class="phase-dot" aria-hidden="true" />
              {p}
            </li>
          ))}
        </ol>
        <div class="progress" role="progressbar" aria-valuenow={d.progress} aria-valuemin={0} aria-valuemax={100}>
          <span style={{ width: `${d.progress}%` }} />
        </div>
        <dl class="kv kv-wide">
          <dt>Instance</dt>
          <dd>
            <Link href={`/instances/${d.instance_id}`}>{d.instance || shortID(d.instance_id)}</Link>
          </dd>
          <dt>Held / in flight</dt>
          <dd data-testid="held">
            {d.held ?? 0} held · {d.in_flight ?? 0} in flight
          </dd>
          <dt>Blue → green</dt>
          <dd class="mono">
            {d.blue || '—'} → {d.green || '—'}
          </dd>
          <dt>Flows</dt>
          <dd class="mono" data-testid="deployment-versions">
            {d.from_version ? `v${d.from_version}` : d.from_flows_version || 'none'} → {d.to_version ? `v${d.to_version}` : d.to_flows_version || '—'}
            {d.to_version ? <span class="muted small"> ({d.from_flows_version || 'none'} → {d.to_flows_version || '—'})</span> : null}
          </dd>
          <dt>Started</dt>
          <dd>
            {fmtTime(d.started_at)} by {d.started_by || '—'} ({fmtAgo(d.started_at)})
          </dd>
          <dt>Duration</dt>
          <dd>{fmtDuration(between(d.started_at, d.finished_at))}{finished(d) ? '' : ' so far'}</dd>
        </dl>
        {d.error && <ErrorBox error={d.error} />}
      </div>
      <div class="two-col">
        <div class="card">
          <h2>Smoke tests</h2>
          {smoke.length === 0 ? (
            <Empty>No smoke test results yet.</Empty>
          ) : (
            <table class="table">
              <tbody>
                {smoke.map((r) => (
                  <tr>
                    <td>{r.name}</td>
                    <td>
                      <StatusBadge status={r.ok ? 'succeeded' : 'failed'} />
                    </td>
                    <td>{r.duration}</td>
                    <td>{r.message}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
        <div class="card">
          <h2>History</h2>
          <ol class="timeline-list">
            {(d.history ?? []).map((h) => (
              <li>
                <strong>{h.phase}</strong> <StatusBadge status={h.status} /> <span class="muted">{fmtTime(h.at)}</span> {h.message}
              </li>
            ))}
          </ol>
        </div>
      </div>
      {confirm && (
        <Confirm title="Roll back this deployment?" action="Roll back" danger onConfirm={rollback} onClose={() => setConfirm(false)}>
          <p>
            Traffic for {d.instance || 'the instance'} goes back to the blue instance and its previous flows ({d.from_flows_version || 'none'}). The green instance is stopped. Messages are held while
            the switch happens and then replayed.
          </p>
        </Confirm>
      )}
    </section>
  );
}
