// Package edgecheck is the exactly-once check of the edge sync tests: it
// asserts that a hub's store holds exactly the records an edge's
// publishers had PUBACKed. The edge tests of hub/edgesync and the multi-hub
// tests of cmd/hub both use it.
package edgecheck

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/syncproto"
)

// Streams are the edge's record streams.
var Streams = syncproto.Streams()

// Published is a record a publisher sent and had PUBACKed.
type Published struct {
	Stream  string
	Payload string
}

// Store is the part of the hub store the check reads.
type Store interface {
	ListEdgeRecords(ctx context.Context, edgeID, stream string, afterSeq int64, limit int) ([]store.Record, error)
	ListAIDecisions(ctx context.Context, f store.AIDecisionFilter) ([]store.AIDecision, error)
}

// Verify checks that st holds exactly want for edgeID: per stream, seqs
// 1..n contiguous in order, each payload byte-identical with a valid
// CRC-32C (a vector as the canonical vector record of what was published,
// see syncproto.VectorRecordFromJSON, and stored with its vector), each
// PUBACKed record exactly once; and that every ai_decisions record (the
// publishers send only valid decisions) is in the ai_decisions table once,
// under its seq, with its prompt. Records no publisher saw PUBACKed
// (committed, then the edge was killed before the PUBACK) are an error
// unless extraOK. It returns the records held and the extra ones.
func Verify(tb testing.TB, st Store, edgeID string, want []Published, extraOK bool) (total, extra int) {
	tb.Helper()
	ctx := context.Background()
	wantSet := map[string]int{}
	for _, r := range want {
		p := []byte(r.Payload)
		if r.Stream == "vectors" { // the edge keeps a vector in its canonical form
			var err error
			if p, err = syncproto.VectorRecordFromJSON(nil, p); err != nil {
				tb.Fatalf("published vector %q: %v", r.Payload, err)
			}
		}
		wantSet[r.Stream+"\x00"+string(p)]++
	}
	seen := map[string]int{}
	prompts := map[int64]string{}
	for _, s := range Streams {
		after := int64(0)
		for {
			recs, err := st.ListEdgeRecords(ctx, edgeID, s, after, store.MaxLimit)
			if err != nil {
				tb.Fatal(err)
			}
			if len(recs) == 0 {
				break
			}
			for _, r := range recs {
				if r.Seq != after+1 {
					tb.Fatalf("%s: seq %d after %d: not contiguous", s, r.Seq, after)
				}
				after = r.Seq
				if store.Checksum(r.Payload) != r.Checksum {
					tb.Fatalf("%s seq %d: checksum mismatch", s, r.Seq)
				}
				switch s {
				case "vectors":
					if len(r.Vector) == 0 {
						tb.Fatalf("vectors seq %d: not stored as a packed float32 vector", r.Seq)
					}
				case store.AIDecisionsStream:
					var p struct{ Prompt string }
					if err := json.Unmarshal(r.Payload, &p); err != nil {
						tb.Fatalf("ai_decisions seq %d: %v", r.Seq, err)
					}
					prompts[r.Seq] = p.Prompt
				}
				seen[s+"\x00"+string(r.Payload)]++
				total++
			}
		}
	}
	dups, lost := 0, 0
	for k, n := range seen {
		if n > 1 {
			dups += n - 1
		}
		if wantSet[k] == 0 {
			extra++
			if !extraOK {
				tb.Errorf("the store has a record nobody had PUBACKed: %q", k)
			}
		}
	}
	for k := range wantSet {
		if seen[k] == 0 {
			lost++
		}
	}
	if dups > 0 || lost > 0 {
		tb.Fatalf("the store holds %d records: %d duplicated, %d PUBACKed records lost (want %d)", total, dups, lost, len(want))
	}
	verifyDecisions(tb, st, edgeID, prompts)
	return total, extra
}

// verifyDecisions checks that the ai_decisions table holds each decision
// of prompts (by edge seq) once, with its prompt, and no other of edgeID.
func verifyDecisions(tb testing.TB, st Store, edgeID string, prompts map[int64]string) {
	tb.Helper()
	seen := map[int64]int{}
	for off := 0; ; off += store.MaxLimit {
		ds, err := st.ListAIDecisions(context.Background(), store.AIDecisionFilter{Limit: store.MaxLimit, Offset: off})
		if err != nil {
			tb.Fatal(err)
		}
		for _, d := range ds {
			if d.EdgeID != edgeID {
				continue
			}
			seen[d.EdgeSeq]++
			if p, ok := prompts[d.EdgeSeq]; !ok || p != d.Prompt {
				tb.Fatalf("decision of seq %d has prompt %q; the ledger record has %q (present: %v)", d.EdgeSeq, d.Prompt, p, ok)
			}
		}
		if len(ds) < store.MaxLimit {
			break
		}
	}
	for seq := range prompts {
		if seen[seq] != 1 {
			tb.Fatalf("ai_decisions seq %d is in the ai_decisions table %d times, want once", seq, seen[seq])
		}
	}
}
