package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// testConfig returns a config with timeouts fast enough for tests yet slow
// enough not to flap on a loaded machine under -race.
func testConfig(tb testing.TB, id, dir string) Config {
	return Config{
		DataDir:            dir,
		NodeID:             id,
		BindAddr:           "127.0.0.1:0",
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      10 * time.Millisecond,
		SnapshotInterval:   time.Hour, // tests take snapshots explicitly
		Logger:             testLogger(tb),
	}
}

// openNode opens a node on a fresh catalog state and closes it at cleanup.
func openNode(tb testing.TB, cfg Config) (*Node, *catalog.State) {
	tb.Helper()
	state := catalog.NewState()
	n := New(cfg, state)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Open(ctx); err != nil {
		tb.Fatalf("open %s: %v", cfg.NodeID, err)
	}
	tb.Cleanup(func() { n.Close() })
	return n, state
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// persisted returns the catalog's snapshot bytes: equal bytes mean equal
// state, every table and index included (catalog snapshots are
// deterministic).
func persisted(tb testing.TB, s *catalog.State) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := s.Snapshot().Persist(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// testLogger logs to t.Log until the test ends (raft goroutines may log a
// little after Close).
func testLogger(tb testing.TB) *slog.Logger {
	w := &testWriter{tb: tb}
	tb.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu   sync.Mutex
	tb   testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func instance(i int) catalog.Instance {
	return catalog.Instance{ID: fmt.Sprintf("i-%d", i), Name: fmt.Sprintf("flow-%d", i), Env: map[string]string{"N": fmt.Sprint(i)}}
}

func mustApply(tb testing.TB, n *Node, cmd catalog.Command) any {
	tb.Helper()
	v, err := n.Apply(ctxT(tb), cmd)
	if err != nil {
		tb.Fatalf("apply %s on %s: %v", cmd.Type, n.ID(), err)
	}
	return v
}
