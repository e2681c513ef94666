package alert

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redforge/controltower/hub/analytics"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/hub/metrics"
)

// Metric is a metric hub-native rules may use: the same names (and labels)
// as the hub's /metrics, so an operator learns one vocabulary.
type Metric struct {
	Name   string   `json:"name"`
	Help   string   `json:"help"`
	Labels []string `json:"labels"`
}

var replicaLabels = []string{"instance_id", "name", "color", "replica", "hub"}

// Metrics lists every metric a rule may use.
var Metrics = []Metric{
	{"nodered_instance_up", "1 while a replica runs and answers, 0 once it failed, crash-loops or errs (a replica starting after a failure keeps its last value).", replicaLabels},
	{"nodered_instance_crash_looping", "1 when a replica crashed too often and the hub stopped restarting it.", replicaLabels},
	{"nodered_instance_cpu_usage", "CPU use of a replica, percent of one core (its last sample).", replicaLabels},
	{"nodered_instance_memory_bytes", "Memory use of a replica (its last sample).", replicaLabels},
	{"controltower_hub_up", "1 while the cluster sees a hub up, 0 when it is down.", []string{"hub", "region"}},
	{"controltower_component_up", "1 while a component of the leading hub (raft, store, coord, broker) passes its health check.", []string{"component"}},
	{"controltower_deployment_failed", "1 for each deployment that failed or rolled back within the last hour.", []string{"deployment", "instance_id", "name"}},
	{"agent_workflow_error_rate", "Errors per workflow run of an instance over the last 5 minutes.", []string{"instance_id", "name"}},
	{"agent_workflow_p95_seconds", "95th percentile of an instance's workflow durations over the last 5 minutes.", []string{"instance_id", "name"}},
	{"agent_llm_cost_usd", "Estimated LLM cost of the whole fleet over the last hour, by model.", []string{"model"}},
}

// MetricByName returns the metric named name.
func MetricByName(name string) (Metric, bool) {
	i := slices.IndexFunc(Metrics, func(m Metric) bool { return m.Name == name })
	if i < 0 {
		return Metric{}, false
	}
	return Metrics[i], true
}

// MetricNames lists the metric names.
func MetricNames() []string {
	out := make([]string, len(Metrics))
	for i, m := range Metrics {
		out[i] = m.Name
	}
	return out
}

// Series is one labelled value of a metric.
type Series struct {
	Labels map[string]string
	Value  float64
}

// Source gives the current values of a metric.
type Source interface {
	Series(ctx context.Context, metric string) ([]Series, error)
}

// SignalCatalog is what Signals reads of the control plane.
type SignalCatalog interface {
	Instances() []catalog.Instance
	Allocations() []catalog.Allocation
	Hubs() []catalog.Hub
	Deployments(instanceID string) []catalog.Deployment
}

// Windowed is the fleet analytics Signals reads (hub/analytics.Service).
type Windowed interface {
	PerInstance(ctx context.Context, window time.Duration) (map[string]analytics.WorkflowStats, error)
	Fleet(ctx context.Context, window time.Duration) (analytics.FleetStats, error)
}

// Signals is the hub's Source: the catalog (replica statuses, hubs,
// deployments), the latest resource samples of every replica (from
// instance.metrics events, which reach every hub), the leading hub's
// component health and the fleet analytics.
type Signals struct {
	Catalog    SignalCatalog
	Analytics  Windowed
	Components func() map[string]bool
	Now        func() time.Time

	mu        sync.Mutex
	resources map[string]resourceSample // by allocation
}

type resourceSample struct {
	cpu, mem float64
	at       time.Time
}

// resourceTTL is how long a resource sample stands for a replica.
const resourceTTL = 2 * time.Minute

func (s *Signals) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Observe takes instance.metrics events (other events are ignored).
func (s *Signals) Observe(e events.Event) {
	if e.Type != events.InstanceMetrics {
		return
	}
	var m struct {
		Allocation  string  `json:"allocation"`
		CPUPercent  float64 `json:"cpu_percent"`
		MemoryBytes float64 `json:"memory_bytes"`
	}
	if json.Unmarshal(e.Data, &m) != nil || m.Allocation == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resources == nil {
		s.resources = map[string]resourceSample{}
	}
	s.resources[m.Allocation] = resourceSample{cpu: m.CPUPercent, mem: m.MemoryBytes, at: s.now()}
}

// Series implements Source.
func (s *Signals) Series(ctx context.Context, metric string) ([]Series, error) {
	switch metric {
	case "nodered_instance_up", "nodered_instance_crash_looping", "nodered_instance_cpu_usage", "nodered_instance_memory_bytes":
		return s.replicas(metric), nil
	case "controltower_hub_up":
		var out []Series
		for _, h := range s.Catalog.Hubs() {
			up := 1.0
			if h.State == catalog.HubDown {
				up = 0
			}
			out = append(out, Series{Labels: map[string]string{"hub": h.ID, "region": h.Region}, Value: up})
		}
		return out, nil
	case "controltower_component_up":
		var out []Series
		if s.Components != nil {
			for c, ok := range s.Components() {
				out = append(out, Series{Labels: map[string]string{"component": c}, Value: b2f(ok)})
			}
		}
		return out, nil
	case "controltower_deployment_failed":
		return s.deployments(), nil
	case "agent_workflow_error_rate", "agent_workflow_p95_seconds":
		return s.workflows(ctx, metric)
	case "agent_llm_cost_usd":
		if s.Analytics == nil {
			return nil, nil
		}
		f, err := s.Analytics.Fleet(ctx, time.Hour)
		if err != nil {
			return nil, err
		}
		var out []Series
		for _, m := range f.LLM.ByModel {
			out = append(out, Series{Labels: map[string]string{"model": m.Model}, Value: m.CostUSD})
		}
		return out, nil
	}
	return nil, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// replicas reads the replica metrics from the catalog: every allocation
// of an instance that should run.
func (s *Signals) replicas(metric string) []Series {
	rows := map[string]catalog.Instance{}
	for _, i := range s.Catalog.Instances() {
		rows[i.ID] = i
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var out []Series
	for _, a := range s.Catalog.Allocations() {
		row, ok := rows[a.InstanceID]
		if !ok || a.Desired == catalog.AllocStop || row.DesiredState == catalog.DesiredStopped {
			continue
		}
		rl := metrics.RuntimeLabels(row.ID, row.Name, a.Replica)
		l := map[string]string{"instance_id": rl["instance_id"], "name": rl["name"], "color": rl["color"],
			"replica": strconv.Itoa(a.Replica), "hub": a.Hub}
		st := a.Observed.Status
		switch metric {
		case "nodered_instance_up":
			switch st {
			case "running":
				out = append(out, Series{l, 1})
			case "failed", "crash_looping", "unhealthy", "error":
				out = append(out, Series{l, 0})
			} // creating, starting, stopped: no value (a firing alert keeps firing)
		case "nodered_instance_crash_looping":
			if st != "" {
				out = append(out, Series{l, b2f(st == "crash_looping")})
			}
		case "nodered_instance_cpu_usage", "nodered_instance_memory_bytes":
			r, ok := s.resources[a.ID]
			if !ok || now.Sub(r.at) > resourceTTL {
				continue
			}
			v := r.cpu
			if metric == "nodered_instance_memory_bytes" {
				v = r.mem
			}
			out = append(out, Series{l, v})
		}
	}
	return out
}

func (s *Signals) deployments() []Series {
	names := map[string]string{}
	for _, i := range s.Catalog.Instances() {
		names[i.ID] = i.Name
	}
	cut := s.now().Add(-time.Hour)
	var out []Series
	for _, d := range s.Catalog.Deployments("") {
		if (d.Status == catalog.DeploymentFailed || d.Status == catalog.DeploymentRolledBack) && d.FinishedAt.After(cut) {
			out = append(out, Series{Labels: map[string]string{"deployment": d.ID, "instance_id": d.InstanceID, "name": names[d.InstanceID]}, Value: 1})
		}
	}
	return out
}

func (s *Signals) workflows(ctx context.Context, metric string) ([]Series, error) {
	if s.Analytics == nil {
		return nil, nil
	}
	per, err := s.Analytics.PerInstance(ctx, 5*time.Minute)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, i := range s.Catalog.Instances() {
		names[i.ID] = i.Name
	}
	var out []Series
	for id, w := range per {
		if w.Runs == 0 {
			continue
		}
		v := w.ErrorRate
		if metric == "agent_workflow_p95_seconds" {
			v = w.P95Seconds
		}
		out = append(out, Series{Labels: map[string]string{"instance_id": id, "name": names[id]}, Value: v})
	}
	return out, nil
}
