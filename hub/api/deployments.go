package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/deploy"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/nodered"
)

// Deployer is what the deployment routes need of hub/deploy.
type Deployer interface {
	Start(ctx context.Context, req deploy.Request) (catalog.Deployment, error)
	Get(ctx context.Context, id string) (deploy.View, error)
	List(instance string) ([]catalog.Deployment, error)
	Rollback(ctx context.Context, id, userID, username string) (catalog.Deployment, error)
	GreenLogs(id string) (deploy.GreenLogs, error)
}

func (s *Server) deploymentRoutes() {
	if s.cfg.Deploy != nil {
		p := func(a auth.Action) Access { return Perm(auth.ResourceDeployments, a) }
		s.handle(http.MethodPost, "/api/deployments", p(auth.ActionCreate), s.createDeployment)
		s.handle(http.MethodGet, "/api/deployments", p(auth.ActionRead), s.listDeployments)
		s.handle(http.MethodGet, "/api/deployments/:id", p(auth.ActionRead), s.getDeployment)
		s.handle(http.MethodPost, "/api/deployments/:id/rollback", p(auth.ActionUpdate), s.rollbackDeployment)
		// Who may read the deployment's instance's logs (checked in the
		// handler, which knows the instance).
		s.handle(http.MethodGet, "/api/deployments/:id/logs", Perm(auth.ResourceInstances, auth.ActionRead), s.deploymentLogs)
	}
	s.proxyRoutes()
}

// DeploymentRequest is the body of POST /api/deployments.
type DeploymentRequest struct {
	Instance       string               `json:"instance"`        // id or name
	Flows          json.RawMessage      `json:"flows"`           // the flows array; or
	FlowsVersion   *int64               `json:"flows_version"`   // a recorded version of the instance's flows
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
	version, err := s.deploymentFlows(c, &req)
	if err != nil {
		abort(c, err)
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
	to := s.recordFlowsVersion(c, d.InstanceID, req.Flows, store.FlowsSourceDeployment, d.ID)
	s.audit(c, audit.DeploymentStarted, "deployment", d.ID, map[string]any{"instance_id": d.InstanceID,
		"from_flows_version": d.FromFlowsVersion, "to_flows_version": d.ToFlowsVersion,
		"flows_version": to, "picked_flows_version": version})
	out := deploymentOut{Deployment: d}
	all, err := s.cfg.Deploy.List(d.InstanceID)
	if err != nil {
		abort(c, err)
		return
	}
	s.flowsVersionNumbers(c.Request.Context(), []*deploymentOut{&out}, all)
	c.JSON(http.StatusCreated, out)
}

// deploymentFlows checks that exactly one of flows and flows_version is
// given and, for flows_version, loads that version's flows into req.Flows
// and returns its number.
func (s *Server) deploymentFlows(c *gin.Context, req *DeploymentRequest) (int64, error) {
	hasFlows := len(req.Flows) > 0 && string(req.Flows) != "null"
	switch {
	case hasFlows && req.FlowsVersion != nil:
		return 0, Invalid("flows_version", "give flows or flows_version, not both")
	case req.FlowsVersion == nil:
		if !hasFlows {
			return 0, Invalid("flows", "flows (a flows array) or flows_version (a recorded version number) is required")
		}
		return 0, nil
	case *req.FlowsVersion < 1:
		return 0, Invalid("flows_version", "flows_version must be a version number from 1")
	}
	inst, err := s.cfg.Catalog.Instance(req.Instance)
	if errors.Is(err, catalog.ErrNotFound) {
		inst, err = s.cfg.Catalog.InstanceByName(req.Instance)
	}
	if errors.Is(err, catalog.ErrNotFound) {
		return 0, &Error{Status: http.StatusNotFound, Code: "not_found", Field: "instance", Message: fmt.Sprintf("no instance %q", req.Instance)}
	}
	if err != nil {
		return 0, err
	}
	v, err := s.flowsVersion(c.Request.Context(), inst, *req.FlowsVersion, "flows_version")
	if err != nil {
		return 0, err
	}
	req.Flows = v.Flows
	return v.Version, nil
}

// deploymentOut is a deployment as the API shows it: with the numbers of
// the flows versions it went from and to, when they are known.
type deploymentOut struct {
	catalog.Deployment
	FromVersion int64 `json:"from_version,omitempty"`
	ToVersion   int64 `json:"to_version,omitempty"`
}

// flowsVersionNumbers fills in from_version and to_version: to is the
// version recorded for the deployment, from the latest version before it
// that went live (a PUT, or a deployment that succeeded and was not rolled
// back). all must hold every deployment of the instances of ds (for their
// statuses). One store read per instance; a failed read leaves the numbers
// out.
func (s *Server) flowsVersionNumbers(ctx context.Context, ds []*deploymentOut, all []catalog.Deployment) {
	status := make(map[string]catalog.DeploymentStatus, len(all))
	for _, d := range all {
		status[d.ID] = d.Status
	}
	byInst := map[string][]*deploymentOut{}
	for _, d := range ds {
		byInst[d.InstanceID] = append(byInst[d.InstanceID], d)
	}
	for inst, list := range byInst {
		vs, err := s.cfg.Store.ListFlowsVersions(ctx, store.FlowsVersionFilter{InstanceID: inst, Limit: store.MaxLimit})
		if err != nil {
			s.log.Warn("read flows versions", "instance", inst, logKeyError, err)
			continue
		}
		for _, d := range list {
			d.FromVersion, d.ToVersion = versionNumbers(vs, d.ID, status)
		}
	}
}

// versionNumbers finds, in vs (newest first), the version recorded for
// deployment id and the live version before it.
func versionNumbers(vs []store.FlowsVersion, id string, status map[string]catalog.DeploymentStatus) (from, to int64) {
	i := 0
	for i < len(vs) && vs[i].DeploymentID != id {
		i++
	}
	if i == len(vs) {
		return 0, 0
	}
	to = vs[i].Version
	for _, v := range vs[i+1:] {
		if v.Source == store.FlowsSourcePut || status[v.DeploymentID] == catalog.DeploymentSucceeded {
			return v.Version, to
		}
	}
	return 0, to
}

func (s *Server) listDeployments(c *gin.Context) {
	ds, err := s.cfg.Deploy.List(c.Query("instance"))
	if err != nil {
		abort(c, err)
		return
	}
	out := make([]deploymentOut, len(ds))
	ptrs := make([]*deploymentOut, len(ds))
	for i, d := range ds {
		out[i].Deployment = d
		ptrs[i] = &out[i]
	}
	s.flowsVersionNumbers(c.Request.Context(), ptrs, ds)
	c.JSON(http.StatusOK, gin.H{"deployments": out, "count": len(out)})
}

func (s *Server) getDeployment(c *gin.Context) {
	v, err := s.cfg.Deploy.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		abort(c, err)
		return
	}
	out := deploymentOut{Deployment: v.Deployment}
	all, err := s.cfg.Deploy.List(v.InstanceID)
	if err != nil {
		abort(c, err)
		return
	}
	s.flowsVersionNumbers(c.Request.Context(), []*deploymentOut{&out}, all)
	c.JSON(http.StatusOK, struct {
		deploy.View
		FromVersion int64 `json:"from_version,omitempty"`
		ToVersion   int64 `json:"to_version,omitempty"`
	}{v, out.FromVersion, out.ToVersion})
}

// deploymentLogs serves GET /api/deployments/:id/logs: the last lines of
// each replica's log a failed green left with its deployment, for those
// who may read the logs of the deployment's instance.
func (s *Server) deploymentLogs(c *gin.Context) {
	v, err := s.cfg.Deploy.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		abort(c, err)
		return
	}
	if err := auth.Authorize(principal(c), auth.ResourceInstances, auth.ActionRead, auth.Target{InstanceID: v.InstanceID}); err != nil {
		abort(c, err)
		return
	}
	gl, err := s.cfg.Deploy.GreenLogs(v.ID)
	if errors.Is(err, catalog.ErrNotFound) {
		abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()})
		return
	}
	if err != nil {
		abort(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gl)
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
