// Package analytics owns fleet analytics: it turns the workflow and LLM
// counters the hub scrapes from its runtimes (hub/metrics.Runtimes) into
// interval samples in the data store, and answers the fleet and
// per-instance questions of GET /api/metrics/fleet and
// GET /api/metrics/instances/:id from those samples and the catalog, so
// the answers survive restarts and need no Prometheus. It does not scrape
// runtimes (hub/fleet does) nor serve HTTP (hub/api does).
//
// Samples (store.MetricSample), one of each per flush interval:
//   - SampleUsage, Source = the logical instance id: the interval's
//     Counters of that instance (written when it did anything or its
//     in-flight count changed);
//   - SampleHubUsage, Source = "hub:" + hub id: the sum over every
//     runtime that hub runs (always written), which makes a fleet-wide
//     window a read of (hubs × intervals) rows, not (instances × intervals).
//
// Value is the interval's workflow runs; Labels hold the Counters as JSON.
package analytics

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/redforge/controltower/hub/metrics"
	"github.com/redforge/controltower/hub/store"
)

// Sample names and the flush default.
const (
	SampleUsage          = "usage"
	SampleHubUsage       = "fleet_usage"
	HubSourcePrefix      = "hub:"
	DefaultFlushInterval = 15 * time.Second
)

// Counters are what happened in one interval: workflow runs, errors and
// their total duration, duration bucket counts (per
// metrics.WorkflowBuckets, not cumulative; runs past the last bound are
// runs minus their sum), workflows in flight at the end, and LLM use by
// model. Flows breaks runs down by flow (instance samples only).
type Counters struct {
	Runs    float64                  `json:"runs"`
	Errors  float64                  `json:"errors"`
	Sum     float64                  `json:"sum"`
	Buckets []float64                `json:"buckets,omitempty"`
	Active  float64                  `json:"active"`
	Models  map[string]*ModelCounter `json:"models,omitempty"`
	Flows   map[string]*FlowCounter  `json:"flows,omitempty"`
}

// ModelCounter is one model's LLM use in an interval.
type ModelCounter struct {
	Prompt     float64 `json:"prompt"`
	Completion float64 `json:"completion"`
	Requests   float64 `json:"requests"`
	Cost       float64 `json:"cost"`
}

// FlowCounter is one flow's workflows in an interval.
type FlowCounter struct {
	Runs   float64 `json:"runs"`
	Errors float64 `json:"errors"`
	Sum    float64 `json:"sum"`
}

func newCounters() *Counters {
	return &Counters{Buckets: make([]float64, len(metrics.WorkflowBuckets)), Models: map[string]*ModelCounter{}}
}

// busy reports whether c records any work.
func (c *Counters) busy() bool {
	if c.Runs != 0 || c.Errors != 0 {
		return true
	}
	for _, m := range c.Models {
		if m.Requests != 0 || m.Prompt != 0 || m.Completion != 0 {
			return true
		}
	}
	return false
}

// add adds o into c (Active too: callers add gauges of distinct runtimes).
func (c *Counters) add(o *Counters) {
	c.Runs += o.Runs
	c.Errors += o.Errors
	c.Sum += o.Sum
	c.Active += o.Active
	for i := range c.Buckets {
		if i < len(o.Buckets) {
			c.Buckets[i] += o.Buckets[i]
		}
	}
	for k, m := range o.Models {
		t := c.Models[k]
		if t == nil {
			t = &ModelCounter{}
			c.Models[k] = t
		}
		t.Prompt += m.Prompt
		t.Completion += m.Completion
		t.Requests += m.Requests
		t.Cost += m.Cost
	}
	if o.Flows != nil {
		if c.Flows == nil {
			c.Flows = map[string]*FlowCounter{}
		}
		for k, f := range o.Flows {
			t := c.Flows[k]
			if t == nil {
				t = &FlowCounter{}
				c.Flows[k] = t
			}
			t.Runs += f.Runs
			t.Errors += f.Errors
			t.Sum += f.Sum
		}
	}
}

// delta is cur minus prev for a counter, or cur after a reset (a runtime
// restarted: its counters start again from 0).
func delta(cur, prev float64) float64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// diff is the Counters of what a runtime did between two readings.
func diff(cur, prev metrics.Usage) *Counters {
	c := newCounters()
	c.Flows = map[string]*FlowCounter{}
	for name, f := range cur.Flows {
		p := prev.Flows[name]
		if p == nil || f.Count < p.Count {
			p = &metrics.FlowUsage{Buckets: make([]float64, len(f.Buckets))}
		}
		fc := &FlowCounter{Runs: delta(f.Count, p.Count), Errors: delta(f.Errors, p.Errors), Sum: delta(f.Sum, p.Sum)}
		c.Active += f.Active
		if fc.Runs == 0 && fc.Errors == 0 {
			continue
		}
		c.Flows[name] = fc
		c.Runs += fc.Runs
		c.Errors += fc.Errors
		c.Sum += fc.Sum
		below := 0.0 // cumulative → per bucket
		for i := range c.Buckets {
			if i < len(f.Buckets) && i < len(p.Buckets) {
				cum := delta(f.Buckets[i], p.Buckets[i])
				c.Buckets[i] += max(cum-below, 0)
				below = max(cum, below)
			}
		}
	}
	for name, m := range cur.Models {
		p := prev.Models[name]
		if p == nil || m.Requests < p.Requests {
			p = &metrics.ModelUsage{}
		}
		mc := &ModelCounter{Prompt: delta(m.PromptTokens, p.PromptTokens), Completion: delta(m.CompletionTokens, p.CompletionTokens),
			Requests: delta(m.Requests, p.Requests), Cost: delta(m.CostUSD, p.CostUSD)}
		if mc.Requests != 0 || mc.Prompt != 0 || mc.Completion != 0 {
			c.Models[name] = mc
		}
	}
	return c
}

// Runtimes is where the flusher reads runtime usage (hub/metrics).
type Runtimes interface {
	Snapshot() []metrics.RuntimeSnapshot
}

// Appender keeps samples (hub/store).
type Appender interface {
	AppendMetricSamples(ctx context.Context, ms []store.MetricSample) error
}

// Flusher writes the interval samples of one hub's runtimes.
type Flusher struct {
	Hub      string
	Runtimes Runtimes
	Store    Appender
	Now      func() time.Time

	mu         sync.Mutex
	prev       map[string]metrics.Usage // by allocation: the reading last flushed
	lastActive map[string]float64       // by instance: Active last written
}

// Flush computes what every runtime did since the previous flush and
// appends the instance and hub samples. A failed append loses nothing: the
// readings are kept and the next flush covers both intervals.
func (f *Flusher) Flush(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.prev == nil {
		f.prev, f.lastActive = map[string]metrics.Usage{}, map[string]float64{}
	}
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	at := now().UTC()
	snaps := f.Runtimes.Snapshot()
	byInstance := map[string]*Counters{}
	hub := newCounters()
	seen := map[string]bool{}
	for _, s := range snaps {
		seen[s.Allocation] = true
		d := diff(s.Usage, f.prev[s.Allocation])
		id := s.Labels["instance_id"]
		c := byInstance[id]
		if c == nil {
			c = newCounters()
			byInstance[id] = c
		}
		c.add(d)
		hub.add(&Counters{Runs: d.Runs, Errors: d.Errors, Sum: d.Sum, Buckets: d.Buckets, Active: d.Active, Models: d.Models})
	}
	var samples []store.MetricSample
	for id, c := range byInstance {
		if !c.busy() && c.Active == f.lastActive[id] {
			continue
		}
		s, err := sample(at, id, SampleUsage, c)
		if err != nil {
			return err
		}
		samples = append(samples, s)
	}
	s, err := sample(at, HubSourcePrefix+f.Hub, SampleHubUsage, hub)
	if err != nil {
		return err
	}
	samples = append(samples, s)
	if err := f.Store.AppendMetricSamples(ctx, samples); err != nil {
		return fmt.Errorf("fleet analytics: append %d samples: %w", len(samples), err)
	}
	for _, s := range snaps {
		f.prev[s.Allocation] = s.Usage
	}
	for id := range f.prev {
		if !seen[id] {
			delete(f.prev, id)
		}
	}
	f.lastActive = map[string]float64{}
	for id, c := range byInstance {
		f.lastActive[id] = c.Active
	}
	return nil
}

func sample(at time.Time, source, name string, c *Counters) (store.MetricSample, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return store.MetricSample{}, fmt.Errorf("fleet analytics: encode: %w", err)
	}
	return store.MetricSample{Time: at, Source: source, Name: name, Labels: b, Value: c.Runs}, nil
}
