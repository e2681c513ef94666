package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/internal/sqlq"
)

const auditCols = `id, time, user_id, username, action, resource_type, resource_id, details, ip, user_agent, prev_hash, hash`

// AppendAudit implements store.Store. Appends are serialized by the single
// writer connection and BEGIN IMMEDIATE.
func (db *DB) AppendAudit(ctx context.Context, rec *store.AuditRecord, hash func(*store.AuditRecord) string) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	if hash == nil {
		return &store.InvalidError{Field: "hash", Reason: "a hash function is required"}
	}
	r := *rec
	err := db.write(ctx, func(tx *sql.Tx) error {
		var lastID int64
		var prev string
		err := tx.QueryRowContext(ctx, "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").Scan(&lastID, &prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err := store.ChainAudit(&r, lastID, prev, db.now, hash); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO audit_log (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, micros(r.Time), r.UserID, r.Username, r.Action, r.ResourceType, r.ResourceID,
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
	r, err := db.reader()
	if err != nil {
		return store.AuditRecord{}, err
	}
	var rec store.AuditRecord
	err = scanAudit(r.QueryRowContext(ctx, "SELECT "+auditCols+" FROM audit_log WHERE id = ?", id), &rec)
	if errors.Is(err, sql.ErrNoRows) {
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

// IterateAudit implements store.Store. The rows come from one read
// transaction, a consistent snapshot.
func (db *DB) IterateAudit(ctx context.Context, f store.AuditFilter, fn func(store.AuditRecord) error) error {
	if err := f.Validate(); err != nil {
		return err
	}
	limit := f.Limit
	if limit == 0 {
		limit = -1 // SQLite: no limit
	}
	return db.queryAudit(ctx, f, "ASC", limit, fn)
}

func (db *DB) queryAudit(ctx context.Context, f store.AuditFilter, order string, limit int, fn func(store.AuditRecord) error) error {
	r, err := db.reader()
	if err != nil {
		return err
	}
	q := sqlq.New(false)
	q.Eq("user_id", f.UserID)
	q.Eq("action", f.Action)
	q.Eq("resource_type", f.ResourceType)
	q.Range("time", f.Start, f.End, microsAny)
	query := "SELECT " + auditCols + " FROM audit_log" + q.SQL() +
		" ORDER BY id " + order + " LIMIT " + q.Arg(limit) + " OFFSET " + q.Arg(f.Offset)
	rows, err := r.QueryContext(ctx, query, q.Args()...)
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

type scanner interface{ Scan(dest ...any) error }

func scanAudit(s scanner, r *store.AuditRecord) error {
	return s.Scan(&r.ID, timeCol{&r.Time}, &r.UserID, &r.Username, &r.Action, &r.ResourceType,
		&r.ResourceID, jsonCol{V: &r.Details}, &r.IP, &r.UserAgent, &r.PrevHash, &r.Hash)
}
