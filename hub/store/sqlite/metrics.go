package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/internal/sqlq"
)

// AppendMetricSamples implements store.Store.
func (db *DB) AppendMetricSamples(ctx context.Context, ms []store.MetricSample) error {
	if err := store.ValidateMetricSamples(ms); err != nil {
		return err
	}
	if len(ms) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, "INSERT INTO metric_samples (time, source, name, labels, value) VALUES (?, ?, ?, ?, ?)")
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, m := range ms {
			if _, err := stmt.ExecContext(ctx, micros(m.Time), m.Source, m.Name, jsonArg(m.Labels), m.Value); err != nil {
				return err
			}
		}
		return nil
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
	r, err := db.reader()
	if err != nil {
		return nil, err
	}
	limit, _ := store.ResolveLimit(mq.Limit)
	q := sqlq.New(false)
	q.Eq("source", mq.Source)
	q.Eq("name", mq.Name)
	q.Range("time", mq.Start, mq.End, microsAny)
	rows, err := r.QueryContext(ctx, "SELECT time, source, name, labels, value FROM metric_samples"+q.SQL()+
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
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM metric_samples WHERE time < ?", micros(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune metric samples before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}
