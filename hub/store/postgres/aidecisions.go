package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/internal/sqlq"
)

var aiInsertCols = []string{"time", "instance_id", "edge_id", "flow_name", "model", "prompt", "response",
	"confidence", "tokens_used", "latency_ms", "metadata", "edge_seq"}

const aiCols = `id, time, instance_id, edge_id, flow_name, model, prompt, response, confidence, tokens_used, latency_ms, metadata, edge_seq`

// aiRow is the aiInsertCols row of d; edge_seq 0 is NULL.
func aiRow(d *store.AIDecision) []any {
	var seq *int64
	if d.EdgeSeq != 0 {
		seq = &d.EdgeSeq
	}
	return []any{ts(d.Time), d.InstanceID, d.EdgeID, d.FlowName, d.Model, d.Prompt, d.Response,
		d.Confidence, d.TokensUsed, d.LatencyMS, jsonArg(d.Metadata), seq}
}

// AppendAIDecisions implements store.Store, with COPY from CopyThreshold
// decisions.
func (db *DB) AppendAIDecisions(ctx context.Context, ds []store.AIDecision) error {
	if err := store.ValidateAIDecisions(ds); err != nil {
		return err
	}
	if len(ds) == 0 {
		return nil
	}
	rows := make([][]any, len(ds))
	for i := range ds {
		rows[i] = aiRow(&ds[i])
	}
	err := db.tx(ctx, func(tx pgx.Tx) error {
		return db.bulk(ctx, tx, "ai_decisions", aiInsertCols, rows)
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
	p, err := db.conn()
	if err != nil {
		return nil, err
	}
	limit, _ := store.ResolveLimit(f.Limit)
	q := sqlq.New(true)
	q.Eq("instance_id", f.InstanceID)
	q.Eq("model", f.Model)
	q.Range("time", f.Start, f.End, tsAny)
	query := "SELECT " + aiCols + " FROM ai_decisions" + q.SQL() +
		" ORDER BY time DESC, id DESC LIMIT " + q.Arg(limit) + " OFFSET " + q.Arg(f.Offset)
	rows, err := p.Query(ctx, query, q.Args()...)
	if err != nil {
		return nil, fmt.Errorf("query AI decisions: %w", err)
	}
	defer rows.Close()
	var out []store.AIDecision
	for rows.Next() {
		var d store.AIDecision
		var seq *int64
		if err := rows.Scan(&d.ID, timeCol{&d.Time}, &d.InstanceID, &d.EdgeID, &d.FlowName, &d.Model,
			&d.Prompt, &d.Response, &d.Confidence, &d.TokensUsed, &d.LatencyMS, jsonCol{V: &d.Metadata}, &seq); err != nil {
			return nil, err
		}
		if seq != nil {
			d.EdgeSeq = *seq
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
