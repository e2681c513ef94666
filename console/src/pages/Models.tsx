// Models: the model registry with live figures, providers (keys are
// write-only), named LLM routes and their policies, daily budgets, the
// benchmark launcher and results (recommendations and charts), and cost
// per workflow by model. Refreshed every 5 s.
import { useEffect, useState } from 'preact/hooks';
import { errorMessage, get, getPermissions, post, request } from '../api';
import { fmtAgo, fmtPercent } from '../format';
import { costByWorkflow, fmtMS, fmtUSD, recLabel, splitList, type UsageRow } from '../models';
import { can } from '../session';
import { Bars } from '../components/Bars';
import { Empty, ErrorBox, Loading, StatusBadge, toast, useAsync } from '../components/ui';

interface Figures {
  calls: number;
  errors: number;
  error_rate: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
}

interface Model {
  id: string;
  name: string;
  version: string;
  provider: string;
  provider_kind: string;
  upstream: string;
  kind: string;
  context_length: number;
  input_price: number;
  output_price: number;
  status: string;
  current?: boolean;
  previous?: string;
  quality?: number;
  figures: Figures;
  by_hub: Record<string, Figures>;
}

interface Provider {
  id: string;
  kind: string;
  base_url: string;
  has_api_key: boolean;
  models: number;
}

interface Route {
  name: string;
  policy: string;
  candidates: string[];
  max_p95_ms?: number;
  min_quality?: number;
  window_ms?: number;
  attempt_timeout_ms?: number;
  deadline_ms?: number;
}

interface Budget {
  id: string;
  daily_usd: number;
  action: string;
  downgrade_to?: string;
  spent_today_usd: number;
}

interface BenchResult {
  model: string;
  queries: number;
  correct: number;
  errors: number;
  accuracy: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  cost_usd: number;
}

interface Benchmark {
  id: string;
  dataset: string;
  models: string[];
  scorer: string;
  status: string;
  error?: string;
  started_at: string;
  finished_at?: string;
  results?: BenchResult[];
  recommendations?: { kind: string; model: string; why: string }[];
}

interface Data {
  models: Model[];
  providers: Provider[];
  routes: Route[];
  budgets: Budget[];
  benchmarks: Benchmark[];
  usage: UsageRow[];
}

async function load(signal: AbortSignal): Promise<Data> {
  const [m, p, r, b, bm, u] = await Promise.all([
    get<{ models: Model[] }>('/api/models', signal),
    get<{ providers: Provider[] }>('/api/models/providers', signal),
    get<{ routes: Route[] }>('/api/routes/llm', signal),
    get<{ budgets: Budget[] }>('/api/models/budgets', signal),
    get<{ benchmarks: Benchmark[] }>('/api/models/benchmarks', signal),
    get<{ usage: UsageRow[] }>('/api/models/usage?since=24h', signal),
  ]);
  return { models: m.models ?? [], providers: p.providers ?? [], routes: r.routes ?? [], budgets: b.budgets ?? [], benchmarks: bm.benchmarks ?? [], usage: u.usage ?? [] };
}

export function ModelsPage() {
  const data = useAsync(load, []);
  const admin = can(getPermissions(), 'models', 'create');
  useEffect(() => {
    const t = setInterval(data.reload, 5_000);
    return () => clearInterval(t);
  }, []);
  const act = async (what: string, f: () => Promise<unknown>) => {
    try {
      await f();
      toast('ok', what);
      data.reload();
    } catch (e) {
      toast('error', errorMessage(e));
    }
  };
  if (data.error && !data.data) return <ErrorBox error={data.error} retry={data.reload} />;
  if (!data.data) return <Loading what="Loading models" />;
  const d = data.data;
  return (
    <section>
      <div class="page-head">
        <h1>Models</h1>
        <div class="spacer" />
        <span class="muted small">Flows call the gateway at <code>$REDFORGE_HUB_URL/v1</code> with their <code>REDFORGE_TOKEN</code>.</span>
      </div>
      <Registry models={d.models} admin={admin} act={act} />
      {admin && <AddModel providers={d.providers} act={act} />}
      <div class="models-cols">
        <Providers providers={d.providers} admin={admin} act={act} />
        <Routes routes={d.routes} models={d.models} admin={admin} act={act} />
      </div>
      <Budgets budgets={d.budgets} />
      <Benchmarks benchmarks={d.benchmarks} models={d.models} admin={admin} act={act} />
      <CostPerWorkflow usage={d.usage} />
    </section>
  );
}

type Act = (what: string, f: () => Promise<unknown>) => Promise<void>;

function Registry({ models, admin, act }: { models: Model[]; admin: boolean; act: Act }) {
  return (
    <div class="card">
      <div class="card-head">
        <h2>Registry</h2>
        <span class="muted small">live figures: this hub, last 5 minutes</span>
      </div>
      {!models.length ? (
        <Empty>No models yet. Add a provider, then a model.</Empty>
      ) : (
        <div class="table-wrap">
          <table class="table" data-testid="models-table">
            <thead>
              <tr>
                <th>Model</th>
                <th>Provider</th>
                <th>Upstream</th>
                <th>Kind</th>
                <th>Status</th>
                <th>$ in / out per 1M</th>
                <th>Quality</th>
                <th>Calls</th>
                <th>p50 / p95 / p99</th>
                <th>Errors</th>
                {admin && <th />}
              </tr>
            </thead>
            <tbody>
              {models.map((m) => (
                <tr data-testid="model-row" data-model={m.id}>
                  <td>
                    <span class="mono">{m.id}</span> {m.current && <span class="current-star" title="current version of its name">★</span>}
                  </td>
                  <td>
                    {m.provider} <span class="muted">({m.provider_kind})</span>
                  </td>
                  <td class="mono">{m.upstream}</td>
                  <td>{m.kind}</td>
                  <td>
                    <StatusBadge status={m.status} />
                  </td>
                  <td>
                    {fmtUSD(m.input_price)} / {fmtUSD(m.output_price)}
                  </td>
                  <td>{m.quality ? fmtPercent(m.quality * 100) : '—'}</td>
                  <td title={Object.entries(m.by_hub ?? {}).map(([h, f]) => `${h}: ${f.calls} calls, p95 ${fmtMS(f.p95_ms)}`).join('\n')}>{m.figures.calls}</td>
                  <td data-testid="model-latency">
                    {fmtMS(m.figures.p50_ms)} / {fmtMS(m.figures.p95_ms)} / {fmtMS(m.figures.p99_ms)}
                  </td>
                  <td class={m.figures.error_rate > 0.05 ? 'warn' : ''}>{m.figures.calls ? fmtPercent(m.figures.error_rate * 100) : '—'}</td>
                  {admin && (
                    <td>
                      {m.current ? (
                        m.previous && (
                          <button class="btn btn-small" onClick={() => act(`${m.name} rolled back`, () => post(`/api/models/${encodeURIComponent(m.name)}/rollback`))}>
                            Roll back
                          </button>
                        )
                      ) : (
                        <button class="btn btn-small" onClick={() => act(`${m.id} is current`, () => request('PATCH', `/api/models/${encodeURIComponent(m.id)}`, { body: { current: true } }))}>
                          Make current
                        </button>
                      )}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function AddModel({ providers, act }: { providers: Provider[]; act: Act }) {
  const [f, setF] = useState({ name: '', version: 'v1', provider: '', upstream: '', kind: 'chat', input_price: '0', output_price: '0', context_length: '0' });
  const set = (k: string) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const submit = (e: Event) => {
    e.preventDefault();
    act(`model ${f.name}:${f.version} added`, () =>
      post('/api/models', { ...f, provider: f.provider || providers[0]?.id, input_price: +f.input_price, output_price: +f.output_price, context_length: +f.context_length }),
    );
  };
  return (
    <details class="card">
      <summary>Add a model version</summary>
      <form class="form-row" onSubmit={submit} data-testid="add-model">
        <label class="field">Name<input value={f.name} onInput={set('name')} placeholder="llama3.2" required /></label>
        <label class="field">Version<input value={f.version} onInput={set('version')} required /></label>
        <label class="field">
          Provider
          <select value={f.provider} onChange={set('provider')}>
            {providers.map((p) => (
              <option value={p.id}>{p.id}</option>
            ))}
          </select>
        </label>
        <label class="field">Upstream name<input value={f.upstream} onInput={set('upstream')} placeholder="llama3.2:3b" required /></label>
        <label class="field">
          Kind
          <select value={f.kind} onChange={set('kind')}>
            <option value="chat">chat</option>
            <option value="embedding">embedding</option>
          </select>
        </label>
        <label class="field">$ in / 1M<input type="number" step="any" min="0" value={f.input_price} onInput={set('input_price')} /></label>
        <label class="field">$ out / 1M<input type="number" step="any" min="0" value={f.output_price} onInput={set('output_price')} /></label>
        <label class="field">Context<input type="number" min="0" value={f.context_length} onInput={set('context_length')} /></label>
        <button class="btn btn-primary">Add</button>
      </form>
    </details>
  );
}

function Providers({ providers, admin, act }: { providers: Provider[]; admin: boolean; act: Act }) {
  const [f, setF] = useState({ id: '', kind: 'openai', base_url: '', api_key: '' });
  const set = (k: string) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const submit = (e: Event) => {
    e.preventDefault();
    const body: Record<string, string> = { kind: f.kind, base_url: f.base_url };
    if (f.api_key) body.api_key = f.api_key;
    act(`provider ${f.id} saved`, () => request('PUT', `/api/models/providers/${encodeURIComponent(f.id)}`, { body })).then(() => setF({ ...f, api_key: '' }));
  };
  return (
    <div class="card">
      <div class="card-head">
        <h2>Providers</h2>
      </div>
      {!providers.length ? (
        <Empty>No providers.</Empty>
      ) : (
        <div class="table-wrap"><table class="table" data-testid="providers-table">
          <thead>
            <tr>
              <th>Provider</th>
              <th>Kind</th>
              <th>Base URL</th>
              <th>API key</th>
              <th>Models</th>
            </tr>
          </thead>
          <tbody>
            {providers.map((p) => (
              <tr>
                <td>{p.id}</td>
                <td>{p.kind}</td>
                <td class="mono">{p.base_url}</td>
                <td data-testid="provider-key">{p.has_api_key ? <span class="badge badge-green">set · write-only</span> : <span class="muted">none</span>}</td>
                <td>{p.models}</td>
              </tr>
            ))}
          </tbody>
        </table></div>
      )}
      {admin && (
        <form class="form-row" onSubmit={submit} data-testid="provider-form">
          <label class="field">Id<input value={f.id} onInput={set('id')} placeholder="openai" required /></label>
          <label class="field">
            Kind
            <select value={f.kind} onChange={set('kind')}>
              <option value="ollama">ollama</option>
              <option value="openai">openai / compatible</option>
              <option value="anthropic">anthropic</option>
            </select>
          </label>
          <label class="field">Base URL<input value={f.base_url} onInput={set('base_url')} placeholder="https://api.openai.com/v1" required /></label>
          <label class="field">
            API key (write-only)
            <input type="password" autocomplete="new-password" value={f.api_key} onInput={set('api_key')} placeholder="unchanged" />
          </label>
          <button class="btn btn-primary">Save</button>
        </form>
      )}
    </div>
  );
}

function Routes({ routes, models, admin, act }: { routes: Route[]; models: Model[]; admin: boolean; act: Act }) {
  const [f, setF] = useState({ name: '', policy: 'cheapest_sla', candidates: '', max_p95_ms: '1000', attempt_timeout_ms: '', deadline_ms: '' });
  const set = (k: string) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const submit = (e: Event) => {
    e.preventDefault();
    act(`route ${f.name} saved`, () =>
      request('PUT', `/api/routes/llm/${encodeURIComponent(f.name)}`, {
        body: { policy: f.policy, candidates: splitList(f.candidates), max_p95_ms: +f.max_p95_ms || 0, attempt_timeout_ms: +f.attempt_timeout_ms || 0, deadline_ms: +f.deadline_ms || 0 },
      }),
    );
  };
  const names = [...new Set(models.filter((m) => m.kind === 'chat').map((m) => m.name))];
  return (
    <div class="card">
      <div class="card-head">
        <h2>Routes</h2>
      </div>
      {!routes.length ? (
        <Empty>No routes. A request that names no model uses the route "default".</Empty>
      ) : (
        <div class="table-wrap"><table class="table" data-testid="routes-table">
          <thead>
            <tr>
              <th>Route</th>
              <th>Policy</th>
              <th>Candidates</th>
              <th>SLA</th>
              <th>Attempt / deadline</th>
            </tr>
          </thead>
          <tbody>
            {routes.map((r) => (
              <tr>
                <td>{r.name}</td>
                <td>{r.policy.replace('_', ' ')}</td>
                <td class="mono">{r.candidates.join(' → ')}</td>
                <td>
                  {r.max_p95_ms ? `p95 ≤ ${r.max_p95_ms} ms` : '—'}
                  {r.min_quality ? `, quality ≥ ${r.min_quality}` : ''}
                  {r.window_ms ? ` over ${r.window_ms / 1000} s` : ''}
                </td>
                <td>
                  {r.attempt_timeout_ms ? r.attempt_timeout_ms + ' ms' : '30 s'} / {r.deadline_ms ? r.deadline_ms + ' ms' : '60 s'}
                </td>
              </tr>
            ))}
          </tbody>
        </table></div>
      )}
      {admin && (
        <form class="form-row" onSubmit={submit} data-testid="route-form">
          <label class="field">Name<input value={f.name} onInput={set('name')} placeholder="default" required /></label>
          <label class="field">
            Policy
            <select value={f.policy} onChange={set('policy')}>
              <option value="cheapest_sla">cheapest meeting the SLA</option>
              <option value="fixed">fixed, with fallbacks</option>
              <option value="sla">SLA-enforced</option>
            </select>
          </label>
          <label class="field">
            Candidates<input value={f.candidates} onInput={set('candidates')} placeholder={names.join(',') || 'llama3.2,gpt'} required />
          </label>
          <label class="field">Max p95 ms<input type="number" min="0" value={f.max_p95_ms} onInput={set('max_p95_ms')} /></label>
          <button class="btn btn-primary">Save</button>
        </form>
      )}
    </div>
  );
}

function Budgets({ budgets }: { budgets: Budget[] }) {
  if (!budgets.length) return null;
  return (
    <div class="card">
      <div class="card-head">
        <h2>Daily budgets</h2>
      </div>
      <div class="table-wrap"><table class="table" data-testid="budgets-table">
        <thead>
          <tr>
            <th>Budget</th>
            <th>Spent today</th>
            <th>When spent</th>
          </tr>
        </thead>
        <tbody>
          {budgets.map((b) => (
            <tr>
              <td class="mono">{b.id}</td>
              <td class={b.spent_today_usd >= b.daily_usd ? 'warn' : ''}>
                {fmtUSD(b.spent_today_usd)} of {fmtUSD(b.daily_usd)}
              </td>
              <td>{b.action === 'refuse' ? 'refuse' : `downgrade to ${b.downgrade_to || 'the cheapest candidate'}`}</td>
            </tr>
          ))}
        </tbody>
      </table></div>
    </div>
  );
}

function Benchmarks({ benchmarks, models, admin, act }: { benchmarks: Benchmark[]; models: Model[]; admin: boolean; act: Act }) {
  const chat = models.filter((m) => m.kind === 'chat' && m.status !== 'disabled');
  const [picked, setPicked] = useState<string[]>([]);
  const [scorer, setScorer] = useState('contains');
  const [conc, setConc] = useState('4');
  const [sla, setSLA] = useState('1000');
  const [shown, setShown] = useState<string>('');
  const run = benchmarks.find((b) => b.id === shown) ?? benchmarks.find((b) => b.status === 'done') ?? benchmarks[0];
  const launch = (e: Event) => {
    e.preventDefault();
    act('benchmark started', () => post('/api/models/benchmarks', { dataset: 'sample', models: picked, scorer, concurrency: +conc, max_p95_ms: +sla || 0 }));
  };
  return (
    <div class="card">
      <div class="card-head">
        <h2>Benchmarks</h2>
        {benchmarks.length > 0 && (
          <select value={run?.id} onChange={(e) => setShown((e.target as HTMLSelectElement).value)} aria-label="Benchmark run">
            {benchmarks.map((b) => (
              <option value={b.id}>
                {b.id} · {b.status} · {fmtAgo(b.started_at)}
              </option>
            ))}
          </select>
        )}
      </div>
      {admin && (
        <form class="form-row" onSubmit={launch} data-testid="bench-form">
          <fieldset class="field-group">
            <legend>Models (sample dataset, 100 queries)</legend>
            <div class="check-list">
              {chat.map((m) => (
                <label>
                  <input type="checkbox" checked={picked.includes(m.id)} onChange={(e) => setPicked((e.target as HTMLInputElement).checked ? [...picked, m.id] : picked.filter((x) => x !== m.id))} /> {m.id}
                </label>
              ))}
            </div>
          </fieldset>
          <label class="field">
            Scorer
            <select value={scorer} onChange={(e) => setScorer((e.target as HTMLSelectElement).value)}>
              <option value="contains">contains</option>
              <option value="exact">exact</option>
              <option value="regex">regex</option>
            </select>
          </label>
          <label class="field">Concurrency<input type="number" min="1" max="32" value={conc} onInput={(e) => setConc((e.target as HTMLInputElement).value)} /></label>
          <label class="field">SLA p95 ms<input type="number" min="0" value={sla} onInput={(e) => setSLA((e.target as HTMLInputElement).value)} /></label>
          <button class="btn btn-primary" disabled={!picked.length}>
            Run benchmark
          </button>
        </form>
      )}
      {!run ? (
        <Empty>No benchmark has run.</Empty>
      ) : (
        <BenchRun run={run} />
      )}
    </div>
  );
}

function BenchRun({ run }: { run: Benchmark }) {
  if (run.status === 'running') return <Loading what={`Benchmark ${run.id} running on ${run.models.join(', ')}`} />;
  if (run.status === 'failed') return <ErrorBox error={`Benchmark ${run.id} failed: ${run.error}`} />;
  const rs = run.results ?? [];
  const best = new Set((run.recommendations ?? []).map((r) => r.model));
  return (
    <div data-testid="bench-results">
      <div class="recs" data-testid="bench-recs">
        {(run.recommendations ?? []).map((r) => (
          <div class="rec">
            <b>{recLabel(r.kind)}</b>
            <span class="mono">{r.model}</span>
            <div class="muted small">{r.why}</div>
          </div>
        ))}
      </div>
      <div class="table-wrap">
        <table class="table" data-testid="bench-table">
          <thead>
            <tr>
              <th>Model</th>
              <th>Accuracy</th>
              <th>Correct</th>
              <th>Errors</th>
              <th>p50</th>
              <th>p95</th>
              <th>p99</th>
              <th>Cost ({run.dataset})</th>
            </tr>
          </thead>
          <tbody>
            {rs.map((r) => (
              <tr>
                <td class="mono">{r.model}</td>
                <td>{fmtPercent(r.accuracy * 100)}</td>
                <td>
                  {r.correct}/{r.queries}
                </td>
                <td>{r.errors}</td>
                <td>{fmtMS(r.p50_ms)}</td>
                <td>{fmtMS(r.p95_ms)}</td>
                <td>{fmtMS(r.p99_ms)}</td>
                <td>{fmtUSD(r.cost_usd)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div class="charts-3">
        <Bars title="Accuracy" testid="chart-accuracy" data={rs.map((r) => ({ label: r.model, value: r.accuracy * 100, highlight: best.has(r.model) }))} format={(v) => v.toFixed(0) + '%'} />
        <Bars title="p95 latency" data={rs.map((r) => ({ label: r.model, value: r.p95_ms }))} format={fmtMS} />
        <Bars title={`Cost of ${rs[0]?.queries ?? 0} queries`} data={rs.map((r) => ({ label: r.model, value: r.cost_usd }))} format={fmtUSD} />
      </div>
    </div>
  );
}

function CostPerWorkflow({ usage }: { usage: UsageRow[] }) {
  const flows = costByWorkflow(usage);
  return (
    <div class="card">
      <div class="card-head">
        <h2>Cost per workflow by model</h2>
        <span class="muted small">gateway calls, last 24 h</span>
      </div>
      {!flows.length ? (
        <Empty>No gateway calls in the last 24 hours.</Empty>
      ) : (
        <>
          <div class="table-wrap"><table class="table" data-testid="usage-table">
            <thead>
              <tr>
                <th>Workflow</th>
                <th>Model</th>
                <th>Calls</th>
                <th>Tokens</th>
                <th>Cost</th>
              </tr>
            </thead>
            <tbody>
              {flows.flatMap((f) =>
                f.byModel.map((m, i) => (
                  <tr>
                    <td>{i === 0 ? <b>{f.flow}</b> : ''}</td>
                    <td class="mono">{m.model}</td>
                    <td>{m.calls}</td>
                    <td>{m.tokens}</td>
                    <td>{fmtUSD(m.cost)}</td>
                  </tr>
                )),
              )}
            </tbody>
          </table></div>
          <Bars title="Cost per workflow" data={flows.map((f) => ({ label: f.flow, value: f.total }))} format={fmtUSD} />
        </>
      )}
    </div>
  );
}
