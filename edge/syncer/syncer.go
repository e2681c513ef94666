// Package syncer is the edge's push loop: it reads contiguous runs of
// records per stream from the outbox, sends them to the nearest reachable
// hub as syncproto batches, and deletes from the outbox only what the
// hub's ack covers. With the hub's exactly-once ingest (records at or
// below the (edge, stream) watermark are skipped) this neither loses nor
// duplicates a record across lost acks, retries, hub failover and edge
// crashes: the outbox is the only state, and it is deleted only after the
// hub says the records are durable.
//
// It owns batching, the ack handling, backoff with jitter and hub
// failover (with router): a request that makes no progress for
// ProgressTimeout (no bytes either way, none of the hub's 102 Processing
// answers) gives its hub up, and a hub's 429/503 with a Retry-After is
// waited out without marking the hub down. Each stream keeps MaxInFlight
// batches with the hubs, reads and encodes the next while the window is
// full, and releases one (an outbox ack, committed in the background)
// while it sends the next. It does not own
// enrollment or heartbeats (edge/agent) or the queue itself (edge/outbox).
package syncer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/redforge/controltower/edge/outbox"
	"github.com/redforge/controltower/router"
	"github.com/redforge/controltower/syncproto"
)

// Defaults.
const (
	DefaultMaxBatchRecords = 1000
	DefaultMaxBatchBytes   = 8 << 20
	DefaultMinBackoff      = 200 * time.Millisecond
	DefaultMaxBackoff      = 30 * time.Second
	DefaultIdleWait        = 200 * time.Millisecond
	DefaultRequestTimeout  = 60 * time.Second
	// DefaultProgressTimeout is how long a batch request may make no
	// progress before the hub is given up (see Config.ProgressTimeout).
	DefaultProgressTimeout = 5 * time.Second
	DefaultMaxInFlight     = 2
	// BatchPath is the hub route batches are POSTed to.
	BatchPath = "/api/sync/batches"
)

// Refusal and failure reasons, the label values of Stats.Failures.
const (
	ReasonNetwork      = "network"      // no hub reachable, timeout, 5xx
	ReasonBusy         = "hub_busy"     // 429/503 with Retry-After: the hub asked to wait
	ReasonGap          = "gap"          // hub expected an earlier seq; resumed from it
	ReasonGapLost      = "gap_lost"     // hub expects a seq the edge no longer has (hub data lost?)
	ReasonChecksum     = "checksum"     // hub refused a checksum (local corruption)
	ReasonInvalid      = "invalid"      // hub refused the batch's schema
	ReasonUnauthorized = "unauthorized" // 401/403: credential revoked or wrong edge
	ReasonAckBeyond    = "ack_beyond"   // hub watermark beyond the edge's last seq
	ReasonOutbox       = "outbox_error" // local read/ack failed
)

// Reasons lists every failure reason.
func Reasons() []string {
	return []string{ReasonNetwork, ReasonBusy, ReasonGap, ReasonGapLost, ReasonChecksum, ReasonInvalid, ReasonUnauthorized, ReasonAckBeyond, ReasonOutbox}
}

// Outbox is what the syncer reads and acks; *outbox.Outbox implements it.
// AckAsync queues the release of a stream's records up to a seq and
// returns the wait for its commit (acks of one stream commit in order).
type Outbox interface {
	Pending(ctx context.Context, stream string, afterSeq int64, limit int) ([]outbox.Record, error)
	AckAsync(ctx context.Context, stream string, uptoSeq int64) func() error
}

// Config configures a Syncer.
type Config struct {
	EdgeID     string
	Credential func() string // the edge credential, read per request (never logged)
	Outbox     Outbox
	Streams    []string
	Router     *router.Router // orders the hub base URLs
	Client     *http.Client   // default: one with DefaultRequestTimeout

	MaxBatchRecords int
	MaxBatchBytes   int
	MaxInFlight     int // batches of one stream with the hubs at once (default 2)
	// ProgressTimeout gives a hub up when a batch request makes no
	// progress for this long: no request bytes taken by the connection,
	// no response bytes, and none of the hub's 102 Processing answers
	// (sent every syncproto.ProgressInterval while it works on a batch).
	// A hub that dies silently then costs this, not the client's whole
	// timeout, before the next hub is tried. Default DefaultProgressTimeout.
	ProgressTimeout time.Duration
	MinBackoff      time.Duration
	MaxBackoff      time.Duration
	IdleWait        time.Duration // pause when a stream is empty
	Logger          *slog.Logger
	Now             func() time.Time
}

// StreamStats is what the syncer knows of one stream.
type StreamStats struct {
	HubWatermark  int64     // last durable watermark the hub acked
	LastSync      time.Time // last successful batch
	RecordsSynced uint64    // records the hub newly committed or confirmed
	BatchesSent   uint64
	BytesSent     uint64 // bytes on the wire (zstd, or plain protobuf when that does not compress)
	BytesUncompr  uint64 // protobuf bytes before zstd
}

// Stats is a snapshot for metrics.
type Stats struct {
	Streams  map[string]StreamStats
	Failures map[string]uint64 // by reason
	Hub      string            // the hub of the last success
}

// Syncer pushes the outbox to the hubs. Create it with New, then Run.
type Syncer struct {
	cfg      Config
	failures map[string]*atomic.Uint64

	mu      sync.Mutex
	streams map[string]*StreamStats
	hub     string
	plain   map[string]int  // by stream: batches left to send uncompressed
	zgood   map[string]bool // by stream: its last compressed batch was worth it
}

// Compression: a stream whose last compressed batch saved less than a
// tenth (packed float32 vectors barely compress) is sent as plain
// protobuf for the next plainBatches batches, then tried again, so the
// edge and the hub do not spend CPU on zstd for nothing.
const plainBatches = 32

func (s *Syncer) compressing(stream string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plain[stream] > 0 {
		s.plain[stream]--
		return false
	}
	return true
}

// compressed notes how far rawLen bytes of stream compressed and reports
// whether that was worth it: a tenth saved.
func (s *Syncer) compressed(stream string, zlen, rawLen int) (worth bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	worth = zlen*10 <= rawLen*9
	s.zgood[stream] = worth
	if !worth {
		s.plain[stream] = plainBatches
	}
	return worth
}

// New returns a Syncer; it does no I/O.
func New(cfg Config) *Syncer {
	if cfg.MaxBatchRecords <= 0 {
		cfg.MaxBatchRecords = DefaultMaxBatchRecords
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.ProgressTimeout <= 0 {
		cfg.ProgressTimeout = DefaultProgressTimeout
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.IdleWait <= 0 {
		cfg.IdleWait = DefaultIdleWait
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: DefaultRequestTimeout}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Syncer{cfg: cfg, failures: map[string]*atomic.Uint64{}, streams: map[string]*StreamStats{}, plain: map[string]int{}, zgood: map[string]bool{}}
	for _, r := range Reasons() {
		s.failures[r] = new(atomic.Uint64)
	}
	for _, st := range cfg.Streams {
		s.streams[st] = &StreamStats{}
	}
	return s
}

// Run pushes every stream, one goroutine each, until ctx ends.
func (s *Syncer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, st := range s.cfg.Streams {
		wg.Go(func() { s.runStream(ctx, st) })
	}
	wg.Wait()
}

// runStream pushes one stream until ctx ends. It keeps up to MaxInFlight
// batches with the hubs at once (batch k+1 is read, encoded and sent while
// batch k is still being committed; batch k+2 is read and encoded while
// both are), and applies their acks strictly in order. Any failure,
// refusal or partial release waits for the batches still in flight, drops
// their answers and restarts from the outbox head: the hub skips what it
// already holds, so the window changes only timing, never what is sent or
// released.
func (s *Syncer) runStream(ctx context.Context, stream string) {
	log := s.cfg.Logger.With("stream", stream)
	backoff := time.Duration(0)
	var flights []flight
	after := int64(0) // last seq handed to a flight; 0: read from the head
	// releasing is the outbox ack of the last batch the hub took: it
	// commits while the next batches are read and sent, and is waited for
	// before the next ack (so a failure surfaces one batch later).
	var releasing func() error
	released := func() error {
		if releasing == nil {
			return nil
		}
		err := releasing()
		releasing = nil
		return err
	}
	// ahead is the batch after the window, read and encoded while the
	// window is full, so that it leaves the moment a flight lands; nil
	// when none is being prepared. It reads what no flight holds, so an
	// ack committing meanwhile cannot release any of it. next takes it,
	// or reads the batch after the last one handed to a flight.
	var ahead chan preparedOrErr
	next := func() (*prepared, error) {
		if ahead == nil {
			return s.prepare(ctx, stream, after)
		}
		r := <-ahead
		ahead = nil
		return r.p, r.err
	}
	// abandon drops the batches in flight (and the one read ahead) and
	// restarts from the outbox head, once the last release is committed
	// (else the head would still hold what the hub has just taken). A
	// failed release only means those records are sent again, and the hub
	// skips them.
	abandon := func() {
		if ahead != nil {
			next() // dropped with the window
		}
		for _, f := range flights {
			<-f.done
		}
		flights, after = nil, 0
		released()
	}
	defer abandon()
	for ctx.Err() == nil {
		var err error
		for len(flights) < s.cfg.MaxInFlight {
			var p *prepared
			if p, err = next(); err != nil || p == nil {
				break
			}
			f := flight{p: p, done: make(chan pushResult, 1), behind: len(flights) > 0}
			go func() {
				ack, hub, err := s.send(ctx, f.p.body, f.p.ctype)
				f.done <- pushResult{ack, hub, err}
			}()
			flights = append(flights, f)
			after = p.b.LastSeq()
			if len(flights) == s.cfg.MaxInFlight {
				ahead = make(chan preparedOrErr, 1)
				go func(after int64) {
					p, err := s.prepare(ctx, stream, after)
					ahead <- preparedOrErr{p, err}
				}(after)
			}
		}
		if err == nil && len(flights) > 0 {
			f := flights[0]
			flights = flights[1:]
			r := <-f.done
			if f.behind && r.err == nil && r.ack.GetRefusal().GetReason() == syncproto.RefusalReason_REFUSAL_REASON_GAP {
				// The hub took this batch before the one sent ahead of it,
				// which has been released since: resend from the head.
				s.fail(ReasonGap)
				abandon()
				continue
			}
			var n int
			var wait func() error
			if err = r.err; err == nil {
				err = released()
			}
			if err == nil {
				n, wait, err = s.apply(ctx, stream, f.p.b, r.ack, r.hub, len(f.p.body), f.p.raw)
				releasing = wait
			}
			if err == nil && n != len(f.p.b.Records) {
				abandon() // only part was released: later batches would leave a hole
			}
			if err == nil {
				backoff = 0
				continue
			}
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			abandon()
			backoff = nextBackoff(backoff, s.cfg.MinBackoff, s.cfg.MaxBackoff)
			wait := backoff
			var be *busyError
			if errors.As(err, &be) {
				wait = max(wait, be.retryAfter)
			}
			log.Warn("sync failed; backing off", "error", err, "backoff", wait)
			sleep(ctx, wait)
		default: // nothing to send
			backoff = 0
			after = 0
			if err := released(); err != nil {
				log.Warn("releasing synced records failed", "error", err)
			}
			sleep(ctx, s.cfg.IdleWait)
		}
	}
}

// preparedOrErr is what prepare returned.
type preparedOrErr struct {
	p   *prepared
	err error
}

// flight is a batch with a hub; done receives the answer once.
type flight struct {
	p      *prepared
	done   chan pushResult
	behind bool // sent while an earlier batch was in flight
}

type pushResult struct {
	ack *syncproto.Ack
	hub string
	err error
}

// prepared is an encoded batch ready to send.
type prepared struct {
	b     *syncproto.Batch
	body  []byte
	ctype string // syncproto.ContentTypeBatchZstd or ContentTypeProtobuf
	raw   int
}

// prepare reads up to MaxBatchRecords records of stream after afterSeq (0:
// the head) and encodes them; nil when there are none.
func (s *Syncer) prepare(ctx context.Context, stream string, afterSeq int64) (*prepared, error) {
	recs, err := s.cfg.Outbox.Pending(ctx, stream, afterSeq, s.cfg.MaxBatchRecords)
	if err != nil {
		s.fail(ReasonOutbox)
		return nil, err
	}
	if len(recs) == 0 {
		return nil, nil
	}
	b, raw := s.batch(stream, recs)
	data, err := proto.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	p := &prepared{b: b, body: data, ctype: syncproto.ContentTypeProtobuf, raw: raw}
	if s.compressing(stream) && s.worthCompressing(stream, data) {
		z := syncproto.Compress(data)
		s.compressed(stream, len(z), len(data))
		if len(z) < len(data) {
			p.body, p.ctype = z, syncproto.ContentTypeBatchZstd
		}
	}
	return p, nil
}

// compressSample is how much of a large batch is compressed first, to
// find out cheaply whether the whole is worth compressing.
const compressSample = 128 << 10

// worthCompressing compresses the start of a batch of more than twice
// compressSample, unless the stream's last compressed batch was worth it:
// a sample that does not shrink by a tenth stands for the batch (a
// stream's records are alike), which goes plain, and the stream is sent
// plain for the next plainBatches batches, for a fraction of the CPU of
// compressing it whole (a 24th for a 3 MiB batch of vectors). Smaller
// batches, and those of a stream that compresses, are tried whole.
func (s *Syncer) worthCompressing(stream string, data []byte) bool {
	s.mu.Lock()
	good := s.zgood[stream]
	s.mu.Unlock()
	if good || len(data) <= 2*compressSample {
		return true
	}
	return s.compressed(stream, len(syncproto.Compress(data[:compressSample])), compressSample)
}

// push sends p, applies the ack and waits for the release.
func (s *Syncer) push(ctx context.Context, p *prepared) (int, error) {
	ack, hub, err := s.send(ctx, p.body, p.ctype)
	if err != nil {
		return 0, err
	}
	n, wait, err := s.apply(ctx, p.b.Stream, p.b, ack, hub, len(p.body), p.raw)
	if err == nil && wait != nil {
		err = wait()
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// nextBackoff doubles prev within [min, max] and applies full jitter in
// its upper half, so a fleet coming back online does not stampede.
func nextBackoff(prev, lo, hi time.Duration) time.Duration {
	d := max(lo, min(hi, 2*prev))
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// SyncOnce sends the head of stream (one batch) and applies the ack. It
// returns how many records the outbox released, 0 when the stream was
// empty. A gap refusal is handled here (the records the hub already has
// are released) and is not an error.
func (s *Syncer) SyncOnce(ctx context.Context, stream string) (int, error) {
	p, err := s.prepare(ctx, stream, 0)
	if err != nil || p == nil {
		return 0, err
	}
	return s.push(ctx, p)
}

// batch builds the protobuf batch from contiguous records, trimmed to
// MaxBatchBytes (at least one record).
func (s *Syncer) batch(stream string, recs []outbox.Record) (*syncproto.Batch, int) {
	b := &syncproto.Batch{EdgeId: s.cfg.EdgeID, Stream: stream, FirstSeq: recs[0].Seq}
	size := 0
	for i, r := range recs {
		if r.Seq != recs[0].Seq+int64(i) {
			break // never happens with the outbox; stop at a hole rather than send one
		}
		pr := &syncproto.Record{Seq: r.Seq, ArrivedUnixNanos: r.Arrived.UnixNano(), Checksum: r.Checksum, Payload: r.Payload}
		if stream == outbox.StreamVectors {
			if id, packed, meta, ok := syncproto.SplitVectorRecord(r.Payload); ok {
				// A canonical vector record travels as its parts.
				pr.Payload, pr.VectorId, pr.Vector, pr.Metadata = nil, id, packed, meta
			} else {
				addVector(pr) // JSON stored by an edge before the canonical form
			}
		}
		n := proto.Size(pr)
		if i > 0 && size+n > s.cfg.MaxBatchBytes {
			break
		}
		size += n
		b.Records = append(b.Records, pr)
	}
	return b, size
}

// vectorPayload is the JSON of a vectors record.
type vectorPayload struct {
	ID       string          `json:"id"`
	Vector   json.RawMessage `json:"vector"`
	Metadata json.RawMessage `json:"metadata"`
}

// addVector parses a JSON vectors payload (one an older edge stored before
// the broker kept vectors in their canonical form) and attaches the vector
// as packed float32 with its id and metadata. A payload without a vector
// (or an eviction tombstone) travels as a plain record; the payload is
// kept byte for byte either way.
func addVector(r *syncproto.Record) {
	var v vectorPayload
	if json.Unmarshal(r.Payload, &v) != nil {
		return
	}
	packed, err := syncproto.PackJSONFloats(v.Vector)
	if err != nil {
		return
	}
	r.Vector, r.VectorId = packed, v.ID
	if m := bytes.TrimSpace(v.Metadata); len(m) > 0 && !bytes.Equal(m, []byte("null")) {
		r.Metadata = m
	}
}

// errRefused is a hub refusal that retrying the same batch will not fix.
type errRefused struct{ reason, msg string }

func (e *errRefused) Error() string { return "hub refused the batch (" + e.reason + "): " + e.msg }

// busyError is a hub's 429 or 503 with a Retry-After: it is alive but
// asks the edge to wait (too many batches of this edge, or of all edges,
// being decoded at once).
type busyError struct {
	hub        string
	status     int
	retryAfter time.Duration
}

func (e *busyError) Error() string {
	return fmt.Sprintf("%s: status %d, retry after %s", e.hub, e.status, e.retryAfter)
}

// maxRetryAfter bounds how long a hub's Retry-After holds a stream back.
const maxRetryAfter = time.Minute

// send POSTs an encoded batch to the hubs in router order until one
// answers. It returns the ack (which may be a refusal) and the hub. When
// no hub took it and some said they were busy, the error is the busy
// answer with the longest Retry-After.
func (s *Syncer) send(ctx context.Context, body []byte, ctype string) (*syncproto.Ack, string, error) {
	var errs []string
	var busiest *busyError
	for _, hub := range s.cfg.Router.Ordered() {
		start := time.Now()
		ack, status, err := s.post(ctx, hub, body, ctype)
		var be *busyError
		if errors.As(err, &be) {
			// The hub is up (no failure for the router); try the next.
			if busiest == nil || be.retryAfter > busiest.retryAfter {
				busiest = be
			}
			errs = append(errs, err.Error())
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, "", ctx.Err()
			}
			s.cfg.Router.ReportFailure(hub, err)
			errs = append(errs, err.Error())
			continue
		}
		s.cfg.Router.ReportSuccess(hub, time.Since(start))
		switch status {
		case http.StatusOK, http.StatusConflict, http.StatusBadRequest, http.StatusForbidden:
			if ack != nil {
				return ack, hub, nil
			}
		}
		if status == http.StatusUnauthorized || status == http.StatusForbidden {
			s.fail(ReasonUnauthorized)
			return nil, "", &errRefused{ReasonUnauthorized, fmt.Sprintf("status %d from %s", status, hub)}
		}
		errs = append(errs, fmt.Sprintf("%s: status %d", hub, status))
	}
	if busiest != nil {
		s.fail(ReasonBusy)
		return nil, "", fmt.Errorf("no hub took the batch: %s: %w", strings.Join(errs, "; "), busiest)
	}
	s.fail(ReasonNetwork)
	return nil, "", fmt.Errorf("no hub took the batch: %s", strings.Join(errs, "; "))
}

// retryAfter parses a Retry-After of delay-seconds, the form the hub
// sends, bounded by maxRetryAfter; 0 when absent or another form.
func retryAfter(h http.Header) time.Duration {
	n, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || n < 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, maxRetryAfter)
}

func (s *Syncer) post(ctx context.Context, hub string, body []byte, ctype string) (*syncproto.Ack, int, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := watch(s.cfg.ProgressTimeout, cancel)
	defer w.stop()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn:              func(httptrace.GotConnInfo) { w.touch() },
		WroteHeaders:         w.touch,
		GotFirstResponseByte: w.touch,
		Got1xxResponse:       func(int, textproto.MIMEHeader) error { w.touch(); return nil },
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(hub, "/")+BatchPath, &progressReader{bytes.NewReader(body), w})
	if err != nil {
		return nil, 0, err
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Accept", syncproto.ContentTypeProtobuf)
	req.Header.Set(syncproto.ProgressHeader, "1")
	req.Header.Set("Authorization", "Bearer "+s.cfg.Credential())
	data, resp, err := s.roundTrip(req, w)
	if cause := context.Cause(ctx); errors.Is(cause, errNoProgress) {
		return nil, 0, fmt.Errorf("%s: %w", hub, cause)
	}
	if err != nil {
		return nil, 0, err
	}
	if ra := retryAfter(resp.Header); ra > 0 && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		return nil, 0, &busyError{hub: hub, status: resp.StatusCode, retryAfter: ra}
	}
	if resp.StatusCode >= 500 {
		return nil, 0, fmt.Errorf("%s: status %d", hub, resp.StatusCode)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), syncproto.ContentTypeProtobuf) {
		return nil, resp.StatusCode, nil
	}
	ack := &syncproto.Ack{}
	if err := proto.Unmarshal(data, ack); err != nil {
		return nil, 0, fmt.Errorf("%s: bad ack: %w", hub, err)
	}
	return ack, resp.StatusCode, nil
}

// roundTrip sends req and reads the answer's body (at most 1 MiB), each
// read counting as progress.
func (s *Syncer) roundTrip(req *http.Request, w *watchdog) ([]byte, *http.Response, error) {
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(&progressReader{resp.Body, w}, 1<<20))
	return data, resp, err
}

// errNoProgress is the cause of a request the watchdog gave up.
var errNoProgress = errors.New("no progress")

// watchdog cancels a request that made no progress for its timeout.
type watchdog struct {
	timeout time.Duration
	last    atomic.Int64 // unix nanoseconds of the last progress
	timer   *time.Timer
}

func watch(timeout time.Duration, cancel context.CancelCauseFunc) *watchdog {
	w := &watchdog{timeout: timeout}
	w.touch()
	w.timer = time.AfterFunc(time.Hour, func() {
		if idle := time.Duration(time.Now().UnixNano() - w.last.Load()); idle < w.timeout {
			w.timer.Reset(w.timeout - idle) // progress since: look again when it would be stale
			return
		}
		cancel(fmt.Errorf("%w for %s", errNoProgress, w.timeout))
	})
	w.timer.Reset(timeout) // armed only now that w.timer is set
	return w
}

// touch records progress now.
func (w *watchdog) touch() { w.last.Store(time.Now().UnixNano()) }

func (w *watchdog) stop() { w.timer.Stop() }

// progressReader counts every read as progress.
type progressReader struct {
	r io.Reader
	w *watchdog
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.touch()
	}
	return n, err
}

// apply releases what the ack covers: it returns how many records it
// releases and the wait for the outbox's commit of the release (nil when
// there is nothing to release).
func (s *Syncer) apply(ctx context.Context, stream string, b *syncproto.Batch, ack *syncproto.Ack, hub string, wire, raw int) (int, func() error, error) {
	last := b.LastSeq()
	if r := ack.GetRefusal(); r != nil {
		switch r.Reason {
		case syncproto.RefusalReason_REFUSAL_REASON_GAP:
			// The hub holds everything below ExpectedSeq: release it here.
			if r.ExpectedSeq-1 < b.FirstSeq-1 {
				s.fail(ReasonGapLost)
				return 0, nil, &errRefused{ReasonGapLost, r.Message}
			}
			s.fail(ReasonGap)
			upto := min(r.ExpectedSeq-1, last)
			n, wait := s.release(ctx, stream, b, upto, upto, hub, wire, raw)
			return n, wait, nil
		case syncproto.RefusalReason_REFUSAL_REASON_CHECKSUM:
			s.fail(ReasonChecksum)
			return 0, nil, &errRefused{ReasonChecksum, r.Message}
		case syncproto.RefusalReason_REFUSAL_REASON_FORBIDDEN:
			s.fail(ReasonUnauthorized)
			return 0, nil, &errRefused{ReasonUnauthorized, r.Message}
		default:
			s.fail(ReasonInvalid)
			return 0, nil, &errRefused{ReasonInvalid, r.Message}
		}
	}
	wm := ack.GetDurableWatermark()
	if wm < b.FirstSeq-1 {
		return 0, nil, fmt.Errorf("hub acked watermark %d below the batch start %d", wm, b.FirstSeq)
	}
	upto := wm
	if wm > last {
		// The hub has more than this batch (an ack lost before a crash):
		// release only what was sent; the rest is confirmed by the next batch.
		upto = last
	}
	n, wait := s.release(ctx, stream, b, upto, wm, hub, wire, raw)
	return n, wait, nil
}

// release queues the outbox ack up to upto and counts the batch; the
// returned wait reports the ack's outcome.
func (s *Syncer) release(ctx context.Context, stream string, b *syncproto.Batch, upto, wm int64, hub string, wire, raw int) (int, func() error) {
	n := int(upto - b.FirstSeq + 1)
	var wait func() error
	if n > 0 {
		acked := s.cfg.Outbox.AckAsync(ctx, stream, upto)
		wait = func() error {
			err := acked()
			switch {
			case errors.Is(err, outbox.ErrAckBeyondLast):
				s.fail(ReasonAckBeyond)
			case err != nil:
				s.fail(ReasonOutbox)
			}
			return err
		}
	}
	s.mu.Lock()
	st := s.streams[stream]
	st.HubWatermark, st.LastSync = wm, s.cfg.Now()
	st.RecordsSynced += uint64(max(n, 0))
	st.BatchesSent++
	st.BytesSent += uint64(wire)
	st.BytesUncompr += uint64(raw)
	s.hub = hub
	s.mu.Unlock()
	return max(n, 0), wait
}

func (s *Syncer) fail(reason string) { s.failures[reason].Add(1) }

// Stats returns a snapshot of the syncer's counters.
func (s *Syncer) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{Streams: map[string]StreamStats{}, Failures: map[string]uint64{}, Hub: s.hub}
	for k, v := range s.streams {
		out.Streams[k] = *v
	}
	for k, v := range s.failures {
		out.Failures[k] = v.Load()
	}
	return out
}
