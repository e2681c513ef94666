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
	through := func(t *testing.T, configure func(*postgres.DB)) store.Store {
		u, err := url.Parse(testenv.Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		u.Host = bouncer
		q := u.Query()
		q.Set("default_query_exec_mode", "exec")
		u.RawQuery = q.Encode()
		db := postgres.New(u.String())
		if configure != nil {
			configure(db)
		}
		if err := db.Open(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	t.Run("Batched", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return through(t, nil) })
	})
	t.Run("AllCopy", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store {
			return through(t, func(db *postgres.DB) { db.CopyThreshold = 1 })
		})
	})
}
