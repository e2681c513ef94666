package cluster

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

type recorder struct {
	mu      sync.Mutex
	level   slog.Level
	records []slog.Record
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

func attrs(rec slog.Record) map[string]string {
	m := map[string]string{}
	rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	return m
}

func TestHCLogLevels(t *testing.T) {
	rec := &recorder{level: slog.LevelDebug - 8}
	h := newHCLog(slog.New(rec)).Named("raft").Named("snap")
	h.Trace("t")
	h.Debug("d")
	h.Info("i", "term", 3)
	h.Warn("w")
	h.Error("e")
	want := []slog.Level{slog.LevelDebug - 4, slog.LevelDebug - 2, slog.LevelDebug, slog.LevelWarn, slog.LevelError}
	if len(rec.records) != len(want) {
		t.Fatalf("%d records, want %d", len(rec.records), len(want))
	}
	for i, r := range rec.records {
		if r.Level != want[i] {
			t.Errorf("%s logged at %s, want %s", r.Message, r.Level, want[i])
		}
		if got := attrs(r)[logKeyComponent]; got != "raft.snap" {
			t.Errorf("%s: component %q", r.Message, got)
		}
	}
	if got := attrs(rec.records[2])["term"]; got != "3" {
		t.Errorf("args lost: term = %q", got)
	}
}

// TestHCLogQuietByDefault: at slog's default INFO level only raft's
// warnings and errors get through.
func TestHCLogQuietByDefault(t *testing.T) {
	rec := &recorder{level: slog.LevelInfo}
	h := newHCLog(slog.New(rec))
	h.Info("election won")
	h.Debug("x")
	h.Warn("heartbeat failed")
	if len(rec.records) != 1 || rec.records[0].Message != "heartbeat failed" {
		t.Fatalf("records = %v", rec.records)
	}
	if h.IsInfo() || h.IsDebug() || !h.IsWarn() || !h.IsError() {
		t.Fatal("Is* do not match the handler's level")
	}
	if got := h.GetLevel(); got != hclog.Warn {
		t.Fatalf("GetLevel() = %v, want Warn", got)
	}
	w := h.With("k", "v")
	if got := w.ImpliedArgs(); len(got) != 2 || got[0] != "k" {
		t.Fatalf("ImpliedArgs() = %v", got)
	}
	h.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Error}).Print("from std")
	if last := rec.records[len(rec.records)-1]; last.Message != "from std" || last.Level != slog.LevelError {
		t.Fatalf("StandardLogger record = %v", last)
	}
}
