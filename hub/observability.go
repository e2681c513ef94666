package hub

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redforge/controltower/hub/alert"
	"github.com/redforge/controltower/hub/analytics"
	"github.com/redforge/controltower/hub/api"
	"github.com/redforge/controltower/hub/metrics"
)

// healthMetricsInterval is how often a hub refreshes
// controltower_component_up, controltower_raft_is_leader and
// controltower_raft_has_leader, so a Prometheus scrape of /metrics sees
// them current without anyone calling /api/health.
const healthMetricsInterval = 10 * time.Second

// observabilityParts are the hub's metrics, analytics and alerting
// services (wired by openObservability).
type observabilityParts struct {
	prices    metrics.PriceTable
	analytics *analytics.Service
	flusher   *analytics.Flusher
	signals   *alert.Signals
	engine    *alert.Engine
	alerts    *alert.Service

	mu         sync.Mutex
	components map[string]bool // the last health check, by component
}

// openObservability builds fleet analytics and alerting and starts their
// loops: the health gauges, the analytics flush of this hub's runtimes
// and the alert engine (which evaluates on the leader only).
func (h *Hub) openObservability(context.Context) error {
	o := &h.obs
	o.prices = metrics.DefaultPrices()
	if h.Config.LLMPrices != "" {
		p, err := metrics.LoadPrices(h.Config.LLMPrices)
		if err != nil {
			return fmt.Errorf("llm-prices: %w", err)
		}
		o.prices = p
	}
	o.analytics = &analytics.Service{Store: h.Store, Catalog: h.State}
	o.flusher = &analytics.Flusher{Hub: h.NodeID, Runtimes: h.Metrics.Runtimes, Store: h.Store}
	o.signals = &alert.Signals{Catalog: h.State, Analytics: o.analytics, Components: h.lastComponents}
	o.engine = alert.New(alert.Config{
		EvalInterval: h.Config.alertInterval(),
		ExternalURL:  h.advertiseURL(),
		SMTP: alert.SMTPConfig{Addr: h.Config.SMTPAddr, From: h.Config.SMTPFrom, Username: h.Config.SMTPUsername,
			Password: h.Config.SMTPPassword, TLS: h.Config.SMTPTLS},
	}, alert.Deps{Catalog: h.State, Applier: h.Raft, IsLeader: h.Raft.IsLeader, Source: o.signals, Observe: o.signals.Observe,
		Events: h.Events, Metrics: h.Metrics, Audit: h.Audit, Logger: h.Logger.With("component", "alert"), Sealer: h.Seal})
	o.alerts = &alert.Service{Catalog: h.State, Applier: h.Raft, Engine: o.engine, Sealer: h.Seal}
	h.background(func(ctx context.Context) { h.every(ctx, h.Config.metricsInterval(), h.flushAnalytics) })
	h.background(o.engine.Run)
	return nil
}

// flushAnalytics writes this hub's runtime usage of the last interval.
func (h *Hub) flushAnalytics(ctx context.Context) {
	if err := h.obs.flusher.Flush(ctx); err != nil && ctx.Err() == nil {
		h.Logger.Warn("fleet analytics flush", "error", err)
	}
}

// refreshHealthMetrics checks every component (as /api/health does) and
// records this hub's view of Raft leadership.
func (h *Hub) refreshHealthMetrics(ctx context.Context) {
	if h.API == nil {
		return
	}
	res := h.API.CheckHealth(ctx)
	comps := map[string]bool{}
	for name, c := range res.Components {
		comps[name] = c.Status == "ok"
	}
	h.obs.mu.Lock()
	h.obs.components = comps
	h.obs.mu.Unlock()
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

// lastComponents is the last health check of this hub's components.
func (h *Hub) lastComponents() map[string]bool {
	h.obs.mu.Lock()
	defer h.obs.mu.Unlock()
	out := make(map[string]bool, len(h.obs.components))
	for k, v := range h.obs.components {
		out[k] = v
	}
	return out
}

// apiObservability is what the API's metrics, dashboards and alert
// routes serve.
func (h *Hub) apiObservability() api.Observability {
	return api.Observability{Analytics: h.obs.analytics, Prices: h.pricesFunc, GrafanaURL: h.Config.GrafanaURL, Alerts: h.obs.alerts}
}

// pricesFunc serves the LLM price table.
func (h *Hub) pricesFunc() metrics.PriceTable { return h.obs.prices }
