package hub

import (
	"context"
	"time"
)

// healthMetricsInterval is how often a hub refreshes
// controltower_component_up, controltower_raft_is_leader and
// controltower_raft_has_leader, so a Prometheus scrape of /metrics sees
// them current without anyone calling /api/health.
const healthMetricsInterval = 10 * time.Second

// openObservability starts the hub's observability loops: the health
// gauges (and, in their own files, the fleet analytics flush and the
// leader's alert evaluation).
func (h *Hub) openObservability(context.Context) error {
	h.background(func(ctx context.Context) { h.every(ctx, healthMetricsInterval, h.refreshHealthMetrics) })
	return nil
}

// refreshHealthMetrics checks every component (as /api/health does) and
// records this hub's view of Raft leadership.
func (h *Hub) refreshHealthMetrics(ctx context.Context) {
	h.API.CheckHealth(ctx)
	leader, has := 0.0, 0.0
	if h.Raft.IsLeader() {
		leader = 1
	}
	if id, _ := h.Raft.Leader(); id != "" {
		has = 1
	}
	h.Metrics.RaftLeader.Set(leader)
	h.Metrics.RaftHasLeader.Set(has)
}
