package storetest

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/store"
)

func runAIDecisions(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("RoundTripNewestFirst", func(t *testing.T) { testAIRoundTrip(t, open(t)) })
	t.Run("ListFiltersAndPages", func(t *testing.T) { testAIList(t, open(t)) })
	t.Run("InvalidElementWritesNothing", func(t *testing.T) { testAIInvalid(t, open(t)) })
}

func aiDecision(tm time.Time, instance, model string) store.AIDecision {
	return store.AIDecision{
		Time:       tm,
		InstanceID: instance,
		EdgeID:     "edge-1",
		FlowName:   "triage",
		Model:      model,
		Prompt:     "Classify: «ünïcode» 😀",
		Response:   `{"label":"urgent"}`,
		Confidence: 0.875,
		TokensUsed: 321,
		LatencyMS:  1234,
		Metadata:   json.RawMessage(`{"temperature": 0.2}`),
	}
}

func mustListAI(t *testing.T, s store.Store, f store.AIDecisionFilter) []store.AIDecision {
	t.Helper()
	ds, err := s.ListAIDecisions(t.Context(), f)
	if err != nil {
		t.Fatalf("ListAIDecisions(%+v): %v", f, err)
	}
	return ds
}

// sortNewest orders ds as ListAIDecisions does.
func sortNewest(ds []store.AIDecision) {
	sort.SliceStable(ds, func(i, j int) bool {
		if !ds[i].Time.Equal(ds[j].Time) {
			return ds[i].Time.After(ds[j].Time)
		}
		return ds[i].ID > ds[j].ID
	})
}

// normAI is d as the store returns it, with id.
func normAI(d store.AIDecision, id int64) store.AIDecision {
	d.ID = id
	d.Time = store.NormalizeTime(d.Time)
	d.Metadata = store.NormalizeJSON(d.Metadata)
	return d
}

func testAIRoundTrip(t *testing.T, s store.Store) {
	in := []store.AIDecision{
		aiDecision(t0, "i1", "llama3"),
		aiDecision(t0.Add(2*time.Second+999*time.Nanosecond), "i2", "gpt-4o"),
		aiDecision(t0.Add(time.Second), "i1", "claude"),
	}
	in[1].Confidence, in[1].TokensUsed, in[1].Metadata = 0, 0, nil
	in[2].Confidence = math.SmallestNonzeroFloat64
	if err := s.AppendAIDecisions(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAIDecisions(t.Context(), nil); err != nil {
		t.Fatalf("empty append: %v", err)
	}
	got := mustListAI(t, s, store.AIDecisionFilter{})
	if len(got) != 3 {
		t.Fatalf("got %d decisions, want 3", len(got))
	}
	ids := map[int64]bool{}
	for _, d := range got {
		if d.ID <= 0 || ids[d.ID] {
			t.Fatalf("bad or duplicate ID %d", d.ID)
		}
		ids[d.ID] = true
	}
	// Order: newest first; fields round-trip (IDs taken from the result).
	want := []store.AIDecision{normAI(in[1], got[0].ID), normAI(in[2], got[1].ID), normAI(in[0], got[2].ID)}
	equal(t, "decisions", got, want)
	if got[2].ID > got[1].ID {
		t.Fatalf("IDs not in append order: %d then %d", got[2].ID, got[1].ID)
	}
}

func testAIList(t *testing.T, s store.Store) {
	var in []store.AIDecision
	for i := range 30 {
		// Every third pair shares a time, so ties are ordered by ID.
		d := aiDecision(t0.Add(time.Duration(i/2)*time.Minute), fmt.Sprintf("i%d", i%3), []string{"a", "b"}[i%2])
		d.Prompt = fmt.Sprintf("prompt %d", i)
		in = append(in, d)
	}
	if err := s.AppendAIDecisions(t.Context(), in[:10]); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAIDecisions(t.Context(), in[10:]); err != nil {
		t.Fatal(err)
	}
	all := mustListAI(t, s, store.AIDecisionFilter{})
	if len(all) != 30 {
		t.Fatalf("got %d, want 30", len(all))
	}
	sorted := append([]store.AIDecision(nil), all...)
	sortNewest(sorted)
	equal(t, "order newest first, ties by ID", all, sorted)

	filter := func(keep func(store.AIDecision) bool) []store.AIDecision {
		var out []store.AIDecision
		for _, d := range all {
			if keep(d) {
				out = append(out, d)
			}
		}
		return out
	}
	start, end := store.NormalizeTime(t0.Add(3*time.Minute)), store.NormalizeTime(t0.Add(9*time.Minute))
	for _, c := range []struct {
		name string
		f    store.AIDecisionFilter
		keep func(store.AIDecision) bool
	}{
		{"instance", store.AIDecisionFilter{InstanceID: "i2"}, func(d store.AIDecision) bool { return d.InstanceID == "i2" }},
		{"model", store.AIDecisionFilter{Model: "b"}, func(d store.AIDecision) bool { return d.Model == "b" }},
		{"instance and model", store.AIDecisionFilter{InstanceID: "i0", Model: "a"},
			func(d store.AIDecision) bool { return d.InstanceID == "i0" && d.Model == "a" }},
		{"time range", store.AIDecisionFilter{Start: start, End: end},
			func(d store.AIDecision) bool { return !d.Time.Before(start) && d.Time.Before(end) }},
	} {
		equal(t, c.name, mustListAI(t, s, c.f), filter(c.keep))
	}
	var paged []store.AIDecision
	for off := 0; off < 30; off += 7 {
		paged = append(paged, mustListAI(t, s, store.AIDecisionFilter{Limit: 7, Offset: off})...)
	}
	equal(t, "pages of 7", paged, all)

	for _, c := range []struct {
		field string
		f     store.AIDecisionFilter
	}{
		{"limit", store.AIDecisionFilter{Limit: -5}},
		{"offset", store.AIDecisionFilter{Offset: -1}},
		{"end", store.AIDecisionFilter{Start: t0, End: t0.Add(-1)}},
	} {
		_, err := s.ListAIDecisions(t.Context(), c.f)
		wantInvalid(t, err, c.field)
	}
}

func testAIInvalid(t *testing.T, s store.Store) {
	for _, c := range []struct {
		field  string
		mutate func(*store.AIDecision)
	}{
		{"decisions[2].model", func(d *store.AIDecision) { d.Model = "" }},
		{"decisions[2].time", func(d *store.AIDecision) { d.Time = time.Time{} }},
		{"decisions[2].confidence", func(d *store.AIDecision) { d.Confidence = math.NaN() }},
		{"decisions[2].confidence", func(d *store.AIDecision) { d.Confidence = math.Inf(1) }},
		{"decisions[2].tokens_used", func(d *store.AIDecision) { d.TokensUsed = -1 }},
		{"decisions[2].latency_ms", func(d *store.AIDecision) { d.LatencyMS = -1 }},
		{"decisions[2].metadata", func(d *store.AIDecision) { d.Metadata = json.RawMessage("{") }},
		{"decisions[2].prompt", func(d *store.AIDecision) { d.Prompt = "a\x00" }},
	} {
		ds := []store.AIDecision{aiDecision(t0, "i", "m"), aiDecision(t0, "i", "m"), aiDecision(t0, "i", "m")}
		c.mutate(&ds[2])
		wantInvalid(t, s.AppendAIDecisions(t.Context(), ds), c.field)
	}
	if got := mustListAI(t, s, store.AIDecisionFilter{}); len(got) != 0 {
		t.Fatalf("refused appends wrote %d decisions", len(got))
	}
}
