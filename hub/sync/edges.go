package sync

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/syncproto"
)

// EdgeView is an edge as the API shows it: no credential hash, the state
// computed at read time, and the per-stream durable watermarks.
type EdgeView struct {
	ID                   string                     `json:"id"`
	Name                 string                     `json:"name"`
	Region               string                     `json:"region,omitempty"`
	State                catalog.EdgeState          `json:"state"`
	LastHeartbeat        time.Time                  `json:"last_heartbeat,omitzero"`
	DesiredConfigVersion uint64                     `json:"desired_config_version"`
	AppliedConfigVersion uint64                     `json:"applied_config_version"`
	CreatedAt            time.Time                  `json:"created_at"`
	Streams              map[string]store.Watermark `json:"streams"`
}

// Edges returns every edge with its streams.
func (s *Service) Edges(ctx context.Context) ([]EdgeView, error) {
	edges := s.cfg.Catalog.Edges()
	out := make([]EdgeView, 0, len(edges))
	for _, e := range edges {
		v, err := s.view(ctx, e)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Edge returns one edge with its streams. Errors: catalog.ErrNotFound.
func (s *Service) Edge(ctx context.Context, id string) (EdgeView, error) {
	e, err := s.cfg.Catalog.Edge(id)
	if err != nil {
		return EdgeView{}, err
	}
	return s.view(ctx, e)
}

func (s *Service) view(ctx context.Context, e catalog.Edge) (EdgeView, error) {
	wm, err := s.cfg.Store.Watermarks(ctx, e.ID)
	if err != nil {
		return EdgeView{}, fmt.Errorf("watermarks of edge %s: %w", e.ID, err)
	}
	if wm == nil {
		wm = map[string]store.Watermark{}
	}
	return EdgeView{ID: e.ID, Name: e.Name, Region: e.Region, State: s.state(e), LastHeartbeat: e.LastHeartbeat,
		DesiredConfigVersion: e.DesiredConfigVersion, AppliedConfigVersion: e.AppliedConfigVersion,
		CreatedAt: e.CreatedAt, Streams: wm}, nil
}

// state is the stored state, except that an edge whose last heartbeat is
// more than MissedHeartbeats intervals old is offline.
func (s *Service) state(e catalog.Edge) catalog.EdgeState {
	if e.State == catalog.EdgeDecommissioned || e.LastHeartbeat.IsZero() {
		return e.State
	}
	if s.cfg.Now().Sub(e.LastHeartbeat) > MissedHeartbeats*s.cfg.HeartbeatInterval {
		return catalog.EdgeOffline
	}
	return catalog.EdgeOnline
}

// Heartbeat records edgeID's heartbeat. Each recorded heartbeat is a Raft
// write, so one is written only when the applied config version changed or
// HeartbeatInterval/2 passed since the last one written by this hub.
// Errors: ErrForbidden when hb names another edge; Raft errors.
func (s *Service) Heartbeat(ctx context.Context, edgeID string, hb *syncproto.Heartbeat) error {
	if hb.GetEdgeId() != "" && hb.GetEdgeId() != edgeID {
		return fmt.Errorf("edge %q may not report for edge %q: %w", edgeID, hb.GetEdgeId(), ErrForbidden)
	}
	now := s.cfg.Now().UTC()
	s.mu.Lock()
	last, ok := s.lastHB[edgeID]
	s.mu.Unlock()
	if ok && last.applied == hb.GetAppliedConfigVersion() && now.Sub(last.at) < s.cfg.HeartbeatInterval/2 {
		return nil
	}
	if _, err := s.cfg.Raft.Apply(ctx, catalog.RecordEdgeHeartbeat(edgeID, now, hb.GetAppliedConfigVersion())); err != nil {
		return fmt.Errorf("heartbeat of edge %s: %w", edgeID, err)
	}
	s.mu.Lock()
	s.lastHB[edgeID] = heartbeatMark{at: now, applied: hb.GetAppliedConfigVersion()}
	s.mu.Unlock()
	return nil
}

// HeartbeatInterval is the interval edges are told to report at.
func (s *Service) HeartbeatInterval() time.Duration { return s.cfg.HeartbeatInterval }

// ConfigBundle returns edgeID's desired config. Errors: catalog.ErrNotFound.
func (s *Service) ConfigBundle(ctx context.Context, edgeID string) (*syncproto.ConfigBundle, error) {
	e, err := s.cfg.Catalog.Edge(edgeID)
	if err != nil {
		return nil, err
	}
	flows := []byte("[]")
	settings, _ := json.Marshal(map[string]any{"heartbeat_interval_seconds": int64(s.cfg.HeartbeatInterval / time.Second)})
	if s.cfg.Configs != nil {
		if flows, settings, err = s.cfg.Configs.EdgeConfig(ctx, e); err != nil {
			return nil, fmt.Errorf("config of edge %s: %w", edgeID, err)
		}
	}
	return &syncproto.ConfigBundle{Version: e.DesiredConfigVersion, Flows: flows, Settings: settings}, nil
}
