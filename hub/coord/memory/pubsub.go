package memory

import (
	"context"
	"slices"

	"github.com/redforge/controltower/hub/coord"
	"github.com/redforge/controltower/hub/coord/internal/check"
)

// subscription is a coord.Subscription. Its state is guarded by c.mu.
type subscription struct {
	c        *Coord
	ch       chan coord.Message
	channels []string
	done     bool
	err      error
}

// Publish delivers a copy of msg to every current subscriber of channel.
// A subscriber whose buffer is full is ended with coord.ErrSlowConsumer;
// Publish never blocks on a subscriber.
func (c *Coord) Publish(ctx context.Context, channel string, msg []byte) error {
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	for s := range c.subs[channel] {
		select {
		case s.ch <- coord.Message{Channel: channel, Data: slices.Clone(msg)}:
		default:
			s.endLocked(coord.ErrSlowConsumer)
		}
	}
	return nil
}

// Subscribe subscribes to channels; it takes effect before it returns.
func (c *Coord) Subscribe(ctx context.Context, channels ...string) (coord.Subscription, error) {
	channels, err := check.Channels(channels)
	if err != nil {
		return nil, err
	}
	if err := c.lock(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	s := &subscription{c: c, ch: make(chan coord.Message, c.subscriptionBuffer()), channels: channels}
	for _, ch := range channels {
		if c.subs[ch] == nil {
			c.subs[ch] = make(map[*subscription]struct{})
		}
		c.subs[ch][s] = struct{}{}
	}
	return s, nil
}

// endLocked removes s from its channels and closes s.ch, once.
func (s *subscription) endLocked(err error) {
	if s.done {
		return
	}
	s.done, s.err = true, err
	for _, ch := range s.channels {
		delete(s.c.subs[ch], s)
		if len(s.c.subs[ch]) == 0 {
			delete(s.c.subs, ch)
		}
	}
	close(s.ch)
}

func (s *subscription) C() <-chan coord.Message { return s.ch }

func (s *subscription) Err() error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.err
}

func (s *subscription) Close() error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.endLocked(nil)
	return nil
}
