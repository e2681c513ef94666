package catalog

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// MaxReplicas bounds an instance's replica count.
const MaxReplicas = 9

// AllocDesired is what the scheduler wants of one allocation.
type AllocDesired string

// Allocation desired states.
const (
	// AllocRun follows the instance's DesiredState (the default).
	AllocRun AllocDesired = "run"
	// AllocStop asks its hub to stop the runtime before the replica is
	// placed elsewhere (a move back home with no two live writers).
	AllocStop AllocDesired = "stop"
)

// AllocObserved is what the hub running an allocation last saw of it.
type AllocObserved struct {
	Status    string    `json:"status,omitempty"` // hub/fleet statuses: running, starting, failed, stopped, …
	RuntimeID string    `json:"runtime_id,omitempty"`
	Host      string    `json:"host,omitempty"` // where the other hubs reach the runtime
	Port      int       `json:"port,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Message   string    `json:"message,omitempty"`
	// FlowsSHA is the SHA-256 of the flows document the runtime runs, as
	// the hub last deployed it (the row's Flows.SHA once caught up).
	FlowsSHA string `json:"flows_sha,omitempty"`
}

// Allocation places one replica of a catalog row (a logical instance or a
// deployment's color row) on one hub. Only that hub runs it. A replica
// moved to another hub gets a new allocation (a new ID) and the old one is
// deleted in the same command, so a hub that comes back after a move finds
// its runtime's allocation gone, or no longer its own, and stops it: the
// ID fences it.
type Allocation struct {
	ID         string       `json:"id"`
	InstanceID string       `json:"instance_id"` // the row; must exist
	Replica    int          `json:"replica"`     // 0-based
	Hub        string       `json:"hub"`
	Region     string       `json:"region,omitempty"`
	Desired    AllocDesired `json:"desired,omitempty"`
	// Reason says why the allocation is where it is ("placed",
	// "rescheduled from hub-x: lost", …).
	Reason    string        `json:"reason,omitempty"`
	Observed  AllocObserved `json:"observed"`
	CreatedAt time.Time     `json:"created_at"`
	Indexes
}

func (a *Allocation) primaryKey() string { return a.ID }

func (a *Allocation) clone() *Allocation { c := *a; return &c }

// Address is host:port of the runtime, or "" while it has none.
func (a Allocation) Address() string {
	if a.Observed.Host == "" || a.Observed.Port == 0 {
		return ""
	}
	return joinHostPort(a.Observed.Host, a.Observed.Port)
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}

func allocationsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableAllocations, Indexes: map[string]*memdb.IndexSchema{
		"id":       idIndex("ID"),
		"instance": refIndex("instance", "InstanceID"),
		"hub":      refIndex("hub", "Hub"),
	}}
}

func checkAllocation(w *write, a *Allocation) error {
	switch {
	case a.ID == "" || a.InstanceID == "" || a.Hub == "":
		return fmt.Errorf("allocation: id, instance_id and hub are required: %w", ErrInvalid)
	case a.Replica < 0 || a.Replica >= MaxReplicas:
		return fmt.Errorf("allocation %q: replica %d out of range 0-%d: %w", a.ID, a.Replica, MaxReplicas-1, ErrInvalid)
	}
	switch a.Desired {
	case "", AllocRun, AllocStop:
	default:
		return fmt.Errorf("allocation %q: desired %q is not run or stop: %w", a.ID, a.Desired, ErrInvalid)
	}
	return w.exists(tableInstances, a.InstanceID)
}

// Plan is a set of allocation changes the scheduler applies at once, so
// that a move (a new allocation and the deletion of the old one) is never
// half done.
type Plan struct {
	Put    []Allocation `json:"put,omitempty"`
	Delete []string     `json:"delete,omitempty"`
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool { return len(p.Put) == 0 && len(p.Delete) == 0 }

// ApplyPlan returns the command that applies a scheduler plan: deletes,
// then puts. A put of an existing allocation replaces its placement fields
// and keeps its Observed and CreatedAt. Errors: ErrNotFound for a delete of
// a missing allocation or a put whose instance is missing; ErrInvalid for
// a malformed allocation. All or nothing.
func ApplyPlan(p Plan) Command {
	return newCommand(CmdApplyPlan, p)
}

func applyPlan(w *write, p Plan) (any, error) {
	touched := map[string]bool{}
	for _, id := range p.Delete {
		a := first[Allocation](w.tx, nil, tableAllocations, "id", id)
		if a == nil {
			return nil, fmt.Errorf("plan: delete allocation %q: %w", id, ErrNotFound)
		}
		w.remove(tableAllocations, a)
		touched[a.InstanceID] = true
	}
	for i := range p.Put {
		a := p.Put[i]
		if err := checkAllocation(w, &a); err != nil {
			return nil, fmt.Errorf("plan: %w", err)
		}
		old := first[Allocation](w.tx, nil, tableAllocations, "id", a.ID)
		if old != nil {
			if old.InstanceID != a.InstanceID {
				return nil, fmt.Errorf("plan: allocation %q belongs to %q, not %q: %w", a.ID, old.InstanceID, a.InstanceID, ErrInvalid)
			}
			a.Observed, a.CreatedAt = old.Observed, old.CreatedAt
		}
		if _, err := insert(w, tableAllocations, &a, old); err != nil {
			return nil, err
		}
		touched[a.InstanceID] = true
	}
	for _, id := range sortedSet(touched) {
		summarize(w, id)
	}
	return nil, nil
}

// allocObservedBody is the payload of SetAllocationObserved.
type allocObservedBody struct {
	ID       string        `json:"id"`
	Hub      string        `json:"hub"`
	Observed AllocObserved `json:"observed"`
}

// SetAllocationObserved returns the command a hub applies to record what
// it observes of an allocation it runs. It also refreshes the instance's
// Observed summary. Errors: ErrNotFound; ErrConflict when the allocation
// is not placed on hub (a fenced hub's report is refused).
func SetAllocationObserved(id, hub string, obs AllocObserved) Command {
	return newCommand(CmdSetAllocationObserved, allocObservedBody{ID: id, Hub: hub, Observed: obs})
}

func applySetAllocationObserved(w *write, b allocObservedBody) (any, error) {
	old := first[Allocation](w.tx, nil, tableAllocations, "id", b.ID)
	if old == nil {
		return nil, fmt.Errorf("set observed state of allocation %q: %w", b.ID, ErrNotFound)
	}
	if old.Hub != b.Hub {
		return nil, fmt.Errorf("allocation %q is placed on %s, not %s: %w", b.ID, old.Hub, b.Hub, ErrConflict)
	}
	a := old.clone()
	a.Observed = b.Observed
	res, err := insert(w, tableAllocations, a, old)
	if err != nil {
		return nil, err
	}
	summarize(w, a.InstanceID)
	return res, nil
}

// statusRank orders replica statuses for an instance's summary: the best
// replica's status stands for the instance.
var statusRank = []string{"running", "starting", "creating", "unhealthy", "failed", "crash_looping", "error", "stopped"}

func rank(status string) int {
	if i := slices.Index(statusRank, status); i >= 0 {
		return i
	}
	return len(statusRank)
}

// summarize sets an instance's Observed from its allocations (called
// inside the write that changed them): the best replica's status, runtime
// and port, and a message counting the replicas running.
func summarize(w *write, instanceID string) {
	old := first[Instance](w.tx, nil, tableInstances, "id", instanceID)
	if old == nil {
		return
	}
	allocs := list[Allocation](w.tx, nil, tableAllocations, "instance", instanceID)
	obs := Observed{Status: "pending", Message: "no replica placed yet"}
	if len(allocs) > 0 {
		slices.SortFunc(allocs, func(a, b Allocation) int {
			if d := rank(a.Observed.Status) - rank(b.Observed.Status); d != 0 {
				return d
			}
			return a.Replica - b.Replica
		})
		best, running := allocs[0], 0
		for _, a := range allocs {
			if a.Observed.Status == "running" {
				running++
			}
		}
		obs = Observed{Status: best.Observed.Status, RuntimeID: best.Observed.RuntimeID, Port: best.Observed.Port,
			Since: best.Observed.Since, Message: best.Observed.Message}
		if obs.Status == "" {
			obs.Status = "pending"
		}
		if len(allocs) > 1 || obs.Message == "" {
			obs.Message = fmt.Sprintf("%d/%d replicas running", running, len(allocs))
			if best.Observed.Message != "" && running < len(allocs) {
				obs.Message += "; " + best.Observed.Message
			}
		}
	}
	if obs == old.Observed {
		return
	}
	inst := old.clone()
	inst.Observed = obs
	_, _ = insert(w, tableInstances, inst, old)
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Allocation returns the allocation with the given id, or ErrNotFound.
func (s *State) Allocation(id string) (Allocation, error) {
	return get[Allocation](s.read(nil), nil, tableAllocations, id)
}

// Allocations returns every allocation, ordered by id.
func (s *State) Allocations() []Allocation {
	return list[Allocation](s.read(nil), nil, tableAllocations, "id")
}

// InstanceAllocations returns the allocations of one catalog row, by
// replica then id.
func (s *State) InstanceAllocations(instanceID string) []Allocation {
	out := list[Allocation](s.read(nil), nil, tableAllocations, "instance", instanceID)
	slices.SortFunc(out, func(a, b Allocation) int {
		if a.Replica != b.Replica {
			return a.Replica - b.Replica
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// HubAllocations returns the allocations placed on one hub, by id.
func (s *State) HubAllocations(hub string) []Allocation {
	return list[Allocation](s.read(nil), nil, tableAllocations, "hub", hub)
}

// WatchHubAllocations returns the allocations placed on hub, the
// allocations table index and a channel closed when they may have changed.
func (s *State) WatchHubAllocations(ctx context.Context, hub string) ([]Allocation, uint64, <-chan struct{}) {
	ws := memdb.NewWatchSet()
	tx := s.read(ws)
	allocs := list[Allocation](tx, ws, tableAllocations, "hub", hub)
	return allocs, indexOf(tx, tableAllocations), watch(ctx, ws)
}

// WatchAllocations returns every allocation and a channel closed when any
// may have changed.
func (s *State) WatchAllocations(ctx context.Context) ([]Allocation, <-chan struct{}) {
	ws := memdb.NewWatchSet()
	allocs := list[Allocation](s.read(ws), ws, tableAllocations, "id")
	return allocs, watch(ctx, ws)
}

// Work is one allocation a hub runs, with its row and the row's flows.
type Work struct {
	Alloc Allocation
	Row   Instance
	Flows *Flows // nil when no flows were ever deployed to the row
}

// WatchHubWork returns the allocations placed on hub with their rows and
// flows, read in one transaction, and a channel closed when any of the
// three tables may have changed. Allocations whose row is gone (it cannot
// happen: deleting a row deletes its allocations) are left out.
func (s *State) WatchHubWork(ctx context.Context, hub string) ([]Work, <-chan struct{}) {
	ws := memdb.NewWatchSet()
	tx := s.read(ws)
	for _, t := range []string{tableInstances, tableFlows} {
		it, err := tx.Get(t, "id")
		mustBeOK(err)
		ws.Add(it.WatchCh())
	}
	var out []Work
	for _, a := range list[Allocation](tx, ws, tableAllocations, "hub", hub) {
		row := first[Instance](tx, nil, tableInstances, "id", a.InstanceID)
		if row == nil {
			continue
		}
		w := Work{Alloc: a, Row: *row.clone()}
		if f := first[Flows](tx, nil, tableFlows, "id", a.InstanceID); f != nil {
			w.Flows = f.clone()
		}
		out = append(out, w)
	}
	return out, watch(ctx, ws)
}

// WatchPlacement returns a channel closed when anything the scheduler
// plans from may have changed: instances, allocations, hubs or moves.
func (s *State) WatchPlacement(ctx context.Context) <-chan struct{} {
	ws := memdb.NewWatchSet()
	tx := s.read(ws)
	for _, t := range []string{tableInstances, tableAllocations, tableHubs, tableMoves} {
		it, err := tx.Get(t, "id")
		mustBeOK(err)
		ws.Add(it.WatchCh())
	}
	return watch(ctx, ws)
}
