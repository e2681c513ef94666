package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// EdgeConfig is an edge's desired config (hub/edgesync): the flows its
// local Node-RED runs and free-form settings, under a version that
// increases with every change. It replaces the settings kept under
// "edges/config/" and is deleted with its edge.
type EdgeConfig struct {
	EdgeID    string          `json:"edge_id"`
	Version   uint64          `json:"version"`
	Flows     json.RawMessage `json:"flows"`
	Settings  json.RawMessage `json:"settings,omitempty"`
	UpdatedBy string          `json:"updated_by,omitempty"`
	UpdatedAt time.Time       `json:"updated_at,omitzero"`
	Indexes
}

func (c *EdgeConfig) primaryKey() string { return c.EdgeID }

func (c *EdgeConfig) clone() *EdgeConfig {
	d := *c
	d.Flows, d.Settings = bytes.Clone(c.Flows), bytes.Clone(c.Settings)
	return &d
}

func edgeConfigsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableEdgeConfigs, Indexes: map[string]*memdb.IndexSchema{
		"id": idIndex("EdgeID"),
	}}
}

func checkEdgeConfig(w *write, c *EdgeConfig) error {
	switch {
	case c.EdgeID == "" || c.Version == 0:
		return fmt.Errorf("edge config: edge_id and version are required: %w", ErrInvalid)
	case len(c.Flows) == 0 || c.Flows[0] != '[' || !json.Valid(c.Flows):
		return fmt.Errorf("edge config of %q: flows must be a JSON array: %w", c.EdgeID, ErrInvalid)
	case len(c.Settings) > 0 && !json.Valid(c.Settings):
		return fmt.Errorf("edge config of %q: settings must be JSON: %w", c.EdgeID, ErrInvalid)
	}
	return w.exists(tableEdges, c.EdgeID)
}

// PutEdgeConfig returns the command that sets an edge's desired config.
// Its version must be above the stored one. Errors: ErrInvalid;
// ErrNotFound for a missing edge; ErrConflict for a version not above the
// stored one or a failed IfIndex check. The result is the stored
// EdgeConfig.
func PutEdgeConfig(c EdgeConfig, opts ...PutOption) Command {
	return newPut(CmdPutEdgeConfig, c, opts)
}

func applyPutEdgeConfig(w *write, b putBody[EdgeConfig]) (any, error) {
	c := &b.Row
	old := first[EdgeConfig](w.tx, nil, tableEdgeConfigs, "id", c.EdgeID)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put edge config of %q: %w", c.EdgeID, err)
	}
	if err := checkEdgeConfig(w, c); err != nil {
		return nil, fmt.Errorf("put edge config: %w", err)
	}
	if old != nil && c.Version <= old.Version {
		return nil, fmt.Errorf("put edge config of %q: version %d is not above %d: %w", c.EdgeID, c.Version, old.Version, ErrConflict)
	}
	return insert(w, tableEdgeConfigs, c, old)
}

// EdgeConfig returns an edge's desired config, or ErrNotFound when none
// was set.
func (s *State) EdgeConfig(edgeID string) (EdgeConfig, error) {
	return get[EdgeConfig](s.read(nil), nil, tableEdgeConfigs, edgeID)
}

// deleteEdgeConfig deletes a deleted edge's config.
func deleteEdgeConfig(w *write, edgeID string) {
	if c := first[EdgeConfig](w.tx, nil, tableEdgeConfigs, "id", edgeID); c != nil {
		w.remove(tableEdgeConfigs, c)
	}
}
