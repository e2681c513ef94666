package api

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/deploy"
	"github.com/redforge/controltower/hub/nodered"
)

// Deployer is what the deployment routes need of hub/deploy.
type Deployer interface {
	Start(ctx context.Context, req deploy.Request) (catalog.Deployment, error)
	Get(ctx context.Context, id string) (deploy.View, error)
	List(instance string) ([]catalog.Deployment, error)
	Rollback(ctx context.Context, id, userID, username string) (catalog.Deployment, error)
}

func (s *Server) deploymentRoutes() {
	if s.cfg.Deploy != nil {
		p := func(a auth.Action) Access { return Perm(auth.ResourceDeployments, a) }
		s.handle(http.MethodPost, "/api/deployments", p(auth.ActionCreate), s.createDeployment)
		s.handle(http.MethodGet, "/api/deployments", p(auth.ActionRead), s.listDeployments)
		s.handle(http.MethodGet, "/api/deployments/:id", p(auth.ActionRead), s.getDeployment)
		s.handle(http.MethodPost, "/api/deployments/:id/rollback", p(auth.ActionUpdate), s.rollbackDeployment)
	}
	s.proxyRoutes()
}

// DeploymentRequest is the body of POST /api/deployments.
type DeploymentRequest struct {
	Instance       string               `json:"instance"` // id or name
	Flows          json.RawMessage      `json:"flows"`
	DrainTimeout   string               `json:"drain_timeout"`   // Go duration, default 5m
	RollbackWindow string               `json:"rollback_window"` // Go duration, default 10m; "0s" removes blue at once
	Smoke          *deploy.SmokeOptions `json:"smoke"`
}

func parseDuration(field, v string, def, maxD time.Duration) (time.Duration, *Error) {
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > maxD {
		return 0, Invalid(field, field+" must be a duration such as 30s or 5m, at most "+maxD.String())
	}
	return d, nil
}

func (s *Server) createDeployment(c *gin.Context) {
	var req DeploymentRequest
	if !bindJSON(c, &req, MaxFlowsBytes) {
		return
	}
	if req.Instance == "" {
		abort(c, Invalid("instance", "instance (an id or name) is required"))
		return
	}
	if _, err := nodered.ValidateFlows(req.Flows); err != nil {
		abort(c, err)
		return
	}
	drain, e := parseDuration("drain_timeout", req.DrainTimeout, deploy.DefaultDrainTimeout, deploy.MaxDrainTimeout)
	if e != nil {
		abort(c, e)
		return
	}
	window, e := parseDuration("rollback_window", req.RollbackWindow, deploy.DefaultRollbackWindow, deploy.MaxRollbackWindow)
	if e != nil {
		abort(c, e)
		return
	}
	if window == 0 {
		window = -1 // remove blue at once
	}
	p := principal(c)
	dr := deploy.Request{Instance: req.Instance, Flows: req.Flows, DrainTimeout: drain, RollbackWindow: window,
		UserID: p.UserID, Username: p.Username}
	if req.Smoke != nil {
		if h := req.Smoke.HTTP; h != nil && (h.Path == "" || h.Path[0] != '/') {
			abort(c, Invalid("smoke.http.path", "smoke.http.path must start with /"))
			return
		}
		dr.Smoke = *req.Smoke
	}
	d, err := s.cfg.Deploy.Start(c.Request.Context(), dr)
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.DeploymentStarted, "deployment", d.ID, map[string]any{"instance_id": d.InstanceID,
		"from_flows_version": d.FromFlowsVersion, "to_flows_version": d.ToFlowsVersion})
	c.JSON(http.StatusCreated, d)
}

func (s *Server) listDeployments(c *gin.Context) {
	ds, err := s.cfg.Deploy.List(c.Query("instance"))
	if err != nil {
		abort(c, err)
		return
	}
	if ds == nil {
		ds = []catalog.Deployment{}
	}
	c.JSON(http.StatusOK, gin.H{"deployments": ds, "count": len(ds)})
}

func (s *Server) getDeployment(c *gin.Context) {
	v, err := s.cfg.Deploy.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (s *Server) rollbackDeployment(c *gin.Context) {
	p := principal(c)
	d, err := s.cfg.Deploy.Rollback(c.Request.Context(), c.Param("id"), p.UserID, p.Username)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, d)
}
