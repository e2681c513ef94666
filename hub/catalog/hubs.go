package catalog

import (
	"context"
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// HubState is a hub's scheduling state as the leader records it.
type HubState string

// Hub states.
const (
	// HubUp is reached by the leader; it takes new allocations unless it
	// is draining.
	HubUp HubState = "up"
	// HubDown has not been reached by the leader for the hub-lost timeout;
	// its allocations are placed elsewhere.
	HubDown HubState = "down"
)

// Hub is one hub of the cluster: its addresses and its scheduling state.
// It replaces the directory kept in settings under "cluster.hub/".
type Hub struct {
	ID     string `json:"id"`
	Region string `json:"region,omitempty"`
	API    string `json:"api,omitempty"`  // base URL other hubs reach its API at
	Raft   string `json:"raft,omitempty"` // raft transport address
	// Advertise is the host (name or IP) at which the runtimes this hub
	// runs are reached by the other hubs.
	Advertise string `json:"advertise,omitempty"`
	// MemoryMB is the memory the hub offers its runtimes (0 = not known).
	MemoryMB int       `json:"memory_mb,omitempty"`
	State    HubState  `json:"state,omitempty"`
	Since    time.Time `json:"since,omitzero"` // when State last changed
	Reason   string    `json:"reason,omitempty"`
	// Draining hubs take no new allocations and the scheduler moves theirs
	// away (towerctl hubs drain); it holds across restarts.
	Draining bool `json:"draining,omitempty"`
	Indexes
}

func (h *Hub) primaryKey() string { return h.ID }

func (h *Hub) clone() *Hub { c := *h; return &c }

func hubsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableHubs, Indexes: map[string]*memdb.IndexSchema{
		"id":     idIndex("ID"),
		"region": refIndex("region", "Region"),
	}}
}

func checkHub(_ *write, h *Hub) error {
	if h.ID == "" {
		return fmt.Errorf("hub: id is required: %w", ErrInvalid)
	}
	switch h.State {
	case HubUp, HubDown:
	default:
		return fmt.Errorf("hub %q: state %q is not up or down: %w", h.ID, h.State, ErrInvalid)
	}
	return nil
}

// RegisterHub returns the command a hub applies when it starts: it records
// the hub's addresses and marks it up; a drain holds across restarts.
// Errors: ErrInvalid without an id. The result is the stored Hub.
func RegisterHub(h Hub) Command {
	return newPut(CmdRegisterHub, h, nil)
}

func applyRegisterHub(w *write, b putBody[Hub]) (any, error) {
	h := &b.Row
	old := first[Hub](w.tx, nil, tableHubs, "id", h.ID)
	h.State = HubUp
	if old != nil {
		h.Draining = old.Draining
		if old.State == HubUp {
			h.Since, h.Reason = old.Since, old.Reason
		}
	}
	if err := checkHub(w, h); err != nil {
		return nil, fmt.Errorf("register hub: %w", err)
	}
	return insert(w, tableHubs, h, old)
}

// hubStateBody is the payload of SetHubState.
type hubStateBody struct {
	ID     string    `json:"id"`
	State  HubState  `json:"state"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// SetHubState returns the command that changes a hub's state at time at,
// with a reason. Setting the current state again changes nothing. Errors:
// ErrNotFound; ErrInvalid for an unknown state.
func SetHubState(id string, state HubState, at time.Time, reason string) Command {
	return newCommand(CmdSetHubState, hubStateBody{ID: id, State: state, At: at, Reason: reason})
}

func applySetHubState(w *write, b hubStateBody) (any, error) {
	old := first[Hub](w.tx, nil, tableHubs, "id", b.ID)
	if old == nil {
		return nil, fmt.Errorf("set state of hub %q: %w", b.ID, ErrNotFound)
	}
	if old.State == b.State {
		return *old.clone(), nil
	}
	h := old.clone()
	h.State, h.Since, h.Reason = b.State, b.At, b.Reason
	if err := checkHub(w, h); err != nil {
		return nil, err
	}
	return insert(w, tableHubs, h, old)
}

// hubDrainBody is the payload of SetHubDraining.
type hubDrainBody struct {
	ID       string `json:"id"`
	Draining bool   `json:"draining"`
}

// SetHubDraining returns the command that starts or ends a hub's drain.
// Errors: ErrNotFound.
func SetHubDraining(id string, draining bool) Command {
	return newCommand(CmdSetHubDraining, hubDrainBody{ID: id, Draining: draining})
}

func applySetHubDraining(w *write, b hubDrainBody) (any, error) {
	old := first[Hub](w.tx, nil, tableHubs, "id", b.ID)
	if old == nil {
		return nil, fmt.Errorf("drain hub %q: %w", b.ID, ErrNotFound)
	}
	h := old.clone()
	h.Draining = b.Draining
	return insert(w, tableHubs, h, old)
}

// DeleteHub returns the command that drops a hub from the directory.
// Errors: ErrNotFound.
func DeleteHub(id string) Command {
	return newCommand(CmdDeleteHub, keyBody{Key: id})
}

func applyDeleteHub(w *write, b keyBody) (any, error) {
	h := first[Hub](w.tx, nil, tableHubs, "id", b.Key)
	if h == nil {
		return nil, fmt.Errorf("delete hub %q: %w", b.Key, ErrNotFound)
	}
	w.remove(tableHubs, h)
	return nil, nil
}

// Hub returns the hub with the given id, or ErrNotFound.
func (s *State) Hub(id string) (Hub, error) {
	return get[Hub](s.read(nil), nil, tableHubs, id)
}

// Hubs returns every hub, ordered by id.
func (s *State) Hubs() []Hub {
	return list[Hub](s.read(nil), nil, tableHubs, "id")
}

// WatchHubs returns every hub and a channel closed when the list may have
// changed.
func (s *State) WatchHubs(ctx context.Context) ([]Hub, <-chan struct{}) {
	ws := memdb.NewWatchSet()
	hubs := list[Hub](s.read(ws), ws, tableHubs, "id")
	return hubs, watch(ctx, ws)
}
