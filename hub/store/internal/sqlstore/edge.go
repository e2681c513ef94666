package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/syncproto"
)

var (
	recordCols = []string{"edge_id", "stream", "seq", "time", "checksum", "payload"}
	vectorCols = []string{"edge_id", "seq", "vector_id", "dim", "vector", "metadata", "time", "checksum"}
)

// IngestBatch implements store.Store. The watermark read, the inserts
// (records, vectors, AI decisions, with the dialect's bulk insert) and the
// watermark advance share one transaction that holds the (edge, stream)
// watermark row locked from the read to the commit (PostgreSQL: a row lock,
// which serializes the stream's batches across every hub sharing the
// database; SQLite: its single writer). A gap, or a batch with nothing new,
// rolls back: nothing is written, not even the watermark row of a fresh
// stream.
//
// A batch that is not a replay (it starts past the committed watermark,
// read without a lock) is inserted before the row is locked, so that the
// inserts of an edge's consecutive batches (the syncer keeps two in
// flight) overlap instead of queueing behind each other's lock; once
// locked, the batch commits only if it starts exactly at watermark+1, and
// is rolled back otherwise: a gap, or (when another transaction committed
// the same records first, or the two deadlocked, Dialect.Retryable) redone
// the careful way, lock first.
func (db *DB) IngestBatch(ctx context.Context, b store.Batch) (int64, error) {
	if err := b.Validate(); err != nil {
		return 0, err
	}
	var wm int64
	var err error
	for attempt := range 3 {
		wm, err = db.ingest(ctx, &b, attempt == 0)
		if !errors.Is(err, errLockFirst) && (err == nil || !db.d.Retryable(err) || ctx.Err() != nil) {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("ingest batch edge %s stream %s from seq %d: %w", b.EdgeID, b.Stream, b.FirstSeq, err)
	}
	return wm, nil
}

// batchLock is the lock a batch of b's stream ending at seq holds while
// it is written.
func batchLock(b *store.Batch, seq int64) Lock {
	return Lock{Name: fmt.Sprintf("edge_batch/%s/%s/%d", b.EdgeID, b.Stream, seq)}
}

// errNothingToDo rolls back a transaction that must not change anything.
var errNothingToDo = errors.New("nothing to do")

// errLockFirst rolls back an insert-first attempt that must be redone with
// the lock taken first.
var errLockFirst = errors.New("the batch overlaps committed records")

// ingest runs one attempt of IngestBatch: inserting first when ahead is
// set and the batch is not a replay, locking first otherwise.
func (db *DB) ingest(ctx context.Context, b *store.Batch, ahead bool) (wm int64, err error) {
	err = db.write(ctx, func(tx *Tx) error {
		if ahead && len(b.Records) > 0 {
			var committed int64
			err := tx.QueryRowContext(ctx, db.q("SELECT seq FROM edge_watermarks WHERE edge_id = ?1 AND stream = ?2"), b.EdgeID, b.Stream).Scan(&committed)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if b.FirstSeq > committed {
				return db.insertThenLock(ctx, tx, b, &wm)
			}
		}
		return db.lockThenInsert(ctx, tx, b, &wm)
	})
	if errors.Is(err, errNothingToDo) {
		return wm, nil
	}
	return wm, err
}

// lockWatermark creates the (edge, stream) watermark row if missing and
// locks it to the end of tx, returning its seq and count.
func (db *DB) lockWatermark(ctx context.Context, tx *Tx, b *store.Batch) (seq, count int64, err error) {
	err = tx.QueryRowContext(ctx, db.q(`INSERT INTO edge_watermarks (edge_id, stream, seq, count, updated_at) VALUES (?1, ?2, 0, 0, ?3)
		ON CONFLICT (edge_id, stream) DO UPDATE SET seq = edge_watermarks.seq RETURNING seq, count`),
		b.EdgeID, b.Stream, db.t(db.now())).Scan(&seq, &count)
	return seq, count, err
}

func (db *DB) advanceWatermark(ctx context.Context, tx *Tx, b *store.Batch, seq, count int64) error {
	_, err := tx.ExecContext(ctx, db.q("UPDATE edge_watermarks SET seq = ?3, count = ?4, updated_at = ?5 WHERE edge_id = ?1 AND stream = ?2"),
		b.EdgeID, b.Stream, seq, count, db.t(db.now()))
	return err
}

// lockThenInsert locks the watermark, refuses a gap, and inserts what lies
// above the watermark.
func (db *DB) lockThenInsert(ctx context.Context, tx *Tx, b *store.Batch, wm *int64) error {
	seq, count, err := db.lockWatermark(ctx, tx, b)
	if err != nil {
		return err
	}
	*wm = seq
	if err := b.GapCheck(seq); err != nil {
		return err
	}
	pending := b.Pending(seq)
	if len(pending) == 0 {
		return errNothingToDo
	}
	if err := db.insertRecords(ctx, tx, b, pending); err != nil {
		return err
	}
	*wm = pending[len(pending)-1].Seq
	return db.advanceWatermark(ctx, tx, b, *wm, count+int64(len(pending)))
}

// insertThenLock inserts the whole batch, then locks the watermark and
// keeps the inserts only if the batch starts right after it. Batches
// inserted at once take the watermark in seq order: each holds the lock of
// its last seq from its start (batchLock) and, before the watermark, waits
// for the lock of the seq before its first, held by its predecessor until
// that commits; else the one behind, faster to insert, would find a gap.
func (db *DB) insertThenLock(ctx context.Context, tx *Tx, b *store.Batch, wm *int64) error {
	if err := db.d.Lock(ctx, tx, batchLock(b, b.LastSeq())); err != nil {
		return err
	}
	if err := db.insertRecords(ctx, tx, b, b.Records); err != nil {
		return err
	}
	if err := db.d.Lock(ctx, tx, batchLock(b, b.FirstSeq-1)); err != nil {
		return err
	}
	seq, count, err := db.lockWatermark(ctx, tx, b)
	if err != nil {
		return err
	}
	*wm = seq
	if err := b.GapCheck(seq); err != nil {
		return err
	}
	if b.FirstSeq <= seq {
		return errLockFirst
	}
	*wm = b.Records[len(b.Records)-1].Seq
	return db.advanceWatermark(ctx, tx, b, *wm, count+int64(len(b.Records)))
}

// insertRecords inserts recs of b: an edge_records row each, except a
// vector sent as its parts, which is its own record in vectors (see
// ListEdgeRecords); a vectors row for each vector; an ai_decisions row for
// each decision.
func (db *DB) insertRecords(ctx context.Context, tx *Tx, b *store.Batch, recs []store.Record) error {
	rows := make([][]any, 0, len(recs))
	var vecs, decisions [][]any
	for i := range recs {
		r := &recs[i]
		t := db.t(r.Time)
		if d := r.EdgeDecision(b.EdgeID); d != nil {
			decisions = append(decisions, db.aiRow(d))
		}
		var sum any // NULL: the vector of a record kept in edge_records
		if r.IsVectorRecord() {
			sum = int64(r.Checksum)
		} else {
			rows = append(rows, []any{b.EdgeID, b.Stream, r.Seq, t, int64(r.Checksum), blob(r.Payload)})
		}
		if r.HasVector() {
			vecs = append(vecs, []any{b.EdgeID, r.Seq, r.VectorID, r.Dim(), r.Vector, jsonArg(r.Metadata), t, sum})
		}
	}
	for _, ins := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{{"edge_records", recordCols, rows}, {"vectors", vectorCols, vecs}, {"ai_decisions", aiInsertCols, decisions}} {
		if len(ins.rows) == 0 {
			continue
		}
		if err := db.d.BulkInsert(ctx, tx, ins.table, ins.cols, ins.rows); err != nil {
			return fmt.Errorf("insert into %s: %w", ins.table, err)
		}
	}
	return nil
}

// Watermarks implements store.Store.
func (db *DB) Watermarks(ctx context.Context, edgeID string) (map[string]store.Watermark, error) {
	if err := store.ValidateEdgeID(edgeID); err != nil {
		return nil, err
	}
	out := make(map[string]store.Watermark)
	err := db.query(ctx, func(rows *sql.Rows) error {
		var s string
		var w store.Watermark
		if err := rows.Scan(&s, &w.Seq, &w.Count, timeCol{&w.UpdatedAt}); err != nil {
			return err
		}
		out[s] = w
		return nil
	}, "SELECT stream, seq, count, updated_at FROM edge_watermarks WHERE edge_id = ?", edgeID)
	if err != nil {
		return nil, fmt.Errorf("query watermarks of edge %s: %w", edgeID, err)
	}
	return out, nil
}

// listEdgeRecordsSQL reads a stream's records in seq order: the
// edge_records rows (with the vector of a legacy vectors record beside
// its payload) and, on stream vectors, the vectors sent as their parts,
// which are rows of vectors only (checksum set, no payload: it is rebuilt
// by store.Record.RebuildVectorPayload).
const listEdgeRecordsSQL = `SELECT seq, time, checksum, payload, vector_id, vector, metadata FROM (
		SELECT r.seq, r.time, r.checksum, r.payload, v.vector_id, v.vector, v.metadata
		FROM edge_records r LEFT JOIN vectors v ON r.stream = 'vectors' AND v.edge_id = r.edge_id AND v.seq = r.seq
		WHERE r.edge_id = ?1 AND r.stream = ?2 AND r.seq > ?3
		UNION ALL
		SELECT v.seq, v.time, v.checksum, NULL, v.vector_id, v.vector, v.metadata
		FROM vectors v WHERE ?2 = 'vectors' AND v.edge_id = ?1 AND v.seq > ?3 AND v.checksum IS NOT NULL
	) rec ORDER BY seq LIMIT ?4`

// ListEdgeRecords implements store.Store.
func (db *DB) ListEdgeRecords(ctx context.Context, edgeID, stream string, afterSeq int64, limit int) ([]store.Record, error) {
	limit, err := store.ValidateEdgeQuery(edgeID, stream, afterSeq, limit)
	if err != nil {
		return nil, err
	}
	var out []store.Record
	err = db.query(ctx, func(rows *sql.Rows) error {
		var rec store.Record
		var sum int64
		var vid sql.NullString
		if err := rows.Scan(&rec.Seq, timeCol{&rec.Time}, &sum, &rec.Payload, &vid, &rec.Vector, jsonCol{&rec.Metadata}); err != nil {
			return err
		}
		rec.Checksum = uint32(sum)
		rec.VectorID = vid.String
		rec.RebuildVectorPayload()
		out = append(out, rec)
		return nil
	}, listEdgeRecordsSQL, edgeID, stream, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("query records of edge %s stream %s: %w", edgeID, stream, err)
	}
	return out, nil
}

// ListVectors implements store.Store.
func (db *DB) ListVectors(ctx context.Context, edgeID string, afterSeq int64, limit int) ([]store.Vector, error) {
	limit, err := store.ValidateEdgeQuery(edgeID, store.VectorsStream, afterSeq, limit)
	if err != nil {
		return nil, err
	}
	var out []store.Vector
	err = db.query(ctx, func(rows *sql.Rows) error {
		v := store.Vector{EdgeID: edgeID}
		var packed []byte
		if err := rows.Scan(&v.Seq, &v.VectorID, &packed, jsonCol{&v.Metadata}, timeCol{&v.Time}); err != nil {
			return err
		}
		var err error
		v.Values, err = syncproto.UnpackFloat32(packed)
		out = append(out, v)
		return err
	}, `SELECT seq, vector_id, vector, metadata, time FROM vectors WHERE edge_id = ? AND seq > ? ORDER BY seq LIMIT ?`, edgeID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("query vectors of edge %s: %w", edgeID, err)
	}
	return out, nil
}
