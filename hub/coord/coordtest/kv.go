package coordtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/coord"
)

// shortTTL is short enough to wait out and long enough to observe a key
// alive right after setting it on a loaded machine (checked, not assumed).
const shortTTL = 300 * time.Millisecond

func runKV(t *testing.T, open func(t *testing.T) coord.Coord) {
	t.Run("GetSetDelete", func(t *testing.T) { testKVBasic(t, open(t)) })
	t.Run("TTLExpiry", func(t *testing.T) { testKVTTL(t, open(t)) })
	t.Run("SetNXContention", func(t *testing.T) { testSetNXContention(t, open(t)) })
	t.Run("SetNXLeaseExpires", func(t *testing.T) { testSetNXLease(t, open(t)) })
	t.Run("CompareAndSwap", func(t *testing.T) { testCompareAndSwap(t, open(t)) })
	t.Run("CompareAndDelete", func(t *testing.T) { testCompareAndDelete(t, open(t)) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, open(t)) })
	t.Run("InvalidTTL", func(t *testing.T) { testInvalidTTL(t, open(t)) })
}

func testKVBasic(t *testing.T, c coord.Coord) {
	ctx := context.Background()
	if _, err := c.Get(ctx, "k"); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("Get of a missing key: err = %v, want ErrNotFound", err)
	}
	val := []byte{'v', 0, 0xff}
	mustSet(t, c, "k", val, 0)
	val[0] = 'X' // the store must have kept its own copy
	wantValue(t, c, "k", "v\x00\xff")
	mustSet(t, c, "k", []byte("v2"), 0)
	wantValue(t, c, "k", "v2")
	mustSet(t, c, "empty", nil, 0)
	wantValue(t, c, "empty", "")
	if err := c.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := c.Get(ctx, "k"); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if err := c.Delete(ctx, "k"); err != nil {
		t.Errorf("Delete of a missing key: %v", err)
	}
}

func testKVTTL(t *testing.T, c coord.Coord) {
	ctx := context.Background()
	start := time.Now()
	mustSet(t, c, "short", []byte("1"), shortTTL)
	mustSet(t, c, "witness", []byte("1"), shortTTL)
	mustSet(t, c, "forever", []byte("1"), 0)
	mustSet(t, c, "made-permanent", []byte("1"), shortTTL)
	mustSet(t, c, "made-permanent", []byte("2"), 0) // Set replaces the expiry too
	_, err := c.Get(ctx, "short")
	if err != nil && time.Since(start) < shortTTL {
		t.Fatalf("Get right after Set with ttl %v: %v", shortTTL, err)
	}
	poll(t, "a key with a ttl to expire", func() bool {
		_, err := c.Get(ctx, "short")
		return errors.Is(err, coord.ErrNotFound)
	})
	poll(t, "the witness key to expire", func() bool {
		keys, err := c.Keys(ctx, "")
		if err != nil {
			t.Fatalf("Keys: %v", err)
		}
		return !slices.Contains(keys, "witness")
	})
	if elapsed := time.Since(start); elapsed < shortTTL-5*time.Millisecond {
		t.Errorf("key expired after %v, before its ttl %v", elapsed, shortTTL)
	}
	wantValue(t, c, "forever", "1")
	wantValue(t, c, "made-permanent", "2")
	keys, err := c.Keys(ctx, "")
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	if want := []string{"forever", "made-permanent"}; !slices.Equal(keys, want) {
		t.Errorf("Keys after expiry = %q, want %q", keys, want)
	}
}

func testSetNXContention(t *testing.T, c coord.Coord) {
	const n = 20
	var wins atomic.Int32
	var winner atomic.Value
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			me := fmt.Sprintf("hub-%d", i)
			ok, err := c.SetNX(context.Background(), "lock", []byte(me), 0)
			if err != nil {
				t.Errorf("SetNX: %v", err)
				return
			}
			if ok {
				wins.Add(1)
				winner.Store(me)
			}
		}()
	}
	close(start)
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Fatalf("%d of %d SetNX calls won, want exactly 1", got, n)
	}
	wantValue(t, c, "lock", winner.Load().(string))
}

func testSetNXLease(t *testing.T, c coord.Coord) {
	ctx := context.Background()
	if ok, err := c.SetNX(ctx, "lease", []byte("a"), shortTTL); err != nil || !ok {
		t.Fatalf("first SetNX = %v, %v; want true", ok, err)
	}
	if ok, err := c.SetNX(ctx, "lease", []byte("b"), shortTTL); err != nil || ok {
		t.Fatalf("SetNX on a held lease = %v, %v; want false", ok, err)
	}
	poll(t, "the lease to expire and be taken by b", func() bool {
		ok, err := c.SetNX(ctx, "lease", []byte("b"), time.Minute)
		if err != nil {
			t.Fatalf("SetNX: %v", err)
		}
		return ok
	})
	wantValue(t, c, "lease", "b")
}

func testCompareAndSwap(t *testing.T, c coord.Coord) {
	ctx := context.Background()
	if ok, err := c.CompareAndSwap(ctx, "k", nil, []byte("x"), 0); err != nil || ok {
		t.Fatalf("CompareAndSwap on a missing key = %v, %v; want false", ok, err)
	}
	if _, err := c.Get(ctx, "k"); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("failed CompareAndSwap created the key: %v", err)
	}
	mustSet(t, c, "k", []byte("v0"), 0)
	if ok, err := c.CompareAndSwap(ctx, "k", []byte("other"), []byte("x"), 0); err != nil || ok {
		t.Fatalf("CompareAndSwap with a wrong old value = %v, %v; want false", ok, err)
	}
	wantValue(t, c, "k", "v0")

	const n = 20
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := c.CompareAndSwap(ctx, "k", []byte("v0"), []byte(fmt.Sprint("v", i+1)), 0)
			if err != nil {
				t.Errorf("CompareAndSwap: %v", err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := wins.Load(); got != 1 {
		t.Fatalf("%d of %d CompareAndSwap calls won, want exactly 1", got, n)
	}

	// Renewing a lease: swap to the same value with a new ttl.
	mustSet(t, c, "lease", []byte("me"), shortTTL)
	if ok, err := c.CompareAndSwap(ctx, "lease", []byte("me"), []byte("me"), 0); err != nil || !ok {
		t.Fatalf("renew = %v, %v; want true", ok, err)
	}
	mustSet(t, c, "witness", []byte("1"), shortTTL)
	poll(t, "the witness key to expire", func() bool {
		_, err := c.Get(ctx, "witness")
		return errors.Is(err, coord.ErrNotFound)
	})
	wantValue(t, c, "lease", "me")
}

func testCompareAndDelete(t *testing.T, c coord.Coord) {
	ctx := context.Background()
	if ok, err := c.CompareAndDelete(ctx, "k", nil); err != nil || ok {
		t.Fatalf("CompareAndDelete on a missing key = %v, %v; want false", ok, err)
	}
	mustSet(t, c, "k", []byte("mine"), 0)
	if ok, err := c.CompareAndDelete(ctx, "k", []byte("theirs")); err != nil || ok {
		t.Fatalf("CompareAndDelete with a wrong value = %v, %v; want false", ok, err)
	}
	wantValue(t, c, "k", "mine")
	if ok, err := c.CompareAndDelete(ctx, "k", []byte("mine")); err != nil || !ok {
		t.Fatalf("CompareAndDelete = %v, %v; want true", ok, err)
	}
	if _, err := c.Get(ctx, "k"); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("Get after CompareAndDelete: err = %v, want ErrNotFound", err)
	}
}

func testKeys(t *testing.T, c coord.Coord) {
	ctx := context.Background()
	for _, k := range []string{"ctx/b/2", "ctx/a/1", "ctx/a/2", "other", "glob*x", "globber", "br[a]ck", "brack"} {
		mustSet(t, c, k, []byte("v"), 0)
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"ctx/a/", []string{"ctx/a/1", "ctx/a/2"}},
		{"ctx/", []string{"ctx/a/1", "ctx/a/2", "ctx/b/2"}},
		{"glob*", []string{"glob*x"}},
		{"br[a]", []string{"br[a]ck"}},
		{"nothing", nil},
		{"", []string{"br[a]ck", "brack", "ctx/a/1", "ctx/a/2", "ctx/b/2", "glob*x", "globber", "other"}},
	} {
		got, err := c.Keys(ctx, tc.prefix)
		if err != nil {
			t.Fatalf("Keys(%q): %v", tc.prefix, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Keys(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

func testInvalidTTL(t *testing.T, c coord.Coord) {
	ctx := context.Background()
	if err := c.Set(ctx, "k", []byte("v"), -time.Second); err == nil {
		t.Errorf("Set with a negative ttl succeeded")
	}
	if _, err := c.SetNX(ctx, "k", []byte("v"), -time.Second); err == nil {
		t.Errorf("SetNX with a negative ttl succeeded")
	}
	// A positive ttl under a millisecond is one millisecond, not "forever".
	mustSet(t, c, "tiny", []byte("v"), time.Microsecond)
	poll(t, "a 1µs-ttl key to expire", func() bool {
		_, err := c.Get(ctx, "tiny")
		return errors.Is(err, coord.ErrNotFound)
	})
}

func mustSet(t *testing.T, c coord.Coord, key string, val []byte, ttl time.Duration) {
	t.Helper()
	if err := c.Set(context.Background(), key, val, ttl); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func wantValue(t *testing.T, c coord.Coord, key, want string) {
	t.Helper()
	got, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !bytes.Equal(got, []byte(want)) {
		t.Fatalf("Get(%q) = %q, want %q", key, got, want)
	}
}
