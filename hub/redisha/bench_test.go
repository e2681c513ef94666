package redisha_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	coordredis "github.com/redforge/controltower/hub/coord/redis"
	"github.com/redforge/controltower/internal/benchinfo"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// benchRuns is how many master kills BenchmarkRedisFailoverOutage
// measures; it prints their medians.
const benchRuns = 3

// BenchmarkRedisFailoverOutage SIGKILLs the Redis master under a hub
// (redis-sentinel://, 3 Sentinels, down-after 1 s) three times, each on a
// fresh cluster and hub, and measures in the same run:
//   - Sentinel's own failover: from the kill until the first Sentinel
//     names a promoted replica that says it is master (the leader's
//     +switch-master), and until every Sentinel does (polled every 20 ms);
//   - the hub's coordination outage: from the kill until the hub's Coord
//     holds a message again (HoldPush with WAIT 1, polled every 20 ms).
//
// Goal: hub outage < 5 s (roadmap: Redis failover < 10 s).
func BenchmarkRedisFailoverOutage(b *testing.B) {
	var hubOut, sentOut, allOut []time.Duration
	for range b.N {
		for i := range benchRuns {
			r := failoverOnce(b, i+1)
			fmt.Printf("run %d: Sentinel switched %s (all Sentinels %s), hub coordination outage %s\n", i+1,
				r.sentinel.Round(time.Millisecond), r.all.Round(time.Millisecond), r.hub.Round(time.Millisecond))
			sentOut, allOut, hubOut = append(sentOut, r.sentinel), append(allOut, r.all), append(hubOut, r.hub)
		}
	}
	hm, sm, am := benchinfo.Median(hubOut), benchinfo.Median(sentOut), benchinfo.Median(allOut)
	verdict := "meets"
	if hm >= 5*time.Second {
		verdict = "misses"
	}
	b.ReportMetric(hm.Seconds(), "hub-outage-s")
	b.ReportMetric(sm.Seconds(), "sentinel-failover-s")
	fmt.Printf("Redis master SIGKILL, median of %d: hub coordination outage %s (goal < 5 s: %s) against Sentinel's own failover %s "+
		"(every Sentinel agreeing: %s) in the same runs: %.2f× (hub outage / Sentinel failover); on %s\n",
		len(hubOut), hm.Round(time.Millisecond), verdict, sm.Round(time.Millisecond), am.Round(time.Millisecond), hm.Seconds()/sm.Seconds(), benchinfo.This())
}

// failoverOnce kills the master of a fresh cluster under a fresh hub and
// returns Sentinel's failover time and the hub's coordination outage.
type failoverTimes struct{ sentinel, all, hub time.Duration }

func failoverOnce(b *testing.B, run int) failoverTimes {
	var (
		out failoverTimes
		wg  sync.WaitGroup
	)
	b.Run(fmt.Sprintf("kill%d", run), func(b *testing.B) {
		cl := testenv.RedisSentinel(b, testenv.SentinelOptions{Password: password})
		h := hubtest.Start(b, func(c *hub.Config) { c.Redis = cl.URL })
		ctx := context.Background()
		if _, err := h.Coord.HoldPush(ctx, "bench/hold", []byte("x")); err != nil {
			b.Fatal(err)
		}
		old, killed := cl.KillMaster(b)
		wg.Add(3)
		go func() {
			defer wg.Done()
			out.sentinel = poll(killed, func() error { _, err := cl.Switched(old); return err })
		}()
		go func() {
			defer wg.Done()
			out.all = poll(killed, func() error { _, err := cl.Promoted(old); return err })
		}()
		go func() {
			defer wg.Done()
			out.hub = poll(killed, func() error {
				cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				defer cancel()
				_, err := h.Coord.HoldPush(cctx, "bench/hold", []byte("x"))
				return err
			})
		}()
		wg.Wait()
	})
	return out
}

// poll calls f every 20 ms until it succeeds (or a minute passes) and
// returns the time since start.
func poll(start time.Time, f func() error) time.Duration {
	for time.Since(start) < time.Minute {
		if f() == nil {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// BenchmarkHoldPushWait measures what durability costs: sequential hold
// pushes through Sentinel with WAIT 1 (the default) against the same
// pushes with hold_replicas=0, on one cluster in the same run, alternating
// rounds of 2,000 pushes, 3 of each; it prints the medians.
func BenchmarkHoldPushWait(b *testing.B) {
	cl := testenv.RedisSentinel(b, testenv.SentinelOptions{Password: password})
	open := func(replicas string) *coordredis.Coord {
		c := coordredis.New(cl.URL + "?hold_replicas=" + replicas)
		if err := c.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	wait, nowait := open("1"), open("0")
	const n = 2000
	round := func(c *coordredis.Coord) (perSec float64, p50, p99 time.Duration) {
		lat := make([]time.Duration, 0, n)
		start := time.Now()
		for range n {
			t := time.Now()
			if _, err := c.HoldPush(context.Background(), "bench/wait", []byte(`{"seq":1,"payload":"0123456789abcdef"}`)); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t))
		}
		if err := c.HoldDelete(context.Background(), "bench/wait"); err != nil {
			b.Fatal(err)
		}
		return n / time.Since(start).Seconds(), benchinfo.Percentile(lat, 50), benchinfo.Percentile(lat, 99)
	}
	var rw, rn []float64
	var p50w, p99w, p50n, p99n []time.Duration
	for range b.N {
		for range benchRuns {
			r, a, z := round(wait)
			rw, p50w, p99w = append(rw, r), append(p50w, a), append(p99w, z)
			r, a, z = round(nowait)
			rn, p50n, p99n = append(rn, r), append(p50n, a), append(p99n, z)
		}
	}
	mw, mn := medianF(rw), medianF(rn)
	b.ReportMetric(mw/mn, "ratio")
	fmt.Printf("hold pushes through Sentinel, median of %d rounds of %d: with WAIT 1 %.0f/s (p50 %s, p99 %s) against no WAIT %.0f/s (p50 %s, p99 %s): %.2f× on %s\n",
		len(rw), n, mw, benchinfo.Median(p50w), benchinfo.Median(p99w), mn, benchinfo.Median(p50n), benchinfo.Median(p99n), mw/mn, benchinfo.This())
}

func medianF(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
