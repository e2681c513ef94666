package redis

import (
	"context"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/redforge/controltower/hub/coord/internal/check"
)

// allow counts one event and starts the window (its expiry) on the first
// event. KEYS: counter. ARGV: window in ms. Returns {count, ms left}.
var allow = goredis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// Allow records one event for key in a fixed window that starts at the
// first event after the previous window ended. Redis's clock times the
// window, so every hub sees the same one.
func (c *Coord) Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, int, time.Duration, error) {
	window, err := check.Limit(limit, window)
	if err != nil {
		return false, 0, 0, err
	}
	client, err := c.conn()
	if err != nil {
		return false, 0, 0, err
	}
	res, err := allow.Run(ctx, client, []string{c.rateKey(key)}, window.Milliseconds()).Int64Slice()
	if err != nil {
		return false, 0, 0, c.wrap(fmt.Sprintf("allow %q", key), err)
	}
	if len(res) != 2 {
		return false, 0, 0, fmt.Errorf("coord/redis: allow %q: unexpected script reply %v", key, res)
	}
	n, left := res[0], time.Duration(res[1])*time.Millisecond
	return n <= int64(limit), int(max(0, int64(limit)-n)), left, nil
}
