package regions

import (
	"slices"
	"time"
)

// Move records that a failover instance was moved out of its home region
// because every hub there was unreachable; the leader moves it back when
// the region returns.
type Move struct {
	Instance string    `json:"instance"`
	Name     string    `json:"name"`
	Home     string    `json:"home"`
	To       string    `json:"to"`
	At       time.Time `json:"at"`
	Reason   string    `json:"reason"`
}

// ChooseFailover picks the region that takes over from region from: the
// first healthy region of from's FailoverTo when the topology lists any,
// else the healthy region with the lowest RTT (unmeasured last, then by
// name). up says which regions are healthy; rtt is the RTT to each region
// as measured from the leader. ok is false when no other region is up.
func ChooseFailover(t *Topology, from string, up map[string]bool, rtt map[string]time.Duration) (string, bool) {
	if t != nil {
		if r, found := t.Region(from); found {
			for _, to := range r.FailoverTo {
				if up[to] && to != from {
					return to, true
				}
			}
		}
	}
	var cands []string
	for r, ok := range up {
		if ok && r != from {
			cands = append(cands, r)
		}
	}
	if len(cands) == 0 {
		return "", false
	}
	slices.SortFunc(cands, func(a, b string) int {
		ra, oka := rtt[a]
		rb, okb := rtt[b]
		switch {
		case oka && !okb:
			return -1
		case !oka && okb:
			return 1
		case oka && ra != rb:
			if ra < rb {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		}
		return 1
	})
	return cands[0], true
}
