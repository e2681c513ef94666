package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/internal/sqlq"
)

var metricCols = []string{"time", "source", "name", "labels", "value"}

// AppendMetricSamples implements store.Store, with COPY from CopyThreshold
// samples.
func (db *DB) AppendMetricSamples(ctx context.Context, ms []store.MetricSample) error {
	if err := store.ValidateMetricSamples(ms); err != nil {
		return err
	}
	if len(ms) == 0 {
		return nil
	}
	rows := make([][]any, len(ms))
	for i, m := range ms {
		rows[i] = []any{ts(m.Time), m.Source, m.Name, jsonArg(m.Labels), m.Value}
	}
	err := db.tx(ctx, func(tx pgx.Tx) error {
		return db.bulk(ctx, tx, "metric_samples", metricCols, rows)
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
	p, err := db.conn()
	if err != nil {
		return nil, err
	}
	limit, _ := store.ResolveLimit(mq.Limit)
	q := sqlq.New(true)
	q.Eq("source", mq.Source)
	q.Eq("name", mq.Name)
	q.Range("time", mq.Start, mq.End, tsAny)
	rows, err := p.Query(ctx, "SELECT time, source, name, labels, value FROM metric_samples"+q.SQL()+
		" ORDER BY time, id LIMIT "+q.Arg(limit), q.Args()...)
	if err != nil {
		return nil, fmt.Errorf("query metric samples: %w", err)
	}
	defer rows.Close()
	var out []store.MetricSample
	for rows.Next() {
		var m store.MetricSample
		if err := rows.Scan(timeCol{&m.Time}, &m.Source, &m.Name, jsonCol{V: &m.Labels}, &m.Value); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// PruneMetricSamples implements store.Store.
func (db *DB) PruneMetricSamples(ctx context.Context, before time.Time) (int64, error) {
	if err := store.ValidatePrune(before); err != nil {
		return 0, err
	}
	p, err := db.conn()
	if err != nil {
		return 0, err
	}
	tag, err := p.Exec(ctx, "DELETE FROM metric_samples WHERE time < $1", ts(before))
	if err != nil {
		return 0, fmt.Errorf("prune metric samples before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return tag.RowsAffected(), nil
}
