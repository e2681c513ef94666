package outbox

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// TestAckBytesMatchTheRecords runs random appends, Pending reads (from the
// head or on from the last read, so that runs are re-read and overlap),
// acks (of what was read, and of less) and evictions under a disk budget,
// with the default tail and with none, from two goroutines (a reader and a
// writer, as the syncer and the broker), and checks after every ack that
// each stream's depth and bytes are what its remaining records hold. The
// acks must take their bytes from what Pending read most of the time, and
// by a scan some of the time (evictions, partial acks, re-reads).
func TestAckBytesMatchTheRecords(t *testing.T) {
	for _, tail := range []int64{DefaultTailBytes, 0} {
		for seed := range uint64(2) {
			t.Run(fmt.Sprintf("tail=%d/seed=%d", tail, seed), func(t *testing.T) { testAckBytes(t, tail, seed) })
		}
	}
}

func testAckBytes(t *testing.T, tailBytes int64, seed uint64) {
	o := New(filepath.Join(t.TempDir(), "o.db"))
	o.TailBytes, o.Budget = tailBytes, 12_000
	if err := o.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	ctx := context.Background()
	streams := []string{StreamMetrics, StreamVectors}
	// The broker's side: appends at its own pace until the reader is done.
	stop := make(chan struct{})
	appended := make(chan struct{})
	go func() {
		defer close(appended)
		rng := rand.New(rand.NewPCG(11, seed))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			var waits []func() (int64, error)
			for range 1 + rng.IntN(8) {
				p := fmt.Appendf(nil, `{"i":%d,"pad":"%0*d"}`, i, rng.IntN(600), 0)
				waits = append(waits, o.AppendAsync(ctx, streams[rng.IntN(len(streams))], p, time.Now()))
			}
			for _, w := range waits {
				if _, err := w(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	rng := rand.New(rand.NewPCG(5, seed))
	after := map[string]int64{}
	acks := 0
	for step := range 900 {
		s := streams[rng.IntN(len(streams))]
		if rng.IntN(3) == 0 { // an append of our own, besides the broker's
			if _, err := o.Append(ctx, s, fmt.Appendf(nil, `{"step":%d,"pad":"%0*d"}`, step, rng.IntN(600), 0), time.Now()); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if rng.IntN(3) == 0 && after[s] > 0 { // release what was read, sometimes less
			upto := after[s]
			if rng.IntN(4) == 0 {
				upto -= int64(rng.IntN(3))
			}
			if err := o.Ack(ctx, s, upto); err != nil {
				t.Fatalf("step %d: ack %s %d: %v", step, s, upto, err)
			}
			acks++
			checkStreamBytes(t, o, step)
			continue
		}
		from := after[s]
		if rng.IntN(4) == 0 {
			from = 0
		}
		recs, err := o.Pending(ctx, s, from, 1+rng.IntN(40))
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) > 0 {
			after[s] = recs[len(recs)-1].Seq
		}
	}
	close(stop)
	<-appended
	scans := o.ackScans.Load()
	st, _ := o.Stats(ctx)
	t.Logf("%d acks, %d scanned, %d evictions", acks, scans, st[StreamMetrics].Evicted+st[StreamVectors].Evicted)
	if st[StreamMetrics].Evicted+st[StreamVectors].Evicted == 0 {
		t.Fatal("the budget evicted nothing: the test does not cover evictions")
	}
	if scans == 0 || scans*4 > int64(acks)*3 {
		t.Fatalf("%d of %d acks scanned their records: want some, and at most three in four", scans, acks)
	}
}

// checkStreamBytes fails unless every stream's depth and bytes equal what
// its records hold.
func checkStreamBytes(t *testing.T, o *Outbox, step int) {
	t.Helper()
	rows, err := o.r.Query(`SELECT s.name, s.depth, s.bytes,
		(SELECT count(*) FROM records r WHERE r.key > s.no << 48 AND r.key < (s.no + 1) << 48),
		(SELECT coalesce(sum(length(payload) + seglen), 0) FROM records r WHERE r.key > s.no << 48 AND r.key < (s.no + 1) << 48)
		FROM streams s`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var depth, bytes, n, size int64
		if err := rows.Scan(&name, &depth, &bytes, &n, &size); err != nil {
			t.Fatal(err)
		}
		if depth != n || bytes != size {
			t.Fatalf("step %d: stream %s says depth %d, %d bytes; its records are %d, %d bytes", step, name, depth, bytes, n, size)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	checkSegments(t, o.r, o.segDir(), false) // an appender runs beside
}
