package router

import (
	"hash/fnv"
	"math"
)

// healthy returns the targets a pick may choose: the up ones, else (no
// target up) the unknown and suspect ones, else none. Down targets are
// never picked by Weighted or Sticky; use Ordered for a last resort.
func (r *Router) healthy() []TargetStatus {
	var up, maybe []TargetStatus
	for _, t := range r.Status() {
		switch t.State {
		case Up:
			up = append(up, t)
		case Unknown, Suspect:
			maybe = append(maybe, t)
		}
	}
	if len(up) > 0 {
		return up
	}
	return maybe
}

// Weighted picks a healthy target with probability proportional to its
// weight (targets missing from weights, or weighted ≤ 0, are not picked),
// for traffic splitting (e.g. 90/10). u is a uniform sample in [0,1) from
// the caller's random source, so tests are deterministic. ok is false when
// no healthy target has a positive weight.
func (r *Router) Weighted(weights map[string]float64, u float64) (target string, ok bool) {
	var total float64
	cands := r.healthy()
	for _, t := range cands {
		total += max(weights[t.Target], 0)
	}
	if total <= 0 {
		return "", false
	}
	x := u * total
	for _, t := range cands {
		w := max(weights[t.Target], 0)
		if w == 0 {
			continue
		}
		if x < w {
			return t.Target, true
		}
		x -= w
		target = t.Target // rounding: the last positive one
	}
	return target, true
}

// Sticky picks the healthy target for key by weighted rendezvous hashing:
// the same key goes to the same target while it stays healthy; when a
// target goes down only its keys move, and they come back when it is up
// again. weights may be nil (all 1); a target weighted ≤ 0 is skipped.
// ok is false when no healthy target is eligible.
func (r *Router) Sticky(key string, weights map[string]float64) (target string, ok bool) {
	best := math.Inf(-1)
	for _, t := range r.healthy() {
		w := 1.0
		if weights != nil {
			w = weights[t.Target]
		}
		if w <= 0 {
			continue
		}
		if s := rendezvousScore(key, t.Target, w); s > best {
			best, target, ok = s, t.Target, true
		}
	}
	return target, ok
}

// rendezvousScore is -w/ln(h) with h the key+target hash mapped to (0,1):
// the highest score wins, and a target's share of keys is w/Σw.
func rendezvousScore(key, target string, w float64) float64 {
	f := fnv.New64a()
	f.Write([]byte(key))
	f.Write([]byte{0})
	f.Write([]byte(target))
	h := (float64(mix64(f.Sum64())>>11) + 0.5) / (1 << 53)
	return -w / math.Log(h)
}

// mix64 is splitmix64's finalizer: FNV alone spreads similar keys poorly
// in its high bits.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
