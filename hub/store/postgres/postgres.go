// Package postgres implements store.Store on PostgreSQL: the store of a
// multi-hub deployment, one logical database shared by the hubs. The
// queries are the shared implementation's (hub/store/internal/sqlstore),
// run through database/sql with pgx's stdlib driver; this package opens the
// pool and supplies the PostgreSQL dialect: "$n" placeholders,
// timestamptz, COPY (pgx's CopyFrom on the transaction's own connection)
// for bulk inserts, and advisory locks.
//
// Appends that must be serialized across every hub take database locks,
// not process locks: an audit append holds a transaction-scoped advisory
// lock (readers go on), an edge batch locks its watermark row. It does not
// own the schema of any other hub data.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

var _ store.Store = (*DB)(nil)

// Defaults of the DB tunables.
const (
	DefaultPingTimeout    = 1500 * time.Millisecond
	DefaultConnectTimeout = 5 * time.Second
	DefaultCopyThreshold  = 64
)

// DB is a PostgreSQL-backed store.Store. Set the exported fields between
// New and Open.
type DB struct {
	// DSN is the connection string (postgres://… or key=value).
	DSN string
	// MaxConns caps the pool; 0 keeps pgxpool's default (or the DSN's
	// pool_max_conns).
	MaxConns int32
	// ConnectTimeout bounds each connection attempt when the DSN has no
	// connect_timeout.
	ConnectTimeout time.Duration
	// PingTimeout bounds Ping, so a health check fails promptly when the
	// server is unreachable.
	PingTimeout time.Duration
	// CopyThreshold is the number of rows from which a bulk insert uses
	// COPY instead of batched INSERTs.
	CopyThreshold int
	// Now is the clock for times the store assigns (audit records without
	// a time, watermark updates, migrations).
	Now func() time.Time

	*sqlstore.DB // the queries; nil until Open

	pool *sql.DB
}

// New returns a DB for dsn. It does no I/O.
func New(dsn string) *DB {
	return &DB{
		DSN:            dsn,
		ConnectTimeout: DefaultConnectTimeout,
		PingTimeout:    DefaultPingTimeout,
		CopyThreshold:  DefaultCopyThreshold,
		Now:            time.Now,
	}
}

// Open connects and applies pending migrations. It fails if the DSN does
// not parse, if the server cannot be reached within ConnectTimeout, or
// with store.ErrSchemaTooNew if the database was migrated by a newer hub.
func (db *DB) Open(ctx context.Context) error {
	// pgxpool's parser takes the pool_* settings out of the DSN.
	cfg, err := pgxpool.ParseConfig(db.DSN)
	if err != nil {
		return fmt.Errorf("postgres: %w", err) // pgx redacts the password
	}
	cc := cfg.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = db.ConnectTimeout
	}
	conns := int(cfg.MaxConns)
	if db.MaxConns > 0 {
		conns = int(db.MaxConns)
	}
	where := fmt.Sprintf("%s:%d/%s", cc.Host, cc.Port, cc.Database)
	pool := stdlib.OpenDB(*cc)
	pool.SetMaxOpenConns(conns)
	pool.SetMaxIdleConns(conns)
	pool.SetConnMaxLifetime(cfg.MaxConnLifetime)
	pool.SetConnMaxIdleTime(cfg.MaxConnIdleTime)
	opened, err := sqlstore.Open(ctx, sqlstore.Config{Dialect: dialect{db}, Writer: pool, Reader: pool, Migrations: migrationFS, Now: db.now})
	if err != nil {
		pool.Close()
		return fmt.Errorf("postgres: %s: %w", where, err)
	}
	db.pool, db.DB = pool, opened
	return nil
}

// Close closes the pool, waiting for connections in use to be released.
func (db *DB) Close() error {
	if db.pool != nil {
		return db.pool.Close()
	}
	return nil
}

// Ping checks, within PingTimeout, that the server accepts a write: it
// fails on an unreachable server, a read-only standby, or a full disk,
// and succeeds again once the server is back.
func (db *DB) Ping(ctx context.Context) error {
	if db.pool == nil {
		return errors.New("postgres: ping: database is not open")
	}
	ctx, cancel := context.WithTimeout(ctx, db.PingTimeout)
	defer cancel()
	if err := db.PingWrite(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

func (db *DB) now() time.Time {
	if db.Now != nil {
		return db.Now()
	}
	return time.Now()
}

// dialect is PostgreSQL's side of sqlstore.Dialect.
type dialect struct{ db *DB }

func (dialect) Name() string               { return "postgres" }
func (dialect) Rebind(query string) string { return sqlstore.RebindDollar(query) }
func (dialect) Time(t time.Time) any       { return t }

// BulkInsert writes rows with COPY from CopyThreshold rows, through pgx's
// CopyFrom on the connection of the transaction (COPY is part of it),
// and with multi-row INSERTs below.
func (d dialect) BulkInsert(ctx context.Context, tx *sqlstore.Tx, table string, cols []string, rows [][]any) error {
	if len(rows) < d.db.CopyThreshold {
		return sqlstore.InsertRows(ctx, tx, d, table, cols, rows)
	}
	return tx.Conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("postgres: COPY needs a pgx connection, have %T", dc)
		}
		_, err := c.Conn().CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows))
		return err
	})
}

// Lock takes a transaction-scoped advisory lock: l.Key as it is, l.Name
// hashed by the server.
func (dialect) Lock(ctx context.Context, tx *sqlstore.Tx, l sqlstore.Lock) error {
	var err error
	if l.Name != "" {
		_, err = tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", l.Name)
	} else {
		_, err = tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", l.Key)
	}
	return err
}

// Retryable reports a unique violation (another transaction committed the
// same records first), a deadlock or a serialization failure.
func (dialect) Retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "23505", "40P01", "40001": // unique_violation, deadlock_detected, serialization_failure
		return true
	}
	return false
}

func (dialect) MigrationsTable() string {
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL
	)`
}
