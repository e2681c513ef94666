// Package schedule is the leader's placement: which hub runs each replica
// of each catalog row. Compute turns the catalog (instances, allocations,
// hubs and their states, moves) into a plan of allocation changes; the
// Scheduler applies plans on the leader, keeps each hub's state (up or
// down, from the leader's contact with it) and records moves. It does not
// run runtimes (hub/fleet does, on the hub an allocation names) nor serve
// requests (hub/proxy). Invariants and the tests that prove them are in
// DESIGN.md.
package schedule

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/regions"
)

// DefaultMemoryMB is the memory a replica of an instance without a memory
// limit is counted as reserving.
const DefaultMemoryMB = 256

// Input is what Compute plans from: the catalog's rows and the leader's
// view of the regions.
type Input struct {
	Instances   []catalog.Instance
	Allocations []catalog.Allocation
	Hubs        []catalog.Hub
	Moves       []catalog.Move
	Topology    *regions.Topology        // failover order; nil: nearest by RTT
	RegionRTT   map[string]time.Duration // from the leader, for failover choice
	Now         time.Time
	// NewID names a new allocation of row; nil: row id and random hex.
	NewID func(rowID string) string
}

// Output is what Compute decided.
type Output struct {
	Plan        catalog.Plan
	PutMoves    []catalog.Move
	DeleteMoves []string
	// Notes explain each change, for the log and the audit.
	Notes []Note
}

// Note explains one change of the plan.
type Note struct {
	Instance string `json:"instance"` // row id
	Name     string `json:"name"`
	Replica  int    `json:"replica"`
	From     string `json:"from,omitempty"` // hubs ("" when none)
	To       string `json:"to,omitempty"`
	Reason   string `json:"reason"`
}

// Empty reports whether Compute found nothing to change.
func (o Output) Empty() bool {
	return o.Plan.Empty() && len(o.PutMoves) == 0 && len(o.DeleteMoves) == 0
}

// planner holds one Compute call's working state.
type planner struct {
	in       Input
	hubs     map[string]catalog.Hub
	reserved map[string]int // MB reserved on each hub, planned changes included
	count    map[string]int // allocations on each hub
	moves    map[string]catalog.Move
	out      Output
}

// Compute returns the changes that bring the allocations to what the
// instances ask for: ReplicaCount replicas each, on distinct up hubs of
// the instance's region where there are enough (else the least loaded by
// reserved memory), none on a draining or down hub; a failover instance
// whose home region has no live hub goes to regions.ChooseFailover's
// region and comes back, stopped first, when home is up again. It is a
// pure function of its input.
func Compute(in Input) Output {
	if in.NewID == nil {
		in.NewID = randomID
	}
	p := &planner{in: in, hubs: map[string]catalog.Hub{}, reserved: map[string]int{}, count: map[string]int{},
		moves: map[string]catalog.Move{}}
	for _, h := range in.Hubs {
		p.hubs[h.ID] = h
	}
	rows := map[string]catalog.Instance{}
	for _, inst := range in.Instances {
		rows[inst.ID] = inst
	}
	byRow := map[string][]catalog.Allocation{}
	for _, a := range in.Allocations {
		byRow[a.InstanceID] = append(byRow[a.InstanceID], a)
		if r, ok := rows[a.InstanceID]; ok {
			p.reserved[a.Hub] += memoryOf(r)
		}
		p.count[a.Hub]++
	}
	for _, m := range in.Moves {
		p.moves[m.Instance] = m
	}
	for _, inst := range in.Instances {
		p.row(inst, byRow[inst.ID])
	}
	return p.out
}

func memoryOf(inst catalog.Instance) int {
	if inst.Resources.MemoryMB > 0 {
		return inst.Resources.MemoryMB
	}
	return DefaultMemoryMB
}

func randomID(rowID string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return rowID + "-" + hex.EncodeToString(b[:])
}

// live reports whether hub id is alive (up, draining or not).
func (p *planner) live(id string) bool {
	h, ok := p.hubs[id]
	return ok && h.State == catalog.HubUp
}

// regionKnown reports whether any hub is registered in region.
func (p *planner) regionKnown(region string) bool {
	for _, h := range p.hubs {
		if h.Region == region {
			return true
		}
	}
	return false
}

// regionLive reports whether region has a live hub.
func (p *planner) regionLive(region string) bool {
	for _, h := range p.hubs {
		if h.Region == region && p.live(h.ID) {
			return true
		}
	}
	return false
}

// target is the region the row's replicas belong in now, and whether that
// is away from home (a failover).
func (p *planner) target(inst catalog.Instance) (string, bool) {
	home := inst.Region
	if home == "" || !p.regionKnown(home) {
		return "", false // any region
	}
	if p.regionLive(home) || inst.Placement != catalog.PlacementFailover {
		return home, false
	}
	up := map[string]bool{}
	for _, h := range p.hubs {
		if h.Region != "" {
			up[h.Region] = up[h.Region] || p.live(h.ID) && !h.Draining
		}
	}
	to, ok := regions.ChooseFailover(p.in.Topology, home, up, p.in.RegionRTT)
	if !ok {
		return home, false
	}
	return to, true
}

// eligible reports whether a new or kept replica may be on hub id for
// region (any region when "").
func (p *planner) eligible(id, region string) bool {
	h, ok := p.hubs[id]
	return ok && h.State == catalog.HubUp && !h.Draining && (region == "" || h.Region == region)
}

// row plans one catalog row.
func (p *planner) row(inst catalog.Instance, allocs []catalog.Allocation) {
	region, away := p.target(inst)
	p.recordMove(inst, region, away, allocs)
	want := inst.ReplicaCount()
	byReplica := map[int][]catalog.Allocation{}
	for _, a := range allocs {
		if a.Replica >= want {
			p.remove(inst, a, fmt.Sprintf("scaled to %d replicas", want))
			continue
		}
		byReplica[a.Replica] = append(byReplica[a.Replica], a)
	}
	for r := range want {
		p.replica(inst, r, region, byReplica[r])
	}
}

// replica plans replica r of inst.
func (p *planner) replica(inst catalog.Instance, r int, region string, cands []catalog.Allocation) {
	slices.SortFunc(cands, func(a, b catalog.Allocation) int {
		return cmp.Or(cmp.Compare(rankAlloc(a), rankAlloc(b)), cmp.Compare(a.CreateIndex, b.CreateIndex), cmp.Compare(a.ID, b.ID))
	})
	var keep *catalog.Allocation
	for i := range cands {
		if p.eligible(cands[i].Hub, region) && cands[i].Desired != catalog.AllocStop {
			keep = &cands[i]
			break
		}
	}
	if keep != nil {
		for _, a := range cands {
			if a.ID == keep.ID {
				continue
			}
			// Others go once the kept one runs (a drain's overlap), at
			// once when their hub is gone.
			if keep.Observed.Status == "running" || !p.live(a.Hub) {
				p.remove(inst, a, "replaced by "+keep.ID+" on "+keep.Hub)
			}
		}
		return
	}
	// No replica where it belongs. With nowhere to place one, what exists
	// stays (a pinned instance waits for its region's hubs).
	hub, ok := p.choose(inst, region)
	if !ok {
		return
	}
	// Clear the way, then place one.
	blocked := false
	for _, a := range cands {
		switch {
		case !p.live(a.Hub):
			p.remove(inst, a, "hub "+a.Hub+" is "+p.stateOf(a.Hub))
		case region != "" && a.Region != region && a.Region != "" && !p.awayFromHome(inst, a):
			// A replica in another region while its home is up again
			// (a failover coming back): stop it before placing one at
			// home, so the instance never has two live writers.
			blocked = true
			if a.Desired != catalog.AllocStop {
				a.Desired = catalog.AllocStop
				a.Reason = "stopping: moving back to " + region
				p.out.Plan.Put = append(p.out.Plan.Put, a)
				p.note(inst, r, a.Hub, "", a.Reason)
			} else if a.Observed.Status == "stopped" || a.Observed.Status == "error" {
				p.remove(inst, a, "stopped for the move back to "+region)
				blocked = false
			}
		case a.Desired == catalog.AllocStop && p.eligible(a.Hub, region):
			// Asked to stop for a move back that no longer holds (home
			// went down again): run it again where it is.
			a.Desired, a.Reason = catalog.AllocRun, "move back cancelled"
			p.out.Plan.Put = append(p.out.Plan.Put, a)
			p.note(inst, r, a.Hub, a.Hub, a.Reason)
			return
		default:
			// On a live hub that takes no more (draining): keep it
			// serving until its replacement runs.
		}
	}
	if blocked {
		return
	}
	reason := "placed"
	if len(cands) > 0 {
		reason = fmt.Sprintf("rescheduled from %s: %s", cands[0].Hub, p.why(cands[0], region))
	}
	a := catalog.Allocation{ID: p.in.NewID(inst.ID), InstanceID: inst.ID, Replica: r, Hub: hub,
		Region: p.hubs[hub].Region, Desired: catalog.AllocRun, Reason: reason, CreatedAt: p.in.Now}
	p.out.Plan.Put = append(p.out.Plan.Put, a)
	p.reserved[hub] += memoryOf(inst)
	p.count[hub]++
	from := ""
	if len(cands) > 0 {
		from = cands[0].Hub
	}
	p.note(inst, r, from, hub, reason)
}

// awayFromHome reports whether a sits in the region the row failed over to
// (so it is where it belongs while home is down).
func (p *planner) awayFromHome(inst catalog.Instance, a catalog.Allocation) bool {
	m, moved := p.moves[inst.ID]
	return moved && a.Region == m.To && !p.regionLive(inst.Region)
}

func (p *planner) why(a catalog.Allocation, region string) string {
	switch {
	case !p.live(a.Hub):
		return "hub " + p.stateOf(a.Hub)
	case p.hubs[a.Hub].Draining:
		return "hub draining"
	case region != "" && a.Region != region:
		return "region " + region
	}
	return "replaced"
}

func (p *planner) stateOf(id string) string {
	h, ok := p.hubs[id]
	switch {
	case !ok:
		return "gone"
	case h.State == catalog.HubDown:
		return "lost"
	}
	return string(h.State)
}

// choose picks the hub for a new replica: eligible for region, holding the
// fewest replicas of the row, then the least reserved memory, then by id.
func (p *planner) choose(inst catalog.Instance, region string) (string, bool) {
	mine := map[string]int{}
	for _, a := range p.in.Allocations {
		if a.InstanceID == inst.ID && !slices.Contains(p.out.Plan.Delete, a.ID) {
			mine[a.Hub]++
		}
	}
	for _, a := range p.out.Plan.Put {
		if a.InstanceID == inst.ID && a.Desired != catalog.AllocStop {
			mine[a.Hub]++
		}
	}
	var best string
	for _, h := range p.in.Hubs {
		if !p.eligible(h.ID, region) {
			continue
		}
		if best == "" || cmp.Or(cmp.Compare(mine[h.ID], mine[best]), cmp.Compare(p.reserved[h.ID], p.reserved[best]),
			cmp.Compare(h.ID, best)) < 0 {
			best = h.ID
		}
	}
	return best, best != ""
}

func (p *planner) remove(inst catalog.Instance, a catalog.Allocation, reason string) {
	if slices.Contains(p.out.Plan.Delete, a.ID) {
		return
	}
	p.out.Plan.Delete = append(p.out.Plan.Delete, a.ID)
	p.reserved[a.Hub] -= memoryOf(inst)
	p.count[a.Hub]--
	p.note(inst, a.Replica, a.Hub, "", "removed: "+reason)
}

func (p *planner) note(inst catalog.Instance, r int, from, to, reason string) {
	p.out.Notes = append(p.out.Notes, Note{Instance: inst.ID, Name: inst.Name, Replica: r, From: from, To: to, Reason: reason})
}

// recordMove keeps the move record of a failover row: put when it goes
// away from home, deleted once every replica is home again.
func (p *planner) recordMove(inst catalog.Instance, region string, away bool, allocs []catalog.Allocation) {
	m, moved := p.moves[inst.ID]
	switch {
	case away && (!moved || m.To != region):
		p.out.PutMoves = append(p.out.PutMoves, catalog.Move{Instance: inst.ID, Name: inst.Name, Home: inst.Region,
			To: region, At: p.in.Now, Reason: fmt.Sprintf("no live hub in region %s", inst.Region)})
	case !away && moved:
		for _, a := range allocs {
			if a.Region != inst.Region {
				return // still coming back
			}
		}
		p.out.DeleteMoves = append(p.out.DeleteMoves, inst.ID)
	}
}

// rankAlloc orders candidates: running first, then by status rank.
func rankAlloc(a catalog.Allocation) int {
	switch a.Observed.Status {
	case "running":
		return 0
	case "starting", "creating", "":
		return 1
	}
	return 2
}
