package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/redforge/controltower/internal/apiclient"
	"github.com/redforge/controltower/internal/benchinfo"
	"github.com/redforge/controltower/internal/testenv"
)

// BenchmarkWebSocketFanout connects N clients (REDFORGE_BENCH_WS_CLIENTS,
// default 10000,50000) to /api/ws?types=instance.status of one hub
// process, with the hub's own client (internal/apiclient), then stops and
// starts a real Node-RED instance twice: every instance.status event the
// hub publishes goes to every client. Figures: the time to connect them
// all; fan-out latency (the event's time at the hub → decoded by a
// client) p50/p99/max over every client and event, and each event's p99;
// the hub's side of it (event → frame written to each client's socket,
// controltower_ws_fanout_seconds, whose p99 is interpolated in its
// buckets, and _max_seconds); the same figures from a same-run reference,
// a bare gorilla/websocket broadcast server in its own process
// (TestWSReferenceServer) sending the same bytes to the same clients,
// which is the floor of this machine; the hub's CPU seconds over the
// stops, starts and fan-outs; the hub's resident
// memory, open files and goroutines per client; and a check that every
// client got every event exactly once. Clients come from several loopback
// addresses (127.0.x.y), 10,000 each, so no source runs out of ephemeral
// ports; the benchmark lifts its own open-file limit (root), which the
// hub inherits and raises its soft limit to at start.
func BenchmarkWebSocketFanout(b *testing.B) {
	if testing.Short() {
		b.Skip("hub process benchmark (-short)")
	}
	sizes := envInts(b, "REDFORGE_BENCH_WS_CLIENTS", 10000, 50000)
	benchHeader(b, "WebSocket fan-out")
	// Each client is one open file here and one in the hub.
	limit := int(raiseOpenFilesForBench(b, uint64(slices.Max(sizes))+10000))
	for _, n := range sizes {
		if n > limit-1000 {
			fmt.Printf("websocket %d clients: not run: the open-file limit here is %d (hard; raising it needs CAP_SYS_RESOURCE), so %d clients is the most; running that instead\n", n, limit, limit-1000)
			n = limit - 1000
		}
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			for range b.N {
				runWSFanout(b, n)
			}
		})
	}
}

// wsClients are the benchmark's connected clients.
type wsClients struct {
	streams []*apiclient.Events
	counts  []atomic.Int64 // instance.status events each client got
	// lat[i] is client i's latencies (event time at the server → decoded),
	// written only by its reader: one lock shared by 10,000 readers made
	// them queue behind each other and inflated the figure.
	lat     [][]time.Duration
	last    atomic.Value // client 0's last instance.status data (json.RawMessage)
	seen    chan string  // statuses client 0 gets, in order
	order   []string     // every status client 0 got, in order (its reader only)
	wg      sync.WaitGroup
	dialers map[int]*websocket.Dialer
}

func newWSClients(n int) *wsClients {
	return &wsClients{counts: make([]atomic.Int64, n), lat: make([][]time.Duration, n), seen: make(chan string, 64), streams: make([]*apiclient.Events, n)}
}

// latencies are every client's latencies; call once the readers are done
// or idle.
func (cl *wsClients) latencies() []time.Duration {
	var all []time.Duration
	for i := range cl.lat {
		all = append(all, cl.lat[i]...)
	}
	return all
}

// perEvent is, for each event in order, client 0's status and the p99
// over all clients of its decoded latency: the hub's events come while
// the Node-RED runtime stops and starts on the same two cores.
func (cl *wsClients) perEvent() string {
	var parts []string
	for k := range cl.lat[0] {
		var l []time.Duration
		for i := range cl.lat {
			if k < len(cl.lat[i]) {
				l = append(l, cl.lat[i][k])
			}
		}
		st := "?"
		if k < len(cl.order) {
			st = cl.order[k]
		}
		parts = append(parts, fmt.Sprintf("%s %s", st, benchinfo.Percentile(l, 99).Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

// awaitAll waits until every client has want events, and fails if one
// has more.
func (cl *wsClients) awaitAll(b *testing.B, want int64) {
	b.Helper()
	testenv.WaitFor(b, 2*time.Minute, "every client to get every event", func() error {
		short := 0
		for i := range cl.counts {
			if c := cl.counts[i].Load(); c < want {
				short++
			} else if c > want {
				return fmt.Errorf("client %d got %d events, more than %d", i, c, want)
			}
		}
		if short > 0 {
			return fmt.Errorf("%d of %d clients still short of %d events", short, len(cl.counts), want)
		}
		return nil
	})
}

func runWSFanout(b *testing.B, n int) {
	b.StopTimer()
	hub := startHubProc(b, "ws-hub", "us", "", clusterOpts{heartbeat: time.Second, deadAfter: time.Minute})
	pid := hub.cmd.Process.Pid
	admin := hub.login(b)
	removeInstancesAtEnd(b, hub, admin)
	if code, body, _, err := hub.do("POST", "/api/instances", admin, map[string]any{"name": "ws-probe", "resources": map[string]any{"memory_mb": 256}}); err != nil || code != 201 {
		b.Fatalf("create instance: %d %s %v", code, body, err)
	}
	waitStatus(b, hub, admin, "ws-probe", "running")
	// The hub limits requests (a WebSocket handshake is one) per principal
	// and minute: ADMIN's 1000 → one user per 800 clients.
	users := benchUsers(b, hub.api, admin, n/800+1, "ADMIN", loopbackSource)
	rss0, fds0 := rssOf(pid), openFiles(pid)
	g0, _ := metric(hub.api, "go_goroutines")

	cl := newWSClients(n)
	b.Cleanup(cl.close)
	start := time.Now()
	cl.connect(b, hub.api, users, n)
	connected := time.Since(start)
	rss1, fds1 := rssOf(pid), openFiles(pid)
	g1, _ := metric(hub.api, "go_goroutines")
	h0 := scrapeHistogram(b, hub.api, "controltower_ws_fanout_seconds")
	cpu0, _ := metric(hub.api, "process_cpu_seconds_total")

	b.StartTimer()
	for range 2 {
		if code, body, _, err := hub.do("POST", "/api/instances/ws-probe/stop", admin, nil); err != nil || code >= 300 {
			b.Fatalf("stop: %d %s %v", code, body, err)
		}
		cl.awaitStatus(b, "stopped")
		if code, body, _, err := hub.do("POST", "/api/instances/ws-probe/start", admin, nil); err != nil || code >= 300 {
			b.Fatalf("start: %d %s %v", code, body, err)
		}
		cl.awaitStatus(b, "running")
	}
	want := cl.counts[0].Load()
	cl.awaitAll(b, want)
	b.StopTimer()
	rss2 := rssOf(pid)
	cpu1, _ := metric(hub.api, "process_cpu_seconds_total")
	hub1 := scrapeHistogram(b, hub.api, "controltower_ws_fanout_seconds").minus(h0)
	hubMax, err := metric(hub.api, "controltower_ws_fanout_max_seconds")
	if err != nil || hub1.count == 0 {
		hubMax = math.NaN() // a hub built before the metric existed
	}

	cl.close() // the reference below needs the open files
	lat := cl.latencies()
	p50, p99, pmax := benchinfo.Percentile(lat, 50), benchinfo.Percentile(lat, 99), benchinfo.Percentile(lat, 100)
	data, _ := cl.last.Load().(json.RawMessage)
	ref := runWSReference(b, n, int(want), data, cl.dialers)
	perClient := float64(rss1-rss0) / float64(n) / 1024
	b.ReportMetric(connected.Seconds(), "connect_s")
	b.ReportMetric(ms(p50), "fanout_p50_ms")
	b.ReportMetric(ms(p99), "fanout_p99_ms")
	b.ReportMetric(hub1.quantile(0.99, hubMax)*1000, "hub_write_p99_ms")
	b.ReportMetric(hubMax*1000, "hub_write_max_ms")
	b.ReportMetric(ms(ref.p99), "ref_fanout_p99_ms")
	b.ReportMetric(ref.writeP99*1000, "ref_write_p99_ms")
	b.ReportMetric(cpu1-cpu0, "hub_cpu_s")
	b.ReportMetric(perClient, "hub_KiB/client")
	b.ReportMetric(float64(fds1-fds0)/float64(n), "hub_fds/client")
	b.ReportMetric((g1-g0)/float64(n), "hub_goroutines/client")
	fmt.Printf("websocket %d clients on one hub: connected in %s; %d instance.status events to each (%d deliveries, every client exactly once); "+
		"fan-out latency (event time at the hub → decoded by a client) p50 %s, p99 %s, max %s (p99 per event: %s); "+
		"hub side (event time → frame written to the client's socket, over %d writes; p50/p99 interpolated in histogram buckets) p50 %.1f ms, p99 %.1f ms, max %.1f ms; "+
		"same-run reference (a bare gorilla/websocket broadcast server in its own process, same clients, same bytes, %d events) decoded p50 %s, p99 %s, max %s, written p50 %.1f ms, p99 %.1f ms, max %.1f ms; hub RSS %d MiB idle → %d MiB connected (%.1f KiB/client) → %d MiB after fan-out; hub CPU %.2f s during the stops, starts and fan-outs (its Node-RED runtime not counted); "+
		"%d → %d open files; %.0f → %.0f goroutines; load average %s\n",
		n, connected.Round(time.Millisecond), want, len(lat), p50.Round(time.Microsecond), p99.Round(time.Microsecond), pmax.Round(time.Microsecond), cl.perEvent(),
		int64(hub1.count), hub1.quantile(0.5, hubMax)*1000, hub1.quantile(0.99, hubMax)*1000, hubMax*1000,
		want, ref.p50.Round(time.Microsecond), ref.p99.Round(time.Microsecond), ref.max.Round(time.Microsecond), ref.writeP50*1000, ref.writeP99*1000, ref.writeMax*1000,
		rss0>>20, rss1>>20, perClient, rss2>>20, cpu1-cpu0, fds0, fds1, g0, g1, loadAvg())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// connect opens n streams, 10,000 per loopback source address, 200 at a
// time, and starts a reader for each.
func (cl *wsClients) connect(b *testing.B, api string, tokens []string, n int) {
	b.Helper()
	pool := &sync.Pool{}
	if cl.dialers == nil {
		cl.dialers = map[int]*websocket.Dialer{}
		for i := 0; i < n; i += 10000 {
			src := fmt.Sprintf("127.1.%d.1", i/10000)
			cl.dialers[i/10000] = &websocket.Dialer{
				NetDialContext:   dialerFrom(src).DialContext,
				HandshakeTimeout: time.Minute,
				ReadBufferSize:   1024, WriteBufferSize: 256, WriteBufferPool: pool,
			}
		}
	}
	dialers := cl.dialers
	var failed atomic.Int64
	var firstErr atomic.Value
	sem := make(chan struct{}, 200)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var s *apiclient.Events
			var err error
			for try := 0; try < 5; try++ { // a refused handshake under load is retried, and counted if it keeps failing
				if s, err = apiclient.Dial(ctx, api, tokens[i%len(tokens)], dialers[i/10000], "instance.status"); err == nil {
					break
				}
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				return
			}
			cl.streams[i] = s
			cl.wg.Go(func() { cl.read(i, s) })
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d clients could not connect; first error: %v", f, n, firstErr.Load())
	}
}

// read counts a client's instance.status events and their latency.
func (cl *wsClients) read(i int, s *apiclient.Events) {
	for {
		e, err := s.Next()
		if err != nil {
			return
		}
		if e.Type != "instance.status" {
			continue
		}
		cl.lat[i] = append(cl.lat[i], time.Since(e.Time))
		cl.counts[i].Add(1)
		if i == 0 {
			cl.last.Store(e.Data)
			var st struct {
				Status string `json:"status"`
			}
			_ = json.Unmarshal(e.Data, &st)
			cl.order = append(cl.order, st.Status)
			select {
			case cl.seen <- st.Status:
			default:
			}
		}
	}
}

// awaitStatus waits until client 0 has seen the probe reach status.
func (cl *wsClients) awaitStatus(b *testing.B, status string) {
	b.Helper()
	deadline := time.After(3 * time.Minute)
	for {
		select {
		case s := <-cl.seen:
			if s == status {
				return
			}
		case <-deadline:
			b.Fatalf("no instance.status %q within 3 minutes", status)
		}
	}
}

func (cl *wsClients) close() {
	for i, s := range cl.streams {
		if s != nil {
			_ = s.Close()
			cl.streams[i] = nil
		}
	}
	cl.wg.Wait()
}

// waitStatus polls the instance until its observed status is status.
func waitStatus(b *testing.B, h *hubProc, token, name, status string) {
	b.Helper()
	testenv.WaitFor(b, 3*time.Minute, name+" "+status, func() error {
		code, body, _, err := h.do("GET", "/api/instances/"+name, token, nil)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		var v instanceView
		_ = json.Unmarshal(body, &v)
		if v.Observed.Status != status {
			return fmt.Errorf("status %q", v.Observed.Status)
		}
		return nil
	})
}
