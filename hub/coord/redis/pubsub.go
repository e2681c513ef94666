package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/redforge/controltower/hub/coord"
	"github.com/redforge/controltower/hub/coord/internal/check"
)

// Publish sends msg to every current subscriber of channel, on any hub.
func (c *Coord) Publish(ctx context.Context, channel string, msg []byte) error {
	client, err := c.conn()
	if err != nil {
		return err
	}
	if err := client.Publish(ctx, c.channelName(channel), msg).Err(); err != nil {
		return c.wrap(fmt.Sprintf("publish %q", channel), err)
	}
	return nil
}

// subscription is a coord.Subscription on its own Redis connection. One
// goroutine reads it and owns ch; another pings it while it is quiet.
type subscription struct {
	c      *Coord
	ps     *goredis.PubSub
	ch     chan coord.Message
	strip  string
	seen   atomic.Bool   // a reply arrived since the last health check
	quit   chan struct{} // closed by end
	done   chan struct{} // closed when both goroutines have returned
	mu     sync.Mutex
	ended  bool
	reason error
}

// Subscribe subscribes to channels on a dedicated connection and waits
// until Redis has confirmed every one, so a message published after it
// returns is delivered.
func (c *Coord) Subscribe(ctx context.Context, channels ...string) (coord.Subscription, error) {
	channels, err := check.Channels(channels)
	if err != nil {
		return nil, err
	}
	client, err := c.conn()
	if err != nil {
		return nil, err
	}
	s := &subscription{
		c:     c,
		ps:    client.Subscribe(ctx),
		ch:    make(chan coord.Message, c.subscriptionBuffer()),
		strip: c.channelPrefix(),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if err := s.confirm(ctx, channels); err != nil {
		s.ps.Close()
		return nil, c.wrap(fmt.Sprintf("subscribe %q", channels), err)
	}
	if err := c.track(s); err != nil {
		s.ps.Close()
		return nil, err
	}
	s.seen.Store(true)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.read() }()
	go func() { defer wg.Done(); s.health() }()
	go func() { wg.Wait(); c.untrack(s); close(s.done) }()
	return s, nil
}

// confirm sends SUBSCRIBE and reads replies until every channel is
// confirmed, keeping any message that arrives in between.
func (s *subscription) confirm(ctx context.Context, channels []string) error {
	names := make([]string, len(channels))
	for i, ch := range channels {
		names[i] = s.c.channelName(ch)
	}
	if err := s.ps.Subscribe(ctx, names...); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.c.pingTimeout())
	defer cancel()
	for confirmed := 0; confirmed < len(names); {
		reply, err := s.ps.Receive(ctx)
		if err != nil {
			return err
		}
		switch m := reply.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				confirmed++
			}
		case *goredis.Message:
			if !s.deliver(m) {
				return coord.ErrSlowConsumer
			}
		}
	}
	return nil
}

// read delivers messages until the connection fails or the subscription ends.
func (s *subscription) read() {
	defer close(s.ch)
	for {
		reply, err := s.ps.Receive(context.Background())
		if err != nil {
			s.end(fmt.Errorf("coord/redis: subscription lost: %w", err))
			return
		}
		s.seen.Store(true)
		if m, ok := reply.(*goredis.Message); ok && !s.deliver(m) {
			s.end(coord.ErrSlowConsumer)
			return
		}
	}
}

// health pings the connection every HealthCheckInterval and ends the
// subscription if nothing, not even the last ping's reply, came back
// during a whole interval.
func (s *subscription) health() {
	t := time.NewTicker(s.c.healthCheckInterval())
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		if !s.seen.Swap(false) {
			s.end(errors.New("coord/redis: subscription lost: Redis did not answer a ping"))
			return
		}
		if err := s.ps.Ping(context.Background()); err != nil {
			s.end(fmt.Errorf("coord/redis: subscription lost: ping: %w", err))
			return
		}
	}
}

// deliver hands m to the receiver without blocking and reports whether
// there was room.
func (s *subscription) deliver(m *goredis.Message) bool {
	msg := coord.Message{Channel: strings.TrimPrefix(m.Channel, s.strip), Data: []byte(m.Payload)}
	select {
	case s.ch <- msg:
		return true
	default:
		return false
	}
}

// end records why the subscription ended (the first reason wins) and
// closes its connection, which stops the reader.
func (s *subscription) end(reason error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended, s.reason = true, reason
	s.mu.Unlock()
	close(s.quit)
	s.ps.Close()
}

func (s *subscription) C() <-chan coord.Message { return s.ch }

func (s *subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reason
}

// Close ends the subscription and waits until its goroutines have returned
// and C is closed.
func (s *subscription) Close() error {
	s.end(nil)
	<-s.done
	return nil
}

// track registers s so Close can end it; it fails once c is closed.
func (c *Coord) track(s *subscription) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return coord.ErrClosed
	}
	c.subs[s] = struct{}{}
	return nil
}

func (c *Coord) untrack(s *subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.subs, s)
}

func (c *Coord) pingTimeout() time.Duration {
	if c.PingTimeout > 0 {
		return c.PingTimeout
	}
	return DefaultPingTimeout
}

func (c *Coord) subscriptionBuffer() int {
	if c.SubscriptionBuffer > 0 {
		return c.SubscriptionBuffer
	}
	return DefaultSubscriptionBuffer
}

func (c *Coord) healthCheckInterval() time.Duration {
	if c.HealthCheckInterval > 0 {
		return c.HealthCheckInterval
	}
	return DefaultHealthCheckInterval
}
