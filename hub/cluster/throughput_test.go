package cluster

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/internal/testenv"
)

// TestThroughputSettings: by default raft batches up to
// DefaultMaxAppendEntries commands per log write (its apply channel stays
// unbuffered), and raft.db does not write its freelist at every commit but still syncs;
// StockThroughput restores raft's and bolt's own settings; an explicit
// MaxAppendEntries wins and is validated.
func TestThroughputSettings(t *testing.T) {
	tuned := New(Config{DataDir: t.TempDir()}, catalog.NewState())
	rc, bo := tuned.raftConfig("x", newHCLog(testLogger(t))), tuned.boltOptions()
	if rc.BatchApplyCh || rc.MaxAppendEntries != DefaultMaxAppendEntries {
		t.Errorf("default raft config: BatchApplyCh %v, MaxAppendEntries %d; want false, %d", rc.BatchApplyCh, rc.MaxAppendEntries, DefaultMaxAppendEntries)
	}
	if !bo.NoFreelistSync || bo.NoSync || bo.FreelistType != "hashmap" {
		t.Errorf("default bolt options: NoFreelistSync %v NoSync %v FreelistType %q; want true, false, hashmap", bo.NoFreelistSync, bo.NoSync, bo.FreelistType)
	}
	stock := New(Config{DataDir: t.TempDir(), StockThroughput: true}, catalog.NewState())
	rc, bo = stock.raftConfig("x", newHCLog(testLogger(t))), stock.boltOptions()
	if rc.BatchApplyCh || rc.MaxAppendEntries != 64 || bo.NoFreelistSync || bo.NoSync {
		t.Errorf("stock: BatchApplyCh %v MaxAppendEntries %d NoFreelistSync %v NoSync %v; want false, 64, false, false", rc.BatchApplyCh, rc.MaxAppendEntries, bo.NoFreelistSync, bo.NoSync)
	}
	if got := New(Config{DataDir: "x", MaxAppendEntries: 100}, catalog.NewState()).raftConfig("x", newHCLog(testLogger(t))).MaxAppendEntries; got != 100 {
		t.Errorf("MaxAppendEntries 100 became %d", got)
	}
	for _, bad := range []int{-1, 1025} {
		if err := (Config{DataDir: "x", MaxAppendEntries: bad}).Validate(); err == nil || !strings.Contains(err.Error(), "MaxAppendEntries:") {
			t.Errorf("MaxAppendEntries %d: Validate = %v, want an error naming MaxAppendEntries", bad, err)
		}
	}
}

// TestConcurrentAppliesBatched: many concurrent callers on the tuned node
// (batched log writes) each get their own
// command's result, every command is applied exactly once at its own
// index, and all of them survive a restart by log replay.
func TestConcurrentAppliesBatched(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, "solo", dir)
	cfg.Bootstrap = true
	n, state := openNode(t, cfg)
	const callers, each = 64, 10
	var mu sync.Mutex
	seen := map[uint64]string{}
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst := instance(c)
			for i := range each {
				inst.Env = map[string]string{"N": fmt.Sprint(i)}
				v, err := n.Apply(ctxT(t), catalog.UpsertInstance(inst))
				if err != nil {
					t.Errorf("caller %d apply %d: %v", c, i, err)
					return
				}
				got, ok := v.(catalog.Instance)
				if !ok || got.ID != inst.ID || got.Env["N"] != fmt.Sprint(i) {
					t.Errorf("caller %d apply %d: result %#v, want its own instance", c, i, v)
					return
				}
				mu.Lock()
				if other, dup := seen[got.ModifyIndex]; dup {
					t.Errorf("index %d returned to %s and %s", got.ModifyIndex, other, got.ID)
				}
				seen[got.ModifyIndex] = got.ID
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != callers*each {
		t.Fatalf("%d distinct indexes, want %d", len(seen), callers*each)
	}
	want := persisted(t, state)
	cfg.BindAddr = n.Addr()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	_, state2 := openNode(t, cfg)
	if string(persisted(t, state2)) != string(want) {
		t.Fatal("state after restart differs from before")
	}
	for c := range callers {
		if inst, err := state2.Instance(fmt.Sprintf("i-%d", c)); err != nil || inst.Env["N"] != fmt.Sprint(each-1) {
			t.Fatalf("i-%d after restart: %+v %v", c, inst, err)
		}
	}
}

// TestThroughputSettingsSwitch: a data directory written with one setting
// opens with the other and keeps every write (bolt rebuilds the freelist
// it did not sync, and writes it again when asked to).
func TestThroughputSettingsSwitch(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, "solo", dir)
	cfg.Bootstrap = true
	var want []byte
	for i, stock := range []bool{true, false, true, false} {
		cfg.StockThroughput = stock
		n, state := openNode(t, cfg)
		if want != nil && string(persisted(t, state)) != string(want) {
			t.Fatalf("open %d (stock %v): state differs from before", i, stock)
		}
		writeAll(t, n, i*10, i*10+10)
		want = persisted(t, state)
		cfg.BindAddr = n.Addr()
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCloseAnswersEveryApply: applies in flight when the node closes all
// return promptly with an error or their result, and none leaves a
// goroutine behind waiting on a raft future that will never complete (a
// buffered apply channel left such futures unanswered at Shutdown).
func TestCloseAnswersEveryApply(t *testing.T) {
	cfg := testConfig(t, "solo", t.TempDir())
	cfg.Bootstrap = true
	cfg.ApplyTimeout = 5 * time.Minute // a stuck Apply shows as stuck, not as a timeout
	n, _ := openNode(t, cfg)
	const callers = 64
	var started, wg sync.WaitGroup
	started.Add(callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				inst := instance(c)
				inst.Env = map[string]string{"N": fmt.Sprint(i)}
				_, err := n.Apply(context.Background(), catalog.UpsertInstance(inst))
				if i == 0 {
					started.Done()
				}
				if err != nil {
					return
				}
			}
		}()
	}
	started.Wait()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("applies still waiting 30 s after Close:\n%s", buf[:runtime.Stack(buf, true)])
	}
	testenv.WaitFor(t, 10*time.Second, "no goroutine waiting on a raft future", func() error {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if k := strings.Count(stacks, "hub/cluster.wait.func1"); k > 0 {
			return fmt.Errorf("%d goroutines still wait on raft futures", k)
		}
		return nil
	})
}
