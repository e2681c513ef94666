// Package storetest is the contract suite of store.Store: every
// implementation runs Run (and RunReopen) and must pass unchanged. Each
// subtest names the invariant it proves; hub/store/DESIGN.md maps the
// invariants to these names.
package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/store"
)

// Run runs the contract suite. open must return a fresh, empty, opened
// store for each call and register its Close with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("Ping", func(t *testing.T) { testPing(t, open(t)) })
	t.Run("Audit", func(t *testing.T) { runAudit(t, open) })
	t.Run("AIDecisions", func(t *testing.T) { runAIDecisions(t, open) })
	t.Run("Edge", func(t *testing.T) { runEdge(t, open) })
	t.Run("Checkpoints", func(t *testing.T) { runCheckpoints(t, open) })
	t.Run("Metrics", func(t *testing.T) { runMetrics(t, open) })
	t.Run("History", func(t *testing.T) { runHistory(t, open) })
	t.Run("Time", func(t *testing.T) { runTime(t, open) })
	t.Run("CanceledContextWritesNothing", func(t *testing.T) { testCanceled(t, open(t)) })
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("second Ping: %v", err)
	}
}

func testCanceled(t *testing.T, s store.Store) {
	ctx, cancel := contextCanceled(t)
	defer cancel()
	if err := s.AppendAIDecisions(ctx, []store.AIDecision{aiDecision(t0, "i1", "m1")}); err == nil {
		t.Fatal("AppendAIDecisions with a canceled context succeeded")
	}
	if _, err := s.IngestBatch(ctx, batch("e1", "audit", 1, 3)); err == nil {
		t.Fatal("IngestBatch with a canceled context succeeded")
	}
	rec := store.AuditRecord{Action: "x"}
	if err := s.AppendAudit(ctx, &rec, Hash); err == nil {
		t.Fatal("AppendAudit with a canceled context succeeded")
	}
	if rec.ID != 0 || rec.Hash != "" {
		t.Fatalf("failed AppendAudit changed the record: %+v", rec)
	}
	if got := mustListAI(t, s, store.AIDecisionFilter{}); len(got) != 0 {
		t.Fatalf("canceled append wrote %d decisions", len(got))
	}
	if wm := mustWatermarks(t, s, "e1"); len(wm) != 0 {
		t.Fatalf("canceled ingest wrote watermarks %v", wm)
	}
	if got := mustListAudit(t, s, store.AuditFilter{}); len(got) != 0 {
		t.Fatalf("canceled append wrote %d audit records", len(got))
	}
}

// t0 is the base time of the fixtures: with microseconds, not UTC.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.FixedZone("CET", 3600))

// Hash is the audit hash function the suite uses: SHA-256 over every field
// but Hash, in a fixed encoding.
func Hash(r *store.AuditRecord) string {
	h := sha256.New()
	for _, f := range []string{
		strconv.FormatInt(r.ID, 10), r.Time.UTC().Format(time.RFC3339Nano), r.UserID, r.Username,
		r.Action, r.ResourceType, r.ResourceID, string(r.Details), r.IP, r.UserAgent, r.PrevHash,
	} {
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// VerifyChain checks that recs, in ID order from ID 1, form an unbroken
// chain under Hash.
func VerifyChain(recs []store.AuditRecord) error {
	prev := ""
	for i, r := range recs {
		if r.ID != int64(i+1) {
			return fmt.Errorf("record %d has ID %d, want %d (IDs must be gapless)", i, r.ID, i+1)
		}
		if r.PrevHash != prev {
			return fmt.Errorf("record %d: prev_hash %q, want %q", r.ID, r.PrevHash, prev)
		}
		c := r
		c.Hash = ""
		if want := Hash(&c); r.Hash != want {
			return fmt.Errorf("record %d: hash %q, recomputed %q", r.ID, r.Hash, want)
		}
		prev = r.Hash
	}
	return nil
}

// wantInvalid fails unless err wraps store.ErrInvalid naming field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid on %s", err, field)
	}
	var ie *store.InvalidError
	if !errors.As(err, &ie) || ie.Field != field {
		t.Fatalf("err = %v, want the field named %q", err, field)
	}
}

// equal fails with both values printed unless got and want are deeply equal.
func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("%s:\n got %s\nwant %s\n(got %#v)", what, g, w, got)
	}
}

// bytesEqual treats nil and empty as equal.
func bytesEqual(a, b []byte) bool { return bytes.Equal(a, b) }
