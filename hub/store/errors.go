package store

import (
	"errors"
	"fmt"
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
