package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/redforge/controltower/hub/coord"
	"github.com/redforge/controltower/hub/coord/internal/check"
)

// compareAndSwap: KEYS: key. ARGV: old, new, ttl in ms (0: none).
var compareAndSwap = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
`)

// compareAndDelete: KEYS: key. ARGV: old.
var compareAndDelete = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

// Get returns the value of key, or coord.ErrNotFound.
func (c *Coord) Get(ctx context.Context, key string) ([]byte, error) {
	client, err := c.conn()
	if err != nil {
		return nil, err
	}
	val, err := client.Get(ctx, c.kvKey(key)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, coord.ErrNotFound
	}
	if err != nil {
		return nil, c.wrap(fmt.Sprintf("get %q", key), err)
	}
	return val, nil
}

// Set stores val under key with the given ttl (0: no expiry).
func (c *Coord) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	ttl, err := check.TTL(ttl)
	if err != nil {
		return err
	}
	client, err := c.conn()
	if err != nil {
		return err
	}
	if err := client.Set(ctx, c.kvKey(key), val, ttl).Err(); err != nil {
		return c.wrap(fmt.Sprintf("set %q", key), err)
	}
	return nil
}

// SetNX stores val under key only if key does not exist.
func (c *Coord) SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	ttl, err := check.TTL(ttl)
	if err != nil {
		return false, err
	}
	client, err := c.conn()
	if err != nil {
		return false, err
	}
	ok, err := client.SetNX(ctx, c.kvKey(key), val, ttl).Result()
	if err != nil {
		return false, c.wrap(fmt.Sprintf("setnx %q", key), err)
	}
	return ok, nil
}

// CompareAndSwap replaces the value of key with new only if it equals old.
func (c *Coord) CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error) {
	ttl, err := check.TTL(ttl)
	if err != nil {
		return false, err
	}
	client, err := c.conn()
	if err != nil {
		return false, err
	}
	n, err := compareAndSwap.Run(ctx, client, []string{c.kvKey(key)}, old, new, ttl.Milliseconds()).Int()
	if err != nil {
		return false, c.wrap(fmt.Sprintf("compare and swap %q", key), err)
	}
	return n == 1, nil
}

// CompareAndDelete deletes key only if its value equals old.
func (c *Coord) CompareAndDelete(ctx context.Context, key string, old []byte) (bool, error) {
	client, err := c.conn()
	if err != nil {
		return false, err
	}
	n, err := compareAndDelete.Run(ctx, client, []string{c.kvKey(key)}, old).Int()
	if err != nil {
		return false, c.wrap(fmt.Sprintf("compare and delete %q", key), err)
	}
	return n == 1, nil
}

// Delete removes key; a missing key is not an error.
func (c *Coord) Delete(ctx context.Context, key string) error {
	client, err := c.conn()
	if err != nil {
		return err
	}
	if err := client.Del(ctx, c.kvKey(key)).Err(); err != nil {
		return c.wrap(fmt.Sprintf("delete %q", key), err)
	}
	return nil
}

// Keys returns the live keys starting with prefix, sorted. It uses SCAN,
// so it does not block Redis, and a key set or deleted meanwhile may or
// may not be listed.
func (c *Coord) Keys(ctx context.Context, prefix string) ([]string, error) {
	client, err := c.conn()
	if err != nil {
		return nil, err
	}
	base := c.kvKey("")
	seen := make(map[string]bool)
	iter := client.Scan(ctx, 0, globEscape(base+prefix)+"*", 1000).Iterator()
	for iter.Next(ctx) {
		seen[strings.TrimPrefix(iter.Val(), base)] = true
	}
	if err := iter.Err(); err != nil {
		return nil, c.wrap(fmt.Sprintf("keys %q", prefix), err)
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// globEscape escapes the characters special to Redis glob patterns.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
