package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Workflow and LLM metrics come from the flows: the RedForge runtime
// package (packaging/nodered/runtime) times workflows and counts LLM
// tokens inside each Node-RED runtime and serves them at RuntimePath of
// the runtime's admin API. Each hub scrapes the runtimes it runs (at the
// fleet's MetricsInterval, with the admin credentials it already holds),
// parses them with ParseUsage and keeps them in Runtimes, which re-exports
// them on the hub's /metrics with the runtime's labels.
//
// Cardinality: a runtime's series are capped at MaxFlowsPerRuntime flow
// values and MaxModelsPerRuntime model values (the rest are summed into
// OtherLabel), each value Sanitized, so a flow that names flows or models
// after its input adds at most
//
//	MaxFlowsPerRuntime × (len(WorkflowBuckets)+5) + MaxModelsPerRuntime × 4
//
// series per runtime (~760), whatever it does; the runtime nodes apply
// the same caps before the hub does.
const (
	// RuntimePath is where a runtime serves its metrics (admin API, behind
	// adminAuth).
	RuntimePath = "/redforge/metrics"
	// MaxRuntimeBody bounds what the hub reads of one runtime's metrics.
	MaxRuntimeBody = 1 << 20
	// MaxFlowsPerRuntime and MaxModelsPerRuntime cap the distinct flow and
	// model label values kept per runtime.
	MaxFlowsPerRuntime  = 50
	MaxModelsPerRuntime = 20
)

// WorkflowBuckets are the bucket bounds (seconds) of
// agent_workflow_duration_seconds, the same in the runtime nodes.
var WorkflowBuckets = []float64{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// Names of the runtime families the hub reads.
const (
	famWorkflowDuration = "agent_workflow_duration_seconds"
	famWorkflowErrors   = "agent_workflow_errors_total"
	famWorkflowActive   = "agent_workflows_active"
	famLLMTokens        = "agent_llm_tokens_used_total"
	famLLMRequests      = "agent_llm_requests_total"
	famLLMCost          = "agent_llm_cost_usd_total"
)

// FlowUsage is one flow's workflow counters in one runtime, cumulative
// since the runtime started.
type FlowUsage struct {
	Count   float64   `json:"count"`
	Errors  float64   `json:"errors"`
	Sum     float64   `json:"sum"`     // seconds
	Buckets []float64 `json:"buckets"` // cumulative counts, one per WorkflowBuckets bound
	Active  float64   `json:"active"`  // started, not yet ended (a gauge)
}

// ModelUsage is one model's LLM counters in one runtime, cumulative.
type ModelUsage struct {
	PromptTokens     float64 `json:"prompt_tokens"`
	CompletionTokens float64 `json:"completion_tokens"`
	Requests         float64 `json:"requests"`
	CostUSD          float64 `json:"cost_usd"`
}

// Usage is what one runtime reported.
type Usage struct {
	Flows  map[string]*FlowUsage  `json:"flows,omitempty"`
	Models map[string]*ModelUsage `json:"models,omitempty"`
}

// Clone returns a deep copy of u.
func (u Usage) Clone() Usage {
	c := Usage{Flows: make(map[string]*FlowUsage, len(u.Flows)), Models: make(map[string]*ModelUsage, len(u.Models))}
	for k, f := range u.Flows {
		fc := *f
		fc.Buckets = slices.Clone(f.Buckets)
		c.Flows[k] = &fc
	}
	for k, m := range u.Models {
		mc := *m
		c.Models[k] = &mc
	}
	return c
}

// ErrRuntimeMetrics wraps every ParseUsage failure.
var ErrRuntimeMetrics = errors.New("runtime metrics")

// ParseUsage reads a runtime's metrics (Prometheus text format, at most
// MaxRuntimeBody bytes) and keeps the agent_* families, sanitized and
// capped. Unknown families are ignored; a malformed body is an error
// wrapping ErrRuntimeMetrics.
func ParseUsage(r io.Reader) (Usage, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxRuntimeBody+1))
	if err != nil {
		return Usage{}, fmt.Errorf("%w: read: %v", ErrRuntimeMetrics, err)
	}
	if len(body) > MaxRuntimeBody {
		return Usage{}, fmt.Errorf("%w: more than %d bytes", ErrRuntimeMetrics, MaxRuntimeBody)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return Usage{}, fmt.Errorf("%w: %v", ErrRuntimeMetrics, err)
	}
	u := Usage{Flows: map[string]*FlowUsage{}, Models: map[string]*ModelUsage{}}
	flows := capper{max: MaxFlowsPerRuntime, names: collectLabel(fams, "flow", famWorkflowDuration, famWorkflowErrors, famWorkflowActive)}
	models := capper{max: MaxModelsPerRuntime, names: collectLabel(fams, "model", famLLMTokens, famLLMRequests, famLLMCost)}
	flow := func(m *dto.Metric) *FlowUsage {
		name := flows.name(labelOf(m, "flow"))
		f := u.Flows[name]
		if f == nil {
			f = &FlowUsage{Buckets: make([]float64, len(WorkflowBuckets))}
			u.Flows[name] = f
		}
		return f
	}
	mdl := func(m *dto.Metric) *ModelUsage {
		name := models.name(labelOf(m, "model"))
		mu := u.Models[name]
		if mu == nil {
			mu = &ModelUsage{}
			u.Models[name] = mu
		}
		return mu
	}
	for _, m := range metricsOf(fams, famWorkflowDuration) {
		if h := m.GetHistogram(); h != nil {
			addHistogram(flow(m), h)
		}
	}
	for _, m := range metricsOf(fams, famWorkflowErrors) {
		flow(m).Errors += valueOf(m)
	}
	for _, m := range metricsOf(fams, famWorkflowActive) {
		flow(m).Active += valueOf(m)
	}
	for _, m := range metricsOf(fams, famLLMTokens) {
		switch labelOf(m, "type") {
		case "prompt", "input":
			mdl(m).PromptTokens += valueOf(m)
		case "completion", "output":
			mdl(m).CompletionTokens += valueOf(m)
		}
	}
	for _, m := range metricsOf(fams, famLLMRequests) {
		mdl(m).Requests += valueOf(m)
	}
	for _, m := range metricsOf(fams, famLLMCost) {
		mdl(m).CostUSD += valueOf(m)
	}
	return u, nil
}

func addHistogram(f *FlowUsage, h *dto.Histogram) {
	f.Count += finite(float64(h.GetSampleCount()))
	f.Sum += finite(h.GetSampleSum())
	byBound := map[float64]float64{}
	for _, b := range h.GetBucket() {
		byBound[b.GetUpperBound()] = float64(b.GetCumulativeCount())
	}
	prev := 0.0
	for i, bound := range WorkflowBuckets {
		if v, ok := byBound[bound]; ok && v >= prev {
			prev = v
		}
		f.Buckets[i] += prev
	}
}

// capper maps outside label values to at most max kept values: the first
// max distinct sanitized values in sorted order are kept, the rest become
// OtherLabel. Sorting makes the choice stable from scrape to scrape.
type capper struct {
	max   int
	names []string
	kept  map[string]bool
}

func (c *capper) name(raw string) string {
	if c.kept == nil {
		c.kept = map[string]bool{}
		for _, n := range c.names {
			if len(c.kept) >= c.max {
				break
			}
			c.kept[n] = true
		}
	}
	if n := Sanitize(raw); c.kept[n] {
		return n
	}
	return OtherLabel
}

func collectLabel(fams map[string]*dto.MetricFamily, label string, names ...string) []string {
	set := map[string]bool{}
	for _, fam := range names {
		for _, m := range metricsOf(fams, fam) {
			set[Sanitize(labelOf(m, label))] = true
		}
	}
	delete(set, OtherLabel)
	return slices.Sorted(maps.Keys(set))
}

func metricsOf(fams map[string]*dto.MetricFamily, name string) []*dto.Metric {
	if f := fams[name]; f != nil {
		return f.GetMetric()
	}
	return nil
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func valueOf(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return finite(m.GetCounter().GetValue())
	case m.GetGauge() != nil:
		return finite(m.GetGauge().GetValue())
	case m.GetUntyped() != nil:
		return finite(m.GetUntyped().GetValue())
	}
	return 0
}

// finite maps NaN, ±Inf and negative values (none of which a counter of
// a well-behaved runtime sends) to 0.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0
	}
	return v
}

// RuntimeSnapshot is what Runtimes holds of one runtime.
type RuntimeSnapshot struct {
	Allocation string
	Labels     prometheus.Labels // RuntimeLabels
	Usage      Usage
	At         time.Time
}

// Runtimes holds the latest Usage of every runtime this hub runs and
// exports it as a prometheus.Collector. It is safe for concurrent use.
type Runtimes struct {
	mu   sync.RWMutex
	byID map[string]*RuntimeSnapshot // by allocation id

	duration, errors, active        *prometheus.Desc
	tokens, requests, cost, runtime *prometheus.Desc
}

// NewRuntimes returns an empty collector.
func NewRuntimes() *Runtimes {
	rl := runtimeLabelNames
	with := func(extra ...string) []string { return append(slices.Clone(rl), extra...) }
	return &Runtimes{
		byID: map[string]*RuntimeSnapshot{},
		duration: prometheus.NewDesc(famWorkflowDuration,
			"Duration of finished workflows (timed by the RedForge workflow node), by runtime and flow.", with("flow"), nil),
		errors: prometheus.NewDesc(famWorkflowErrors,
			"Workflows that ended in error or timed out, by runtime and flow.", with("flow"), nil),
		active: prometheus.NewDesc(famWorkflowActive,
			"Workflows started and not yet ended, by runtime and flow.", with("flow"), nil),
		tokens: prometheus.NewDesc(famLLMTokens,
			"LLM tokens used (recorded by the RedForge LLM usage node), by runtime, model and type (prompt, completion).", with("model", "type"), nil),
		requests: prometheus.NewDesc(famLLMRequests,
			"LLM calls recorded, by runtime and model.", with("model"), nil),
		cost: prometheus.NewDesc(famLLMCost,
			"Estimated LLM cost in US dollars (tokens × the hub's price table), by runtime and model.", with("model"), nil),
		runtime: prometheus.NewDesc("agent_runtime_last_scrape_timestamp_seconds",
			"Unix time the hub last read the runtime's workflow and LLM metrics.", rl, nil),
	}
}

// Observe stores the latest usage of the runtime of allocation alloc.
func (r *Runtimes) Observe(alloc string, labels prometheus.Labels, u Usage, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byID[alloc] = &RuntimeSnapshot{Allocation: alloc, Labels: labels, Usage: u, At: at}
}

// Forget drops a runtime this hub no longer runs.
func (r *Runtimes) Forget(alloc string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byID, alloc)
}

// Snapshot returns a copy of every runtime's latest usage.
func (r *Runtimes) Snapshot() []RuntimeSnapshot {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]RuntimeSnapshot, 0, len(r.byID))
	for _, s := range r.byID {
		c := *s
		c.Usage = s.Usage.Clone()
		out = append(out, c)
	}
	return out
}

// Describe implements prometheus.Collector.
func (r *Runtimes) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{r.duration, r.errors, r.active, r.tokens, r.requests, r.cost, r.runtime} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (r *Runtimes) Collect(ch chan<- prometheus.Metric) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, s := range r.byID {
		lv := []string{s.Labels["instance_id"], s.Labels["name"], s.Labels["color"], s.Labels["replica"]}
		ch <- prometheus.MustNewConstMetric(r.runtime, prometheus.GaugeValue, float64(s.At.UnixMilli())/1000, lv...)
		for flow, f := range s.Usage.Flows {
			l := append(lv[:4:4], flow)
			buckets := make(map[float64]uint64, len(WorkflowBuckets)) // kept by the metric until written
			for i, b := range WorkflowBuckets {
				buckets[b] = uint64(f.Buckets[i])
			}
			ch <- prometheus.MustNewConstHistogram(r.duration, uint64(f.Count), f.Sum, buckets, l...)
			ch <- prometheus.MustNewConstMetric(r.errors, prometheus.CounterValue, f.Errors, l...)
			ch <- prometheus.MustNewConstMetric(r.active, prometheus.GaugeValue, f.Active, l...)
		}
		for model, m := range s.Usage.Models {
			l := append(lv[:4:4], model)
			ch <- prometheus.MustNewConstMetric(r.tokens, prometheus.CounterValue, m.PromptTokens, append(l, "prompt")...)
			ch <- prometheus.MustNewConstMetric(r.tokens, prometheus.CounterValue, m.CompletionTokens, append(l, "completion")...)
			ch <- prometheus.MustNewConstMetric(r.requests, prometheus.CounterValue, m.Requests, l...)
			ch <- prometheus.MustNewConstMetric(r.cost, prometheus.CounterValue, m.CostUSD, l...)
		}
	}
}
