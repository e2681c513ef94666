// Package coord defines short-lived coordination between hubs: held-message
// queues while an instance drains during a blue-green deployment, a shared
// key-value context for Node-RED instances across blue and green, pub/sub
// fan-out of WebSocket events between hubs, and rate-limit counters.
//
// Everything here is short-lived and may be lost when the backing store
// restarts: coord owns no durable state. Control-plane state belongs to
// hub/catalog and append data to hub/store.
//
// Two implementations satisfy [Coord]: hub/coord/memory, the in-process
// default for a single hub, and hub/coord/redis, shared by the hubs of a
// region. Both are checked by the contract suite in hub/coord/coordtest.
package coord

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrNotFound is returned by Get when the key does not exist or has expired.
	ErrNotFound = errors.New("coord: not found")

	// ErrClosed is returned by every method called after Close, and by
	// Subscription.Err when the subscription ended because its Coord closed.
	ErrClosed = errors.New("coord: closed")

	// ErrSlowConsumer is reported by Subscription.Err when the subscriber fell
	// too far behind and its subscription was ended rather than skipping
	// messages.
	ErrSlowConsumer = errors.New("coord: subscriber too slow, messages would be lost")

	// ErrNotReplicated is returned (wrapped) by a hold-queue write that
	// the store applied but not enough replicas confirmed in time (Redis
	// behind Sentinel, WAIT): the write took effect, but the store's
	// failover could still lose it.
	ErrNotReplicated = errors.New("coord: not confirmed by enough replicas")
)

// Coord is the full coordination service. Consumers should depend on the
// smallest of the interfaces below that serves them.
type Coord interface {
	HoldQueue
	KV
	PubSub
	RateLimiter

	// Ping reports whether the backing store is reachable. It returns
	// promptly (within about two seconds) even when the store is not,
	// and ErrClosed after Close.
	Ping(ctx context.Context) error

	// Close releases every resource, ends every open Subscription with
	// ErrClosed, and makes every later call return ErrClosed. Close is
	// idempotent.
	Close() error
}

// Held is one message held in a queue. Seq is assigned by HoldPush.
type Held struct {
	Seq  int64
	Data []byte
}

// HoldQueue holds ordered messages for an instance while it drains, so they
// can be replayed to its successor in order: HoldPeek a batch, deliver it,
// HoldAck up to the last delivered Seq, repeat until HoldLen is zero. A
// consumer that crashes between delivery and ack replays that batch again
// (at-least-once); Seq lets the receiver drop what it has already seen.
//
// Seq numbers are positive and strictly increasing per queue name, in the
// order the pushes took effect, and are never reused for that name, not
// even after HoldDelete. A queue that was never pushed to is empty, not an
// error.
type HoldQueue interface {
	// HoldPush appends msg to queue and returns its Seq. If it returns an
	// error the message may or may not have been held (the reply can be
	// lost after the store applied it), so a caller that retries can hold
	// a message twice, under two Seqs.
	HoldPush(ctx context.Context, queue string, msg []byte) (seq int64, err error)

	// HoldLen returns the number of messages in queue not yet acked.
	HoldLen(ctx context.Context, queue string) (int64, error)

	// HoldPeek returns up to n of the oldest unacked messages of queue in
	// Seq order, without removing them. n must be positive.
	HoldPeek(ctx context.Context, queue string, n int) ([]Held, error)

	// HoldAck removes every message of queue whose Seq is at most uptoSeq.
	// It never affects messages pushed later, whatever uptoSeq is.
	HoldAck(ctx context.Context, queue string, uptoSeq int64) error

	// HoldDelete removes every message of queue. Seq numbers of later
	// pushes still continue from where they were.
	HoldDelete(ctx context.Context, queue string) error
}

// HoldPusherOnce is implemented by a HoldQueue whose pushes can be retried
// safely (hub/coord/redis): a push names its message with id, and pushing
// an id already held returns the seq it was held under instead of holding
// it twice. A caller whose HoldPush failed in a failover retries with the
// same id until it succeeds.
type HoldPusherOnce interface {
	HoldPushOnce(ctx context.Context, queue, id string, msg []byte) (seq int64, err error)
}

// KV is a shared key-value store with optional expiry, used for Node-RED
// context shared by blue and green and for simple leases.
//
// A ttl of zero means the key does not expire; a negative ttl is an error.
// Expiry has millisecond resolution: a positive ttl below one millisecond
// counts as one millisecond.
type KV interface {
	// Get returns the value of key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)

	// Set stores val under key, replacing any value and its expiry.
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error

	// SetNX stores val under key only if key does not exist, and reports
	// whether it did. Of concurrent callers exactly one wins.
	SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)

	// CompareAndSwap replaces the value of key with new, and its expiry
	// with ttl, only if its current value equals old; it reports whether it
	// did. A missing key never matches. A lease holder renews its lease
	// with CompareAndSwap(key, me, me, ttl).
	CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error)

	// CompareAndDelete deletes key only if its current value equals old,
	// and reports whether it did. A lease holder releases its lease with it
	// without the risk of deleting a lease someone else took since.
	CompareAndDelete(ctx context.Context, key string, old []byte) (bool, error)

	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error

	// Keys returns the live keys that start with prefix, sorted.
	Keys(ctx context.Context, prefix string) ([]string, error)
}

// PubSub fans messages out between hubs. Delivery is at-most-once and
// only to subscribers that exist at the time of publishing.
type PubSub interface {
	// Publish sends msg to every current subscriber of channel.
	Publish(ctx context.Context, channel string, msg []byte) error

	// Subscribe subscribes to the given channels (at least one). Once it
	// returns, the Subscription sees every message published to them
	// afterwards, in publish order per channel. The caller must Close it.
	Subscribe(ctx context.Context, channels ...string) (Subscription, error)
}

// Message is one message received on a Subscription. Data belongs to the
// receiver.
type Message struct {
	Channel string
	Data    []byte
}

// Subscription is a live subscription to one or more channels.
//
// Messages arrive on C in publish order per channel and without gaps for as
// long as C stays open. If delivery cannot go on without losing messages
// (the receiver fell behind, the connection to the store was lost, the
// Coord was closed), C is closed and Err says why; a receiver that needs
// continuity then subscribes again and resynchronises.
type Subscription interface {
	// C returns the channel on which messages arrive. It is closed when
	// the subscription ends.
	C() <-chan Message

	// Err returns nil while the subscription is live or if it was ended by
	// Close; otherwise the reason it ended: ErrSlowConsumer, ErrClosed, or
	// a connection error.
	Err() error

	// Close ends the subscription and releases its resources; C is closed
	// by the time Close returns. Close is idempotent.
	Close() error
}

// RateLimiter counts events per key in fixed windows shared by every hub.
type RateLimiter interface {
	// Allow records one event for key and reports whether it is within
	// limit events per window. A window starts at the first event for key
	// after the previous window ended. remaining is how many more events
	// the current window admits and resetIn how long until it ends.
	// limit must be positive and window at least one millisecond.
	Allow(ctx context.Context, key string, limit int, window time.Duration) (allowed bool, remaining int, resetIn time.Duration, err error)
}
