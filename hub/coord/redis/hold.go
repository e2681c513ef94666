package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

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

// HoldPush appends msg to queue and returns its Seq.
func (c *Coord) HoldPush(ctx context.Context, queue string, msg []byte) (int64, error) {
	client, err := c.conn()
	if err != nil {
		return 0, err
	}
	key := c.holdKey(queue)
	seq, err := holdPush.Run(ctx, client, []string{key, key + ":seq"}, msg).Int64()
	if err != nil {
		return 0, c.wrap(fmt.Sprintf("hold push %q", queue), err)
	}
	return seq, nil
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
	client, err := c.conn()
	if err != nil {
		return err
	}
	// Exact MINID trim: removes every entry with ID below (uptoSeq+1)-0.
	minID := strconv.FormatUint(uint64(uptoSeq)+1, 10)
	if err := client.XTrimMinID(ctx, c.holdKey(queue), minID).Err(); err != nil {
		return c.wrap(fmt.Sprintf("hold ack %q up to %d", queue, uptoSeq), err)
	}
	return nil
}

// HoldDelete removes every message of queue; its seq counter is kept.
func (c *Coord) HoldDelete(ctx context.Context, queue string) error {
	client, err := c.conn()
	if err != nil {
		return err
	}
	if err := client.Del(ctx, c.holdKey(queue)).Err(); err != nil {
		return c.wrap(fmt.Sprintf("hold delete %q", queue), err)
	}
	return nil
}
