package memory

// Entries returns how many KV and rate-limit entries c holds, expired or not.
func Entries(c *Coord) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.kv) + len(c.rates)
}
