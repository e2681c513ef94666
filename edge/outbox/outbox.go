// Package outbox is the edge node's durable queue: one SQLite database (WAL,
// synchronous=FULL) holding per-stream records that local flows produced and
// that the hub has not yet acknowledged, with payloads of SegmentThreshold
// bytes and more in append-only segment files beside it (segments.go).
//
// It owns durability, the per-stream sequence numbers the edge sync contract
// is built on (the project DESIGN.md, "Edge sync contract"), group commit
// and the stream counters reported by Stats. It does not own the transport to
// the hub (edge/syncer), payload validation (edge/broker) or the disk budget
// (a later change; see DESIGN.md in this directory for where it plugs in).
//
// All writes (Append and Ack) go through one writer goroutine that batches
// concurrent requests into one transaction. Reads (Pending, Stats) use a
// separate pool of read-only connections and never wait for the writer.
package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver (pure Go)

	"github.com/redforge/controltower/syncproto"
)

// Stream names, those of the sync contract (syncproto.Streams). Every
// record belongs to exactly one stream; each stream has its own sequence.
const (
	StreamVectors     = syncproto.StreamVectors
	StreamAudit       = syncproto.StreamAudit
	StreamAIDecisions = syncproto.StreamAIDecisions
	StreamCheckpoints = syncproto.StreamCheckpoints
	StreamMetrics     = syncproto.StreamMetrics
)

// DefaultStreams returns the streams an edge keeps, in a stable order:
// syncproto.Streams.
func DefaultStreams() []string { return syncproto.Streams() }

// DefaultEvictable returns the streams that may be evicted under the disk
// budget: vectors and metrics (re-derivable or sampled data).
func DefaultEvictable() []string { return []string{StreamVectors, StreamMetrics} }

// Tombstone is the payload an evicted record keeps: its seq stays, so the
// stream the hub receives has no gap and the eviction is visible there.
var Tombstone = []byte(`{"redforge_evicted":true}`)

// Tunables and their defaults.
const (
	// DefaultMaxBatch is the most write requests committed in one transaction.
	DefaultMaxBatch = 1024
	// DefaultMaxBatchDelay is how long the writer waits for more requests
	// after the first one of a batch. Zero means "commit what is queued now".
	DefaultMaxBatchDelay = time.Millisecond
	// DefaultQueueSize is the capacity of the write queue in front of the writer.
	DefaultQueueSize = 1024
	// DefaultBusyTimeout is SQLite's busy_timeout for every connection.
	DefaultBusyTimeout = 5 * time.Second
	// DefaultMaxReaders bounds the read-only connection pool.
	DefaultMaxReaders = 4
	// DefaultCheckpointInterval is how often the WAL is folded back into
	// the database file when something was committed.
	DefaultCheckpointInterval = 100 * time.Millisecond
)

// Errors returned by the outbox. Callers compare with errors.Is.
var (
	// ErrClosed is returned by every method once Close has begun, and before Open.
	ErrClosed = errors.New("outbox: closed")
	// ErrUnknownStream is returned for a stream name not in Outbox.Streams.
	ErrUnknownStream = errors.New("outbox: unknown stream")
	// ErrAckBeyondLast is returned by Ack for a seq that was never assigned.
	ErrAckBeyondLast = errors.New("outbox: ack beyond last assigned seq")
	// ErrFull is returned by Append when the disk budget is spent and the
	// stream may not evict (audit, ai_decisions, checkpoints by default),
	// or nothing evictable is left. The record was not stored.
	ErrFull = errors.New("outbox: disk budget exhausted")
	// ErrChecksum is returned by Record.Verify when a payload does not match its checksum.
	ErrChecksum = errors.New("outbox: checksum mismatch")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC32C (Castagnoli) of payload, the checksum stored
// with every record.
func Checksum(payload []byte) uint32 {
	return crc32.Checksum(payload, castagnoli)
}

// Record is one durable entry of a stream.
type Record struct {
	Stream   string
	Seq      int64     // strictly increasing per stream, assigned at commit
	Arrived  time.Time // when the record reached the edge (UTC, nanoseconds)
	Payload  []byte
	Checksum uint32 // CRC32C of Payload, computed by Append
}

// Verify returns an error wrapping ErrChecksum if r.Payload does not match
// r.Checksum.
func (r Record) Verify() error {
	if got := Checksum(r.Payload); got != r.Checksum {
		return fmt.Errorf("%s seq %d: stored %08x, computed %08x: %w", r.Stream, r.Seq, r.Checksum, got, ErrChecksum)
	}
	return nil
}

// StreamStats describes what a stream holds right now.
type StreamStats struct {
	Depth int64 // records not yet acked
	Bytes int64 // sum of their payload sizes
	// OldestArrived is the Arrived time of the lowest pending seq (the head of
	// the queue), zero when the stream is empty. It equals the minimum arrival
	// time unless the wall clock stepped back between appends.
	OldestArrived time.Time
	LastSeq       int64 // highest seq ever assigned; survives Ack and restart
	Evicted       int64 // records evicted under the disk budget, ever
}

// Outbox is the durable per-stream queue. Create it with New, set the
// exported fields, then call Open. It is safe for concurrent use.
type Outbox struct {
	// Path is the SQLite database file. Its directory must exist.
	Path string
	// Streams are the accepted stream names. Default: DefaultStreams().
	Streams []string
	// MaxBatch is the most write requests per transaction. Default: DefaultMaxBatch.
	MaxBatch int
	// MaxBatchDelay bounds how long the writer lingers for more requests
	// after the first of a batch. Default: DefaultMaxBatchDelay.
	MaxBatchDelay time.Duration
	// QueueSize is the write queue capacity. Default: DefaultQueueSize.
	QueueSize int
	// BusyTimeout is SQLite's busy_timeout. Default: DefaultBusyTimeout.
	BusyTimeout time.Duration
	// MaxReaders bounds the read-only connection pool. Default: DefaultMaxReaders.
	MaxReaders int
	// Budget bounds the payload bytes held by all streams together; 0
	// means no budget. See DESIGN.md, "Disk budget".
	Budget int64
	// Evictable are the streams whose oldest records may be evicted to
	// make room under Budget. Default: DefaultEvictable().
	Evictable []string
	// CheckpointInterval is how often a background goroutine folds the
	// WAL back into the database file (a PASSIVE checkpoint: it waits for
	// no one and no one waits for it) when something was committed since.
	// SQLite's own automatic checkpoint ran inside the commit that passed
	// 1000 WAL pages, a fifth of the writer's CPU, before the PUBACKs of
	// that commit; now the writer's checkpoint (at walAutoCheckpoint
	// pages) only finishes what this one left. Default:
	// DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// SegmentThreshold is the payload size from which a payload is stored
	// in a segment file beside the database instead of in it; 0 keeps
	// every payload in the database. Default: DefaultSegmentThreshold.
	// See DESIGN.md, "Segment files".
	SegmentThreshold int
	// SegmentSize is the size at which a stream's segment file is closed
	// and a new one started (smaller under a small Budget: an eighth of
	// it, at least 64 KiB). Default: DefaultSegmentSize.
	SegmentSize int64
	// TailBytes bounds the payload bytes of the records kept in memory
	// after their commit, from which Pending reads a stream that is synced
	// as it is written. 0 keeps no tail. Default: DefaultTailBytes.
	TailBytes int64

	mu        sync.RWMutex // guards state; held for reading while enqueueing
	state     int          // stateNew, stateOpen, stateClosed
	w         *sql.DB      // one connection; used only by the writer goroutine
	r         *sql.DB      // read-only pool
	ck        *sql.DB      // one connection; used only by the checkpointer goroutine
	known     map[string]bool
	nos       map[string]int64 // every stream's number in record keys (see schema.go); fixed after Open
	evictable map[string]bool
	reqs      chan *request
	stop      chan struct{}
	done      chan struct{}
	ckDone    chan struct{}
	tail      *tail
	evicted   bool // a batch evicted payloads: the tail must forget (writer goroutine only)
	sizes     *readSizes
	segs      *segStore // writer goroutine only, after Open
	lock      *os.File  // flock of the segment directory, held while open

	ackScans atomic.Int64 // acks that scanned their records for the bytes freed, for tests

	lastErr atomic.Pointer[error] // outcome of the last write batch; nil pointer = ok
	commits atomic.Int64          // committed write transactions, for tests of group commit
}

const (
	stateNew = iota
	stateOpen
	stateClosed
)

// New returns an Outbox for the database at path with default settings.
// It does no I/O.
func New(path string) *Outbox {
	return &Outbox{
		Path:          path,
		Streams:       DefaultStreams(),
		MaxBatch:      DefaultMaxBatch,
		MaxBatchDelay: DefaultMaxBatchDelay,
		QueueSize:     DefaultQueueSize,
		BusyTimeout:   DefaultBusyTimeout,
		MaxReaders:    DefaultMaxReaders,
		Evictable:     DefaultEvictable(),
		TailBytes:     DefaultTailBytes,

		SegmentThreshold: newSegmentThreshold,
		SegmentSize:      newSegmentSize,

		CheckpointInterval: DefaultCheckpointInterval,
	}
}

// Open opens or creates the database, checks that WAL and synchronous=FULL
// are in force, migrates the schema and starts the writer. It returns an
// error if the settings are invalid, the file cannot be opened or written,
// or the schema is newer than this binary understands.
func (o *Outbox) Open(ctx context.Context) (err error) {
	if err := o.validate(); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.state != stateNew {
		return fmt.Errorf("open outbox %s: already opened", o.Path)
	}
	defer func() {
		if err != nil {
			o.closeDBs()
		}
	}()
	if err := o.openDBs(ctx); err != nil {
		return fmt.Errorf("open outbox %s: %w", o.Path, err)
	}
	if err := o.migrate(ctx); err != nil {
		return fmt.Errorf("open outbox %s: %w", o.Path, err)
	}
	if err := o.recoverSegments(ctx); err != nil {
		return fmt.Errorf("open outbox %s: %w", o.Path, err)
	}
	o.evictable = map[string]bool{}
	for _, s := range o.Evictable {
		o.evictable[s] = true
	}
	o.known = make(map[string]bool, len(o.Streams))
	for _, s := range o.Streams {
		o.known[s] = true
	}
	o.tail = newTail(o.TailBytes)
	o.sizes = newReadSizes()
	if err := o.primeTail(ctx); err != nil {
		return fmt.Errorf("open outbox %s: %w", o.Path, err)
	}
	o.reqs = make(chan *request, o.QueueSize)
	o.stop = make(chan struct{})
	o.done = make(chan struct{})
	o.ckDone = make(chan struct{})
	o.state = stateOpen
	go o.runWriter()
	go o.runCheckpointer()
	return nil
}

// primeTail tells the tail every stream's last and acked seqs, so that it
// answers Pending for a stream with nothing pending (most of them, most
// of the time: the syncer polls every stream) without a query.
func (o *Outbox) primeTail(ctx context.Context) error {
	rows, err := o.w.QueryContext(ctx, "SELECT name, last_seq, acked_seq FROM streams")
	if err != nil {
		return fmt.Errorf("read streams: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var last, acked int64
		if err := rows.Scan(&name, &last, &acked); err != nil {
			return fmt.Errorf("read streams: %w", err)
		}
		o.tail.prime(name, last, acked)
	}
	return rows.Err()
}

func (o *Outbox) validate() error {
	var problems []string
	if o.Path == "" {
		problems = append(problems, "Path is empty")
	}
	if strings.Contains(o.Path, "?") {
		problems = append(problems, fmt.Sprintf("Path %q must not contain '?'", o.Path))
	}
	if len(o.Streams) == 0 {
		problems = append(problems, "Streams is empty")
	}
	for _, s := range o.Streams {
		if s == "" || len(s) > 64 {
			problems = append(problems, fmt.Sprintf("Streams: name %q must be 1-64 bytes", s))
		}
	}
	if o.MaxBatch < 1 {
		problems = append(problems, fmt.Sprintf("MaxBatch %d must be >= 1", o.MaxBatch))
	}
	if o.MaxBatchDelay < 0 {
		problems = append(problems, fmt.Sprintf("MaxBatchDelay %s must be >= 0", o.MaxBatchDelay))
	}
	if o.QueueSize < 0 {
		problems = append(problems, fmt.Sprintf("QueueSize %d must be >= 0", o.QueueSize))
	}
	if o.BusyTimeout < 0 {
		problems = append(problems, fmt.Sprintf("BusyTimeout %s must be >= 0", o.BusyTimeout))
	}
	if o.Budget < 0 {
		problems = append(problems, fmt.Sprintf("Budget %d must be >= 0", o.Budget))
	}
	if o.CheckpointInterval <= 0 {
		problems = append(problems, fmt.Sprintf("CheckpointInterval %s must be > 0", o.CheckpointInterval))
	}
	if o.SegmentThreshold < 0 {
		problems = append(problems, fmt.Sprintf("SegmentThreshold %d must be >= 0", o.SegmentThreshold))
	}
	if o.SegmentSize < 1 {
		problems = append(problems, fmt.Sprintf("SegmentSize %d must be >= 1", o.SegmentSize))
	}
	if o.MaxReaders < 1 {
		problems = append(problems, fmt.Sprintf("MaxReaders %d must be >= 1", o.MaxReaders))
	}
	if len(problems) > 0 {
		return fmt.Errorf("outbox config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Commits returns how many write transactions the outbox committed since
// Open: appended records / Commits is the group commit's batch size.
func (o *Outbox) Commits() int64 { return o.commits.Load() }

// Close stops accepting writes, commits every write already queued, waits
// for the writer, checkpoints the WAL and closes the database. Appends that
// start after Close has begun return ErrClosed. Close is idempotent.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.state != stateOpen {
		o.state = stateClosed
		o.mu.Unlock()
		return nil
	}
	o.state = stateClosed
	o.mu.Unlock()

	close(o.stop)
	<-o.done
	<-o.ckDone
	var errs []error
	// Fold the WAL back into the main file so a copy of outbox.db alone is complete.
	if _, err := o.w.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		errs = append(errs, fmt.Errorf("checkpoint: %w", err))
	}
	o.segs.closeAll()
	errs = append(errs, o.closeDBs())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close outbox %s: %w", o.Path, err)
	}
	return nil
}

// Append stores payload as the next record of stream and returns its seq.
// It returns only after the transaction holding the record has committed
// with synchronous=FULL, so a nil error means the record survives a crash
// or power loss. arrived is when the record reached the edge; it must not
// be zero. The outbox may keep payload (its in-memory tail does, until
// the record is acked): the caller must not modify it afterwards.
//
// ctx bounds only the wait for a place in the write queue and the time
// before the writer picks the request up; once its transaction has begun,
// Append waits for the outcome so the answer is always truthful. A non-nil
// error means the record was not acknowledged: it returns ErrUnknownStream,
// ErrClosed, ctx's error, or the commit error (after which a retry may store
// the payload twice; ingress is at-least-once).
func (o *Outbox) Append(ctx context.Context, stream string, payload []byte, arrived time.Time) (int64, error) {
	return o.AppendAsync(ctx, stream, payload, arrived)()
}

// AppendAsync is Append split in two: it queues the record now (waiting
// only for a place in the write queue) and returns a function that waits
// for the commit and returns what Append would. Records queued by one
// goroutine are committed in queue order, so a caller can pipeline many
// appends and still learn their outcomes in order. The wait function must
// be called exactly once.
func (o *Outbox) AppendAsync(ctx context.Context, stream string, payload []byte, arrived time.Time) func() (int64, error) {
	if arrived.IsZero() {
		return func() (int64, error) { return 0, fmt.Errorf("append to %s: arrived time is zero", stream) }
	}
	if payload == nil {
		payload = []byte{}
	}
	r := &request{
		ctx:      ctx,
		op:       opAppend,
		stream:   stream,
		payload:  payload,
		arrived:  arrived.UnixNano(),
		checksum: Checksum(payload),
		done:     make(chan result, 1),
	}
	if err := o.enqueue(ctx, r); err != nil {
		return func() (int64, error) { return 0, fmt.Errorf("append to %s: %w", stream, err) }
	}
	return func() (int64, error) {
		res := <-r.done // the writer always answers, also when closing
		if res.err != nil {
			return 0, fmt.Errorf("append to %s: %w", stream, res.err)
		}
		return res.seq, nil
	}
}

// Ack durably deletes every record of stream with seq <= uptoSeq. Acking a
// seq at or below an earlier ack is a no-op (lost acks are retried). It
// returns ErrAckBeyondLast if uptoSeq is above the stream's last assigned
// seq, ErrUnknownStream, ErrClosed, ctx's error or the commit error.
func (o *Outbox) Ack(ctx context.Context, stream string, uptoSeq int64) error {
	return o.AckAsync(ctx, stream, uptoSeq)()
}

// AckAsync is Ack split in two, as AppendAsync is Append: it queues the
// ack now and returns a function that waits for its commit and returns
// what Ack would. Requests queued by one goroutine commit in queue order,
// so a caller can release one batch while it reads the next. The wait
// function must be called exactly once.
func (o *Outbox) AckAsync(ctx context.Context, stream string, uptoSeq int64) func() error {
	r := &request{ctx: ctx, op: opAck, stream: stream, upto: uptoSeq, done: make(chan result, 1)}
	fail := func(err error) error { return fmt.Errorf("ack %s up to %d: %w", stream, uptoSeq, err) }
	if err := o.enqueue(ctx, r); err != nil {
		return func() error { return fail(err) }
	}
	return func() error {
		if res := <-r.done; res.err != nil { // the writer always answers, also when closing
			return fail(res.err)
		}
		return nil
	}
}

func (o *Outbox) enqueue(ctx context.Context, r *request) error {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.state != stateOpen {
		return ErrClosed
	}
	if !o.known[r.stream] {
		return fmt.Errorf("%w %q", ErrUnknownStream, r.stream)
	}
	select {
	case o.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pending returns up to limit records of stream with seq > afterSeq, in seq
// order, from the in-memory tail when it holds them (see TailBytes), else
// from the database. The records' payloads must not be modified. It returns ErrUnknownStream, ErrClosed, or a query error; limit
// must be positive.
func (o *Outbox) Pending(ctx context.Context, stream string, afterSeq int64, limit int) ([]Record, error) {
	if err := o.readable(stream); err != nil {
		return nil, fmt.Errorf("pending %s: %w", stream, err)
	}
	if limit <= 0 {
		return nil, fmt.Errorf("pending %s: limit %d must be > 0", stream, limit)
	}
	gen := o.sizes.generation() // before reading: see readSizes
	if recs, ok := o.tail.read(stream, afterSeq, limit); ok {
		o.sizes.note(stream, gen, recs)
		return recs, nil
	}
	for try := 0; ; try++ {
		recs, err := o.readPending(ctx, stream, afterSeq, limit)
		if errors.Is(err, errSegmentGone) && try < 8 {
			continue // released meanwhile: the database no longer lists it
		}
		if err != nil {
			return nil, fmt.Errorf("pending %s: %w", stream, err)
		}
		o.sizes.note(stream, gen, recs)
		return recs, nil
	}
}

// readPending reads Pending's records from the database and their
// payloads from segment files.
func (o *Outbox) readPending(ctx context.Context, stream string, afterSeq int64, limit int) ([]Record, error) {
	no := o.nos[stream]
	rows, err := o.r.QueryContext(ctx, sqlPending, recordKey(no, min(max(afterSeq, 0), maxSeq)), recordKey(no, maxSeq), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	recs := make([]Record, 0, min(limit, 256))
	var reads []segRead
	for rows.Next() {
		rec := Record{Stream: stream}
		var key, arrived, sum, seg, off, n int64
		if err := rows.Scan(&key, &arrived, &sum, &rec.Payload, &seg, &off, &n); err != nil {
			return nil, err
		}
		rec.Seq = keySeq(key)
		rec.Arrived = time.Unix(0, arrived).UTC()
		rec.Checksum = uint32(sum)
		if seg > 0 {
			reads = append(reads, segRead{i: len(recs), seg: seg, off: off, n: n})
		}
		recs = append(recs, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close() // before the file reads: the read transaction ends
	if err := o.readSegments(recs, reads); err != nil {
		return nil, err
	}
	return recs, nil
}

// Stats returns the counters of every stream in the database (the
// configured streams, plus any left from an older configuration). It
// returns ErrClosed or a query error.
func (o *Outbox) Stats(ctx context.Context) (map[string]StreamStats, error) {
	if err := o.readable(""); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	rows, err := o.r.QueryContext(ctx, sqlStats)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer rows.Close()
	out := make(map[string]StreamStats, len(o.Streams))
	for rows.Next() {
		var name string
		var st StreamStats
		var oldest sql.NullInt64
		if err := rows.Scan(&name, &st.LastSeq, &st.Depth, &st.Bytes, &st.Evicted, &oldest); err != nil {
			return nil, fmt.Errorf("stats: %w", err)
		}
		if oldest.Valid {
			st.OldestArrived = time.Unix(0, oldest.Int64).UTC()
		}
		out[name] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	return out, nil
}

// Health returns nil if the outbox is open, its last write batch committed
// and the database answers a read. The write error is sticky until a later
// batch commits, so a full or failing disk shows here.
func (o *Outbox) Health(ctx context.Context) error {
	if err := o.readable(""); err != nil {
		return err
	}
	if p := o.lastErr.Load(); p != nil {
		return fmt.Errorf("last write: %w", *p)
	}
	var one int
	if err := o.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	return nil
}

// readable checks that the outbox is open and, if stream is not empty, known.
func (o *Outbox) readable(stream string) error {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if o.state != stateOpen {
		return ErrClosed
	}
	if stream != "" && !o.known[stream] {
		return fmt.Errorf("%w %q", ErrUnknownStream, stream)
	}
	return nil
}
