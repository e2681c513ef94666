package catalog

import "errors"

// Sentinel errors. Errors returned by the catalog wrap one of them with
// context; test with errors.Is.
var (
	// ErrNotFound reports that a row, or a row it refers to, does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict reports a uniqueness violation, a failed IfIndex check or a
	// state that forbids the change (a used enrollment token).
	ErrConflict = errors.New("conflict")
	// ErrInvalid reports a command the catalog cannot apply as given: a
	// missing key, an undecodable payload, an unknown command type or version.
	ErrInvalid = errors.New("invalid")
	// ErrCorruptSnapshot reports a snapshot that cannot be read: wrong magic,
	// bad checksum, truncated, undecodable or inconsistent rows.
	ErrCorruptSnapshot = errors.New("corrupt catalog snapshot")
	// ErrSnapshotVersion reports a snapshot written in a format this binary
	// does not understand (usually by a newer hub).
	ErrSnapshotVersion = errors.New("unsupported catalog snapshot version")
)
