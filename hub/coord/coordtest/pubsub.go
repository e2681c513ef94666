package coordtest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/coord"
)

func runPubSub(t *testing.T, open func(t *testing.T) coord.Coord) {
	t.Run("OrderPerChannelNoCrossTalk", func(t *testing.T) { testPubSubOrder(t, open(t)) })
	t.Run("DuplicateChannels", func(t *testing.T) { testPubSubDuplicate(t, open(t)) })
	t.Run("CloseReleasesResources", func(t *testing.T) { testPubSubClose(t, open(t)) })
	t.Run("SlowConsumerEndsWithoutGaps", func(t *testing.T) { testPubSubSlow(t, open(t)) })
}

// testPubSubOrder publishes to two channels concurrently and checks each
// subscriber gets exactly its channels' messages, in order per channel.
func testPubSubOrder(t *testing.T, c coord.Coord) {
	ctx := context.Background()
	both := mustSubscribe(t, c, "a", "b")
	onlyB := mustSubscribe(t, c, "b")
	other := mustSubscribe(t, c, "c")
	const n = 200
	var wg sync.WaitGroup
	for _, ch := range []string{"a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := c.Publish(ctx, ch, []byte(fmt.Sprint(i))); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, ch := range []string{"a", "b", "c"} {
		if err := c.Publish(ctx, ch, []byte("end")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	checkStreams(t, "subscriber of a,b", receiveUntilEnd(t, both, "a", "b"), map[string]int{"a": n, "b": n})
	checkStreams(t, "subscriber of b", receiveUntilEnd(t, onlyB, "b"), map[string]int{"b": n})
	checkStreams(t, "subscriber of c", receiveUntilEnd(t, other, "c"), map[string]int{"c": 0})
}

func testPubSubDuplicate(t *testing.T, c coord.Coord) {
	if _, err := c.Subscribe(context.Background()); err == nil {
		t.Errorf("Subscribe with no channels succeeded")
	}
	sub := mustSubscribe(t, c, "x", "x")
	for _, m := range []string{"0", "1", "end"} {
		if err := c.Publish(context.Background(), "x", []byte(m)); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	checkStreams(t, "subscriber of x,x", receiveUntilEnd(t, sub, "x"), map[string]int{"x": 2})
}

// testPubSubClose checks Close closes C, is idempotent, leaves publishers
// unaffected and gives back the goroutines the subscriptions used.
func testPubSubClose(t *testing.T, c coord.Coord) {
	ctx := context.Background()
	warm := mustSubscribe(t, c, "warm-up")
	warm.Close()
	waitClosed(t, warm)
	before := runtime.NumGoroutine()

	subs := make([]coord.Subscription, 10)
	for i := range subs {
		subs[i] = mustSubscribe(t, c, "ch", fmt.Sprint("own-", i))
	}
	if err := c.Publish(ctx, "ch", []byte("m")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	for _, s := range subs {
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		waitClosed(t, s)
		if err := s.Err(); err != nil {
			t.Errorf("Err after Close = %v, want nil", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}
	if err := c.Publish(ctx, "ch", []byte("after")); err != nil {
		t.Fatalf("Publish after every subscriber closed: %v", err)
	}
	poll(t, fmt.Sprintf("goroutines to drop back to %d", before), func() bool {
		return runtime.NumGoroutine() <= before
	})
}

// testPubSubSlow publishes to a subscriber that never reads: it must end
// with ErrSlowConsumer, and what it did receive must have no gaps.
func testPubSubSlow(t *testing.T, c coord.Coord) {
	ctx := context.Background()
	sub := mustSubscribe(t, c, "flood")
	const max = 100000
	sent := 0
	for ; sent < max && sub.Err() == nil; sent++ {
		if err := c.Publish(ctx, "flood", []byte(fmt.Sprint(sent))); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	if sent == max {
		t.Fatalf("subscriber still live after %d unread messages", max)
	}
	var got int
	for m := range sub.C() {
		if string(m.Data) != fmt.Sprint(got) {
			t.Fatalf("message %d is %q: gap before the subscription ended", got, m.Data)
		}
		got++
	}
	if got == 0 || got > sent {
		t.Errorf("received %d of %d messages", got, sent)
	}
	if err := sub.Err(); !errors.Is(err, coord.ErrSlowConsumer) {
		t.Errorf("Err = %v, want ErrSlowConsumer", err)
	}
}

func mustSubscribe(t *testing.T, c coord.Coord, channels ...string) coord.Subscription {
	t.Helper()
	sub, err := c.Subscribe(context.Background(), channels...)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", channels, err)
	}
	t.Cleanup(func() { sub.Close() })
	return sub
}

// receiveUntilEnd collects messages per channel until an "end" message has
// arrived on each of ends.
func receiveUntilEnd(t *testing.T, sub coord.Subscription, ends ...string) map[string][]string {
	t.Helper()
	got := make(map[string][]string)
	pending := len(ends)
	timeout := time.After(pollTimeout)
	for pending > 0 {
		select {
		case m, ok := <-sub.C():
			if !ok {
				t.Fatalf("subscription ended early: %v", sub.Err())
			}
			if string(m.Data) == "end" {
				pending--
				continue
			}
			got[m.Channel] = append(got[m.Channel], string(m.Data))
		case <-timeout:
			t.Fatalf("timed out after %v; received %v", pollTimeout, got)
		}
	}
	return got
}

// checkStreams checks that got has exactly the channels of want, each with
// messages "0".."n-1" in order.
func checkStreams(t *testing.T, who string, got map[string][]string, want map[string]int) {
	t.Helper()
	for ch, msgs := range got {
		if _, ok := want[ch]; !ok {
			t.Errorf("%s received %d messages on channel %q it did not subscribe to", who, len(msgs), ch)
		}
	}
	for ch, n := range want {
		msgs := got[ch]
		if len(msgs) != n {
			t.Errorf("%s received %d messages on %q, want %d", who, len(msgs), ch, n)
			continue
		}
		for i, m := range msgs {
			if m != fmt.Sprint(i) {
				t.Errorf("%s: message %d on %q is %q, out of order", who, i, ch, m)
				break
			}
		}
	}
}

// waitClosed waits for sub.C to be closed, draining it.
func waitClosed(t *testing.T, sub coord.Subscription) {
	t.Helper()
	timeout := time.After(pollTimeout)
	for {
		select {
		case _, ok := <-sub.C():
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("subscription channel not closed after %v", pollTimeout)
		}
	}
}
