package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/auth"
	hubsync "github.com/redforge/controltower/hub/sync"
	"github.com/redforge/controltower/syncproto"
)

func (s *Server) edgeRoutes() {
	s.handle(http.MethodPost, "/api/edges/tokens", Perm(auth.ResourceEdges, auth.ActionCreate), s.createEnrollmentToken)
	s.handle(http.MethodPost, "/api/edges/enroll", Public, s.enrollEdge)
	s.handle(http.MethodGet, "/api/edges", Perm(auth.ResourceEdges, auth.ActionRead), s.listEdges)
	s.handle(http.MethodGet, "/api/edges/:id", Perm(auth.ResourceEdges, auth.ActionRead), s.getEdge)
}

// createEnrollmentToken answers 201 with {"token","region","expires_at"};
// the token is shown only in this response.
func (s *Server) createEnrollmentToken(c *gin.Context) {
	var req hubsync.TokenRequest
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
