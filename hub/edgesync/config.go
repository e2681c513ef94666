package edgesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/syncproto"
)

// EdgeConfig is an edge's desired config: the flows its local Node-RED
// runs and free-form settings, under a version that increases with every
// change. The catalog keeps it as a catalog.EdgeConfig, one replicated
// write per change, versioned by compare-and-set on the row's modify
// index. The agent on the edge pulls it (GET /api/sync/config/:edge_id),
// applies it and reports the version it applied in its heartbeat.
type EdgeConfig struct {
	Version   uint64          `json:"version"`
	Flows     json.RawMessage `json:"flows"`
	Settings  json.RawMessage `json:"settings,omitempty"`
	UpdatedBy string          `json:"updated_by,omitempty"`
	UpdatedAt time.Time       `json:"updated_at,omitzero"`
}

// desired returns edgeID's stored config and its row's modify index;
// catalog.ErrNotFound when none was set.
func (s *Service) desired(edgeID string) (EdgeConfig, uint64, error) {
	row, err := s.cfg.Catalog.EdgeConfig(edgeID)
	if err != nil {
		return EdgeConfig{}, 0, err
	}
	return EdgeConfig{Version: row.Version, Flows: row.Flows, Settings: row.Settings,
		UpdatedBy: row.UpdatedBy, UpdatedAt: row.UpdatedAt}, row.ModifyIndex, nil
}

// DesiredConfig returns edgeID's desired config; version 0 with no flows
// ("[]") when none was set. Errors: catalog.ErrNotFound for an unknown edge.
func (s *Service) DesiredConfig(_ context.Context, edgeID string) (EdgeConfig, error) {
	e, err := s.cfg.Catalog.Edge(edgeID)
	if err != nil {
		return EdgeConfig{}, err
	}
	c, _, err := s.desired(e.ID)
	if errors.Is(err, catalog.ErrNotFound) {
		return EdgeConfig{Version: e.DesiredConfigVersion, Flows: json.RawMessage("[]")}, nil
	}
	return c, err
}

// SetConfig stores new desired flows and settings for edgeID under the
// next version and returns it. flows must be a JSON array (the caller
// validates the nodes) and settings a JSON object or empty. Concurrent
// changes each get their own version. Errors: catalog.ErrNotFound for an
// unknown edge; ErrInvalid; Raft errors.
func (s *Service) SetConfig(ctx context.Context, edgeID string, flows, settings json.RawMessage, by string) (EdgeConfig, error) {
	if len(flows) == 0 || flows[0] != '[' || !json.Valid(flows) {
		return EdgeConfig{}, fmt.Errorf("flows must be a JSON array of nodes: %w", ErrInvalid)
	}
	if len(settings) > 0 && (settings[0] != '{' || !json.Valid(settings)) {
		return EdgeConfig{}, fmt.Errorf("settings must be a JSON object: %w", ErrInvalid)
	}
	for attempt := 0; ; attempt++ {
		e, err := s.cfg.Catalog.Edge(edgeID)
		if err != nil {
			return EdgeConfig{}, err
		}
		old, index, err := s.desired(edgeID)
		if err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return EdgeConfig{}, err
		}
		c := EdgeConfig{Version: max(old.Version, e.DesiredConfigVersion) + 1, Flows: flows, Settings: settings,
			UpdatedBy: by, UpdatedAt: s.cfg.Now().UTC()}
		row := catalog.EdgeConfig{EdgeID: edgeID, Version: c.Version, Flows: c.Flows, Settings: c.Settings,
			UpdatedBy: c.UpdatedBy, UpdatedAt: c.UpdatedAt}
		_, err = s.cfg.Raft.Apply(ctx, catalog.PutEdgeConfig(row, catalog.IfIndex(index)))
		if errors.Is(err, catalog.ErrConflict) && attempt < 10 {
			continue // another change landed first: take the next version
		}
		if err != nil {
			return EdgeConfig{}, fmt.Errorf("set desired config of edge %s: %w", edgeID, err)
		}
		return c, nil
	}
}

// ConfigBundle returns edgeID's desired config as the edge pulls it: the
// settings carry heartbeat_interval_seconds (the hub's) unless the stored
// settings set it. Errors: catalog.ErrNotFound.
func (s *Service) ConfigBundle(ctx context.Context, edgeID string) (*syncproto.ConfigBundle, error) {
	c, err := s.DesiredConfig(ctx, edgeID)
	if err != nil {
		return nil, err
	}
	settings := map[string]any{}
	if len(c.Settings) > 0 {
		if err := json.Unmarshal(c.Settings, &settings); err != nil {
			return nil, fmt.Errorf("desired settings of edge %s: %w", edgeID, err)
		}
	}
	if _, ok := settings["heartbeat_interval_seconds"]; !ok {
		settings["heartbeat_interval_seconds"] = int64(s.cfg.HeartbeatInterval / time.Second)
	}
	raw, err := json.Marshal(settings)
	if err != nil {
		return nil, err
	}
	return &syncproto.ConfigBundle{Version: c.Version, Flows: c.Flows, Settings: raw}, nil
}
