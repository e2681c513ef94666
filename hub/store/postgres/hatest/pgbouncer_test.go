package hatest

import (
	"net/url"
	"testing"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/postgres"
	"github.com/redforge/controltower/hub/store/storetest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestContractThroughPgBouncer runs the contract suite through PgBouncer
// in transaction pooling mode (a server connection per transaction, not
// per client): the DSN asks pgx for QueryExecModeExec (no named prepared
// statement outlives its transaction; the store then prepares none
// either), and COPY runs inside the write transactions.
func TestContractThroughPgBouncer(t *testing.T) {
	t.Parallel()
	admin, err := url.Parse(testenv.PostgresAdminDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	bouncer := testenv.PgBouncer(t, admin.Host)
	through := func(t *testing.T) store.Store {
		u, err := url.Parse(testenv.Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		u.Host = bouncer
		q := u.Query()
		q.Set("default_query_exec_mode", "exec")
		u.RawQuery = q.Encode()
		db := postgres.New(u.String())
		if err := db.Open(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	// Writes below CopyThreshold rows use batched INSERTs without a
	// prepared statement, larger ones COPY (Edge/LargeBatch).
	storetest.Run(t, func(t *testing.T) store.Store { return through(t) })
}
