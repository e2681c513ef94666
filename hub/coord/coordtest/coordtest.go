// Package coordtest is the contract suite every coord.Coord implementation
// must pass. An implementation's test calls Run with a function that opens
// a fresh, empty Coord and registers its Close with t.Cleanup.
package coordtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/coord"
)

// pollTimeout bounds every wait on time-based behaviour (expiry, delivery).
const pollTimeout = 10 * time.Second

// Run runs the contract suite against the Coord that open returns. open is
// called once per subtest and must return an empty Coord, isolated from
// the Coords of other subtests.
func Run(t *testing.T, open func(t *testing.T) coord.Coord) {
	t.Run("Hold", func(t *testing.T) { runHold(t, open) })
	t.Run("KV", func(t *testing.T) { runKV(t, open) })
	t.Run("PubSub", func(t *testing.T) { runPubSub(t, open) })
	t.Run("RateLimit", func(t *testing.T) { runRateLimit(t, open) })
	t.Run("Ping", func(t *testing.T) { testPing(t, open(t)) })
	t.Run("Close", func(t *testing.T) { testClose(t, open(t)) })
}

func testPing(t *testing.T, c coord.Coord) {
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testClose(t *testing.T, c coord.Coord) {
	ctx := context.Background()
	sub, err := c.Subscribe(ctx, "ch")
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitClosed(t, sub)
	if err := sub.Err(); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("Subscription.Err after Coord.Close = %v, want ErrClosed", err)
	}
	if err := sub.Close(); err != nil {
		t.Errorf("Subscription.Close after Coord.Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	calls := map[string]error{
		"Ping":    c.Ping(ctx),
		"Set":     c.Set(ctx, "k", []byte("v"), 0),
		"Publish": c.Publish(ctx, "ch", []byte("m")),
	}
	_, calls["Get"] = c.Get(ctx, "k")
	_, calls["HoldPush"] = c.HoldPush(ctx, "q", []byte("m"))
	_, calls["Subscribe"] = c.Subscribe(ctx, "ch")
	_, _, _, calls["Allow"] = c.Allow(ctx, "k", 1, time.Second)
	for name, err := range calls {
		if !errors.Is(err, coord.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

// poll calls cond until it returns true, failing t after pollTimeout.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", pollTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
