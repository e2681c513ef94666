// Package check validates and normalises arguments the same way for every
// coord implementation, so they fail alike.
package check

import (
	"fmt"
	"time"
)

// TTL returns ttl rounded up to whole milliseconds (zero stays zero,
// meaning no expiry) or an error if it is negative.
func TTL(ttl time.Duration) (time.Duration, error) {
	if ttl < 0 {
		return 0, fmt.Errorf("coord: negative ttl %v", ttl)
	}
	if r := ttl % time.Millisecond; r != 0 {
		ttl += time.Millisecond - r
	}
	return ttl, nil
}

// PeekN returns an error unless n is positive.
func PeekN(n int) error {
	if n <= 0 {
		return fmt.Errorf("coord: hold peek count must be positive, got %d", n)
	}
	return nil
}

// Limit returns an error unless limit is positive and window at least one
// millisecond; it returns window rounded up to whole milliseconds.
func Limit(limit int, window time.Duration) (time.Duration, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("coord: rate limit must be positive, got %d", limit)
	}
	if window < time.Millisecond {
		return 0, fmt.Errorf("coord: rate window must be at least 1ms, got %v", window)
	}
	return TTL(window)
}

// Channels returns channels without duplicates, in first-seen order, or an
// error if there are none.
func Channels(channels []string) ([]string, error) {
	if len(channels) == 0 {
		return nil, fmt.Errorf("coord: subscribe needs at least one channel")
	}
	seen := make(map[string]bool, len(channels))
	out := make([]string, 0, len(channels))
	for _, ch := range channels {
		if !seen[ch] {
			seen[ch] = true
			out = append(out, ch)
		}
	}
	return out, nil
}
