package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/regions"
	"github.com/redforge/controltower/router"
)

// moveKeyPrefix prefixes the catalog settings recording instances moved out
// of a failed region (regions.Move), keyed by instance ID.
const moveKeyPrefix = "regions.move/"

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

// Moves returns the instances moved out of their home region, by instance.
func (h *Hub) Moves() []regions.Move {
	var out []regions.Move
	for _, s := range h.State.Settings() {
		var m regions.Move
		if strings.HasPrefix(s.Key, moveKeyPrefix) && json.Unmarshal(s.Value, &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// regionalFailover runs on the leader: a failover instance whose region has
// no reachable hub moves (its Region is rewritten, one row, never copied)
// to regions.ChooseFailover's region, with the reason recorded; when its
// home region is up again it moves back and the record goes. Pinned
// instances never move.
func (h *Hub) regionalFailover(ctx context.Context) {
	if h.Raft.State() != "Leader" || h.cl.routes.cur.Load() == nil {
		return // no peers probed yet: no basis to call a region down
	}
	up, rtt := h.regionHealth()
	moves := map[string]regions.Move{}
	for _, m := range h.Moves() {
		moves[m.Instance] = m
	}
	for _, inst := range h.State.Instances() {
		if inst.Placement != catalog.PlacementFailover {
			continue
		}
		if m, moved := moves[inst.ID]; moved {
			if up[m.Home] {
				h.moveInstance(ctx, inst, m.Home, nil, m)
			}
			continue
		}
		if healthy, known := up[inst.Region]; !known || healthy {
			continue // a region with no hub in the directory is not ours to judge
		}
		to, ok := regions.ChooseFailover(h.Config.Topology, inst.Region, up, rtt)
		if !ok {
			continue
		}
		rec := regions.Move{Instance: inst.ID, Name: inst.Name, Home: inst.Region, To: to, At: time.Now().UTC(),
			Reason: fmt.Sprintf("every hub of region %s is unreachable from the leader %s", inst.Region, h.NodeID)}
		h.moveInstance(ctx, inst, to, &rec, rec)
	}
}

// moveInstance rewrites inst's region (compare-and-set on its index), then
// records rec (moving out) or deletes the record (moving home).
func (h *Hub) moveInstance(ctx context.Context, inst catalog.Instance, to string, rec *regions.Move, m regions.Move) {
	from := inst.Region
	inst.Region, inst.UpdatedAt = to, time.Now().UTC()
	if _, err := h.Raft.Apply(ctx, catalog.UpsertInstance(inst, catalog.IfIndex(inst.ModifyIndex))); err != nil {
		h.Logger.Warn("regional failover: move instance", "instance", inst.ID, "from", from, "to", to, "error", err)
		return
	}
	var err error
	if rec != nil {
		_, err = h.Raft.Apply(ctx, catalog.PutSetting(moveKeyPrefix+inst.ID, rec))
	} else {
		_, err = h.Raft.Apply(ctx, catalog.DeleteSetting(moveKeyPrefix+inst.ID))
		if errors.Is(err, catalog.ErrNotFound) {
			err = nil
		}
	}
	if err != nil {
		h.Logger.Warn("regional failover: record", "instance", inst.ID, "error", err)
	}
	h.Logger.Warn("regional failover: instance moved", "instance", inst.ID, "name", inst.Name, "from", from, "to", to, "home", m.Home, "reason", m.Reason)
}
