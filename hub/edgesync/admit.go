package edgesync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	gosync "sync"
	"time"

	"github.com/redforge/controltower/syncproto"
)

// Defaults of the batch admission limits.
const (
	// DefaultMaxBatchesPerEdge is how many batch requests of one edge are
	// read and decoded at once. An edge's syncer keeps up to two batches
	// per stream in flight; the rest wait their turn.
	DefaultMaxBatchesPerEdge = 4
	// DefaultMaxDecodes is how many batch bodies the hub decompresses and
	// decodes at once, over all edges. Each may hold up to
	// syncproto.MaxWindowBytes + 1.5 × syncproto.DefaultMaxDecodedBytes
	// (56 MiB) while it runs, so this bounds the hub's decode memory.
	DefaultMaxDecodes = 4
	// DefaultAdmitWait is how long a batch waits for its turn before the
	// hub answers 429 (its edge's turn) or 503 (the hub's) with a
	// Retry-After.
	DefaultAdmitWait = 10 * time.Second
	// RetryAfter is the Retry-After the busy answers carry.
	RetryAfter = time.Second
)

// ErrBusy is wrapped by the *BusyError of ReadBatch.
var ErrBusy = errors.New("sync: busy")

// BusyError says a batch was not admitted in time. Scope is "edge" when
// its edge already had MaxBatchesPerEdge batches being read (answer 429)
// and "hub" when the hub already ran MaxDecodes decodes (answer 503);
// the sender retries after RetryAfter.
type BusyError struct {
	Scope      string
	RetryAfter time.Duration
}

func (e *BusyError) Error() string {
	if e.Scope == "edge" {
		return "this edge already has the most batches in progress the hub takes at once; retry later"
	}
	return "the hub is decoding the most batches it takes at once; retry later"
}

// Unwrap returns ErrBusy.
func (e *BusyError) Unwrap() error { return ErrBusy }

// admission holds the turnstiles of ReadBatch.
type admission struct {
	decodes chan struct{} // one token per running decode

	mu    gosync.Mutex
	edges map[string]*edgeTurns
}

// edgeTurns are one edge's batch slots; users counts the requests holding
// or waiting for one, so the entry goes when the last leaves.
type edgeTurns struct {
	slots chan struct{}
	users int
}

func (a *admission) init(maxDecodes int) {
	a.decodes = make(chan struct{}, maxDecodes)
	a.edges = map[string]*edgeTurns{}
}

// take waits for a token of slots for at most wait (or until ctx ends).
func take(ctx context.Context, slots chan struct{}, wait time.Duration) error {
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return nil
	case <-t.C:
		return errTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errTimeout = errors.New("admission wait timed out")

// enterEdge takes one of edgeID's batch slots; the caller calls the
// returned leave.
func (s *Service) enterEdge(ctx context.Context, edgeID string) (leave func(), err error) {
	a := &s.admit
	a.mu.Lock()
	e := a.edges[edgeID]
	if e == nil {
		e = &edgeTurns{slots: make(chan struct{}, s.cfg.MaxBatchesPerEdge)}
		a.edges[edgeID] = e
	}
	e.users++
	a.mu.Unlock()
	release := func() {
		a.mu.Lock()
		if e.users--; e.users == 0 {
			delete(a.edges, edgeID)
		}
		a.mu.Unlock()
	}
	if err := take(ctx, e.slots, s.cfg.AdmitWait); err != nil {
		release()
		return nil, busy("edge", err)
	}
	return func() { <-e.slots; release() }, nil
}

// BatchesInProgress returns how many batches of edgeID are being read or
// decoded, or wait for their turn.
func (s *Service) BatchesInProgress(edgeID string) int {
	s.admit.mu.Lock()
	defer s.admit.mu.Unlock()
	if e := s.admit.edges[edgeID]; e != nil {
		return e.users
	}
	return 0
}

func busy(scope string, err error) error {
	if errors.Is(err, errTimeout) {
		return &BusyError{Scope: scope, RetryAfter: RetryAfter}
	}
	return err
}

// bodyBufs are the buffers batch bodies are read into: a batch of vectors
// is megabytes, and growing a fresh buffer for each cost the hub more
// than decoding it.
var bodyBufs = gosync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody is the largest body buffer kept for reuse.
const maxPooledBody = 16 << 20

// maxBodyPrealloc bounds how much of a declared Content-Length is
// allocated before the bytes arrive; beyond it the buffer grows as they do.
const maxBodyPrealloc = 4 << 20

// ReadBatch reads a batch body of contentType (at most
// syncproto.DefaultMaxBodyBytes; contentLength is the declared length, -1
// if unknown) sent by edgeID and decodes it with syncproto.DecodeBatch.
// At most MaxBatchesPerEdge bodies of one edge are read and decoded at
// once and at most MaxDecodes decodes run on the hub at once; a batch that
// waited AdmitWait for its turn gets a *BusyError. Errors: *BusyError,
// *syncproto.DecodeError (ErrTooLarge for a body past the limit), ErrInvalid
// when the body cannot be read, ctx's error.
func (s *Service) ReadBatch(ctx context.Context, edgeID, contentType string, body io.Reader, contentLength int64) (*syncproto.Batch, error) {
	leave, err := s.enterEdge(ctx, edgeID)
	if err != nil {
		return nil, err
	}
	defer leave()
	buf := bodyBufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBody {
			bodyBufs.Put(buf)
		}
	}()
	buf.Reset()
	if contentLength > 0 && contentLength <= syncproto.DefaultMaxBodyBytes {
		buf.Grow(int(min(contentLength, maxBodyPrealloc)) + bytes.MinRead) // ReadFrom wants MinRead spare to see EOF without growing
	}
	if _, err := buf.ReadFrom(io.LimitReader(body, syncproto.DefaultMaxBodyBytes+1)); err != nil {
		return nil, fmt.Errorf("read batch body: %v: %w", err, ErrInvalid)
	}
	if buf.Len() > syncproto.DefaultMaxBodyBytes {
		return nil, &syncproto.DecodeError{Err: syncproto.ErrTooLarge, Detail: fmt.Sprintf("body passes %d bytes", syncproto.DefaultMaxBodyBytes)}
	}
	if err := take(ctx, s.admit.decodes, s.cfg.AdmitWait); err != nil {
		return nil, busy("hub", err)
	}
	defer func() { <-s.admit.decodes }()
	return syncproto.DecodeBatch(contentType, buf.Bytes(), syncproto.Limits{})
}
