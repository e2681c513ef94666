package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const pgTimeout = 30 * time.Second

// PostgresAdminDSN returns the DSN of the shared test PostgreSQL server's
// superuser on its postgres database, after checking the server answers.
// Tests that only need a database should call Postgres instead. It fails the
// test when the server is not available.
func PostgresAdminDSN(tb testing.TB) string {
	tb.Helper()
	dsn := mustLookup(tb, "postgres", keyPGDSN)
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		unavailable(tb, "postgres", err)
	}
	defer conn.Close(ctx)
	if err := conn.Ping(ctx); err != nil {
		unavailable(tb, "postgres", err)
	}
	return dsn
}

// Postgres creates a fresh, empty database t_<random> on the shared test
// PostgreSQL server and returns its DSN (postgres://…?sslmode=disable). The
// database is dropped by tb.Cleanup, even if connections to it are still
// open. It fails the test when the server is not available.
func Postgres(tb testing.TB) string {
	tb.Helper()
	admin := PostgresAdminDSN(tb)
	name := "t_" + randomHex(8)
	if err := pgExec(admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("testenv: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		if err := pgExec(admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("testenv: parse %s: %v", keyPGDSN, err)
	}
	u.Path = "/" + name
	return u.String()
}

// pgExec runs one statement on a new connection to dsn.
func pgExec(dsn, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), pgTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// randomHex returns 2n random hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("testenv: crypto/rand: %v", err))
	}
	return hex.EncodeToString(b)
}
