package outbox

import (
	"context"
	"database/sql"
	"fmt"
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
	last  map[string]int64
	acked map[string]int64
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
	for i, r := range live {
		r.done <- results[i]
	}
}

type delta struct{ n, bytes int64 }

// apply runs the batch in one transaction. A returned error means nothing
// of the batch was committed. Per-request refusals (ErrAckBeyondLast) are
// in results and do not fail the batch.
func (o *Outbox) apply(batch []*request) ([]result, error) {
	ctx := context.Background() // a begun batch runs to its end
	tx, err := o.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() // no-op after Commit
	next, err := loadWriterState(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("read stream state: %w", err)
	}
	ins, err := tx.Prepare(sqlInsert)
	if err != nil {
		return nil, fmt.Errorf("prepare insert: %w", err)
	}
	defer ins.Close()

	results := make([]result, len(batch))
	added := map[string]*delta{}
	for i, r := range batch {
		switch r.op {
		case opAppend:
			seq := next.last[r.stream] + 1
			if _, err := ins.Exec(r.stream, seq, r.arrived, int64(r.checksum), r.payload); err != nil {
				return nil, fmt.Errorf("insert %s seq %d: %w", r.stream, seq, err)
			}
			next.last[r.stream] = seq
			d := added[r.stream]
			if d == nil {
				d = &delta{}
				added[r.stream] = d
			}
			d.n++
			d.bytes += int64(len(r.payload))
			results[i].seq = seq
		case opAck:
			refused, err := applyAck(tx, r, next)
			if err != nil {
				return nil, err
			}
			results[i].err = refused
		}
	}
	for stream, d := range added {
		if _, err := tx.Exec(sqlBumpLast, next.last[stream], d.n, d.bytes, stream); err != nil {
			return nil, fmt.Errorf("update stream %s: %w", stream, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return results, nil
}

// applyAck deletes r.stream's records up to r.upto inside tx. It returns
// refused for an ack the caller got wrong, err for a database failure.
func applyAck(tx *sql.Tx, r *request, st writerState) (refused, err error) {
	if r.upto > st.last[r.stream] {
		return fmt.Errorf("%w (last is %d)", ErrAckBeyondLast, st.last[r.stream]), nil
	}
	if r.upto <= st.acked[r.stream] {
		return nil, nil // already acked: a retried ack is a no-op
	}
	var n, bytes int64
	if err := tx.QueryRow(sqlAckCount, r.stream, r.upto).Scan(&n, &bytes); err != nil {
		return nil, fmt.Errorf("ack %s: count: %w", r.stream, err)
	}
	if _, err := tx.Exec(sqlAckDelete, r.stream, r.upto); err != nil {
		return nil, fmt.Errorf("ack %s: delete: %w", r.stream, err)
	}
	if _, err := tx.Exec(sqlAckBump, r.upto, n, bytes, r.stream); err != nil {
		return nil, fmt.Errorf("ack %s: update stream: %w", r.stream, err)
	}
	st.acked[r.stream] = r.upto
	return nil, nil
}
