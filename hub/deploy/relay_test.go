package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/broker"
	"github.com/redforge/controltower/hub/coord/memory"
	"github.com/redforge/controltower/internal/testenv"
)

// TestRelayHoldsAndReplaysInOrder publishes a stream of input while the
// relay forwards to blue, holds, and releases to green: every message
// arrives exactly once, in order, first at blue then at green.
func TestRelayHoldsAndReplaysInOrder(t *testing.T) {
	bus, holds := busAndHolds(t)
	var mu sync.Mutex
	live := "app"
	var got []string // "instance:seq"
	resolve := func(string) (string, error) { mu.Lock(); defer mu.Unlock(); return live, nil }
	r := newRelay(bus, holds, resolve, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.run(ctx); err != nil {
		t.Fatal(err)
	}
	for _, inst := range []string{"app", "app.green"} {
		if _, err := bus.Subscribe(ctx, InTopic(inst)+"/#", 1, func(_ string, p []byte) {
			mu.Lock()
			got = append(got, inst+":"+string(p))
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 3000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= n; i++ {
			if err := bus.Publish(ctx, InputPrefix+"app/x", []byte(strconv.Itoa(i)), 1, false); err != nil {
				t.Error(err)
				return
			}
			if i%100 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	// Hold once blue has some input, and switch once some is held, so the
	// test goes through all three stages whatever the machine's speed.
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	testenv.WaitFor(t, 10*time.Second, "blue receiving input", func() error {
		if count() == 0 {
			return errors.New("nothing yet")
		}
		return nil
	})
	r.hold("app")
	testenv.WaitFor(t, 10*time.Second, "input held", func() error {
		if r.heldCount(ctx, "app") == 0 {
			return errors.New("nothing held yet")
		}
		return nil
	})
	mu.Lock()
	live = "app.green"
	mu.Unlock()
	replayed, err := r.release(ctx, "app", "app.green")
	if err != nil {
		t.Fatal(err)
	}
	<-done
	testenv.WaitFor(t, 10*time.Second, "every message delivered", func() error {
		if l := count(); l < n {
			return fmt.Errorf("%d of %d", l, n)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n {
		t.Fatalf("got %d messages, want %d", len(got), n)
	}
	green := false
	for i, g := range got {
		name, s, _ := cut(g)
		seq, _ := strconv.Atoi(s)
		if seq != i+1 {
			t.Fatalf("message %d is %s: lost, duplicated or reordered", i+1, g)
		}
		if name == "app.green" {
			green = true
		} else if green {
			t.Fatalf("message %s went to blue after green took over", g)
		}
	}
	if replayed == 0 || !green {
		t.Errorf("replayed %d, green got messages: %v; the test did not exercise the hold", replayed, green)
	}
	if r.isHeld("app") || r.heldCount(ctx, "app") != 0 {
		t.Error("still holding after release")
	}
	t.Logf("%d messages; %d held and replayed", n, replayed)
}

func cut(s string) (string, string, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// TestRelayStopHandlesWhatItTookIn: input the broker had acknowledged and
// the relay had queued when its context ended (the hub shutting down) is
// still forwarded, every message once and in order, before the relay's
// loop returns; it used to be dropped.
func TestRelayStopHandlesWhatItTookIn(t *testing.T) {
	bus, holds := busAndHolds(t)
	gate := make(chan struct{})
	resolve := func(string) (string, error) {
		<-gate // the first message waits here while the rest queue up
		return "app", nil
	}
	var mu sync.Mutex
	var got []string
	if _, err := bus.Subscribe(context.Background(), InTopic("app")+"/#", 1, func(_ string, p []byte) {
		mu.Lock()
		got = append(got, string(p))
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	r := newRelay(bus, holds, resolve, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.run(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := 1; i <= n; i++ {
		if err := bus.Publish(ctx, InputPrefix+"app/x", []byte(strconv.Itoa(i)), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "the relay to take in every message", func() error {
		if q := len(r.in); q < n-1 {
			return fmt.Errorf("%d queued", q)
		}
		return nil
	})
	cancel()
	close(gate)
	r.wait()
	testenv.WaitFor(t, 10*time.Second, "every message forwarded", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) < n {
			return fmt.Errorf("%d of %d", len(got), n)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for i, g := range got {
		if g != strconv.Itoa(i+1) {
			t.Fatalf("message %d is %s: lost, duplicated or reordered", i+1, g)
		}
	}
	if len(got) != n {
		t.Fatalf("%d messages forwarded, want %d", len(got), n)
	}
}

// busAndHolds opens an embedded broker and an in-memory hold queue, both
// closed at cleanup.
func busAndHolds(t *testing.T) (*broker.Embedded, *memory.Coord) {
	t.Helper()
	bus := broker.NewEmbedded("127.0.0.1:0", nil, nil)
	if err := bus.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Close() })
	holds := memory.New()
	t.Cleanup(func() { holds.Close() })
	return bus, holds
}
