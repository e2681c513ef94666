package redis_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/redforge/controltower/hub/coord"
	"github.com/redforge/controltower/hub/coord/coordtest"
	coordredis "github.com/redforge/controltower/hub/coord/redis"
	"github.com/redforge/controltower/internal/testenv"
)

// TestContract runs the contract suite against one real redis-server; each
// subtest gets its own key prefix, which also proves prefixes isolate.
func TestContract(t *testing.T) {
	url := testenv.Redis(t)
	var n atomic.Int64
	coordtest.Run(t, func(t *testing.T) coord.Coord {
		c := coordredis.New(url)
		c.Prefix = fmt.Sprintf("test%d:", n.Add(1))
		mustOpen(t, c)
		return c
	})
}

func mustOpen(t *testing.T, c *coordredis.Coord) {
	t.Helper()
	if err := c.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
}

// TestPingFailsPromptlyWhenServerGone kills the server under an open Coord:
// Ping must fail within 3 s rather than hang.
func TestPingFailsPromptlyWhenServerGone(t *testing.T) {
	var c *coordredis.Coord
	t.Run("server", func(t *testing.T) {
		c = coordredis.New(testenv.Redis(t)) // killed when this subtest ends
		if err := c.Open(context.Background()); err != nil {
			t.Fatalf("Open: %v", err)
		}
		if err := c.Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	defer c.Close()
	start := time.Now()
	err := c.Ping(context.Background())
	if err == nil {
		t.Fatalf("Ping succeeded with the server gone")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Ping took %v to fail, want under 3s", took)
	}
}

// TestPingFailsPromptlyWhenServerSilent puts a link that delays every byte
// by 10 s between the Coord and Redis: Ping must give up within 3 s.
func TestPingFailsPromptlyWhenServerSilent(t *testing.T) {
	link := testenv.Proxy(t, hostPort(t, testenv.Redis(t)))
	c := coordredis.New("redis://" + link.Addr() + "/0")
	mustOpen(t, c)
	link.Latency(10_000, 0)
	start := time.Now()
	if err := c.Ping(context.Background()); err == nil {
		t.Fatalf("Ping succeeded through a 10 s link")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Ping took %v to fail, want under 3s", took)
	}
}

// TestOpenErrorNamesURLWithoutPassword points at a closed port.
func TestOpenErrorNamesURLWithoutPassword(t *testing.T) {
	c := coordredis.New("redis://user:s3cret@127.0.0.1:1/0")
	start := time.Now()
	err := c.Open(context.Background())
	if err == nil {
		c.Close()
		t.Fatalf("Open of a closed port succeeded")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Open took %v to fail, want under 3s", took)
	}
	if msg := err.Error(); strings.Contains(msg, "s3cret") || !strings.Contains(msg, "127.0.0.1:1") {
		t.Errorf("Open error = %q, want the URL without its password", msg)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, coord.ErrClosed) {
		t.Errorf("Ping after a failed Open = %v, want ErrClosed", err)
	}
	if err := coordredis.New("http://x").Open(context.Background()); err == nil || !strings.Contains(err.Error(), "redis://") {
		t.Errorf("Open of a non-Redis URL = %v, want an error saying the expected form", err)
	}
}

// TestSubscriptionSurvivesIdle keeps a subscription idle over several
// health checks; it must stay live and still deliver.
func TestSubscriptionSurvivesIdle(t *testing.T) {
	c := coordredis.New(testenv.Redis(t))
	// Five health checks in the idle second; an interval of 200 ms leaves
	// room for a pong on a loaded CI machine (50 ms did not).
	c.HealthCheckInterval = 200 * time.Millisecond
	mustOpen(t, c)
	sub, err := c.Subscribe(context.Background(), "idle")
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer sub.Close()
	time.Sleep(time.Second) // the idle time is what is under test
	if err := c.Publish(context.Background(), "idle", []byte("hi")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	select {
	case m, ok := <-sub.C():
		if !ok || string(m.Data) != "hi" {
			t.Fatalf("got %q, %v (Err %v); want hi", m.Data, ok, sub.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no message after an idle period")
	}
}

// TestSubscriptionEndsWhenLinkSilent checks the health check notices a
// connection that stays open but answers nothing.
func TestSubscriptionEndsWhenLinkSilent(t *testing.T) {
	link := testenv.Proxy(t, hostPort(t, testenv.Redis(t)))
	c := coordredis.New("redis://" + link.Addr() + "/0")
	c.HealthCheckInterval = 100 * time.Millisecond
	mustOpen(t, c)
	sub, err := c.Subscribe(context.Background(), "ch")
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	defer sub.Close()
	link.Latency(30_000, 0)
	select {
	case _, ok := <-sub.C():
		if ok {
			t.Fatalf("received a message through a silent link")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("subscription still open 5 s after its link went silent")
	}
	if sub.Err() == nil || errors.Is(sub.Err(), coord.ErrClosed) {
		t.Errorf("Err = %v, want a connection error", sub.Err())
	}
}

// TestSubscriptionEndsWhenServerGone checks a subscription reports the
// lost connection instead of silently reconnecting with a gap.
func TestSubscriptionEndsWhenServerGone(t *testing.T) {
	var (
		c   *coordredis.Coord
		sub coord.Subscription
	)
	t.Run("server", func(t *testing.T) {
		c = coordredis.New(testenv.Redis(t))
		if err := c.Open(context.Background()); err != nil {
			t.Fatalf("Open: %v", err)
		}
		var err error
		if sub, err = c.Subscribe(context.Background(), "ch"); err != nil {
			t.Fatalf("Subscribe: %v", err)
		}
	})
	defer c.Close()
	select {
	case _, ok := <-sub.C():
		if ok {
			t.Fatalf("received a message from a dead server")
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("subscription still open 10 s after the server died")
	}
	if sub.Err() == nil {
		t.Errorf("Err = nil, want the connection error")
	}
}

// TestPrefixNamespacesKeysAndChannels checks two hub sets sharing one Redis
// see neither each other's keys nor each other's messages, and that the
// keys live where the package comment says.
func TestPrefixNamespacesKeysAndChannels(t *testing.T) {
	ctx := context.Background()
	url := testenv.Redis(t)
	a, b := coordredis.New(url), coordredis.New(url)
	b.Prefix = "other:"
	mustOpen(t, a)
	mustOpen(t, b)
	if err := a.Set(ctx, "k", []byte("a"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("b sees a's key: %v", err)
	}
	if _, err := a.HoldPush(ctx, "inst", []byte("m")); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := a.Allow(ctx, "tok", 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Subscribe(ctx, "ch")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := a.Publish(ctx, "ch", []byte("from a")); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "ch", []byte("from b")); err != nil {
		t.Fatal(err)
	}
	if m := <-sub.C(); string(m.Data) != "from b" {
		t.Errorf("b's subscriber got %q first, want only b's message", m.Data)
	}

	raw := rawClient(t, url)
	keys, err := raw.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"redforge:kv:k": true, "redforge:hold:{inst}": true, "redforge:hold:{inst}:seq": true, "redforge:rate:tok": true}
	for _, k := range keys {
		if !want[k] {
			t.Errorf("unexpected key %q in Redis", k)
		}
		delete(want, k)
	}
	for k := range want {
		t.Errorf("key %q missing from Redis", k)
	}
	n, err := raw.PubSubNumSub(ctx, "other:ch:ch").Result()
	if err != nil || n["other:ch:ch"] != 1 {
		t.Errorf("PUBSUB NUMSUB other:ch:ch = %v, %v; want 1", n, err)
	}
}

// TestSubscribeCloseUnsubscribes checks Close frees the server side too.
func TestSubscribeCloseUnsubscribes(t *testing.T) {
	ctx := context.Background()
	url := testenv.Redis(t)
	c := coordredis.New(url)
	mustOpen(t, c)
	raw := rawClient(t, url)
	sub, err := c.Subscribe(ctx, "ch")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := raw.PubSubNumSub(ctx, "redforge:ch:ch").Result(); n["redforge:ch:ch"] != 1 {
		t.Fatalf("NUMSUB while subscribed = %v, want 1", n)
	}
	sub.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := raw.PubSubNumSub(ctx, "redforge:ch:ch").Result()
		if err == nil && n["redforge:ch:ch"] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("NUMSUB 5 s after Close = %v, %v; want 0", n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func rawClient(t *testing.T, rawURL string) *goredis.Client {
	t.Helper()
	opt, err := goredis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func hostPort(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
