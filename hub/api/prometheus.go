package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/metrics"
	"github.com/redforge/controltower/nodered"
)

// Prometheus HTTP service discovery. GET /api/prometheus/targets lists, in
// the http_sd_config format, every hub of the cluster (its /metrics) and
// every runtime with an address (its metrics, served through the hub that
// runs it at /api/prometheus/runtimes/{allocation}/metrics, which reads the
// runtime's admin API with the hub's credentials, so Prometheus needs one
// credential, a ScopeMetrics token, for everything). The job label says
// which: JobHub or JobRuntime. A hub that is down stays listed, so
// Prometheus records it down (up == 0) and the HubDown alert fires.
const (
	JobHub     = "redforge-hub"
	JobRuntime = "redforge-runtime"
)

// allocations is what service discovery reads of allocations
// (*catalog.State).
type allocations interface {
	Allocations() []catalog.Allocation
	Allocation(id string) (catalog.Allocation, error)
}

// SDGroup is one target group of Prometheus HTTP service discovery.
type SDGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

func (s *Server) prometheusRoutes() {
	if _, ok := s.cfg.Catalog.(allocations); !ok || s.cfg.Catalog == nil {
		return
	}
	read := Perm(auth.ResourceMetrics, auth.ActionRead)
	s.handle(http.MethodGet, "/api/prometheus/targets", read, s.prometheusTargets)
	if s.cfg.Fleet != nil {
		s.handle(http.MethodGet, "/api/prometheus/runtimes/:alloc/metrics", read, s.runtimeMetrics)
	}
}

func (s *Server) prometheusTargets(c *gin.Context) {
	groups := []SDGroup{}
	hubs := s.cfg.Catalog.Hubs()
	sort.Slice(hubs, func(i, j int) bool { return hubs[i].ID < hubs[j].ID })
	apis := map[string]*url.URL{}
	for _, h := range hubs {
		u, err := url.Parse(h.API)
		if err != nil || u.Host == "" {
			continue
		}
		apis[h.ID] = u
		groups = append(groups, SDGroup{Targets: []string{u.Host}, Labels: map[string]string{
			"job": JobHub, "__scheme__": u.Scheme, "__metrics_path__": "/metrics", "hub": h.ID, "region": h.Region}})
	}
	allocs := s.cfg.Catalog.(allocations).Allocations()
	sort.Slice(allocs, func(i, j int) bool { return allocs[i].ID < allocs[j].ID })
	for _, a := range allocs {
		u := apis[a.Hub]
		if u == nil || a.Address() == "" || a.Desired == catalog.AllocStop {
			continue
		}
		row, err := s.cfg.Catalog.Instance(a.InstanceID)
		if err != nil {
			continue
		}
		l := metrics.RuntimeLabels(row.ID, row.Name, a.Replica)
		groups = append(groups, SDGroup{Targets: []string{u.Host}, Labels: map[string]string{
			"job": JobRuntime, "__scheme__": u.Scheme, "__metrics_path__": "/api/prometheus/runtimes/" + a.ID + "/metrics",
			"instance_id": l["instance_id"], "name": l["name"], "color": l["color"], "replica": l["replica"],
			"hub": a.Hub, "region": a.Region, "allocation": a.ID}})
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, groups)
}

func (s *Server) runtimeMetrics(c *gin.Context) {
	a, err := s.cfg.Catalog.(allocations).Allocation(c.Param("alloc"))
	if err != nil {
		if errors.Is(err, catalog.ErrNotFound) {
			abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no allocation %q", c.Param("alloc"))})
			return
		}
		abort(c, err)
		return
	}
	client, err := s.cfg.Fleet.Client(c.Request.Context(), a)
	if err != nil {
		abort(c, &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: err.Error()})
		return
	}
	body, err := client.Get(c.Request.Context(), metrics.RuntimePath, metrics.MaxRuntimeBody)
	if errors.Is(err, nodered.ErrNoRoute) {
		abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "the runtime serves no metrics (the RedForge runtime package is not installed)"})
		return
	}
	if err != nil {
		abort(c, &Error{Status: http.StatusBadGateway, Code: "unavailable", Message: "runtime metrics: " + err.Error()})
		return
	}
	out, err := metrics.RuntimeExposition(body)
	if err != nil {
		abort(c, &Error{Status: http.StatusBadGateway, Code: "bad_gateway", Message: err.Error()})
		return
	}
	c.Data(http.StatusOK, "text/plain; version=0.0.4; charset=utf-8", out)
}
