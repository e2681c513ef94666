package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/syncproto"
)

// roundTripTimes are stored as NormalizeTime of themselves by every
// implementation.
var roundTripTimes = []time.Time{
	time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC),                         // nanoseconds truncated
	time.Date(2025, 6, 1, 14, 0, 0, 1000, time.FixedZone("CEST", 2*3600)),        // other zone
	time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),                     // before the epoch
	time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC),                                  // first year
	time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("E", 11*3600)), // last year
	time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),                                  // PostgreSQL's epoch
	time.Now(), // with a monotonic reading
}

func runTime(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("RoundTripInEveryTable", func(t *testing.T) { testTimes(t, open(t)) })
}

func sameTime(t *testing.T, what string, got, in time.Time) {
	t.Helper()
	want := store.NormalizeTime(in)
	if !got.Equal(want) || got.Location() != time.UTC || got != want {
		t.Fatalf("%s: %v came back as %v (%v), want %v in UTC", what, in, got, got.Location(), want)
	}
}

func testTimes(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i, tm := range roundTripTimes {
		what := func(table string) string { return fmt.Sprintf("%s time %d", table, i) }

		rec := mustAppendAudit(t, s, store.AuditRecord{Action: "t", Time: tm})
		sameTime(t, what("audit (returned)"), rec.Time, tm)
		got, err := s.GetAudit(ctx, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		sameTime(t, what("audit"), got.Time, tm)

		model := fmt.Sprint("m", i)
		if err := s.AppendAIDecisions(ctx, []store.AIDecision{{Time: tm, Model: model}}); err != nil {
			t.Fatal(err)
		}
		ds := mustListAI(t, s, store.AIDecisionFilter{Model: model})
		sameTime(t, what("ai_decisions"), ds[0].Time, tm)

		r := record(store.VectorsStream, int64(i+1))
		r.Time, r.Vector = tm, syncproto.PackFloat32([]float32{1})
		mustIngest(t, s, store.Batch{EdgeID: "e", Stream: store.VectorsStream, FirstSeq: r.Seq, Records: []store.Record{r}}, r.Seq)
		rs := mustRecords(t, s, "e", store.VectorsStream, r.Seq-1, 1)
		sameTime(t, what("edge_records"), rs[0].Time, tm)
		vs, err := s.ListVectors(ctx, "e", r.Seq-1, 1)
		if err != nil {
			t.Fatal(err)
		}
		sameTime(t, what("vectors"), vs[0].Time, tm)

		wf := fmt.Sprint("wf", i)
		mustPutCheckpoints(t, s, store.Checkpoint{WorkflowID: wf, InstanceID: "i", Time: tm})
		cs, err := s.ListCheckpoints(ctx, wf, 1)
		if err != nil {
			t.Fatal(err)
		}
		sameTime(t, what("checkpoints"), cs[0].Time, tm)

		name := fmt.Sprint("n", i)
		if err := s.AppendMetricSamples(ctx, []store.MetricSample{{Time: tm, Source: "s", Name: name, Value: 1}}); err != nil {
			t.Fatal(err)
		}
		ms := mustQueryMetrics(t, s, store.MetricQuery{Name: name})
		sameTime(t, what("metric_samples"), ms[0].Time, tm)

		inst := fmt.Sprint("i", i)
		tr := store.StatusTransition{Time: tm, InstanceID: inst, RowID: inst, Status: "running"}
		if err := s.AppendStatusTransition(ctx, &tr); err != nil {
			t.Fatal(err)
		}
		trs := mustListTransitions(t, s, store.TransitionFilter{InstanceID: inst})
		sameTime(t, what("status_transitions"), trs[0].Time, tm)
		fv := store.FlowsVersion{Time: tm, InstanceID: inst, Flows: json.RawMessage(`[]`), Source: store.FlowsSourcePut}
		if err := s.AppendFlowsVersion(ctx, &fv); err != nil {
			t.Fatal(err)
		}
		got1, err := s.GetFlowsVersion(ctx, inst, 1)
		if err != nil {
			t.Fatal(err)
		}
		sameTime(t, what("flows_versions"), got1.Time, tm)

		// A range of exactly [t, t+1µs) selects it.
		n := store.NormalizeTime(tm)
		if got := mustQueryMetrics(t, s, store.MetricQuery{Name: name, Start: n, End: n.Add(time.Microsecond)}); len(got) != 1 {
			t.Fatalf("%s: range [t, t+1µs) found %d samples", what("metric_samples"), len(got))
		}
	}
}

func contextCanceled(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx, cancel
}
