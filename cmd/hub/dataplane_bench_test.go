package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/benchinfo"
	"github.com/redforge/controltower/internal/testenv"
)

// BenchmarkDataPlane measures the regional data plane with each hub on its
// own host (network namespaces), medians of three, each beside its
// reference measured in the same run:
//   - host lost → a 1-replica instance serving again from another hub,
//     against detection (the host marked down, measured) + a bare
//     Node-RED start + 1 s (the goal);
//   - requests failed while the host of one of two replicas dies under
//     200 req/s (goal 0);
//   - proxy latency p50/p99 through a hub that runs the replica (local)
//     and through one that does not (cross-hub), against calling the
//     runtime directly (goal: local p99 overhead < 1 ms);
//   - 100 instances × 2 replicas on 3 hubs: the scheduler's time until
//     every replica is placed, and the time until all are healthy.
func BenchmarkDataPlane(b *testing.B) {
	m := benchinfo.This()
	fmt.Printf("data plane on %s\n", m)
	b.Run("host-lost-1-replica", func(b *testing.B) { benchHostLost(b) })
	b.Run("host-lost-2-replicas-200rps", func(b *testing.B) { benchHostLossLoad(b) })
	b.Run("proxy-overhead", func(b *testing.B) { benchProxyOverhead(b) })
	b.Run("schedule-100x2", func(b *testing.B) { benchSchedule(b) })
}

// bareStart is how long a bare Node-RED takes from exec to answering GET /
// on this machine now (no hub).
func bareStart(b *testing.B) time.Duration { return bareStarts(b, 1) }

// bareStarts is how long k bare Node-REDs started at once take until every
// one answers GET / (no hub): the reference of the schedule figure.
func bareStarts(b *testing.B, k int) time.Duration {
	in := testenv.NodeREDPaths(b)
	start := time.Now()
	ports := make([]int, k)
	for i := range k {
		dir := b.TempDir()
		os.WriteFile(filepath.Join(dir, "settings.js"), []byte(`module.exports = {uiHost: "127.0.0.1", uiPort: process.env.PORT, telemetry: {enabled: false}, editorTheme: {projects: {enabled: false}, tours: false}};`), 0o644)
		ports[i] = testenv.FreePort(b)
		cmd := exec.Command(in.Node, in.RedJS, "--userDir", dir, "--settings", filepath.Join(dir, "settings.js"))
		cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(ports[i]))
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	}
	for _, port := range ports {
		testenv.WaitFor(b, 5*time.Minute, "bare Node-RED answering", func() error {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
			if err != nil {
				return err
			}
			resp.Body.Close()
			return nil
		})
	}
	return time.Since(start)
}

func benchHostLost(b *testing.B) {
	const lost = 3 * time.Second
	var took, detected, bare []time.Duration
	for range 3 {
		bare = append(bare, bareStart(b))
		c := newNSCluster(b, nsOpts{lostAfter: lost}, "us", "us", "us")
		v := c.createInstance(c.hubs[0], "solo", "us", "pinned", 1)
		victim := c.hostOf(v.Allocations[0])
		var via *nsHub
		for _, h := range c.hubs {
			if h != victim {
				via = h
			}
		}
		start := time.Now()
		victim.kill()
		// Detection is when the cluster marks the host down, watched
		// apart from the serving check so neither delays the other.
		down := make(chan time.Duration, 1)
		go func() {
			for time.Since(start) < 3*time.Minute {
				code, body, err := via.call("GET", "/api/hubs", c.token, nil)
				if err == nil && code == 200 {
					var out struct {
						Hubs []hubView `json:"hubs"`
					}
					_ = json.Unmarshal(body, &out)
					for _, h := range out.Hubs {
						if h.ID == victim.id && h.State == "down" {
							down <- time.Since(start)
							return
						}
					}
				}
				time.Sleep(20 * time.Millisecond) // sampling period of the detection figure
			}
			down <- 0
		}()
		testenv.WaitFor(b, 3*time.Minute, "solo serving again", func() error { _, err := who(via, "solo"); return err })
		took = append(took, time.Since(start))
		detected = append(detected, <-down)
	}
	t, d, bs := benchinfo.Median(took), benchinfo.Median(detected), benchinfo.Median(bare)
	goal := d + bs + time.Second
	fmt.Printf("host lost → 1-replica instance serving again from another hub: %v (median of %v); detection %v (median of %v, hub-lost timeout %v); bare Node-RED start %v (median of %v); goal ≤ detection + bare start + 1 s = %v: %s; %s\n",
		t.Round(10*time.Millisecond), took, d.Round(10*time.Millisecond), detected, lost, bs.Round(10*time.Millisecond), bare, goal.Round(10*time.Millisecond), verdict(t <= goal), benchinfo.This())
	b.ReportMetric(t.Seconds(), "s_serving_again")
	b.ReportMetric(d.Seconds(), "s_detection")
	b.ReportMetric(bs.Seconds(), "s_bare_start")
}

func verdict(ok bool) string {
	if ok {
		return "meets"
	}
	return "misses"
}

func benchHostLossLoad(b *testing.B) {
	var failed, answered []int64
	for range 3 {
		c := newNSCluster(b, nsOpts{}, "us", "us", "us")
		v := c.createInstance(c.hubs[0], "steady", "us", "pinned", 2)
		leader := c.leader()
		victim := c.hostOf(v.Allocations[1])
		if victim == leader {
			victim = c.hostOf(v.Allocations[0])
		}
		var others []*nsHub
		for _, h := range c.hubs {
			if h != victim {
				others = append(others, h)
			}
		}
		l := startLoad(others, "steady", 200)
		testenv.WaitFor(b, 10*time.Second, "load flowing", func() error {
			if l.ok.Load() < 200 {
				return fmt.Errorf("%d", l.ok.Load())
			}
			return nil
		})
		victim.kill()
		testenv.WaitFor(b, 2*time.Minute, "replica moved", func() error {
			v = c.waitRunning(others[0], "steady", 2, time.Minute)
			for _, a := range v.Allocations {
				if a.Hub == victim.id {
					return fmt.Errorf("still on the dead host")
				}
			}
			return nil
		})
		l.end()
		failed, answered = append(failed, l.failed.Load()), append(answered, l.ok.Load())
	}
	fmt.Printf("host of one of 2 replicas lost under 200 req/s: failed requests %v of %v answered (goal 0: %s); %s\n",
		failed, answered, verdict(slices.Max(failed) == 0), benchinfo.This())
	b.ReportMetric(float64(slices.Max(failed)), "failed_max")
}

// latencies GETs url n times, one after another, and returns the sorted
// durations.
func latencies(b *testing.B, url string, n int) []time.Duration {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("%s: %d", url, resp.StatusCode)
		}
		out = append(out, time.Since(start))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func pct(ds []time.Duration, p float64) time.Duration { return ds[int(p*float64(len(ds)-1))] }

func benchProxyOverhead(b *testing.B) {
	c := newNSCluster(b, nsOpts{}, "us", "us")
	v := c.createInstance(c.hubs[0], "fast", "us", "pinned", 1)
	local := c.hostOf(v.Allocations[0])
	remote := c.hubs[0]
	if remote == local {
		remote = c.hubs[1]
	}
	const n = 2000
	var rows []string
	var p99over []time.Duration
	for run := range 3 {
		direct := latencies(b, "http://"+v.Allocations[0].Address+"/who", n)
		viaLocal := latencies(b, local.api+"/i/fast/who", n)
		viaRemote := latencies(b, remote.api+"/i/fast/who", n)
		p99over = append(p99over, pct(viaLocal, 0.99)-pct(direct, 0.99))
		rows = append(rows, fmt.Sprintf("run %d: direct p50 %v p99 %v; through the hub running it p50 %v p99 %v (overhead p50 %v p99 %v); through another hub p50 %v p99 %v (overhead p50 %v p99 %v)",
			run+1, pct(direct, .5), pct(direct, .99), pct(viaLocal, .5), pct(viaLocal, .99),
			pct(viaLocal, .5)-pct(direct, .5), pct(viaLocal, .99)-pct(direct, .99),
			pct(viaRemote, .5), pct(viaRemote, .99), pct(viaRemote, .5)-pct(direct, .5), pct(viaRemote, .99)-pct(direct, .99)))
	}
	for _, r := range rows {
		fmt.Println("proxy overhead, " + r)
	}
	med := benchinfo.Median(p99over)
	fmt.Printf("proxy overhead: local p99 overhead median %v (goal < 1 ms: %s); %s\n", med, verdict(med < time.Millisecond), benchinfo.This())
	b.ReportMetric(float64(med.Microseconds()), "us_local_p99_overhead")
}

func benchSchedule(b *testing.B) {
	// REDFORGE_BENCH_SCHEDULE_INSTANCES scales it down for a machine that
	// cannot boot 200 Node-RED runtimes at once (2 cores cannot).
	n := 100
	if v, err := strconv.Atoi(os.Getenv("REDFORGE_BENCH_SCHEDULE_INSTANCES")); err == nil && v > 0 {
		n = v
	}
	var placed, healthy, bare []time.Duration
	for range 3 {
		bare = append(bare, bareStarts(b, 2*n))
		p, h := scheduleOnce(b, n)
		placed, healthy = append(placed, p), append(healthy, h)
	}
	p, h, bs := benchinfo.Median(placed), benchinfo.Median(healthy), benchinfo.Median(bare)
	fmt.Printf("%d instances × 2 replicas on 3 hubs: every replica placed by the scheduler %v after the first create (median of %v); all healthy after %v (median of %v) against %d bare Node-REDs started at once answering after %v (median of %v): %.2f× the bare boots; %s\n",
		n, p.Round(time.Millisecond), placed, h.Round(10*time.Millisecond), healthy, 2*n, bs.Round(10*time.Millisecond), bare, h.Seconds()/bs.Seconds(), benchinfo.This())
	b.ReportMetric(p.Seconds(), "s_all_placed")
	b.ReportMetric(h.Seconds(), "s_all_healthy")
	b.ReportMetric(bs.Seconds(), "s_bare_boots")
}

// scheduleOnce creates n 2-replica instances on a fresh 3-hub cluster and
// returns when every replica was placed and when all were healthy.
func scheduleOnce(b *testing.B, n int) (placedAt, healthyAt time.Duration) {
	c := newNSCluster(b, nsOpts{}, "us", "us", "us")
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c.hubs[i%3].must("POST", "/api/instances", c.token, map[string]any{"name": fmt.Sprintf("s%03d", i), "region": "us",
				"replicas": 2, "resources": map[string]any{"memory_mb": 128}}, 201, nil)
		})
	}
	wg.Wait()
	testenv.WaitFor(b, 20*time.Minute, "every replica healthy", func() error {
		var list struct {
			Instances []instanceView `json:"instances"`
		}
		code, body, err := c.hubs[0].call("GET", "/api/instances", c.token, nil)
		if err != nil || code != 200 {
			return fmt.Errorf("%d %v", code, err)
		}
		if err := json.Unmarshal(body, &list); err != nil {
			return err
		}
		placed, running := 0, 0
		for _, v := range list.Instances {
			placed += len(v.Allocations)
			for _, a := range v.Allocations {
				if a.Status == "running" {
					running++
				}
			}
		}
		if placed == 2*n && placedAt == 0 {
			placedAt = time.Since(start)
		}
		if running < 2*n {
			return fmt.Errorf("%d placed, %d of %d running", placed, running, 2*n)
		}
		healthyAt = time.Since(start)
		return nil
	})
	for _, h := range c.hubs {
		h.kill() // the host and its runtimes, so the next run boots on a quiet machine
	}
	return placedAt, healthyAt
}
