package outbox

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestTailReadsMatchTheDatabase runs one random sequence of appends (in
// group commits), acks and Pending reads, with evictions under a disk
// budget, against three outboxes: with the default tail, with a tail too
// small for a batch (it keeps trimming), and with none. Every Pending
// must answer the same records, payloads and all, from wherever it reads.
func TestTailReadsMatchTheDatabase(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { testTailReadsMatch(t, seed) })
	}
}

func testTailReadsMatch(t *testing.T, seed uint64) {
	open := func(name string, tailBytes int64) *Outbox {
		o := New(filepath.Join(t.TempDir(), name+".db"))
		o.TailBytes, o.Budget = tailBytes, 40_000
		if err := o.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		return o
	}
	boxes := []*Outbox{open("tail", DefaultTailBytes), open("small", 2_000), open("none", 0)}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, seed))
	streams := []string{StreamMetrics, StreamVectors, StreamAudit}
	after := map[string]int64{}
	arrived := time.Unix(1_700_000_000, 0)
	for step := range 400 {
		s := streams[rng.IntN(len(streams))]
		switch op := rng.IntN(10); {
		case op < 5: // a group commit of appends
			n := 1 + rng.IntN(20)
			payloads := make([][]byte, n)
			for i := range payloads {
				payloads[i] = fmt.Appendf(nil, `{"step":%d,"i":%d,"pad":"%0*d"}`, step, i, rng.IntN(300), 0)
			}
			for _, o := range boxes {
				var waits []func() (int64, error)
				for _, p := range payloads {
					waits = append(waits, o.AppendAsync(ctx, s, p, arrived))
				}
				for _, w := range waits {
					w() // audit may be refused under the budget: the same on every box
				}
			}
		case op < 7: // the syncer releases what it read
			if after[s] > 0 {
				upto := after[s] - int64(rng.IntN(3))
				for _, o := range boxes {
					if err := o.Ack(ctx, s, max(upto, 0)); err != nil {
						t.Fatalf("step %d: ack %s %d: %v", step, s, upto, err)
					}
				}
			}
		default: // the syncer reads, from where it is or from the head
			from := after[s]
			if rng.IntN(3) == 0 {
				from = 0
			}
			limit := 1 + rng.IntN(30)
			var want []Record
			for i, o := range boxes {
				got, err := o.Pending(ctx, s, from, limit)
				if err != nil {
					t.Fatalf("step %d: pending: %v", step, err)
				}
				if i == 0 {
					want = got
					continue
				}
				if (len(got) > 0 || len(want) > 0) && !reflect.DeepEqual(got, want) {
					t.Fatalf("step %d: Pending(%s, %d, %d) differs: box %d %v, box 0 %v", step, s, from, limit, i, got, want)
				}
			}
			if len(want) > 0 {
				after[s] = want[len(want)-1].Seq
			}
		}
	}
	st, _ := boxes[0].Stats(ctx)
	if st[StreamMetrics].Evicted+st[StreamVectors].Evicted == 0 {
		t.Fatal("the budget evicted nothing: the test does not cover evictions")
	}
}
