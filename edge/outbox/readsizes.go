package outbox

import "sync"

// readSizes remembers the payload bytes of the runs of records Pending
// handed out, so that the ack that releases exactly those runs (the
// syncer's usual ack) knows the bytes it frees without reading every
// deleted row again: on a drain of 3 KiB vectors that scan read each
// record's page a second time, a tenth of the edge's and hub's CPU
// together (hub/store/DESIGN.md, "Drain profile").
//
// A run is trusted only if no eviction committed between its read and
// the ack: evictions shrink payloads in place. The writer bumps gen after
// every commit that evicted, once the tail has forgotten its records;
// Pending reads gen before it reads. So a run read from a state before an
// eviction carries an older gen and is refused, and a run that carries the
// current gen was read after the eviction's commit. An ack in the same
// transaction as an eviction does not use runs at all (Outbox.evicted).
// Anything not covered exactly falls back to the scan (sqlAckSize).
type readSizes struct {
	mu   sync.Mutex
	gen  int64
	runs map[string][]sizeRun // per stream, in seq order, at most maxSizeRuns
}

// sizeRun is the payload bytes of seqs first..last of a stream, read at
// eviction generation gen.
type sizeRun struct{ first, last, bytes, gen int64 }

// maxSizeRuns bounds the runs kept per stream: the syncer acks what it
// read a few batches later, never dozens.
const maxSizeRuns = 16

func newReadSizes() *readSizes { return &readSizes{runs: map[string][]sizeRun{}} }

// generation returns the eviction generation, to be read before a read.
func (s *readSizes) generation() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// evicted starts a new generation: runs read before it are not trusted.
func (s *readSizes) evicted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	clear(s.runs)
}

// note records the payload bytes of recs (contiguous, in seq order) read
// at generation gen. Runs at or after recs' first seq are dropped: a
// re-read from an earlier seq (the syncer started over) replaces them.
func (s *readSizes) note(stream string, gen int64, recs []Record) {
	if len(recs) == 0 {
		return
	}
	r := sizeRun{first: recs[0].Seq, last: recs[len(recs)-1].Seq, gen: gen}
	for i := range recs {
		r.bytes += int64(len(recs[i].Payload))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen {
		return
	}
	runs := s.runs[stream]
	keep := 0
	for keep < len(runs) && runs[keep].last < r.first {
		keep++
	}
	runs = append(runs[:keep], r)
	if len(runs) > maxSizeRuns {
		runs = runs[len(runs)-maxSizeRuns:]
	}
	s.runs[stream] = runs
}

// take returns the payload bytes of seqs acked+1..upto of stream when
// runs of the current generation cover exactly that range, and forgets
// them and every run below; ok is false otherwise (the caller scans).
func (s *readSizes) take(stream string, acked, upto int64) (bytes int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	runs := s.runs[stream]
	for len(runs) > 0 && runs[0].last <= acked {
		runs = runs[1:]
	}
	s.runs[stream] = runs
	next := acked + 1
	for i, r := range runs {
		if r.first != next || r.gen != s.gen || r.last > upto {
			return 0, false
		}
		bytes += r.bytes
		if r.last == upto {
			s.runs[stream] = runs[i+1:]
			return bytes, true
		}
		next = r.last + 1
	}
	return 0, false
}
