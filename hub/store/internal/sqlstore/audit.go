package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/redforge/controltower/hub/store"
)

const auditCols = `id, time, user_id, username, action, resource_type, resource_id, details, ip, user_agent, prev_hash, hash`

// AppendAudit implements store.Store: a batch of one.
func (db *DB) AppendAudit(ctx context.Context, rec *store.AuditRecord, hash func(*store.AuditRecord) string) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	if hash == nil {
		return &store.InvalidError{Field: "hash", Reason: "a hash function is required"}
	}
	if err := db.appendAudit(ctx, []*store.AuditRecord{rec}, hash, false); err != nil {
		return fmt.Errorf("append audit record: %w", err)
	}
	return nil
}

// AppendAuditBatch implements store.Store.
func (db *DB) AppendAuditBatch(ctx context.Context, recs []*store.AuditRecord, hash func(*store.AuditRecord) string) error {
	if err := store.ValidateAuditBatch(recs); err != nil {
		return err
	}
	if hash == nil {
		return &store.InvalidError{Field: "hash", Reason: "a hash function is required"}
	}
	if err := db.appendAudit(ctx, recs, hash, true); err != nil {
		return fmt.Errorf("append %d audit records: %w", len(recs), err)
	}
	return nil
}

// appendAudit chains and inserts recs (validated) in one transaction
// that holds auditLock (SQLite: its single writer; PostgreSQL: an
// advisory lock, so reads go on), which serializes appends from every hub
// sharing the database: it reads the chain head once, links each record
// to the one before, and inserts them all with one statement per record
// on the transaction's connection. The records are updated only when the
// transaction has committed. In a batch, an invalid hash names its record
// ("records[2].hash").
func (db *DB) appendAudit(ctx context.Context, recs []*store.AuditRecord, hash func(*store.AuditRecord) string, batch bool) error {
	out := make([]store.AuditRecord, len(recs))
	for i, r := range recs {
		out[i] = *r
	}
	err := db.write(ctx, func(tx *Tx) error {
		if err := db.d.Lock(ctx, tx, auditLock); err != nil {
			return err
		}
		var lastID int64
		var prev string
		err := tx.QueryRowContext(ctx, "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").Scan(&lastID, &prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		for i := range out {
			if err := store.ChainAudit(&out[i], lastID, prev, db.now, hash); err != nil {
				if batch {
					return prefixedInvalid(fmt.Sprintf("records[%d]", i), err)
				}
				return err
			}
			lastID, prev = out[i].ID, out[i].Hash
		}
		if len(out) == 1 {
			r := &out[0]
			_, err := tx.ExecContext(ctx, db.q(`INSERT INTO audit_log (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
				r.ID, db.t(r.Time), r.UserID, r.Username, r.Action, r.ResourceType, r.ResourceID,
				jsonArg(r.Details), r.IP, r.UserAgent, r.PrevHash, r.Hash)
			return err
		}
		stmt, err := tx.PrepareContext(ctx, db.q(`INSERT INTO audit_log (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`))
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range out {
			r := &out[i]
			if _, err := stmt.ExecContext(ctx, r.ID, db.t(r.Time), r.UserID, r.Username, r.Action, r.ResourceType, r.ResourceID,
				jsonArg(r.Details), r.IP, r.UserAgent, r.PrevHash, r.Hash); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, r := range recs {
		*r = out[i]
	}
	return nil
}

// prefixedInvalid returns err with the field of an *store.InvalidError
// prefixed by prefix.
func prefixedInvalid(prefix string, err error) error {
	var ie *store.InvalidError
	if errors.As(err, &ie) {
		return &store.InvalidError{Field: prefix + "." + ie.Field, Reason: ie.Reason}
	}
	return err
}

// GetAudit implements store.Store.
func (db *DB) GetAudit(ctx context.Context, id int64) (store.AuditRecord, error) {
	var rec store.AuditRecord
	row, err := db.queryRow(ctx, "SELECT "+auditCols+" FROM audit_log WHERE id = ?", id)
	if err != nil {
		return rec, err
	}
	err = scanAudit(row, &rec)
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

// IterateAudit implements store.Store. The rows come from one statement,
// a consistent snapshot, streamed as fn consumes them.
func (db *DB) IterateAudit(ctx context.Context, f store.AuditFilter, fn func(store.AuditRecord) error) error {
	if err := f.Validate(); err != nil {
		return err
	}
	limit := f.Limit
	if limit == 0 {
		limit = math.MaxInt64 // no limit; both backends take a LIMIT before OFFSET
	}
	return db.queryAudit(ctx, f, "ASC", limit, fn)
}

// queryAudit streams the matching records to fn.
func (db *DB) queryAudit(ctx context.Context, f store.AuditFilter, order string, limit int, fn func(store.AuditRecord) error) error {
	var w where
	w.eq("user_id", f.UserID)
	w.eq("action", f.Action)
	w.eq("resource_type", f.ResourceType)
	w.timeRange("time", f.Start, f.End, db.tAny)
	err := db.query(ctx, func(rows *sql.Rows) error {
		var rec store.AuditRecord
		if err := scanAudit(rows, &rec); err != nil {
			return err
		}
		return fn(rec)
	}, "SELECT "+auditCols+" FROM audit_log"+w.sql()+" ORDER BY id "+order+" LIMIT ? OFFSET ?", append(w.args, limit, f.Offset)...)
	if err != nil {
		return fmt.Errorf("query audit log: %w", err)
	}
	return nil
}

func scanAudit(row interface{ Scan(...any) error }, r *store.AuditRecord) error {
	return row.Scan(&r.ID, timeCol{&r.Time}, &r.UserID, &r.Username, &r.Action, &r.ResourceType,
		&r.ResourceID, jsonCol{&r.Details}, &r.IP, &r.UserAgent, &r.PrevHash, &r.Hash)
}
