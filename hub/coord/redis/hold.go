package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/redforge/controltower/hub/coord"
	"github.com/redforge/controltower/hub/coord/internal/check"
)

// holdPush takes the next seq and appends the message under it atomically,
// so stream order is seq order. KEYS: stream, counter. ARGV: data.
var holdPush = goredis.NewScript(`
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], seq .. '-0', 'd', ARGV[1])
return seq
`)

// holdPushOnce is holdPush that remembers the seq it gave each id (for
// holdIDsTTL), and answers a second push of the same id with it instead of
// holding the message again. KEYS: stream, counter, ids. ARGV: data, id,
// ttl in ms.
var holdPushOnce = goredis.NewScript(`
local s = redis.call('HGET', KEYS[3], ARGV[2])
if s then return tonumber(s) end
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], seq .. '-0', 'd', ARGV[1])
redis.call('HSET', KEYS[3], ARGV[2], seq)
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return seq
`)

// holdIDsTTL is how long HoldPushOnce remembers an id: far longer than
// any retry of one push.
const holdIDsTTL = 10 * time.Minute

// HoldPush appends msg to queue and returns its Seq.
func (c *Coord) HoldPush(ctx context.Context, queue string, msg []byte) (int64, error) {
	key := c.holdKey(queue)
	var cmd *goredis.Cmd
	err := c.holdWrite(ctx, func(p goredis.Pipeliner) {
		cmd = holdPush.Eval(ctx, p, []string{key, key + ":seq"}, msg)
	})
	if err == nil {
		return cmd.Int64()
	}
	return 0, c.wrap(fmt.Sprintf("hold push %q", queue), err)
}

// HoldPushOnce is HoldPush made safe to retry: id names the message, and
// a push of an id already held in queue (within ten minutes) returns the
// seq it was held under instead of holding it again. A caller whose
// HoldPush failed (the master died, or no replica confirmed it) retries
// with the same id until it succeeds, and holds the message exactly once.
func (c *Coord) HoldPushOnce(ctx context.Context, queue, id string, msg []byte) (int64, error) {
	key := c.holdKey(queue)
	var cmd *goredis.Cmd
	err := c.holdWrite(ctx, func(p goredis.Pipeliner) {
		cmd = holdPushOnce.Eval(ctx, p, []string{key, key + ":seq", key + ":ids"}, msg, id, holdIDsTTL.Milliseconds())
	})
	if err == nil {
		return cmd.Int64()
	}
	return 0, c.wrap(fmt.Sprintf("hold push %q", queue), err)
}

// holdWrite runs the writes queued by fn on one connection, followed by
// WAIT HoldReplicas when that is set, and fails unless every write
// succeeded and enough replicas confirmed them.
func (c *Coord) holdWrite(ctx context.Context, fn func(p goredis.Pipeliner)) error {
	client, err := c.conn()
	if err != nil {
		return err
	}
	n := c.HoldReplicas
	timeout := c.HoldWaitTimeout
	if timeout <= 0 {
		timeout = DefaultHoldWaitTimeout
	}
	var wait *goredis.Cmd
	_, err = client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		fn(p)
		if n > 0 {
			wait = p.Do(ctx, "wait", n, timeout.Milliseconds())
		}
		return nil
	})
	if err != nil {
		return err
	}
	if wait != nil {
		if got, _ := wait.Int64(); got < int64(n) {
			return fmt.Errorf("%w: %d of %d replicas within %s", coord.ErrNotReplicated, got, n, timeout)
		}
	}
	return nil
}

// HoldLen returns the number of unacked messages in queue.
func (c *Coord) HoldLen(ctx context.Context, queue string) (int64, error) {
	client, err := c.conn()
	if err != nil {
		return 0, err
	}
	n, err := client.XLen(ctx, c.holdKey(queue)).Result()
	if err != nil {
		return 0, c.wrap(fmt.Sprintf("hold len %q", queue), err)
	}
	return n, nil
}

// HoldPeek returns up to n of the oldest unacked messages of queue.
func (c *Coord) HoldPeek(ctx context.Context, queue string, n int) ([]coord.Held, error) {
	if err := check.PeekN(n); err != nil {
		return nil, err
	}
	client, err := c.conn()
	if err != nil {
		return nil, err
	}
	msgs, err := client.XRangeN(ctx, c.holdKey(queue), "-", "+", int64(n)).Result()
	if err != nil {
		return nil, c.wrap(fmt.Sprintf("hold peek %q", queue), err)
	}
	out := make([]coord.Held, 0, len(msgs))
	for _, m := range msgs {
		h, err := decodeHeld(m)
		if err != nil {
			return nil, fmt.Errorf("coord/redis: hold peek %q: %w", queue, err)
		}
		out = append(out, h)
	}
	return out, nil
}

func decodeHeld(m goredis.XMessage) (coord.Held, error) {
	ms, _, _ := strings.Cut(m.ID, "-")
	seq, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return coord.Held{}, fmt.Errorf("entry %s: bad id: %w", m.ID, err)
	}
	data, ok := m.Values["d"].(string)
	if !ok {
		return coord.Held{}, fmt.Errorf("entry %s: no data field", m.ID)
	}
	return coord.Held{Seq: seq, Data: []byte(data)}, nil
}

// HoldAck removes the messages of queue with Seq at most uptoSeq.
func (c *Coord) HoldAck(ctx context.Context, queue string, uptoSeq int64) error {
	if uptoSeq < 1 {
		return nil
	}
	// Exact MINID trim: removes every entry with ID below (uptoSeq+1)-0.
	minID := strconv.FormatUint(uint64(uptoSeq)+1, 10)
	if err := c.holdWrite(ctx, func(p goredis.Pipeliner) { p.XTrimMinID(ctx, c.holdKey(queue), minID) }); err != nil {
		return c.wrap(fmt.Sprintf("hold ack %q up to %d", queue, uptoSeq), err)
	}
	return nil
}

// HoldDelete removes every message of queue; its seq counter is kept.
func (c *Coord) HoldDelete(ctx context.Context, queue string) error {
	key := c.holdKey(queue)
	if err := c.holdWrite(ctx, func(p goredis.Pipeliner) { p.Del(ctx, key, key+":ids") }); err != nil {
		return c.wrap(fmt.Sprintf("hold delete %q", queue), err)
	}
	return nil
}
