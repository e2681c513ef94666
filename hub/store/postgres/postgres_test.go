package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/postgres"
	"github.com/redforge/controltower/hub/store/storetest"
	"github.com/redforge/controltower/internal/testenv"
)

// MustOpen opens a store on a fresh database and closes it at the end of
// the test; configure, if not nil, runs between New and Open.
func MustOpen(tb testing.TB, configure func(*postgres.DB)) *postgres.DB {
	tb.Helper()
	db := postgres.New(testenv.Postgres(tb))
	if configure != nil {
		configure(db)
	}
	if err := db.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return MustOpen(t, nil) })
}

// TestContractAllCopy runs the suite with every bulk insert done by COPY
// (the default suite uses both paths: small writes batch INSERTs).
func TestContractAllCopy(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return MustOpen(t, func(db *postgres.DB) { db.CopyThreshold = 1 })
	})
}

func TestReopen(t *testing.T) {
	storetest.RunReopen(t, testenvDSN, func(ctx context.Context, dsn string) (store.Store, error) {
		db := postgres.New(dsn)
		return db, db.Open(ctx)
	})
}

func testenvDSN(t *testing.T) string { return testenv.Postgres(t) }

func TestNewerSchemaRefused(t *testing.T) {
	dsn := testenv.Postgres(t)
	db := postgres.New(dsn)
	if err := db.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	v, err := db.SchemaVersion(t.Context())
	if err != nil || v < 1 {
		t.Fatalf("SchemaVersion = %d, %v", v, err)
	}
	db.Close()

	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future.sql', now())", v+1); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())

	db = postgres.New(dsn)
	err = db.Open(t.Context())
	if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "upgrade") {
		t.Fatalf("Open of a newer schema = %v, want ErrSchemaTooNew saying how to fix it", err)
	}
}

// within fails the test if fn takes longer than d.
func within(t *testing.T, d time.Duration, what string, fn func() error) error {
	t.Helper()
	start := time.Now()
	err := fn()
	if took := time.Since(start); took > d {
		t.Fatalf("%s took %v, want at most %v (err %v)", what, took, d, err)
	}
	return err
}

// closedPort returns a loopback address on which nothing listens.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestOpenUnreachableFailsPromptly(t *testing.T) {
	db := postgres.New("postgres://postgres@" + closedPort(t) + "/postgres?sslmode=disable")
	err := within(t, 3*time.Second, "Open on a closed port", func() error { return db.Open(t.Context()) })
	if err == nil {
		db.Close()
		t.Fatal("Open on a closed port succeeded")
	}
	if err := within(t, 3*time.Second, "Ping of an unopened store", func() error { return db.Ping(t.Context()) }); err == nil {
		t.Fatal("Ping of a store whose Open failed succeeded")
	}
}

// proxied opens a store on a fresh database through a TCP link the test
// can cut.
func proxied(t *testing.T) (*postgres.DB, *testenv.Link) {
	dsn := testenv.Postgres(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Fatalf("testenv DSN %q is not a URL: %v", dsn, err)
	}
	link := testenv.Proxy(t, u.Host)
	u.Host = link.Addr()
	db := postgres.New(u.String())
	if err := db.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, link
}

func TestPingFailsPromptlyWhenServerUnreachableAndRecovers(t *testing.T) {
	db, link := proxied(t)
	if err := db.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	link.Cut()
	for i := range 3 { // every call fails, none hangs
		if err := within(t, 3*time.Second, "Ping with the link cut", func() error { return db.Ping(t.Context()) }); err == nil {
			t.Fatalf("Ping %d succeeded with the link cut", i)
		}
	}
	link.Restore()
	pollPing(t, db)
}

func TestPingFailsPromptlyWhenServerHangs(t *testing.T) {
	db, link := proxied(t)
	if err := db.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	remove := link.Latency(10_000, 0) // a black hole, as far as Ping can tell
	if err := within(t, 3*time.Second, "Ping through a hung link", func() error { return db.Ping(t.Context()) }); err == nil {
		t.Fatal("Ping succeeded through a 10 s latency")
	}
	remove()
	pollPing(t, db)
}

// pollPing waits, up to 10 s, for Ping to succeed again.
func pollPing(t *testing.T, db *postgres.DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = db.Ping(t.Context()); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond) // poll interval, not synchronisation
	}
	t.Fatalf("Ping did not recover within 10 s: %v", err)
}

func TestAuditLogAppendOnly(t *testing.T) {
	dsn := testenv.Postgres(t)
	db := postgres.New(dsn)
	if err := db.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := store.AuditRecord{Action: "LOGIN"}
	if err := db.AppendAudit(t.Context(), &rec, storetest.Hash); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, stmt := range []string{"UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"} {
		if _, err := conn.Exec(t.Context(), stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want refused as append-only", stmt, err)
		}
	}
}

// TestIngestInsertsBeforeWaitingForTheStream: a batch that continues its
// stream is inserted before its transaction waits for the stream's
// watermark row, so an edge's next batch is written while the one before
// it still holds the row (the syncer keeps two in flight); it commits once
// the row is free.
func TestIngestInsertsBeforeWaitingForTheStream(t *testing.T) {
	dsn := testenv.Postgres(t)
	db := postgres.New(dsn)
	if err := db.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	batch := func(first int64) store.Batch {
		b := store.Batch{EdgeID: "e", Stream: "audit", FirstSeq: first}
		for i := range 3 {
			p := []byte(`{"i":` + strconv.Itoa(int(first)+i) + `}`)
			b.Records = append(b.Records, store.Record{Seq: first + int64(i), Time: time.Now(), Payload: p, Checksum: store.Checksum(p)})
		}
		return b
	}
	if _, err := db.IngestBatch(t.Context(), batch(1)); err != nil {
		t.Fatal(err)
	}
	holder, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	tx, err := holder.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "SELECT seq FROM edge_watermarks WHERE edge_id = 'e' AND stream = 'audit' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		wm, err := db.IngestBatch(context.Background(), batch(4))
		if err == nil && wm != 6 {
			err = fmt.Errorf("watermark %d, want 6", wm)
		}
		done <- err
	}()
	testenv.WaitFor(t, 10*time.Second, "the next batch written and waiting for the stream", func() error {
		var n int
		err := holder.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
			WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.wait_event_type = 'Lock'
			AND l.relation = 'edge_records'::regclass AND l.mode = 'RowExclusiveLock' AND l.granted`).Scan(&n)
		if err == nil && n != 1 {
			err = fmt.Errorf("%d backends wait with rows written", n)
		}
		return err
	})
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if wm, _ := db.Watermarks(t.Context(), "e"); wm["audit"].Seq != 6 || wm["audit"].Count != 6 {
		t.Fatalf("watermark %+v, want seq 6 count 6", wm["audit"])
	}
}

// TestIngestPipelinedBatchesKeepTheirOrder: a small batch sent while the
// big one before it is still being written (the syncer keeps two in
// flight) is written at once but takes the watermark only after its
// predecessor commits, instead of reaching it first and being refused as
// a gap.
func TestIngestPipelinedBatchesKeepTheirOrder(t *testing.T) {
	dsn := testenv.Postgres(t)
	db := postgres.New(dsn)
	if err := db.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	batch := func(first int64, n int) store.Batch {
		b := store.Batch{EdgeID: "e", Stream: "metrics", FirstSeq: first}
		for i := range n {
			p := []byte(`{"i":` + strconv.Itoa(int(first)+i) + `,"pad":"` + strings.Repeat("x", 2000) + `"}`)
			b.Records = append(b.Records, store.Record{Seq: first + int64(i), Time: time.Now(), Payload: p, Checksum: store.Checksum(p)})
		}
		return b
	}
	watch, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(context.Background())
	for round := range 3 {
		first := int64(1 + round*20010)
		big, small := batch(first, 20000), batch(first+20000, 10)
		errs := make(chan error, 2)
		go func() { _, err := db.IngestBatch(context.Background(), big); errs <- err }()
		testenv.WaitFor(t, 20*time.Second, "the big batch's COPY", func() error {
			var n int
			err := watch.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
				AND state = 'active' AND query ILIKE 'copy%edge_records%'`).Scan(&n)
			if err == nil && n == 0 {
				err = errors.New("not copying yet")
			}
			return err
		})
		go func() { _, err := db.IngestBatch(context.Background(), small); errs <- err }()
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
	if wm, _ := db.Watermarks(t.Context(), "e"); wm["metrics"].Seq != 3*20010 || wm["metrics"].Count != 3*20010 {
		t.Fatalf("watermark %+v, want %d records", wm["metrics"], 3*20010)
	}
}

// TestWriteRetriedThroughOutage: with the server cut off, Ping reports the
// store degraded (with the reason) for RetryFor, a write is held and
// retried for RetryFor and then fails with store.ErrUnavailable saying
// nothing was committed (and wrote nothing); a write begun during the
// outage commits once, when the server is back; the outage reaches the
// Observer.
func TestWriteRetriedThroughOutage(t *testing.T) {
	dsn := testenv.Postgres(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	link := testenv.Proxy(t, u.Host)
	u.Host = link.Addr()
	obs := &outageLog{}
	db := postgres.New(u.String())
	db.RetryFor, db.Observer = 1500*time.Millisecond, obs
	if err := db.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cp := store.Checkpoint{WorkflowID: "w", InstanceID: "i", Step: "1", Time: time.Now()}
	if err := db.PutCheckpoint(t.Context(), cp); err != nil {
		t.Fatal(err)
	}
	link.Cut()
	var d *store.DegradedError
	if err := db.Ping(t.Context()); !errors.As(err, &d) || d.Reason == "" {
		t.Fatalf("Ping with the server cut off = %v, want a DegradedError with the reason", err)
	}
	start := time.Now()
	err = db.PutCheckpoint(t.Context(), cp)
	var ue *store.UnavailableError
	if !errors.Is(err, store.ErrUnavailable) || !errors.As(err, &ue) || ue.OutcomeUnknown || !strings.Contains(err.Error(), "nothing was committed") {
		t.Fatalf("write with the server cut off = %v, want ErrUnavailable, nothing committed", err)
	}
	if took := time.Since(start); took < time.Second || took > 5*time.Second {
		t.Fatalf("the write failed after %v, want about RetryFor (1.5 s)", took)
	}
	if err := db.Ping(t.Context()); err == nil || errors.As(err, &d) {
		t.Fatalf("Ping after RetryFor = %v, want a plain failure", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- db.PutCheckpoint(context.Background(), store.Checkpoint{WorkflowID: "w", InstanceID: "i", Step: "2", Time: time.Now()})
	}()
	link.Restore()
	if err := <-done; err != nil {
		t.Fatalf("write across the restore: %v", err)
	}
	pollPing(t, db)
	cps, err := db.ListCheckpoints(t.Context(), "w", 10)
	if err != nil {
		t.Fatal(err)
	}
	steps := map[string]int{}
	for _, c := range cps {
		steps[c.Step]++
	}
	if steps["1"] != 1 || steps["2"] != 1 {
		t.Fatalf("checkpoints by step %v: the failed write must have written nothing, the others once", steps)
	}
	if obs.started() == 0 || obs.ended() == 0 {
		t.Fatalf("outage not observed: started %d, ended %d", obs.started(), obs.ended())
	}
}

type outageLog struct {
	mu         sync.Mutex
	start, end int
}

func (o *outageLog) OutageStarted(error) { o.mu.Lock(); o.start++; o.mu.Unlock() }
func (o *outageLog) OutageEnded(time.Duration, error) {
	o.mu.Lock()
	o.end++
	o.mu.Unlock()
}
func (o *outageLog) started() int { o.mu.Lock(); defer o.mu.Unlock(); return o.start }
func (o *outageLog) ended() int   { o.mu.Lock(); defer o.mu.Unlock(); return o.end }

// TestLostCommitAnswerWritesOnce: a COMMIT whose answer is lost after the
// server committed (the transaction waits for a synchronous standby that
// never comes, then its backend is terminated: committed locally, the
// client sees 57P01) is settled by the commit token: the write returns
// success and is stored once, not run again. Without the token the
// retry would store the checkpoint twice.
func TestLostCommitAnswerWritesOnce(t *testing.T) {
	srv := testenv.PrivatePostgres(t, "")
	obs := &outageLog{}
	db := postgres.New(srv.DSN)
	db.RetryFor, db.Observer = 20*time.Second, obs
	if err := db.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	admin, err := pgx.Connect(t.Context(), srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	exec := func(sql string) {
		t.Helper()
		if _, err := admin.Exec(t.Context(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("ALTER SYSTEM SET synchronous_standby_names = 'nobody'")
	exec("SELECT pg_reload_conf()")
	// pg_reload_conf only signals the postmaster: once a new backend sees
	// the setting, the postmaster has reloaded and signalled every backend,
	// and the store's idle connections apply it before their next command.
	testenv.WaitFor(t, 30*time.Second, "the reload applied", func() error {
		c, err := pgx.Connect(t.Context(), srv.DSN)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		var v string
		if err := c.QueryRow(t.Context(), "SHOW synchronous_standby_names").Scan(&v); err != nil {
			return err
		}
		if v != "nobody" {
			return fmt.Errorf("synchronous_standby_names is %q", v)
		}
		return nil
	})
	done := make(chan error, 1)
	go func() {
		done <- db.PutCheckpoint(context.Background(), store.Checkpoint{WorkflowID: "w", InstanceID: "i", Step: "once", Time: time.Now()})
	}()
	var pid int32
	testenv.WaitFor(t, 30*time.Second, "the write's COMMIT waiting for the standby", func() error {
		return admin.QueryRow(t.Context(), "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' LIMIT 1").Scan(&pid)
	})
	exec(fmt.Sprintf("SELECT pg_terminate_backend(%d)", pid))
	exec("ALTER SYSTEM RESET synchronous_standby_names")
	exec("SELECT pg_reload_conf()")
	if err := <-done; err != nil {
		t.Fatalf("write whose COMMIT answer was lost: %v", err)
	}
	cps, err := db.ListCheckpoints(t.Context(), "w", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 1 {
		t.Fatalf("%d checkpoints stored, want exactly 1", len(cps))
	}
	if obs.started() == 0 {
		t.Fatal("the lost COMMIT answer was not seen as an outage")
	}
}

// TestPingTimeoutDuringOutageIsDegraded: once a write outage has begun, a
// health ping that runs out of time (the link hangs, as a connect to a
// dead primary can) reports the outage going on, degraded, not a plain
// failure; a ping timeout with no outage in progress still fails.
func TestPingTimeoutDuringOutageIsDegraded(t *testing.T) {
	db, link := proxied(t)
	remove := link.Latency(10_000, 0)
	var d *store.DegradedError
	if err := db.Ping(t.Context()); err == nil || errors.As(err, &d) {
		t.Fatalf("Ping through a hung link with no outage = %v, want a plain failure", err)
	}
	remove()
	pollPing(t, db)
	link.Cut()
	if err := db.Ping(t.Context()); !errors.As(err, &d) {
		t.Fatalf("Ping with the link cut = %v, want degraded", err)
	}
	link.Restore()
	remove = link.Latency(10_000, 0)
	defer remove()
	if err := within(t, 3*time.Second, "Ping through a hung link during the outage", func() error { return db.Ping(t.Context()) }); !errors.As(err, &d) {
		t.Fatalf("Ping through a hung link during the outage = %v, want degraded", err)
	}
}
