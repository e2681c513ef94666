package analytics

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/metrics"
	"github.com/redforge/controltower/hub/store"
)

// Window bounds of a query.
const (
	DefaultWindow = time.Hour
	MinWindow     = time.Minute
	MaxWindow     = 7 * 24 * time.Hour
	// SeriesPoints is how many points a window's series has at most.
	SeriesPoints = 60
)

// Reader reads samples (hub/store).
type Reader interface {
	QueryMetricSamples(ctx context.Context, q store.MetricQuery) ([]store.MetricSample, error)
}

// Catalog is what the queries read of the control plane.
type Catalog interface {
	Instances() []catalog.Instance
	Allocations() []catalog.Allocation
	Hubs() []catalog.Hub
}

// Service answers the fleet analytics queries.
type Service struct {
	Store   Reader
	Catalog Catalog
	Now     func() time.Time
}

// WorkflowStats are the workflows of a window.
type WorkflowStats struct {
	Runs        float64 `json:"runs"`
	Errors      float64 `json:"errors"`
	ErrorRate   float64 `json:"error_rate"` // errors / runs, 0 without runs
	PerMinute   float64 `json:"per_minute"`
	Active      float64 `json:"active"` // in flight at the window's end
	AvgSeconds  float64 `json:"avg_seconds"`
	P50Seconds  float64 `json:"p50_seconds"`
	P95Seconds  float64 `json:"p95_seconds"`
	P99Seconds  float64 `json:"p99_seconds"`
	BucketsNote string  `json:"buckets_note,omitempty"`
}

// ModelStats is one model's LLM use in a window.
type ModelStats struct {
	Model            string  `json:"model"`
	PromptTokens     float64 `json:"prompt_tokens"`
	CompletionTokens float64 `json:"completion_tokens"`
	Tokens           float64 `json:"tokens"`
	Requests         float64 `json:"requests"`
	CostUSD          float64 `json:"cost_usd"`
}

// LLMStats is the LLM use of a window.
type LLMStats struct {
	Tokens  float64      `json:"tokens"`
	CostUSD float64      `json:"cost_usd"`
	ByModel []ModelStats `json:"by_model"`
}

// Point is one step of a window's series.
type Point struct {
	Time       time.Time `json:"time"`
	Runs       float64   `json:"runs"`
	Errors     float64   `json:"errors"`
	P50Seconds float64   `json:"p50_seconds"`
	P95Seconds float64   `json:"p95_seconds"`
	P99Seconds float64   `json:"p99_seconds"`
	Tokens     float64   `json:"tokens"`
	CostUSD    float64   `json:"cost_usd"`
}

// Counts are instances (or replicas) by status.
type Counts struct {
	Total     int            `json:"total"`
	Healthy   int            `json:"healthy"`
	Unhealthy int            `json:"unhealthy"`
	ByStatus  map[string]int `json:"by_status"`
}

// FleetStats is the answer of GET /api/metrics/fleet.
type FleetStats struct {
	Window    string        `json:"window"`
	From      time.Time     `json:"from"`
	To        time.Time     `json:"to"`
	Step      string        `json:"step"`
	Instances Counts        `json:"instances"`
	Replicas  Counts        `json:"replicas"`
	Workflows WorkflowStats `json:"workflows"`
	LLM       LLMStats      `json:"llm"`
	Series    []Point       `json:"series"`
}

// FlowStats is one flow's workflows in a window.
type FlowStats struct {
	Flow       string  `json:"flow"`
	Runs       float64 `json:"runs"`
	Errors     float64 `json:"errors"`
	ErrorRate  float64 `json:"error_rate"`
	AvgSeconds float64 `json:"avg_seconds"`
}

// ResourcePoint is one CPU and memory sample of an instance (averaged
// over its replicas and the step).
type ResourcePoint struct {
	Time        time.Time `json:"time"`
	CPUPercent  float64   `json:"cpu_percent"`
	MemoryBytes float64   `json:"memory_bytes"`
}

// InstanceStats is the answer of GET /api/metrics/instances/:id.
type InstanceStats struct {
	InstanceID string          `json:"instance_id"`
	Name       string          `json:"name"`
	Status     string          `json:"status"`
	Window     string          `json:"window"`
	From       time.Time       `json:"from"`
	To         time.Time       `json:"to"`
	Step       string          `json:"step"`
	Replicas   Counts          `json:"replicas"`
	Workflows  WorkflowStats   `json:"workflows"`
	Flows      []FlowStats     `json:"flows"`
	LLM        LLMStats        `json:"llm"`
	Series     []Point         `json:"series"`
	Resources  []ResourcePoint `json:"resources"`
}

// ParseWindow parses a window such as "15m", "1h" or "24h" ("" is
// DefaultWindow); out of MinWindow..MaxWindow is an error.
func ParseWindow(s string) (time.Duration, error) {
	if s == "" {
		return DefaultWindow, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if strings.HasSuffix(s, "d") {
			if n, err2 := time.ParseDuration(strings.TrimSuffix(s, "d") + "h"); err2 == nil {
				d, err = n*24, nil
			}
		}
		if err != nil {
			return 0, fmt.Errorf("window must be a duration such as 15m, 1h or 24h")
		}
	}
	if d < MinWindow || d > MaxWindow {
		return 0, fmt.Errorf("window must be between %s and %s", MinWindow, "7d")
	}
	return d, nil
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// stepOf is the series step of a window: window/SeriesPoints, at least a
// flush interval.
func stepOf(window time.Duration) time.Duration {
	return max(window/SeriesPoints, DefaultFlushInterval)
}

// Fleet answers GET /api/metrics/fleet for the window ending now.
func (s *Service) Fleet(ctx context.Context, window time.Duration) (FleetStats, error) {
	to := s.now()
	from := to.Add(-window)
	step := stepOf(window)
	out := FleetStats{Window: window.String(), From: from, To: to, Step: step.String()}
	out.Instances, out.Replicas = s.counts(func(catalog.Instance) bool { return true })
	// One read per hub of the cluster: by source and name, the store's
	// narrowest index, whatever the window (a hub removed from the cluster
	// no longer counts).
	var samples []store.MetricSample
	for _, h := range s.Catalog.Hubs() {
		ss, err := s.samples(ctx, store.MetricQuery{Source: HubSourcePrefix + h.ID, Name: SampleHubUsage, Start: from, End: to})
		if err != nil {
			return out, err
		}
		samples = append(samples, ss...)
	}
	total, series, active := aggregate(samples, from, step, int(math.Ceil(float64(window)/float64(step))))
	out.Workflows = workflowStats(total, window)
	out.Workflows.Active = active
	out.LLM = llmStats(total)
	out.Series = series
	return out, nil
}

// Instance answers GET /api/metrics/instances/:id for a logical instance
// (rows are it and its color rows) over the window ending now.
func (s *Service) Instance(ctx context.Context, logical catalog.Instance, rows []catalog.Instance, window time.Duration) (InstanceStats, error) {
	to := s.now()
	from := to.Add(-window)
	step := stepOf(window)
	out := InstanceStats{InstanceID: logical.ID, Name: logical.Name, Status: logical.Observed.Status,
		Window: window.String(), From: from, To: to, Step: step.String()}
	rowIDs := map[string]bool{}
	for _, r := range rows {
		rowIDs[r.ID] = true
	}
	_, out.Replicas = s.counts(func(i catalog.Instance) bool { return rowIDs[i.ID] })
	samples, err := s.samples(ctx, store.MetricQuery{Source: logical.ID, Name: SampleUsage, Start: from, End: to})
	if err != nil {
		return out, err
	}
	total, series, active := aggregate(samples, from, step, int(math.Ceil(float64(window)/float64(step))))
	out.Workflows = workflowStats(total, window)
	out.Workflows.Active = active
	out.LLM = llmStats(total)
	out.Series = series
	out.Flows = flowStats(total)
	out.Resources, err = s.resources(ctx, rows, from, to, step)
	return out, err
}

// counts counts the logical instances (by their summarised status) and
// the replicas (allocations, by observed status) of the rows keep accepts.
func (s *Service) counts(keep func(catalog.Instance) bool) (insts, reps Counts) {
	insts.ByStatus, reps.ByStatus = map[string]int{}, map[string]int{}
	rows := map[string]bool{}
	for _, i := range s.Catalog.Instances() {
		if !keep(i) {
			continue
		}
		rows[i.ID] = true
		if strings.Contains(i.Name, ".") { // a deployment's color row
			continue
		}
		countStatus(&insts, i.Observed.Status)
	}
	for _, a := range s.Catalog.Allocations() {
		if rows[a.InstanceID] && a.Desired != catalog.AllocStop {
			countStatus(&reps, a.Observed.Status)
		}
	}
	return insts, reps
}

func countStatus(c *Counts, status string) {
	if status == "" {
		status = "pending"
	}
	c.Total++
	c.ByStatus[status]++
	switch status {
	case "running":
		c.Healthy++
	case "unhealthy", "failed", "crash_looping", "error":
		c.Unhealthy++
	}
}

// samples reads every sample q selects, page by page (a page ends inside
// a run of equal times: the next page starts at that time and skips what
// was read).
func (s *Service) samples(ctx context.Context, q store.MetricQuery) ([]store.MetricSample, error) {
	q.Limit = store.MaxLimit
	var out []store.MetricSample
	skip := 0
	for {
		page, err := s.Store.QueryMetricSamples(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("fleet analytics: %w", err)
		}
		full := len(page) == q.Limit
		page = page[min(skip, len(page)):]
		out = append(out, page...)
		if !full || len(page) == 0 {
			return out, nil
		}
		last := page[len(page)-1].Time
		skip = 0
		for i := len(out) - 1; i >= 0 && out[i].Time.Equal(last); i-- {
			skip++
		}
		q.Start = last
	}
}

// aggregate sums the samples into a total and per-step points; active is
// the sum over sources of the last sample's in-flight count.
func aggregate(samples []store.MetricSample, from time.Time, step time.Duration, n int) (total *Counters, series []Point, active float64) {
	total = newCounters()
	total.Flows = map[string]*FlowCounter{}
	steps := make([]*Counters, SeriesPoints+1)
	lastActive := map[string]float64{}
	for _, sm := range samples {
		var c Counters
		if err := json.Unmarshal(sm.Labels, &c); err != nil {
			continue // not written by this package
		}
		total.add(&c)
		lastActive[sm.Source] = c.Active
		i := int(sm.Time.Sub(from) / step)
		if i < 0 || i >= len(steps) {
			continue
		}
		if steps[i] == nil {
			steps[i] = newCounters()
		}
		steps[i].add(&c)
	}
	for _, a := range lastActive {
		active += a
	}
	for i := 0; i < n && i < len(steps); i++ {
		p := Point{Time: from.Add(time.Duration(i) * step)}
		if c := steps[i]; c != nil {
			p.Runs, p.Errors = c.Runs, c.Errors
			p.P50Seconds, p.P95Seconds, p.P99Seconds = quantile(c, 0.5), quantile(c, 0.95), quantile(c, 0.99)
			for _, m := range c.Models {
				p.Tokens += m.Prompt + m.Completion
				p.CostUSD += m.Cost
			}
		}
		series = append(series, p)
	}
	return total, series, active
}

func workflowStats(c *Counters, window time.Duration) WorkflowStats {
	w := WorkflowStats{Runs: c.Runs, Errors: c.Errors, PerMinute: c.Runs / window.Minutes()}
	if c.Runs > 0 {
		w.ErrorRate = c.Errors / c.Runs
		w.AvgSeconds = c.Sum / c.Runs
		w.P50Seconds, w.P95Seconds, w.P99Seconds = quantile(c, 0.5), quantile(c, 0.95), quantile(c, 0.99)
	}
	return w
}

func llmStats(c *Counters) LLMStats {
	out := LLMStats{ByModel: []ModelStats{}}
	for name, m := range c.Models {
		ms := ModelStats{Model: name, PromptTokens: m.Prompt, CompletionTokens: m.Completion,
			Tokens: m.Prompt + m.Completion, Requests: m.Requests, CostUSD: m.Cost}
		out.Tokens += ms.Tokens
		out.CostUSD += ms.CostUSD
		out.ByModel = append(out.ByModel, ms)
	}
	sort.Slice(out.ByModel, func(i, j int) bool {
		if out.ByModel[i].CostUSD != out.ByModel[j].CostUSD {
			return out.ByModel[i].CostUSD > out.ByModel[j].CostUSD
		}
		return out.ByModel[i].Model < out.ByModel[j].Model
	})
	return out
}

func flowStats(c *Counters) []FlowStats {
	out := []FlowStats{}
	for name, f := range c.Flows {
		fs := FlowStats{Flow: name, Runs: f.Runs, Errors: f.Errors}
		if f.Runs > 0 {
			fs.ErrorRate, fs.AvgSeconds = f.Errors/f.Runs, f.Sum/f.Runs
		}
		out = append(out, fs)
	}
	slices.SortFunc(out, func(a, b FlowStats) int { return strings.Compare(a.Flow, b.Flow) })
	return out
}

// quantile estimates the q-quantile of c's durations from its buckets the
// way Prometheus's histogram_quantile does: linear within the bucket that
// holds the rank; past the last bound it is the last bound.
func quantile(c *Counters, q float64) float64 {
	if c.Runs <= 0 {
		return 0
	}
	rank := q * c.Runs
	cum, lower := 0.0, 0.0
	for i, bound := range metrics.WorkflowBuckets {
		n := 0.0
		if i < len(c.Buckets) {
			n = c.Buckets[i]
		}
		if cum+n >= rank && n > 0 {
			return lower + (bound-lower)*(rank-cum)/n
		}
		cum += n
		lower = bound
	}
	return metrics.WorkflowBuckets[len(metrics.WorkflowBuckets)-1]
}

// resources reads the CPU and memory samples of rows and averages them
// per step.
func (s *Service) resources(ctx context.Context, rows []catalog.Instance, from, to time.Time, step time.Duration) ([]ResourcePoint, error) {
	type acc struct{ cpu, mem, ncpu, nmem float64 }
	steps := map[int]*acc{}
	for _, r := range rows {
		for _, name := range []string{"cpu_percent", "memory_bytes"} {
			ss, err := s.samples(ctx, store.MetricQuery{Source: r.ID, Name: name, Start: from, End: to})
			if err != nil {
				return nil, err
			}
			for _, sm := range ss {
				i := int(sm.Time.Sub(from) / step)
				a := steps[i]
				if a == nil {
					a = &acc{}
					steps[i] = a
				}
				if name == "cpu_percent" {
					a.cpu, a.ncpu = a.cpu+sm.Value, a.ncpu+1
				} else {
					a.mem, a.nmem = a.mem+sm.Value, a.nmem+1
				}
			}
		}
	}
	out := []ResourcePoint{}
	for _, i := range slices.Sorted(maps.Keys(steps)) {
		a := steps[i]
		p := ResourcePoint{Time: from.Add(time.Duration(i) * step)}
		if a.ncpu > 0 {
			p.CPUPercent = a.cpu / a.ncpu
		}
		if a.nmem > 0 {
			p.MemoryBytes = a.mem / a.nmem
		}
		out = append(out, p)
	}
	return out, nil
}

// PerInstance returns the workflow stats of every instance that has
// samples in the window ending now (the alert rules' per-instance
// metrics), by logical instance id.
func (s *Service) PerInstance(ctx context.Context, window time.Duration) (map[string]WorkflowStats, error) {
	to := s.now()
	samples, err := s.samples(ctx, store.MetricQuery{Name: SampleUsage, Start: to.Add(-window), End: to})
	if err != nil {
		return nil, err
	}
	by := map[string][]store.MetricSample{}
	for _, sm := range samples {
		by[sm.Source] = append(by[sm.Source], sm)
	}
	out := make(map[string]WorkflowStats, len(by))
	for id, ss := range by {
		total, _, active := aggregate(ss, to.Add(-window), stepOf(window), 0)
		w := workflowStats(total, window)
		w.Active = active
		out[id] = w
	}
	return out, nil
}
