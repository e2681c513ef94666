package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/internal/sqlq"
)

const auditCols = `id, time, user_id, username, action, resource_type, resource_id, details, ip, user_agent, prev_hash, hash`

// auditLock is the advisory lock key that serializes audit appends across
// every hub sharing the database ("rfauditl"). An advisory lock, not LOCK
// TABLE: that would also queue behind autovacuum and ANALYZE.
const auditLock = 0x726661756469746c

// AppendAudit implements store.Store. The transaction holds an advisory
// lock from before it reads the chain head until it commits, which
// serializes appends from every hub sharing the database; reads go on.
func (db *DB) AppendAudit(ctx context.Context, rec *store.AuditRecord, hash func(*store.AuditRecord) string) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	if hash == nil {
		return &store.InvalidError{Field: "hash", Reason: "a hash function is required"}
	}
	r := *rec
	err := db.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(auditLock)); err != nil {
			return err
		}
		var lastID int64
		var prev string
		err := tx.QueryRow(ctx, "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").Scan(&lastID, &prev)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if err := store.ChainAudit(&r, lastID, prev, db.now, hash); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit_log (`+auditCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			r.ID, r.Time, r.UserID, r.Username, r.Action, r.ResourceType, r.ResourceID,
			jsonArg(r.Details), r.IP, r.UserAgent, r.PrevHash, r.Hash)
		return err
	})
	if err != nil {
		return fmt.Errorf("append audit record: %w", err)
	}
	*rec = r
	return nil
}

// GetAudit implements store.Store.
func (db *DB) GetAudit(ctx context.Context, id int64) (store.AuditRecord, error) {
	var rec store.AuditRecord
	p, err := db.conn()
	if err != nil {
		return rec, err
	}
	err = scanAudit(p.QueryRow(ctx, "SELECT "+auditCols+" FROM audit_log WHERE id = $1", id), &rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return rec, fmt.Errorf("audit record %d: %w", id, store.ErrNotFound)
	}
	return rec, err
}

// ListAudit implements store.Store.
func (db *DB) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	limit, _ := store.ResolveLimit(f.Limit)
	var out []store.AuditRecord
	err := db.queryAudit(ctx, f, "DESC", limit, func(rec store.AuditRecord) error {
		out = append(out, rec)
		return nil
	})
	return out, err
}

// IterateAudit implements store.Store. The rows come from one statement,
// a consistent snapshot, streamed as fn consumes them.
func (db *DB) IterateAudit(ctx context.Context, f store.AuditFilter, fn func(store.AuditRecord) error) error {
	if err := f.Validate(); err != nil {
		return err
	}
	return db.queryAudit(ctx, f, "ASC", f.Limit, fn)
}

// queryAudit streams the matching records to fn; limit 0 means no limit.
func (db *DB) queryAudit(ctx context.Context, f store.AuditFilter, order string, limit int, fn func(store.AuditRecord) error) error {
	p, err := db.conn()
	if err != nil {
		return err
	}
	q := sqlq.New(true)
	q.Eq("user_id", f.UserID)
	q.Eq("action", f.Action)
	q.Eq("resource_type", f.ResourceType)
	q.Range("time", f.Start, f.End, tsAny)
	query := "SELECT " + auditCols + " FROM audit_log" + q.SQL() + " ORDER BY id " + order
	if limit > 0 {
		query += " LIMIT " + q.Arg(limit)
	}
	query += " OFFSET " + q.Arg(f.Offset)
	rows, err := p.Query(ctx, query, q.Args()...)
	if err != nil {
		return fmt.Errorf("query audit log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var rec store.AuditRecord
		if err := scanAudit(rows, &rec); err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return rows.Err()
}

func scanAudit(row pgx.Row, r *store.AuditRecord) error {
	return row.Scan(&r.ID, timeCol{&r.Time}, &r.UserID, &r.Username, &r.Action, &r.ResourceType,
		&r.ResourceID, jsonCol{V: &r.Details}, &r.IP, &r.UserAgent, &r.PrevHash, &r.Hash)
}
