package hatest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/postgres"
	"github.com/redforge/controltower/internal/testenv"
)

// outages records the store's write outages.
type outages struct {
	mu     sync.Mutex
	starts int
	ended  []time.Duration
}

func (o *outages) OutageStarted(error) { o.mu.Lock(); o.starts++; o.mu.Unlock() }
func (o *outages) OutageEnded(d time.Duration, _ error) {
	o.mu.Lock()
	o.ended = append(o.ended, d)
	o.mu.Unlock()
}

func (o *outages) get() (int, []time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.starts, append([]time.Duration(nil), o.ended...)
}

func openStore(t *testing.T, dsn string, obs *outages) *postgres.DB {
	t.Helper()
	db := postgres.New(dsn)
	db.Observer = obs
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestStoreWritesRideThroughPrimaryKill: writers append AI decisions
// (each with a unique prompt) through a multi-host DSN while the primary's
// postmaster and Patroni are SIGKILLed; every write returns success after
// the failover and each decision is in the database exactly once.
func TestStoreWritesRideThroughPrimaryKill(t *testing.T) {
	t.Parallel()
	c := testenv.StartPGHA(t, testenv.PGHAOptions{})
	c.CreateDatabase("hub")
	obs := &outages{}
	db := openStore(t, c.DSN("hub"), obs)
	ctx := context.Background()

	ws := startWriters(4, func(w, i int) error {
		return db.AppendAIDecisions(ctx, []store.AIDecision{{Time: time.Now(), InstanceID: "i", FlowName: "f", Model: "m",
			Prompt: fmt.Sprintf("w%d-%d", w, i), Response: "r", Confidence: 0.5}})
	})
	ws.waitOK(t, 30*time.Second, "100 writes before the kill", 100)
	leader, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	before := ws.ok.Load()
	killed := time.Now()
	c.Kill(leader)
	ws.waitOK(t, 60*time.Second, "200 writes after the failover", before+200)
	ws.stop()
	if n := ws.failed.Load(); n > 0 {
		t.Fatalf("%d writes failed through the failover; first: %v", n, ws.first.Load())
	}
	starts, ended := obs.get()
	if starts == 0 || len(ended) == 0 {
		t.Fatalf("no write outage recorded (started %d, ended %v)", starts, ended)
	}
	t.Logf("primary %s killed; write outage %v (%.1fs after the kill the writes went on)", leader.Name, ended, time.Since(killed).Seconds())
	var n int64
	seen := map[string]int{}
	for off := 0; ; off += store.MaxLimit {
		got, err := db.ListAIDecisions(ctx, store.AIDecisionFilter{Limit: store.MaxLimit, Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range got {
			seen[d.Prompt]++
			n++
		}
		if len(got) < store.MaxLimit {
			break
		}
	}
	for p, k := range seen {
		if k != 1 {
			t.Errorf("decision %s stored %d times", p, k)
		}
	}
	if n != ws.ok.Load() {
		t.Fatalf("%d decisions acknowledged, %d stored", ws.ok.Load(), n)
	}
}
