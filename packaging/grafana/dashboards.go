// Package grafana defines RedForge's four Grafana dashboards (Fleet
// Overview, Deployment, Performance and Cost, the roadmap's panels) with
// Grafana's Go SDK (github.com/grafana/grafana-foundation-sdk/go).
// cmd/dashboards (make dashboards) writes them to dashboards/*.json, which
// docker-compose.yml's Grafana provisions; the tests check that the JSON
// is current and run every query against a real Prometheus that scraped a
// real hub and its runtimes.
package grafana

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/barchart"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/gauge"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/redforge/controltower/hub/metrics"
)

// DatasourceVar is the dashboards' Prometheus datasource variable.
const DatasourceVar = "datasource"

// Query is one PromQL expression of a panel. Expressions may use
// Grafana's $__rate_interval and $__range; Key marks the queries a key
// panel depends on: the test requires them to return data.
type Query struct {
	Expr    string
	Legend  string
	Instant bool
	Table   bool
	Key     bool
}

// Panel is one panel: its kind (stat, gauge, timeseries, barchart,
// table), title, unit, width (of 24) and queries.
type Panel struct {
	Kind    string
	Title   string
	Desc    string
	Unit    string
	Span    uint32
	Queries []Query
}

// Spec is one dashboard.
type Spec struct {
	metrics.Dashboard
	Description string
	Panels      []Panel
}

const (
	hubJob     = `job="redforge-hub"`
	runtimeJob = `job="redforge-runtime"`
)

// Specs returns the four dashboards, in metrics.Dashboards order.
func Specs() []Spec {
	byKey := map[string]metrics.Dashboard{}
	for _, d := range metrics.Dashboards {
		byKey[d.Key] = d
	}
	return []Spec{
		{Dashboard: byKey["fleet"], Description: "Instances, resources, workflow throughput and errors across the fleet.", Panels: []Panel{
			{Kind: "stat", Title: "Instances", Span: 4, Queries: []Query{{Expr: `count(count by (instance_id) (nodered_instance_up{` + hubJob + `}))`, Key: true}}},
			{Kind: "stat", Title: "Healthy replicas", Span: 4, Queries: []Query{{Expr: `sum(nodered_instance_up{` + hubJob + `})`, Key: true}}},
			{Kind: "stat", Title: "Failed replicas", Span: 4, Queries: []Query{{Expr: `count(nodered_instance_up{` + hubJob + `} == 0) or vector(0)`, Key: true}}},
			{Kind: "stat", Title: "Active workflows", Span: 4, Queries: []Query{{Expr: `sum(agent_workflows_active{` + hubJob + `})`, Key: true}}},
			{Kind: "stat", Title: "Hubs up", Span: 4, Queries: []Query{{Expr: `sum(up{` + hubJob + `})`, Key: true}}},
			{Kind: "stat", Title: "Alerts firing", Span: 4, Queries: []Query{{Expr: `sum(controltower_alerts_firing{` + hubJob + `})`}}},
			{Kind: "timeseries", Title: "CPU by instance", Unit: "percent", Span: 12, Queries: []Query{{Expr: `sum by (name) (nodered_instance_cpu_usage{` + hubJob + `})`, Legend: "{{name}}", Key: true}}},
			{Kind: "timeseries", Title: "Memory by instance", Unit: "bytes", Span: 12, Queries: []Query{{Expr: `sum by (name) (nodered_instance_memory_bytes{` + hubJob + `})`, Legend: "{{name}}", Key: true}}},
			{Kind: "timeseries", Title: "Workflow throughput (per minute)", Unit: "short", Span: 12, Queries: []Query{{Expr: `sum by (name, flow) (rate(agent_workflow_duration_seconds_count{` + hubJob + `}[$__rate_interval])) * 60`, Legend: "{{name}}/{{flow}}", Key: true}}},
			{Kind: "timeseries", Title: "Errors (per minute)", Unit: "short", Span: 12, Queries: []Query{{Expr: `sum by (name, flow) (rate(agent_workflow_errors_total{` + hubJob + `}[$__rate_interval])) * 60`, Legend: "{{name}}/{{flow}}", Key: true}}},
		}},
		{Dashboard: byKey["deployment"], Description: "Blue-green deployments: success rate, durations, phases, held and replayed messages.", Panels: []Panel{
			{Kind: "gauge", Title: "Deployment success rate", Unit: "percentunit", Span: 6, Queries: []Query{{Expr: `sum(increase(controltower_deployment_success_total{` + hubJob + `}[$__range])) / clamp_min(sum(increase(controltower_deployment_success_total{` + hubJob + `}[$__range])) + sum(increase(controltower_deployment_failure_total{` + hubJob + `}[$__range])), 1)`, Instant: true, Key: true}}},
			{Kind: "stat", Title: "Deployments", Span: 6, Queries: []Query{
				{Expr: `sum(increase(controltower_deployment_success_total{` + hubJob + `}[$__range]))`, Legend: "succeeded", Instant: true, Key: true},
				{Expr: `sum(increase(controltower_deployment_failure_total{` + hubJob + `}[$__range]))`, Legend: "failed or rolled back", Instant: true, Key: true}}},
			{Kind: "stat", Title: "Held and replayed messages", Span: 12, Queries: []Query{
				{Expr: `sum(increase(controltower_deployment_held_messages_total{` + hubJob + `}[$__range]))`, Legend: "held", Instant: true},
				{Expr: `sum(increase(controltower_deployment_replayed_messages_total{` + hubJob + `}[$__range]))`, Legend: "replayed", Instant: true}}},
			{Kind: "barchart", Title: "Deployment duration (histogram)", Unit: "short", Span: 12, Queries: []Query{{Expr: `sum by (le) (increase(controltower_deployment_duration_seconds_bucket{` + hubJob + `}[$__range]))`, Legend: "≤ {{le}} s", Instant: true, Key: true}}},
			{Kind: "timeseries", Title: "Phase duration p95", Unit: "s", Span: 12, Queries: []Query{{Expr: `histogram_quantile(0.95, sum by (le, phase) (rate(controltower_deployment_phase_duration_seconds_bucket{` + hubJob + `}[$__rate_interval])))`, Legend: "{{phase}}", Key: true}}},
			{Kind: "table", Title: "Recent deployments", Span: 24, Queries: []Query{{Expr: `max by (deployment, instance_id, strategy, outcome) (controltower_deployment_finished_timestamp_seconds{` + hubJob + `}) * 1000`, Instant: true, Table: true, Key: true}}},
		}},
		{Dashboard: byKey["performance"], Description: "Workflow latency percentiles, throughput and error rate per flow (the agents' primitives), API latency and runtime event loop delay.", Panels: []Panel{
			{Kind: "timeseries", Title: "Workflow latency by flow (p50, p95, p99)", Unit: "s", Span: 24, Queries: []Query{
				{Expr: `histogram_quantile(0.5, sum by (le, flow) (rate(agent_workflow_duration_seconds_bucket{` + hubJob + `}[$__rate_interval])))`, Legend: "p50 {{flow}}", Key: true},
				{Expr: `histogram_quantile(0.95, sum by (le, flow) (rate(agent_workflow_duration_seconds_bucket{` + hubJob + `}[$__rate_interval])))`, Legend: "p95 {{flow}}", Key: true},
				{Expr: `histogram_quantile(0.99, sum by (le, flow) (rate(agent_workflow_duration_seconds_bucket{` + hubJob + `}[$__rate_interval])))`, Legend: "p99 {{flow}}", Key: true}}},
			{Kind: "timeseries", Title: "Throughput by flow (per second)", Unit: "reqps", Span: 12, Queries: []Query{{Expr: `sum by (flow) (rate(agent_workflow_duration_seconds_count{` + hubJob + `}[$__rate_interval]))`, Legend: "{{flow}}", Key: true}}},
			{Kind: "timeseries", Title: "Error rate by flow", Unit: "percentunit", Span: 12, Queries: []Query{{Expr: `sum by (flow) (rate(agent_workflow_errors_total{` + hubJob + `}[$__rate_interval])) / sum by (flow) (rate(agent_workflow_duration_seconds_count{` + hubJob + `}[$__rate_interval]))`, Legend: "{{flow}}", Key: true}}},
			{Kind: "timeseries", Title: "Hub API latency p95 by route", Unit: "s", Span: 12, Queries: []Query{{Expr: `histogram_quantile(0.95, sum by (le, route) (rate(controltower_http_request_duration_seconds_bucket{` + hubJob + `}[$__rate_interval])))`, Legend: "{{route}}", Key: true}}},
			{Kind: "timeseries", Title: "Runtime event loop delay p99", Unit: "s", Span: 12, Queries: []Query{{Expr: `max by (name, replica) (nodejs_eventloop_delay_p99_seconds{` + runtimeJob + `})`, Legend: "{{name}}/{{replica}}", Key: true}}},
		}},
		{Dashboard: byKey["cost"], Description: "LLM tokens and estimated cost by model (the hub's price table), and cost per workflow.", Panels: []Panel{
			{Kind: "barchart", Title: "LLM tokens by model", Unit: "short", Span: 12, Queries: []Query{{Expr: `sum by (model) (increase(agent_llm_tokens_used_total{` + hubJob + `}[$__range]))`, Legend: "{{model}}", Instant: true, Key: true}}},
			{Kind: "barchart", Title: "Estimated cost by model", Unit: "currencyUSD", Span: 12, Queries: []Query{{Expr: `sum by (model) (increase(agent_llm_cost_usd_total{` + hubJob + `}[$__range]))`, Legend: "{{model}}", Instant: true, Key: true}}},
			{Kind: "stat", Title: "Cost per workflow", Unit: "currencyUSD", Span: 8, Queries: []Query{{Expr: `sum(increase(agent_llm_cost_usd_total{` + hubJob + `}[$__range])) / clamp_min(sum(increase(agent_workflow_duration_seconds_count{` + hubJob + `}[$__range])), 1)`, Instant: true, Key: true}}},
			{Kind: "stat", Title: "Tokens in range", Unit: "short", Span: 8, Queries: []Query{{Expr: `sum(increase(agent_llm_tokens_used_total{` + hubJob + `}[$__range]))`, Instant: true, Key: true}}},
			{Kind: "stat", Title: "Cost in range", Unit: "currencyUSD", Span: 8, Queries: []Query{{Expr: `sum(increase(agent_llm_cost_usd_total{` + hubJob + `}[$__range]))`, Instant: true, Key: true}}},
			{Kind: "timeseries", Title: "Cost rate by model (USD per hour)", Unit: "currencyUSD", Span: 24, Queries: []Query{{Expr: `sum by (model) (rate(agent_llm_cost_usd_total{` + hubJob + `}[$__rate_interval])) * 3600`, Legend: "{{model}}", Key: true}}},
		}},
	}
}

func ptr[T any](v T) *T { return &v }

var dsRef = common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr("${" + DatasourceVar + "}")}

func target(q Query, i int) cog.Builder[variants.Dataquery] {
	b := prometheus.NewDataqueryBuilder().Expr(q.Expr).RefId(string(rune('A' + i))).Datasource(dsRef)
	if q.Legend != "" {
		b = b.LegendFormat(q.Legend)
	}
	if q.Instant {
		b = b.Instant()
	} else {
		b = b.Range()
	}
	if q.Table {
		b = b.Format(prometheus.PromQueryFormatTable)
	}
	return b
}

func panel(p Panel) (cog.Builder[dashboard.Panel], error) {
	h := uint32(8)
	if p.Kind == "stat" || p.Kind == "gauge" {
		h = 5
	}
	switch p.Kind {
	case "stat":
		b := stat.NewPanelBuilder().Title(p.Title).Datasource(dsRef).Span(p.Span).Height(h).Unit(p.Unit).Description(p.Desc).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
		for i, q := range p.Queries {
			b = b.WithTarget(target(q, i))
		}
		return b, nil
	case "gauge":
		b := gauge.NewPanelBuilder().Title(p.Title).Datasource(dsRef).Span(p.Span).Height(h).Unit(p.Unit).Description(p.Desc).Min(0).Max(1)
		for i, q := range p.Queries {
			b = b.WithTarget(target(q, i))
		}
		return b, nil
	case "timeseries":
		b := timeseries.NewPanelBuilder().Title(p.Title).Datasource(dsRef).Span(p.Span).Height(h).Unit(p.Unit).Description(p.Desc)
		for i, q := range p.Queries {
			b = b.WithTarget(target(q, i))
		}
		return b, nil
	case "barchart":
		b := barchart.NewPanelBuilder().Title(p.Title).Datasource(dsRef).Span(p.Span).Height(h).Unit(p.Unit).Description(p.Desc)
		for i, q := range p.Queries {
			b = b.WithTarget(target(q, i))
		}
		return b, nil
	case "table":
		b := table.NewPanelBuilder().Title(p.Title).Datasource(dsRef).Span(p.Span).Height(h).Unit(p.Unit).Description(p.Desc)
		for i, q := range p.Queries {
			b = b.WithTarget(target(q, i))
		}
		return b, nil
	}
	return nil, fmt.Errorf("panel %q: unknown kind %q", p.Title, p.Kind)
}

// Build builds one dashboard with the SDK. It builds the classic (v1)
// dashboard model on purpose: file provisioning in the Grafana releases
// people run (10-12) reads v1 JSON; the SDK marks it deprecated in favour
// of v2, which only Grafana 12's new schema reads.
//
//lint:ignore SA1019 v1 is what Grafana's file provisioning reads (see above)
func Build(s Spec) (dashboard.Dashboard, error) {
	//lint:ignore SA1019 v1 dashboards, see Build
	b := dashboard.NewDashboardBuilder(s.Title).Uid(s.UID).Description(s.Description).
		Tags([]string{"redforge"}).Refresh("30s").Time("now-1h", "now").Timezone("browser").
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder(DatasourceVar).Label("Prometheus").Type("prometheus"))
	for _, p := range s.Panels {
		pb, err := panel(p)
		if err != nil {
			return dashboard.Dashboard{}, err //lint:ignore SA1019 v1 dashboards, see Build
		}
		b = b.WithPanel(pb)
	}
	return b.Build()
}

// JSON returns a dashboard as the file cmd/dashboards writes.
func JSON(s Spec) ([]byte, error) {
	d, err := Build(s)
	if err != nil {
		return nil, fmt.Errorf("dashboard %s: %w", s.UID, err)
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// FileName is where a dashboard's JSON lives under packaging/grafana.
func FileName(s Spec) string { return "dashboards/" + strings.TrimPrefix(s.UID, "redforge-") + ".json" }
