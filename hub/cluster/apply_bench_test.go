package cluster

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/internal/benchinfo"
)

// BenchmarkApplyConcurrent measures committed applies per second on a
// one-node cluster (raft.db fsynced at every batch, as in production)
// with REDFORGE_BENCH_APPLY_CALLERS concurrent callers (default 64), each
// upserting its own instance for REDFORGE_BENCH_APPLY_FOR (default 3 s).
// Two nodes run interleaved in the same run: "stock" (Config.
// StockThroughput: raft's and bolt's own throughput settings, as the hub
// ran before they were tuned) and "tuned" (the defaults). Figures are
// medians of three runs; the ratio is tuned against stock.
func BenchmarkApplyConcurrent(b *testing.B) {
	callers := 64
	if v := os.Getenv("REDFORGE_BENCH_APPLY_CALLERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("REDFORGE_BENCH_APPLY_CALLERS=%q: want a positive count", v)
		}
		callers = n
	}
	d := 3 * time.Second
	if v := os.Getenv("REDFORGE_BENCH_APPLY_FOR"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			b.Fatalf("REDFORGE_BENCH_APPLY_FOR=%q: want a duration", v)
		}
	}
	type variant struct {
		name  string
		node  *Node
		rates []float64
		lat   []time.Duration // p99 of each run
	}
	var vs []*variant
	for _, stock := range []bool{true, false} {
		cfg := testConfig(b, "bench", b.TempDir())
		cfg.Bootstrap, cfg.StockThroughput = true, stock
		cfg.Logger = nil // raft's INFO would flood b.Log
		n, _ := openNode(b, cfg)
		name := "tuned"
		if stock {
			name = "stock"
		}
		vs = append(vs, &variant{name: name, node: n})
	}
	b.ResetTimer()
	for range b.N {
		for range 3 {
			for _, v := range vs {
				rate, p99 := applyLoad(b, v.node, callers, d)
				v.rates, v.lat = append(v.rates, rate), append(v.lat, p99)
			}
		}
	}
	b.StopTimer()
	med := func(fs []float64) float64 {
		ds := make([]time.Duration, len(fs))
		for i, f := range fs {
			ds[i] = time.Duration(f)
		}
		return float64(benchinfo.Median(ds))
	}
	for _, v := range vs {
		fmt.Printf("raft apply, %d callers, %s: %.0f applies/s, p99 %s (median of %d × %s; runs %.0f); %s\n",
			callers, v.name, med(v.rates), benchinfo.Median(v.lat).Round(10*time.Microsecond), len(v.rates), d, v.rates, benchinfo.This())
	}
	stock, tuned := med(vs[0].rates), med(vs[1].rates)
	fmt.Printf("raft apply, %d callers: tuned against stock: %.0f / %.0f applies/s = %.2f×\n", callers, tuned, stock, tuned/stock)
	b.ReportMetric(tuned, "applies/s")
	b.ReportMetric(stock, "stock_applies/s")
}

// applyLoad runs callers goroutines applying upserts on n for d and
// returns the committed applies per second and their p99 latency.
func applyLoad(b *testing.B, n *Node, callers int, d time.Duration) (float64, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var done atomic.Int64
	lats := make([][]time.Duration, callers)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst := instance(c)
			for i := 0; ctx.Err() == nil; i++ {
				inst.Env = map[string]string{"N": strconv.Itoa(i), "PAD": strings.Repeat("x", 512)}
				t0 := time.Now()
				if _, err := n.Apply(context.Background(), catalog.UpsertInstance(inst)); err != nil {
					b.Errorf("apply: %v", err)
					return
				}
				lats[c] = append(lats[c], time.Since(t0))
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return float64(done.Load()) / time.Since(start).Seconds(), benchinfo.Percentile(all, 99)
}
