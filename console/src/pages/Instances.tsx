// Instances (GET /api/instances): every instance as a card with its health,
// CPU and memory, live from /api/ws; filters, search, quick actions and a
// create form.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { errorMessage, get, getPermissions, post } from '../api';
import { applyEvent, isUp, cpuFraction, emptyFleet, filterInstances, memoryFraction, regionsOf, replaceAll, upsert, type FleetFilter, type FleetState } from '../fleet';
import { fmtAgo, fmtBytes, fmtPercent, parseEnv } from '../format';
import { navigate } from '../router';
import { can } from '../session';
import type { Instance, Metrics } from '../types';
import { useEvents } from '../ws';
import { Bar, Empty, ErrorBox, HealthBadge, LiveBadge, Link, Loading, toast } from '../components/ui';

export function InstancesPage() {
  const [fleet, setFleet] = useState<FleetState>(emptyFleet);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState('');
  const [filter, setFilter] = useState<FleetFilter>({ q: '', health: '', region: '' });
  const [creating, setCreating] = useState(false);
  const perms = getPermissions();

  const load = async () => {
    try {
      const res = await get<{ instances: Instance[] }>('/api/instances');
      setFleet((s) => replaceAll(s, res.instances ?? []));
      setError('');
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setLoading(false);
    }
  };
  useEffect(() => void load(), []);
  const live = useEvents(['instance.status', 'instance.metrics', 'instance.created', 'instance.deleted'], (e) => setFleet((s) => applyEvent(s, e)), load);
  useEffect(() => {
    if (fleet.stale) load();
  }, [fleet.stale]);

  const shown = useMemo(() => filterInstances(fleet.instances, filter), [fleet.instances, filter]);
  const regions = regionsOf(fleet.instances);
  const set = (k: keyof FleetFilter) => (e: Event) => setFilter({ ...filter, [k]: (e.target as HTMLInputElement).value });

  return (
    <section>
      <div class="page-head">
        <h1>Instances</h1>
        <LiveBadge state={live} />
        <div class="spacer" />
        {can(perms, 'instances', 'create') && (
          <button class="btn btn-primary" onClick={() => setCreating(!creating)} data-testid="new-instance">
            New instance
          </button>
        )}
      </div>
      {creating && (
        <CreateInstance
          onCreated={(inst) => {
            setFleet((s) => upsert(s, inst));
            setCreating(false);
          }}
          onCancel={() => setCreating(false)}
        />
      )}
      <div class="filters" role="search">
        <input type="search" placeholder="Search name, id or flows version" aria-label="Search instances" value={filter.q} onInput={set('q')} data-testid="fleet-search" />
        <select aria-label="Health" value={filter.health} onChange={set('health')}>
          <option value="">Any health</option>
          <option value="green">Healthy</option>
          <option value="yellow">Starting / degraded</option>
          <option value="red">Failed</option>
          <option value="grey">Stopped</option>
        </select>
        <select aria-label="Region" value={filter.region} onChange={set('region')}>
          <option value="">Any region</option>
          {regions.map((r) => (
            <option value={r}>{r}</option>
          ))}
        </select>
        <span class="count">
          {shown.length} of {fleet.instances.length}
        </span>
      </div>
      {error && <ErrorBox error={error} retry={load} />}
      {loading ? (
        <Loading what="Loading instances" />
      ) : fleet.instances.length === 0 && !error ? (
        <Empty>
          No instances yet.{' '}
          {can(perms, 'instances', 'create') ? 'Create one with “New instance”.' : 'An operator or admin can create one.'}
        </Empty>
      ) : shown.length === 0 ? (
        <Empty>No instance matches the filters.</Empty>
      ) : (
        <div class="grid">
          {shown.map((i) => (
            <InstanceCard key={i.id} inst={i} m={fleet.metrics[i.id]} />
          ))}
        </div>
      )}
    </section>
  );
}

function InstanceCard({ inst, m }: { inst: Instance; m?: Metrics }) {
  const perms = getPermissions();
  const running = isUp(inst);
  const act = async (what: 'start' | 'stop' | 'restart') => {
    try {
      await post(`/api/instances/${inst.id}/${what}`);
      toast('ok', `${inst.name}: ${what} requested`);
    } catch (e) {
      toast('error', `${inst.name}: ${errorMessage(e)}`);
    }
  };
  const mem = memoryFraction(m, inst);
  return (
    <article class="card instance-card" data-testid="instance-card" data-name={inst.name}>
      <div class="card-head">
        <Link href={`/instances/${inst.id}`} class="card-title">
          {inst.name}
        </Link>
        <HealthBadge status={inst.observed?.status} />
      </div>
      <dl class="kv">
        <dt>Region</dt>
        <dd>{inst.region || '—'}</dd>
        <dt>Flows</dt>
        <dd class="mono">{inst.flows_version ? inst.flows_version.slice(0, 12) : 'none deployed'}</dd>
        <dt>Since</dt>
        <dd>{fmtAgo(inst.observed?.since)}</dd>
      </dl>
      <Bar label="CPU" fraction={cpuFraction(m, inst)} text={m ? fmtPercent(m.cpu_percent) : '—'} />
      <Bar label="Mem" fraction={mem} text={m ? fmtBytes(m.memory_bytes) : '—'} />
      {inst.observed?.message && inst.observed.status !== 'running' && <p class="card-msg">{inst.observed.message}</p>}
      {can(perms, 'instances', 'update') && (
        <div class="actions">
          {running ? (
            <button class="btn btn-small" onClick={() => act('stop')}>
              Stop
            </button>
          ) : (
            <button class="btn btn-small" onClick={() => act('start')}>
              Start
            </button>
          )}
          {running && (
            <button class="btn btn-small" onClick={() => act('restart')}>
              Restart
            </button>
          )}
          {can(perms, 'deployments', 'create') && (
            <button class="btn btn-small" onClick={() => navigate(`/deployments?instance=${inst.id}`)}>
              Deploy
            </button>
          )}
        </div>
      )}
    </article>
  );
}

function CreateInstance({ onCreated, onCancel }: { onCreated: (i: Instance) => void; onCancel: () => void }) {
  const [name, setName] = useState('');
  const [memory, setMemory] = useState('512');
  const [cpu, setCpu] = useState('');
  const [region, setRegion] = useState('');
  const [env, setEnv] = useState('');
  const [start, setStart] = useState(true);
  const [error, setError] = useState<{ message: string; field?: string }>();
  const [busy, setBusy] = useState(false);
  const first = useRef<HTMLInputElement>(null);
  useEffect(() => first.current?.focus(), []);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    const body: any = { name: name.trim(), resources: { memory_mb: Number(memory) }, desired_state: start ? 'running' : 'stopped' };
    if (cpu) body.resources.cpu = Number(cpu);
    if (region.trim()) body.region = region.trim();
    const vars = parseEnv(env);
    if (typeof vars === 'string') {
      setError({ message: vars, field: 'env' });
      setBusy(false);
      return;
    }
    if (Object.keys(vars).length) body.env = vars;
    try {
      const inst = await post<Instance>('/api/instances', body);
      toast('ok', `Instance ${inst.name} created`);
      onCreated(inst);
    } catch (err: any) {
      setError({ message: errorMessage(err), field: err?.field });
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card form" onSubmit={submit} aria-label="New instance" data-testid="create-form">
      <h2>New instance</h2>
      <div class="form-row">
        <label class="field">
          Name
          <input ref={first} name="name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} placeholder="orders-agent" required aria-invalid={error?.field === 'name'} />
        </label>
        <label class="field">
          Memory (MB)
          <input name="memory" type="number" min={128} max={65536} value={memory} onInput={(e) => setMemory((e.target as HTMLInputElement).value)} />
        </label>
        <label class="field">
          CPU cores
          <input name="cpu" type="number" step="0.25" min={0} value={cpu} onInput={(e) => setCpu((e.target as HTMLInputElement).value)} placeholder="no limit" />
        </label>
        <label class="field">
          Region
          <input name="region" value={region} onInput={(e) => setRegion((e.target as HTMLInputElement).value)} placeholder="this hub's" />
        </label>
      </div>
      <label class="field">
        Environment (one NAME=value a line)
        <textarea name="env" rows={2} value={env} onInput={(e) => setEnv((e.target as HTMLTextAreaElement).value)} />
      </label>
      <label class="check">
        <input type="checkbox" checked={start} onChange={(e) => setStart((e.target as HTMLInputElement).checked)} /> Start it now
      </label>
      {error && (
        <p class="form-error" role="alert">
          {error.message}
        </p>
      )}
      <div class="actions">
        <button class="btn btn-primary" type="submit" disabled={busy} data-testid="create-submit">
          {busy ? 'Creating…' : 'Create'}
        </button>
        <button class="btn" type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
