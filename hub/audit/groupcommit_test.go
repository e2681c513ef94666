package audit_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/sqlite"
	"github.com/redforge/controltower/internal/testenv"
)

// gatedStore is a real store whose batch appends report their size and
// then wait at a gate, so that a test can hold one batch under way while
// more Record calls arrive.
type gatedStore struct {
	store.Store
	batches chan int      // the size of each batch as it starts
	gate    chan struct{} // a batch goes on when it receives from gate, or once gate is closed
}

func newGated(st store.Store) *gatedStore {
	return &gatedStore{Store: st, batches: make(chan int, 64), gate: make(chan struct{})}
}

func (g *gatedStore) AppendAuditBatch(ctx context.Context, recs []*store.AuditRecord, hash func(*store.AuditRecord) string) error {
	g.batches <- len(recs)
	<-g.gate
	return g.Store.AppendAuditBatch(ctx, recs, hash)
}

func entry(i int) audit.Entry {
	return audit.Entry{UserID: "u-1", Username: "admin", Action: audit.InstanceUpdated, ResourceType: "instance",
		ResourceID: strconv.Itoa(i), Details: map[string]int{"i": i}, IP: "192.0.2.1", UserAgent: "test"}
}

// nextBatch returns the size of the next batch to start.
func nextBatch(t *testing.T, g *gatedStore) int {
	t.Helper()
	select {
	case n := <-g.batches:
		return n
	case <-time.After(30 * time.Second):
		t.Fatal("no batch started within 30 s")
		return 0
	}
}

// queue starts Record(entry(i)) and waits until it is queued behind the
// batch under way (pending calls: want), so that arrival order is i's.
func queue(t *testing.T, l *audit.Logger, ctx context.Context, i, want int, results chan<- error) {
	t.Helper()
	go func() { results <- l.Record(ctx, entry(i)) }()
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("record %d to queue", i), func() error {
		if n := l.Pending(); n != want {
			return fmt.Errorf("%d pending, want %d", n, want)
		}
		return nil
	})
}

// Records that arrive while a batch is written go, in arrival order, into
// one next batch; a call whose context ends while it waits is left out and
// told so; each caller returns once its record is stored.
func TestGroupCommit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.open(t)
		g := newGated(st)
		l := audit.New(g, audit.Config{})
		results := make(chan error, 64)
		go func() { results <- l.Record(context.Background(), entry(0)) }()
		if n := nextBatch(t, g); n != 1 {
			t.Fatalf("first batch holds %d records, want 1", n)
		}
		const waiting = 20
		for i := 1; i <= waiting; i++ {
			queue(t, l, context.Background(), i, i, results)
		}
		ctx, cancel := context.WithCancel(context.Background())
		canceled := make(chan error, 1)
		queue(t, l, ctx, 99, waiting+1, canceled)
		cancel()
		if err := <-canceled; !errors.Is(err, context.Canceled) {
			t.Fatalf("Record with a context canceled while queued = %v, want context.Canceled", err)
		}
		if n := l.Pending(); n != waiting {
			t.Fatalf("%d pending after the cancel, want %d", n, waiting)
		}
		select {
		case err := <-results:
			t.Fatalf("a Record returned (%v) before its batch committed", err)
		default:
		}
		close(g.gate)
		if n := nextBatch(t, g); n != waiting {
			t.Fatalf("second batch holds %d records, want the %d that waited", n, waiting)
		}
		for range waiting + 1 {
			if err := <-results; err != nil {
				t.Fatal(err)
			}
		}
		res := mustVerify(t, l)
		if !res.OK || res.HeadID != waiting+1 {
			t.Fatalf("Verify = %+v, want an intact chain of %d", res, waiting+1)
		}
		var order []string
		if err := st.IterateAudit(t.Context(), store.AuditFilter{}, func(r store.AuditRecord) error {
			order = append(order, r.ResourceID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for i, id := range order {
			if id != strconv.Itoa(i) {
				t.Fatalf("chain order %v, want 0..%d in arrival order without the canceled 99", order, waiting)
			}
		}
	})
}

// A batch that fails fails every Record in it, and writes none of them.
func TestGroupCommitFailureFailsEveryCaller(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	db := sqlite.New(path)
	if err := db.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	g := newGated(db)
	l := audit.New(g, audit.Config{})
	results := make(chan error, 16)
	go func() { results <- l.Record(context.Background(), entry(0)) }()
	nextBatch(t, g)
	g.gate <- struct{}{}
	if err := <-results; err != nil {
		t.Fatal(err)
	}
	go func() { results <- l.Record(context.Background(), entry(1)) }()
	nextBatch(t, g)
	const waiting = 5
	for i := 1; i <= waiting; i++ {
		queue(t, l, context.Background(), i+1, i, results)
	}
	db.Close() // the database goes away under the batch under way
	close(g.gate)
	if n := nextBatch(t, g); n != waiting {
		t.Fatalf("second batch holds %d records, want %d", n, waiting)
	}
	for range waiting + 1 {
		if err := <-results; err == nil {
			t.Fatal("a Record in a failed batch returned nil")
		}
	}
	re := sqlite.New(path)
	if err := re.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	recs, err := re.ListAudit(t.Context(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ResourceID != "0" {
		t.Fatalf("after the failed batches the log holds %d records, want only the first", len(recs))
	}
}

// MaxBatch 1 turns group commit off: each record is its own transaction.
func TestGroupCommitOff(t *testing.T) {
	st, _ := sqliteBackend.open(t)
	g := newGated(st)
	l := audit.New(g, audit.Config{MaxBatch: 1})
	mustRecord(t, l, 3)
	select {
	case n := <-g.batches:
		t.Fatalf("a batch of %d with MaxBatch 1", n)
	default:
	}
	if res := mustVerify(t, l); !res.OK || res.HeadID != 3 {
		t.Fatalf("Verify = %+v", res)
	}
}
