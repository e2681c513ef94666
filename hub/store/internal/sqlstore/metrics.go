package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/redforge/controltower/hub/store"
)

var metricCols = []string{"time", "source", "name", "labels", "value"}

// AppendMetricSamples implements store.Store, in one transaction with the
// dialect's bulk insert.
func (db *DB) AppendMetricSamples(ctx context.Context, ms []store.MetricSample) error {
	if err := store.ValidateMetricSamples(ms); err != nil {
		return err
	}
	if len(ms) == 0 {
		return nil
	}
	rows := make([][]any, len(ms))
	for i, m := range ms {
		rows[i] = []any{db.t(m.Time), m.Source, m.Name, jsonArg(m.Labels), m.Value}
	}
	err := db.write(ctx, func(tx *Tx) error {
		return db.d.BulkInsert(ctx, tx, "metric_samples", metricCols, rows)
	})
	if err != nil {
		return fmt.Errorf("append %d metric samples: %w", len(ms), err)
	}
	return nil
}

// QueryMetricSamples implements store.Store.
func (db *DB) QueryMetricSamples(ctx context.Context, mq store.MetricQuery) ([]store.MetricSample, error) {
	if err := mq.Validate(); err != nil {
		return nil, err
	}
	limit, _ := store.ResolveLimit(mq.Limit)
	var w where
	w.eq("source", mq.Source)
	w.eq("name", mq.Name)
	w.timeRange("time", mq.Start, mq.End, db.tAny)
	var out []store.MetricSample
	err := db.query(ctx, func(rows *sql.Rows) error {
		var m store.MetricSample
		if err := rows.Scan(timeCol{&m.Time}, &m.Source, &m.Name, jsonCol{&m.Labels}, &m.Value); err != nil {
			return err
		}
		out = append(out, m)
		return nil
	}, "SELECT time, source, name, labels, value FROM metric_samples"+w.sql()+" ORDER BY time, id LIMIT ?", append(w.args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("query metric samples: %w", err)
	}
	return out, nil
}

// PruneMetricSamples implements store.Store.
func (db *DB) PruneMetricSamples(ctx context.Context, before time.Time) (int64, error) {
	if err := store.ValidatePrune(before); err != nil {
		return 0, err
	}
	n, err := db.exec(ctx, "DELETE FROM metric_samples WHERE time < ?", db.t(before))
	if err != nil {
		return 0, fmt.Errorf("prune metric samples before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}
