package store

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Implementations wrap them; callers match with errors.Is.
var (
	// ErrNotFound reports that a requested row does not exist.
	ErrNotFound = errors.New("store: not found")

	// ErrGap reports an edge batch that starts past the stream's
	// watermark+1. The concrete error is a *GapError carrying the
	// sequence number the hub expects next.
	ErrGap = errors.New("store: sequence gap")

	// ErrChecksum reports an edge record whose checksum does not match its
	// payload. The whole batch is refused.
	ErrChecksum = errors.New("store: checksum mismatch")

	// ErrInvalid reports bad input. The concrete error is an *InvalidError
	// naming the field.
	ErrInvalid = errors.New("store: invalid argument")
)

// GapError is returned by IngestBatch when a batch starts past the stream's
// watermark+1. Nothing of the batch was written; the sender should resend
// from Expected. errors.Is(err, ErrGap) matches it.
type GapError struct {
	EdgeID   string
	Stream   string
	FirstSeq int64 // the first seq of the refused batch
	Expected int64 // watermark+1: the seq the next batch must start at (or before)
}

func (e *GapError) Error() string {
	return fmt.Sprintf("store: sequence gap on edge %q stream %q: batch starts at seq %d, expected %d",
		e.EdgeID, e.Stream, e.FirstSeq, e.Expected)
}

// Is reports whether target is ErrGap.
func (e *GapError) Is(target error) bool { return target == ErrGap }

// InvalidError is bad input: Field names the offending field as the API
// spells it (snake_case, with an index for list elements, e.g.
// "records[3].seq"), Reason says what is wrong with it.
// errors.Is(err, ErrInvalid) matches it.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("store: invalid %s: %s", e.Field, e.Reason)
}

// Is reports whether target is ErrInvalid.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// invalid returns an *InvalidError for field.
func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// prefixed returns err with its field prefixed by prefix (for list elements).
func prefixed(prefix string, err error) error {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return &InvalidError{Field: prefix + "." + ie.Field, Reason: ie.Reason}
	}
	return err
}

// ErrSchemaTooNew reports a database whose schema version is newer than
// the migrations this binary embeds: it was written by a newer hub, and
// opening it could corrupt it. Upgrade the hub or point it at another
// database.
var ErrSchemaTooNew = errors.New("store: database schema is newer than this binary")

// ErrUnavailable reports a write the store could not commit because no
// writable primary answered within its retry budget (a failover that took
// too long, or every server down). The concrete error is an
// *UnavailableError saying whether the write is known not to have been
// committed or its outcome is unknown.
var ErrUnavailable = errors.New("store: unavailable")

// UnavailableError is a write (or read) given up on after RetryFor of
// connection or read-only errors. errors.Is(err, ErrUnavailable) matches it.
type UnavailableError struct {
	// For is how long the store retried.
	For time.Duration
	// OutcomeUnknown is set when the connection broke during COMMIT and no
	// primary answered afterwards to tell whether it had committed: the
	// caller must read back before retrying a write that is not
	// idempotent.
	OutcomeUnknown bool
	// Err is the last error seen.
	Err error
}

func (e *UnavailableError) Error() string {
	what := "nothing was committed"
	if e.OutcomeUnknown {
		what = "the connection broke during COMMIT and whether it committed is unknown"
	}
	return fmt.Sprintf("store: no writable primary within %v (%s): %v", e.For.Round(time.Millisecond), what, e.Err)
}

// Is reports whether target is ErrUnavailable.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unwrap returns the last error seen.
func (e *UnavailableError) Unwrap() error { return e.Err }

// DegradedError is what Ping returns while the store rides through an
// outage of its primary (a failover): writes are held and retried, and
// Reason says why. After the store's retry budget it fails plainly.
type DegradedError struct {
	Since  time.Time
	Reason string
}

func (e *DegradedError) Error() string {
	return fmt.Sprintf("degraded for %v, writes are being retried: %s", time.Since(e.Since).Round(time.Millisecond), e.Reason)
}

// Degraded marks the error as a degraded state, not a failure (hub/api's
// health check reads it through this method).
func (e *DegradedError) Degraded() bool { return true }
