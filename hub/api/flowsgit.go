package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/backup"
	"github.com/redforge/controltower/hub/deploy"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/nodered"
)

// FlowsGit is the flows mirror in Git (hub/backup).
type FlowsGit interface {
	FlowsAt(ctx context.Context, name, tag string) ([]byte, string, error)
	Status() backup.GitStatus
	Kick()
}

const actionFlowsRestored = "FLOWS_RESTORED"

func (s *Server) flowsGitRoutes() {
	if s.cfg.FlowsGit == nil {
		return
	}
	s.handle(http.MethodGet, "/api/flows/git", Perm(auth.ResourceBackups, auth.ActionRead), s.flowsGitStatus)
	if s.cfg.Deploy != nil {
		s.handle(http.MethodPost, "/api/flows/restore", Perm(auth.ResourceDeployments, auth.ActionCreate), s.restoreFlows)
	}
}

func (s *Server) flowsGitStatus(c *gin.Context) { c.JSON(http.StatusOK, s.cfg.FlowsGit.Status()) }

// FlowsRestoreRequest is the body of POST /api/flows/restore.
type FlowsRestoreRequest struct {
	Instance       string `json:"instance"` // id or name
	Tag            string `json:"tag"`      // <name>/vN, vN, or deploy/<id>
	DrainTimeout   string `json:"drain_timeout"`
	RollbackWindow string `json:"rollback_window"`
}

// restoreFlows serves POST /api/flows/restore: the flows of a tag of the
// Git mirror, redeployed blue-green.
func (s *Server) restoreFlows(c *gin.Context) {
	var req FlowsRestoreRequest
	if !bindJSON(c, &req, 0) {
		return
	}
	if req.Instance == "" {
		abort(c, Invalid("instance", "instance (an id or name) is required"))
		return
	}
	if req.Tag == "" {
		abort(c, Invalid("tag", "tag is required, e.g. v3 or orders/v3 (see git tag in the flows repository)"))
		return
	}
	c.Params = append(c.Params, gin.Param{Key: "id", Value: req.Instance})
	inst, ok := s.logicalInstance(c)
	if !ok {
		return
	}
	doc, tag, err := s.cfg.FlowsGit.FlowsAt(c.Request.Context(), inst.Name, req.Tag)
	if errors.Is(err, backup.ErrNoTag) {
		abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Field: "tag", Message: err.Error()})
		return
	}
	if err != nil {
		abort(c, err)
		return
	}
	if _, err := nodered.ValidateFlows(doc); err != nil {
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
		window = -1
	}
	p := principal(c)
	d, err := s.cfg.Deploy.Start(c.Request.Context(), deploy.Request{Instance: inst.ID, Flows: doc, DrainTimeout: drain,
		RollbackWindow: window, UserID: p.UserID, Username: p.Username})
	if err != nil {
		abort(c, err)
		return
	}
	to := s.recordFlowsVersion(c, d.InstanceID, doc, store.FlowsSourceDeployment, d.ID)
	s.audit(c, actionFlowsRestored, "deployment", d.ID, map[string]any{"instance_id": d.InstanceID, "tag": tag, "flows_version": to})
	s.cfg.FlowsGit.Kick()
	c.JSON(http.StatusCreated, gin.H{"deployment": d, "tag": tag, "flows_version": to,
		"message": fmt.Sprintf("redeploying %s of %s blue-green", tag, inst.Name)})
}
