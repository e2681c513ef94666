package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/internal/sqlq"
)

const (
	aiCols   = `id, time, instance_id, edge_id, flow_name, model, prompt, response, confidence, tokens_used, latency_ms, metadata, edge_seq`
	aiInsert = `INSERT INTO ai_decisions (` + aiCols + `) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

// aiArgs are the arguments of aiInsert for d; edge_seq 0 is NULL.
func aiArgs(d *store.AIDecision) []any {
	var seq any
	if d.EdgeSeq != 0 {
		seq = d.EdgeSeq
	}
	return []any{micros(d.Time), d.InstanceID, d.EdgeID, d.FlowName, d.Model,
		d.Prompt, d.Response, d.Confidence, d.TokensUsed, d.LatencyMS, jsonArg(d.Metadata), seq}
}

// AppendAIDecisions implements store.Store.
func (db *DB) AppendAIDecisions(ctx context.Context, ds []store.AIDecision) error {
	if err := store.ValidateAIDecisions(ds); err != nil {
		return err
	}
	if len(ds) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, aiInsert)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range ds {
			if _, err := stmt.ExecContext(ctx, aiArgs(&ds[i])...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append %d AI decisions: %w", len(ds), err)
	}
	return nil
}

// ListAIDecisions implements store.Store.
func (db *DB) ListAIDecisions(ctx context.Context, f store.AIDecisionFilter) ([]store.AIDecision, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	r, err := db.reader()
	if err != nil {
		return nil, err
	}
	limit, _ := store.ResolveLimit(f.Limit)
	q := sqlq.New(false)
	q.Eq("instance_id", f.InstanceID)
	q.Eq("model", f.Model)
	q.Range("time", f.Start, f.End, microsAny)
	query := "SELECT " + aiCols + " FROM ai_decisions" + q.SQL() +
		" ORDER BY time DESC, id DESC LIMIT " + q.Arg(limit) + " OFFSET " + q.Arg(f.Offset)
	rows, err := r.QueryContext(ctx, query, q.Args()...)
	if err != nil {
		return nil, fmt.Errorf("query AI decisions: %w", err)
	}
	defer rows.Close()
	var out []store.AIDecision
	for rows.Next() {
		var d store.AIDecision
		var seq sql.NullInt64
		if err := rows.Scan(&d.ID, timeCol{&d.Time}, &d.InstanceID, &d.EdgeID, &d.FlowName, &d.Model,
			&d.Prompt, &d.Response, &d.Confidence, &d.TokensUsed, &d.LatencyMS, jsonCol{V: &d.Metadata}, &seq); err != nil {
			return nil, err
		}
		d.EdgeSeq = seq.Int64
		out = append(out, d)
	}
	return out, rows.Err()
}
