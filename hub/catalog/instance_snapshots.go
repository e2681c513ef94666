package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// InstanceSnapshot is a named copy of what a logical instance runs, taken
// by a user to compare with or roll back to later: its flows, their node
// credentials (sealed by the hub, as in Flows), its settings and its node
// set. Rolling back deploys it blue-green (hub/deploy).
type InstanceSnapshot struct {
	ID          string `json:"id"`
	InstanceID  string `json:"instance_id"` // the logical instance; must exist
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Flows is the flows document as the catalog keeps it (unrendered).
	Flows       json.RawMessage `json:"flows"`
	FlowsSHA    string          `json:"flows_sha"`
	Credentials string          `json:"credentials,omitempty"`
	// Settings are the instance's settings at the time (hub/api
	// SnapshotSettings: image, resources, env), as JSON.
	Settings  json.RawMessage `json:"settings,omitempty"`
	Nodes     []NodePackage   `json:"nodes,omitempty"`
	CreatedBy string          `json:"created_by,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	Indexes
}

func (s *InstanceSnapshot) primaryKey() string { return s.ID }

func (s *InstanceSnapshot) clone() *InstanceSnapshot {
	c := *s
	c.Flows = bytes.Clone(s.Flows)
	c.Settings = bytes.Clone(s.Settings)
	c.Nodes = slices.Clone(s.Nodes)
	return &c
}

func snapshotsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableSnapshots, Indexes: map[string]*memdb.IndexSchema{
		"id":       idIndex("ID"),
		"instance": refIndex("instance", "InstanceID"),
	}}
}

func checkSnapshot(w *write, s *InstanceSnapshot) error {
	switch {
	case s.ID == "" || s.InstanceID == "" || s.Name == "":
		return fmt.Errorf("snapshot: id, instance_id and name are required: %w", ErrInvalid)
	case len(s.Flows) == 0 || !json.Valid(s.Flows):
		return fmt.Errorf("snapshot %q: flows must be a JSON document: %w", s.ID, ErrInvalid)
	case s.FlowsSHA != FlowsSHA(s.Flows):
		return fmt.Errorf("snapshot %q: flows_sha does not match the flows: %w", s.ID, ErrInvalid)
	case len(s.Settings) > 0 && !json.Valid(s.Settings):
		return fmt.Errorf("snapshot %q: settings must be JSON: %w", s.ID, ErrInvalid)
	}
	return w.exists(tableInstances, s.InstanceID)
}

// PutInstanceSnapshot returns the command that stores a snapshot (with
// IfIndex(0): only a new one). Errors: ErrInvalid for a missing id,
// instance or name, flows that are not JSON or a wrong flows_sha;
// ErrNotFound when the instance does not exist; ErrConflict when an
// IfIndex check fails. The result is the stored InstanceSnapshot.
func PutInstanceSnapshot(s InstanceSnapshot, opts ...PutOption) Command {
	return newPut(CmdPutInstanceSnapshot, s, opts)
}

func applyPutInstanceSnapshot(w *write, b putBody[InstanceSnapshot]) (any, error) {
	s := &b.Row
	old := first[InstanceSnapshot](w.tx, nil, tableSnapshots, "id", s.ID)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put snapshot %q: %w", s.ID, err)
	}
	if old != nil && old.InstanceID != s.InstanceID {
		return nil, fmt.Errorf("put snapshot %q: its instance cannot change: %w", s.ID, ErrInvalid)
	}
	if err := checkSnapshot(w, s); err != nil {
		return nil, fmt.Errorf("put snapshot: %w", err)
	}
	return insert(w, tableSnapshots, s, old)
}

// DeleteInstanceSnapshot returns the command that deletes a snapshot.
// Errors: ErrNotFound.
func DeleteInstanceSnapshot(id string) Command {
	return newCommand(CmdDeleteInstanceSnapshot, keyBody{Key: id})
}

func applyDeleteInstanceSnapshot(w *write, b keyBody) (any, error) {
	s := first[InstanceSnapshot](w.tx, nil, tableSnapshots, "id", b.Key)
	if s == nil {
		return nil, fmt.Errorf("delete snapshot %q: %w", b.Key, ErrNotFound)
	}
	w.remove(tableSnapshots, s)
	return nil, nil
}

// InstanceSnapshot returns a snapshot by id, or ErrNotFound.
func (s *State) InstanceSnapshot(id string) (InstanceSnapshot, error) {
	return get[InstanceSnapshot](s.read(nil), nil, tableSnapshots, id)
}

// InstanceSnapshots returns a logical instance's snapshots, oldest first.
func (s *State) InstanceSnapshots(instanceID string) []InstanceSnapshot {
	out := list[InstanceSnapshot](s.read(nil), nil, tableSnapshots, "instance", instanceID)
	slices.SortStableFunc(out, func(a, b InstanceSnapshot) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out
}
