package backup

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
)

// StoreCheck is a health check that notices a damaged store the store's
// own Ping (one small write) can miss: a truncated SQLite file (shorter
// than its header's page count says) or a table dropped from PostgreSQL
// (every table there at the first check must still be). It is cheap
// enough for /api/health: no table is scanned.
type StoreCheck struct {
	Kind, Path string
	// Transient reports an error after which the store may work again on
	// the primary a failover leaves (the store's own classification,
	// postgres.Transient). A listing that fails with one says nothing
	// about the tables. Nil: no error is.
	Transient func(error) bool

	mu     sync.Mutex
	tables []string // the baseline: the tables of the first check
	db     *sql.DB
}

// errUnreachable is a PostgreSQL server the check could not connect to.
var errUnreachable = errors.New("store unreachable")

// Ping reports the store's damage, naming it; nil when intact or when the
// server cannot be reached (the store's own health check reports that).
func (c *StoreCheck) Ping(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var tables []string
	var err error
	switch c.Kind {
	case StoreSQLite:
		tables, err = c.sqlite(ctx)
	case StorePostgres:
		tables, err = c.postgres(ctx)
	default:
		return nil
	}
	if errors.Is(err, errUnreachable) {
		// The store's own check names a server it cannot reach; this
		// one judges damage, which it cannot see from here.
		return nil
	}
	if err != nil {
		return err
	}
	if c.tables == nil {
		c.tables = tables
		return nil
	}
	for _, t := range c.tables {
		if !slices.Contains(tables, t) {
			return fmt.Errorf("store damaged: table %s is gone (restore from the last backup: see docs/dr.md)", t)
		}
	}
	return nil
}

func (c *StoreCheck) sqlite(ctx context.Context) ([]string, error) {
	if err := checkSQLiteHeader(c.Path); err != nil {
		return nil, err
	}
	if c.db == nil {
		db, err := sql.Open("sqlite", sqliteDSN(c.Path, "&_pragma=query_only(1)"))
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		c.db = db
	}
	rows, err := c.db.QueryContext(ctx, "SELECT name FROM sqlite_schema WHERE type = 'table'")
	if err != nil {
		return nil, fmt.Errorf("store damaged: %s: %w", c.Path, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// checkSQLiteHeader compares the file's size with the database size its
// header records (when the header says that size is valid): a file cut
// short is damaged whatever its WAL holds.
func checkSQLiteHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("store damaged: %w", err)
	}
	defer f.Close()
	var hdr [100]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return fmt.Errorf("store damaged: %s: header: %v", path, err)
	}
	if string(hdr[:16]) != "SQLite format 3\x00" {
		return fmt.Errorf("store damaged: %s is not an SQLite database (bad header)", path)
	}
	pageSize := int64(binary.BigEndian.Uint16(hdr[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	pages := int64(binary.BigEndian.Uint32(hdr[28:32]))
	changes, validFor := binary.BigEndian.Uint32(hdr[24:28]), binary.BigEndian.Uint32(hdr[92:96])
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if changes == validFor && fi.Size() < pages*pageSize {
		return fmt.Errorf("store damaged: %s is %d bytes, its header counts %d pages of %d (truncated; restore from the last backup: see docs/dr.md)", path, fi.Size(), pages, pageSize)
	}
	return nil
}

func (c *StoreCheck) postgres(ctx context.Context) ([]string, error) {
	conn, err := pgx.Connect(ctx, c.Path)
	if err != nil {
		return nil, errUnreachable
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
	if err != nil {
		return nil, c.listingErr(ctx, err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, c.listingErr(ctx, err)
	}
	return tables, nil
}

// listingErr sorts the error of the table listing: only a listing the
// server answered can show damage. One cut short by a failover (what the
// store calls transient) or by the check's deadline says nothing about
// the tables, and is errUnreachable, which the store's own check reports;
// any other error is the check's failure.
func (c *StoreCheck) listingErr(ctx context.Context, err error) error {
	if ctx.Err() != nil || (c.Transient != nil && c.Transient(err)) {
		return fmt.Errorf("%w: %v", errUnreachable, err)
	}
	return err
}

// Close releases the check's connection.
func (c *StoreCheck) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db != nil {
		return c.db.Close()
	}
	return nil
}
