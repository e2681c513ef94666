package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"

	"modernc.org/sqlite"
)

// sqliteDSN is a DSN for the SQLite file at path with the store's busy
// timeout; extra pragmas follow.
func sqliteDSN(path, extra string) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=busy_timeout(5000)" + extra
}

type sqliteBackuper interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
}

// copySQLite copies the SQLite store at src into the new file dst with
// SQLite's online backup, inside one read transaction: atCopy runs once
// the transaction has begun and before its first read fixes its snapshot,
// so what it records (the catalog snapshot) is taken at the same point,
// just before: the store then holds every audit record the catalog's audit
// anchor names. It returns the store's position in that snapshot.
func copySQLite(ctx context.Context, src, dst string, atCopy func()) (StorePosition, error) {
	var pos StorePosition
	if _, err := os.Stat(src); err != nil {
		return pos, fmt.Errorf("backup: sqlite store %s: %w", src, err)
	}
	db, err := sql.Open("sqlite", sqliteDSN(src, "&_pragma=query_only(1)"))
	if err != nil {
		return pos, err
	}
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		return pos, fmt.Errorf("backup: sqlite store %s: %w", src, err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
		return pos, fmt.Errorf("backup: sqlite begin: %w", err)
	}
	defer c.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	atCopy()
	if pos, err = sqlitePosition(ctx, c); err != nil { // the first read fixes the snapshot
		return pos, err
	}
	err = c.Raw(func(dc any) error {
		b, ok := dc.(sqliteBackuper)
		if !ok {
			return errors.New("the sqlite driver has no online backup")
		}
		bk, err := b.NewBackup(sqliteDSN(dst, ""))
		if err != nil {
			return err
		}
		for more := true; more && err == nil; {
			more, err = bk.Step(-1)
		}
		if ferr := bk.Finish(); err == nil {
			err = ferr
		}
		return err
	})
	if err != nil {
		return pos, fmt.Errorf("backup: sqlite online backup of %s: %w", src, err)
	}
	return pos, nil
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// sqlitePosition reads the schema version, the audit head and every
// table's row count.
func sqlitePosition(ctx context.Context, q querier) (StorePosition, error) {
	pos := StorePosition{Rows: map[string]int64{}}
	if err := q.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&pos.SchemaVersion); err != nil {
		return pos, fmt.Errorf("backup: sqlite schema version: %w", err)
	}
	err := q.QueryRowContext(ctx, "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").Scan(&pos.AuditHeadID, &pos.AuditHeadHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return pos, fmt.Errorf("backup: sqlite audit head: %w", err)
	}
	rows, err := q.QueryContext(ctx, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
	if err != nil {
		return pos, err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return pos, err
		}
		tables = append(tables, t)
	}
	rows.Close()
	for _, t := range tables {
		var n int64
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM "`+t+`"`).Scan(&n); err != nil {
			return pos, fmt.Errorf("backup: count %s: %w", t, err)
		}
		pos.Rows[t] = n
	}
	return pos, nil
}

// checkSQLite opens a staged SQLite file, runs quick_check and compares
// its position with the manifest's.
func checkSQLite(ctx context.Context, path string, want StorePosition) error {
	db, err := sql.Open("sqlite", sqliteDSN(path, "&_pragma=query_only(1)"))
	if err != nil {
		return err
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&res); err != nil || res != "ok" {
		return fmt.Errorf("%w: %s: quick_check: %s %v", ErrCorrupt, entrySQLite, res, err)
	}
	got, err := sqlitePosition(ctx, db)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, entrySQLite, err)
	}
	if got.AuditHeadID != want.AuditHeadID || got.AuditHeadHash != want.AuditHeadHash {
		return fmt.Errorf("%w: %s: audit head %d/%s, the manifest says %d/%s", ErrCorrupt, entrySQLite,
			got.AuditHeadID, got.AuditHeadHash, want.AuditHeadID, want.AuditHeadHash)
	}
	return nil
}

// copyFile copies src to the new file dst (mode 0600) and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
