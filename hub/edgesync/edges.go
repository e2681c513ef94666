package edgesync

import (
	"context"
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
	// Backlog is what the edge itself last reported waiting to be synced,
	// per stream (absent until it reports).
	Backlog map[string]BacklogView `json:"backlog,omitempty"`
}

// BacklogView is one stream of an edge's reported backlog.
type BacklogView struct {
	Depth int64 `json:"depth"`
	Bytes int64 `json:"bytes"`
	// OldestUnsyncedSeconds is the age of the oldest unsynced record when
	// the edge reported (0 when the stream was empty).
	OldestUnsyncedSeconds float64   `json:"oldest_unsynced_seconds"`
	OldestUnsynced        time.Time `json:"oldest_unsynced,omitzero"`
	Evicted               int64     `json:"evicted,omitempty"`
	ReportedAt            time.Time `json:"reported_at"`
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
	v := EdgeView{ID: e.ID, Name: e.Name, Region: e.Region, State: s.state(e), LastHeartbeat: e.LastHeartbeat,
		DesiredConfigVersion: e.DesiredConfigVersion, AppliedConfigVersion: e.AppliedConfigVersion,
		CreatedAt: e.CreatedAt, Streams: wm}
	if cfg, _, err := s.desired(e.ID); err == nil {
		v.DesiredConfigVersion = max(v.DesiredConfigVersion, cfg.Version)
	}
	for stream, b := range e.Backlog {
		if v.Backlog == nil {
			v.Backlog = map[string]BacklogView{}
		}
		bv := BacklogView{Depth: b.Depth, Bytes: b.Bytes, OldestUnsynced: b.OldestUnsynced, Evicted: b.Evicted, ReportedAt: e.BacklogAt}
		if !b.OldestUnsynced.IsZero() && e.BacklogAt.After(b.OldestUnsynced) {
			bv.OldestUnsyncedSeconds = e.BacklogAt.Sub(b.OldestUnsynced).Seconds()
		}
		v.Backlog[stream] = bv
	}
	return v, nil
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
	if _, err := s.cfg.Raft.Apply(ctx, catalog.RecordEdgeReport(edgeID, now, hb.GetAppliedConfigVersion(), backlogOf(hb))); err != nil {
		return fmt.Errorf("heartbeat of edge %s: %w", edgeID, err)
	}
	s.mu.Lock()
	s.lastHB[edgeID] = heartbeatMark{at: now, applied: hb.GetAppliedConfigVersion()}
	s.mu.Unlock()
	return nil
}

// HeartbeatInterval is the interval edges are told to report at.
func (s *Service) HeartbeatInterval() time.Duration { return s.cfg.HeartbeatInterval }

// backlogOf converts a heartbeat's backlog; nil when it reports none.
func backlogOf(hb *syncproto.Heartbeat) map[string]catalog.StreamBacklog {
	if len(hb.GetBacklog()) == 0 {
		return nil
	}
	out := make(map[string]catalog.StreamBacklog, len(hb.GetBacklog()))
	for stream, b := range hb.GetBacklog() {
		sb := catalog.StreamBacklog{Depth: b.GetDepth(), Bytes: b.GetBytes(), Evicted: b.GetEvicted()}
		if n := b.GetOldestUnsyncedUnixNanos(); n > 0 {
			sb.OldestUnsynced = time.Unix(0, n).UTC()
		}
		out[stream] = sb
	}
	return out
}
