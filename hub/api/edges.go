package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/edgesync"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/nodered"
	"github.com/redforge/controltower/syncproto"
)

func (s *Server) edgeRoutes() {
	s.handle(http.MethodPost, "/api/edges/tokens", Perm(auth.ResourceEdges, auth.ActionCreate), s.createEnrollmentToken)
	s.handle(http.MethodPost, "/api/edges/enroll", Public, s.enrollEdge)
	s.handle(http.MethodGet, "/api/edges", Perm(auth.ResourceEdges, auth.ActionRead), s.listEdges)
	s.handle(http.MethodGet, "/api/edges/:id", Perm(auth.ResourceEdges, auth.ActionRead), s.getEdge)
	s.handle(http.MethodGet, "/api/edges/:id/config", Perm(auth.ResourceEdges, auth.ActionRead), s.getEdgeConfig)
	s.handle(http.MethodPut, "/api/edges/:id/config", Perm(auth.ResourceEdges, auth.ActionUpdate), s.putEdgeConfig)
}

// createEnrollmentToken answers 201 with {"token","region","expires_at"};
// the token is shown only in this response.
func (s *Server) createEnrollmentToken(c *gin.Context) {
	var req edgesync.TokenRequest
	if c.Request.ContentLength != 0 && !bindJSON(c, &req, 0) {
		return
	}
	tok, err := s.cfg.Sync.CreateToken(c.Request.Context(), req, principal(c).Username)
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.EdgeTokenCreated, "edge_token", "", map[string]any{"region": tok.Region, "expires_at": tok.ExpiresAt})
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, tok)
}

// enrollRequest is the body of POST /api/edges/enroll.
type enrollRequest struct {
	Token   string `json:"token"`
	Name    string `json:"name,omitempty"`
	Region  string `json:"region,omitempty"`
	Version string `json:"version,omitempty"`
}

// enrollEdge exchanges a one-time enrollment token for the edge's id and
// credential (201); the credential is shown only in this response.
func (s *Server) enrollEdge(c *gin.Context) {
	var req enrollRequest
	if !bindJSON(c, &req, 0) {
		return
	}
	if req.Token == "" {
		abort(c, Invalid("token", "token is required: create one with POST /api/edges/tokens"))
		return
	}
	res, err := s.cfg.Sync.Enroll(c.Request.Context(), &syncproto.EnrollRequest{Token: req.Token, Name: req.Name, Region: req.Region, Version: req.Version})
	if err != nil {
		abort(c, err)
		return
	}
	c.Set(ctxPrincipal, auth.Principal{Username: "edge:" + res.EdgeId})
	s.audit(c, audit.EdgeEnrolled, "edge", res.EdgeId, map[string]any{"name": res.Name, "region": res.Region, "version": req.Version})
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, gin.H{"edge_id": res.EdgeId, "credential": res.Credential, "name": res.Name, "region": res.Region})
}

func (s *Server) listEdges(c *gin.Context) {
	edges, err := s.cfg.Sync.Edges(c.Request.Context())
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"edges": edges})
}

func (s *Server) getEdge(c *gin.Context) {
	e, err := s.cfg.Sync.Edge(c.Request.Context(), c.Param("id"))
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, e)
}

// getEdgeConfig answers the edge's desired config (version 0 and no flows
// until one is set).
func (s *Server) getEdgeConfig(c *gin.Context) {
	cfg, err := s.cfg.Sync.DesiredConfig(c.Request.Context(), c.Param("id"))
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, cfg)
}

// edgeConfigRequest is the body of PUT /api/edges/:id/config.
type edgeConfigRequest struct {
	Flows    json.RawMessage `json:"flows"`
	Settings json.RawMessage `json:"settings,omitempty"`
}

// putEdgeConfig sets the flows (validated like an instance's: 400 naming
// the node) and settings the edge's agent applies to its local Node-RED,
// under the next version; 200 with the stored config.
func (s *Server) putEdgeConfig(c *gin.Context) {
	var req edgeConfigRequest
	if !bindJSON(c, &req, MaxFlowsBytes) {
		return
	}
	if len(req.Flows) == 0 {
		abort(c, Invalid("flows", "flows is required: a JSON array of Node-RED nodes"))
		return
	}
	if _, err := nodered.ValidateFlows(req.Flows); err != nil {
		abort(c, err)
		return
	}
	if st := bytes.TrimSpace(req.Settings); len(st) > 0 && (st[0] != '{') && !bytes.Equal(st, []byte("null")) {
		abort(c, Invalid("settings", "settings must be a JSON object"))
		return
	} else if bytes.Equal(st, []byte("null")) {
		req.Settings = nil
	}
	if e := validateEdgeSettings(req.Settings); e != nil {
		abort(c, e)
		return
	}
	cfg, err := s.cfg.Sync.SetConfig(c.Request.Context(), c.Param("id"), req.Flows, req.Settings, principal(c).Username)
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.EdgeConfigUpdated, "edge", c.Param("id"), map[string]any{"version": cfg.Version, "flows_sha256": fmt.Sprintf("%x", sha256.Sum256(req.Flows))})
	c.JSON(http.StatusOK, cfg)
}

// validateEdgeSettings applies to an edge's settings the rules of an
// instance's extra Node-RED settings (hub/fleet): the keys the runtime's
// reachability and authentication rest on (adminAuth, httpAdminRoot,
// credentialSecret …) are refused, and so are context stores settings.js
// would not load. It checks them through a Spec that is valid but for its
// settings, so the one rule set in hub/fleet decides; the error names the
// field under settings.
func validateEdgeSettings(raw json.RawMessage) *Error {
	if len(raw) == 0 {
		return nil
	}
	var settings map[string]any
	if err := json.Unmarshal(raw, &settings); err != nil {
		return Invalid("settings", "settings must be a JSON object")
	}
	probe := fleet.Spec{InstanceID: "edge", Port: 1, AdminUser: "edge", AdminPassword: "edge", ExtraSettings: settings}
	var se *fleet.SpecError
	if err := probe.Validate(fleet.Limits{}); errors.As(err, &se) {
		field := "settings" + strings.TrimPrefix(se.Field, "extra_settings")
		return Invalid(field, field+" "+se.Message+" (as in an instance's settings)")
	} else if err != nil {
		return Invalid("settings", err.Error())
	}
	return nil
}
