package memory_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/coord"
	"github.com/redforge/controltower/hub/coord/coordtest"
	"github.com/redforge/controltower/hub/coord/memory"
)

func TestContract(t *testing.T) {
	coordtest.Run(t, func(t *testing.T) coord.Coord {
		c := memory.New()
		t.Cleanup(func() { c.Close() })
		return c
	})
}

// clock is a manual clock for the injectable Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newWithClock(t *testing.T) (*memory.Coord, *clock) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	c := memory.New()
	c.Now = clk.Now
	t.Cleanup(func() { c.Close() })
	return c, clk
}

func TestTTLWithClock(t *testing.T) {
	ctx := context.Background()
	c, clk := newWithClock(t)
	if err := c.Set(ctx, "k", []byte("v"), time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(999 * time.Millisecond)
	if _, err := c.Get(ctx, "k"); err != nil {
		t.Fatalf("Get just before expiry: %v", err)
	}
	clk.Advance(time.Millisecond)
	if _, err := c.Get(ctx, "k"); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("Get at expiry: err = %v, want ErrNotFound", err)
	}
}

func TestAllowWithClock(t *testing.T) {
	ctx := context.Background()
	c, clk := newWithClock(t)
	for i := range 3 {
		ok, rem, reset, err := c.Allow(ctx, "k", 2, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok != (i < 2) || rem != max(0, 1-i) || reset != time.Minute {
			t.Fatalf("call %d = %v, %d, %v", i+1, ok, rem, reset)
		}
	}
	clk.Advance(59 * time.Second)
	if ok, _, reset, _ := c.Allow(ctx, "k", 2, time.Minute); ok || reset != time.Second {
		t.Fatalf("before the window ends: allowed %v, resetIn %v; want false, 1s", ok, reset)
	}
	clk.Advance(time.Second)
	if ok, rem, reset, _ := c.Allow(ctx, "k", 2, time.Minute); !ok || rem != 1 || reset != time.Minute {
		t.Fatalf("new window: %v, %d, %v; want true, 1, 1m", ok, rem, reset)
	}
}

// TestSweep checks that expired entries nobody reads again are dropped.
func TestSweep(t *testing.T) {
	ctx := context.Background()
	c, clk := newWithClock(t)
	c.SweepInterval = time.Minute
	for _, k := range []string{"a", "b", "c"} {
		if err := c.Set(ctx, k, []byte("v"), time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, err := c.Allow(ctx, "r", 1, time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	if err := c.Ping(ctx); err != nil { // any call may sweep
		t.Fatal(err)
	}
	if n := memory.Entries(c); n != 0 {
		t.Errorf("%d entries left after sweep, want 0", n)
	}
}
