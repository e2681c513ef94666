package audit_test

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/cluster"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/sqlite"
)

// backend opens a fresh store and a raw handle on its database, for the
// tamper tests (an attacker with database access).
type backend struct {
	name string
	open func(t *testing.T) (store.Store, *rawDB)
}

// rawDB runs SQL on the store's database behind its back. Queries use ?
// placeholders; for Postgres they are rewritten to $n.
type rawDB struct {
	exec func(t *testing.T, query string, args ...any)
}

// Exec runs query or fails the test.
func (r *rawDB) Exec(t *testing.T, query string, args ...any) {
	t.Helper()
	r.exec(t, query, args...)
}

func dollarPlaceholders(q string) string {
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

var sqliteBackend = backend{name: "sqlite", open: func(t *testing.T) (store.Store, *rawDB) {
	path := filepath.Join(t.TempDir(), "hub.db")
	db := sqlite.New(path)
	if err := db.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	raw, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	// The attacker first removes the append-only triggers.
	for _, q := range []string{"DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete"} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return db, &rawDB{exec: func(t *testing.T, q string, args ...any) {
		t.Helper()
		if _, err := raw.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}}
}}

// backends lists the stores the suite runs on (postgres is added by
// postgres_test.go).
var backends = []backend{sqliteBackend}

func forEachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

// mustRaft starts a one-node Raft cluster for the anchor store.
func mustRaft(t *testing.T) (*catalog.State, *cluster.Node) {
	t.Helper()
	state := catalog.NewState()
	node := cluster.New(cluster.Config{
		DataDir: t.TempDir(), NodeID: "audit-test", BindAddr: "127.0.0.1:0", Bootstrap: true,
		HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
		SnapshotInterval: time.Hour, Logger: slog.New(slog.DiscardHandler),
	}, state)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := node.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	return state, node
}

// mustRecord records n entries with varied content.
func mustRecord(t *testing.T, l *audit.Logger, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		e := audit.Entry{
			UserID: "u-" + strconv.Itoa(i%3), Username: []string{"admin", "olga", "=vera"}[i%3],
			Action: audit.Actions[i%len(audit.Actions)], ResourceType: "instance", ResourceID: "i-" + strconv.Itoa(i),
			Details: map[string]any{"n": i, "note": "line one\nline \"two\", ü €", "list": []any{1.5, true, nil}},
			IP:      "192.0.2." + strconv.Itoa(i), UserAgent: "towerctl/1.0 (+test)",
		}
		if i%4 == 0 {
			e.Details = nil
		}
		if err := l.Record(context.Background(), e); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
}

func mustVerify(t *testing.T, l *audit.Logger) audit.VerifyResult {
	t.Helper()
	res, err := l.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// wantBroken fails unless res reports the chain broken at id.
func wantBroken(t *testing.T, what string, res audit.VerifyResult, id int64) {
	t.Helper()
	if res.OK || res.FirstBroken == nil || *res.FirstBroken != id {
		got := "nil"
		if res.FirstBroken != nil {
			got = strconv.FormatInt(*res.FirstBroken, 10)
		}
		t.Fatalf("%s: OK=%v FirstBroken=%s reason=%q; want broken at %d", what, res.OK, got, res.Reason, id)
	}
	t.Logf("%s: %s", what, res.Reason)
}
