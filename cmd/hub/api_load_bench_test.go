package main

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/internal/benchinfo"
	"github.com/redforge/controltower/internal/hubtest"
)

// BenchmarkAPILoad drives an authenticated mixed load, 80 % reads and 20 %
// writes, with vegeta's attacker at a constant rate against one hub
// process and against three (requests spread over all three; writes on
// followers are forwarded to the leader). Reads are GET
// /api/instances/{name} (40 %), GET /api/instances (20 %, 100 instances)
// and GET /api/auth/me (20 %); writes are PATCH /api/instances/{name}
// with a new env value on one of 100 stopped instances (a Raft apply and
// an audit record each).
//
// Figures: the highest rate at which p99 < 50 ms and errors < 0.1 % (the
// rate doubles from REDFORGE_BENCH_API_START, default 250 req/s, until a
// step fails or REDFORGE_BENCH_API_MAX, default 4000, then halves the gap
// twice; each step lasts REDFORGE_BENCH_API_STEP, default 5 s), and on
// one hub p50/p95/p99 at REDFORGE_BENCH_API_FIXED req/s (default 2000,
// 10 s runs). Each is the median of REDFORGE_BENCH_API_RUNS (default 3)
// runs, and is held to references measured in the same run, on the same
// hubs, interleaved with it:
//   - "no work": GET / (the console's public static page) at the same
//     rates, which is what the machine, the HTTP stack and the load
//     generator allow;
//   - on one hub, "group commit off": the same mix on a second hub
//     process started with --audit-max-batch 1, one audit transaction per
//     write, as the hub wrote them before group commit.
//
// The load generator shares the machine with the hubs, so the rates are
// those of the whole machine; the load average is printed beside them.
//
// The hub limits requests per user and minute (ADMIN: 1000), so the load
// is spread over enough users for the highest rate, as it would be in
// production; a step that draws a 429 says so.
//
// REDFORGE_BENCH_API_INPROCESS=1 runs the one hub inside the benchmark's
// process instead, for go test -cpuprofile (no "group commit off" hub);
// =stock runs it with Raft's own throughput settings (--raft-stock-throughput).
// REDFORGE_BENCH_API_SEARCH=0 skips the search and measures only the fixed
// rate. REDFORGE_BENCH_API_OFF="name=flags" replaces the second hub's
// variant: another name and other flags (space-separated), e.g.
// "raft stock=--raft-stock-throughput" to hold the Raft throughput
// settings against the hub without them; REDFORGE_BENCH_API_FLAGS adds
// flags to the first hub (the one the no-work reference also runs on), so
// the two settings can swap hubs.
func BenchmarkAPILoad(b *testing.B) {
	if testing.Short() {
		b.Skip("hub process benchmark (-short)")
	}
	start := envInts(b, "REDFORGE_BENCH_API_START", 250)[0]
	maxRate := envInts(b, "REDFORGE_BENCH_API_MAX", 4000)[0]
	fixed := envInts(b, "REDFORGE_BENCH_API_FIXED", 2000)[0]
	runs := envInts(b, "REDFORGE_BENCH_API_RUNS", 3)[0]
	step := 5 * time.Second
	if v := os.Getenv("REDFORGE_BENCH_API_STEP"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("REDFORGE_BENCH_API_STEP=%q: want a duration such as 5s", v)
		}
		step = d
	}
	benchHeader(b, "API mixed load")
	raiseOpenFilesForBench(b, 65536)
	for _, n := range envInts(b, "REDFORGE_BENCH_API_HUBS", 1, 3) {
		b.Run(fmt.Sprintf("hubs=%d", n), func(b *testing.B) {
			for range b.N {
				l := newAPILoad(b, n, max(maxRate, fixed), strings.Fields(os.Getenv("REDFORGE_BENCH_API_FLAGS"))...)
				variants := []loadVariant{
					{name: "no work (GET /)", load: l, target: l.staticTarget},
					{name: "mixed", load: l, target: l.target},
				}
				if n == 1 && os.Getenv("REDFORGE_BENCH_API_INPROCESS") == "" {
					offName, offFlags := offVariant(b)
					off := newAPILoad(b, 1, max(maxRate, fixed), offFlags...)
					variants = append(variants, loadVariant{name: "mixed, " + offName, load: off, target: off.target})
				}
				hubs := fmt.Sprintf("%d hub(s)", n)
				if os.Getenv("REDFORGE_BENCH_API_SEARCH") == "0" {
					if n == 1 {
						fixedRate(b, variants, fixed, runs)
					}
					continue
				}
				for range runs {
					for i := range variants {
						v := &variants[i]
						fmt.Printf("  %s, %s: search\n", hubs, v.name)
						v.best = append(v.best, v.load.search(b, v.target, start, maxRate, step))
					}
				}
				for i := range variants {
					v := &variants[i]
					fmt.Printf("API mixed load, %s, %s: highest rate with p99 < 50 ms and errors < 0.1 %%: %d req/s (median of %v; searched %d..%d, %s steps); load average %s\n",
						hubs, v.name, medianInt(v.best), v.best, start, maxRate, step, loadAvg())
				}
				ref, mixed := variants[0], variants[1]
				b.ReportMetric(float64(medianInt(mixed.best)), "max_rate_req/s")
				fmt.Printf("API mixed load, %s: highest passing rate, mixed against no work: %d / %d req/s = %.3f×; %s; load average %s\n",
					hubs, medianInt(mixed.best), medianInt(ref.best), ratio(float64(medianInt(mixed.best)), float64(medianInt(ref.best))), benchinfo.This(), loadAvg())
				if len(variants) > 2 {
					off := variants[2]
					b.ReportMetric(float64(medianInt(off.best)), "max_rate_off_req/s")
					fmt.Printf("API mixed load, %s: highest passing rate, mixed against %s: %d / %d req/s = %.2f×\n",
						hubs, off.name, medianInt(mixed.best), medianInt(off.best), ratio(float64(medianInt(mixed.best)), float64(medianInt(off.best))))
				}
				if n == 1 {
					fixedRate(b, variants, fixed, runs)
				}
			}
		})
	}
}

// offVariant is the second one-hub variant's name and hub flags:
// REDFORGE_BENCH_API_OFF ("name=flag flag…"), by default group commit off
// (--audit-max-batch 1).
func offVariant(b *testing.B) (string, []string) {
	v := os.Getenv("REDFORGE_BENCH_API_OFF")
	if v == "" {
		return "group commit off", []string{"--audit-max-batch", "1"}
	}
	name, flags, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		b.Fatalf("REDFORGE_BENCH_API_OFF=%q: want name=flags, e.g. \"raft stock=--raft-stock-throughput\"", v)
	}
	return name, strings.Fields(flags)
}

// loadVariant is one kind of load on one hub set, and its results.
type loadVariant struct {
	name   string
	load   *apiLoad
	target vegeta.Targeter
	best   []int // highest passing rate of each search
	// at the fixed rate, per run
	p50, p95, p99 []time.Duration
	errs, thru    []float64
}

func medianInt(v []int) int {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func medianFloat(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// apiLoad is a running hub set with its users and instances.
type apiLoad struct {
	hubs   []*hubProc
	urls   []string
	tokens []string
	names  []string
	seq    atomic.Uint64
}

// newAPILoad starts n hub processes (a cluster when n > 1; extra flags
// for each) with 100 stopped instances and enough ADMIN users for
// maxRate.
func newAPILoad(b *testing.B, n, maxRate int, extra ...string) *apiLoad {
	b.Helper()
	b.StopTimer()
	o := clusterOpts{heartbeat: time.Second, deadAfter: time.Minute, extra: extra}
	var hubs []*hubProc
	var admin string
	switch {
	case n == 1 && os.Getenv("REDFORGE_BENCH_API_INPROCESS") != "":
		// The hub in this process, so that go test -cpuprofile profiles
		// it (with the load generator beside it); "stock": with Raft's
		// own throughput settings.
		stock := os.Getenv("REDFORGE_BENCH_API_INPROCESS") == "stock"
		th := hubtest.Start(b, func(c *hub.Config) { c.RaftStockThroughput = stock })
		hubs, admin = []*hubProc{{t: b, id: "in-process", api: th.URL}}, th.AdminToken
	case n == 1:
		hubs = []*hubProc{startHubProc(b, "load-hub", "us", "", o)}
		admin = hubs[0].login(b)
	default:
		hubs, admin = startCluster(b, o)
		hubs = hubs[:n]
	}
	l := &apiLoad{hubs: hubs}
	for _, h := range hubs {
		l.urls = append(l.urls, h.api)
	}
	for i := range 100 {
		name := fmt.Sprintf("load-%03d", i)
		if code, body, err := createInstance(hubs[0], admin, name); err != nil || code != http.StatusCreated {
			b.Fatalf("create %s: %d %s %v", name, code, body, err)
		}
		l.names = append(l.names, name)
	}
	// ADMIN may make 1000 requests a minute: 60 s × rate / 900 users
	// leaves a tenth spare.
	users := maxRate*60/900 + 1
	t0 := time.Now()
	l.tokens = benchUsers(b, hubs[0].api, admin, users, "ADMIN", loopbackSource)
	fmt.Printf("API mixed load, %d hub(s): %d users logged in in %s\n", n, users, time.Since(t0).Round(time.Millisecond))
	return l
}

// target is the mix: of every ten requests two are writes.
func (l *apiLoad) target(t *vegeta.Target) error {
	i := l.seq.Add(1)
	base := l.urls[i%uint64(len(l.urls))]
	name := l.names[(i/7)%uint64(len(l.names))]
	t.Header = http.Header{"Authorization": {"Bearer " + l.tokens[(i/3)%uint64(len(l.tokens))]}}
	t.Body = nil
	switch i % 10 {
	case 0, 1:
		// The two writes of every ten go to different instances, each
		// instance written every 500 requests: the mix measures
		// writes, not the compare-and-swap retries of two PATCHes racing
		// on one instance (409 once they run out).
		name = l.names[(i/10*2+i%10)%uint64(len(l.names))]
		t.Method, t.URL = http.MethodPatch, base+"/api/instances/"+name
		t.Body = fmt.Appendf(nil, `{"env":{"LOAD":"%d"}}`, i)
		t.Header.Set("Content-Type", "application/json")
	case 2, 3, 4, 5:
		t.Method, t.URL = http.MethodGet, base+"/api/instances/"+name
	case 6, 7:
		t.Method, t.URL = http.MethodGet, base+"/api/instances"
	default:
		t.Method, t.URL = http.MethodGet, base+"/api/auth/me"
	}
	return nil
}

// staticTarget is the no-work reference: GET / (public, static).
func (l *apiLoad) staticTarget(t *vegeta.Target) error {
	i := l.seq.Add(1)
	t.Method, t.URL, t.Header, t.Body = http.MethodGet, l.urls[i%uint64(len(l.urls))]+"/", nil, nil
	return nil
}

// attack runs tr at rate for d and returns vegeta's metrics, and the p99
// of each kind of request.
func (l *apiLoad) attack(tr vegeta.Targeter, rate int, d time.Duration) (*vegeta.Metrics, string) {
	a := vegeta.NewAttacker(vegeta.Timeout(10*time.Second), vegeta.KeepAlive(true), vegeta.Workers(64), vegeta.Connections(1024))
	var m vegeta.Metrics
	kinds := map[string][]time.Duration{}
	for res := range a.Attack(tr, vegeta.Rate{Freq: rate, Per: time.Second}, d, "mixed") {
		m.Add(res)
		k := res.Method + " " + requestKind(res.URL)
		kinds[k] = append(kinds[k], res.Latency)
	}
	m.Close()
	var parts []string
	for k, ds := range kinds {
		parts = append(parts, fmt.Sprintf("%s %s", k, benchinfo.Percentile(ds, 99).Round(100*time.Microsecond)))
	}
	slices.Sort(parts)
	return &m, "p99 by kind: " + strings.Join(parts, ", ")
}

// requestKind is a URL's route, the instance name replaced by {name}.
func requestKind(u string) string {
	_, path, _ := strings.Cut(strings.TrimPrefix(u, "http://"), "/")
	path = "/" + path
	if rest, ok := strings.CutPrefix(path, "/api/instances/"); ok && rest != "" {
		return "/api/instances/{name}"
	}
	return path
}

// passes is the goal of the search: p99 < 50 ms, errors < 0.1 %.
func passes(m *vegeta.Metrics) bool {
	return m.Latencies.P99 < 50*time.Millisecond && 1-m.Success < 0.001
}

// describe is one line about a step.
func describe(rate int, m *vegeta.Metrics) string {
	codes := make([]string, 0, len(m.StatusCodes))
	for c, k := range m.StatusCodes {
		codes = append(codes, fmt.Sprintf("%s×%d", c, k))
	}
	slices.Sort(codes)
	verdict := "pass"
	if !passes(m) {
		verdict = "FAIL"
	}
	first := ""
	if len(m.Errors) > 0 {
		first = "; first error: " + m.Errors[0]
	}
	return fmt.Sprintf("%5d req/s: %s; achieved %.0f req/s, p50 %s p95 %s p99 %s max %s, errors %.3f %% (%s)%s",
		rate, verdict, m.Throughput, m.Latencies.P50.Round(10*time.Microsecond), m.Latencies.P95.Round(10*time.Microsecond),
		m.Latencies.P99.Round(10*time.Microsecond), m.Latencies.Max.Round(time.Millisecond), 100*(1-m.Success), strings.Join(codes, " "), first)
}

// search finds the highest passing rate: doubling from start (or halving
// from it when start fails), then two halvings of the gap between the
// last pass and the first failure.
func (l *apiLoad) search(b *testing.B, tr vegeta.Targeter, start, maxRate int, step time.Duration) int {
	b.Helper()
	l.attack(tr, start/2, 2*time.Second) // warm the connections and the hub
	b.StartTimer()
	defer b.StopTimer()
	good, bad := 0, 0
	for r := start; r <= maxRate; r *= 2 {
		m, kinds := l.attack(tr, r, step)
		fmt.Printf("  %d hub(s) %s\n      %s\n", len(l.hubs), describe(r, m), kinds)
		if !passes(m) {
			bad = r
			break
		}
		good = r
		if r < maxRate && r*2 > maxRate {
			r = maxRate / 2 // the last step is maxRate itself
		}
	}
	for r := start / 2; good == 0 && r >= 5; r /= 2 { // start fails: halve down to 5 req/s
		m, kinds := l.attack(tr, r, step)
		fmt.Printf("  %d hub(s) %s\n      %s\n", len(l.hubs), describe(r, m), kinds)
		if passes(m) {
			good = r
		} else {
			bad = r
		}
	}
	for range 2 {
		if bad == 0 || bad-good < max(start/2, 2*good/10) {
			break
		}
		r := (good + bad) / 2
		m, kinds := l.attack(tr, r, step)
		fmt.Printf("  %d hub(s) %s\n      %s\n", len(l.hubs), describe(r, m), kinds)
		if passes(m) {
			good = r
		} else {
			bad = r
		}
	}
	return good
}

// fixedRate reports p50/p95/p99 at rate of each variant, medians of
// runs 10 s runs, the variants interleaved, and their ratios to the
// first (no work) and of the mix to the mix without group commit.
func fixedRate(b *testing.B, vs []loadVariant, rate, runs int) {
	b.Helper()
	b.StartTimer()
	for range runs {
		for i := range vs {
			v := &vs[i]
			m, kinds := v.load.attack(v.target, rate, 10*time.Second)
			fmt.Printf("  1 hub fixed, %s: %s\n      %s\n", v.name, describe(rate, m), kinds)
			v.p50, v.p95, v.p99 = append(v.p50, m.Latencies.P50), append(v.p95, m.Latencies.P95), append(v.p99, m.Latencies.P99)
			v.errs, v.thru = append(v.errs, 100*(1-m.Success)), append(v.thru, m.Throughput)
		}
	}
	b.StopTimer()
	for i, v := range vs {
		fmt.Printf("API mixed load, 1 hub at %d req/s, %s (median of %d × 10 s): p50 %s, p95 %s, p99 %s, errors %.3f %%, answered %.0f req/s; load average %s\n",
			rate, v.name, runs, benchinfo.Median(v.p50).Round(10*time.Microsecond), benchinfo.Median(v.p95).Round(10*time.Microsecond),
			benchinfo.Median(v.p99).Round(10*time.Microsecond), medianFloat(v.errs), medianFloat(v.thru), loadAvg())
		if i > 0 {
			ref := vs[0]
			fmt.Printf("    against %s: p99 %.1f×, answered %.3f×\n", ref.name,
				ratio(ms(benchinfo.Median(v.p99)), ms(benchinfo.Median(ref.p99))), ratio(medianFloat(v.thru), medianFloat(ref.thru)))
		}
	}
	mixed := vs[1]
	b.ReportMetric(ms(benchinfo.Median(mixed.p50)), "p50_ms@fixed")
	b.ReportMetric(ms(benchinfo.Median(mixed.p95)), "p95_ms@fixed")
	b.ReportMetric(ms(benchinfo.Median(mixed.p99)), "p99_ms@fixed")
	if len(vs) > 2 {
		off := vs[2]
		fmt.Printf("API mixed load, 1 hub at %d req/s, mixed against %s: p99 %s / %s = %.2f×, answered %.0f / %.0f req/s = %.2f×; %s\n",
			rate, off.name, benchinfo.Median(mixed.p99).Round(10*time.Microsecond), benchinfo.Median(off.p99).Round(10*time.Microsecond),
			ratio(ms(benchinfo.Median(mixed.p99)), ms(benchinfo.Median(off.p99))), medianFloat(mixed.thru), medianFloat(off.thru),
			ratio(medianFloat(mixed.thru), medianFloat(off.thru)), benchinfo.This())
	}
}
