package coordtest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/redforge/controltower/hub/coord"
)

func runHold(t *testing.T, open func(t *testing.T) coord.Coord) {
	t.Run("ConcurrentPushersReplayExactlyOnceInOrder", func(t *testing.T) { testHoldConcurrent(t, open(t)) })
	t.Run("PartialAck", func(t *testing.T) { testHoldPartialAck(t, open(t)) })
	t.Run("DeleteKeepsSeq", func(t *testing.T) { testHoldDelete(t, open(t)) })
	t.Run("QueuesAreIndependent", func(t *testing.T) { testHoldIndependent(t, open(t)) })
	t.Run("Empty", func(t *testing.T) { testHoldEmpty(t, open(t)) })
}

// testHoldConcurrent pushes from several goroutines at once, then replays
// in batches the way the DRAIN phase does, and checks every message comes
// back exactly once, in seq order, each pusher's in its push order.
func testHoldConcurrent(t *testing.T, c coord.Coord) {
	ctx := context.Background()
	const pushers, each = 8, 50
	seqOf := make(map[string]int64) // message -> seq HoldPush returned
	var mu sync.Mutex
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				msg := fmt.Sprintf("p%d-%03d", p, i)
				seq, err := c.HoldPush(ctx, "drain", []byte(msg))
				if err != nil {
					t.Errorf("HoldPush: %v", err)
					return
				}
				mu.Lock()
				seqOf[msg] = seq
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const total = pushers * each
	if n := mustHoldLen(t, c, "drain"); n != total {
		t.Fatalf("HoldLen = %d, want %d", n, total)
	}

	var got []coord.Held
	for {
		batch, err := c.HoldPeek(ctx, "drain", 37)
		if err != nil {
			t.Fatalf("HoldPeek: %v", err)
		}
		if len(batch) == 0 {
			break
		}
		got = append(got, batch...)
		if err := c.HoldAck(ctx, "drain", batch[len(batch)-1].Seq); err != nil {
			t.Fatalf("HoldAck: %v", err)
		}
	}
	if len(got) != total {
		t.Fatalf("replayed %d messages, want %d", len(got), total)
	}
	lastOfPusher := make(map[byte]string)
	for i, h := range got {
		if i > 0 && h.Seq <= got[i-1].Seq {
			t.Fatalf("seq %d after %d: not increasing", h.Seq, got[i-1].Seq)
		}
		msg := string(h.Data)
		want, ok := seqOf[msg]
		if !ok {
			t.Fatalf("replayed unknown or duplicate message %q", msg)
		}
		delete(seqOf, msg)
		if h.Seq != want {
			t.Errorf("message %q replayed with seq %d, HoldPush returned %d", msg, h.Seq, want)
		}
		if prev := lastOfPusher[msg[1]]; prev != "" && prev > msg {
			t.Errorf("pusher order broken: %q replayed after %q", msg, prev)
		}
		lastOfPusher[msg[1]] = msg
	}
	if got[0].Seq != 1 || got[total-1].Seq != total {
		t.Errorf("seqs run %d..%d, want 1..%d", got[0].Seq, got[total-1].Seq, total)
	}
	if n := mustHoldLen(t, c, "drain"); n != 0 {
		t.Errorf("HoldLen after replay = %d, want 0", n)
	}
}

func testHoldPartialAck(t *testing.T, c coord.Coord) {
	ctx := context.Background()
	for i := 1; i <= 10; i++ {
		mustHoldPush(t, c, "q", fmt.Sprint(i), int64(i))
	}
	wantPeek(t, c, "q", 3, 1, 2, 3)
	wantPeek(t, c, "q", 3, 1, 2, 3) // peeking again removes nothing
	mustHoldAck(t, c, "q", 3)
	if n := mustHoldLen(t, c, "q"); n != 7 {
		t.Fatalf("HoldLen after ack 3 = %d, want 7", n)
	}
	// Deliver 4..7 but ack only up to 5, as after a crash mid-batch.
	wantPeek(t, c, "q", 4, 4, 5, 6, 7)
	mustHoldAck(t, c, "q", 5)
	wantPeek(t, c, "q", 2, 6, 7)
	mustHoldAck(t, c, "q", 0) // acks nothing
	mustHoldAck(t, c, "q", 5) // repeated ack is harmless
	wantPeek(t, c, "q", 100, 6, 7, 8, 9, 10)
	mustHoldAck(t, c, "q", 1000) // past the end: acks what exists only
	if n := mustHoldLen(t, c, "q"); n != 0 {
		t.Fatalf("HoldLen after ack 1000 = %d, want 0", n)
	}
	mustHoldPush(t, c, "q", "11", 11)
	wantPeek(t, c, "q", 5, 11)
	if _, err := c.HoldPeek(ctx, "q", 0); err == nil {
		t.Errorf("HoldPeek with n=0 succeeded, want an error")
	}
}

func testHoldDelete(t *testing.T, c coord.Coord) {
	mustHoldPush(t, c, "q", "a", 1)
	mustHoldPush(t, c, "q", "b", 2)
	if err := c.HoldDelete(context.Background(), "q"); err != nil {
		t.Fatalf("HoldDelete: %v", err)
	}
	if n := mustHoldLen(t, c, "q"); n != 0 {
		t.Fatalf("HoldLen after delete = %d, want 0", n)
	}
	wantPeek(t, c, "q", 10)
	mustHoldPush(t, c, "q", "c", 3) // seqs are never reused
	wantPeek(t, c, "q", 10, 3)
	if err := c.HoldDelete(context.Background(), "never-used"); err != nil {
		t.Errorf("HoldDelete of an unknown queue: %v", err)
	}
}

func testHoldIndependent(t *testing.T, c coord.Coord) {
	bin := []byte{0, 1, 0xff, '\n', 0xc3}
	mustHoldPush(t, c, "blue", string(bin), 1)
	mustHoldPush(t, c, "green", "g1", 1)
	mustHoldPush(t, c, "blue", "b2", 2)
	mustHoldAck(t, c, "green", 1)
	got, err := c.HoldPeek(context.Background(), "blue", 10)
	if err != nil {
		t.Fatalf("HoldPeek: %v", err)
	}
	if len(got) != 2 || !bytes.Equal(got[0].Data, bin) || string(got[1].Data) != "b2" {
		t.Errorf("blue = %v, want [%q b2]", got, bin)
	}
	if n := mustHoldLen(t, c, "green"); n != 0 {
		t.Errorf("green HoldLen = %d, want 0", n)
	}
}

func testHoldEmpty(t *testing.T, c coord.Coord) {
	if n := mustHoldLen(t, c, "none"); n != 0 {
		t.Errorf("HoldLen of an unknown queue = %d, want 0", n)
	}
	wantPeek(t, c, "none", 5)
	mustHoldAck(t, c, "none", 5)
	mustHoldPush(t, c, "empty-msg", "", 1)
	got, err := c.HoldPeek(context.Background(), "empty-msg", 1)
	if err != nil || len(got) != 1 || len(got[0].Data) != 0 {
		t.Errorf("HoldPeek of an empty message = %v, %v", got, err)
	}
}

func mustHoldPush(t *testing.T, c coord.Coord, queue, msg string, wantSeq int64) {
	t.Helper()
	seq, err := c.HoldPush(context.Background(), queue, []byte(msg))
	if err != nil {
		t.Fatalf("HoldPush(%q): %v", queue, err)
	}
	if seq != wantSeq {
		t.Fatalf("HoldPush(%q) seq = %d, want %d", queue, seq, wantSeq)
	}
}

func mustHoldAck(t *testing.T, c coord.Coord, queue string, upto int64) {
	t.Helper()
	if err := c.HoldAck(context.Background(), queue, upto); err != nil {
		t.Fatalf("HoldAck(%q, %d): %v", queue, upto, err)
	}
}

func mustHoldLen(t *testing.T, c coord.Coord, queue string) int64 {
	t.Helper()
	n, err := c.HoldLen(context.Background(), queue)
	if err != nil {
		t.Fatalf("HoldLen(%q): %v", queue, err)
	}
	return n
}

// wantPeek peeks n messages of queue and checks their seqs.
func wantPeek(t *testing.T, c coord.Coord, queue string, n int, seqs ...int64) {
	t.Helper()
	got, err := c.HoldPeek(context.Background(), queue, n)
	if err != nil {
		t.Fatalf("HoldPeek(%q, %d): %v", queue, n, err)
	}
	var gotSeqs []int64
	for _, h := range got {
		gotSeqs = append(gotSeqs, h.Seq)
	}
	if fmt.Sprint(gotSeqs) != fmt.Sprint(seqs) {
		t.Fatalf("HoldPeek(%q, %d) seqs = %v, want %v", queue, n, gotSeqs, seqs)
	}
}
