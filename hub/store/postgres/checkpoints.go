package postgres

import (
	"context"
	"fmt"

	"github.com/redforge/controltower/hub/store"
)

const checkpointCols = `id, workflow_id, instance_id, step, state, time`

// PutCheckpoint implements store.Store.
func (db *DB) PutCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if err := c.Validate(); err != nil {
		return err
	}
	p, err := db.conn()
	if err != nil {
		return err
	}
	if _, err := p.Exec(ctx, "INSERT INTO checkpoints (workflow_id, instance_id, step, state, time) VALUES ($1, $2, $3, $4, $5)",
		c.WorkflowID, c.InstanceID, c.Step, jsonArg(c.State), ts(c.Time)); err != nil {
		return fmt.Errorf("put checkpoint of workflow %s: %w", c.WorkflowID, err)
	}
	return nil
}

// LatestCheckpoints implements store.Store.
func (db *DB) LatestCheckpoints(ctx context.Context, instanceID string) ([]store.Checkpoint, error) {
	if err := store.ValidateCheckpointQuery("instance_id", instanceID, 0); err != nil {
		return nil, err
	}
	return db.queryCheckpoints(ctx, `SELECT DISTINCT ON (workflow_id) `+checkpointCols+` FROM checkpoints
		WHERE instance_id = $1 ORDER BY workflow_id, time DESC, id DESC`, instanceID)
}

// ListCheckpoints implements store.Store.
func (db *DB) ListCheckpoints(ctx context.Context, workflowID string, limit int) ([]store.Checkpoint, error) {
	if err := store.ValidateCheckpointQuery("workflow_id", workflowID, limit); err != nil {
		return nil, err
	}
	limit, _ = store.ResolveLimit(limit)
	return db.queryCheckpoints(ctx, `SELECT `+checkpointCols+` FROM checkpoints
		WHERE workflow_id = $1 ORDER BY time DESC, id DESC LIMIT $2`, workflowID, limit)
}

func (db *DB) queryCheckpoints(ctx context.Context, query string, args ...any) ([]store.Checkpoint, error) {
	p, err := db.conn()
	if err != nil {
		return nil, err
	}
	rows, err := p.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("query checkpoints: %w", err)
	}
	defer rows.Close()
	var out []store.Checkpoint
	for rows.Next() {
		var c store.Checkpoint
		if err := rows.Scan(&c.ID, &c.WorkflowID, &c.InstanceID, &c.Step, jsonCol{V: &c.State}, timeCol{&c.Time}); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
