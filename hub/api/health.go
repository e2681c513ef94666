package api

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// HealthTimeout bounds each component's health check.
const HealthTimeout = 2 * time.Second

// ComponentHealth is one component's entry in the health response.
type ComponentHealth struct {
	Status    string  `json:"status"` // "ok", "degraded" or "fail"
	Error     string  `json:"error,omitempty"`
	LatencyMS float64 `json:"latency_ms"`
}

// HealthResponse is the body of GET /api/health.
type HealthResponse struct {
	Status     string                     `json:"status"` // "ok", "degraded" or "fail"
	Failed     []string                   `json:"failed,omitempty"`
	Degraded   []string                   `json:"degraded,omitempty"`
	Components map[string]ComponentHealth `json:"components"`
	Version    string                     `json:"version"`
	Region     string                     `json:"region"`
	NodeID     string                     `json:"node_id"`
}

// health checks every component concurrently: 200 when all pass, else 503
// with the failed components named in "failed". A component whose check
// fails with an error that has a Degraded() bool method returning true is
// riding through an outage it expects to end (a Redis master Sentinel is
// failing over; the store during a failover of its primary, its writes
// held and retried): it is "degraded", named in "degraded", with the
// reason as its error; with no component failed the answer is then 200
// with status "degraded".
func (s *Server) health(c *gin.Context) {
	res := s.CheckHealth(c.Request.Context())
	status := http.StatusOK
	if res.Status == "fail" {
		status = http.StatusServiceUnavailable
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(status, res)
}

// CheckHealth runs every component's Ping with HealthTimeout and updates
// controltower_component_up.
func (s *Server) CheckHealth(ctx context.Context) HealthResponse {
	res := HealthResponse{Status: "ok", Components: map[string]ComponentHealth{},
		Version: s.cfg.Version, Region: s.cfg.Region, NodeID: s.cfg.NodeID}
	results := make([]ComponentHealth, len(s.cfg.Components))
	var wg sync.WaitGroup
	for i, comp := range s.cfg.Components {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, HealthTimeout)
			defer cancel()
			start := time.Now()
			err := comp.Checker.Ping(cctx)
			h := ComponentHealth{Status: "ok", LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
			var d interface{ Degraded() bool }
			switch {
			case err != nil && errors.As(err, &d) && d.Degraded():
				h.Status, h.Error = "degraded", err.Error()
			case err != nil:
				h.Status, h.Error = "fail", err.Error()
			}
			results[i] = h
		}()
	}
	wg.Wait()
	for i, comp := range s.cfg.Components {
		h := results[i]
		res.Components[comp.Name] = h
		up := 1.0
		switch h.Status {
		case "fail":
			up = 0
			res.Status = "fail"
			res.Failed = append(res.Failed, comp.Name)
		case "degraded":
			up = 0
			if res.Status == "ok" {
				res.Status = "degraded"
			}
			res.Degraded = append(res.Degraded, comp.Name)
		}
		if s.metrics != nil {
			s.metrics.ComponentUp.WithLabelValues(comp.Name).Set(up)
		}
	}
	return res
}
