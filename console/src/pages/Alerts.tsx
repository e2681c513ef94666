// Alerting: the rules (a form to add one: metric, condition, threshold,
// for, severity, channels), the alerts firing now and the history with how
// each notification went, live from /api/ws.
import { useState } from 'preact/hooks';
import { ApiError, del, errorMessage, get, getPermissions, patch, post } from '../api';
import { channelTarget, deliverySummary, emptyRule, fmtFor, labelText, ruleBody, type Alert, type AlertRule, type MetricInfo, type RuleForm } from '../alerts';
import { fmtAgo, fmtTime } from '../format';
import { can } from '../session';
import { useEvents } from '../ws';
import { Confirm, LiveBadge, toast, useAsync } from '../components/ui';
import { AsyncTable, AsyncView } from '../components/AsyncTable';

interface Catalog {
  metrics: MetricInfo[];
  conditions: string[];
  severities: string[];
  channel_types: string[];
}

export function AlertsPage() {
  const perms = getPermissions();
  const rules = useAsync((signal) => get<{ rules: AlertRule[] }>('/api/alerts/rules', signal).then((r) => r.rules ?? []), []);
  const active = useAsync((signal) => get<{ alerts: Alert[] }>('/api/alerts', signal).then((r) => r.alerts ?? []), []);
  const history = useAsync((signal) => get<{ alerts: Alert[] }>('/api/alerts/history?limit=50', signal).then((r) => r.alerts ?? []), []);
  const catalog = useAsync((signal) => get<Catalog>('/api/alerts/metrics', signal), []);
  const reloadAll = () => {
    rules.reload();
    active.reload();
    history.reload();
  };
  const live = useEvents(['alert.firing', 'alert.resolved', 'alert.rule', 'alert.delivery'], (e) => {
    if (e.type === 'alert.rule') rules.reload();
    else {
      active.reload();
      history.reload();
    }
  }, reloadAll);
  return (
    <section>
      <div class="page-head">
        <h1>Alerts</h1>
        <LiveBadge state={live} />
      </div>
      <div class="card" data-testid="active-alerts">
        <h2>Firing now</h2>
        <AsyncView state={active} what="alerts" empty="No alert is firing." isEmpty={(l) => l.length === 0}>
          {(alerts) => (
            <ul class="alert-list">
              {alerts.map((a) => (
                <li class={'alert-item sev-' + a.severity} data-testid="active-alert">
                  <span class={'badge ' + sevBadge(a.severity)}>{a.severity}</span> <strong>{a.rule_name}</strong>{' '}
                  <span class="mono muted">{labelText(a.labels)}</span>
                  <div class="muted">
                    since {fmtTime(a.starts_at)} ({fmtAgo(a.starts_at)}) · value {Number(a.value.toPrecision(4))} · notifications: {deliverySummary(a.deliveries)}
                  </div>
                </li>
              ))}
            </ul>
          )}
        </AsyncView>
      </div>
      {can(perms, 'alerts', 'create') && catalog.data && <RuleFormCard catalog={catalog.data} onCreated={rules.reload} />}
      <div class="card">
        <h2>Rules</h2>
        <AsyncTable
          state={rules}
          what="rules"
          empty="No alert rules yet."
          testid="rules-table"
          head={['Name', 'Condition', 'For', 'Severity', 'Channels', 'State', '']}
          row={(r) => <RuleRow rule={r} onChange={rules.reload} />}
        />
      </div>
      <div class="card">
        <h2>History</h2>
        <AsyncTable
          state={history}
          what="history"
          empty="No alert has fired yet."
          testid="history-table"
          head={['Started', 'Rule', 'Series', 'State', 'Resolved', 'Notifications']}
          row={(a) => (
            <tr>
              <td>{fmtTime(a.starts_at)}</td>
              <td>{a.rule_name}</td>
              <td class="mono">{labelText(a.labels)}</td>
              <td>
                <span class={'badge ' + (a.state === 'firing' ? sevBadge(a.severity) : 'badge-green')}>{a.state}</span>
              </td>
              <td>{a.ends_at ? fmtTime(a.ends_at) : '—'}</td>
              <td>
                <details>
                  <summary>{deliverySummary(a.deliveries)}</summary>
                  <ul class="deliveries">
                    {(a.deliveries ?? []).map((d) => (
                      <li>
                        {d.event} → {d.channel.type} <span class="mono">{channelTarget(d.channel)}</span>: {d.status}
                        {d.attempts > 1 ? ` after ${d.attempts} attempts` : ''}
                        {d.last_error ? <span class="muted"> ({d.last_error})</span> : null}
                      </li>
                    ))}
                  </ul>
                </details>
              </td>
            </tr>
          )}
        />
      </div>
    </section>
  );
}

function sevBadge(sev: string): string {
  return sev === 'critical' ? 'badge-red' : sev === 'warning' ? 'badge-yellow' : 'badge-grey';
}

function RuleRow({ rule, onChange }: { rule: AlertRule; onChange: () => void }) {
  const perms = getPermissions();
  const [confirm, setConfirm] = useState(false);
  const toggle = async () => {
    try {
      await patch(`/api/alerts/rules/${rule.id}`, { disabled: !rule.disabled });
      onChange();
    } catch (e) {
      toast('error', errorMessage(e));
    }
  };
  const remove = async () => {
    try {
      await del(`/api/alerts/rules/${rule.id}`);
      toast('ok', `Rule ${rule.name} deleted`);
      onChange();
    } catch (e) {
      toast('error', errorMessage(e));
    }
  };
  const match = Object.entries(rule.match ?? {}).map(([k, v]) => `${k}="${v}"`).join(',');
  return (
    <tr data-testid="rule-row">
      <td>
        <strong>{rule.name}</strong>
      </td>
      <td class="mono">
        {rule.metric}
        {match ? `{${match}}` : ''} {rule.condition} {rule.threshold}
      </td>
      <td>{fmtFor(rule.for)}</td>
      <td>
        <span class={'badge ' + sevBadge(rule.severity)}>{rule.severity}</span>
      </td>
      <td>
        {rule.channels.map((c) => (
          <div class="mono small">
            {c.type}: {channelTarget(c)}
          </div>
        ))}
      </td>
      <td>{rule.disabled ? 'disabled' : 'enabled'}</td>
      <td class="actions">
        {can(perms, 'alerts', 'update') && (
          <button class="btn btn-small" onClick={toggle}>
            {rule.disabled ? 'Enable' : 'Disable'}
          </button>
        )}
        {can(perms, 'alerts', 'delete') && (
          <button class="btn btn-small btn-danger" onClick={() => setConfirm(true)}>
            Delete
          </button>
        )}
        {confirm && (
          <Confirm title={`Delete rule ${rule.name}?`} action="Delete" danger onConfirm={remove} onClose={() => setConfirm(false)}>
            Its firing alerts resolve; their history stays.
          </Confirm>
        )}
      </td>
    </tr>
  );
}

function RuleFormCard({ catalog, onCreated }: { catalog: Catalog; onCreated: () => void }) {
  const [f, setF] = useState<RuleForm>(emptyRule);
  const [error, setError] = useState<{ field?: string; message: string } | null>(null);
  const metric = catalog.metrics.find((m) => m.name === f.metric);
  const set = (k: keyof RuleForm) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const setChannel = (i: number, k: 'type' | 'target') => (e: Event) => {
    const channels = f.channels.slice();
    channels[i] = { ...channels[i], [k]: (e.target as HTMLInputElement).value };
    setF({ ...f, channels });
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      const r = await post<AlertRule>('/api/alerts/rules', ruleBody(f));
      toast('ok', `Rule ${r.name} created`);
      setF(emptyRule());
      setError(null);
      onCreated();
    } catch (err) {
      setError({ field: err instanceof ApiError ? err.field : undefined, message: errorMessage(err) });
    }
  };
  const bad = (field: string) => (error?.field === field || error?.field?.startsWith(field + '.') || error?.field?.startsWith(field + '[') ? 'invalid' : undefined);
  return (
    <form class="card form" onSubmit={submit} aria-label="New alert rule">
      <h2>New alert rule</h2>
      <div class="form-row">
        <label class="field">
          Name
          <input value={f.name} onInput={set('name')} class={bad('name')} placeholder="instance down" data-testid="rule-name" />
        </label>
        <label class="field">
          Metric
          <select value={f.metric} onChange={set('metric')} class={bad('metric')} data-testid="rule-metric">
            {catalog.metrics.map((m) => (
              <option value={m.name}>{m.name}</option>
            ))}
          </select>
        </label>
        <label class="field">
          Condition
          <select value={f.condition} onChange={set('condition')} data-testid="rule-condition">
            {catalog.conditions.map((c) => (
              <option value={c}>{c}</option>
            ))}
          </select>
        </label>
        <label class="field">
          Threshold
          <input value={f.threshold} onInput={set('threshold')} class={bad('threshold')} inputMode="decimal" data-testid="rule-threshold" />
        </label>
        <label class="field">
          For
          <input value={f.for} onInput={set('for')} class={bad('for')} placeholder="0s, 30s, 5m" data-testid="rule-for" />
        </label>
        <label class="field">
          Severity
          <select value={f.severity} onChange={set('severity')} data-testid="rule-severity">
            {catalog.severities.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </label>
      </div>
      {metric && <p class="muted small">{metric.help}</p>}
      <div class="form-row">
        <label class="field">
          Only where label
          <select value={f.matchLabel} onChange={set('matchLabel')} data-testid="rule-match-label">
            <option value="">(every series)</option>
            {(metric?.labels ?? []).map((l) => (
              <option value={l}>{l}</option>
            ))}
          </select>
        </label>
        <label class="field">
          equals
          <input value={f.matchValue} onInput={set('matchValue')} disabled={!f.matchLabel} class={bad('match')} data-testid="rule-match-value" />
        </label>
      </div>
      <fieldset class="field-group channels" aria-label="Notification channels">
        <legend>Notification channels</legend>
        {f.channels.map((c, i) => (
          <div class="form-row channel-row">
            <label class="field">
              Type
              <select value={c.type} onChange={setChannel(i, 'type')} data-testid={`channel-type-${i}`}>
                {catalog.channel_types.map((t) => (
                  <option value={t}>{t}</option>
                ))}
              </select>
            </label>
            <label class="field wide">
              {c.type === 'email' ? 'Addresses (comma-separated)' : 'URL'}
              <input value={c.target} onInput={setChannel(i, 'target')} class={bad(`channels[${i}]`)} placeholder={c.type === 'email' ? 'ops@example.com' : c.type === 'alertmanager' ? 'http://alertmanager:9093' : 'https://…'} data-testid={`channel-target-${i}`} />
            </label>
            {f.channels.length > 1 && (
              <button type="button" class="btn btn-small" onClick={() => setF({ ...f, channels: f.channels.filter((_, j) => j !== i) })}>
                Remove
              </button>
            )}
          </div>
        ))}
        <button type="button" class="btn btn-small" onClick={() => setF({ ...f, channels: [...f.channels, { type: 'webhook', target: '' }] })} data-testid="add-channel">
          Add a channel
        </button>
      </fieldset>
      {error && (
        <p class="form-error" role="alert" data-testid="rule-error">
          {error.message}
        </p>
      )}
      <button class="btn btn-primary" type="submit" data-testid="rule-create">
        Create rule
      </button>
    </form>
  );
}
