package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/redforge/controltower/hub/store"
)

var aiInsertCols = []string{"time", "instance_id", "edge_id", "flow_name", "model", "prompt", "response",
	"confidence", "tokens_used", "latency_ms", "metadata", "edge_seq"}

const aiCols = `id, time, instance_id, edge_id, flow_name, model, prompt, response, confidence, tokens_used, latency_ms, metadata, edge_seq`

// aiRow is the aiInsertCols row of d; edge_seq 0 is NULL.
func (db *DB) aiRow(d *store.AIDecision) []any {
	var seq any
	if d.EdgeSeq != 0 {
		seq = d.EdgeSeq
	}
	return []any{db.t(d.Time), d.InstanceID, d.EdgeID, d.FlowName, d.Model, d.Prompt, d.Response,
		d.Confidence, d.TokensUsed, d.LatencyMS, jsonArg(d.Metadata), seq}
}

// AppendAIDecisions implements store.Store, in one transaction with the
// dialect's bulk insert.
func (db *DB) AppendAIDecisions(ctx context.Context, ds []store.AIDecision) error {
	if err := store.ValidateAIDecisions(ds); err != nil {
		return err
	}
	if len(ds) == 0 {
		return nil
	}
	rows := make([][]any, len(ds))
	for i := range ds {
		rows[i] = db.aiRow(&ds[i])
	}
	err := db.write(ctx, func(tx *Tx) error {
		return db.d.BulkInsert(ctx, tx, "ai_decisions", aiInsertCols, rows)
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
	limit, _ := store.ResolveLimit(f.Limit)
	var w where
	w.eq("instance_id", f.InstanceID)
	w.eq("model", f.Model)
	w.timeRange("time", f.Start, f.End, db.tAny)
	var out []store.AIDecision
	err := db.query(ctx, func(rows *sql.Rows) error {
		var d store.AIDecision
		var seq sql.NullInt64
		if err := rows.Scan(&d.ID, timeCol{&d.Time}, &d.InstanceID, &d.EdgeID, &d.FlowName, &d.Model,
			&d.Prompt, &d.Response, &d.Confidence, &d.TokensUsed, &d.LatencyMS, jsonCol{&d.Metadata}, &seq); err != nil {
			return err
		}
		d.EdgeSeq = seq.Int64
		out = append(out, d)
		return nil
	}, "SELECT "+aiCols+" FROM ai_decisions"+w.sql()+" ORDER BY time DESC, id DESC LIMIT ? OFFSET ?", append(w.args, limit, f.Offset)...)
	if err != nil {
		return nil, fmt.Errorf("query AI decisions: %w", err)
	}
	return out, nil
}
