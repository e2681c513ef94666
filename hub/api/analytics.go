package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/analytics"
	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/metrics"
)

// Analytics answers the fleet analytics queries (hub/analytics).
type Analytics interface {
	Fleet(ctx context.Context, window time.Duration) (analytics.FleetStats, error)
	Instance(ctx context.Context, logical catalog.Instance, rows []catalog.Instance, window time.Duration) (analytics.InstanceStats, error)
}

func (s *Server) analyticsRoutes() {
	read := Perm(auth.ResourceMetrics, auth.ActionRead)
	if s.cfg.Observability.Prices != nil {
		// Any principal, an instance's own token included: the runtime's
		// LLM usage node prices tokens with it.
		s.handle(http.MethodGet, "/api/metrics/prices", read.self(), s.getPrices)
	}
	s.handle(http.MethodGet, "/api/metrics/dashboards", read, s.getDashboards)
	if s.cfg.Observability.Analytics == nil {
		return
	}
	s.handle(http.MethodGet, "/api/metrics/fleet", read, s.getFleetMetrics)
	s.handle(http.MethodGet, "/api/metrics/instances/:id", Perm(auth.ResourceInstances, auth.ActionRead).OnInstance(), s.getInstanceMetrics)
}

// window parses ?window= (analytics.ParseWindow), or aborts with 400.
func window(c *gin.Context) (time.Duration, bool) {
	w, err := analytics.ParseWindow(c.Query("window"))
	if err != nil {
		abort(c, Invalid("window", err.Error()))
		return 0, false
	}
	return w, true
}

func (s *Server) getFleetMetrics(c *gin.Context) {
	w, ok := window(c)
	if !ok {
		return
	}
	out, err := s.cfg.Observability.Analytics.Fleet(c.Request.Context(), w)
	if err != nil {
		abort(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

func (s *Server) getInstanceMetrics(c *gin.Context) {
	inst, ok := s.instance(c)
	if !ok {
		return
	}
	w, ok := window(c)
	if !ok {
		return
	}
	if strings.Contains(inst.Name, ".") { // a color row: answer for its logical instance
		if l, err := s.cfg.Catalog.InstanceByName(strings.SplitN(inst.Name, ".", 2)[0]); err == nil {
			inst = l
		}
	}
	rows := []catalog.Instance{inst}
	for _, r := range s.cfg.Catalog.Instances() {
		if strings.HasPrefix(r.Name, inst.Name+".") {
			rows = append(rows, r)
		}
	}
	out, err := s.cfg.Observability.Analytics.Instance(c.Request.Context(), inst, rows, w)
	if err != nil {
		abort(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, out)
}

func (s *Server) getPrices(c *gin.Context) {
	c.JSON(http.StatusOK, s.cfg.Observability.Prices().Sorted())
}

// DashboardsView is the answer of GET /api/metrics/dashboards: the Grafana
// dashboards and where the console embeds them from ("" when the hub was
// started without --grafana-url).
type DashboardsView struct {
	GrafanaURL string              `json:"grafana_url"`
	Dashboards []metrics.Dashboard `json:"dashboards"`
}

// grafanaOrigin is the scheme://host of an http(s) Grafana URL, for the
// console's Content-Security-Policy frame-src; "" for anything else.
func grafanaOrigin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(u.Host, " ;'\"") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func (s *Server) getDashboards(c *gin.Context) {
	c.JSON(http.StatusOK, DashboardsView{GrafanaURL: s.cfg.Observability.GrafanaURL, Dashboards: metrics.Dashboards})
}
