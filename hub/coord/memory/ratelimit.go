package memory

import (
	"context"
	"time"

	"github.com/redforge/controltower/hub/coord/internal/check"
)

// rateWindow is the event count of the current window of one key.
type rateWindow struct {
	count int
	end   time.Time
}

// Allow records one event for key in a fixed window that starts at the
// first event after the previous window ended.
func (c *Coord) Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, int, time.Duration, error) {
	window, err := check.Limit(limit, window)
	if err != nil {
		return false, 0, 0, err
	}
	if err := c.lock(ctx); err != nil {
		return false, 0, 0, err
	}
	defer c.mu.Unlock()
	now := c.now()
	w, ok := c.rates[key]
	if !ok || !now.Before(w.end) {
		w = rateWindow{end: now.Add(window)}
	}
	w.count++
	c.rates[key] = w
	return w.count <= limit, max(0, limit-w.count), w.end.Sub(now), nil
}
