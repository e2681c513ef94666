package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
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

// Families of the runtime series on the hub's /metrics, in the order
// written.
var runtimeFamilies = []struct{ name, typ, help string }{
	{famWorkflowDuration, "histogram", "Duration of finished workflows (timed by the RedForge workflow node), by runtime and flow."},
	{famWorkflowErrors, "counter", "Workflows that ended in error or timed out, by runtime and flow."},
	{famWorkflowActive, "gauge", "Workflows started and not yet ended, by runtime and flow."},
	{famLLMTokens, "counter", "LLM tokens used (recorded by the RedForge LLM usage node), by runtime, model and type (prompt, completion)."},
	{famLLMRequests, "counter", "LLM calls recorded, by runtime and model."},
	{famLLMCost, "counter", "Estimated LLM cost in US dollars (tokens × the hub's price table), by runtime and model."},
	{"agent_runtime_last_scrape_timestamp_seconds", "gauge", "Unix time the hub last read the runtime's workflow and LLM metrics."},
}

// runtimeEntry is one runtime's snapshot and its series, rendered once
// when observed (every MetricsInterval), one text block per family.
type runtimeEntry struct {
	snap   RuntimeSnapshot
	blocks [][]byte // by runtimeFamilies index
}

// Runtimes holds the latest Usage of every runtime this hub runs and
// writes it on the hub's /metrics. A hub may run thousands of runtimes
// with tens of flows each (hundreds of thousands of series), so their
// exposition is rendered when a runtime is observed, not at each scrape:
// a scrape copies the blocks (WriteTo). It is safe for concurrent use.
type Runtimes struct {
	mu    sync.RWMutex
	byID  map[string]*runtimeEntry // by allocation id
	order []string                 // allocation ids, sorted; nil when stale
}

// NewRuntimes returns an empty collection.
func NewRuntimes() *Runtimes {
	return &Runtimes{byID: map[string]*runtimeEntry{}}
}

// Observe stores the latest usage of the runtime of allocation alloc.
func (r *Runtimes) Observe(alloc string, labels prometheus.Labels, u Usage, at time.Time) {
	e := &runtimeEntry{snap: RuntimeSnapshot{Allocation: alloc, Labels: labels, Usage: u, At: at}, blocks: render(labels, u, at)}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byID[alloc]; !ok {
		r.order = nil
	}
	r.byID[alloc] = e
}

// Forget drops a runtime this hub no longer runs.
func (r *Runtimes) Forget(alloc string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byID[alloc]; ok {
		delete(r.byID, alloc)
		r.order = nil
	}
}

// Snapshot returns a copy of every runtime's latest usage.
func (r *Runtimes) Snapshot() []RuntimeSnapshot {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]RuntimeSnapshot, 0, len(r.byID))
	for _, e := range r.byID {
		c := e.snap
		c.Usage = e.snap.Usage.Clone()
		out = append(out, c)
	}
	return out
}

// WriteTo writes every runtime's series in the Prometheus text format,
// each family once with its HELP and TYPE, runtimes in allocation order.
func (r *Runtimes) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	if r.order == nil {
		r.order = slices.Sorted(maps.Keys(r.byID))
	}
	order, byID := r.order, make([]*runtimeEntry, 0, len(r.order))
	for _, id := range order {
		byID = append(byID, r.byID[id])
	}
	r.mu.Unlock()
	var n int64
	for f, fam := range runtimeFamilies {
		if len(byID) == 0 {
			break
		}
		k, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", fam.name, fam.help, fam.name, fam.typ)
		n += int64(k)
		if err != nil {
			return n, err
		}
		for _, e := range byID {
			k, err := w.Write(e.blocks[f])
			n += int64(k)
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// escapeLabel escapes a label value for the text format: backslash,
// double quote and newline.
func escapeLabel(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '"':
			b = append(b, '\\', '"')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return b
}

func appendLabel(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, '=', '"')
	b = escapeLabel(b, value)
	return append(b, '"')
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// line appends `name{prefix,extra...} value\n`; extra are name, value pairs.
func line(b []byte, name, prefix string, v float64, extra ...string) []byte {
	b = append(b, name...)
	b = append(b, '{')
	b = append(b, prefix...)
	for i := 0; i+1 < len(extra); i += 2 {
		b = append(b, ',')
		b = appendLabel(b, extra[i], extra[i+1])
	}
	b = append(b, '}', ' ')
	b = appendFloat(b, v)
	return append(b, '\n')
}

// leValues are the le labels of WorkflowBuckets, formatted once.
var leValues = func() []string {
	out := make([]string, len(WorkflowBuckets))
	for i, b := range WorkflowBuckets {
		out[i] = strconv.FormatFloat(b, 'g', -1, 64)
	}
	return out
}()

// render makes one runtime's text blocks, one per runtimeFamilies entry.
// The runtime labels come first (an empty color is left out: the same
// series to Prometheus), flows and models in sorted order.
func render(labels prometheus.Labels, u Usage, at time.Time) [][]byte {
	prefix := renderRuntimeLabels(labels)
	blocks := make([][]byte, len(runtimeFamilies))
	flows := slices.Sorted(maps.Keys(u.Flows))
	for _, flow := range flows {
		f := u.Flows[flow]
		for i := range WorkflowBuckets {
			blocks[0] = line(blocks[0], famWorkflowDuration+"_bucket", prefix, f.Buckets[i], "flow", flow, "le", leValues[i])
		}
		blocks[0] = line(blocks[0], famWorkflowDuration+"_bucket", prefix, f.Count, "flow", flow, "le", "+Inf")
		blocks[0] = line(blocks[0], famWorkflowDuration+"_sum", prefix, f.Sum, "flow", flow)
		blocks[0] = line(blocks[0], famWorkflowDuration+"_count", prefix, f.Count, "flow", flow)
		blocks[1] = line(blocks[1], famWorkflowErrors, prefix, f.Errors, "flow", flow)
		blocks[2] = line(blocks[2], famWorkflowActive, prefix, f.Active, "flow", flow)
	}
	for _, model := range slices.Sorted(maps.Keys(u.Models)) {
		m := u.Models[model]
		blocks[3] = line(blocks[3], famLLMTokens, prefix, m.PromptTokens, "model", model, "type", "prompt")
		blocks[3] = line(blocks[3], famLLMTokens, prefix, m.CompletionTokens, "model", model, "type", "completion")
		blocks[4] = line(blocks[4], famLLMRequests, prefix, m.Requests, "model", model)
		blocks[5] = line(blocks[5], famLLMCost, prefix, m.CostUSD, "model", model)
	}
	blocks[6] = line(blocks[6], "agent_runtime_last_scrape_timestamp_seconds", prefix, float64(at.UnixMilli())/1000)
	return blocks
}
