package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/redforge/controltower/hub/store"
)

// AppendStatusTransition implements store.Store.
func (db *DB) AppendStatusTransition(ctx context.Context, t *store.StatusTransition) error {
	if err := t.Validate(); err != nil {
		return err
	}
	r := *t
	if r.Time.IsZero() {
		r.Time = db.now()
	}
	r.Time = store.NormalizeTime(r.Time)
	err := db.write(ctx, func(tx *Tx) error {
		return tx.QueryRowContext(ctx, db.q(`INSERT INTO status_transitions
			(time, instance_id, row_id, row_name, status, prev_status, message) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			db.t(r.Time), r.InstanceID, r.RowID, r.RowName, r.Status, r.PrevStatus, r.Message).Scan(&r.ID)
	})
	if err != nil {
		return fmt.Errorf("append status transition of %s: %w", t.InstanceID, err)
	}
	*t = r
	return nil
}

// ListStatusTransitions implements store.Store.
func (db *DB) ListStatusTransitions(ctx context.Context, f store.TransitionFilter) ([]store.StatusTransition, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	limit, _ := store.ResolveLimit(f.Limit)
	var w where
	w.eq("instance_id", f.InstanceID)
	w.timeRange("time", f.Since, f.Until, db.tAny)
	out := []store.StatusTransition{}
	err := db.query(ctx, func(rows *sql.Rows) error {
		var t store.StatusTransition
		if err := rows.Scan(&t.ID, timeCol{&t.Time}, &t.InstanceID, &t.RowID, &t.RowName, &t.Status, &t.PrevStatus, &t.Message); err != nil {
			return err
		}
		out = append(out, t)
		return nil
	}, "SELECT id, time, instance_id, row_id, row_name, status, prev_status, message FROM status_transitions"+
		w.sql()+" ORDER BY time DESC, id DESC LIMIT ? OFFSET ?", append(w.args, limit, f.Offset)...)
	if err != nil {
		return nil, fmt.Errorf("list status transitions of %s: %w", f.InstanceID, err)
	}
	return out, nil
}

// PruneStatusTransitions implements store.Store.
func (db *DB) PruneStatusTransitions(ctx context.Context, before time.Time) (int64, error) {
	if err := store.ValidatePrune(before); err != nil {
		return 0, err
	}
	n, err := db.exec(ctx, "DELETE FROM status_transitions WHERE time < ?", db.t(before))
	if err != nil {
		return 0, fmt.Errorf("prune status transitions before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}

// PruneFlowsVersions implements store.Store. Versions are gapless per
// instance, so the ones to keep are those above the instance's newest
// minus keep.
func (db *DB) PruneFlowsVersions(ctx context.Context, keep int) (int64, error) {
	if err := store.ValidateKeep(keep); err != nil {
		return 0, err
	}
	n, err := db.exec(ctx, `DELETE FROM flows_versions WHERE version <= (SELECT max(f.version) FROM flows_versions f
		WHERE f.instance_id = flows_versions.instance_id) - ?`, keep)
	if err != nil {
		return 0, fmt.Errorf("prune flows versions (keep %d per instance): %w", keep, err)
	}
	return n, nil
}

const flowsVersionCols = "instance_id, version, sha256, size, source, deployment_id, user_id, username, time"

// AppendFlowsVersion implements store.Store. The transaction holds the
// instance's flowsLock from before it reads the latest version until it
// commits, so versions stay gapless and unique across every hub sharing
// the database.
func (db *DB) AppendFlowsVersion(ctx context.Context, v *store.FlowsVersion) error {
	if err := v.Validate(); err != nil {
		return err
	}
	r := *v
	err := db.write(ctx, func(tx *Tx) error {
		if err := db.d.Lock(ctx, tx, flowsLock(r.InstanceID)); err != nil {
			return err
		}
		var latest int64
		if err := tx.QueryRowContext(ctx, db.q("SELECT coalesce(max(version), 0) FROM flows_versions WHERE instance_id = ?"), r.InstanceID).Scan(&latest); err != nil {
			return err
		}
		store.PrepareFlowsVersion(&r, latest, db.now)
		_, err := tx.ExecContext(ctx, db.q("INSERT INTO flows_versions ("+flowsVersionCols+", flows) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
			r.InstanceID, r.Version, r.SHA256, r.Size, r.Source, r.DeploymentID, r.UserID, r.Username, db.t(r.Time), string(r.Flows))
		return err
	})
	if err != nil {
		return fmt.Errorf("append flows version of %s: %w", v.InstanceID, err)
	}
	*v = r
	return nil
}

func scanFlowsVersion(sc interface{ Scan(...any) error }, v *store.FlowsVersion, extra ...any) error {
	return sc.Scan(append([]any{&v.InstanceID, &v.Version, &v.SHA256, &v.Size, &v.Source, &v.DeploymentID,
		&v.UserID, &v.Username, timeCol{&v.Time}}, extra...)...)
}

// ListFlowsVersions implements store.Store.
func (db *DB) ListFlowsVersions(ctx context.Context, f store.FlowsVersionFilter) ([]store.FlowsVersion, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	limit, _ := store.ResolveLimit(f.Limit)
	out := []store.FlowsVersion{}
	err := db.query(ctx, func(rows *sql.Rows) error {
		var v store.FlowsVersion
		if err := scanFlowsVersion(rows, &v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	}, "SELECT "+flowsVersionCols+" FROM flows_versions WHERE instance_id = ? ORDER BY version DESC LIMIT ? OFFSET ?",
		f.InstanceID, limit, f.Offset)
	if err != nil {
		return nil, fmt.Errorf("list flows versions of %s: %w", f.InstanceID, err)
	}
	return out, nil
}

// GetFlowsVersion implements store.Store.
func (db *DB) GetFlowsVersion(ctx context.Context, instanceID string, version int64) (store.FlowsVersion, error) {
	var v store.FlowsVersion
	row, err := db.queryRow(ctx, "SELECT "+flowsVersionCols+", flows FROM flows_versions WHERE instance_id = ? AND version = ?",
		instanceID, version)
	if err != nil {
		return v, err
	}
	var flows string
	err = scanFlowsVersion(row, &v, &flows)
	if errors.Is(err, sql.ErrNoRows) {
		return v, fmt.Errorf("flows version %d of %s: %w", version, instanceID, store.ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("get flows version %d of %s: %w", version, instanceID, err)
	}
	v.Flows = []byte(flows)
	return v, nil
}
