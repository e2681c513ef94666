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
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
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
	DefaultRetryFor       = 30 * time.Second
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
	// RetryFor is how long a write is retried through a failover of the
	// primary (connection errors, a read-only or shutting-down server, no
	// host taking connections) before it fails with
	// store.ErrUnavailable; 0 never retries. Ping reports the store
	// degraded, not failed, for that long. See sqlstore/failover.go.
	RetryFor time.Duration
	// Observer, if set, hears of write outages (the hub logs them and
	// exports their length).
	Observer sqlstore.Observer

	// Replicas are DSNs of read replicas: reads whose context allows it
	// (store.WithStaleReads) go to the first that answers and lags at
	// most MaxReplicaLag, the others to the primary.
	Replicas []string
	// MaxReplicaLag is the lag past which a replica serves no read.
	MaxReplicaLag time.Duration
	// ReplicaProbeInterval is how often each replica's lag is measured.
	ReplicaProbeInterval time.Duration
	// OnReplicaLag, if set, is called with each measure (-1 when the
	// replica did not answer), named by the replica's host:port.
	OnReplicaLag func(replica string, lag time.Duration)

	*sqlstore.DB // the queries; nil until Open

	pool                 *sql.DB
	replicas             []*replica
	stopProbe, probeDone chan struct{}
}

// New returns a DB for dsn. It does no I/O.
func New(dsn string) *DB {
	return &DB{
		DSN:            dsn,
		ConnectTimeout: DefaultConnectTimeout,
		PingTimeout:    DefaultPingTimeout,
		CopyThreshold:  DefaultCopyThreshold,
		RetryFor:       DefaultRetryFor,
		Now:            time.Now,

		MaxReplicaLag:        DefaultMaxReplicaLag,
		ReplicaProbeInterval: DefaultReplicaProbeInterval,
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
	where := Hosts(cc) + "/" + cc.Database
	pool := stdlib.OpenDB(*cc)
	pool.SetMaxOpenConns(conns)
	pool.SetMaxIdleConns(conns)
	pool.SetConnMaxLifetime(cfg.MaxConnLifetime)
	pool.SetConnMaxIdleTime(cfg.MaxConnIdleTime)
	opened, err := sqlstore.Open(ctx, sqlstore.Config{Dialect: dialect{db}, Writer: pool, Reader: pool, Migrations: migrationFS, Now: db.now,
		RetryFor: db.RetryFor, Observer: db.Observer, NoPrepare: noPrepare(cc), ReadPool: db.readPool})
	if err != nil {
		pool.Close()
		return fmt.Errorf("postgres: %s: %w", where, oneLine(err))
	}
	if err := db.openReplicas(ctx); err != nil {
		pool.Close()
		db.closeReplicas()
		return err
	}
	db.pool, db.DB = pool, opened
	return nil
}

// Close closes the pool, waiting for connections in use to be released.
func (db *DB) Close() error {
	db.closeReplicas()
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
	err := db.PingFailover(ctx)
	var d *store.DegradedError
	if errors.As(err, &d) {
		d.Reason = oneLine(errors.New(d.Reason)).Error()
		return d
	}
	if err != nil {
		return fmt.Errorf("postgres: ping: %w", oneLine(err))
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

// Transient reports an error after which the transaction may succeed on
// the primary a failover leaves: the connection broke or could not be
// made to any host (or to none that is read-write), the server is
// shutting down or starting up (class 57P), a read-only standby answered
// (25006), or a pooler lost its server (class 08, as PgBouncer reports
// it). A cancelled or expired context is not transient.
func (dialect) Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		// No host would take a connection. Every reason counts but a
		// refused login (class 28): during a failover a standby that has
		// not replayed as far as the primary may even lack the database
		// (3D000) for a moment. Open is not retried, so a wrong DSN still
		// fails at once.
		return !errors.As(err, &pe) || !strings.HasPrefix(pe.Code, "28")
	}
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection_exception (PgBouncer: server conn crashed, cannot connect)
			pe.Code == "25006",                     // read_only_sql_transaction: a standby
			pe.Code == "57P01", pe.Code == "57P02", // admin_shutdown, crash_shutdown
			pe.Code == "57P03": // cannot_connect_now: starting up, in recovery
			return true
		}
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || strings.Contains(err.Error(), "conn closed")
}

func (dialect) MigrationsTable() string {
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL
	)`
}

// Hosts lists the servers of cc, the first and its fallbacks (a
// multi-host DSN), as "host:port,host:port" without credentials.
func Hosts(cc *pgx.ConnConfig) string {
	seen := map[string]bool{}
	var out []string
	add := func(host string, port uint16) {
		hp := net.JoinHostPort(host, strconv.Itoa(int(port)))
		if !seen[hp] {
			seen[hp] = true
			out = append(out, hp)
		}
	}
	add(cc.Host, cc.Port)
	for _, f := range cc.Fallbacks {
		add(f.Host, f.Port)
	}
	return strings.Join(out, ",")
}

// oneLine flattens pgx's multi-host connect errors (one line per host
// tried) into one line.
func oneLine(err error) error {
	if err == nil || !strings.Contains(err.Error(), "\n") {
		return err
	}
	return &flatError{err}
}

type flatError struct{ err error }

func (e *flatError) Error() string {
	s := strings.ReplaceAll(e.err.Error(), ":\n\t", ": ")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n\t", "; ")), " ")
}
func (e *flatError) Unwrap() error { return e.err }

// noPrepare reports a DSN whose default_query_exec_mode prepares no named
// statement (exec, simple_protocol): the settings for PgBouncer in
// transaction pooling mode, where the store must not prepare any either.
func noPrepare(cc *pgx.ConnConfig) bool {
	return cc.DefaultQueryExecMode == pgx.QueryExecModeExec || cc.DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol
}

// Transient is the store's classification of err (dialect Transient) for
// the hub's other PostgreSQL clients: true when the operation may succeed
// on the primary a failover leaves.
func Transient(err error) bool { return dialect{}.Transient(err) }
