package store

import (
	"encoding/json"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Time bounds accepted by every implementation.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	endTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) // exclusive
)

// NormalizeTime returns t as the store keeps it: in UTC, truncated to the
// microsecond, without a monotonic clock reading.
func NormalizeTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// checkTime rejects a zero time or one outside years 1..9999.
func checkTime(field string, t time.Time) error {
	if t.IsZero() {
		return invalid(field, "is required")
	}
	return checkTimeRange(field, t)
}

// checkTimeRange rejects a non-zero time outside years 1..9999.
func checkTimeRange(field string, t time.Time) error {
	if t.IsZero() {
		return nil
	}
	if t.Before(minTime) || !t.Before(endTime) {
		return invalid(field, "must be between year 1 and year 9999 UTC")
	}
	return nil
}

// checkText rejects strings that not every backend can store identically:
// invalid UTF-8 and NUL bytes.
func checkText(field, s string) error {
	if !utf8.ValidString(s) {
		return invalid(field, "must be valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return invalid(field, "must not contain NUL bytes")
	}
	return nil
}

// checkRequired is checkText plus non-empty.
func checkRequired(field, s string) error {
	if s == "" {
		return invalid(field, "must not be empty")
	}
	return checkText(field, s)
}

// checkTexts runs checkText over field/value pairs.
func checkTexts(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := checkText(pairs[i], pairs[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// checkJSON accepts an empty value (absent) or valid UTF-8 JSON.
func checkJSON(field string, v json.RawMessage) error {
	if len(v) == 0 {
		return nil
	}
	if !utf8.Valid(v) || !json.Valid(v) {
		return invalid(field, "must be valid UTF-8 JSON")
	}
	return nil
}

// NormalizeJSON returns nil for an empty value and v otherwise: the store
// keeps JSON byte for byte, and an empty value as absent (SQL NULL).
func NormalizeJSON(v json.RawMessage) json.RawMessage {
	if len(v) == 0 {
		return nil
	}
	return v
}

// checkFinite rejects NaN and ±Inf, which not every backend stores.
func checkFinite(field string, f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return invalid(field, "must be a finite number")
	}
	return nil
}

// checkNonNegative rejects negative n.
func checkNonNegative(field string, n int64) error {
	if n < 0 {
		return invalid(field, "must not be negative")
	}
	return nil
}

// checkRange rejects End before Start when both are set.
func checkRange(start, end time.Time) error {
	if err := checkTimeRange("start", start); err != nil {
		return err
	}
	if err := checkTimeRange("end", end); err != nil {
		return err
	}
	if !start.IsZero() && !end.IsZero() && end.Before(start) {
		return invalid("end", "must not be before start")
	}
	return nil
}

// ResolveLimit validates a List limit and returns the limit to apply:
// DefaultLimit for 0. A negative limit or one above MaxLimit is ErrInvalid.
func ResolveLimit(limit int) (int, error) {
	switch {
	case limit < 0:
		return 0, invalid("limit", "must not be negative")
	case limit > MaxLimit:
		return 0, invalid("limit", "must be at most %d", MaxLimit)
	case limit == 0:
		return DefaultLimit, nil
	}
	return limit, nil
}

// checkPage validates limit and offset of a filter.
func checkPage(limit, offset int) error {
	if _, err := ResolveLimit(limit); err != nil {
		return err
	}
	if offset < 0 {
		return invalid("offset", "must not be negative")
	}
	return nil
}
