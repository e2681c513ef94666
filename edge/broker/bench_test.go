package broker_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/edge/broker"
	"github.com/redforge/controltower/edge/outbox"
	"github.com/redforge/controltower/internal/benchinfo"
	"github.com/redforge/controltower/internal/mqttbench"
)

// BenchmarkIngestQoS1 measures durable QoS 1 ingest on the edge: 4
// publishers (mqttbench) send 1 KiB JSON payloads (REDFORGE_BENCH_INGEST records in
// all, default 100000) keeping a sliding window of unacknowledged
// publishes each, once with 256 and once with 1024 in flight (QoS 1 puts
// no bound on it in 3.1.1; MQTT 5's default Receive Maximum is 65,535);
// every PUBACK comes after the record's SQLite (WAL, synchronous=FULL)
// commit. It prints records/s and records per commit for each window, and
// their share of SQLite's batched-insert ceiling on the same disk measured
// in the same run, before and after (sqliteCeiling; goal ≥ 50 %).
func BenchmarkIngestQoS1(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("REDFORGE_BENCH_INGEST")); err == nil && v > 0 {
		n = v
	}
	for _, window := range []int{256, 1024} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) { benchIngest(b, n, window) })
	}
}

func benchIngest(b *testing.B, n, window int) {
	for b.Loop() {
		ceilingBefore := sqliteCeiling(b, n, 1024)
		o := outbox.New(filepath.Join(b.TempDir(), "outbox.db"))
		if err := o.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		br := broker.New(broker.Config{Listen: "127.0.0.1:0", Outbox: o, Auth: broker.NewAuth(testUsers, testAdmin, nil)})
		if err := br.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		payload := `{"name":"m","value":1,"labels":{"pad":"` + strings.Repeat("x", 1024-40) + `"}}`
		cpu := benchinfo.CPU()
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		acked := 0
		for p := range 4 {
			wg.Go(func() {
				pub, err := mqttbench.DialAuth(br.Addr().String(), fmt.Sprintf("bench-%d", p), testUser, testPassword, window)
				if err != nil {
					b.Error(err)
					return
				}
				ok, err := pub.Run("redforge/v1/metrics", 0, n/4, 1, func(int) []byte { return []byte(payload) })
				if err != nil {
					b.Error(err)
				}
				mu.Lock()
				acked += ok
				mu.Unlock()
			})
		}
		wg.Wait()
		el := time.Since(start)
		cpu = benchinfo.CPU() - cpu
		st, _ := o.Stats(context.Background())
		commits := o.Commits()
		br.Close()
		o.Close()
		if acked != n || st[outbox.StreamMetrics].Depth != int64(n) {
			b.Fatalf("%d PUBACKed, %d stored, want %d", acked, st[outbox.StreamMetrics].Depth, n)
		}
		rate := float64(n) / el.Seconds()
		b.ReportMetric(rate, "records/s")
		// The ceiling before and after, the mean: a machine getting busier
		// or quieter during the run favours neither.
		ceiling := (ceilingBefore + sqliteCeiling(b, n, 1024)) / 2
		fmt.Printf("edge ingest: %d x 1 KiB QoS 1 records from 4 publishers, %d in flight each, PUBACK after commit: %s, %.0f records/s, %.1f MB/s, %.0f records per commit, %.1f µs of CPU per record (edge and publishers)\n",
			n, window, el.Round(time.Millisecond), rate, rate*1024/1e6, float64(n)/float64(max(commits, 1)), float64(cpu.Microseconds())/float64(n))
		benchinfo.Report(b, benchinfo.Figure{Name: fmt.Sprintf("edge ingest, 1 KiB QoS 1 records, %d in flight per publisher", window), Unit: "records/s",
			Value: rate, RefName: "SQLite batched-insert ceiling (same disk)", Reference: ceiling, Goal: 0.5})
	}
}

// sqliteCeiling inserts n rows of size-byte payloads into a fresh SQLite
// file on the benchmark's disk, with the outbox's driver and durability
// (modernc.org/sqlite, WAL, synchronous=FULL) and its row shape (a rowid
// table of key, arrival, checksum, payload), 1000 rows a transaction by
// prepared 32-row INSERTs, and returns rows/s: what SQLite itself takes
// when nothing else is in the way, the ceiling of a durable queue on it.
func sqliteCeiling(b *testing.B, n, size int) float64 {
	b.Helper()
	db, err := sql.Open("sqlite", filepath.Join(b.TempDir(), "ceiling.db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE records (key INTEGER PRIMARY KEY, arrived INTEGER NOT NULL, checksum INTEGER NOT NULL, payload BLOB NOT NULL) STRICT`); err != nil {
		b.Fatal(err)
	}
	const perTx, perStmt = 1000, 32
	payload := []byte(strings.Repeat("x", size))
	cpu := benchinfo.CPU()
	stmt := "INSERT INTO records (key, arrived, checksum, payload) VALUES (?, ?, ?, ?)" + strings.Repeat(", (?, ?, ?, ?)", perStmt-1)
	args := make([]any, 0, 4*perStmt)
	start := time.Now()
	done := 0
	for done < n {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		ins, err := tx.Prepare(stmt)
		if err != nil {
			b.Fatal(err)
		}
		for end := min(done+perTx, n); done+perStmt <= end; done += perStmt {
			args = args[:0]
			for i := range perStmt {
				args = append(args, done+i+1, time.Now().UnixNano(), int64(outbox.Checksum(payload)), payload)
			}
			if _, err := ins.Exec(args...); err != nil {
				b.Fatal(err)
			}
		}
		ins.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		if n-done < perStmt {
			break // the last partial statement's rows are not worth a second statement shape
		}
	}
	el := time.Since(start)
	fmt.Printf("SQLite batched-insert ceiling: %d rows of %d bytes in %s: %.0f rows/s, %.1f µs of CPU per row\n",
		done, size, el.Round(time.Millisecond), float64(done)/el.Seconds(), float64((benchinfo.CPU()-cpu).Microseconds())/float64(done))
	return float64(done) / el.Seconds()
}
