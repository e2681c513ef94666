package hub

import (
	"time"

	"github.com/redforge/controltower/regions"
	"github.com/redforge/controltower/router"
)

// regionHealth is the leader's view of each region: up while any of its
// hubs is this hub or not down in this hub's probes; rtt is the lowest RTT
// to one of its hubs.
func (h *Hub) regionHealth() (up map[string]bool, rtt map[string]time.Duration) {
	up, rtt = map[string]bool{}, map[string]time.Duration{}
	probes := map[string]router.TargetStatus{}
	for _, t := range h.cl.routes.Status() {
		probes[t.Target] = t
	}
	for id, hi := range h.Raft.Hubs() {
		if hi.Region == "" {
			continue
		}
		if _, seen := up[hi.Region]; !seen {
			up[hi.Region] = false
		}
		if id == h.NodeID {
			up[hi.Region], rtt[hi.Region] = true, 0
			continue
		}
		p, ok := probes[hi.API]
		if !ok || p.State == router.Down {
			continue
		}
		up[hi.Region] = true
		if cur, seen := rtt[hi.Region]; p.RTT > 0 && (!seen || p.RTT < cur) {
			rtt[hi.Region] = p.RTT
		}
	}
	return up, rtt
}

// Moves returns the failover instances the scheduler placed outside their
// home region, by instance.
func (h *Hub) Moves() []regions.Move {
	var out []regions.Move
	for _, m := range h.State.Moves() {
		out = append(out, regions.Move{Instance: m.Instance, Name: m.Name, Home: m.Home, To: m.To, At: m.At, Reason: m.Reason})
	}
	return out
}
