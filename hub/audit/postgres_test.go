package audit_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/postgres"
	"github.com/redforge/controltower/internal/testenv"
)

func init() { backends = append(backends, postgresBackend) }

// postgresBackend is a fresh database on the shared test server
// (bash internal/testenv/provision.sh up).
var postgresBackend = backend{name: "postgres", open: func(t *testing.T) (store.Store, *rawDB) {
	dsn := testenv.Postgres(t)
	db := postgres.New(dsn)
	if err := db.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	// The attacker first disables the append-only triggers.
	if _, err := conn.Exec(context.Background(), "ALTER TABLE audit_log DISABLE TRIGGER USER"); err != nil {
		t.Fatal(err)
	}
	return db, &rawDB{exec: func(t *testing.T, q string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(context.Background(), dollarPlaceholders(q), args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}}
}}
