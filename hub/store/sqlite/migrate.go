package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/redforge/controltower/hub/store/internal/migrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrate applies the pending migrations in one write transaction, so
// concurrent Opens of the same file serialize and a failed migration
// leaves the schema as it was.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := migrate.Load(migrationFS, "migrations")
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			applied_at INTEGER NOT NULL
		) STRICT`); err != nil {
			return err
		}
		var current int
		if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
			return err
		}
		pending, err := migrate.Pending(ms, current)
		if err != nil {
			return err
		}
		for _, m := range pending {
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply %s: %w", m.Name, err)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				m.Version, m.Name, micros(db.now())); err != nil {
				return fmt.Errorf("record %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// SchemaVersion returns the schema version of the open database: the
// number of the last migration applied.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	r, err := db.reader()
	if err != nil {
		return 0, err
	}
	var v int
	err = r.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v)
	return v, err
}
