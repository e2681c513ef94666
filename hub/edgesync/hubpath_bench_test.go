package edgesync_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redforge/controltower/edge/syncer"
	"github.com/redforge/controltower/internal/benchinfo"
)

// BenchmarkVectorDrainHubPath is BenchmarkVectorDrain with the edge's
// work taken off the machine: the batch requests an edge's syncer sent
// during a first drain are recorded, the hub's tables emptied, and the
// recorded requests posted again, in order, two in flight as the syncer
// keeps them. What it measures is the hub and PostgreSQL alone (HTTP,
// decode, checks, the batch transaction and its COPY), as they run when
// the edge is its own device, as in production; held to raw COPY of as
// many vectors in the same run. It is a diagnostic with no goal of its
// own: next to BenchmarkVectorDrain's figure it tells what the edge,
// sharing this machine's cores with the hub and PostgreSQL there, costs.
func BenchmarkVectorDrainHubPath(b *testing.B) {
	n := envInt("REDFORGE_BENCH_VECTORS", 100000)
	for b.Loop() {
		drainHeldToRawCopy(b, n, "drain, hub and Postgres alone (the edge's recorded batches posted again)", 0, func(th *testHub, dsn string) float64 {
			rec := &recorder{next: http.DefaultTransport}
			var e *benchEdge
			onSide("edge", func() {
				e = openBenchEdge(b, th, []string{th.URL()}, &http.Client{Timeout: syncer.DefaultRequestTimeout, Transport: rec})
			})
			fillVectors(b, e, n)
			e.startSync()
			waitTotal(b, th, e.edgeID, int64(n), 20*time.Minute)
			e.stopSync()
			batches := rec.accepted(b)
			emptyEdgeTables(b, dsn)

			cpu := benchinfo.CPU()
			start := time.Now()
			onSide("edge", func() { replay(b, th.URL()+syncer.BatchPath, batches, syncer.DefaultMaxInFlight) })
			waitTotal(b, th, e.edgeID, int64(n), 20*time.Minute)
			el := time.Since(start)
			cpu = benchinfo.CPU() - cpu
			rate := float64(n) / el.Seconds()
			fmt.Printf("vector drain, hub path alone: the %d batches an edge sent (%d × 768-dim vectors) posted again, %d in flight, into emptied tables in %s: %.0f records/s, %.1f µs of CPU per record (hub and the posting client, not Postgres)\n",
				len(batches), n, syncer.DefaultMaxInFlight, el.Round(time.Millisecond), rate, float64(cpu.Microseconds())/float64(n))
			return rate
		})
	}
}

// recorder is a RoundTripper that keeps each batch request's headers and
// body and the answer's status.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	header http.Header
	body   []byte
	status int
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := r.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{header: req.Header.Clone(), body: body, status: resp.StatusCode})
	r.mu.Unlock()
	return resp, nil
}

// accepted returns the recorded requests the hub answered 200, in the
// order they were sent. A batch refused and sent again (the gap refusal
// a drain may start with) appears once, where it was accepted; as the
// syncer sends a stream's batches in seq order, and resends from the
// refused one, the accepted requests are in seq order.
func (r *recorder) accepted(b *testing.B) []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recorded
	for _, q := range r.reqs {
		if q.status == http.StatusOK {
			out = append(out, q)
		}
	}
	if len(out) == 0 {
		b.Fatal("no batch was accepted")
	}
	return out
}

// emptyEdgeTables empties the tables a vector drain writes, so that the
// same batches can be posted again (TRUNCATE: new, empty files, as a fresh
// database has).
func emptyEdgeTables(b *testing.B, dsn string) {
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "TRUNCATE vectors, edge_records, edge_watermarks"); err != nil {
		b.Fatal(err)
	}
}

// replay posts batches to url in order, window at a time, each when the
// one window places before it has been answered, as the syncer does. A
// batch the hub refuses (it reached the hub before its predecessor took
// its lock: a gap) is posted again once its predecessor is answered.
func replay(b *testing.B, url string, batches []recorded, window int) {
	client := &http.Client{Timeout: syncer.DefaultRequestTimeout}
	done := make([]chan struct{}, len(batches))
	for i := range done {
		done[i] = make(chan struct{})
	}
	post := func(q recorded) (int, error) {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(q.body))
		if err != nil {
			return 0, err
		}
		req.Header = q.header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, err
	}
	var wg sync.WaitGroup
	for i, q := range batches {
		if i >= window {
			<-done[i-window]
		}
		wg.Go(func() {
			defer close(done[i])
			status, err := post(q)
			if err == nil && status != http.StatusOK && i > 0 {
				<-done[i-1]
				status, err = post(q)
			}
			if err != nil || status != http.StatusOK {
				b.Errorf("batch %d of %d: status %d, %v", i+1, len(batches), status, err)
			}
		})
	}
	wg.Wait()
}
