// agent-metrics keeps the workflow and LLM metrics of one Node-RED runtime
// and serves them in the Prometheus text format at GET /redforge/metrics
// of the admin API (behind adminAuth: the hub reads them with its admin
// credentials). One registry per process, shared by every node.
//
// Bounds (the hub applies the same): at most MAX_FLOWS flow and MAX_MODELS
// model label values, the rest counted under "_other"; label values
// sanitized and cut to 64 bytes; at most MAX_INFLIGHT workflows in flight
// (the oldest is ended as an error past that).
'use strict';

const { monitorEventLoopDelay } = require('perf_hooks');

const PATH = '/redforge/metrics';
const BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300]; // hub/metrics.WorkflowBuckets
const MAX_FLOWS = 50;
const MAX_MODELS = 20;
const MAX_LABEL_BYTES = 64;
const MAX_INFLIGHT = 10000;
const OTHER = '_other';
const PRICE_REFRESH_MS = 10 * 60 * 1000;
const PRICE_RETRY_MS = 30 * 1000;

// sanitize mirrors hub/metrics.Sanitize.
function sanitize(v) {
  let s = String(v === undefined || v === null ? '' : v);
  s = s.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').trim();
  if (Buffer.byteLength(s) > MAX_LABEL_BYTES) {
    const buf = Buffer.from(s);
    let cut = MAX_LABEL_BYTES - Buffer.byteLength('…');
    while (cut > 0 && (buf[cut] & 0xc0) === 0x80) cut--;
    s = buf.subarray(0, cut).toString() + '…';
  }
  return s === '' ? OTHER : s;
}

function escapeLabel(v) {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function num(v) {
  return Number.isFinite(v) ? String(v) : '0';
}

class Registry {
  constructor() {
    this.flows = new Map(); // name → {count, errors, sum, buckets[], active}
    this.models = new Map(); // name → {prompt, completion, requests, cost}
    this.inflight = new Map(); // key → {flow, start, deadline}
    this.prices = null; // {currency, prices: [...]}
    this.priceTimer = null;
    this.sweepTimer = null;
    this.routed = false;
    this.loop = null;
    this.started = Date.now();
  }

  flow(name) {
    name = sanitize(name);
    let f = this.flows.get(name);
    if (!f) {
      if (this.flows.size >= MAX_FLOWS && name !== OTHER) return this.flow(OTHER);
      f = { count: 0, errors: 0, sum: 0, buckets: BUCKETS.map(() => 0), active: 0 };
      this.flows.set(name, f);
    }
    return f;
  }

  model(name) {
    name = sanitize(name);
    let m = this.models.get(name);
    if (!m) {
      if (this.models.size >= MAX_MODELS && name !== OTHER) return this.model(OTHER);
      m = { prompt: 0, completion: 0, requests: 0, cost: 0 };
      this.models.set(name, m);
    }
    return m;
  }

  // start begins timing the workflow key of flow; a key already in flight
  // is restarted.
  start(key, flow, timeoutSec) {
    const now = Date.now();
    const prev = this.inflight.get(key);
    if (prev) {
      this.flow(prev.flow).active--;
      this.inflight.delete(key);
    }
    while (this.inflight.size >= MAX_INFLIGHT) {
      const [oldest] = this.inflight.keys();
      this.finish(oldest, 'error');
    }
    const f = this.flow(flow);
    f.active++;
    this.inflight.set(key, { flow: sanitize(flow), start: now, deadline: now + timeoutSec * 1000 });
  }

  // finish ends the workflow key with outcome 'ok' or 'error' and returns
  // its duration in seconds, or undefined when it was not in flight.
  finish(key, outcome) {
    const w = this.inflight.get(key);
    if (!w) return undefined;
    this.inflight.delete(key);
    const secs = (Date.now() - w.start) / 1000;
    const f = this.flow(w.flow);
    f.active = Math.max(0, f.active - 1);
    f.count++;
    f.sum += secs;
    BUCKETS.forEach((b, i) => {
      if (secs <= b) f.buckets[i]++;
    });
    if (outcome === 'error') f.errors++;
    return secs;
  }

  sweep() {
    const now = Date.now();
    for (const [key, w] of this.inflight) {
      if (w.deadline <= now) this.finish(key, 'error');
    }
  }

  price(model) {
    const t = this.prices;
    if (!t || !Array.isArray(t.prices)) return undefined;
    let best;
    for (const p of t.prices) {
      if (p.model === model) return p;
      if (model.startsWith(p.model) && model.length > p.model.length && '-:@'.includes(model[p.model.length])) {
        if (!best || p.model.length > best.model.length) best = p;
      }
    }
    return best;
  }

  // llm records one LLM call's tokens and returns its estimated cost.
  llm(model, prompt, completion) {
    const name = sanitize(model);
    const m = this.model(name);
    prompt = Number.isFinite(prompt) && prompt > 0 ? prompt : 0;
    completion = Number.isFinite(completion) && completion > 0 ? completion : 0;
    const p = this.price(name);
    const cost = p ? (prompt * p.prompt_per_million + completion * p.completion_per_million) / 1e6 : 0;
    m.prompt += prompt;
    m.completion += completion;
    m.requests++;
    m.cost += cost;
    return cost;
  }

  expose() {
    const out = [];
    const line = (name, labels, v) => {
      const l = Object.entries(labels).map(([k, val]) => `${k}="${escapeLabel(val)}"`).join(',');
      out.push(l ? `${name}{${l}} ${num(v)}` : `${name} ${num(v)}`);
    };
    out.push('# HELP agent_workflow_duration_seconds Duration of finished workflows, by flow.');
    out.push('# TYPE agent_workflow_duration_seconds histogram');
    for (const [flow, f] of this.flows) {
      BUCKETS.forEach((b, i) => line('agent_workflow_duration_seconds_bucket', { flow, le: String(b) }, f.buckets[i]));
      line('agent_workflow_duration_seconds_bucket', { flow, le: '+Inf' }, f.count);
      line('agent_workflow_duration_seconds_sum', { flow }, f.sum);
      line('agent_workflow_duration_seconds_count', { flow }, f.count);
    }
    out.push('# HELP agent_workflow_errors_total Workflows that ended in error or timed out, by flow.');
    out.push('# TYPE agent_workflow_errors_total counter');
    for (const [flow, f] of this.flows) line('agent_workflow_errors_total', { flow }, f.errors);
    out.push('# HELP agent_workflows_active Workflows started and not yet ended, by flow.');
    out.push('# TYPE agent_workflows_active gauge');
    for (const [flow, f] of this.flows) line('agent_workflows_active', { flow }, f.active);
    out.push('# HELP agent_llm_tokens_used_total LLM tokens used, by model and type.');
    out.push('# TYPE agent_llm_tokens_used_total counter');
    for (const [model, m] of this.models) {
      line('agent_llm_tokens_used_total', { model, type: 'prompt' }, m.prompt);
      line('agent_llm_tokens_used_total', { model, type: 'completion' }, m.completion);
    }
    out.push('# HELP agent_llm_requests_total LLM calls recorded, by model.');
    out.push('# TYPE agent_llm_requests_total counter');
    for (const [model, m] of this.models) line('agent_llm_requests_total', { model }, m.requests);
    out.push('# HELP agent_llm_cost_usd_total Estimated LLM cost in US dollars, by model.');
    out.push('# TYPE agent_llm_cost_usd_total counter');
    for (const [model, m] of this.models) line('agent_llm_cost_usd_total', { model }, m.cost);
    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    out.push('# HELP process_cpu_seconds_total CPU time of the Node-RED process.');
    out.push('# TYPE process_cpu_seconds_total counter');
    line('process_cpu_seconds_total', {}, (cpu.user + cpu.system) / 1e6);
    out.push('# HELP process_resident_memory_bytes Resident memory of the Node-RED process.');
    out.push('# TYPE process_resident_memory_bytes gauge');
    line('process_resident_memory_bytes', {}, mem.rss);
    out.push('# HELP nodejs_heap_used_bytes V8 heap in use.');
    out.push('# TYPE nodejs_heap_used_bytes gauge');
    line('nodejs_heap_used_bytes', {}, mem.heapUsed);
    if (this.loop) {
      out.push('# HELP nodejs_eventloop_delay_p99_seconds 99th percentile of the event loop delay since the last scrape.');
      out.push('# TYPE nodejs_eventloop_delay_p99_seconds gauge');
      line('nodejs_eventloop_delay_p99_seconds', {}, this.loop.percentile(99) / 1e9);
      this.loop.reset();
    }
    out.push('# HELP agent_runtime_inflight_workflows Workflows in flight in the runtime (all flows).');
    out.push('# TYPE agent_runtime_inflight_workflows gauge');
    line('agent_runtime_inflight_workflows', {}, this.inflight.size);
    return out.join('\n') + '\n';
  }

  // refreshPrices loads the hub's LLM price table with the runtime's
  // instance token (REDFORGE_HUB_URL, REDFORGE_TOKEN).
  async refreshPrices(log) {
    const hub = process.env.REDFORGE_HUB_URL;
    const token = process.env.REDFORGE_TOKEN;
    if (!hub || !token || typeof fetch !== 'function') return false;
    try {
      const res = await fetch(hub.replace(/\/$/, '') + '/api/metrics/prices', {
        headers: { Authorization: 'Bearer ' + token },
        signal: AbortSignal.timeout(5000),
      });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const t = await res.json();
      if (!t || !Array.isArray(t.prices)) throw new Error('no prices in the answer');
      this.prices = t;
      return true;
    } catch (err) {
      if (log) log('RedForge: LLM price table not loaded: ' + err.message);
      return false;
    }
  }

  schedulePrices(log) {
    if (this.priceTimer) return;
    const next = async () => {
      const ok = await this.refreshPrices(log);
      this.priceTimer = setTimeout(next, ok ? PRICE_REFRESH_MS : PRICE_RETRY_MS);
      this.priceTimer.unref();
    };
    this.priceTimer = setTimeout(next, 0);
    this.priceTimer.unref();
  }
}

const registry = new Registry();

// init registers the metrics route and timers once per process and
// returns the registry.
function init(RED) {
  if (!registry.routed) {
    registry.routed = true;
    RED.httpAdmin.get(PATH, RED.auth.needsPermission('redforge.read'), (req, res) => {
      registry.sweep();
      res.set('Content-Type', 'text/plain; version=0.0.4; charset=utf-8');
      res.send(registry.expose());
    });
    registry.sweepTimer = setInterval(() => registry.sweep(), 5000);
    registry.sweepTimer.unref();
    try {
      registry.loop = monitorEventLoopDelay({ resolution: 20 });
      registry.loop.enable();
    } catch (_) {
      registry.loop = null;
    }
    registry.schedulePrices((m) => RED.log.warn(m));
  }
  return registry;
}

module.exports = { init, sanitize, BUCKETS, MAX_FLOWS, MAX_MODELS, OTHER, Registry };
