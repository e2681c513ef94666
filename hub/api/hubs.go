package api

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/schedule"
)

func (s *Server) hubRoutes() {
	if s.cfg.Catalog == nil || s.cfg.Rows == nil {
		return
	}
	s.handle(http.MethodGet, "/api/hubs", Perm(auth.ResourceRegions, auth.ActionRead), s.listHubs)
	s.handle(http.MethodPost, "/api/hubs/:id/drain", Perm(auth.ResourceRegions, auth.ActionUpdate), s.drainHub(true))
	s.handle(http.MethodPost, "/api/hubs/:id/undrain", Perm(auth.ResourceRegions, auth.ActionUpdate), s.drainHub(false))
	for path, h := range s.cfg.Peers.Routes {
		s.handle(http.MethodPost, path, Public, gin.WrapH(h))
	}
}

// HubView is one hub as GET /api/hubs shows it.
type HubView struct {
	catalog.Hub
	Leader bool `json:"leader"`
	// Allocations counts the replicas placed on the hub, and Running those
	// it reports running.
	Allocations int `json:"allocations"`
	Running     int `json:"running"`
	// ReservedMB is the memory its replicas reserve (an instance without
	// a limit counts schedule.DefaultMemoryMB).
	ReservedMB int `json:"reserved_mb"`
}

func (s *Server) listHubs(c *gin.Context) {
	leader := ""
	if s.cfg.Cluster != nil {
		leader, _ = s.cfg.Cluster.Leader()
	}
	out := []HubView{}
	for _, h := range s.cfg.Catalog.Hubs() {
		v := HubView{Hub: h, Leader: h.ID == leader}
		for _, a := range s.cfg.Catalog.HubAllocations(h.ID) {
			v.Allocations++
			if a.Observed.Status == "running" {
				v.Running++
			}
			mb := schedule.DefaultMemoryMB
			if inst, err := s.cfg.Catalog.Instance(a.InstanceID); err == nil && inst.Resources.MemoryMB > 0 {
				mb = inst.Resources.MemoryMB
			}
			v.ReservedMB += mb
		}
		out = append(out, v)
	}
	c.JSON(http.StatusOK, gin.H{"hubs": out, "count": len(out)})
}

// drainHub starts or ends a hub's drain. Draining the last hub of a
// region that is not draining, while replicas of that region's instances
// run on it, is refused (409): they would have nowhere to go.
func (s *Server) drainHub(drain bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.Param("id")
		h, err := s.cfg.Catalog.Hub(id)
		if err != nil {
			abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Field: "id", Message: fmt.Sprintf("no hub %q", id)})
			return
		}
		if drain && !h.Draining {
			if e := s.lastHubOfRegion(h); e != nil {
				abort(c, e)
				return
			}
		}
		if _, err := s.cfg.Cluster.Apply(c.Request.Context(), catalog.SetHubDraining(id, drain)); err != nil {
			abort(c, err)
			return
		}
		action := "HUB_DRAINED"
		if !drain {
			action = "HUB_UNDRAINED"
		}
		s.audit(c, action, "hub", id, map[string]any{"region": h.Region})
		h, _ = s.cfg.Catalog.Hub(id)
		c.JSON(http.StatusAccepted, h)
	}
}

func (s *Server) lastHubOfRegion(h catalog.Hub) *Error {
	if h.Region == "" {
		return nil
	}
	for _, o := range s.cfg.Catalog.Hubs() {
		if o.ID != h.ID && o.Region == h.Region && !o.Draining && o.State == catalog.HubUp {
			return nil
		}
	}
	var stuck []string
	for _, a := range s.cfg.Catalog.HubAllocations(h.ID) {
		if inst, err := s.cfg.Catalog.Instance(a.InstanceID); err == nil && inst.Region == h.Region {
			stuck = append(stuck, inst.Name)
		}
	}
	if len(stuck) == 0 {
		return nil
	}
	return &Error{Status: http.StatusConflict, Code: "last_hub_of_region", Field: "id",
		Message: fmt.Sprintf("%s is the last hub of region %s that takes replicas, and instances of that region run on it (%s); add or undrain another hub of %s first",
			h.ID, h.Region, strings.Join(stuck, ", "), h.Region)}
}

// forwardToHub serves the request from hub id instead (the hub running the
// replica it is about), with the caller's own credential, streaming the
// answer back. extraQuery is added to the query string.
func (s *Server) forwardToHub(c *gin.Context, id, extraQuery string) {
	h, err := s.cfg.Catalog.Hub(id)
	if err != nil || h.API == "" {
		abort(c, &Error{Status: http.StatusServiceUnavailable, Code: "hub_unreachable", Message: fmt.Sprintf("the replica runs on hub %s, whose address is not known", id)})
		return
	}
	u, err := url.Parse(strings.TrimRight(h.API, "/") + c.Request.URL.Path)
	if err != nil {
		abort(c, err)
		return
	}
	q := c.Request.URL.Query()
	if extra, err := url.ParseQuery(strings.TrimPrefix(extraQuery, "?")); err == nil {
		for k, v := range extra {
			q[k] = v
		}
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(c.Request.Context(), c.Request.Method, u.String(), nil)
	if err != nil {
		abort(c, err)
		return
	}
	req.Header.Set("Authorization", c.GetHeader("Authorization"))
	resp, err := s.peerClient().Do(req)
	if err != nil {
		abort(c, &Error{Status: http.StatusBadGateway, Code: "hub_unreachable", Message: fmt.Sprintf("hub %s (running the replica) did not answer: %v", id, err)})
		return
	}
	defer resp.Body.Close()
	for _, k := range []string{"Content-Type", "Cache-Control"} {
		if v := resp.Header.Get(k); v != "" {
			c.Header(k, v)
		}
	}
	c.Status(resp.StatusCode)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := c.Writer.Write(buf[:n]); werr != nil {
				return
			}
			c.Writer.Flush()
		}
		if err != nil {
			if err != io.EOF {
				s.log.Debug("forwarded answer", "hub", id, "error", err)
			}
			return
		}
	}
}

// peerClient is the client for calls to other hubs; a forwarded answer
// streams, so it has no overall timeout (the request's context bounds it).
func (s *Server) peerClient() *http.Client {
	if s.cfg.Peers.Client != nil {
		return s.cfg.Peers.Client
	}
	return defaultPeerClient
}

// defaultPeerClient is peerClient's without a configured one: one shared
// transport, so forwarded calls reuse connections instead of leaving a
// pool of idle ones behind each call.
var defaultPeerClient = &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: 30 * time.Second, IdleConnTimeout: 90 * time.Second}}
