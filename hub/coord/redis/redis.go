// Package redis implements coord.Coord on Redis (6.2 or later) with
// go-redis, so the hubs of a region share held queues, context, pub/sub
// and rate-limit counters.
//
// Every key and pub/sub channel is namespaced by Prefix, so several hub
// sets can share one Redis (pub/sub channels are global across Redis
// databases, so the prefix matters even with distinct database numbers):
//
//	{prefix}kv:{key}             string, the KV value (PX expiry)
//	{prefix}hold:{{queue}}       stream, held messages with IDs {seq}-0, field d
//	{prefix}hold:{{queue}}:seq   integer, last seq handed out for queue
//	{prefix}rate:{key}           integer, events in the current window (PX expiry)
//	{prefix}ch:{channel}         pub/sub channel
//
// Multi-key operations run as Lua scripts, so they are atomic across hubs.
//
// With a redis-sentinel:// URL (see [SentinelScheme]) the Coord uses
// go-redis's failover client: it asks the Sentinels for the master and
// follows it when they promote a replica. Commands that fail while the
// master is gone return their error (nothing is retried behind the
// caller's back); subscriptions end and are taken again by their owners on
// the new master. Hold-queue writes wait until HoldReplicas replicas have
// them (WAIT), so a held message acknowledged to the caller survives the
// master's death.
package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/redforge/controltower/hub/coord"
)

var _ coord.Coord = (*Coord)(nil)

// Defaults for the tunables of Coord.
const (
	DefaultPrefix              = "redforge:"
	DefaultPingTimeout         = 2 * time.Second
	DefaultDialTimeout         = time.Second
	DefaultSubscriptionBuffer  = 1024
	DefaultHealthCheckInterval = 5 * time.Second
	DefaultHoldWaitTimeout     = time.Second
)

// Coord is the Redis coordination service. Set its exported fields before
// Open; they must not change afterwards.
type Coord struct {
	// URL is the Redis URL (redis://, rediss:// or unix://), with any
	// go-redis query options such as dial_timeout, or a redis-sentinel://
	// URL (SentinelScheme). Unless the URL says otherwise, Open dials with
	// DefaultDialTimeout and disables go-redis's command retries (see Open).
	URL string

	// HoldReplicas is how many replicas must have acknowledged a
	// hold-queue write (HoldPush, HoldAck, HoldDelete) before it returns;
	// fewer within HoldWaitTimeout is an error (the write may still have
	// been applied on the master). Open sets it from a redis-sentinel://
	// URL's hold_replicas option (default 1); 0 does not wait.
	HoldReplicas int

	// HoldWaitTimeout bounds the wait for HoldReplicas.
	HoldWaitTimeout time.Duration

	// Prefix namespaces every key and channel.
	Prefix string

	// PingTimeout bounds Ping and the ping in Open.
	PingTimeout time.Duration

	// SubscriptionBuffer is how many undelivered messages a subscription
	// may hold before it is ended with coord.ErrSlowConsumer.
	SubscriptionBuffer int

	// HealthCheckInterval is how often an idle subscription pings Redis;
	// a subscription whose connection stays silent for a whole interval
	// after a ping is ended with an error.
	HealthCheckInterval time.Duration

	// RootCAs, when set, verifies the server's certificate for a rediss://
	// URL instead of the system roots (a private CA). The host name of the
	// URL must be in the certificate.
	RootCAs *x509.CertPool

	sentinel *SentinelURL // parsed URL, when it is a redis-sentinel:// one

	mu     sync.Mutex
	client *goredis.Client
	closed bool
	subs   map[*subscription]struct{}
}

// New returns a Coord for the Redis at url with default settings. It does
// no I/O; call Open.
func New(url string) *Coord {
	return &Coord{
		URL:                 url,
		Prefix:              DefaultPrefix,
		PingTimeout:         DefaultPingTimeout,
		SubscriptionBuffer:  DefaultSubscriptionBuffer,
		HealthCheckInterval: DefaultHealthCheckInterval,
		HoldWaitTimeout:     DefaultHoldWaitTimeout,
	}
}

// Open connects to Redis and pings it. Its errors name the URL without
// its password. Open fails if c is already open or closed.
//
// Commands are not retried after a network error unless the URL sets
// max_retries: a command whose reply was lost may still have run, and a
// HoldPush, Allow or Publish run twice would duplicate a held message, a
// counted event or a fan-out. The caller sees the error instead.
func (c *Coord) Open(ctx context.Context) error {
	client, err := c.newClient()
	if err != nil {
		return err
	}
	if err := c.ping(ctx, client); err != nil {
		client.Close()
		if c.sentinel != nil {
			err = diagnose(ctx, c.sentinel, err, c.pingTimeout())
		}
		return fmt.Errorf("coord/redis: connect to %s: %w", c.redactedURL(), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		client.Close()
		return coord.ErrClosed
	case c.client != nil:
		client.Close()
		return fmt.Errorf("coord/redis: %s already open", c.redactedURL())
	}
	c.client = client
	c.subs = make(map[*subscription]struct{})
	return nil
}

// SetLogger sends go-redis's own log lines to l instead of stderr: a
// Sentinel's master switch at info level, the rest (a dial that failed
// while the master is gone, once per connection attempt) at debug. They
// never hold a password. It is process-wide; a binary calls it once.
func SetLogger(l *slog.Logger) { goredis.SetLogger(slogLogger{l}) }

type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	level := slog.LevelDebug
	if strings.Contains(msg, "new master") {
		level = slog.LevelInfo
	}
	s.l.Log(ctx, level, msg)
}

// newClient builds the go-redis client for URL (no I/O).
func (c *Coord) newClient() (*goredis.Client, error) {
	if IsSentinelURL(c.URL) {
		s, err := ParseSentinelURL(c.URL)
		if err != nil {
			return nil, fmt.Errorf("coord/redis: parse URL %s: %w", c.redactedURL(), err)
		}
		c.sentinel = s
		if c.HoldReplicas == 0 {
			c.HoldReplicas = s.HoldReplicas
		}
		opt := s.failoverOptions()
		opt.DialTimeout = DefaultDialTimeout
		opt.DialerRetries = 2
		opt.MaxRetries = -1 // see Open
		opt.ContextTimeoutEnabled = true
		return goredis.NewFailoverClient(opt), nil
	}
	opt, err := goredis.ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("coord/redis: parse URL %s: %w (want redis://[user:password@]host:port/db)", c.redactedURL(), err)
	}
	if opt.DialTimeout == 0 {
		opt.DialTimeout = DefaultDialTimeout
	}
	if opt.DialerRetries == 0 {
		opt.DialerRetries = 2 // so Ping reports a dead server in well under PingTimeout
	}
	if opt.MaxRetries == 0 {
		// No silent retries: a command whose reply was lost may have run,
		// and running HoldPush, Allow or Publish twice is not harmless.
		// max_retries in the URL overrides this.
		opt.MaxRetries = -1
	}
	opt.ContextTimeoutEnabled = true
	if opt.TLSConfig != nil {
		opt.TLSConfig.MinVersion = tls.VersionTLS12
		if c.RootCAs != nil {
			opt.TLSConfig.RootCAs = c.RootCAs
		}
	}
	return goredis.NewClient(opt), nil
}

// Ping pings Redis, giving up after PingTimeout. Behind Sentinel, a
// master that cannot be reached while a Sentinel still answers is
// reported as an error with a Degraded() method (the Sentinels are
// expected to promote a replica); its text says what they see. So is a
// master with fewer connected replicas than HoldReplicas.
func (c *Coord) Ping(ctx context.Context) error {
	client, err := c.conn()
	if err != nil {
		return err
	}
	if err := c.ping(ctx, client); err != nil {
		if c.sentinel != nil && !errors.Is(err, goredis.ErrClosed) {
			err = diagnose(ctx, c.sentinel, err, c.pingTimeout())
		}
		return c.wrap(fmt.Sprintf("ping %s", c.redactedURL()), err)
	}
	if c.sentinel != nil && c.HoldReplicas > 0 {
		ctx, cancel := context.WithTimeout(ctx, c.pingTimeout())
		defer cancel()
		if err := checkReplicas(ctx, client, c.HoldReplicas); err != nil {
			return c.wrap(fmt.Sprintf("ping %s", c.redactedURL()), err)
		}
	}
	return nil
}

func (c *Coord) ping(ctx context.Context, client *goredis.Client) error {
	ctx, cancel := context.WithTimeout(ctx, c.pingTimeout())
	defer cancel()
	return client.Ping(ctx).Err()
}

// Close ends every subscription with coord.ErrClosed and closes the
// connection pool. Later calls return coord.ErrClosed. Close is idempotent.
func (c *Coord) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	client, subs := c.client, c.subs
	c.client, c.subs = nil, nil
	c.mu.Unlock()

	for s := range subs {
		s.end(coord.ErrClosed)
	}
	for s := range subs {
		<-s.done
	}
	if client == nil {
		return nil
	}
	if err := client.Close(); err != nil {
		return fmt.Errorf("coord/redis: close %s: %w", c.redactedURL(), err)
	}
	return nil
}

// conn returns the client, or coord.ErrClosed before Open or after Close.
func (c *Coord) conn() (*goredis.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, coord.ErrClosed
	case c.client == nil:
		return nil, fmt.Errorf("coord/redis: %w: Open has not been called", coord.ErrClosed)
	}
	return c.client, nil
}

// wrap adds op to err, and maps a closed client to coord.ErrClosed.
func (c *Coord) wrap(op string, err error) error {
	if errors.Is(err, goredis.ErrClosed) {
		return fmt.Errorf("coord/redis: %s: %w", op, coord.ErrClosed)
	}
	return fmt.Errorf("coord/redis: %s: %w", op, err)
}

// redactedURL returns URL with any password replaced, for errors and logs.
func (c *Coord) redactedURL() string {
	if IsSentinelURL(c.URL) {
		if s, err := ParseSentinelURL(c.URL); err == nil {
			return s.Redacted()
		}
		return "(unparsable " + SentinelScheme + " URL)"
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return "(unparsable Redis URL)"
	}
	return u.Redacted()
}

func (c *Coord) prefix() string {
	if c.Prefix == "" {
		return DefaultPrefix
	}
	return c.Prefix
}

func (c *Coord) kvKey(key string) string      { return c.prefix() + "kv:" + key }
func (c *Coord) holdKey(queue string) string  { return c.prefix() + "hold:{" + queue + "}" }
func (c *Coord) rateKey(key string) string    { return c.prefix() + "rate:" + key }
func (c *Coord) channelName(ch string) string { return c.prefix() + "ch:" + ch }
func (c *Coord) channelPrefix() string        { return c.prefix() + "ch:" }
