package sqlstore

import (
	"context"
	"database/sql"
	"strings"
)

// insertVars bounds the arguments of one INSERT of InsertRows: one
// statement per row spent more time in database/sql and statement setup
// than in writing the rows.
const insertVars = 256

// InsertRows inserts rows into table inside tx with multi-row INSERTs of
// up to insertVars arguments each, the full-size statement prepared once:
// SQLite's bulk insert, and PostgreSQL's below its COPY threshold.
func InsertRows(ctx context.Context, tx *Tx, d Dialect, table string, cols []string, rows [][]any) error {
	per := max(1, insertVars/len(cols))
	head := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES "
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	args := make([]any, 0, per*len(cols))
	for len(rows) > 0 {
		n := min(per, len(rows))
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		rows = rows[n:]
		if n < per || tx.noPrepare {
			if _, err := tx.ExecContext(ctx, d.Rebind(head+placeholders(n, len(cols))), args...); err != nil {
				return err
			}
			continue
		}
		if full == nil {
			var err error
			if full, err = tx.PrepareContext(ctx, d.Rebind(head+placeholders(per, len(cols)))); err != nil {
				return err
			}
		}
		if _, err := full.ExecContext(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}
