package sqlstore

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/redforge/controltower/hub/store/internal/migrate"
)

// migrate applies the pending migrations of fsys in one transaction
// holding migrateLock, so hubs opening a fresh database at once migrate it
// once, and a failed migration leaves the schema as it was.
func (db *DB) migrate(ctx context.Context, fsys fs.FS) error {
	ms, err := migrate.Load(fsys, "migrations")
	if err != nil {
		return err
	}
	return db.write(ctx, func(tx *Tx) error {
		if err := db.d.Lock(ctx, tx, migrateLock); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, db.d.MigrationsTable()); err != nil {
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
			if _, err := tx.ExecContext(ctx, db.q("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
				m.Version, m.Name, db.t(db.now())); err != nil {
				return fmt.Errorf("record %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// SchemaVersion returns the schema version of the open database: the
// number of the last migration applied.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	row, err := db.queryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations")
	if err != nil {
		return 0, err
	}
	var v int
	err = row.Scan(&v)
	return v, err
}
