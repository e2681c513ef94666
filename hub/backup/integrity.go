package backup

import (
	"context"
	"database/sql"
	"fmt"
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

	mu     sync.Mutex
	tables []string // the baseline: the tables of the first check
	db     *sql.DB
}

// Ping reports the store's damage, naming it; nil when intact.
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
	if c.db == nil {
		db, err := sql.Open("sqlite", sqliteDSN(c.Path, "&_pragma=query_only(1)"))
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		c.db = db
	}
	fi, err := os.Stat(c.Path)
	if err != nil {
		return nil, fmt.Errorf("store damaged: %w", err)
	}
	var pages, size int64
	if err := c.db.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return nil, fmt.Errorf("store damaged: %s: %w", c.Path, err)
	}
	if err := c.db.QueryRowContext(ctx, "PRAGMA page_size").Scan(&size); err != nil {
		return nil, fmt.Errorf("store damaged: %s: %w", c.Path, err)
	}
	if wal, err := os.Stat(c.Path + "-wal"); (err != nil || wal.Size() == 0) && fi.Size() < pages*size {
		return nil, fmt.Errorf("store damaged: %s is %d bytes, its header counts %d pages of %d (truncated; restore from the last backup: see docs/dr.md)", c.Path, fi.Size(), pages, size)
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

func (c *StoreCheck) postgres(ctx context.Context) ([]string, error) {
	conn, err := pgx.Connect(ctx, c.Path)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
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
