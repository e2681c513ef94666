package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/redforge/controltower/internal/benchinfo"
)

// histogram is a Prometheus histogram as scraped: cumulative counts by
// upper bound.
type histogram struct {
	le    []float64
	cum   []float64
	count float64
}

// scrapeHistogram reads histogram name from the hub's /metrics.
func scrapeHistogram(b *testing.B, base, name string) histogram {
	b.Helper()
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var h histogram
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prefix := name + `_bucket{le="`
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			le, v, _ := strings.Cut(rest, `"} `)
			bound, err1 := strconv.ParseFloat(le, 64)
			if le == "+Inf" {
				bound, err1 = math.Inf(1), nil
			}
			n, err2 := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err1 != nil || err2 != nil {
				b.Fatalf("bad histogram line %q", line)
			}
			h.le, h.cum = append(h.le, bound), append(h.cum, n)
		} else if rest, ok := strings.CutPrefix(line, name+"_count "); ok {
			h.count, _ = strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return h // empty for a hub without it (one built before it existed)
}

// minus is h's observations since an earlier scrape a.
func (h histogram) minus(a histogram) histogram {
	d := histogram{le: h.le, cum: slices.Clone(h.cum), count: h.count - a.count}
	for i := range min(len(d.cum), len(a.cum)) {
		d.cum[i] -= a.cum[i]
	}
	return d
}

// quantile is the q-quantile (0..1), interpolated linearly within its
// bucket as Prometheus's histogram_quantile does, and at most upper (the
// largest observation, when known).
func (h histogram) quantile(q, upper float64) float64 {
	return min(h.interpolate(q), upper)
}

func (h histogram) interpolate(q float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	rank := q * h.count
	lower, below := 0.0, 0.0
	for i, c := range h.cum {
		if c >= rank {
			if math.IsInf(h.le[i], 1) {
				return lower
			}
			return lower + (h.le[i]-lower)*(rank-below)/(c-below)
		}
		lower, below = h.le[i], c
	}
	return lower
}

// wsReference is the same-run reference's figures.
type wsReference struct {
	p50, p99, max                time.Duration // event time → decoded by a client
	writeP50, writeP99, writeMax float64       // event time → written, seconds
}

// runWSReference starts the reference server (TestWSReferenceServer) in
// its own process, as the hub is, connects n clients with the same
// dialers and client, and broadcasts events events of data, one after
// the other once every client has the one before, as the hub's come.
func runWSReference(b *testing.B, n, events int, data json.RawMessage, dialers map[int]*websocket.Dialer) wsReference {
	b.Helper()
	if len(data) == 0 {
		data = json.RawMessage(`{}`)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestWSReferenceServer$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REDFORGE_WS_REFERENCE_SERVER=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	br := bufio.NewReader(out)
	line, err := br.ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		b.Fatalf("reference server: %q %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, br) }()
	base := "http://" + addr

	cl := newWSClients(n)
	cl.dialers = dialers
	defer cl.close()
	cl.connect(b, base, []string{"ref"}, n)
	for k := range events {
		resp, err := client.Post(base+"/publish", "application/json", bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		cl.awaitAll(b, int64(k+1))
	}
	resp, err := client.Get(base + "/stats")
	if err != nil {
		b.Fatal(err)
	}
	var w []time.Duration
	err = json.NewDecoder(resp.Body).Decode(&w)
	resp.Body.Close()
	if err != nil {
		b.Fatal(err)
	}
	cl.close()
	lat := cl.latencies()
	return wsReference{
		p50: benchinfo.Percentile(lat, 50), p99: benchinfo.Percentile(lat, 99), max: benchinfo.Percentile(lat, 100),
		writeP50: benchinfo.Percentile(w, 50).Seconds(), writeP99: benchinfo.Percentile(w, 99).Seconds(), writeMax: benchinfo.Percentile(w, 100).Seconds(),
	}
}

// TestWSReferenceServer is not a test: it is the reference server of
// BenchmarkWebSocketFanout, run in a process of its own when
// REDFORGE_WS_REFERENCE_SERVER is set. It is the least a WebSocket
// broadcast can do with the hub's library (gorilla/websocket) and the
// hub's connection settings: a reader and a writer goroutine per client,
// a buffered channel per client, the event encoded and framed once
// (PreparedMessage), a write deadline per write. No authentication, no
// filtering, no bus.
func TestWSReferenceServer(t *testing.T) {
	if os.Getenv("REDFORGE_WS_REFERENCE_SERVER") == "" {
		t.Skip("the WebSocket reference server of BenchmarkWebSocketFanout")
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	var (
		mu     sync.Mutex
		subs   = map[chan *websocket.PreparedMessage]struct{}{}
		writes []time.Duration
		pool   sync.Pool
	)
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 16 << 10, WriteBufferPool: &pool}
	type wire struct {
		Type string          `json:"type"`
		Time time.Time       `json:"time"`
		Data json.RawMessage `json:"data"`
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		c := make(chan *websocket.PreparedMessage, 256)
		mu.Lock()
		subs[c] = struct{}{}
		mu.Unlock()
		defer func() { mu.Lock(); delete(subs, c); mu.Unlock() }()
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					return
				}
			}
		}()
		_ = conn.WriteJSON(wire{Type: "hello", Time: time.Now().UTC(), Data: json.RawMessage(`{"user":"ref"}`)})
		for {
			select {
			case <-closed:
				return
			case pm := <-c:
				_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				if err := conn.WritePreparedMessage(pm); err != nil {
					return
				}
				d := time.Since(publishedAt(pm))
				mu.Lock()
				writes = append(writes, d)
				mu.Unlock()
			}
		}
	})
	mux.HandleFunc("/publish", func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		now := time.Now().UTC()
		b, _ := json.Marshal(wire{Type: "instance.status", Time: now, Data: data})
		pm, _ := websocket.NewPreparedMessage(websocket.TextMessage, append(b, '\n'))
		refTimes.Store(pm, now)
		mu.Lock()
		for c := range subs {
			select {
			case c <- pm:
			default:
			}
		}
		mu.Unlock()
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(writes)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	_ = (&http.Server{Handler: mux}).Serve(ln)
}

// refTimes is each reference message's publication time.
var refTimes sync.Map

func publishedAt(pm *websocket.PreparedMessage) time.Time {
	t, _ := refTimes.Load(pm)
	return t.(time.Time)
}
