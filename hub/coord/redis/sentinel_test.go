package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/coord"
	"github.com/redforge/controltower/hub/coord/coordtest"
	coordredis "github.com/redforge/controltower/hub/coord/redis"
	"github.com/redforge/controltower/internal/testenv"
)

func TestParseSentinelURL(t *testing.T) {
	good := []struct {
		url  string
		want coordredis.SentinelURL
	}{
		{"redis-sentinel://s1:26379,s2:26379,s3:26379/mymaster/0",
			coordredis.SentinelURL{Sentinels: []string{"s1:26379", "s2:26379", "s3:26379"}, Master: "mymaster", HoldReplicas: 1}},
		{"redis-sentinel://:p%40ss@10.0.0.1:26379/m/3?sentinel_password=sp&hold_replicas=2",
			coordredis.SentinelURL{Sentinels: []string{"10.0.0.1:26379"}, Master: "m", DB: 3, Password: "p@ss", SentinelPassword: "sp", HoldReplicas: 2}},
		{"redis-sentinel://u:pw@[::1]:26379/m",
			coordredis.SentinelURL{Sentinels: []string{"[::1]:26379"}, Master: "m", Username: "u", Password: "pw", HoldReplicas: 1}},
	}
	for _, g := range good {
		s, err := coordredis.ParseSentinelURL(g.url)
		if err != nil {
			t.Errorf("%s: %v", g.url, err)
			continue
		}
		if fmt.Sprint(*s) != fmt.Sprint(g.want) {
			t.Errorf("%s: got %+v, want %+v", g.url, *s, g.want)
		}
		if strings.Contains(s.Redacted(), "pw") || strings.Contains(s.Redacted(), "p@ss") || strings.Contains(s.Redacted(), "=sp") {
			t.Errorf("Redacted shows a password: %s", s.Redacted())
		}
	}
	bad := []struct{ url, field string }{
		{"redis-sentinel://:secret@/mymaster/0", "sentinels"},
		{"redis-sentinel://:secret@s1/mymaster/0", "sentinels"},
		{"redis-sentinel://:secret@s1:99999/mymaster/0", "sentinels"},
		{"redis-sentinel://:secret@s1:26379,/mymaster/0", "sentinels"},
		{"redis-sentinel://:secret@s1:26379", "master"},
		{"redis-sentinel://:secret@s1:26379/", "master"},
		{"redis-sentinel://:secret@s1:26379/m/x", "db"},
		{"redis-sentinel://:secret@s1:26379/m/0/extra", "db"},
		{"redis-sentinel://:secret@s1:26379/m/0?nope=1", "nope"},
		{"redis-sentinel://:secret@s1:26379/m/0?hold_replicas=-1", "hold_replicas"},
	}
	for _, b := range bad {
		_, err := coordredis.ParseSentinelURL(b.url)
		var ue *coordredis.URLError
		if !errors.As(err, &ue) || ue.Field != b.field {
			t.Errorf("%s: error %v, want a URLError on field %s", b.url, err, b.field)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: error shows the password: %v", b.url, err)
		}
	}
}

// TestSentinelContract runs the contract suite through Sentinel (the
// failover client, hold writes with WAIT 1).
func TestSentinelContract(t *testing.T) {
	cl := testenv.RedisSentinel(t, testenv.SentinelOptions{Password: "s3cret"})
	var n atomic.Int64
	coordtest.Run(t, func(t *testing.T) coord.Coord {
		c := coordredis.New(cl.URL)
		c.Prefix = fmt.Sprintf("test%d:", n.Add(1))
		mustOpen(t, c)
		return c
	})
}

// TestSentinelNoMaster opens a Coord on Sentinels that answer but know no
// master of that name: one line naming every Sentinel tried, without the
// password.
func TestSentinelNoMaster(t *testing.T) {
	cl := testenv.RedisSentinel(t, testenv.SentinelOptions{Password: "s3cret"})
	url := strings.Replace(cl.URL, "/"+cl.Master+"/", "/nosuchmaster/", 1)
	c := coordredis.New(url)
	err := c.Open(context.Background())
	if err == nil {
		c.Close()
		t.Fatal("Open succeeded with no master known")
	}
	msg := err.Error()
	t.Logf("Open: %s", msg)
	if strings.Contains(msg, "s3cret") || strings.Contains(msg, "\n") {
		t.Errorf("error shows the password or spans lines: %q", msg)
	}
	for _, s := range cl.Sentinels {
		if !strings.Contains(msg, s) {
			t.Errorf("error does not name sentinel %s", s)
		}
	}
	if !strings.Contains(msg, `no Redis master known for "nosuchmaster"`) {
		t.Errorf("error does not say no master is known: %s", msg)
	}
}

// TestSentinelMasterKilled SIGKILLs the master while pushers hold messages
// (retrying a failed push under the same id, as the deploy relay does) and
// a subscriber listens: every acknowledged message is held exactly once,
// in order, on the new master; Ping says degraded during the outage and ok
// after; a new subscription on the new master gets messages.
func TestSentinelMasterKilled(t *testing.T) {
	cl := testenv.RedisSentinel(t, testenv.SentinelOptions{Password: "s3cret"})
	c := coordredis.New(cl.URL)
	mustOpen(t, c)
	ctx := context.Background()
	sub, err := c.Subscribe(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	const queue = "deploy/hold/x"
	var (
		mu    sync.Mutex
		acked []string // ids whose push returned without error, in order
		stop  = make(chan struct{})
		done  = make(chan struct{})
	)
	go func() { // one pusher, 200 msg/s, like the relay: retries until held
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			id := fmt.Sprintf("m%05d", i)
			deadline := time.Now().Add(30 * time.Second)
			for {
				_, err := c.HoldPushOnce(ctx, queue, id, []byte(id))
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("push %s: %v", id, err)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			mu.Lock()
			acked = append(acked, id)
			mu.Unlock()
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	testenv.WaitFor(t, 10*time.Second, "pushes before the kill", func() error {
		if n := count(); n < 100 {
			return fmt.Errorf("%d pushed", n)
		}
		return nil
	})

	old, killed := cl.KillMaster(t)
	var degraded error
	testenv.WaitFor(t, 10*time.Second, "Ping to say degraded", func() error {
		err := c.Ping(ctx)
		var d interface{ Degraded() bool }
		if err != nil && errors.As(err, &d) && d.Degraded() {
			degraded = err
			return nil
		}
		return fmt.Errorf("Ping: %v", err)
	})
	t.Logf("degraded: %v", degraded)
	if strings.Contains(degraded.Error(), "s3cret") {
		t.Errorf("Ping error shows the password")
	}
	master, took := cl.Failover(t, old, killed)
	testenv.WaitFor(t, 20*time.Second, "Ping ok on the new master", func() error { return c.Ping(ctx) })
	back := time.Since(killed)
	t.Logf("master %s killed; Sentinel promoted %s after %s; Coord ok after %s", old, master, took.Round(time.Millisecond), back.Round(time.Millisecond))
	n := count()
	testenv.WaitFor(t, 20*time.Second, "pushes after the failover", func() error {
		if count() < n+100 {
			return fmt.Errorf("%d pushed", count())
		}
		return nil
	})
	close(stop)
	<-done

	// The old subscription ended (its connection died); a new one works.
	select {
	case _, ok := <-sub.C():
		if ok {
			t.Error("message on a subscription to the dead master")
		}
	case <-time.After(10 * time.Second):
		t.Error("subscription to the dead master did not end")
	}
	if sub.Err() == nil {
		t.Error("ended subscription has no reason")
	}
	sub2, err := c.Subscribe(ctx, "events")
	if err != nil {
		t.Fatalf("subscribe on the new master: %v", err)
	}
	defer sub2.Close()
	if err := c.Publish(ctx, "events", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-sub2.C():
		if string(m.Data) != "hello" {
			t.Errorf("got %q", m.Data)
		}
	case <-time.After(5 * time.Second):
		t.Error("no message on the new subscription")
	}

	held, err := c.HoldPeek(ctx, queue, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]int{}
	for _, h := range held {
		seen[string(h.Data)]++
	}
	lost, dup := 0, 0
	for _, id := range acked {
		if seen[id] == 0 {
			lost++
		}
	}
	for _, k := range seen {
		if k > 1 {
			dup++
		}
	}
	t.Logf("%d pushes acknowledged, %d held, %d lost, %d duplicated", len(acked), len(held), lost, dup)
	if lost > 0 || dup > 0 || len(held) != len(acked) {
		t.Errorf("%d acknowledged, %d held: %d lost, %d duplicated", len(acked), len(held), lost, dup)
	}
	for i := range min(len(held), len(acked)) {
		if string(held[i].Data) != acked[i] {
			t.Errorf("held[%d] = %s, want %s: out of order", i, held[i].Data, acked[i])
			break
		}
	}
}

// TestSentinelReplicasGone SIGKILLs both replicas: a hold push still holds
// the message on the master but returns coord.ErrNotReplicated (within
// about HoldWaitTimeout), and Ping says degraded, naming the replicas.
func TestSentinelReplicasGone(t *testing.T) {
	cl := testenv.RedisSentinel(t, testenv.SentinelOptions{})
	c := coordredis.New(cl.URL)
	mustOpen(t, c)
	ctx := context.Background()
	if _, err := c.HoldPush(ctx, "q", []byte("a")); err != nil {
		t.Fatal(err)
	}
	cl.KillReplicas(t)
	testenv.WaitFor(t, 10*time.Second, "Ping to say degraded", func() error {
		err := c.Ping(ctx)
		var d interface{ Degraded() bool }
		if err != nil && errors.As(err, &d) && strings.Contains(err.Error(), "0 connected replicas") {
			t.Logf("Ping: %v", err)
			return nil
		}
		return fmt.Errorf("Ping: %v", err)
	})
	start := time.Now()
	_, err := c.HoldPushOnce(ctx, "q", "id-b", []byte("b"))
	if !errors.Is(err, coord.ErrNotReplicated) {
		t.Fatalf("push with no replica: %v, want ErrNotReplicated", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("push took %s to fail", d)
	}
	// Retried under its id it is not held twice; it is held once.
	if _, err := c.HoldPushOnce(ctx, "q", "id-b", []byte("b")); !errors.Is(err, coord.ErrNotReplicated) {
		t.Fatalf("retried push: %v", err)
	}
	if n, err := c.HoldLen(ctx, "q"); err != nil || n != 2 {
		t.Errorf("HoldLen = %d, %v; want 2 (a, and b once)", n, err)
	}
}
