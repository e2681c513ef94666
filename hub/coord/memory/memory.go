// Package memory implements coord.Coord in process memory. It is the
// default for a single hub: nothing is shared with other processes and
// everything is lost when the process exits.
//
// A Coord is safe for concurrent use. Expired keys and rate windows are
// removed lazily, on access and by a sweep at most once per SweepInterval
// during other calls, so no background goroutine runs.
package memory

import (
	"context"
	"sync"
	"time"

	"github.com/redforge/controltower/hub/coord"
)

var _ coord.Coord = (*Coord)(nil)

// Defaults for the tunables of Coord.
const (
	DefaultSubscriptionBuffer = 1024
	DefaultSweepInterval      = time.Minute
)

// Coord is the in-memory coordination service. Set its exported fields
// before the first call; they must not change afterwards.
type Coord struct {
	// Now returns the current time; time.Now if nil. Tests inject a clock.
	Now func() time.Time

	// SubscriptionBuffer is how many undelivered messages a subscription
	// may hold before it is ended with coord.ErrSlowConsumer.
	SubscriptionBuffer int

	// SweepInterval is how often, at most, expired entries are swept.
	SweepInterval time.Duration

	mu        sync.Mutex
	closed    bool
	lastSweep time.Time
	holds     map[string]*holdQueue
	kv        map[string]entry
	rates     map[string]rateWindow
	subs      map[string]map[*subscription]struct{}
}

// New returns an empty, ready Coord. It starts no goroutines.
func New() *Coord {
	return &Coord{
		SubscriptionBuffer: DefaultSubscriptionBuffer,
		SweepInterval:      DefaultSweepInterval,
		holds:              make(map[string]*holdQueue),
		kv:                 make(map[string]entry),
		rates:              make(map[string]rateWindow),
		subs:               make(map[string]map[*subscription]struct{}),
	}
}

// Ping returns nil unless ctx is done or c is closed.
func (c *Coord) Ping(ctx context.Context) error {
	if err := c.lock(ctx); err != nil {
		return err
	}
	c.mu.Unlock()
	return nil
}

// Close ends every subscription with coord.ErrClosed and drops all state.
// Later calls return coord.ErrClosed. Close is idempotent.
func (c *Coord) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	for _, subs := range c.subs {
		for s := range subs {
			s.endLocked(coord.ErrClosed)
		}
	}
	c.holds, c.kv, c.rates, c.subs = nil, nil, nil, nil
	return nil
}

// lock takes c.mu unless ctx is done or c is closed, and sweeps expired
// entries when one is due. The caller unlocks.
func (c *Coord) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return coord.ErrClosed
	}
	if now := c.now(); now.Sub(c.lastSweep) >= c.sweepInterval() {
		c.lastSweep = now
		c.sweepLocked(now)
	}
	return nil
}

func (c *Coord) sweepLocked(now time.Time) {
	for k, e := range c.kv {
		if !e.live(now) {
			delete(c.kv, k)
		}
	}
	for k, w := range c.rates {
		if !now.Before(w.end) {
			delete(c.rates, k)
		}
	}
}

func (c *Coord) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Coord) sweepInterval() time.Duration {
	if c.SweepInterval > 0 {
		return c.SweepInterval
	}
	return DefaultSweepInterval
}

func (c *Coord) subscriptionBuffer() int {
	if c.SubscriptionBuffer > 0 {
		return c.SubscriptionBuffer
	}
	return DefaultSubscriptionBuffer
}
