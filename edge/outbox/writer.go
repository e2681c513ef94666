package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// The writer goroutine is the only code that writes to the database. It
// takes the first queued request, collects more (up to MaxBatch, lingering
// at most MaxBatchDelay), applies them in queue order in one IMMEDIATE
// transaction and commits; only then does it answer each caller. Seqs are
// therefore assigned in commit order and published only once durable.

type opKind int8

const (
	opAppend opKind = iota + 1
	opAck
)

type request struct {
	ctx      context.Context
	op       opKind
	stream   string
	payload  []byte
	arrived  int64 // unix nanoseconds
	checksum uint32
	upto     int64 // opAck
	done     chan result
}

type result struct {
	seq int64
	err error
}

// writerState is streams.last_seq and streams.acked_seq as read inside the
// batch's IMMEDIATE transaction, i.e. under SQLite's write lock. Reading it
// there rather than caching it keeps seqs correct even if another process
// wrote the same file (a misconfiguration, but not a silent one: the seqs
// stay unique and gap-free).
type writerState struct {
	last    map[string]int64
	acked   map[string]int64
	bytes   map[string]int64 // payload bytes held, kept current through the batch
	evicted map[string]int64 // highest evicted seq
	dead    map[string]int64 // acked bytes still in the stream's oldest segment (segments.go)
}

func (o *Outbox) runWriter() {
	defer close(o.done)
	for {
		select {
		case r := <-o.reqs:
			o.commit(o.collect(r, o.MaxBatchDelay))
		case <-o.stop:
			o.drain()
			return
		}
	}
}

// runCheckpointer folds the WAL into the database file every
// CheckpointInterval in which something was committed, until Close. A
// failed checkpoint is retried at the next tick; the WAL keeps every
// commit either way.
func (o *Outbox) runCheckpointer() {
	defer close(o.ckDone)
	t := time.NewTicker(o.CheckpointInterval)
	defer t.Stop()
	var done int64
	for {
		select {
		case <-o.stop:
			return
		case <-t.C:
		}
		if n := o.commits.Load(); n != done {
			if _, err := o.ck.Exec("PRAGMA wal_checkpoint(PASSIVE)"); err == nil {
				done = n
			}
		}
	}
}

// drain commits everything still queued. It runs after Close has stopped
// new requests from entering the queue.
func (o *Outbox) drain() {
	for {
		select {
		case r := <-o.reqs:
			o.commit(o.collect(r, 0))
		default:
			return
		}
	}
}

// collect builds a batch starting with first.
func (o *Outbox) collect(first *request, linger time.Duration) []*request {
	batch := []*request{first}
	var timeout <-chan time.Time
	if linger > 0 {
		t := time.NewTimer(linger)
		defer t.Stop()
		timeout = t.C
	}
	for len(batch) < o.MaxBatch {
		if timeout == nil {
			select {
			case r := <-o.reqs:
				batch = append(batch, r)
			default:
				return batch
			}
			continue
		}
		select {
		case r := <-o.reqs:
			batch = append(batch, r)
		case <-timeout:
			return batch
		case <-o.stop:
			return batch
		}
	}
	return batch
}

// commit applies batch in one transaction and answers every request.
func (o *Outbox) commit(batch []*request) {
	live := make([]*request, 0, len(batch))
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil { // gave up before its transaction began
			r.done <- result{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	results, err := o.apply(live)
	if err != nil {
		o.lastErr.Store(&err)
		for _, r := range live {
			r.done <- result{err: err}
		}
		return
	}
	o.lastErr.Store(nil)
	o.commits.Add(1)
	o.feedTail(live, results)
	for i, r := range live {
		r.done <- results[i]
	}
}

// feedTail hands a committed batch to the tail: its appended records (the
// callers' payloads, which they do not modify, see Append) and its acks, in
// queue order. A batch that evicted payloads resets the tail instead, its own
// records included (one may already be a tombstone).
func (o *Outbox) feedTail(batch []*request, results []result) {
	hold := !o.evicted
	if o.evicted {
		o.evicted = false
		o.tail.reset()
		o.sizes.evicted() // after the reset: see readSizes
	}
	var recs []Record
	for i, r := range batch {
		if results[i].err != nil {
			continue
		}
		switch r.op {
		case opAppend:
			recs = append(recs, Record{Stream: r.stream, Seq: results[i].seq, Arrived: time.Unix(0, r.arrived).UTC(),
				Payload: r.payload, Checksum: r.checksum})
		case opAck:
			o.tail.add(recs, hold)
			recs = recs[:0]
			o.tail.ack(r.stream, r.upto)
		}
	}
	o.tail.add(recs, hold)
}

type delta struct{ n, bytes int64 }

// emptyBlob is the payload column of a record whose payload is in a segment.
var emptyBlob = []byte{}

// apply runs the batch in one transaction. A returned error means nothing
// of the batch was committed. Per-request refusals (ErrAckBeyondLast) are
// in results and do not fail the batch.
func (o *Outbox) apply(batch []*request) (_ []result, err error) {
	ctx := context.Background() // a begun batch runs to its end
	tx, err := o.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() // no-op after Commit
	defer func() {
		if err != nil {
			o.segs.failed()
		}
	}()
	next, err := loadWriterState(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("read stream state: %w", err)
	}
	ins := rowInserter{tx: tx, nos: o.nos}
	defer ins.close()

	results := make([]result, len(batch))
	added := map[string]*delta{}
	for i, r := range batch {
		switch r.op {
		case opAppend:
			if o.Budget > 0 {
				if err := ins.flush(); err != nil { // eviction must see every earlier record
					return nil, err
				}
				refused, err := o.makeRoom(tx, next, r)
				if err != nil {
					return nil, err
				}
				if refused != nil {
					results[i].err = refused
					continue
				}
			}
			seq := next.last[r.stream] + 1
			if seq > maxSeq {
				results[i].err = fmt.Errorf("%w: %s has used all %d seqs", ErrFull, r.stream, int64(maxSeq))
				continue
			}
			var seg *segment
			var off int64
			if o.inSegment(len(r.payload)) {
				if seg, err = o.activeSegment(tx, o.nos[r.stream], seq, len(r.payload)); err != nil {
					return nil, err
				}
				if off, err = o.segs.add(seg, seq, r.payload); err != nil {
					return nil, err
				}
			}
			if err := ins.add(r, seq, seg, off); err != nil {
				return nil, err
			}
			next.last[r.stream] = seq
			d := added[r.stream]
			if d == nil {
				d = &delta{}
				added[r.stream] = d
			}
			d.n++
			d.bytes += int64(len(r.payload))
			next.bytes[r.stream] += int64(len(r.payload))
			results[i].seq = seq
		case opAck:
			if err := ins.flush(); err != nil {
				return nil, err
			}
			refused, err := o.applyAck(tx, r, next)
			if err != nil {
				return nil, err
			}
			results[i].err = refused
		}
	}
	if err := ins.flush(); err != nil {
		return nil, err
	}
	if err := o.segs.sync(tx); err != nil { // the payloads are durable before the rows commit
		return nil, err
	}
	for stream, d := range added {
		if _, err := tx.Exec(sqlBumpLast, next.last[stream], d.n, d.bytes, stream); err != nil {
			return nil, fmt.Errorf("update stream %s: %w", stream, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	o.segs.committed(o.segmentSize())
	return results, nil
}

// applyAck deletes r.stream's records up to r.upto inside tx. It returns
// refused for an ack the caller got wrong, err for a database failure.
func (o *Outbox) applyAck(tx *sql.Tx, r *request, st writerState) (refused, err error) {
	no := o.nos[r.stream]
	if r.upto > st.last[r.stream] {
		return fmt.Errorf("%w (last is %d)", ErrAckBeyondLast, st.last[r.stream]), nil
	}
	if r.upto <= st.acked[r.stream] {
		return nil, nil // already acked: a retried ack is a no-op
	}
	// The bytes freed come from what Pending read (readSizes) when it read
	// exactly these records since the last eviction; else from a scan
	// (length() reads a blob's size from its record header, not the blob).
	// Then the delete; a DELETE … RETURNING handed every row to Go.
	lo, hi := recordKey(no, 0), recordKey(no, r.upto)
	var n, bytes int64
	known := false
	if !o.evicted { // an eviction earlier in this transaction may have shrunk them
		bytes, known = o.sizes.take(r.stream, st.acked[r.stream], r.upto)
	}
	if known {
		n = r.upto - st.acked[r.stream] // every seq from acked+1 to upto has its row: only acks delete
	} else {
		o.ackScans.Add(1)
		if err := tx.QueryRow(sqlAckSize, lo, hi).Scan(&n, &bytes); err != nil {
			return nil, fmt.Errorf("ack %s: size: %w", r.stream, err)
		}
	}
	dead, err := o.ackSegments(tx, no, r.upto)
	if err != nil {
		return nil, fmt.Errorf("ack %s: %w", r.stream, err)
	}
	if _, err := tx.Exec(sqlAckDelete, lo, hi); err != nil {
		return nil, fmt.Errorf("ack %s: delete: %w", r.stream, err)
	}
	if _, err := tx.Exec(sqlAckBump, r.upto, n, bytes, dead, r.stream); err != nil {
		return nil, fmt.Errorf("ack %s: update stream: %w", r.stream, err)
	}
	st.acked[r.stream] = r.upto
	st.bytes[r.stream] -= bytes
	st.dead[r.stream] = dead
	return nil, nil
}

// ackSegments deletes the segments rows of stream no whose records are
// all acked by an ack up to upto (their files are unlinked after the
// commit) and returns the stream's dead bytes after it: the acked prefix
// of the oldest segment left, which ends where its first record above
// upto starts.
func (o *Outbox) ackSegments(tx *sql.Tx, no, upto int64) (dead int64, err error) {
	if err := o.segs.flushRows(tx); err != nil {
		return 0, err
	}
	rows, err := tx.Query(sqlStreamSegments, no)
	if err != nil {
		return 0, fmt.Errorf("segments: %w", err)
	}
	var drop []int64
	var head struct{ id, first int64 }
	for rows.Next() {
		var id, first, last, size int64
		if err := rows.Scan(&id, &first, &last, &size); err != nil {
			rows.Close()
			return 0, fmt.Errorf("segments: %w", err)
		}
		if last <= upto {
			drop = append(drop, id)
		} else if head.id == 0 {
			head.id, head.first = id, first
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("segments: %w", err)
	}
	if len(drop) > 0 {
		if _, err := tx.Exec(`DELETE FROM segments WHERE no = ? AND last_seq <= ?`, no, upto); err != nil {
			return 0, fmt.Errorf("delete segments: %w", err)
		}
		for _, id := range drop {
			o.segs.drop(no, id)
		}
	}
	if head.id == 0 || head.first > upto {
		return 0, nil
	}
	if err := tx.QueryRow(`SELECT off FROM records WHERE key > ? AND key <= ? AND seg = ? ORDER BY key LIMIT 1`,
		recordKey(no, upto), recordKey(no, maxSeq), head.id).Scan(&dead); err != nil {
		return 0, fmt.Errorf("segment %d: first record above %d: %w", head.id, upto, err)
	}
	return dead, nil
}

// makeRoom enforces the disk budget for append r inside the batch's
// transaction. If r's payload does not fit, a stream that may evict frees
// room by turning its oldest payloads (then the other evictable streams')
// into Tombstone, oldest first; any other stream is refused with ErrFull.
// It returns refused for a refusal, err for a database failure.
func (o *Outbox) makeRoom(tx *sql.Tx, st writerState, r *request) (refused, err error) {
	var total int64
	for _, b := range st.bytes {
		total += b
	}
	for _, d := range st.dead {
		total += d
	}
	need := total + int64(len(r.payload)) - o.Budget
	if need <= 0 {
		return nil, nil
	}
	if !o.evictable[r.stream] {
		return fmt.Errorf("%w: %d of %d bytes used; %s is never evicted", ErrFull, total, o.Budget, r.stream), nil
	}
	order := []string{r.stream}
	for _, s := range o.Evictable {
		if s != r.stream && o.known[s] {
			order = append(order, s)
		}
	}
	for _, s := range order {
		for need > 0 {
			freed, n, err := o.evictSome(tx, st, s, need)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				break
			}
			need -= freed
		}
		if need <= 0 {
			return nil, nil
		}
	}
	return fmt.Errorf("%w: %d of %d bytes used and nothing left to evict", ErrFull, total, o.Budget), nil
}

var tombstoneSum = int64(Checksum(Tombstone))

// evictSome tombstones up to 256 of stream's oldest not-yet-evicted
// records, stopping once need bytes are freed. It returns the bytes freed
// and how many records it looked at (0: none left).
func (o *Outbox) evictSome(tx *sql.Tx, st writerState, stream string, need int64) (freed int64, n int, err error) {
	no := o.nos[stream]
	if err := o.segs.flushRows(tx); err != nil {
		return 0, 0, err
	}
	rows, err := tx.Query(sqlEvictPick, recordKey(no, max(st.evicted[stream], st.acked[stream])), recordKey(no, maxSeq))
	if err != nil {
		return 0, 0, fmt.Errorf("evict %s: %w", stream, err)
	}
	type cand struct{ seq, size, seg int64 }
	var cs []cand
	for rows.Next() {
		var c cand
		if err := rows.Scan(&c.seq, &c.size, &c.seg); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("evict %s: %w", stream, err)
		}
		c.seq = keySeq(c.seq)
		cs = append(cs, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("evict %s: %w", stream, err)
	}
	var looked, count, last int64
	dead := st.dead[stream]
	for _, c := range cs {
		if freed >= need {
			break
		}
		if c.seg > 0 {
			// A payload in a segment: evict the segment whole, with every
			// record from here to its last.
			segFreed, segCount, segLast, err := o.evictSegment(tx, stream, last, c.seq, c.seg)
			if err != nil {
				return 0, 0, err
			}
			freed += segFreed + dead
			count += segCount
			last, looked, dead = segLast, looked+1, 0
			break
		}
		last, looked = c.seq, looked+1
		if c.size <= int64(len(Tombstone)) {
			continue // too small to be worth it (or already a tombstone)
		}
		count++
		if _, err := tx.Exec(sqlEvictOne, Tombstone, tombstoneSum, recordKey(no, c.seq)); err != nil {
			return 0, 0, fmt.Errorf("evict %s seq %d: %w", stream, c.seq, err)
		}
		freed += c.size - int64(len(Tombstone))
	}
	if looked == 0 {
		return 0, 0, nil
	}
	payloadFreed := freed - (st.dead[stream] - dead) // the dead bytes are not payload
	if _, err := tx.Exec(sqlEvictBump, payloadFreed, last, count, dead, stream); err != nil {
		return 0, 0, fmt.Errorf("evict %s: %w", stream, err)
	}
	st.evicted[stream] = last
	st.bytes[stream] -= payloadFreed
	st.dead[stream] = dead
	o.evicted = true
	return freed, int(looked), nil
}

// evictSegment tombstones the records of stream from the one after
// evicted-so-far's (prev, or the first candidate seq's) up to the last
// record of segment id, which is the stream's oldest, and deletes the
// segment (its file is unlinked after the commit). It returns the payload
// bytes freed (net of the tombstones), the records tombstoned and the
// segment's last seq.
func (o *Outbox) evictSegment(tx *sql.Tx, stream string, prev, first, id int64) (freed, count, last int64, err error) {
	no := o.nos[stream]
	if err := tx.QueryRow(`SELECT last_seq FROM segments WHERE id = ?`, id).Scan(&last); err != nil {
		return 0, 0, 0, fmt.Errorf("evict %s: segment %d: %w", stream, id, err)
	}
	lo := recordKey(no, max(prev, first-1))
	hi := recordKey(no, last)
	var bytes int64
	if err := tx.QueryRow(sqlEvictRangeSize, lo, hi, len(Tombstone)).Scan(&count, &bytes); err != nil {
		return 0, 0, 0, fmt.Errorf("evict %s: segment %d: %w", stream, id, err)
	}
	if _, err := tx.Exec(sqlEvictRange, Tombstone, tombstoneSum, lo, hi, len(Tombstone)); err != nil {
		return 0, 0, 0, fmt.Errorf("evict %s: segment %d: %w", stream, id, err)
	}
	if _, err := tx.Exec(`DELETE FROM segments WHERE id = ?`, id); err != nil {
		return 0, 0, 0, fmt.Errorf("evict %s: segment %d: %w", stream, id, err)
	}
	o.segs.drop(no, id)
	return bytes - count*int64(len(Tombstone)), count, last, nil
}

// insertChunk is how many records one INSERT statement writes: one
// statement per record spent more time in database/sql and SQLite's
// statement setup than in writing the rows.
const insertChunk = 32

// rowInserter buffers a batch's new records and writes them insertChunk
// rows per statement, in order (the rest one by one).
type rowInserter struct {
	tx      *sql.Tx
	nos     map[string]int64 // stream numbers
	many    *sql.Stmt        // insertChunk rows, prepared on first use
	one     *sql.Stmt
	pending []any   // insertChunk × 7 arguments at most
	rows    []rowID // of the pending rows, for errors
}

type rowID struct {
	stream string
	seq    int64
}

func (r rowID) String() string { return fmt.Sprintf("%s seq %d", r.stream, r.seq) }

// add buffers r's row as record seq; its payload is inline unless seg is
// not nil (then it is at off in seg).
func (w *rowInserter) add(r *request, seq int64, seg *segment, off int64) error {
	payload, id, n := r.payload, int64(0), int64(0)
	if seg != nil {
		payload, id, n = emptyBlob, seg.id, int64(len(r.payload))
	}
	w.pending = append(w.pending, recordKey(w.nos[r.stream], seq), r.arrived, int64(r.checksum), payload, id, off, n)
	w.rows = append(w.rows, rowID{r.stream, seq})
	if len(w.rows) == insertChunk {
		return w.flush()
	}
	return nil
}

// flush writes every buffered row.
func (w *rowInserter) flush() error {
	defer func() { w.pending, w.rows = w.pending[:0], w.rows[:0] }()
	const cols = 7
	var err error
	if len(w.rows) == insertChunk {
		if w.many == nil {
			if w.many, err = w.tx.Prepare(sqlInsert + strings.Repeat(", (?, ?, ?, ?, ?, ?, ?)", insertChunk-1)); err != nil {
				return fmt.Errorf("prepare insert: %w", err)
			}
		}
		if _, err := w.many.Exec(w.pending...); err != nil {
			return fmt.Errorf("insert %s..%s: %w", w.rows[0], w.rows[len(w.rows)-1], err)
		}
		return nil
	}
	for i := range w.rows {
		if w.one == nil {
			if w.one, err = w.tx.Prepare(sqlInsert); err != nil {
				return fmt.Errorf("prepare insert: %w", err)
			}
		}
		if _, err := w.one.Exec(w.pending[i*cols : (i+1)*cols]...); err != nil {
			return fmt.Errorf("insert %s: %w", w.rows[i], err)
		}
	}
	return nil
}

func (w *rowInserter) close() {
	for _, st := range []*sql.Stmt{w.many, w.one} {
		if st != nil {
			st.Close()
		}
	}
}
