package outbox

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/benchinfo"
)

// BenchmarkEdgeDrain is the edge's side of the vector drain alone: a
// backlog of 30,000 records of 3,100 random bytes (a packed 768-dim
// vector) is appended, then read back 1,000 at a time and released, as the
// syncer does, with payloads inline in SQLite (SegmentThreshold 0, as
// before v4) and in segment files (the default). It reports the CPU and
// wall time of the read-and-release per record. The tail is off: the
// backlog is read from disk, as in a drain.
func BenchmarkEdgeDrain(b *testing.B) {
	for _, mode := range []struct {
		name      string
		threshold int
	}{{"inline", 0}, {"segments", DefaultSegmentThreshold}} {
		b.Run(mode.name, func(b *testing.B) {
			for b.Loop() {
				benchEdgeDrain(b, mode.threshold)
			}
		})
	}
}

func benchEdgeDrain(b *testing.B, threshold int) {
	const n, size, batch = 30000, 3100, 1000
	b.StopTimer()
	o := New(filepath.Join(b.TempDir(), "outbox.db"))
	o.SegmentThreshold, o.TailBytes = threshold, 0
	if err := o.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	waits := make([]func() (int64, error), 0, 512)
	for i := range n {
		p := make([]byte, size)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		waits = append(waits, o.AppendAsync(ctx, StreamVectors, p, time.Now()))
		if len(waits) == cap(waits) || i == n-1 {
			for _, w := range waits {
				if _, err := w(); err != nil {
					b.Fatal(err)
				}
			}
			waits = waits[:0]
		}
	}
	b.StartTimer()
	cpu, start := benchinfo.CPU(), time.Now()
	var release func() error
	after := int64(0)
	for {
		recs, err := o.Pending(ctx, StreamVectors, after, batch)
		if err != nil {
			b.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		if release != nil {
			if err := release(); err != nil {
				b.Fatal(err)
			}
		}
		after = recs[len(recs)-1].Seq
		release = o.AckAsync(ctx, StreamVectors, after) // commits while the next batch is read
	}
	if release != nil {
		if err := release(); err != nil {
			b.Fatal(err)
		}
	}
	el, cpu := time.Since(start), benchinfo.CPU()-cpu
	b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/record")
	b.ReportMetric(float64(el.Microseconds())/n, "wall-µs/record")
	fmt.Printf("edge drain, %d x %d B, threshold %d: %.1f µs CPU and %.1f µs wall per record\n", n, size, threshold,
		float64(cpu.Microseconds())/n, float64(el.Microseconds())/n)
}
