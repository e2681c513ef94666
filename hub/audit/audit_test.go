package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/store"
)

func TestRecordAndVerify(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.open(t)
		clk := &clock{t: time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)}
		l := audit.New(st, audit.Config{Now: clk.Now})
		ctx := context.Background()

		if res := mustVerify(t, l); !res.OK || res.Checked != 0 || !res.Complete {
			t.Fatalf("empty log: %+v", res)
		}
		err := l.Record(ctx, audit.Entry{UserID: "u-1", Username: "admin", Action: audit.InstanceCreated,
			ResourceType: "instance", ResourceID: "i-1", IP: "192.0.2.7", UserAgent: "curl/8",
			Details: map[string]any{"name": "flow-1", "memory_mb": 512, "password": "hunter2hunter2", "nested": map[string]any{"Token": "abc"}}})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := l.Query(ctx, store.AuditFilter{})
		if err != nil || len(recs) != 1 {
			t.Fatalf("Query = %v, %v", recs, err)
		}
		r := recs[0]
		wantDetails := `{"memory_mb":512,"name":"flow-1","nested":{"Token":"[REDACTED]"},"password":"[REDACTED]"}`
		if r.ID != 1 || r.PrevHash != "" || !strings.HasPrefix(r.Hash, "v1:") || string(r.Details) != wantDetails ||
			!r.Time.Equal(store.NormalizeTime(clk.t)) || r.Action != audit.InstanceCreated || r.IP != "192.0.2.7" {
			t.Fatalf("stored record = %+v (details %s)", r, r.Details)
		}
		if h, err := audit.HashRecord(r); err != nil || h != r.Hash {
			t.Fatalf("HashRecord = %s, %v; stored %s", h, err, r.Hash)
		}
		mustRecord(t, l, 20)
		res := mustVerify(t, l)
		if !res.OK || res.Checked != 21 || res.HeadID != 21 || !res.Complete || res.LinksChecked != 21 {
			t.Fatalf("Verify = %+v", res)
		}
		head, _ := l.Query(ctx, store.AuditFilter{Limit: 1})
		if res.HeadHash != head[0].Hash {
			t.Fatalf("HeadHash %s, head record %s", res.HeadHash, head[0].Hash)
		}
	})
}

func TestRecordRefusesBadInput(t *testing.T) {
	st, _ := sqliteBackend.open(t)
	l := audit.New(st, audit.Config{})
	ctx := context.Background()
	for _, c := range []struct {
		e     audit.Entry
		field string
	}{
		{audit.Entry{}, "action"},
		{audit.Entry{Action: "instance created"}, "action"},
		{audit.Entry{Action: "X", UserID: strings.Repeat("u", audit.MaxFieldBytes+1)}, "user_id"},
		{audit.Entry{Action: "X", ResourceID: "bad\xffutf8"}, "resource_id"},
		{audit.Entry{Action: "X", Username: "forged\r\n2025-01-01 LOGIN_SUCCEEDED admin"}, "username"},
		{audit.Entry{Action: "X", Details: json.RawMessage(`{"a":1,"a":2}`)}, "details"},
		{audit.Entry{Action: "X", Details: json.RawMessage(`{"a":`)}, "details"},
		{audit.Entry{Action: "X", Details: json.RawMessage(`{"big":12345678901234567890}`)}, "details"},
		{audit.Entry{Action: "X", Details: map[string]any{"x": strings.Repeat("x", audit.MaxDetailsBytes)}}, "details"},
		{audit.Entry{Action: "X", Details: func() {}}, "details"},
	} {
		err := l.Record(ctx, c.e)
		var ie *store.InvalidError
		if !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("Record(%.60v) = %v, want invalid %s", c.e, err, c.field)
		}
	}
	// Client-supplied request fields are cleaned, not refused.
	err := l.Record(ctx, audit.Entry{Action: audit.LoginFailed, UserAgent: "evil\x00\xff\r\n" + strings.Repeat("a", 1000), IP: "::1"})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := l.Query(ctx, store.AuditFilter{})
	if len(recs) != 1 || len(recs[0].UserAgent) > audit.MaxUserAgentBytes || strings.ContainsAny(recs[0].UserAgent, "\x00\r\n") {
		t.Fatalf("user agent stored as %q", recs[0].UserAgent)
	}
	if res := mustVerify(t, l); !res.OK {
		t.Fatal(res.Reason)
	}
}

// TestTamperingIsDetected edits the database behind the store's back, as
// an attacker with database access would, and checks that Verify names
// the record.
func TestTamperingIsDetected(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		cases := []struct {
			name   string
			tamper func(t *testing.T, raw *rawDB, l *audit.Logger)
			broken int64
		}{
			{"details edited", func(t *testing.T, raw *rawDB, _ *audit.Logger) {
				raw.Exec(t, "UPDATE audit_log SET details = ? WHERE id = ?", `{"n":999}`, 5)
			}, 5},
			{"user edited", func(t *testing.T, raw *rawDB, _ *audit.Logger) {
				raw.Exec(t, "UPDATE audit_log SET username = ? WHERE id = ?", "someone-else", 7)
			}, 7},
			{"action edited", func(t *testing.T, raw *rawDB, _ *audit.Logger) {
				raw.Exec(t, "UPDATE audit_log SET action = ? WHERE id = ?", audit.LoginSucceeded, 1)
			}, 1},
			{"row deleted", func(t *testing.T, raw *rawDB, _ *audit.Logger) {
				raw.Exec(t, "DELETE FROM audit_log WHERE id = ?", 5)
			}, 5},
			{"first row deleted", func(t *testing.T, raw *rawDB, _ *audit.Logger) {
				raw.Exec(t, "DELETE FROM audit_log WHERE id = ?", 1)
			}, 1},
			{"row edited and re-hashed", func(t *testing.T, raw *rawDB, l *audit.Logger) {
				r := getRecord(t, l, 5)
				r.Details = json.RawMessage(`{"n":999}`)
				h, _ := audit.HashRecord(r)
				raw.Exec(t, "UPDATE audit_log SET details = ?, hash = ? WHERE id = ?", string(r.Details), h, 5)
			}, 6},
			{"rows swapped", func(t *testing.T, raw *rawDB, _ *audit.Logger) {
				raw.Exec(t, "UPDATE audit_log SET id = ? WHERE id = ?", -1, 3)
				raw.Exec(t, "UPDATE audit_log SET id = ? WHERE id = ?", 3, 4)
				raw.Exec(t, "UPDATE audit_log SET id = ? WHERE id = ?", 4, -1)
			}, 3},
			{"row deleted and the rest renumbered", func(t *testing.T, raw *rawDB, _ *audit.Logger) {
				raw.Exec(t, "DELETE FROM audit_log WHERE id = ?", 5)
				for id := 6; id <= 10; id++ {
					raw.Exec(t, "UPDATE audit_log SET id = ? WHERE id = ?", id-1, id)
				}
			}, 5},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				st, raw := b.open(t)
				l := audit.New(st, audit.Config{})
				mustRecord(t, l, 10)
				if res := mustVerify(t, l); !res.OK {
					t.Fatalf("before tampering: %s", res.Reason)
				}
				c.tamper(t, raw, l)
				wantBroken(t, c.name, mustVerify(t, l), c.broken)
			})
		}
	})
}

func getRecord(t *testing.T, l *audit.Logger, id int64) store.AuditRecord {
	t.Helper()
	var out store.AuditRecord
	recs, err := l.Query(context.Background(), store.AuditFilter{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.ID == id {
			out = r
		}
	}
	if out.ID == 0 {
		t.Fatalf("no record %d", id)
	}
	return out
}

// TestAnchorCatchesTruncationAndRewrite: what the chain alone cannot see
// (the last records removed, or the log re-hashed from an edited record
// on) the catalog anchor does.
func TestAnchorCatchesTruncationAndRewrite(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		open := func(t *testing.T) (plain, anchored *audit.Logger, raw *rawDB) {
			state, node := mustRaft(t)
			st, raw := b.open(t)
			anchored = audit.New(st, audit.Config{Anchors: audit.CatalogAnchors{Catalog: state, Applier: node}})
			mustRecord(t, anchored, 10)
			if a, err := anchored.Anchor(ctx); err != nil || a.ID != 10 {
				t.Fatalf("Anchor = %+v, %v", a, err)
			}
			return audit.New(st, audit.Config{}), anchored, raw
		}

		t.Run("truncation", func(t *testing.T) {
			plain, l, raw := open(t)
			raw.Exec(t, "DELETE FROM audit_log WHERE id >= ?", 9)
			if res := mustVerify(t, plain); !res.OK {
				t.Fatalf("the chain alone cannot see a cut end, yet: %s", res.Reason)
			}
			wantBroken(t, "truncated log", mustVerify(t, l), 9)
			if _, err := l.Anchor(ctx); !errors.Is(err, audit.ErrChainBroken) {
				t.Fatalf("Anchor over a truncated log = %v, want ErrChainBroken", err)
			}
		})
		t.Run("rewrite", func(t *testing.T) {
			plain, l, raw := open(t)
			// The attacker edits record 2 and re-hashes everything after it.
			prev := getRecord(t, l, 1).Hash
			for id := int64(2); id <= 10; id++ {
				r := getRecord(t, l, id)
				if id == 2 {
					r.Details = json.RawMessage(`{"forged":true}`)
				}
				r.PrevHash = prev
				h, _ := audit.HashRecord(r)
				raw.Exec(t, "UPDATE audit_log SET details = ?, prev_hash = ?, hash = ? WHERE id = ?", string(r.Details), r.PrevHash, h, id)
				prev = h
			}
			if res := mustVerify(t, plain); !res.OK {
				t.Fatalf("a consistent re-hash is invisible to the chain alone, yet: %s", res.Reason)
			}
			wantBroken(t, "rewritten log", mustVerify(t, l), 10)
			mustRecord(t, l, 3)
			if _, err := l.Anchor(ctx); !errors.Is(err, audit.ErrChainBroken) {
				t.Fatalf("Anchor over a rewritten log = %v, want ErrChainBroken", err)
			}
		})
		t.Run("advances", func(t *testing.T) {
			_, l, _ := open(t)
			mustRecord(t, l, 5)
			if a, err := l.Anchor(ctx); err != nil || a.ID != 15 {
				t.Fatalf("second Anchor = %+v, %v", a, err)
			}
			if a, err := l.Anchor(ctx); err != nil || a.ID != 15 {
				t.Fatalf("idle Anchor = %+v, %v", a, err)
			}
			if res := mustVerify(t, l); !res.OK || !strings.Contains(res.Reason, "anchor at record 15") {
				t.Fatalf("Verify = %+v", res)
			}
		})
	})
}

// TestConcurrentRecordKeepsOneChain: 8 goroutines recording at once leave
// one valid, gapless chain.
func TestConcurrentRecordKeepsOneChain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.open(t)
		l := audit.New(st, audit.Config{})
		const workers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					errs <- l.Record(context.Background(), audit.Entry{UserID: "worker", Action: audit.ConfigUpdated,
						ResourceType: "setting", ResourceID: "k", Details: map[string]int{"w": w, "i": i}})
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		res := mustVerify(t, l)
		if !res.OK || res.Checked != workers*each || res.HeadID != workers*each {
			t.Fatalf("Verify after concurrent records = %+v", res)
		}
	})
}

func TestAIDecisions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.open(t)
		clk := &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
		l := audit.New(st, audit.Config{Now: clk.Now})
		ctx := context.Background()
		good := store.AIDecision{InstanceID: "i-1", FlowName: "triage", Model: "llama3", Prompt: "p", Response: "r",
			Confidence: 0.9, TokensUsed: 42, LatencyMS: 120}
		if err := l.RecordAIDecision(ctx, good); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			edit  func(*store.AIDecision)
			field string
		}{
			{func(d *store.AIDecision) { d.FlowName = "" }, "flow_name"},
			{func(d *store.AIDecision) { d.Model = "" }, "model"},
			{func(d *store.AIDecision) { d.Confidence = 1.5 }, "confidence"},
			{func(d *store.AIDecision) { d.Confidence = -0.1 }, "confidence"},
			{func(d *store.AIDecision) { d.TokensUsed = -1 }, "tokens_used"},
			{func(d *store.AIDecision) { d.LatencyMS = -1 }, "latency_ms"},
			{func(d *store.AIDecision) { d.Prompt = strings.Repeat("p", audit.MaxPromptBytes+1) }, "prompt"},
			{func(d *store.AIDecision) { d.Model = strings.Repeat("m", audit.MaxNameBytes+1) }, "model"},
			{func(d *store.AIDecision) { d.Response = "nul\x00" }, "response"},
			{func(d *store.AIDecision) { d.Metadata = json.RawMessage(`{"x":`) }, "metadata"},
		} {
			d := good
			c.edit(&d)
			err := l.RecordAIDecision(ctx, d)
			var ie *store.InvalidError
			if !errors.As(err, &ie) || ie.Field != c.field {
				t.Errorf("RecordAIDecision(%s) = %v, want invalid %s", c.field, err, c.field)
			}
			err = l.RecordAIDecisions(ctx, []store.AIDecision{good, d})
			if !errors.As(err, &ie) || ie.Field != "decisions[1]."+c.field {
				t.Errorf("RecordAIDecisions(…, bad %s) = %v, want invalid decisions[1].%s", c.field, err, c.field)
			}
		}
		if err := l.RecordAIDecisions(ctx, make([]store.AIDecision, audit.MaxAIDecisionBatch+1)); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("oversized batch: %v", err)
		}
		got, err := l.AIDecisions(ctx, store.AIDecisionFilter{InstanceID: "i-1"})
		if err != nil || len(got) != 1 || got[0].Model != "llama3" || !got[0].Time.Equal(clk.t) {
			t.Fatalf("AIDecisions = %+v, %v (a refused batch must write nothing)", got, err)
		}
	})
}
