package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/redforge/controltower/hub/store"
)

// IngestBatch implements store.Store. The watermark read, the inserts
// (records, vectors, AI decisions) and the watermark update share one
// BEGIN IMMEDIATE transaction.
func (db *DB) IngestBatch(ctx context.Context, b store.Batch) (int64, error) {
	if err := b.Validate(); err != nil {
		return 0, err
	}
	var wm int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		var count int64
		err := tx.QueryRowContext(ctx, "SELECT seq, count FROM edge_watermarks WHERE edge_id = ? AND stream = ?",
			b.EdgeID, b.Stream).Scan(&wm, &count)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err := b.GapCheck(wm); err != nil {
			return err
		}
		pending := b.Pending(wm)
		if len(pending) == 0 {
			return nil
		}
		if err := insertRecords(ctx, tx, &b, pending); err != nil {
			return err
		}
		wm = pending[len(pending)-1].Seq
		_, err = tx.ExecContext(ctx, `INSERT INTO edge_watermarks (edge_id, stream, seq, count, updated_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (edge_id, stream) DO UPDATE SET seq = excluded.seq, count = excluded.count, updated_at = excluded.updated_at`,
			b.EdgeID, b.Stream, wm, count+int64(len(pending)), micros(db.now()))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("ingest batch edge %s stream %s from seq %d: %w", b.EdgeID, b.Stream, b.FirstSeq, err)
	}
	return wm, nil
}

func insertRecords(ctx context.Context, tx *sql.Tx, b *store.Batch, recs []store.Record) error {
	rs, err := tx.PrepareContext(ctx, "INSERT INTO edge_records (edge_id, stream, seq, time, checksum, payload) VALUES (?, ?, ?, ?, ?, ?)")
	if err != nil {
		return err
	}
	defer rs.Close()
	var vs, ds *sql.Stmt
	for i := range recs {
		r := &recs[i]
		if !r.IsVectorRecord() { // a vector sent as its parts is its own record (see ListEdgeRecords)
			if _, err := rs.ExecContext(ctx, b.EdgeID, b.Stream, r.Seq, micros(r.Time), int64(r.Checksum), blob(r.Payload)); err != nil {
				return err
			}
		}
		if d := r.EdgeDecision(b.EdgeID); d != nil {
			if ds == nil {
				if ds, err = tx.PrepareContext(ctx, aiInsert); err != nil {
					return err
				}
				defer ds.Close()
			}
			if _, err := ds.ExecContext(ctx, aiArgs(d)...); err != nil {
				return err
			}
		}
		if !r.HasVector() {
			continue
		}
		if vs == nil {
			if vs, err = tx.PrepareContext(ctx, "INSERT INTO vectors (edge_id, seq, vector_id, dim, vector, metadata, time, checksum) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"); err != nil {
				return err
			}
			defer vs.Close()
		}
		var sum sql.NullInt64
		if r.IsVectorRecord() {
			sum = sql.NullInt64{Int64: int64(r.Checksum), Valid: true}
		}
		if _, err := vs.ExecContext(ctx, b.EdgeID, r.Seq, r.VectorID, len(r.Vector), r.PackedVector(),
			jsonArg(r.Metadata), micros(r.Time), sum); err != nil {
			return err
		}
	}
	return nil
}

// blob keeps an empty payload from binding as NULL.
func blob(p []byte) []byte {
	if p == nil {
		return []byte{}
	}
	return p
}

// Watermarks implements store.Store.
func (db *DB) Watermarks(ctx context.Context, edgeID string) (map[string]store.Watermark, error) {
	if err := store.ValidateEdgeID(edgeID); err != nil {
		return nil, err
	}
	r, err := db.reader()
	if err != nil {
		return nil, err
	}
	rows, err := r.QueryContext(ctx, "SELECT stream, seq, count, updated_at FROM edge_watermarks WHERE edge_id = ?", edgeID)
	if err != nil {
		return nil, fmt.Errorf("query watermarks of edge %s: %w", edgeID, err)
	}
	defer rows.Close()
	out := make(map[string]store.Watermark)
	for rows.Next() {
		var s string
		var w store.Watermark
		if err := rows.Scan(&s, &w.Seq, &w.Count, timeCol{&w.UpdatedAt}); err != nil {
			return nil, err
		}
		out[s] = w
	}
	return out, rows.Err()
}

// ListEdgeRecords implements store.Store.
func (db *DB) ListEdgeRecords(ctx context.Context, edgeID, stream string, afterSeq int64, limit int) ([]store.Record, error) {
	limit, err := store.ValidateEdgeQuery(edgeID, stream, afterSeq, limit)
	if err != nil {
		return nil, err
	}
	r, err := db.reader()
	if err != nil {
		return nil, err
	}
	rows, err := r.QueryContext(ctx, `SELECT seq, time, checksum, payload, vector_id, vector, metadata FROM (
			SELECT r.seq, r.time, r.checksum, r.payload, v.vector_id, v.vector, v.metadata
			FROM edge_records r LEFT JOIN vectors v ON r.stream = 'vectors' AND v.edge_id = r.edge_id AND v.seq = r.seq
			WHERE r.edge_id = ?1 AND r.stream = ?2 AND r.seq > ?3
			UNION ALL
			SELECT v.seq, v.time, v.checksum, x'', v.vector_id, v.vector, v.metadata
			FROM vectors v WHERE ?2 = 'vectors' AND v.edge_id = ?1 AND v.seq > ?3 AND v.checksum IS NOT NULL
		) ORDER BY seq LIMIT ?4`, edgeID, stream, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("query records of edge %s stream %s: %w", edgeID, stream, err)
	}
	defer rows.Close()
	var out []store.Record
	for rows.Next() {
		var rec store.Record
		var sum int64
		var vid sql.NullString
		var vec []byte
		if err := rows.Scan(&rec.Seq, timeCol{&rec.Time}, &sum, &rec.Payload, &vid, &vec, jsonCol{V: &rec.Metadata}); err != nil {
			return nil, err
		}
		rec.Checksum = uint32(sum)
		if vec != nil {
			rec.VectorID = vid.String
			if rec.Vector, err = store.UnpackVector(vec); err != nil {
				return nil, err
			}
		}
		rec.RebuildVectorPayload()
		out = append(out, rec)
	}
	return out, rows.Err()
}

// ListVectors implements store.Store.
func (db *DB) ListVectors(ctx context.Context, edgeID string, afterSeq int64, limit int) ([]store.Vector, error) {
	limit, err := store.ValidateEdgeQuery(edgeID, store.VectorsStream, afterSeq, limit)
	if err != nil {
		return nil, err
	}
	r, err := db.reader()
	if err != nil {
		return nil, err
	}
	rows, err := r.QueryContext(ctx, `SELECT seq, vector_id, vector, metadata, time FROM vectors
		WHERE edge_id = ? AND seq > ? ORDER BY seq LIMIT ?`, edgeID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("query vectors of edge %s: %w", edgeID, err)
	}
	defer rows.Close()
	var out []store.Vector
	for rows.Next() {
		v := store.Vector{EdgeID: edgeID}
		var packed []byte
		if err := rows.Scan(&v.Seq, &v.VectorID, &packed, jsonCol{V: &v.Metadata}, timeCol{&v.Time}); err != nil {
			return nil, err
		}
		if v.Values, err = store.UnpackVector(packed); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
