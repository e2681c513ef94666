package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL is copied with COPY … TO STDOUT (FORMAT binary), every table
// inside one REPEATABLE READ, READ ONLY transaction: one snapshot of the
// whole database, taken while the hub goes on writing, with the audit head
// and the catalog snapshot read at that same point. COPY rather than
// pg_dump: no client binary that must match the server's major version,
// the stream goes straight into the archive (and its checksums and
// encryption), and the position is read in the same transaction. The
// schema is not copied: a restore lets the store create it (its
// migrations) and needs the same schema version.

// pgSkipTables are filled by the store's migrations, not by the hub.
var pgSkipTables = []string{"schema_migrations", "store_health"}

// copyPostgres copies the store at dsn into the archive, a table at a time,
// in one snapshot: snapshot runs once the transaction has begun, just
// before its first statement fixes the snapshot (see copySQLite), and
// atCopy after that, before the tables are copied.
func copyPostgres(ctx context.Context, dsn string, a *archiveWriter, snapshot func(), atCopy func() error) (StorePosition, error) {
	pos := StorePosition{Rows: map[string]int64{}}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return pos, fmt.Errorf("backup: postgres store: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return pos, fmt.Errorf("backup: postgres begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	snapshot()
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&pos.SchemaVersion); err != nil {
		return pos, fmt.Errorf("backup: postgres schema version: %w", err)
	}
	if err := atCopy(); err != nil {
		return pos, err
	}
	err = tx.QueryRow(ctx, "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").Scan(&pos.AuditHeadID, &pos.AuditHeadHash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return pos, fmt.Errorf("backup: postgres audit head: %w", err)
	}
	tables, err := pgTables(ctx, tx)
	if err != nil {
		return pos, err
	}
	for _, t := range tables {
		cw := a.chunks(entryPGPrefix + t.Name)
		tag, err := tx.Conn().PgConn().CopyTo(ctx, cw, "COPY "+pgx.Identifier{t.Name}.Sanitize()+" ("+columnList(t.Columns)+") TO STDOUT (FORMAT binary)")
		if err != nil {
			return pos, fmt.Errorf("backup: copy table %s: %w", t.Name, err)
		}
		if t.Chunks, err = cw.close(); err != nil {
			return pos, err
		}
		pos.Rows[t.Name] = tag.RowsAffected()
		pos.Tables = append(pos.Tables, t)
	}
	if pos.Sequences, err = pgSequences(ctx, tx); err != nil {
		return pos, err
	}
	return pos, nil
}

func columnList(cols []string) string {
	s := ""
	for i, c := range cols {
		if i > 0 {
			s += ", "
		}
		s += pgx.Identifier{c}.Sanitize()
	}
	return s
}

type pgQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// pgTables lists the store's tables (but pgSkipTables) with their columns.
func pgTables(ctx context.Context, q pgQuerier) ([]TableCopy, error) {
	rows, err := q.Query(ctx, `SELECT c.table_name, c.column_name FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
		ORDER BY c.table_name, c.ordinal_position`)
	if err != nil {
		return nil, fmt.Errorf("backup: list tables: %w", err)
	}
	defer rows.Close()
	var out []TableCopy
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			return nil, err
		}
		if slices.Contains(pgSkipTables, table) {
			continue
		}
		if len(out) == 0 || out[len(out)-1].Name != table {
			out = append(out, TableCopy{Name: table})
		}
		out[len(out)-1].Columns = append(out[len(out)-1].Columns, col)
	}
	return out, rows.Err()
}

func pgSequences(ctx context.Context, q pgx.Tx) ([]SequenceValue, error) {
	rows, err := q.Query(ctx, "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema() ORDER BY sequencename")
	if err != nil {
		return nil, fmt.Errorf("backup: list sequences: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var out []SequenceValue
	for _, n := range names {
		s := SequenceValue{Name: n}
		if err := q.QueryRow(ctx, "SELECT last_value, is_called FROM "+pgx.Identifier{n}.Sanitize()).Scan(&s.Value, &s.IsCalled); err != nil {
			return nil, fmt.Errorf("backup: sequence %s: %w", n, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// pgEmpty returns ErrNotEmpty, naming the database and its tables, when
// the schema at dsn holds any table.
func pgEmpty(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("backup: target store: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1")
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if len(tables) > 0 {
		return fmt.Errorf("%w: database %s has tables %v; restore into an empty database", ErrNotEmpty, conn.Config().Database, tables)
	}
	return nil
}

// loadPostgres loads the staged tables into the store at dsn, whose
// schema (created by the store's migrations) must be at the archive's
// version, in one transaction: all of it or nothing.
func loadPostgres(ctx context.Context, dsn string, pos StorePosition, chunk func(table string, n int) (io.ReadCloser, error)) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("backup: target store: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var version int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&version); err != nil {
		return err
	}
	if version != pos.SchemaVersion {
		return fmt.Errorf("%w: the archive's store is at schema version %d, this hub's at %d; restore it with the hub version that made it, then upgrade",
			ErrFormat, pos.SchemaVersion, version)
	}
	for _, t := range pos.Tables {
		if err := loadTable(ctx, tx, t, chunk); err != nil {
			return err
		}
	}
	for _, s := range pos.Sequences {
		if _, err := tx.Exec(ctx, "SELECT setval($1::text::regclass, $2, $3)", pgx.Identifier{s.Name}.Sanitize(), s.Value, s.IsCalled); err != nil {
			return fmt.Errorf("backup: sequence %s: %w", s.Name, err)
		}
	}
	return tx.Commit(ctx)
}

func loadTable(ctx context.Context, tx pgx.Tx, t TableCopy, chunk func(string, int) (io.ReadCloser, error)) error {
	if t.Chunks == 0 {
		return nil
	}
	pr, pw := io.Pipe()
	go func() {
		for n := 1; n <= t.Chunks; n++ {
			rc, err := chunk(t.Name, n)
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			_, err = io.Copy(pw, rc)
			rc.Close()
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.Close()
	}()
	defer pr.Close()
	_, err := tx.Conn().PgConn().CopyFrom(ctx, pr, "COPY "+pgx.Identifier{t.Name}.Sanitize()+" ("+columnList(t.Columns)+") FROM STDIN (FORMAT binary)")
	if err != nil {
		return fmt.Errorf("backup: load table %s: %w", t.Name, err)
	}
	return nil
}

// pgDropAll drops every table of the schema at dsn: the undo of a restore
// into a database that was empty.
func pgDropAll(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")
	if err != nil {
		return err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, t := range tables {
		if _, err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{t}.Sanitize()+" CASCADE"); err != nil {
			return err
		}
	}
	return nil
}
