// Package postgres implements store.Store on PostgreSQL (pgx/v5 pgxpool):
// the store of a multi-hub deployment, one logical database shared by the
// hubs.
//
// Appends that must be serialized across every hub take database locks,
// not process locks: an audit append holds a transaction-scoped advisory
// lock (readers go on), an edge batch locks its watermark row.
// Large batches are written with COPY. It does not own the schema of any
// other hub data.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/internal/sqlq"
)

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

	pool *pgxpool.Pool
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
	cfg, err := pgxpool.ParseConfig(db.DSN)
	if err != nil {
		return fmt.Errorf("postgres: %w", err) // pgx redacts the password
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = db.ConnectTimeout
	}
	if db.MaxConns > 0 {
		cfg.MaxConns = db.MaxConns
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres: open %s: %w", where, err)
	}
	db.pool = pool
	if err := db.migrate(ctx); err != nil {
		pool.Close()
		return fmt.Errorf("postgres: migrate %s: %w", where, err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be released.
func (db *DB) Close() error {
	if db.pool != nil {
		db.pool.Close()
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
	if _, err := db.pool.Exec(ctx, "UPDATE store_health SET pinged_at = $1 WHERE id = 1", store.NormalizeTime(db.now())); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// tx runs fn in a transaction and commits if fn succeeds.
func (db *DB) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	if db.pool == nil {
		return errors.New("postgres: database is not open")
	}
	return pgx.BeginFunc(ctx, db.pool, fn)
}

// conn returns the pool, or an error before Open.
func (db *DB) conn() (*pgxpool.Pool, error) {
	if db.pool == nil {
		return nil, errors.New("postgres: database is not open")
	}
	return db.pool, nil
}

func (db *DB) now() time.Time {
	if db.Now != nil {
		return db.Now()
	}
	return time.Now()
}

// ts is the argument form of a time.
func ts(t time.Time) time.Time { return store.NormalizeTime(t) }

// tsAny is ts for sqlq.Range.
func tsAny(t time.Time) any { return ts(t) }

// jsonArg is the stored form of a JSON column: NULL when empty.
func jsonArg(v []byte) any {
	if len(v) == 0 {
		return nil
	}
	return string(v)
}

// jsonCol scans a JSON text column (shared with the other implementation).
type jsonCol = sqlq.JSONCol

// timeCol scans a timestamptz column into UTC.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	t, ok := src.(time.Time)
	if !ok {
		return fmt.Errorf("postgres: time column holds %T", src)
	}
	*c.t = t.UTC()
	return nil
}

// bulk inserts rows into table: with COPY from CopyThreshold rows, with
// one batch of INSERTs below it.
func (db *DB) bulk(ctx context.Context, tx pgx.Tx, table string, cols []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	if len(rows) >= db.CopyThreshold {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows))
		return err
	}
	query := insertSQL(table, cols)
	b := &pgx.Batch{}
	for _, r := range rows {
		b.Queue(query, r...)
	}
	return tx.SendBatch(ctx, b).Close()
}

func insertSQL(table string, cols []string) string {
	q := "INSERT INTO " + table + " ("
	vals := ""
	for i, c := range cols {
		if i > 0 {
			q += ", "
			vals += ", "
		}
		q += c
		vals += fmt.Sprintf("$%d", i+1)
	}
	return q + ") VALUES (" + vals + ")"
}
