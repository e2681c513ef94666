package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/instances"
	"github.com/redforge/controltower/hub/store"
)

// CheckpointStore keeps workflow checkpoints (hub/store).
type CheckpointStore interface {
	PutCheckpoint(ctx context.Context, c store.Checkpoint) error
	LatestCheckpoints(ctx context.Context, instanceID string) ([]store.Checkpoint, error)
	ListCheckpoints(ctx context.Context, workflowID string, limit int) ([]store.Checkpoint, error)
}

// maxCheckpointBody bounds the body of POST /api/checkpoints.
const maxCheckpointBody = 1 << 20

// MaxCheckpointSkew bounds how far a checkpoint's time may be from the
// hub's clock: "latest" is ordered by that time, so a checkpoint dated in
// the far future would stay latest for ever.
const MaxCheckpointSkew = 24 * time.Hour

func (s *Server) checkpointRoutes() {
	if s.cfg.Store == nil || s.cfg.Catalog == nil {
		return
	}
	s.handle(http.MethodPost, "/api/checkpoints", Perm(auth.ResourceCheckpoints, auth.ActionCreate), s.postCheckpoint)
	s.handle(http.MethodGet, "/api/checkpoints", Perm(auth.ResourceCheckpoints, auth.ActionRead), s.listCheckpoints)
}

// checkpointRequest is the body of POST /api/checkpoints. The instance
// comes from an instance-scoped token, or from instance_id (an id or a
// name) for other principals.
type checkpointRequest struct {
	InstanceID string  `json:"instance_id"`
	WorkflowID string  `json:"workflow_id"`
	Step       string  `json:"step"`
	State      jsonRaw `json:"state"`
	Time       string  `json:"time"` // RFC 3339; default: now
}

// postCheckpoint records a workflow checkpoint of a logical instance (a
// color row's name or id is taken as its logical instance: blue and green
// share their checkpoints).
func (s *Server) postCheckpoint(c *gin.Context) {
	var req checkpointRequest
	if !bindJSON(c, &req, maxCheckpointBody) {
		return
	}
	p := principal(c)
	if p.Scope == auth.ScopeInstance {
		if req.InstanceID != "" && req.InstanceID != p.InstanceID {
			if own, err := s.checkpointInstance(req.InstanceID, "instance_id"); err != nil || own.ID != p.InstanceID {
				abort(c, &Error{Status: http.StatusForbidden, Code: "forbidden", Field: "instance_id",
					Message: "this token may only record checkpoints for its own instance"})
				return
			}
		}
		req.InstanceID = p.InstanceID
	}
	if strings.TrimSpace(req.InstanceID) == "" {
		abort(c, Invalid("instance_id", "instance_id is required (an instance id or name)"))
		return
	}
	inst, err := s.checkpointInstance(req.InstanceID, "instance_id")
	if err != nil {
		abort(c, err)
		return
	}
	now := time.Now().UTC()
	at := now
	if req.Time != "" {
		if at, err = time.Parse(time.RFC3339Nano, req.Time); err != nil {
			abort(c, Invalid("time", "time must be an RFC 3339 time such as 2026-01-02T15:04:05Z"))
			return
		}
		if skew := at.Sub(now); skew > MaxCheckpointSkew || skew < -MaxCheckpointSkew {
			abort(c, Invalid("time", fmt.Sprintf("time %s is more than %s from the hub's clock (%s); send the time the step ran, or leave time out",
				at.UTC().Format(time.RFC3339), MaxCheckpointSkew, now.Format(time.RFC3339))))
			return
		}
	}
	cp := store.Checkpoint{WorkflowID: req.WorkflowID, InstanceID: inst.ID, Step: req.Step, State: req.State, Time: at.UTC()}
	if err := cp.Validate(); err != nil {
		abort(c, err)
		return
	}
	if err := s.cfg.Store.PutCheckpoint(c.Request.Context(), cp); err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"workflow_id": cp.WorkflowID, "instance_id": cp.InstanceID, "step": cp.Step,
		"state": cp.State, "time": cp.Time})
}

// listCheckpoints answers GET /api/checkpoints: with instance (id or name)
// alone, the latest checkpoint of each of its workflows; with workflow_id,
// that workflow's checkpoints newest first (up to limit; of instance only
// when it is given too).
func (s *Server) listCheckpoints(c *gin.Context) {
	instRef, workflow := c.Query("instance"), c.Query("workflow_id")
	limit, _, e := page(c)
	if e != nil {
		abort(c, e)
		return
	}
	if instRef == "" && workflow == "" {
		abort(c, Invalid("instance", "give instance (an id or name), workflow_id, or both"))
		return
	}
	var inst catalog.Instance
	if instRef != "" {
		var err error
		if inst, err = s.checkpointInstance(instRef, "instance"); err != nil {
			abort(c, err)
			return
		}
	}
	ctx := c.Request.Context()
	var cps []store.Checkpoint
	var err error
	if workflow == "" {
		cps, err = s.cfg.Store.LatestCheckpoints(ctx, inst.ID)
	} else {
		if err = store.ValidateCheckpointQuery("workflow_id", workflow, limit); err == nil {
			cps, err = s.cfg.Store.ListCheckpoints(ctx, workflow, limit)
		}
		if err == nil && inst.ID != "" {
			kept := cps[:0]
			for _, cp := range cps {
				if cp.InstanceID == inst.ID {
					kept = append(kept, cp)
				}
			}
			cps = kept
		}
	}
	if err != nil {
		abort(c, err)
		return
	}
	if cps == nil {
		cps = []store.Checkpoint{}
	}
	c.JSON(http.StatusOK, gin.H{"checkpoints": cps, "count": len(cps)})
}

// checkpointInstance resolves an instance id or name given in field; a
// deployment's color row resolves to its logical instance. An unknown one
// is a 404 naming field.
func (s *Server) checkpointInstance(ref, field string) (catalog.Instance, error) {
	inst, err := s.cfg.Catalog.Instance(ref)
	if errors.Is(err, catalog.ErrNotFound) {
		inst, err = s.cfg.Catalog.InstanceByName(ref)
	}
	if err == nil && instances.IsColor(inst) {
		inst, err = s.cfg.Catalog.InstanceByName(instances.LogicalName(inst.Name))
	}
	if errors.Is(err, catalog.ErrNotFound) {
		return inst, &Error{Status: http.StatusNotFound, Code: "not_found", Field: field, Message: "no instance with this id or name"}
	}
	return inst, err
}
