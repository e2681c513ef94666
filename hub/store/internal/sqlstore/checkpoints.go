package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/redforge/controltower/hub/store"
)

const checkpointCols = `id, workflow_id, instance_id, step, state, time`

// PutCheckpoint implements store.Store.
func (db *DB) PutCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if _, err := db.exec(ctx, "INSERT INTO checkpoints (workflow_id, instance_id, step, state, time) VALUES (?, ?, ?, ?, ?)",
		c.WorkflowID, c.InstanceID, c.Step, jsonArg(c.State), db.t(c.Time)); err != nil {
		return fmt.Errorf("put checkpoint of workflow %s: %w", c.WorkflowID, err)
	}
	return nil
}

// LatestCheckpoints implements store.Store: per workflow the row ranked
// first by (time, id) descending.
func (db *DB) LatestCheckpoints(ctx context.Context, instanceID string) ([]store.Checkpoint, error) {
	if err := store.ValidateCheckpointQuery("instance_id", instanceID, 0); err != nil {
		return nil, err
	}
	return db.queryCheckpoints(ctx, `SELECT `+checkpointCols+` FROM (
			SELECT `+checkpointCols+`, row_number() OVER (PARTITION BY workflow_id ORDER BY time DESC, id DESC) AS rn
			FROM checkpoints WHERE instance_id = ?) latest
		WHERE rn = 1 ORDER BY workflow_id`, instanceID)
}

// ListCheckpoints implements store.Store.
func (db *DB) ListCheckpoints(ctx context.Context, workflowID string, limit int) ([]store.Checkpoint, error) {
	if err := store.ValidateCheckpointQuery("workflow_id", workflowID, limit); err != nil {
		return nil, err
	}
	limit, _ = store.ResolveLimit(limit)
	return db.queryCheckpoints(ctx, `SELECT `+checkpointCols+` FROM checkpoints
		WHERE workflow_id = ? ORDER BY time DESC, id DESC LIMIT ?`, workflowID, limit)
}

func (db *DB) queryCheckpoints(ctx context.Context, query string, args ...any) ([]store.Checkpoint, error) {
	var out []store.Checkpoint
	err := db.query(ctx, func(rows *sql.Rows) error {
		var c store.Checkpoint
		if err := rows.Scan(&c.ID, &c.WorkflowID, &c.InstanceID, &c.Step, jsonCol{&c.State}, timeCol{&c.Time}); err != nil {
			return err
		}
		out = append(out, c)
		return nil
	}, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query checkpoints: %w", err)
	}
	return out, nil
}
