package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/benchinfo"
	"github.com/redforge/controltower/internal/testenv"
)

// BenchmarkFleetLoad runs a fleet of real Node-RED 4.1 runtimes (process
// driver) behind one hub process, each serving the agent workflow of
// packaging/nodered/flows/agent-metrics.json (GET /work: the RedForge
// workflow nodes around a simulated model call of ?ms= milliseconds), and
// measures through the hub's /i/{name}/ proxy:
//
//   - deployments: a blue-green deployment (POST /api/deployments) on
//     every instance at once, while a steady load calls every instance's
//     /work; figures: the time until all have succeeded, and the
//     requests that failed (the goal is 0);
//   - workflows: REDFORGE_BENCH_FLEET_CONCURRENCY (default 1000)
//     concurrent callers of /work?ms=50 spread over the fleet for 20 s;
//     figures: executions per second, p50/p95/p99, and the error rate
//     (the goal is < 1 %).
//
// The fleet is REDFORGE_BENCH_FLEET_INSTANCES (default 100) instances, or
// as many as this machine's available memory holds at two runtimes per
// instance (a blue-green deployment runs both colours for a while) —
// the benchmark says when it runs fewer.
func BenchmarkFleetLoad(b *testing.B) {
	if testing.Short() {
		b.Skip("hub process benchmark (-short)")
	}
	want := envInts(b, "REDFORGE_BENCH_FLEET_INSTANCES", 100)[0]
	conc := envInts(b, "REDFORGE_BENCH_FLEET_CONCURRENCY", 1000)[0]
	benchHeader(b, "fleet load")
	raiseOpenFilesForBench(b, 65536)
	n := fleetFits(want)
	if n < want {
		fmt.Printf("fleet load: %d instances do not fit here (MemAvailable %d MiB; a runtime takes about %d MiB and a blue-green deployment runs two); running %d\n",
			want, memAvailable()>>20, runtimeMiB, n)
	}
	b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
		for range b.N {
			f := newFleet(b, n)
			f.deployAll(b)
			f.workflows(b, conc, 20*time.Second)
		}
	})
}

// runtimeMiB is what one Node-RED runtime with the agent flow is counted
// for: about 80 MiB resident each (ps), about 50 MiB more used memory per
// runtime on the machine (shared pages), with room for its heap to grow
// under load (its --max-old-space-size is 384 MiB). CPU, not memory, is
// what a 2-core machine runs out of first.
const runtimeMiB = 128

// fleetFits is the largest fleet up to want whose two runtimes per
// instance fit in three quarters of the available memory.
func fleetFits(want int) int {
	avail := memAvailable() >> 20
	if avail <= 0 {
		return want
	}
	return max(1, min(want, int(avail*3/4)/(2*runtimeMiB)))
}

// memAvailable is /proc/meminfo's MemAvailable in bytes (0 when unknown).
func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemAvailable:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// fleetLoad is one hub with its running instances.
type fleetLoad struct {
	hub   *hubProc
	admin string
	names []string
	flows []byte
	hc    *http.Client
}

func newFleet(b *testing.B, n int) *fleetLoad {
	b.Helper()
	b.StopTimer()
	flows, err := os.ReadFile("../../packaging/nodered/flows/agent-metrics.json")
	if err != nil {
		b.Fatal(err)
	}
	hub := startHubProc(b, "fleet-hub", "us", "", clusterOpts{heartbeat: time.Second, deadAfter: time.Minute})
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost = 2000, 0
	f := &fleetLoad{hub: hub, admin: hub.login(b), flows: flows, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
	removeInstancesAtEnd(b, hub, f.admin)
	t0 := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		name := fmt.Sprintf("fleet-%03d", i)
		f.names = append(f.names, name)
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if code, body, _, err := hub.do("POST", "/api/instances", f.admin, map[string]any{"name": name, "resources": map[string]any{"memory_mb": 256}}); err != nil || code != 201 {
				b.Errorf("create %s: %d %s %v", name, code, body, err)
				return
			}
			testenv.WaitFor(b, 10*time.Minute, name+" accepts flows", func() error {
				code, body, err := f.put("/api/instances/"+name+"/flows", flows)
				if err != nil || code != 200 {
					return fmt.Errorf("PUT flows: %d %s %v", code, body, err)
				}
				return nil
			})
			testenv.WaitFor(b, 10*time.Minute, name+" serves /work", func() error { return f.call(name, 1) })
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	fmt.Printf("fleet load: %d instances running the agent flow in %s; hub RSS %d MiB; load average %s\n",
		n, time.Since(t0).Round(time.Second), rssOf(hub.cmd.Process.Pid)>>20, loadAvg())
	return f
}

// put sends a raw JSON body.
func (f *fleetLoad) put(path string, body []byte) (int, []byte, error) {
	req, _ := http.NewRequest("PUT", f.hub.api+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+f.admin)
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, nil
}

// call runs the workflow of instance name once through the proxy.
func (f *fleetLoad) call(name string, ms int) error {
	resp, err := f.hc.Get(fmt.Sprintf("%s/i/%s/work?ms=%d", f.hub.api, name, ms))
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /i/%s/work: %d", name, resp.StatusCode)
	}
	return nil
}

// deployAll deploys a new version of the agent flow to every instance at
// once, blue-green, under a steady load through the proxy.
func (f *fleetLoad) deployAll(b *testing.B) {
	b.Helper()
	// The new version differs in a label, so the deployment has work to do.
	v2 := bytes.Replace(f.flows, []byte(`"label": "triage"`), []byte(`"label": "triage v2"`), 1)
	if bytes.Equal(v2, f.flows) {
		b.Fatal("agent-metrics.json has no tab labelled triage to change")
	}
	var (
		stop     atomic.Bool
		sent     atomic.Int64
		failed   atomic.Int64
		firstErr atomic.Value
		load     sync.WaitGroup
	)
	for c := range 20 { // 20 callers in a loop over the fleet
		load.Go(func() {
			for i := c; !stop.Load(); i += 20 {
				sent.Add(1)
				if err := f.call(f.names[i%len(f.names)], 1); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	b.StartTimer()
	t0 := time.Now()
	ids := make([]string, len(f.names))
	var wg sync.WaitGroup
	for i, name := range f.names {
		wg.Go(func() {
			body := map[string]any{"instance": name, "flows": json.RawMessage(v2), "drain_timeout": "10s", "rollback_window": "0s"}
			code, out, _, err := f.hub.do("POST", "/api/deployments", f.admin, body)
			var d struct {
				ID string `json:"id"`
			}
			if err != nil || code != 201 || json.Unmarshal(out, &d) != nil {
				b.Errorf("POST /api/deployments %s: %d %s %v", name, code, out, err)
				return
			}
			ids[i] = d.ID
		})
	}
	wg.Wait()
	if b.Failed() {
		stop.Store(true)
		load.Wait()
		b.FailNow()
	}
	accepted := time.Since(t0)
	var failedDeps []string
	testenv.WaitFor(b, 30*time.Minute, "every deployment to finish", func() error {
		pending, bad := 0, []string(nil)
		for i, id := range ids {
			code, out, _, err := f.hub.do("GET", "/api/deployments/"+id, f.admin, nil)
			var d dfDeployment
			if err != nil || code != 200 || json.Unmarshal(out, &d) != nil {
				return fmt.Errorf("GET deployment %s: %d %v", id, code, err)
			}
			switch {
			case d.Status == "succeeded" && d.Progress == 100:
			case d.Status == "failed" || d.Status == "rolled_back":
				bad = append(bad, fmt.Sprintf("%s %s: %s", f.names[i], d.Status, d.Error))
			default:
				pending++
			}
		}
		if pending > 0 {
			return fmt.Errorf("%d of %d deployments still running", pending, len(ids))
		}
		failedDeps = bad
		return nil
	})
	took := time.Since(t0)
	b.StopTimer()
	stop.Store(true)
	load.Wait()
	b.ReportMetric(took.Seconds(), "deploy_all_s")
	b.ReportMetric(float64(failed.Load()), "proxy_failed_requests")
	first := ""
	if e := firstErr.Load(); e != nil {
		first = fmt.Sprintf(" (first: %v)", e)
	}
	fmt.Printf("fleet load: %d concurrent blue-green deployments accepted in %s, all finished in %s, %d failed; %d requests through the proxy meanwhile, %d failed%s; load average %s\n",
		len(ids), accepted.Round(time.Millisecond), took.Round(time.Millisecond), len(failedDeps), sent.Load(), failed.Load(), first, loadAvg())
	if len(failedDeps) > 0 {
		b.Errorf("%d deployments did not succeed, e.g. %s", len(failedDeps), failedDeps[0])
	}
}

// workflows runs conc concurrent callers of /work?ms=50 over the fleet
// for d.
func (f *fleetLoad) workflows(b *testing.B, conc int, d time.Duration) {
	b.Helper()
	var (
		mu       sync.Mutex
		lat      []time.Duration
		failed   atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	b.StartTimer()
	t0 := time.Now()
	end := t0.Add(d)
	for c := range conc {
		wg.Go(func() {
			var mine []time.Duration
			for i := c; time.Now().Before(end); i += conc {
				s := time.Now()
				if err := f.call(f.names[i%len(f.names)], 50); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				mine = append(mine, time.Since(s))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	b.StopTimer()
	total := int64(len(lat)) + failed.Load()
	if total == 0 {
		b.Fatal("no workflow ran")
	}
	errPct := 100 * float64(failed.Load()) / float64(total)
	slices.Sort(lat)
	p50, p95, p99 := benchinfo.Percentile(lat, 50), benchinfo.Percentile(lat, 95), benchinfo.Percentile(lat, 99)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "workflows/s")
	b.ReportMetric(ms(p95), "workflow_p95_ms")
	b.ReportMetric(errPct, "workflow_errors_%")
	first := ""
	if e := firstErr.Load(); e != nil {
		first = fmt.Sprintf(" (first: %v)", e)
	}
	fmt.Printf("fleet load: %d concurrent workflow callers over %d instances for %s: %d executions, %.0f/s, p50 %s p95 %s p99 %s (each waits 50 ms in the flow), errors %.3f %%%s; %s; load average %s\n",
		conc, len(f.names), d, total, float64(len(lat))/elapsed.Seconds(), p50.Round(time.Millisecond), p95.Round(time.Millisecond), p99.Round(time.Millisecond),
		errPct, first, benchinfo.This(), loadAvg())
	if errPct >= 1 {
		b.Errorf("workflow errors %.3f %% ≥ 1 %%", errPct)
	}
}
