package catalog

import (
	"context"
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// EdgeState is an edge site's lifecycle state.
type EdgeState string

// Edge states.
const (
	EdgePending        EdgeState = "pending"
	EdgeOnline         EdgeState = "online"
	EdgeOffline        EdgeState = "offline"
	EdgeDecommissioned EdgeState = "decommissioned"
)

// Edge is an enrolled edge site. LastHeartbeat and AppliedConfigVersion are
// the edge's report: only RecordEdgeHeartbeat changes them and PutEdge keeps
// the stored values.
type Edge struct {
	ID                   string    `json:"id"`
	Name                 string    `json:"name"` // unique, case-insensitive
	Region               string    `json:"region,omitempty"`
	CredentialHash       string    `json:"credential_hash,omitempty"`
	State                EdgeState `json:"state,omitempty"`
	LastHeartbeat        time.Time `json:"last_heartbeat,omitzero"`
	DesiredConfigVersion uint64    `json:"desired_config_version,omitempty"`
	AppliedConfigVersion uint64    `json:"applied_config_version,omitempty"`
	// Backlog is what the edge last reported waiting to be synced, per
	// stream (heartbeats since this field existed).
	Backlog   map[string]StreamBacklog `json:"backlog,omitempty"`
	BacklogAt time.Time                `json:"backlog_at,omitzero"` // when Backlog was reported
	CreatedAt time.Time                `json:"created_at"`
	UpdatedAt time.Time                `json:"updated_at"`
	Indexes
}

// StreamBacklog is what one stream of an edge's outbox held unsynced when
// the edge last reported.
type StreamBacklog struct {
	Depth          int64     `json:"depth"`
	Bytes          int64     `json:"bytes"`
	OldestUnsynced time.Time `json:"oldest_unsynced,omitzero"` // arrival of the oldest unsynced record
	Evicted        int64     `json:"evicted,omitempty"`        // evicted under the disk budget, ever
}

func (e *Edge) primaryKey() string { return e.ID }

func (e *Edge) clone() *Edge { c := *e; return &c }

func edgesTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableEdges, Indexes: map[string]*memdb.IndexSchema{
		"id":     idIndex("ID"),
		"name":   uniqueIndex("name", "Name"),
		"region": refIndex("region", "Region"),
	}}
}

func checkEdge(w *write, e *Edge) error {
	if e.ID == "" || e.Name == "" {
		return fmt.Errorf("edge: id and name are required: %w", ErrInvalid)
	}
	return w.unique(tableEdges, "name", e.Name, e.ID)
}

// PutEdge returns the command that creates or replaces an edge; CreatedAt,
// LastHeartbeat, AppliedConfigVersion and Backlog(At) are kept from a stored row.
// Errors: ErrInvalid without an ID or name, ErrConflict when another edge has
// the name or an IfIndex check fails. The result is the stored Edge.
func PutEdge(e Edge, opts ...PutOption) Command {
	return newPut(CmdPutEdge, e, opts)
}

func applyPutEdge(w *write, b putBody[Edge]) (any, error) {
	e := &b.Row
	old := first[Edge](w.tx, nil, tableEdges, "id", e.ID)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put edge %q: %w", e.ID, err)
	}
	if err := checkEdge(w, e); err != nil {
		return nil, fmt.Errorf("put edge %q: %w", e.ID, err)
	}
	if old != nil {
		e.CreatedAt, e.LastHeartbeat, e.AppliedConfigVersion, e.Backlog = old.CreatedAt, old.LastHeartbeat, old.AppliedConfigVersion, old.Backlog
		e.BacklogAt = old.BacklogAt
	}
	return insert(w, tableEdges, e, old)
}

// DeleteEdge returns the command that deletes an edge. Errors: ErrNotFound.
func DeleteEdge(id string) Command {
	return newCommand(CmdDeleteEdge, keyBody{Key: id})
}

func applyDeleteEdge(w *write, b keyBody) (any, error) {
	e := first[Edge](w.tx, nil, tableEdges, "id", b.Key)
	if e == nil {
		return nil, fmt.Errorf("delete edge %q: %w", b.Key, ErrNotFound)
	}
	w.remove(tableEdges, e)
	deleteEdgeConfig(w, b.Key)
	return nil, nil
}

// heartbeatBody is the payload of RecordEdgeHeartbeat.
type heartbeatBody struct {
	ID                   string    `json:"id"`
	At                   time.Time `json:"at"`
	AppliedConfigVersion uint64    `json:"applied_config_version"`
	// Backlog is optional: heartbeats written before it existed have none,
	// and a heartbeat without one keeps the stored backlog.
	Backlog map[string]StreamBacklog `json:"backlog,omitempty"`
}

// RecordEdgeHeartbeat returns the command that records an edge's heartbeat:
// the time, the config version it has applied, and state online. Every
// heartbeat is a Raft write, so hub/edgesync should record one only when
// something changed or a minimum interval has passed. Errors: ErrNotFound;
// ErrConflict when the edge is decommissioned. The result is the stored Edge.
func RecordEdgeHeartbeat(id string, at time.Time, appliedConfigVersion uint64) Command {
	return RecordEdgeReport(id, at, appliedConfigVersion, nil)
}

// RecordEdgeReport is RecordEdgeHeartbeat with the edge's backlog per
// stream (nil keeps the stored one).
func RecordEdgeReport(id string, at time.Time, appliedConfigVersion uint64, backlog map[string]StreamBacklog) Command {
	return newCommand(CmdRecordEdgeHeartbeat, heartbeatBody{ID: id, At: at, AppliedConfigVersion: appliedConfigVersion, Backlog: backlog})
}

func applyRecordEdgeHeartbeat(w *write, b heartbeatBody) (any, error) {
	old := first[Edge](w.tx, nil, tableEdges, "id", b.ID)
	if old == nil {
		return nil, fmt.Errorf("record heartbeat of edge %q: %w", b.ID, ErrNotFound)
	}
	if old.State == EdgeDecommissioned {
		return nil, fmt.Errorf("record heartbeat of edge %q: edge is decommissioned: %w", b.ID, ErrConflict)
	}
	e := old.clone()
	e.LastHeartbeat, e.AppliedConfigVersion, e.State = b.At, b.AppliedConfigVersion, EdgeOnline
	if b.Backlog != nil {
		e.Backlog, e.BacklogAt = b.Backlog, b.At
	}
	return insert(w, tableEdges, e, old)
}

// Edge returns the edge with the given ID, or ErrNotFound.
func (s *State) Edge(id string) (Edge, error) {
	return get[Edge](s.read(nil), nil, tableEdges, id)
}

// EdgeByName returns the edge with the given name (compared without regard
// to case), or ErrNotFound.
func (s *State) EdgeByName(name string) (Edge, error) {
	e := first[Edge](s.read(nil), nil, tableEdges, "name", name)
	if e == nil {
		return Edge{}, fmt.Errorf("edge named %q: %w", name, ErrNotFound)
	}
	return *e.clone(), nil
}

// Edges returns every edge, ordered by ID.
func (s *State) Edges() []Edge {
	edges, _ := s.readEdges(nil)
	return edges
}

func (s *State) readEdges(ws memdb.WatchSet) ([]Edge, uint64) {
	tx := s.read(ws)
	return list[Edge](tx, ws, tableEdges, "id"), indexOf(tx, tableEdges)
}

// WatchEdges returns every edge, the edges table index and a channel closed
// when the list may have changed. The channel is not closed when ctx ends.
func (s *State) WatchEdges(ctx context.Context) ([]Edge, uint64, <-chan struct{}) {
	ws := memdb.NewWatchSet()
	edges, index := s.readEdges(ws)
	return edges, index, watch(ctx, ws)
}

// WatchEdge returns the edge with the given ID and a channel closed when it
// may have changed (or been created, after ErrNotFound): the blocking
// desired-config pull of an edge agent waits on it.
func (s *State) WatchEdge(ctx context.Context, id string) (Edge, <-chan struct{}, error) {
	ws := memdb.NewWatchSet()
	e, err := get[Edge](s.read(ws), ws, tableEdges, id)
	return e, watch(ctx, ws), err
}
