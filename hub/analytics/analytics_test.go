package analytics

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/metrics"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/postgres"
	"github.com/redforge/controltower/hub/store/sqlite"
	"github.com/redforge/controltower/internal/testenv"
)

type testStore interface {
	Appender
	Reader
}

func backends(t *testing.T) map[string]func(t *testing.T) testStore {
	return map[string]func(t *testing.T) testStore{
		"sqlite": func(t *testing.T) testStore {
			db := sqlite.New(filepath.Join(t.TempDir(), "hub.db"))
			if err := db.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
		"postgres": func(t *testing.T) testStore {
			db := postgres.New(testenv.Postgres(t))
			if err := db.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		},
	}
}

// fakeRuntimes is a scripted hub/metrics.Runtimes.
type fakeRuntimes struct{ snaps []metrics.RuntimeSnapshot }

func (f *fakeRuntimes) Snapshot() []metrics.RuntimeSnapshot { return f.snaps }

// stubCatalog is a catalog with fixed instances and allocations.
type stubCatalog struct {
	insts  []catalog.Instance
	allocs []catalog.Allocation
}

func (c stubCatalog) Instances() []catalog.Instance     { return c.insts }
func (c stubCatalog) Allocations() []catalog.Allocation { return c.allocs }
func (c stubCatalog) Hubs() []catalog.Hub               { return []catalog.Hub{{ID: "hub-a"}} }

func usage(runs, errs, sum float64, buckets []float64, active float64, tokens float64) metrics.Usage {
	return metrics.Usage{
		Flows:  map[string]*metrics.FlowUsage{"triage": {Count: runs, Errors: errs, Sum: sum, Buckets: buckets, Active: active}},
		Models: map[string]*metrics.ModelUsage{"gpt-4o": {PromptTokens: tokens, CompletionTokens: tokens / 2, Requests: runs, CostUSD: tokens / 1e6}},
	}
}

// TestFlushAndQuery: flushed deltas of two runtimes (one restarting, so
// its counters reset) come back as the fleet's and the instance's window
// totals, on both store backends.
func TestFlushAndQuery(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			rts := &fakeRuntimes{}
			f := &Flusher{Hub: "hub-a", Runtimes: rts, Store: st, Now: func() time.Time { return now }}
			l1 := prometheus.Labels{"instance_id": "i-1", "name": "one", "color": "", "replica": "0"}
			l2 := prometheus.Labels{"instance_id": "i-2", "name": "two", "color": "", "replica": "0"}
			// 0.1..0.5 s buckets: cumulative counts per WorkflowBuckets.
			b := func(n float64) []float64 { return []float64{0, n, n, n, n, n, n, n, n} }
			step := func(u1, u2 metrics.Usage) {
				t.Helper()
				rts.snaps = []metrics.RuntimeSnapshot{{Allocation: "a1", Labels: l1, Usage: u1}, {Allocation: "a2", Labels: l2, Usage: u2}}
				if err := f.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
				now = now.Add(15 * time.Second)
			}
			step(usage(10, 1, 3, b(10), 2, 1000), usage(4, 0, 1, b(4), 0, 0))   // first reading: counted whole
			step(usage(30, 3, 9, b(30), 1, 3000), usage(8, 2, 2, b(8), 0, 500)) // +20 and +4
			step(usage(5, 0, 1, b(5), 0, 500), usage(8, 2, 2, b(8), 0, 500))    // i-1 restarted: +5; i-2 idle
			svc := &Service{Store: st, Catalog: stubCatalog{
				insts: []catalog.Instance{{ID: "i-1", Name: "one", Observed: catalog.Observed{Status: "running"}},
					{ID: "i-2", Name: "two", Observed: catalog.Observed{Status: "failed"}}},
				allocs: []catalog.Allocation{{ID: "a1", InstanceID: "i-1", Observed: catalog.AllocObserved{Status: "running"}},
					{ID: "a2", InstanceID: "i-2", Observed: catalog.AllocObserved{Status: "failed"}}},
			}, Now: func() time.Time { return now }}
			fs, err := svc.Fleet(context.Background(), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			w := fs.Workflows
			if w.Runs != 10+20+5+8 || w.Errors != 1+2+0+2 {
				t.Fatalf("fleet workflows = %+v", w)
			}
			if w.P50Seconds <= 0.1 || w.P50Seconds > 0.5 || w.P99Seconds > 0.5 {
				t.Errorf("percentiles %+v not within the 0.1-0.5 s bucket", w)
			}
			if w.Active != 0 {
				t.Errorf("active = %v, want the last flush's 0", w.Active)
			}
			if math.Abs(w.AvgSeconds-(3+6+1+2)/43.0) > 1e-9 {
				t.Errorf("avg = %v", w.AvgSeconds)
			}
			if fs.Instances.Total != 2 || fs.Instances.Healthy != 1 || fs.Instances.Unhealthy != 1 || fs.Instances.ByStatus["failed"] != 1 {
				t.Errorf("instances = %+v", fs.Instances)
			}
			if len(fs.LLM.ByModel) != 1 || fs.LLM.ByModel[0].PromptTokens != 3000+500+500 {
				t.Errorf("llm = %+v", fs.LLM)
			}
			is, err := svc.Instance(context.Background(), catalog.Instance{ID: "i-1", Name: "one"}, []catalog.Instance{{ID: "i-1"}}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if is.Workflows.Runs != 35 || len(is.Flows) != 1 || is.Flows[0].Runs != 35 {
				t.Errorf("instance = %+v", is.Workflows)
			}
			per, err := svc.PerInstance(context.Background(), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if per["i-2"].Runs != 8 || per["i-2"].ErrorRate != 0.25 {
				t.Errorf("per instance = %+v", per)
			}
		})
	}
}

// TestSamplesPagesThroughEqualTimes: a window larger than one store page
// whose page boundary falls inside a run of equal times is read whole,
// each sample once.
func TestSamplesPagesThroughEqualTimes(t *testing.T) {
	st := backends(t)["sqlite"](t)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var ms []store.MetricSample
	for i := range store.MaxLimit + 50 {
		ms = append(ms, store.MetricSample{Time: at.Add(time.Duration(i/300) * time.Second), Source: "hub:x", Name: SampleHubUsage,
			Labels: []byte(`{"runs":1,"errors":0,"sum":0,"active":0}`), Value: 1})
	}
	if err := st.AppendMetricSamples(context.Background(), ms); err != nil {
		t.Fatal(err)
	}
	svc := &Service{Store: st}
	got, err := svc.samples(context.Background(), store.MetricQuery{Name: SampleHubUsage, Start: at, End: at.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ms) {
		t.Fatalf("read %d samples, want %d", len(got), len(ms))
	}
}

func TestParseWindow(t *testing.T) {
	for in, want := range map[string]time.Duration{"": time.Hour, "15m": 15 * time.Minute, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour} {
		if got, err := ParseWindow(in); err != nil || got != want {
			t.Errorf("ParseWindow(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"10s", "8d", "soon", "-1h"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) accepted", bad)
		}
	}
}
