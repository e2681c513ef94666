// Package sqlite implements store.Store on an SQLite file
// (modernc.org/sqlite, no cgo): the hub's embedded default, kept in its data
// directory. The queries are the shared implementation's
// (hub/store/internal/sqlstore); this package opens the file, checks it,
// and supplies the SQLite dialect.
//
// The database runs in WAL mode with synchronous=FULL, so a committed
// transaction survives power loss. synchronous=NORMAL (the WAL synced only
// at checkpoints) would save an fsync per commit but can lose the last
// commits on power loss, and nothing here can be rebuilt from Raft: the
// audit log, the edge ingest watermarks and the data they acknowledge live
// only in this file (Raft holds the audit anchor, so a lost tail would
// even read as truncation). Callers have been told those writes are
// durable, so FULL stays; the audit log amortizes the fsync by group
// commit instead (hub/audit, AppendAuditBatch). All writes go through one connection
// that begins every transaction with BEGIN IMMEDIATE, which serializes them
// in the process (audit chain, watermarks) and against any other process;
// reads use a separate pool of query_only connections and see the last
// commit. It does not own the schema of any other hub data.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers driver "sqlite"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/internal/sqlstore"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

var _ store.Store = (*DB)(nil)

// Defaults of the DB tunables.
const (
	DefaultBusyTimeout = 5 * time.Second
	DefaultReadConns   = 4
	DefaultPingTimeout = 2 * time.Second
)

// DB is an SQLite-backed store.Store. Set the exported fields between New
// and Open.
type DB struct {
	// Path is the database file; it is created if missing, its directory
	// is not.
	Path string
	// BusyTimeout is how long a statement waits for a lock held by another
	// process.
	BusyTimeout time.Duration
	// ReadConns is the size of the read connection pool.
	ReadConns int
	// PingTimeout bounds Ping.
	PingTimeout time.Duration
	// Now is the clock for times the store assigns (audit records without
	// a time, watermark updates).
	Now func() time.Time

	*sqlstore.DB // the queries; nil until Open

	abs  string      // absolute Path
	w    *sql.DB     // the single writer connection
	r    *sql.DB     // the read pool
	file os.FileInfo // identity of the file at Open, checked by Ping
}

// New returns a DB for dsn, a file path or "sqlite://path"
// ("sqlite:///abs/path" for an absolute one). It does no I/O.
func New(dsn string) *DB {
	return &DB{
		Path:        strings.TrimPrefix(dsn, "sqlite://"),
		BusyTimeout: DefaultBusyTimeout,
		ReadConns:   DefaultReadConns,
		PingTimeout: DefaultPingTimeout,
		Now:         time.Now,
	}
}

// Open opens or creates the database file and applies pending migrations.
// It fails if the path is empty or ":memory:", if the file cannot be opened
// as an SQLite database, or with store.ErrSchemaTooNew if the file was
// written by a newer hub.
func (db *DB) Open(ctx context.Context) (err error) {
	if db.Path == "" || db.Path == ":memory:" || strings.HasPrefix(db.Path, "file:") {
		return fmt.Errorf("sqlite: open %q: want a file path or sqlite://path", db.Path)
	}
	abs, err := filepath.Abs(db.Path)
	db.abs = abs
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", db.Path, err)
	}
	defer func() {
		if err != nil {
			db.Close()
			db.w, db.r, db.DB = nil, nil, nil
		}
	}()
	if db.w, err = db.open(ctx, abs, "&_txlock=immediate&_pragma=journal_mode(WAL)", 1); err != nil {
		return err
	}
	var mode string
	if err = db.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: open %s: journal mode is %q, not WAL (%v); put the data dir on a local filesystem", db.Path, mode, err)
	}
	if db.r, err = db.open(ctx, abs, "&_pragma=query_only(1)", max(db.ReadConns, 1)); err != nil {
		return err
	}
	db.DB, err = sqlstore.Open(ctx, sqlstore.Config{Dialect: dialect{}, Writer: db.w, Reader: db.r, Migrations: migrationFS, Now: db.now})
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", db.Path, err)
	}
	if db.file, err = os.Stat(abs); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", db.Path, err)
	}
	return nil
}

// open opens a pool of n connections to abs with the common pragmas plus
// extra, and checks that the file is an SQLite database.
func (db *DB) open(ctx context.Context, abs, extra string, n int) (*sql.DB, error) {
	dsn := "file:" + (&url.URL{Path: abs}).EscapedPath() +
		fmt.Sprintf("?_pragma=busy_timeout(%d)", db.BusyTimeout.Milliseconds()) +
		"&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)" + extra
	// Switching a fresh file to WAL can answer SQLITE_BUSY without waiting
	// on the busy handler while another process opens it too; such an open
	// is retried until BusyTimeout has passed.
	deadline := time.Now().Add(db.BusyTimeout)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		p, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("sqlite: open %s: %w", db.Path, err)
		}
		p.SetMaxOpenConns(n)
		p.SetMaxIdleConns(n)
		p.SetConnMaxLifetime(0)
		p.SetConnMaxIdleTime(0)
		_, err = p.ExecContext(ctx, "SELECT count(*) FROM sqlite_schema")
		if err == nil {
			return p, nil
		}
		p.Close()
		if !strings.Contains(err.Error(), "SQLITE_BUSY") || time.Now().Add(wait).After(deadline) {
			return nil, fmt.Errorf("sqlite: open %s: %w", db.Path, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("sqlite: open %s: %w", db.Path, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// Close closes the database. It is safe to call more than once.
func (db *DB) Close() error {
	var errs []error
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	if db.w != nil {
		errs = append(errs, db.w.Close())
	}
	return errors.Join(errs...)
}

// Ping checks, within PingTimeout, that the file at Path is still the one
// opened (not removed or replaced), that it can be read, and that a write
// transaction commits.
func (db *DB) Ping(ctx context.Context) error {
	if db.w == nil || db.r == nil {
		return errors.New("sqlite: ping: database is not open")
	}
	ctx, cancel := context.WithTimeout(ctx, db.PingTimeout)
	defer cancel()
	fi, err := os.Stat(db.abs)
	if err != nil {
		return fmt.Errorf("sqlite: ping %s: %w", db.Path, err)
	}
	if !os.SameFile(fi, db.file) {
		return fmt.Errorf("sqlite: ping %s: the database file was replaced since Open; restart the hub", db.Path)
	}
	if err := checkHeader(db.abs); err != nil {
		return fmt.Errorf("sqlite: ping %s: %w", db.Path, err)
	}
	var n int
	if err := db.r.QueryRowContext(ctx, "SELECT count(*) FROM store_health").Scan(&n); err != nil {
		return fmt.Errorf("sqlite: ping %s: read: %w", db.Path, err)
	}
	if err := db.PingWrite(ctx); err != nil {
		return fmt.Errorf("sqlite: ping %s: write: %w", db.Path, err)
	}
	return nil
}

// sqliteMagic starts every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// checkHeader reads the file's header directly: in WAL mode SQLite works
// from its cache and the WAL and would not notice a clobbered file.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var h [len(sqliteMagic)]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	if string(h[:]) != sqliteMagic {
		return errors.New("the file no longer has an SQLite header; restore it from a backup")
	}
	return nil
}

func (db *DB) now() time.Time {
	if db.Now != nil {
		return db.Now()
	}
	return time.Now()
}

// dialect is SQLite's side of sqlstore.Dialect: "?N" placeholders as
// they are, times as INTEGER microseconds since the epoch, bulk inserts
// as multi-row INSERTs, and no locks (every write transaction runs on the
// one writer connection with BEGIN IMMEDIATE, which serializes them in
// this process and against any other).
type dialect struct{}

func (dialect) Name() string               { return "sqlite" }
func (dialect) Rebind(query string) string { return query }
func (dialect) Time(t time.Time) any       { return t.UnixMicro() }

func (d dialect) BulkInsert(ctx context.Context, tx *sqlstore.Tx, table string, cols []string, rows [][]any) error {
	return sqlstore.InsertRows(ctx, tx, d, table, cols, rows)
}

func (dialect) Lock(context.Context, *sqlstore.Tx, sqlstore.Lock) error { return nil }

// Transient is false: SQLite has no server to fail over.
func (dialect) Transient(error) bool { return false }

// Retryable is false: with one writer, ingests never run concurrently.
func (dialect) Retryable(error) bool { return false }

func (dialect) MigrationsTable() string {
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`
}
