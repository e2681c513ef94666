package memory

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/coord"
	"github.com/redforge/controltower/hub/coord/internal/check"
)

// entry is one stored value; a zero expires means it never expires.
type entry struct {
	val     []byte
	expires time.Time
}

func (e entry) live(now time.Time) bool {
	return e.expires.IsZero() || now.Before(e.expires)
}

// getLocked returns the live entry for key, dropping it if expired.
func (c *Coord) getLocked(key string) (entry, bool) {
	e, ok := c.kv[key]
	if ok && !e.live(c.now()) {
		delete(c.kv, key)
		return entry{}, false
	}
	return e, ok
}

func (c *Coord) putLocked(key string, val []byte, ttl time.Duration) {
	e := entry{val: slices.Clone(val)}
	if e.val == nil {
		e.val = []byte{}
	}
	if ttl > 0 {
		e.expires = c.now().Add(ttl)
	}
	c.kv[key] = e
}

// Get returns a copy of the value of key, or coord.ErrNotFound.
func (c *Coord) Get(ctx context.Context, key string) ([]byte, error) {
	if err := c.lock(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	e, ok := c.getLocked(key)
	if !ok {
		return nil, coord.ErrNotFound
	}
	return slices.Clone(e.val), nil
}

// Set stores a copy of val under key with the given ttl (0: no expiry).
func (c *Coord) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	ttl, err := check.TTL(ttl)
	if err != nil {
		return err
	}
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	c.putLocked(key, val, ttl)
	return nil
}

// SetNX stores val under key only if key does not exist.
func (c *Coord) SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	ttl, err := check.TTL(ttl)
	if err != nil {
		return false, err
	}
	if err := c.lock(ctx); err != nil {
		return false, err
	}
	defer c.mu.Unlock()
	if _, ok := c.getLocked(key); ok {
		return false, nil
	}
	c.putLocked(key, val, ttl)
	return true, nil
}

// CompareAndSwap replaces the value of key with new only if it equals old.
func (c *Coord) CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error) {
	ttl, err := check.TTL(ttl)
	if err != nil {
		return false, err
	}
	if err := c.lock(ctx); err != nil {
		return false, err
	}
	defer c.mu.Unlock()
	if e, ok := c.getLocked(key); !ok || !bytes.Equal(e.val, old) {
		return false, nil
	}
	c.putLocked(key, new, ttl)
	return true, nil
}

// CompareAndDelete deletes key only if its value equals old.
func (c *Coord) CompareAndDelete(ctx context.Context, key string, old []byte) (bool, error) {
	if err := c.lock(ctx); err != nil {
		return false, err
	}
	defer c.mu.Unlock()
	if e, ok := c.getLocked(key); !ok || !bytes.Equal(e.val, old) {
		return false, nil
	}
	delete(c.kv, key)
	return true, nil
}

// Delete removes key; a missing key is not an error.
func (c *Coord) Delete(ctx context.Context, key string) error {
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	delete(c.kv, key)
	return nil
}

// Keys returns the live keys starting with prefix, sorted.
func (c *Coord) Keys(ctx context.Context, prefix string) ([]string, error) {
	if err := c.lock(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	now := c.now()
	var keys []string
	for k, e := range c.kv {
		if strings.HasPrefix(k, prefix) && e.live(now) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}
