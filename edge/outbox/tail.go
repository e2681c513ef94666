package outbox

import "sync"

// DefaultTailBytes bounds the payload bytes of the in-memory tail.
const DefaultTailBytes = 16 << 20

// tail holds, per stream, the run of records committed most recently, so
// that Pending for a stream synced as fast as it is written (the usual
// case) reads them from memory instead of the database. The writer
// goroutine feeds it after each commit: appended records, acks, and a
// reset after an eviction rewrote payloads. It never holds a record that
// is not committed, and Pending falls back to the database for anything
// it does not hold.
type tail struct {
	mu      sync.Mutex
	max     int64 // payload bytes held at most; 0: no tail
	bytes   int64
	streams map[string]*streamTail
}

// streamTail is one stream's run.
type streamTail struct {
	recs  []Record // contiguous seqs, ascending
	last  int64    // highest seq committed
	acked int64    // highest seq acked
	known bool     // last is the stream's last committed seq (primed, or a record seen since Open)
}

func newTail(max int64) *tail { return &tail{max: max, streams: map[string]*streamTail{}} }

// prime sets what the database says of a stream at Open.
func (t *tail) prime(stream string, last, acked int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stream(stream)
	st.last, st.acked, st.known = last, acked, true
}

func (t *tail) stream(name string) *streamTail {
	st := t.streams[name]
	if st == nil {
		st = &streamTail{}
		t.streams[name] = st
	}
	return st
}

// add appends committed records (each payload already copied), in seq
// order; a record that does not continue the run starts a new one.
// Unless hold, it only learns their seqs.
func (t *tail) add(recs []Record, hold bool) {
	if len(recs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range recs {
		st := t.stream(r.Stream)
		st.known = true
		if !hold || t.max <= 0 {
			t.dropFront(st, len(st.recs)) // the run would have a hole
			st.last = r.Seq
			continue
		}
		if n := len(st.recs); n > 0 && st.recs[n-1].Seq+1 != r.Seq {
			t.dropFront(st, n)
		}
		st.recs = append(st.recs, r)
		st.last = r.Seq
		t.bytes += int64(len(r.Payload))
		if t.bytes > t.max {
			t.dropFront(st, max(1, len(st.recs)/4)) // the oldest quarter of the stream that grew
		}
	}
}

// dropFront forgets st's n oldest records.
func (t *tail) dropFront(st *streamTail, n int) {
	n = min(n, len(st.recs))
	for i := range n {
		t.bytes -= int64(len(st.recs[i].Payload))
		st.recs[i] = Record{} // let the payload go
	}
	st.recs = st.recs[n:]
}

// ack forgets stream's records up to upto.
func (t *tail) ack(stream string, upto int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stream(stream)
	st.acked = max(st.acked, upto)
	n := 0
	for n < len(st.recs) && st.recs[n].Seq <= upto {
		n++
	}
	t.dropFront(st, n)
}

// reset forgets every record (payloads changed under them), keeping what
// it knows of seqs.
func (t *tail) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, st := range t.streams {
		t.dropFront(st, len(st.recs))
	}
}

// read returns up to limit records of stream with seq > after, and true,
// when the tail can answer: it holds seq after+1 (after raised to the
// acked seq, below which nothing is left), or after is at the last
// committed seq (nothing pending). Otherwise the database must. A stream
// never seen (not in the database at Open, nothing appended since) is
// left to the database.
func (t *tail) read(stream string, after int64, limit int) ([]Record, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.streams[stream]
	if st == nil {
		return nil, false
	}
	after = max(after, st.acked)
	if st.known && after >= st.last {
		return nil, true
	}
	if len(st.recs) == 0 || after+1 < st.recs[0].Seq || after+1 > st.recs[len(st.recs)-1].Seq {
		return nil, false
	}
	from := int(after + 1 - st.recs[0].Seq)
	return append([]Record(nil), st.recs[from:min(len(st.recs), from+limit)]...), true
}
