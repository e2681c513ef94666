package edgesync_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/redforge/controltower/edge/broker"
	"github.com/redforge/controltower/edge/outbox"
	"github.com/redforge/controltower/edge/syncer"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/postgres"
	"github.com/redforge/controltower/internal/benchinfo"
	"github.com/redforge/controltower/internal/edgecheck"
	"github.com/redforge/controltower/internal/mqttbench"
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/router"
	"github.com/redforge/controltower/syncproto"
)

// benchEdge is an edge in-process: outbox, broker and (once started) syncer.
type benchEdge struct {
	o      *outbox.Outbox
	b      *broker.Broker
	edgeID string
	cancel context.CancelFunc
	done   chan struct{}
	s      *syncer.Syncer
}

// newBenchEdge opens an edge that syncs to th, through hubs (its router's
// targets, in preference order) when given.
func newBenchEdge(b *testing.B, th *testHub, hubs ...string) (e *benchEdge) {
	b.Helper()
	if len(hubs) == 0 {
		hubs = []string{th.URL()}
	}
	onSide("edge", func() { e = openBenchEdge(b, th, hubs, nil) })
	return e
}

// openBenchEdge opens the edge of newBenchEdge, its syncer posting with
// client (nil: the syncer's default).
func openBenchEdge(b *testing.B, th *testHub, hubs []string, client *http.Client) *benchEdge {
	o := outbox.New(filepath.Join(b.TempDir(), "outbox.db"))
	if err := o.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { o.Close() })
	// The broker refuses anonymous clients: admit the user publishN dials as.
	br := broker.New(broker.Config{Listen: "127.0.0.1:0", Outbox: o, Auth: broker.NewAuth(edgecheck.Users(b), "", nil)})
	if err := br.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	en, err := th.H.Sync.Enroll(context.Background(), &syncproto.EnrollRequest{Token: th.token(b)})
	if err != nil {
		b.Fatal(err)
	}
	e := &benchEdge{o: o, b: br, edgeID: en.EdgeId}
	rt, _ := router.New(router.Config{Targets: hubs})
	e.s = syncer.New(syncer.Config{EdgeID: en.EdgeId, Credential: func() string { return en.Credential }, Outbox: o,
		Streams: outbox.DefaultStreams(), Router: rt, MaxBatchRecords: 1000, IdleWait: 5 * time.Millisecond, Client: client})
	return e
}

func (e *benchEdge) startSync() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	onSide("edge", func() { go func() { e.s.Run(ctx); close(e.done) }() })
}

func (e *benchEdge) stopSync() {
	if e.cancel != nil {
		e.cancel()
		<-e.done
	}
}

func waitTotal(b *testing.B, th *testHub, edgeID string, n int64, timeout time.Duration) {
	b.Helper()
	testenv.WaitFor(b, timeout, "hub to hold the backlog", func() error {
		if got := th.total(edgeID); got != n {
			return fmt.Errorf("%d of %d", got, n)
		}
		return nil
	})
}

// BenchmarkVectorDrain measures the edge→hub drain of a backlog of
// REDFORGE_BENCH_VECTORS (default 100000) 768-dim float32 vectors already
// in the outbox, into Postgres: records/s and MB/s (payload bytes, and
// compressed bytes on the wire), held to raw COPY of as many vectors into
// the hub's vectors table, measured before and after the drain.
func BenchmarkVectorDrain(b *testing.B) {
	n := envInt("REDFORGE_BENCH_VECTORS", 100000)
	for b.Loop() {
		drainHeldToRawCopy(b, n, "drain of 768-dim vectors, edge outbox → hub → Postgres", 0.8, func(th *testHub, dsn string) float64 {
			e := newBenchEdge(b, th)
			payload, filled := fillVectors(b, e, n)
			stopWatch, stopProfile := pgWatch(b, dsn, n), profileSection(b, "drain")
			cpu := benchinfo.CPU()
			start := time.Now()
			e.startSync()
			waitTotal(b, th, e.edgeID, int64(n), 20*time.Minute)
			el := time.Since(start)
			cpu = benchinfo.CPU() - cpu
			stopProfile()
			e.stopSync()
			stopWatch()
			stats := e.s.Stats()
			st := stats.Streams[outbox.StreamVectors]
			for reason, n := range stats.Failures {
				if n > 0 {
					fmt.Printf("vector drain: %d sync failures (%s)\n", n, reason)
				}
			}
			rate := float64(n) / el.Seconds()
			vecMB := float64(n) * 768 * 4 / 1e6
			fmt.Printf("vector drain: %d x 768-dim float32 vectors (backlog filled in %s) drained edge→hub into Postgres in %s: %.0f records/s, %.1f MB/s of packed vectors, %.1f MB/s of JSON payload, %.1f MB/s on the wire (%d batches), %.1f µs of CPU per record (edge and hub, not Postgres)\n",
				n, filled.Round(time.Millisecond), el.Round(time.Millisecond), rate, vecMB/el.Seconds(),
				float64(payload)/1e6/el.Seconds(), float64(st.BytesSent)/1e6/el.Seconds(), st.BatchesSent, float64(cpu.Microseconds())/float64(n))
			return rate
		})
	}
}

// drainHeldToRawCopy runs drain (which returns its records/s) against a
// hub on a fresh database, and reports its figure, name, against the
// reference the drains are held to: the same number of vectors COPYed
// straight into the hub's vectors table of a fresh database, before and
// after the drain (the mean, so that a machine getting busier or quieter
// during the run favours neither). Each phase's database is dropped once
// measured. goal 0: a diagnostic.
func drainHeldToRawCopy(b *testing.B, n int, name string, goal float64, drain func(th *testHub, dsn string) float64) {
	rawBefore := rawCopyVectors(b, n, 768, 1000)
	dsn := testenv.Postgres(b)
	th := startBenchHub(b, dsn)
	rate := drain(th, dsn)
	th.close()
	dropDatabase(b, dsn)
	raw := (rawBefore + rawCopyVectors(b, n, 768, 1000)) / 2
	b.ReportMetric(rate, "records/s")
	b.ReportMetric(raw, "raw-copy-records/s")
	fmt.Printf("raw COPY reference: %d x 768-dim packed vectors COPYed into the hub's vectors table of a fresh database, 1000 rows a transaction: %.0f records/s; the drain ran at %.0f %% of it\n",
		n, raw, 100*rate/raw)
	benchinfo.Report(b, benchinfo.Figure{Name: name, Unit: "records/s",
		Value: rate, RefName: "raw COPY into the hub's vectors table", Reference: raw, Goal: goal})
}

// fillVectors appends n 768-dim vectors to e's outbox from 4 writers, as
// the broker stores their JSON publishes, and returns the bytes of JSON
// they stand for and how long the fill took.
func fillVectors(b *testing.B, e *benchEdge, n int) (payload int64, took time.Duration) {
	var payloadBytes atomic.Int64
	var wg sync.WaitGroup
	fill := time.Now()
	for w := range 4 {
		wg.Go(func() {
			var sb strings.Builder
			// Embedding-like values: uniform in (-1, 1), full float32
			// precision, so neither the JSON nor the packed form is
			// unrealistically compressible on the wire.
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			waits := make([]func() (int64, error), 0, 256)
			for i := w; i < n; i += 4 {
				sb.Reset()
				fmt.Fprintf(&sb, `{"id":"v%d","vector":[`, i)
				for d := range 768 {
					if d > 0 {
						sb.WriteByte(',')
					}
					sb.WriteString(strconv.FormatFloat(float64(rng.Float32()*2-1), 'g', -1, 32))
				}
				fmt.Fprintf(&sb, `],"metadata":{"i":%d}}`, i)
				p := []byte(sb.String())
				payloadBytes.Add(int64(len(p)))
				rec, err := syncproto.VectorRecordFromJSON(nil, p) // what the broker stores for the publish
				if err != nil {
					b.Error(err)
					return
				}
				waits = append(waits, e.o.AppendAsync(context.Background(), outbox.StreamVectors, rec, time.Now()))
				if len(waits) == cap(waits) {
					for _, wt := range waits {
						if _, err := wt(); err != nil {
							b.Error(err)
							return
						}
					}
					waits = waits[:0]
				}
			}
			for _, wt := range waits {
				if _, err := wt(); err != nil {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
	return payloadBytes.Load(), time.Since(fill)
}

// BenchmarkPeerMosquittoBridge sends the same REDFORGE_BENCH_MESSAGES
// (default 100000) 1 KiB messages from 4 publishers (QoS 1, a window of
// 256 each) through (1) a Mosquitto bridge: an edge Mosquitto with
// persistence and max_queued_messages 0, bridged at QoS 1 to a hub
// Mosquitto, and a Go subscriber that writes to Postgres with COPY; and
// (2) our path: the redforge edge broker and outbox, the syncer, the hub
// and its Postgres store. Each figure is publish start → the last record
// in Postgres. The bridge runs before and after ours, and our figure is
// held to the mean of the two, so that a machine getting busier or
// quieter during the run does not favour either.
func BenchmarkPeerMosquittoBridge(b *testing.B) {
	n := envInt("REDFORGE_BENCH_MESSAGES", 100000)
	payload := func(i int) string {
		head := fmt.Sprintf(`{"name":"m","value":%d,"labels":{"pad":"`, i)
		return head + strings.Repeat("x", 1024-len(head)-4) + `"}}`
	}
	for b.Loop() {
		before := runBridge(b, n, payload)
		ours := runOurs(b, n, payload)
		after := runBridge(b, n, payload)
		bridge := (before + after) / 2
		b.ReportMetric(bridge, "bridge-msg/s")
		b.ReportMetric(ours, "ours-msg/s")
		benchinfo.Report(b, benchinfo.Figure{Name: "end to end, 1 KiB records, 4 QoS 1 publishers → Postgres", Unit: "msg/s",
			Value: ours, RefName: "Mosquitto bridge (persistence, QoS 1, COPY subscriber)", Reference: bridge, Goal: 1.2})
	}
}

// runBridge sends n messages through the Mosquitto bridge and returns msg/s.
func runBridge(b *testing.B, n int, payload func(int) string) float64 {
	dsn := testenv.Postgres(b)
	hubMQ := testenv.MosquittoWithConfig(b, func(string) string { return "persistence false\nmax_queued_messages 0\n" })
	edgeMQ := testenv.MosquittoWithConfig(b, func(dir string) string {
		return fmt.Sprintf("persistence true\npersistence_location %s/\nautosave_interval 1\nmax_queued_messages 0\n"+
			"connection hub\naddress %s\ntopic redforge/v1/# out 1\ncleansession false\n", dir, strings.TrimPrefix(hubMQ, "tcp://"))
	})
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `CREATE TABLE bridge_records (id bigserial primary key, topic text not null, payload bytea not null)`); err != nil {
		b.Fatal(err)
	}
	rows := make(chan []any, 65536)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(hubMQ).SetClientID("bridge-sub").SetCleanSession(false).SetOrderMatters(false))
	var tok paho.Token
	onSide("bridge", func() { tok = sub.Connect() }) // its goroutines carry the label
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	defer sub.Disconnect(0)
	if tok := sub.Subscribe("redforge/v1/#", 1, func(_ paho.Client, m paho.Message) {
		rows <- []any{m.Topic(), m.Payload()}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatal(tok.Error())
	}
	var stored atomic.Int64
	copyDone := make(chan struct{})
	copyBridge := func() {
		defer close(copyDone)
		batch := make([][]any, 0, 2000)
		flush := func() {
			if len(batch) == 0 {
				return
			}
			if _, err := conn.CopyFrom(context.Background(), pgx.Identifier{"bridge_records"}, []string{"topic", "payload"}, pgx.CopyFromRows(batch)); err != nil {
				b.Error(err)
			}
			stored.Add(int64(len(batch)))
			batch = batch[:0]
		}
		for stored.Load()+int64(len(batch)) < int64(n) {
			select {
			case r := <-rows:
				batch = append(batch, r)
				if len(batch) == cap(batch) {
					flush()
				}
			case <-time.After(20 * time.Millisecond):
				flush()
			}
		}
		flush()
	}
	onSide("bridge", func() { go copyBridge() })
	time.Sleep(500 * time.Millisecond) // let the bridge connect
	start := time.Now()
	acked := publishN(b, strings.TrimPrefix(edgeMQ, "tcp://"), n, payload)
	published := time.Since(start)
	select {
	case <-copyDone:
	case <-time.After(5 * time.Minute):
		b.Fatalf("bridge: %d of %d stored after 5 minutes", stored.Load(), n)
	}
	el := time.Since(start)
	fmt.Printf("1 KiB x %d, 4 QoS 1 publishers → Postgres: mosquitto bridge (persistence, max_queued_messages 0, QoS 1, COPY subscriber): %d PUBACKed in %s, all %d in Postgres after %s: %.0f msg/s end to end\n",
		n, acked, published.Round(time.Millisecond), stored.Load(), el.Round(time.Millisecond), float64(n)/el.Seconds())
	return float64(n) / el.Seconds()
}

// runOurs sends n messages through our path and returns msg/s.
func runOurs(b *testing.B, n int, payload func(int) string) float64 {
	dsn := testenv.Postgres(b)
	th := startBenchHub(b, dsn)
	defer th.close()
	e := newBenchEdge(b, th)
	e.startSync()
	stopWatch, stopProfile := pgWatch(b, dsn, n), profileSection(b, "e2e")
	cpu := benchinfo.CPU()
	start := time.Now()
	acked := publishN(b, e.b.Addr().String(), n, payload)
	published := time.Since(start)
	waitTotal(b, th, e.edgeID, int64(n), 10*time.Minute)
	el := time.Since(start)
	cpu = benchinfo.CPU() - cpu
	stopProfile()
	e.stopSync()
	stopWatch()
	recs, _ := th.H.Store.ListEdgeRecords(context.Background(), e.edgeID, outbox.StreamMetrics, 0, 1)
	if len(recs) != 1 || store.Checksum(recs[0].Payload) != recs[0].Checksum {
		b.Fatal("our path: first record missing or damaged")
	}
	fmt.Printf("1 KiB x %d, 4 QoS 1 publishers → Postgres: redforge edge → hub (PUBACK after SQLite commit, exactly-once sync): %d PUBACKed in %s, all %d in Postgres after %s: %.0f msg/s end to end, %.1f µs of CPU per record (edge, hub and publishers, not Postgres)\n",
		n, acked, published.Round(time.Millisecond), n, el.Round(time.Millisecond), float64(n)/el.Seconds(), float64(cpu.Microseconds())/float64(n))
	return float64(n) / el.Seconds()
}

// publishN publishes n messages from 4 QoS 1 publishers (mqttbench, a
// window of 256 each) to the metrics topic and returns how many were
// PUBACKed.
func publishN(b *testing.B, addr string, n int, payload func(int) string) int {
	var total atomic.Int64
	var wg sync.WaitGroup
	for p := range 4 {
		onSide("client", func() {
			wg.Go(func() {
				pub, err := mqttbench.DialAuth(addr, fmt.Sprintf("bpub-%d-%d", p, time.Now().UnixNano()), edgecheck.MQTTUser, edgecheck.MQTTPassword, 256)
				if err != nil {
					b.Error(err)
					return
				}
				acked, err := pub.Run("redforge/v1/metrics", p, n, 4, func(i int) []byte { return []byte(payload(i)) })
				if err != nil {
					b.Error(err)
				}
				total.Add(int64(acked))
			})
		})
	}
	wg.Wait()
	return int(total.Load())
}

// rawCopyVectors COPYs n random dim-float32 vectors, batch rows a
// transaction (pgx CopyFrom), into the vectors table of a fresh database
// migrated by the hub's Postgres store, and returns rows per second. Only
// the COPYs are timed.
func rawCopyVectors(b *testing.B, n, dim, batch int) float64 {
	dsn := testenv.Postgres(b)
	db := postgres.New(dsn)
	if err := db.Open(context.Background()); err != nil {
		b.Fatal(err)
	}
	db.Close()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	rng := rand.New(rand.NewPCG(3, 4))
	rows := make([][]any, n)
	now := time.Now()
	for i := range rows {
		v := make([]float32, dim)
		for j := range v {
			v[j] = rng.Float32()*2 - 1
		}
		rows[i] = []any{"raw-edge", int64(i + 1), fmt.Sprintf("v%d", i), dim, syncproto.PackFloat32(v), fmt.Sprintf(`{"i":%d}`, i), now, int64(i)}
	}
	cols := []string{"edge_id", "seq", "vector_id", "dim", "vector", "metadata", "time", "checksum"}
	serverCPU := func() time.Duration { return 0 }
	if os.Getenv("REDFORGE_BENCH_PGSTAT") != "" {
		serverCPU = pgServerCPU(b, conn)
	}
	cpu := serverCPU()
	start := time.Now()
	for i := 0; i < n; i += batch {
		if _, err := conn.CopyFrom(context.Background(), pgx.Identifier{"vectors"}, cols, pgx.CopyFromRows(rows[i:min(i+batch, n)])); err != nil {
			b.Fatal(err)
		}
	}
	rate := float64(n) / time.Since(start).Seconds()
	if cpu := serverCPU() - cpu; cpu > 0 {
		printServerCPU("raw COPY: ", cpu, n)
	}
	conn.Close(context.Background())
	dropDatabase(b, dsn)
	return rate
}

// dropDatabase drops the database of dsn (made by testenv.Postgres) once
// its phase is measured: left in place, autovacuum vacuumed and analyzed
// its 100,000 fresh rows (about 0.4 s of CPU and 300 MB read) during the
// next phase, the drain after the first raw COPY and the second raw COPY
// after the drain.
func dropDatabase(tb testing.TB, dsn string) {
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), testenv.PostgresAdminDSN(tb))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()+" WITH (FORCE)"); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkSilentHubSwitch measures how long an edge takes to move its
// sync to the next hub when the hub it syncs to goes silent: the edge's
// two hubs are two toxiproxy links, A (preferred) and B, to one real hub;
// records are appended at a steady rate; link A is blackholed (every byte
// dropped, connections left open, as when a host dies). Figure: switch_ms,
// from the blackhole to the first batch acked through B. Each run ends
// with every appended record on the hub exactly once.
func BenchmarkSilentHubSwitch(b *testing.B) {
	for b.Loop() {
		th := startBenchHub(b, testenv.Postgres(b))
		linkA, linkB := testenv.Proxy(b, th.cfg.Listen), testenv.Proxy(b, th.cfg.Listen)
		hubA, hubB := "http://"+linkA.Addr(), "http://"+linkB.Addr()
		e := newBenchEdge(b, th, hubA, hubB)
		stop := make(chan struct{})
		var appended atomic.Int64
		var producer sync.WaitGroup
		producer.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.o.Append(context.Background(), outbox.StreamMetrics, fmt.Appendf(nil, `{"name":"m","value":%d}`, i), time.Now()); err != nil {
					b.Error(err)
					return
				}
				appended.Add(1)
				time.Sleep(time.Millisecond) // the producer's pace, about 1000 records/s
			}
		})
		e.startSync()
		testenv.WaitFor(b, 30*time.Second, "a batch acked through hub A", func() error {
			if h := e.s.Stats().Hub; h != hubA {
				return fmt.Errorf("last hub %q", h)
			}
			return nil
		})
		restore := linkA.Blackhole()
		silent := time.Now()
		var switched time.Duration
		testenv.WaitFor(b, 3*time.Minute, "a batch acked through hub B", func() error {
			if h := e.s.Stats().Hub; h != hubB {
				return fmt.Errorf("last hub %q", h)
			}
			switched = time.Since(silent)
			return nil
		})
		close(stop)
		producer.Wait()
		waitTotal(b, th, e.edgeID, appended.Load(), time.Minute)
		e.stopSync()
		restore()
		b.ReportMetric(float64(switched.Milliseconds()), "switch_ms")
		fmt.Printf("silent hub switch: hub A blackholed; first batch acked through hub B %s later (syncer progress timeout %s); %d records on the hub exactly once\n",
			switched.Round(time.Millisecond), syncer.DefaultProgressTimeout, appended.Load())
	}
}
