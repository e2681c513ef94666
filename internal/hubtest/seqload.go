package hubtest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/testenv"
)

// SeqLoad publishes {"seq":n} (n = 1, 2, …) to redforge/in/NAME/load at
// a steady rate over the hub's bus, and collects the replies an instance
// flow sends to redforge/out/NAME ({"seq":n,"version":…}): the MQTT side
// of the blue-green and failover tests, which check that every message is
// processed exactly once, in order, by the right version.
type SeqLoad struct {
	h    *Hub
	name string
	stop chan struct{}
	done chan struct{}
	sent atomic.Int64

	mu   sync.Mutex
	outs []SeqReply

	unsub               func()
	stopOnce, unsubOnce sync.Once
}

// SeqReply is one reply of the instance flow.
type SeqReply struct {
	Seq     int64  `json:"seq"`
	Version string `json:"version"`
}

// StartSeqLoad subscribes to NAME's replies and starts publishing rate
// messages a second, for at most max (0: until stopped). It stops at
// cleanup.
func StartSeqLoad(tb testing.TB, h *Hub, name string, rate int, max time.Duration) *SeqLoad {
	tb.Helper()
	l := &SeqLoad{h: h, name: name, stop: make(chan struct{}), done: make(chan struct{})}
	unsub, err := h.Bus.Subscribe(context.Background(), "redforge/out/"+name, 1, func(_ string, payload []byte) {
		var r SeqReply
		if err := json.Unmarshal(payload, &r); err != nil {
			tb.Errorf("reply %s: %v", payload, err)
			return
		}
		l.mu.Lock()
		l.outs = append(l.outs, r)
		l.mu.Unlock()
	})
	if err != nil {
		tb.Fatal(err)
	}
	l.unsub = unsub
	var deadline <-chan time.Time
	if max > 0 {
		deadline = time.After(max)
	}
	go func() {
		defer close(l.done)
		tk := time.NewTicker(time.Second / time.Duration(rate))
		defer tk.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-deadline:
				return
			case <-tk.C:
			}
			seq := l.sent.Load() + 1
			if err := h.Bus.Publish(context.Background(), "redforge/in/"+name+"/load", fmt.Appendf(nil, `{"seq":%d}`, seq), 1, false); err != nil {
				tb.Errorf("publish %d: %v", seq, err)
				return
			}
			l.sent.Store(seq)
		}
	}()
	tb.Cleanup(func() { l.StopSending(); l.unsubOnce.Do(l.unsub) })
	return l
}

// StopSending stops the publisher and waits for it.
func (l *SeqLoad) StopSending() { l.stopOnce.Do(func() { close(l.stop); <-l.done }) }

// Sent is how many messages were published.
func (l *SeqLoad) Sent() int64 { return l.sent.Load() }

// Replies is how many replies came in so far.
func (l *SeqLoad) Replies() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.outs) }

// WaitReplies waits until at least n replies came in.
func (l *SeqLoad) WaitReplies(tb testing.TB, n int) {
	tb.Helper()
	testenv.WaitFor(tb, 30*time.Second, fmt.Sprintf("%d replies", n), func() error {
		if got := l.Replies(); got < n {
			return fmt.Errorf("%d replies", got)
		}
		return nil
	})
}

// Finish stops sending, waits up to timeout for a reply to every message
// sent, then sends a last message (seq 0) behind every other on the same
// ordered path: once its reply is in, a duplicate of an earlier one would
// be too. It unsubscribes and returns the replies, that last one left out,
// and how many messages were sent.
func (l *SeqLoad) Finish(tb testing.TB, timeout time.Duration) ([]SeqReply, int64) {
	tb.Helper()
	l.StopSending()
	sent := l.sent.Load()
	testenv.WaitFor(tb, timeout, "every message processed", func() error {
		if got := l.Replies(); int64(got) < sent {
			return fmt.Errorf("%d of %d replies", got, sent)
		}
		return nil
	})
	if err := l.h.Bus.Publish(context.Background(), "redforge/in/"+l.name+"/load", []byte(`{"seq":0}`), 1, false); err != nil {
		tb.Fatal(err)
	}
	testenv.WaitFor(tb, 30*time.Second, "the closing message's reply", func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if n := len(l.outs); n == 0 || l.outs[n-1].Seq != 0 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	l.unsubOnce.Do(l.unsub)
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]SeqReply(nil), l.outs[:len(l.outs)-1]...), sent
}

// CheckSeqReplies checks the replies to sent messages: each seq once and
// in order, and the versions going from `from` to `to` once (equal when
// nothing switched), never back. It returns how many were lost and
// duplicated.
func CheckSeqReplies(tb testing.TB, outs []SeqReply, sent int64, from, to string) (lost, dup int) {
	tb.Helper()
	seen := map[int64]int{}
	for _, o := range outs {
		if seen[o.Seq]++; seen[o.Seq] == 2 {
			dup++
		}
	}
	for i := int64(1); i <= sent; i++ {
		if seen[i] == 0 {
			lost++
		}
	}
	if lost > 0 || dup > 0 {
		tb.Errorf("%d of %d messages lost, %d duplicated (%d replies)", lost, sent, dup, len(outs))
	}
	switched := false
	for i, o := range outs {
		if o.Seq != int64(i+1) {
			tb.Errorf("reply %d has seq %d: lost, duplicated or reordered", i+1, o.Seq)
			break
		}
		if o.Version == to && from != to {
			switched = true
		} else if switched && o.Version == from {
			tb.Errorf("seq %d processed by %s after %s took over", o.Seq, from, to)
		}
	}
	if n := len(outs); n > 0 && (outs[0].Version != from || outs[n-1].Version != to) {
		tb.Errorf("replies went from %s to %s, want %s to %s", outs[0].Version, outs[n-1].Version, from, to)
	}
	return lost, dup
}
