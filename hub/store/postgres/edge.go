package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/redforge/controltower/hub/store"
)

var (
	recordCols = []string{"edge_id", "stream", "seq", "time", "checksum", "payload"}
	vectorCols = []string{"edge_id", "seq", "vector_id", "dim", "vector", "metadata", "time", "checksum"}
)

// IngestBatch implements store.Store. The (edge, stream) watermark row is
// created if missing and locked FOR UPDATE, which serializes batches of
// one stream across every hub sharing the database; records (and their
// vectors and AI decisions) go in with COPY from CopyThreshold records.
func (db *DB) IngestBatch(ctx context.Context, b store.Batch) (int64, error) {
	if err := b.Validate(); err != nil {
		return 0, err
	}
	var wm int64
	err := db.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO edge_watermarks (edge_id, stream, seq, count, updated_at)
			VALUES ($1, $2, 0, 0, $3) ON CONFLICT DO NOTHING`, b.EdgeID, b.Stream, ts(db.now())); err != nil {
			return err
		}
		var count int64
		if err := tx.QueryRow(ctx, "SELECT seq, count FROM edge_watermarks WHERE edge_id = $1 AND stream = $2 FOR UPDATE",
			b.EdgeID, b.Stream).Scan(&wm, &count); err != nil {
			return err
		}
		if err := b.GapCheck(wm); err != nil {
			return err
		}
		pending := b.Pending(wm)
		if len(pending) == 0 {
			return errNothingToDo // roll back the placeholder row of a fresh stream
		}
		if err := db.insertRecords(ctx, tx, &b, pending); err != nil {
			return err
		}
		wm = pending[len(pending)-1].Seq
		_, err := tx.Exec(ctx, "UPDATE edge_watermarks SET seq = $3, count = $4, updated_at = $5 WHERE edge_id = $1 AND stream = $2",
			b.EdgeID, b.Stream, wm, count+int64(len(pending)), ts(db.now()))
		return err
	})
	if errors.Is(err, errNothingToDo) {
		return wm, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ingest batch edge %s stream %s from seq %d: %w", b.EdgeID, b.Stream, b.FirstSeq, err)
	}
	return wm, nil
}

// errNothingToDo rolls back a transaction that must not change anything.
var errNothingToDo = errors.New("postgres: nothing to do")

func (db *DB) insertRecords(ctx context.Context, tx pgx.Tx, b *store.Batch, recs []store.Record) error {
	rows := make([][]any, 0, len(recs))
	var vecs, decisions [][]any
	for i := range recs {
		r := &recs[i]
		if d := r.EdgeDecision(b.EdgeID); d != nil {
			decisions = append(decisions, aiRow(d))
		}
		if !r.HasVector() {
			rows = append(rows, []any{b.EdgeID, b.Stream, r.Seq, ts(r.Time), int64(r.Checksum), blob(r.Payload)})
			continue
		}
		var sum *int64 // a vector sent as its parts is its own record (see ListEdgeRecords)
		if r.IsVectorRecord() {
			sum = new(int64(r.Checksum))
		} else {
			rows = append(rows, []any{b.EdgeID, b.Stream, r.Seq, ts(r.Time), int64(r.Checksum), blob(r.Payload)})
		}
		vecs = append(vecs, []any{b.EdgeID, r.Seq, r.VectorID, len(r.Vector), r.PackedVector(),
			jsonArg(r.Metadata), ts(r.Time), sum})
	}
	if err := db.bulk(ctx, tx, "edge_records", recordCols, rows); err != nil {
		return err
	}
	if err := db.bulk(ctx, tx, "vectors", vectorCols, vecs); err != nil {
		return err
	}
	return db.bulk(ctx, tx, "ai_decisions", aiInsertCols, decisions)
}

// blob keeps an empty payload from being sent as NULL.
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
	p, err := db.conn()
	if err != nil {
		return nil, err
	}
	rows, err := p.Query(ctx, "SELECT stream, seq, count, updated_at FROM edge_watermarks WHERE edge_id = $1", edgeID)
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

// listEdgeRecordsSQL reads a stream's records in seq order: the
// edge_records rows (with the vector of a legacy vectors record beside
// its payload) and, on stream vectors, the vectors sent as their parts,
// which are rows of vectors only (checksum set, payload rebuilt by
// store.Record.RebuildVectorPayload).
const listEdgeRecordsSQL = `SELECT seq, time, checksum, payload, vector_id, vector, metadata FROM (
		SELECT r.seq, r.time, r.checksum, r.payload, v.vector_id, v.vector, v.metadata
		FROM edge_records r LEFT JOIN vectors v ON r.stream = 'vectors' AND v.edge_id = r.edge_id AND v.seq = r.seq
		WHERE r.edge_id = $1 AND r.stream = $2 AND r.seq > $3
		UNION ALL
		SELECT v.seq, v.time, v.checksum, ''::bytea, v.vector_id, v.vector, v.metadata
		FROM vectors v WHERE $2 = 'vectors' AND v.edge_id = $1 AND v.seq > $3 AND v.checksum IS NOT NULL
	) rec ORDER BY seq LIMIT $4`

// ListEdgeRecords implements store.Store.
func (db *DB) ListEdgeRecords(ctx context.Context, edgeID, stream string, afterSeq int64, limit int) ([]store.Record, error) {
	limit, err := store.ValidateEdgeQuery(edgeID, stream, afterSeq, limit)
	if err != nil {
		return nil, err
	}
	p, err := db.conn()
	if err != nil {
		return nil, err
	}
	rows, err := p.Query(ctx, listEdgeRecordsSQL, edgeID, stream, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("query records of edge %s stream %s: %w", edgeID, stream, err)
	}
	defer rows.Close()
	var out []store.Record
	for rows.Next() {
		var rec store.Record
		var sum int64
		var vid *string
		var vec []byte
		if err := rows.Scan(&rec.Seq, timeCol{&rec.Time}, &sum, &rec.Payload, &vid, &vec, jsonCol{V: &rec.Metadata}); err != nil {
			return nil, err
		}
		rec.Checksum = uint32(sum)
		if vec != nil {
			if vid != nil {
				rec.VectorID = *vid
			}
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
	p, err := db.conn()
	if err != nil {
		return nil, err
	}
	rows, err := p.Query(ctx, `SELECT seq, vector_id, vector, metadata, time FROM vectors
		WHERE edge_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, edgeID, afterSeq, limit)
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
