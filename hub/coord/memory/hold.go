package memory

import (
	"context"
	"slices"
	"sort"

	"github.com/redforge/controltower/hub/coord"
	"github.com/redforge/controltower/hub/coord/internal/check"
)

// holdQueue is one queue: the last Seq handed out and the unacked messages
// in Seq order.
type holdQueue struct {
	last int64
	msgs []coord.Held
}

// HoldPush appends a copy of msg to queue and returns its Seq.
func (c *Coord) HoldPush(ctx context.Context, queue string, msg []byte) (int64, error) {
	if err := c.lock(ctx); err != nil {
		return 0, err
	}
	defer c.mu.Unlock()
	q := c.holds[queue]
	if q == nil {
		q = &holdQueue{}
		c.holds[queue] = q
	}
	q.last++
	q.msgs = append(q.msgs, coord.Held{Seq: q.last, Data: slices.Clone(msg)})
	return q.last, nil
}

// HoldLen returns the number of unacked messages in queue.
func (c *Coord) HoldLen(ctx context.Context, queue string) (int64, error) {
	if err := c.lock(ctx); err != nil {
		return 0, err
	}
	defer c.mu.Unlock()
	if q := c.holds[queue]; q != nil {
		return int64(len(q.msgs)), nil
	}
	return 0, nil
}

// HoldPeek returns copies of up to n of the oldest unacked messages.
func (c *Coord) HoldPeek(ctx context.Context, queue string, n int) ([]coord.Held, error) {
	if err := check.PeekN(n); err != nil {
		return nil, err
	}
	if err := c.lock(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	q := c.holds[queue]
	if q == nil {
		return nil, nil
	}
	out := make([]coord.Held, 0, min(n, len(q.msgs)))
	for _, h := range q.msgs[:min(n, len(q.msgs))] {
		out = append(out, coord.Held{Seq: h.Seq, Data: slices.Clone(h.Data)})
	}
	return out, nil
}

// HoldAck removes the messages of queue with Seq at most uptoSeq.
func (c *Coord) HoldAck(ctx context.Context, queue string, uptoSeq int64) error {
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	q := c.holds[queue]
	if q == nil {
		return nil
	}
	i := sort.Search(len(q.msgs), func(i int) bool { return q.msgs[i].Seq > uptoSeq })
	clear(q.msgs[:i])
	q.msgs = q.msgs[i:]
	if len(q.msgs) == 0 {
		q.msgs = nil
	}
	return nil
}

// HoldDelete removes every message of queue; its Seq counter is kept.
func (c *Coord) HoldDelete(ctx context.Context, queue string) error {
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if q := c.holds[queue]; q != nil {
		q.msgs = nil
	}
	return nil
}
