package coordtest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/coord"
)

func runRateLimit(t *testing.T, open func(t *testing.T) coord.Coord) {
	t.Run("ConcurrentAdmitsExactlyLimit", func(t *testing.T) { testAllowConcurrent(t, open(t)) })
	t.Run("WindowResets", func(t *testing.T) { testAllowReset(t, open(t)) })
	t.Run("InvalidArguments", func(t *testing.T) { testAllowInvalid(t, open(t)) })
}

func testAllowConcurrent(t *testing.T, c coord.Coord) {
	const calls, limit, window = 50, 10, time.Minute
	var mu sync.Mutex
	var remaining []int
	var denied int
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ok, rem, reset, err := c.Allow(context.Background(), "api:token1", limit, window)
			if err != nil {
				t.Errorf("Allow: %v", err)
				return
			}
			if reset <= 0 || reset > window {
				t.Errorf("resetIn = %v, want in (0, %v]", reset, window)
			}
			mu.Lock()
			defer mu.Unlock()
			if ok {
				remaining = append(remaining, rem)
			} else {
				denied++
				if rem != 0 {
					t.Errorf("denied call reports remaining %d, want 0", rem)
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(remaining) != limit || denied != calls-limit {
		t.Fatalf("admitted %d and denied %d of %d calls, want %d admitted", len(remaining), denied, calls, limit)
	}
	slices.Sort(remaining)
	if fmt.Sprint(remaining) != fmt.Sprint([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Errorf("admitted calls reported remaining %v, want each of 0..9 once", remaining)
	}
	// Another key has its own window.
	if ok, rem, _, err := c.Allow(context.Background(), "api:token2", limit, window); err != nil || !ok || rem != limit-1 {
		t.Errorf("Allow on another key = %v, %d, %v; want true, %d", ok, rem, err, limit-1)
	}
}

func testAllowReset(t *testing.T, c coord.Coord) {
	ctx := context.Background()
	const window = 300 * time.Millisecond
	first := time.Now()
	for i, want := range []bool{true, true, false} {
		ok, _, _, err := c.Allow(ctx, "k", 2, window)
		if err != nil {
			t.Fatalf("Allow: %v", err)
		}
		if ok != want && time.Since(first) < window {
			t.Fatalf("call %d: allowed = %v, want %v", i+1, ok, want)
		}
	}
	poll(t, "the window to reset", func() bool {
		ok, rem, reset, err := c.Allow(ctx, "k", 2, window)
		if err != nil {
			t.Fatalf("Allow: %v", err)
		}
		if ok && (rem != 1 || reset <= 0 || reset > window) {
			t.Fatalf("first call of a new window: remaining %d, resetIn %v; want 1, (0, %v]", rem, reset, window)
		}
		return ok
	})
	if elapsed := time.Since(first); elapsed < window-5*time.Millisecond {
		t.Errorf("window reset after %v, before %v", elapsed, window)
	}
}

func testAllowInvalid(t *testing.T, c coord.Coord) {
	ctx := context.Background()
	if _, _, _, err := c.Allow(ctx, "k", 0, time.Second); err == nil {
		t.Errorf("Allow with limit 0 succeeded")
	}
	if _, _, _, err := c.Allow(ctx, "k", 1, 0); err == nil {
		t.Errorf("Allow with window 0 succeeded")
	}
	if _, err := c.HoldPeek(ctx, "q", -1); err == nil {
		t.Errorf("HoldPeek with n=-1 succeeded")
	}
}
