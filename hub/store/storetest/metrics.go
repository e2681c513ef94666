package storetest

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/store"
)

func runMetrics(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("QueryFiltersOldestFirst", func(t *testing.T) { testMetricQuery(t, open(t)) })
	t.Run("PruneDeletesOlder", func(t *testing.T) { testMetricPrune(t, open(t)) })
	t.Run("InvalidElementWritesNothing", func(t *testing.T) { testMetricInvalid(t, open(t)) })
}

// seedMetrics appends 3 sources × 2 names × 10 minutes and returns them in
// time order.
func seedMetrics(t *testing.T, s store.Store) []store.MetricSample {
	t.Helper()
	var ms []store.MetricSample
	for m := range 10 {
		for _, src := range []string{"i1", "i2", "edge-1"} {
			for _, name := range []string{"cpu", "mem"} {
				ms = append(ms, store.MetricSample{
					Time: t0.Add(time.Duration(m) * time.Minute), Source: src, Name: name,
					Labels: json.RawMessage(fmt.Sprintf(`{"core": "%d"}`, m%2)),
					Value:  float64(m) + 0.25,
				})
			}
		}
	}
	ms[0].Labels, ms[1].Value = nil, -math.MaxFloat64
	if err := s.AppendMetricSamples(t.Context(), ms); err != nil {
		t.Fatal(err)
	}
	for i := range ms {
		ms[i].Time = store.NormalizeTime(ms[i].Time)
	}
	return ms
}

func mustQueryMetrics(t *testing.T, s store.Store, q store.MetricQuery) []store.MetricSample {
	t.Helper()
	ms, err := s.QueryMetricSamples(t.Context(), q)
	if err != nil {
		t.Fatalf("QueryMetricSamples(%+v): %v", q, err)
	}
	return ms
}

func filterMetrics(ms []store.MetricSample, keep func(store.MetricSample) bool) []store.MetricSample {
	var out []store.MetricSample
	for _, m := range ms {
		if keep(m) {
			out = append(out, m)
		}
	}
	return out
}

func testMetricQuery(t *testing.T, s store.Store) {
	ms := seedMetrics(t, s)
	if err := s.AppendMetricSamples(t.Context(), nil); err != nil {
		t.Fatalf("empty append: %v", err)
	}
	start, end := ms[12].Time, ms[30].Time // minutes 2..4
	for _, c := range []struct {
		name string
		q    store.MetricQuery
		keep func(store.MetricSample) bool
	}{
		{"all", store.MetricQuery{}, func(store.MetricSample) bool { return true }},
		{"source and name", store.MetricQuery{Source: "i2", Name: "mem"},
			func(m store.MetricSample) bool { return m.Source == "i2" && m.Name == "mem" }},
		{"name", store.MetricQuery{Name: "cpu"}, func(m store.MetricSample) bool { return m.Name == "cpu" }},
		{"source and range", store.MetricQuery{Source: "edge-1", Start: start, End: end},
			func(m store.MetricSample) bool {
				return m.Source == "edge-1" && !m.Time.Before(start) && m.Time.Before(end)
			}},
	} {
		equal(t, c.name, mustQueryMetrics(t, s, c.q), filterMetrics(ms, c.keep))
	}
	equal(t, "limit keeps the oldest", mustQueryMetrics(t, s, store.MetricQuery{Source: "i1", Limit: 3}),
		filterMetrics(ms, func(m store.MetricSample) bool { return m.Source == "i1" })[:3])
}

func testMetricPrune(t *testing.T, s store.Store) {
	ms := seedMetrics(t, s)
	cut := ms[24].Time // minute 4: minutes 0..3 go
	n, err := s.PruneMetricSamples(t.Context(), cut)
	if err != nil || n != 24 {
		t.Fatalf("PruneMetricSamples = %d, %v; want 24", n, err)
	}
	equal(t, "after prune", mustQueryMetrics(t, s, store.MetricQuery{}), ms[24:])
	if n, err := s.PruneMetricSamples(t.Context(), cut); err != nil || n != 0 {
		t.Fatalf("second prune = %d, %v; want 0", n, err)
	}
	_, err = s.PruneMetricSamples(t.Context(), time.Time{})
	wantInvalid(t, err, "before")
}

func testMetricInvalid(t *testing.T, s store.Store) {
	for _, c := range []struct {
		field  string
		mutate func(*store.MetricSample)
	}{
		{"samples[1].value", func(m *store.MetricSample) { m.Value = math.NaN() }},
		{"samples[1].value", func(m *store.MetricSample) { m.Value = math.Inf(-1) }},
		{"samples[1].source", func(m *store.MetricSample) { m.Source = "" }},
		{"samples[1].name", func(m *store.MetricSample) { m.Name = "" }},
		{"samples[1].time", func(m *store.MetricSample) { m.Time = time.Time{} }},
		{"samples[1].labels", func(m *store.MetricSample) { m.Labels = json.RawMessage(`[`) }},
	} {
		ms := []store.MetricSample{{Time: t0, Source: "s", Name: "n", Value: 1}, {Time: t0, Source: "s", Name: "n", Value: 2}}
		c.mutate(&ms[1])
		wantInvalid(t, s.AppendMetricSamples(t.Context(), ms), c.field)
	}
	if got := mustQueryMetrics(t, s, store.MetricQuery{}); len(got) != 0 {
		t.Fatalf("refused appends wrote %d samples", len(got))
	}
	for _, c := range []struct {
		field string
		q     store.MetricQuery
	}{
		{"limit", store.MetricQuery{Limit: -1}},
		{"end", store.MetricQuery{Start: t0, End: t0.Add(-time.Microsecond)}},
	} {
		_, err := s.QueryMetricSamples(t.Context(), c.q)
		wantInvalid(t, err, c.field)
	}
}
