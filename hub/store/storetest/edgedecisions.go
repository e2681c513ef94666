package storetest

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/store"
)

// decisionBatch returns n records of AIDecisionsStream from first, each
// carrying a decision whose prompt names its seq.
func decisionBatch(edge string, first int64, n int) store.Batch {
	b := batch(edge, store.AIDecisionsStream, first, n)
	for i := range b.Records {
		r := &b.Records[i]
		d := aiDecision(r.Time.Add(-time.Second), "", "llama3")
		d.EdgeID = ""
		d.Prompt = fmt.Sprintf("prompt of seq %d", r.Seq)
		r.Decision = &d
	}
	return b
}

// wantEdgeDecisions checks that ListAIDecisions holds exactly the decisions
// of recs, each once, as IngestBatch stores them.
func wantEdgeDecisions(t *testing.T, s store.Store, what, edge string, recs []store.Record) {
	t.Helper()
	got := mustListAI(t, s, store.AIDecisionFilter{Limit: store.MaxLimit})
	var want []store.AIDecision
	bySeq := map[int64]int64{}
	for _, d := range got {
		bySeq[d.EdgeSeq] = d.ID
	}
	for i := range recs {
		d := recs[i].EdgeDecision(edge)
		if d == nil {
			continue
		}
		want = append(want, normAI(*d, bySeq[d.EdgeSeq]))
	}
	sortNewest(want)
	equal(t, what, got, want)
}

// testEdgeDecisions: decisions ride on their records into ai_decisions in
// IngestBatch's transaction, with EdgeID and EdgeSeq; a replayed, an
// overlapping and a wholly old batch add none twice.
func testEdgeDecisions(t *testing.T, s store.Store) {
	b := decisionBatch("e", 1, 4)
	b.Records[2].Decision = nil // a record without a decision is only in the ledger
	mustIngest(t, s, b, 4)
	wantEdgeDecisions(t, s, "after the first batch", "e", b.Records)
	got := mustListAI(t, s, store.AIDecisionFilter{})
	if len(got) != 3 || got[0].EdgeID != "e" || got[0].EdgeSeq != 4 || got[0].ID <= 0 {
		t.Fatalf("decisions = %+v; want 3, newest from edge e seq 4", got)
	}
	sameRecords(t, "ledger", mustRecords(t, s, "e", store.AIDecisionsStream, 0, 0), b.Records)

	mustIngest(t, s, b, 4) // a lost ack: the same batch again
	wantEdgeDecisions(t, s, "after a replay", "e", b.Records)

	// Overlap 3..7 with other decisions for 3..4: the originals stay.
	over := decisionBatch("e", 3, 5)
	over.Records[0].Decision.Model, over.Records[1].Decision.Model = "changed", "changed"
	mustIngest(t, s, over, 7)
	all := append(append([]store.Record(nil), b.Records...), over.Records[2:]...)
	wantEdgeDecisions(t, s, "after an overlapping batch", "e", all)
	if ds := mustListAI(t, s, store.AIDecisionFilter{Model: "changed"}); len(ds) != 0 {
		t.Fatalf("overlap rewrote %d decisions", len(ds))
	}

	mustIngest(t, s, decisionBatch("e", 2, 5), 7) // wholly old
	wantEdgeDecisions(t, s, "after an old batch", "e", all)

	// Another edge's seqs are its own; AppendAIDecisions rows are apart.
	other := decisionBatch("f", 1, 2)
	mustIngest(t, s, other, 2)
	if err := s.AppendAIDecisions(t.Context(), []store.AIDecision{aiDecision(t0, "i1", "direct")}); err != nil {
		t.Fatal(err)
	}
	if n := len(mustListAI(t, s, store.AIDecisionFilter{Limit: store.MaxLimit})); n != 6+2+1 {
		t.Fatalf("%d decisions, want 9", n)
	}
	if w := mustWatermarks(t, s, "e")[store.AIDecisionsStream]; w.Seq != 7 || w.Count != 7 {
		t.Fatalf("watermark %+v, want seq 7 count 7", w)
	}
}

// testEdgeDecisionInvalid: a bad decision refuses the whole batch with the
// field named, and nothing is written: no record, no decision, no watermark.
func testEdgeDecisionInvalid(t *testing.T, s store.Store) {
	for _, c := range []struct {
		field  string
		stream string
		mutate func(*store.AIDecision)
	}{
		{"records[2].decision.model", store.AIDecisionsStream, func(d *store.AIDecision) { d.Model = "" }},
		{"records[2].decision.time", store.AIDecisionsStream, func(d *store.AIDecision) { d.Time = time.Time{} }},
		{"records[2].decision.confidence", store.AIDecisionsStream, func(d *store.AIDecision) { d.Confidence = math.NaN() }},
		{"records[2].decision.tokens_used", store.AIDecisionsStream, func(d *store.AIDecision) { d.TokensUsed = -1 }},
		{"records[2].decision.metadata", store.AIDecisionsStream, func(d *store.AIDecision) { d.Metadata = json.RawMessage("{") }},
		{"records[2].decision.prompt", store.AIDecisionsStream, func(d *store.AIDecision) { d.Prompt = "\x00" }},
		{"records[2].decision.edge_id", store.AIDecisionsStream, func(d *store.AIDecision) { d.EdgeID = "another-edge" }},
		{"records[2].decision.edge_seq", store.AIDecisionsStream, func(d *store.AIDecision) { d.EdgeSeq = 99 }},
		{"records[2].decision", "audit", func(*store.AIDecision) {}},
	} {
		b := decisionBatch("e", 1, 3)
		if c.stream != b.Stream {
			b.Stream, b.Records[0].Decision, b.Records[1].Decision = c.stream, nil, nil
		}
		c.mutate(b.Records[2].Decision)
		_, err := s.IngestBatch(t.Context(), b)
		wantInvalid(t, err, c.field)
	}
	if w := mustWatermarks(t, s, "e"); len(w) != 0 {
		t.Fatalf("refused batches wrote watermarks %v", w)
	}
	if rs := mustRecords(t, s, "e", store.AIDecisionsStream, 0, 0); len(rs) != 0 {
		t.Fatalf("refused batches wrote %d records", len(rs))
	}
	if ds := mustListAI(t, s, store.AIDecisionFilter{}); len(ds) != 0 {
		t.Fatalf("refused batches wrote %d decisions", len(ds))
	}
	// EdgeSeq is IngestBatch's to set.
	d := aiDecision(t0, "i", "m")
	d.EdgeSeq = 1
	wantInvalid(t, s.AppendAIDecisions(t.Context(), []store.AIDecision{d}), "decisions[0].edge_seq")
	// A decision with EdgeID and EdgeSeq already right is accepted.
	b := decisionBatch("e", 1, 1)
	b.Records[0].Decision.EdgeID, b.Records[0].Decision.EdgeSeq = "e", 1
	mustIngest(t, s, b, 1)
	wantEdgeDecisions(t, s, "decision with edge fields set", "e", b.Records)
}
