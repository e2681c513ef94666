package backup

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redforge/controltower/hub/store/postgres"
	"github.com/redforge/controltower/internal/testenv"
)

// TestStoreCheckListingCutShortIsNotDamage: the PostgreSQL integrity check
// judges damage only from a listing the server answered. Errors a real
// server gives when a failover cuts the listing short (its connection
// terminated by the server, class 57P; the check's deadline passing while
// the server is busy) are errUnreachable, which the store's own check
// reports ("degraded" during a failover), never a "fail" of their own: a
// hub's health answered 503 mid-failover while its store said ok. An
// error the server answers for the query itself stays the check's.
func TestStoreCheckListingCutShortIsNotDamage(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	victim, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close(ctx)

	var pid uint32
	if err := victim.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	_, terminated := victim.Exec(ctx, "SELECT 1")

	_, answered := conn.Exec(ctx, "SELECT * FROM no_such_table_here")

	// (pgx closes a connection whose query outlived its context.)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, deadline := conn.Exec(short, "SELECT pg_sleep(5)")

	for _, c := range []struct {
		name        string
		ctx         context.Context
		err         error
		unreachable bool
	}{
		{"terminated by the server", ctx, terminated, true},
		{"deadline passed", short, deadline, true},
		{"answered by the server", ctx, answered, false},
	} {
		if c.err == nil {
			t.Fatalf("%s: the server gave no error", c.name)
		}
		got := (&StoreCheck{Transient: postgres.Transient}).listingErr(c.ctx, c.err)
		if errors.Is(got, errUnreachable) != c.unreachable {
			t.Errorf("%s (%v): listingErr = %v, want unreachable %v", c.name, c.err, got, c.unreachable)
		}
	}
}
