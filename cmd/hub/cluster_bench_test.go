package main

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/testenv"
)

// BenchmarkClusterFailover measures leader failover with three hub
// processes: SIGKILL the leader → first successful write through a
// surviving hub. With rtt80 every Raft and API link between hubs gets
// 40 ms each way (80 ms RTT) from toxiproxy. Figures: failover_ms.
func BenchmarkClusterFailover(b *testing.B) {
	for _, bc := range []struct {
		name      string
		heartbeat time.Duration
		rttMS     int64
	}{
		{"loopback/hb=1s", time.Second, 0},
		{"loopback/hb=500ms", 500 * time.Millisecond, 0},
		{"rtt80/hb=1s", time.Second, 80},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				total += measureFailover(b, bc.heartbeat, bc.rttMS)
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "failover_ms")
		})
	}
}

func measureFailover(b *testing.B, heartbeat time.Duration, rttMS int64) time.Duration {
	b.StopTimer()
	hubs, token := startCluster(b, clusterOpts{heartbeat: heartbeat, deadAfter: time.Minute})
	if rttMS > 0 {
		for _, h := range hubs {
			h.raftLink.Latency(rttMS/2, 0)
			h.apiLink.Latency(rttMS/2, 0)
		}
	}
	leader, survivors := leaderOf(b, hubs, token)
	if code, body, err := createInstance(survivors[0], token, "warm-up"); err != nil || code != 201 {
		b.Fatalf("warm-up write: %d %s %v", code, body, err)
	}
	b.StartTimer()
	start := time.Now()
	leader.kill()
	testenv.WaitFor(b, 30*time.Second, "write after failover", func() error {
		code, body, err := createInstance(survivors[0], token, "after-failover")
		if err != nil || (code != 201 && code != 409) {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		return nil
	})
	d := time.Since(start)
	b.StopTimer()
	b.Logf("failover (heartbeat %s, rtt %d ms): %s", heartbeat, rttMS, d.Round(time.Millisecond))
	return d
}

// BenchmarkClusterWrites measures catalog writes (POST /api/instances)
// through the API of three hub processes on loopback, clients spread over
// all hubs (followers forward to the leader), for 10 s. Figures:
// writes_per_s, p50_ms, p99_ms.
func BenchmarkClusterWrites(b *testing.B) {
	const clients, run = 16, 10 * time.Second
	hubs, token := startCluster(b, clusterOpts{heartbeat: time.Second, deadAfter: time.Minute})
	tokens := make([]string, clients)
	for c := range tokens {
		user := fmt.Sprint("bench-", c)
		if code, body, _, err := hubs[0].do("POST", "/api/users", token, map[string]string{"username": user, "password": "password-of-" + user, "role": "OPERATOR"}); err != nil || code != 201 {
			b.Fatalf("create user: %d %s %v", code, body, err)
		}
	}
	for c := range tokens { // the login limit is per address and hub: spread over the hubs
		user := fmt.Sprint("bench-", c)
		testenv.WaitFor(b, 30*time.Second, "login "+user, func() error {
			code, body, _, err := hubs[c%3].do("POST", "/api/auth/login", "", map[string]string{"username": user, "password": "password-of-" + user})
			if err != nil || code != 200 {
				return fmt.Errorf("%d %s %v", code, body, err)
			}
			tokens[c] = extractToken(body)
			return nil
		})
	}
	b.ResetTimer()
	var (
		mu      sync.Mutex
		lat     []time.Duration
		failed  atomic.Int64
		wg      sync.WaitGroup
		stop    = time.Now().Add(run)
		started = time.Now()
	)
	for c := range clients {
		wg.Go(func() {
			var mine []time.Duration
			for i := 0; time.Now().Before(stop); i++ {
				t0 := time.Now()
				code, _, err := createInstance(hubs[(c+i)%3], tokens[c], fmt.Sprintf("w-%d-%d", c, i))
				if err != nil || code != 201 {
					failed.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(started)
	b.StopTimer()
	if len(lat) == 0 {
		b.Fatalf("no successful write (%d failed)", failed.Load())
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "writes_per_s")
	b.ReportMetric(pct(0.5), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.Logf("%d writes in %s through 3 hubs, %d clients, %d failed; p50 %.1f ms, p99 %.1f ms",
		len(lat), elapsed.Round(time.Millisecond), clients, failed.Load(), pct(0.5), pct(0.99))
}

func extractToken(body []byte) string {
	const key = `"access_token":"`
	s := string(body)
	for i := 0; i+len(key) <= len(s); i++ {
		if s[i:i+len(key)] == key {
			rest := s[i+len(key):]
			for j := range len(rest) {
				if rest[j] == '"' {
					return rest[:j]
				}
			}
		}
	}
	return ""
}

// BenchmarkClusterEdgeSwitch measures an edge's hub switch after its hub
// dies: three regional hub processes sharing one Postgres store at 20/80/150
// ms RTT from a real redforge-edge, two paho publishers at QoS 1 into the
// edge; SIGKILL the nearest hub (the one the edge syncs to) → first batch
// acked by a surviving hub. Each run ends with the exactly-once check of
// TestEdgeSwitchesRegion. Figures: switch_ms (goal: under 5 s).
func BenchmarkClusterEdgeSwitch(b *testing.B) {
	var total time.Duration
	for range b.N {
		b.StopTimer()
		hubs, token, dsn := startRegionCluster(b)
		e := startEdgeSite(b, hubs, token, dsn)
		stop := make(chan struct{})
		results := e.publishers(2, stop)
		b.StartTimer()
		res := killNearestHub(b, e, hubs)
		b.StopTimer()
		close(stop)
		acked, unacked := results()
		testenv.WaitFor(b, 120*time.Second, "the edge outbox to drain", func() error {
			if d, err := e.depth(); err != nil || d != 0 {
				return fmt.Errorf("depth %v (%v)", d, err)
			}
			return nil
		})
		if unacked > 0 {
			b.Fatalf("%d publishes not acked", unacked)
		}
		e.verifyExactlyOnce(acked)
		b.Logf("edge switch %s → %s: first batch acked %s after the kill; %d records exactly once",
			hubs[0].id, res.firstHub, res.switchTime.Round(time.Millisecond), len(acked))
		total += res.switchTime
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "switch_ms")
}
