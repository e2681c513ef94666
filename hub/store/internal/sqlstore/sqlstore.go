// Package sqlstore is the one SQL implementation of store.Store, on
// database/sql, shared by hub/store/sqlite and hub/store/postgres. Every
// query and every row loop is written once, here; what differs between the
// databases sits behind Dialect: placeholders, the stored form of a time,
// bulk inserts (COPY on PostgreSQL) and the locks that serialize appends.
// Both run the same contract suite, hub/store/storetest.
//
// Queries are written with SQLite's numbered placeholders ("?1", or "?" in
// order); Dialect.Rebind turns them into the backend's ("$1"). The upsert
// the edge ledger needs (INSERT … ON CONFLICT … DO UPDATE … RETURNING) and
// RETURNING are spelled the same on both.
package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redforge/controltower/hub/store"
)

var _ store.Store = (*DB)(nil)

// Dialect is what differs between the databases.
type Dialect interface {
	// Name names the backend in errors: "sqlite", "postgres".
	Name() string
	// Rebind rewrites a query's "?N" and "?" placeholders into the
	// backend's own.
	Rebind(query string) string
	// Time is the stored form (an argument) of a normalized time; the
	// scanner of time columns reads both forms back (see timeCol).
	Time(t time.Time) any
	// BulkInsert inserts rows (in cols order, values as Time and the
	// store's encodings make them) into table inside tx.
	BulkInsert(ctx context.Context, tx *Tx, table string, cols []string, rows [][]any) error
	// Lock holds l until tx ends, serializing the transactions that take
	// it across every process that shares the database. A backend whose
	// writes are already serialized (SQLite's single writer) does nothing.
	Lock(ctx context.Context, tx *Tx, l Lock) error
	// MigrationsTable is the DDL that creates schema_migrations if missing.
	MigrationsTable() string
	// Retryable reports whether err ended a transaction that may succeed
	// when run again: a unique violation or a deadlock between
	// concurrent ingests of one stream (IngestBatch).
	Retryable(err error) bool
	// Transient reports whether err means the server went away or is not
	// (or no longer) the primary: a broken connection, a server shutting
	// down or starting up, a read-only standby, no host taking
	// connections. Such a transaction is run again after a failover (see
	// write). A backend that cannot fail over returns false.
	Transient(err error) bool
}

// Lock names a lock of Dialect.Lock: a fixed Key, or a Name hashed by the
// backend.
type Lock struct {
	Key  int64
	Name string
}

// The locks the store takes. Their keys are part of the database's
// contract with every hub sharing it; they never change.
var (
	migrateLock = Lock{Key: 0x72666d6967726174} // "rfmigrat"
	// auditLock serializes audit appends ("rfauditl").
	auditLock = Lock{Key: 0x726661756469746c}
)

// flowsLock serializes the flows versions of one instance.
func flowsLock(instanceID string) Lock { return Lock{Name: "flows_versions/" + instanceID} }

// Config is what a backend package hands to Open.
type Config struct {
	Dialect Dialect
	// Writer runs every write transaction; Reader every read (the same
	// pool when the backend has no reason to split them).
	Writer, Reader *sql.DB
	// Migrations holds migrations/NNNN_name.sql.
	Migrations fs.FS
	// Now is the clock for times the store assigns.
	Now func() time.Time
	// RetryFor is how long a write is retried through a failover of the
	// primary (Dialect.Transient errors; see write); 0 never retries. A
	// backend that sets it must have the store_commits table.
	RetryFor time.Duration
	// Observer, if set, hears of write outages.
	Observer Observer
	// ReadPool, if set, picks the pool of a read: a read replica's for a
	// context that allows stale reads (store.WithStaleReads), or nil for
	// Reader. A replica that fails with a transient error is given up for
	// Reader on that read.
	ReadPool func(ctx context.Context) *sql.DB
	// NoPrepare keeps the store from preparing named statements (behind a
	// pooler in transaction mode, a prepared statement may not outlive
	// its transaction).
	NoPrepare bool
}

// DB implements store.Store on a Config. A nil *DB is a store that is not
// open: every method fails.
type DB struct {
	d         Dialect
	w, r      *sql.DB
	clock     func() time.Time
	queries   sync.Map // query → rebound query
	retryFor  time.Duration
	observer  Observer
	noPrepare bool
	readPool  func(ctx context.Context) *sql.DB
	out       outage
	lastPrune atomic.Int64 // unix ns of the last prune of store_commits
}

// Open migrates the database and returns the store on it. It fails with
// store.ErrSchemaTooNew when the database was migrated by a newer hub.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	db := &DB{d: cfg.Dialect, w: cfg.Writer, r: cfg.Reader, clock: cfg.Now,
		observer: cfg.Observer, noPrepare: cfg.NoPrepare, readPool: cfg.ReadPool}
	// Open fails promptly: migrations are not retried through a failover.
	if err := db.migrate(ctx, cfg.Migrations); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	db.retryFor = cfg.RetryFor
	return db, nil
}

// errNotOpen is returned by every method of a store that is not open.
var errNotOpen = errors.New("database is not open")

func (db *DB) open() error {
	if db == nil || db.w == nil {
		return errNotOpen
	}
	return nil
}

// q returns query rebound for the backend, computed once per query.
func (db *DB) q(query string) string {
	if v, ok := db.queries.Load(query); ok {
		return v.(string)
	}
	r := db.d.Rebind(query)
	db.queries.Store(query, r)
	return r
}

// Tx is a write transaction with the connection it runs on, for a
// dialect that needs the driver's own API (PostgreSQL's COPY).
type Tx struct {
	*sql.Tx
	Conn      *sql.Conn
	noPrepare bool
}

// exec runs one write statement (its own transaction, retried through a
// failover as write does) on the writer and returns the rows it affected.
func (db *DB) exec(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, db.q(query), args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// query runs a read and calls each for every row.
func (db *DB) query(ctx context.Context, each func(*sql.Rows) error, query string, args ...any) error {
	if err := db.open(); err != nil {
		return err
	}
	var rows *sql.Rows
	run := func(p *sql.DB) (err error) {
		rows, err = p.QueryContext(ctx, db.q(query), args...)
		return err
	}
	var err error
	if p := db.reader(ctx); p != db.r {
		if err = run(p); err != nil && db.d.Transient(err) && ctx.Err() == nil {
			err = db.readRetry(ctx, db.r, run) // the replica is down: the primary
		}
	} else {
		err = db.readRetry(ctx, db.r, run)
	}
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// queryRow runs a read of one row.
func (db *DB) queryRow(ctx context.Context, query string, args ...any) (*sql.Row, error) {
	if err := db.open(); err != nil {
		return nil, err
	}
	return db.reader(ctx).QueryRowContext(ctx, db.q(query), args...), nil
}

// reader is the pool of a read: a replica's when ctx allows stale reads
// and the backend has one to offer, else Reader.
func (db *DB) reader(ctx context.Context) *sql.DB {
	if db.readPool != nil {
		if p := db.readPool(ctx); p != nil {
			return p
		}
	}
	return db.r
}

// Close implements store.Store; the backend package closes its pools.
func (db *DB) Close() error { return nil }

// PingWrite proves, within ctx, that a write commits: a one-row UPDATE,
// tried once (a connection that failed with a transient error is dropped
// from the pool).
func (db *DB) PingWrite(ctx context.Context) error {
	if err := db.open(); err != nil {
		return err
	}
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.ExecContext(ctx, db.q("UPDATE store_health SET pinged_at = ? WHERE id = 1"), db.t(db.now()))
	if err != nil && db.d.Transient(err) {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	return err
}

// Ping implements store.Store with PingWrite; backends add their own checks.
func (db *DB) Ping(ctx context.Context) error { return db.PingWrite(ctx) }

// now is the store's clock.
func (db *DB) now() time.Time {
	if db == nil || db.clock == nil {
		return time.Now()
	}
	return db.clock()
}

// t is the stored form of a time (nil before Open, which then fails).
func (db *DB) t(t time.Time) any {
	if db == nil || db.d == nil {
		return nil
	}
	return db.d.Time(store.NormalizeTime(t))
}

// tAny is t for Query.Range.
func (db *DB) tAny(t time.Time) any { return db.t(t) }

// jsonArg is the stored form of a JSON column: NULL when empty.
func jsonArg(v []byte) any {
	if len(v) == 0 {
		return nil
	}
	return string(v)
}

// blob keeps an empty payload from binding as NULL.
func blob(p []byte) []byte {
	if p == nil {
		return []byte{}
	}
	return p
}

// timeCol scans a time column in either stored form: INTEGER
// microseconds since the epoch (SQLite) or a timestamp (PostgreSQL).
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case int64:
		*c.t = time.UnixMicro(v).UTC()
	case time.Time:
		*c.t = v.UTC()
	default:
		return fmt.Errorf("time column holds %T", src)
	}
	return nil
}

// jsonCol scans a nullable JSON text column into a json.RawMessage, byte
// for byte (NULL becomes nil).
type jsonCol struct{ v *json.RawMessage }

func (c jsonCol) Scan(src any) error {
	switch s := src.(type) {
	case nil:
		*c.v = nil
	case string:
		*c.v = []byte(s)
	case []byte:
		*c.v = append([]byte(nil), s...)
	default:
		return fmt.Errorf("JSON column holds %T", src)
	}
	return nil
}
