package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/instances"
	"github.com/redforge/controltower/hub/store"
)

// HistoryStore is what the API reads and writes of an instance's history
// in the data store: its status transitions and its flows versions.
type HistoryStore interface {
	ListStatusTransitions(ctx context.Context, f store.TransitionFilter) ([]store.StatusTransition, error)
	AppendFlowsVersion(ctx context.Context, v *store.FlowsVersion) error
	ListFlowsVersions(ctx context.Context, f store.FlowsVersionFilter) ([]store.FlowsVersion, error)
	GetFlowsVersion(ctx context.Context, instanceID string, version int64) (store.FlowsVersion, error)
}

// logicalInstance resolves :id (an id or name) to the logical instance:
// a deployment's color row stands for the instance it serves.
func (s *Server) logicalInstance(c *gin.Context) (catalog.Instance, bool) {
	inst, ok := s.instance(c)
	if ok && instances.IsColor(inst) {
		if l, err := s.cfg.Catalog.InstanceByName(instances.LogicalName(inst.Name)); err == nil {
			return l, true
		}
	}
	return inst, ok
}

// optionalTime parses an optional RFC 3339 query parameter; absent is the
// zero time (no bound).
func optionalTime(c *gin.Context, name string) (time.Time, *Error) {
	if c.Query(name) == "" {
		return time.Time{}, nil
	}
	return queryTime(c, name, time.Time{})
}

// instanceHistory serves GET /api/instances/:id/history: the logical
// instance's status transitions (of its own row and of the color rows
// that served it), newest first; since (inclusive) and until (exclusive)
// are RFC 3339 times, limit and offset page.
func (s *Server) instanceHistory(c *gin.Context) {
	inst, ok := s.logicalInstance(c)
	if !ok {
		return
	}
	f := store.TransitionFilter{InstanceID: inst.ID}
	var e *Error
	if f.Limit, f.Offset, e = page(c); e == nil {
		if f.Since, e = optionalTime(c, "since"); e == nil {
			f.Until, e = optionalTime(c, "until")
		}
	}
	if e != nil {
		abort(c, e)
		return
	}
	trs, err := s.cfg.Store.ListStatusTransitions(c.Request.Context(), f)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"instance_id": inst.ID, "transitions": trs, "count": len(trs)})
}

// listFlowsVersions serves GET /api/instances/:id/flows/versions: the
// versions deployed to the logical instance, newest first, without their
// flows.
func (s *Server) listFlowsVersions(c *gin.Context) {
	inst, ok := s.logicalInstance(c)
	if !ok {
		return
	}
	f := store.FlowsVersionFilter{InstanceID: inst.ID}
	var e *Error
	if f.Limit, f.Offset, e = page(c); e != nil {
		abort(c, e)
		return
	}
	vs, err := s.cfg.Store.ListFlowsVersions(c.Request.Context(), f)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"instance_id": inst.ID, "versions": vs, "count": len(vs)})
}

// getFlowsVersion serves GET /api/instances/:id/flows/versions/:version,
// with the flows.
func (s *Server) getFlowsVersion(c *gin.Context) {
	inst, ok := s.logicalInstance(c)
	if !ok {
		return
	}
	n, err := strconv.ParseInt(c.Param("version"), 10, 64)
	if err != nil || n < 1 {
		abort(c, Invalid("version", "version must be a whole number from 1"))
		return
	}
	v, e := s.flowsVersion(c.Request.Context(), inst, n, "version")
	if e != nil {
		abort(c, e)
		return
	}
	c.JSON(http.StatusOK, v)
}

// flowsVersion reads version n of inst; an unknown version is a 404
// naming field.
func (s *Server) flowsVersion(ctx context.Context, inst catalog.Instance, n int64, field string) (store.FlowsVersion, error) {
	v, err := s.cfg.Store.GetFlowsVersion(ctx, inst.ID, n)
	if errors.Is(err, store.ErrNotFound) {
		return v, &Error{Status: http.StatusNotFound, Code: "not_found", Field: field,
			Message: fmt.Sprintf("instance %s has no flows version %d; list them with GET /api/instances/%s/flows/versions", inst.Name, n, inst.Name)}
	}
	return v, err
}

// recordFlowsVersion appends flows as the next flows version of the
// logical instance instanceID, by the request's principal, and returns its
// number. The flows are deployed already, so a failure is logged, not
// returned, and the number is 0 (the response then carries none).
func (s *Server) recordFlowsVersion(c *gin.Context, instanceID string, flows json.RawMessage, source, deploymentID string) int64 {
	p := principal(c)
	v := store.FlowsVersion{InstanceID: instanceID, Flows: flows, Source: source, DeploymentID: deploymentID,
		UserID: p.UserID, Username: p.Username}
	if err := s.cfg.Store.AppendFlowsVersion(c.Request.Context(), &v); err != nil {
		s.log.Error("record flows version", "instance", instanceID, logKeyRequestID, c.GetString(ctxRequestID), logKeyError, err)
		return 0
	}
	return v.Version
}
