package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/deploy"
	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/nodered"
)

// Fleet is what the instance routes need of the fleet manager.
type Fleet interface {
	Client(inst catalog.Instance) (*nodered.Client, error)
	Restart(ctx context.Context, inst catalog.Instance) error
	ResetFailures(id string)
	Kick()
	Driver() fleet.Driver
}

// Catalog is what the API reads of the control-plane state.
type Catalog interface {
	Instance(id string) (catalog.Instance, error)
	InstanceByName(name string) (catalog.Instance, error)
	Instances() []catalog.Instance
	SettingValue(key string, v any) error
}

// Applier writes commands to the control plane.
type Applier interface {
	Apply(ctx context.Context, cmd catalog.Command) (any, error)
}

// Limits on instance settings.
const (
	MinMemoryMB     = 128
	MaxMemoryMB     = 65536
	DefaultMemoryMB = 512
	MaxEnvVars      = 100
	MaxEnvValue     = 32 << 10
	MaxFlowsBytes   = 16 << 20
)

var (
	instanceName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envName      = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	// reservedEnv are set by the hub for every instance.
	reservedEnv = map[string]bool{"PORT": true, "NODE_RED_CREDENTIAL_SECRET": true, "NODE_OPTIONS": true}
)

func (s *Server) instanceRoutes() {
	if s.cfg.Fleet == nil {
		return
	}
	r := func(a auth.Action) Access { return Perm(auth.ResourceInstances, a).OnInstance() }
	s.handle(http.MethodPost, "/api/instances", Perm(auth.ResourceInstances, auth.ActionCreate), s.createInstance)
	s.handle(http.MethodGet, "/api/instances", Perm(auth.ResourceInstances, auth.ActionRead), s.listInstances)
	s.handle(http.MethodGet, "/api/instances/:id", r(auth.ActionRead), s.getInstance)
	s.handle(http.MethodPatch, "/api/instances/:id", r(auth.ActionUpdate), s.patchInstance)
	s.handle(http.MethodDelete, "/api/instances/:id", r(auth.ActionDelete), s.deleteInstance)
	s.handle(http.MethodPost, "/api/instances/:id/start", r(auth.ActionUpdate), s.setDesired(catalog.DesiredRunning, audit.InstanceStarted))
	s.handle(http.MethodPost, "/api/instances/:id/stop", r(auth.ActionUpdate), s.setDesired(catalog.DesiredStopped, audit.InstanceStopped))
	s.handle(http.MethodPost, "/api/instances/:id/restart", r(auth.ActionUpdate), s.restartInstance)
	s.handle(http.MethodGet, "/api/instances/:id/logs", r(auth.ActionRead), s.instanceLogs)
	s.handle(http.MethodGet, "/api/instances/:id/flows", r(auth.ActionRead), s.getFlows)
	s.handle(http.MethodPut, "/api/instances/:id/flows", r(auth.ActionUpdate), s.putFlows)
	s.handle(http.MethodGet, "/api/instances/:id/metrics", r(auth.ActionRead), s.instanceMetrics)
	s.handle(http.MethodGet, "/api/instances/:id/history", r(auth.ActionRead), s.instanceHistory)
	s.handle(http.MethodGet, "/api/instances/:id/flows/versions", r(auth.ActionRead), s.listFlowsVersions)
	s.handle(http.MethodGet, "/api/instances/:id/flows/versions/:version", r(auth.ActionRead), s.getFlowsVersion)
}

// InstanceRequest is the body of POST /api/instances and PATCH
// /api/instances/:id (where every field is optional).
type InstanceRequest struct {
	Name           *string            `json:"name"`
	Region         *string            `json:"region"`
	Placement      *string            `json:"placement"`
	Image          *string            `json:"image"`
	NodeREDVersion *string            `json:"node_red_version"`
	Resources      *ResourcesRequest  `json:"resources"`
	Env            *map[string]string `json:"env"`
	// SecretEnv sets (a value) or removes (null) secret environment
	// variables, leaving the others as they are: their values reach the
	// runtime but are never returned.
	SecretEnv    *map[string]*string `json:"secret_env"`
	DesiredState *string             `json:"desired_state"`
}

// ResourcesRequest are instance limits.
type ResourcesRequest struct {
	CPU      *float64 `json:"cpu"`
	MemoryMB *int     `json:"memory_mb"`
}

// apply validates r and writes it onto inst; it returns an *Error naming
// the first bad field.
func (r *InstanceRequest) apply(inst *catalog.Instance, creating bool) *Error {
	if r.Name != nil {
		if !creating && *r.Name != inst.Name {
			return Invalid("name", "name cannot be changed; create a new instance instead")
		}
		if !instanceName.MatchString(*r.Name) {
			return Invalid("name", "name must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit")
		}
		inst.Name = *r.Name
	} else if creating {
		return Invalid("name", "name is required")
	}
	if r.Region != nil {
		if *r.Region == "" || len(*r.Region) > 64 {
			return Invalid("region", "region must be 1-64 characters")
		}
		inst.Region = *r.Region
	}
	if r.Placement != nil {
		switch p := catalog.Placement(*r.Placement); p {
		case catalog.PlacementPinned, catalog.PlacementFailover:
			inst.Placement = p
		default:
			return Invalid("placement", "placement must be pinned or failover")
		}
	}
	if r.Image != nil {
		if len(*r.Image) > 255 {
			return Invalid("image", "image must be at most 255 characters")
		}
		inst.Image = *r.Image
	}
	if r.NodeREDVersion != nil {
		inst.NodeREDVersion = *r.NodeREDVersion
	}
	if r.Resources != nil {
		if e := r.Resources.apply(&inst.Resources); e != nil {
			return e
		}
	}
	if r.Env != nil {
		if e := validateEnv("env", *r.Env); e != nil {
			return e
		}
		inst.Env = *r.Env
	}
	if r.SecretEnv != nil {
		if e := applySecretEnv(inst, *r.SecretEnv); e != nil {
			return e
		}
	}
	if len(inst.Env)+len(inst.SecretEnv) > MaxEnvVars {
		return Invalid("env", fmt.Sprintf("at most %d environment variables, plain and secret together", MaxEnvVars))
	}
	for k := range inst.SecretEnv {
		if _, ok := inst.Env[k]; ok {
			return Invalid("secret_env."+k, k+" is both in env and in secret_env; a variable is either plain or secret")
		}
	}
	if r.DesiredState != nil {
		switch d := catalog.DesiredState(*r.DesiredState); d {
		case catalog.DesiredRunning, catalog.DesiredStopped:
			inst.DesiredState = d
		default:
			return Invalid("desired_state", "desired_state must be running or stopped")
		}
	}
	return nil
}

func (r *ResourcesRequest) apply(res *catalog.Resources) *Error {
	if r.MemoryMB != nil {
		if m := *r.MemoryMB; m < MinMemoryMB || m > MaxMemoryMB {
			return Invalid("resources.memory_mb", fmt.Sprintf("memory_mb must be between %d and %d", MinMemoryMB, MaxMemoryMB))
		}
		res.MemoryMB = *r.MemoryMB
	}
	if r.CPU != nil {
		if c, n := *r.CPU, float64(runtime.NumCPU()); c <= 0 || c > n {
			return Invalid("resources.cpu", fmt.Sprintf("cpu must be more than 0 and at most %g (the host's cores)", n))
		}
		res.CPU = *r.CPU
	}
	return nil
}

// validateEnv checks the names and values of the env (or secret_env,
// named by field) of a request.
func validateEnv(field string, env map[string]string) *Error {
	if len(env) > MaxEnvVars {
		return Invalid(field, fmt.Sprintf("at most %d environment variables", MaxEnvVars))
	}
	for k, v := range env {
		switch {
		case !envName.MatchString(k):
			return Invalid(field+"."+k, fmt.Sprintf("%q is not a valid environment variable name (letters, digits, _; not starting with a digit)", k))
		case reservedEnv[k]:
			return Invalid(field+"."+k, k+" is set by the hub and cannot be overridden")
		case len(v) > MaxEnvValue:
			return Invalid(field+"."+k, fmt.Sprintf("value is longer than %d bytes", MaxEnvValue))
		}
	}
	return nil
}

// applySecretEnv sets the secret variables given a value and removes those
// given null; the others stay.
func applySecretEnv(inst *catalog.Instance, change map[string]*string) *Error {
	set := map[string]string{}
	for k, v := range change {
		if v != nil {
			set[k] = *v
		} else if !envName.MatchString(k) {
			return Invalid("secret_env."+k, fmt.Sprintf("%q is not a valid environment variable name", k))
		}
	}
	if e := validateEnv("secret_env", set); e != nil {
		return e
	}
	merged := maps.Clone(inst.SecretEnv)
	if merged == nil {
		merged = map[string]string{}
	}
	for k, v := range change {
		if v == nil {
			delete(merged, k)
		} else {
			merged[k] = *v
		}
	}
	if len(merged) == 0 {
		merged = nil
	}
	inst.SecretEnv = merged
	return nil
}

// InstanceView is an instance as the API shows it: secret env values
// never (only their names, in secret_env_keys), and plain env values only
// to a caller who may manage (update) the instance; others get the names
// with empty values and env_masked true.
type InstanceView struct {
	catalog.Instance
	Env           map[string]string `json:"env,omitempty"`
	EnvMasked     bool              `json:"env_masked,omitempty"`
	SecretEnvKeys []string          `json:"secret_env_keys,omitempty"`
	// SecretEnv hides the catalog's secret_env: a field at this depth
	// wins over the embedded one, and nil is omitted.
	SecretEnv *struct{} `json:"secret_env,omitempty"`
}

// viewInstance returns inst as the caller of c may see it.
func (s *Server) viewInstance(c *gin.Context, inst catalog.Instance) InstanceView {
	mayManage := auth.Authorize(principal(c), auth.ResourceInstances, auth.ActionUpdate, auth.Target{InstanceID: inst.ID}) == nil
	return maskedInstance(inst, !mayManage)
}

// maskedInstance returns the view of inst, with env values hidden when mask.
func maskedInstance(inst catalog.Instance, mask bool) InstanceView {
	v := InstanceView{Instance: inst, Env: inst.Env, SecretEnvKeys: slices.Sorted(maps.Keys(inst.SecretEnv))}
	v.Instance.SecretEnv = nil
	if mask && len(inst.Env) > 0 {
		v.Env, v.EnvMasked = make(map[string]string, len(inst.Env)), true
		for k := range inst.Env {
			v.Env[k] = ""
		}
	}
	return v
}

// auditDetails is what the audit log keeps of an instance request: every
// field as given, but of env and secret_env only the names, so neither a
// secret nor a plain env value reaches the audit log or its exports.
func (r *InstanceRequest) auditDetails() map[string]any {
	d := map[string]any{}
	set := func(k string, v any, given bool) {
		if given {
			d[k] = v
		}
	}
	set("name", r.Name, r.Name != nil)
	set("region", r.Region, r.Region != nil)
	set("placement", r.Placement, r.Placement != nil)
	set("image", r.Image, r.Image != nil)
	set("node_red_version", r.NodeREDVersion, r.NodeREDVersion != nil)
	set("resources", r.Resources, r.Resources != nil)
	set("desired_state", r.DesiredState, r.DesiredState != nil)
	if r.Env != nil {
		d["env_keys"] = slices.Sorted(maps.Keys(*r.Env))
	}
	if r.SecretEnv != nil {
		var given, removed []string
		for k, v := range *r.SecretEnv {
			if v == nil {
				removed = append(removed, k)
			} else {
				given = append(given, k)
			}
		}
		slices.Sort(given)
		slices.Sort(removed)
		d["secret_env_set"], d["secret_env_removed"] = given, removed
	}
	return d
}

func (s *Server) createInstance(c *gin.Context) {
	var req InstanceRequest
	if !bindJSON(c, &req, 0) {
		return
	}
	now := time.Now().UTC()
	inst := catalog.Instance{
		ID: uuid.NewString(), Region: s.cfg.Region, Placement: catalog.PlacementPinned,
		Driver: s.cfg.Fleet.Driver().Name(), DesiredState: catalog.DesiredRunning,
		Resources: catalog.Resources{MemoryMB: DefaultMemoryMB}, CreatedAt: now, UpdatedAt: now,
	}
	if e := req.apply(&inst, true); e != nil {
		abort(c, e)
		return
	}
	res, err := s.cfg.Applier.Apply(c.Request.Context(), catalog.UpsertInstance(inst, catalog.IfIndex(0)))
	if err != nil {
		if errors.Is(err, catalog.ErrConflict) {
			abort(c, &Error{Status: http.StatusConflict, Code: "already_exists", Field: "name", Message: fmt.Sprintf("an instance named %q already exists", inst.Name)})
			return
		}
		abort(c, err)
		return
	}
	if stored, ok := res.(catalog.Instance); ok {
		inst = stored
	}
	s.audit(c, audit.InstanceCreated, "instance", inst.ID, map[string]any{"name": inst.Name, "resources": inst.Resources, "region": inst.Region,
		"env_keys": slices.Sorted(maps.Keys(inst.Env)), "secret_env_keys": slices.Sorted(maps.Keys(inst.SecretEnv))})
	s.publish(events.InstanceCreated, maskedInstance(inst, true)) // every reader gets the event
	s.cfg.Fleet.Kick()
	c.JSON(http.StatusCreated, s.viewInstance(c, inst))
}

func (s *Server) listInstances(c *gin.Context) {
	insts := s.cfg.Catalog.Instances()
	region, status := c.Query("region"), c.Query("status")
	colors := c.Query("colors") == "1"
	out := make([]InstanceView, 0, len(insts))
	for _, i := range insts {
		if deploy.IsColor(i) && !colors {
			continue // a deployment's color row; its logical instance stands for it
		}
		i = s.withLive(i)
		if (region == "" || i.Region == region) && (status == "" || i.Observed.Status == status) {
			out = append(out, s.viewInstance(c, i))
		}
	}
	c.JSON(http.StatusOK, gin.H{"instances": out, "count": len(out)})
}

// instance resolves :id as an instance id, or else as a name.
func (s *Server) instance(c *gin.Context) (catalog.Instance, bool) {
	id := c.Param("id")
	inst, err := s.cfg.Catalog.Instance(id)
	if errors.Is(err, catalog.ErrNotFound) {
		inst, err = s.cfg.Catalog.InstanceByName(id)
	}
	if err != nil {
		if errors.Is(err, catalog.ErrNotFound) {
			abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no instance %q", id)})
			return inst, false
		}
		abort(c, err)
		return inst, false
	}
	return inst, true
}

func (s *Server) getInstance(c *gin.Context) {
	if inst, ok := s.instance(c); ok {
		c.JSON(http.StatusOK, s.viewInstance(c, s.withLive(inst)))
	}
}

// live returns the row serving a logical instance: the color a blue-green
// deployment switched to, or the instance's own row.
func (s *Server) live(inst catalog.Instance) catalog.Instance {
	var liveID string
	if err := s.cfg.Catalog.SettingValue(deploy.LiveKey(inst.ID), &liveID); err != nil || liveID == "" || liveID == inst.ID {
		return inst
	}
	if l, err := s.cfg.Catalog.Instance(liveID); err == nil {
		return l
	}
	return inst
}

// withLive shows a logical instance with what its live row observes (its
// status, port and flows), keeping the logical id and name.
func (s *Server) withLive(inst catalog.Instance) catalog.Instance {
	l := s.live(inst)
	if l.ID != inst.ID {
		inst.Observed, inst.FlowsVersion = l.Observed, l.FlowsVersion
	}
	return inst
}

// liveInstance resolves :id to the row that serves it now; runtime actions
// (start, stop, restart, logs, flows, metrics) act on that row.
func (s *Server) liveInstance(c *gin.Context) (catalog.Instance, bool) {
	inst, ok := s.instance(c)
	if !ok {
		return inst, false
	}
	return s.live(inst), true
}

func (s *Server) patchInstance(c *gin.Context) {
	inst, ok := s.instance(c)
	if !ok {
		return
	}
	var req InstanceRequest
	if !bindJSON(c, &req, 0) {
		return
	}
	inst, err := s.updateInstance(c.Request.Context(), inst.ID, func(i *catalog.Instance) *Error { return req.apply(i, false) })
	if err != nil {
		abort(c, err)
		return
	}
	if req.DesiredState != nil && inst.DesiredState == catalog.DesiredRunning {
		s.cfg.Fleet.ResetFailures(inst.ID)
	}
	s.audit(c, audit.InstanceUpdated, "instance", inst.ID, req.auditDetails())
	s.cfg.Fleet.Kick()
	c.JSON(http.StatusOK, s.viewInstance(c, s.withLive(inst)))
}

// updateInstance applies change to the latest stored version of an
// instance. The fleet records observed state concurrently (which bumps the
// row's index without touching what change edits), so a lost
// compare-and-set is retried on a fresh read a few times.
func (s *Server) updateInstance(ctx context.Context, id string, change func(*catalog.Instance) *Error) (catalog.Instance, error) {
	for attempt := 0; ; attempt++ {
		inst, err := s.cfg.Catalog.Instance(id)
		if err != nil {
			return inst, err
		}
		index := inst.ModifyIndex
		if e := change(&inst); e != nil {
			return inst, e
		}
		inst.UpdatedAt = time.Now().UTC()
		res, err := s.cfg.Applier.Apply(ctx, catalog.UpsertInstance(inst, catalog.IfIndex(index)))
		if errors.Is(err, catalog.ErrConflict) && attempt < 5 {
			continue
		}
		if errors.Is(err, catalog.ErrConflict) {
			return inst, &Error{Status: http.StatusConflict, Code: "conflict", Message: "the instance kept changing; retry"}
		}
		if err != nil {
			return inst, err
		}
		if stored, ok := res.(catalog.Instance); ok {
			inst = stored
		}
		return inst, nil
	}
}

func (s *Server) deleteInstance(c *gin.Context) {
	inst, ok := s.instance(c)
	if !ok {
		return
	}
	if _, err := s.cfg.Applier.Apply(c.Request.Context(), catalog.DeleteInstance(inst.ID)); err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.InstanceDestroyed, "instance", inst.ID, map[string]any{"name": inst.Name})
	s.publish(events.InstanceDeleted, gin.H{"instance_id": inst.ID, "name": inst.Name})
	s.cfg.Fleet.Kick()
	c.JSON(http.StatusOK, gin.H{"deleted": inst.ID, "name": inst.Name})
}

func (s *Server) setDesired(want catalog.DesiredState, action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		inst, ok := s.liveInstance(c)
		if !ok {
			return
		}
		if want == catalog.DesiredRunning {
			s.cfg.Fleet.ResetFailures(inst.ID)
		}
		if inst.DesiredState != want {
			var err error
			inst, err = s.updateInstance(c.Request.Context(), inst.ID, func(i *catalog.Instance) *Error { i.DesiredState = want; return nil })
			if err != nil {
				abort(c, err)
				return
			}
		}
		s.audit(c, action, "instance", inst.ID, map[string]any{"name": inst.Name})
		s.cfg.Fleet.Kick()
		c.JSON(http.StatusAccepted, s.viewInstance(c, inst))
	}
}

func (s *Server) restartInstance(c *gin.Context) {
	inst, ok := s.liveInstance(c)
	if !ok {
		return
	}
	if inst.DesiredState != catalog.DesiredRunning {
		abort(c, &Error{Status: http.StatusConflict, Code: "not_running", Message: "the instance is stopped; start it instead"})
		return
	}
	if err := s.cfg.Fleet.Restart(c.Request.Context(), inst); err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.InstanceRestarted, "instance", inst.ID, map[string]any{"name": inst.Name})
	c.JSON(http.StatusAccepted, s.viewInstance(c, inst))
}

func (s *Server) instanceLogs(c *gin.Context) {
	inst, ok := s.liveInstance(c)
	if !ok {
		return
	}
	tail := 200
	if v := c.Query("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100000 {
			abort(c, Invalid("tail", "tail must be a whole number from 0 to 100000"))
			return
		}
		tail = n
	}
	follow := c.Query("follow") == "1" || c.Query("follow") == "true"
	rc, err := s.cfg.Fleet.Driver().Logs(c.Request.Context(), inst.ID, tail, follow)
	if err != nil {
		if errors.Is(err, fleet.ErrNotFound) {
			abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "the instance has no runtime yet (status " + inst.Observed.Status + ")"})
			return
		}
		abort(c, err)
		return
	}
	defer rc.Close()
	c.Header("Content-Type", "text/plain; charset=utf-8")
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := c.Writer.Write(buf[:n]); werr != nil {
				return
			}
			c.Writer.Flush()
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) {
				s.log.Debug("instance logs", "instance", inst.ID, "error", err)
			}
			return
		}
	}
}

func (s *Server) getFlows(c *gin.Context) {
	inst, ok := s.liveInstance(c)
	if !ok {
		return
	}
	cl, err := s.cfg.Fleet.Client(inst)
	if err != nil {
		abort(c, &Error{Status: http.StatusConflict, Code: "not_running", Message: err.Error()})
		return
	}
	f, err := cl.GetFlows(c.Request.Context())
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, f)
}

// putFlows deploys a flows document to the live instance: the body is the
// flows array, or {"flows": [...], "rev": "..."} to refuse the deploy if
// the instance's flows changed since rev. The document is recorded as the
// logical instance's next flows version.
func (s *Server) putFlows(c *gin.Context) {
	logical, ok := s.logicalInstance(c)
	if !ok {
		return
	}
	inst := s.live(logical)
	body, ok := readJSON(c, MaxFlowsBytes)
	if !ok {
		return
	}
	doc, rev, e := splitFlowsBody(body)
	if e != nil {
		abort(c, e)
		return
	}
	nodes, err := nodered.ValidateFlows(doc)
	if err != nil {
		abort(c, err)
		return
	}
	typ := nodered.DeployType(c.DefaultQuery("type", string(nodered.DeployFull)))
	switch typ {
	case nodered.DeployFull, nodered.DeployFlows, nodered.DeployNodes:
	default:
		abort(c, Invalid("type", "type must be full, flows or nodes"))
		return
	}
	cl, err := s.cfg.Fleet.Client(inst)
	if err != nil {
		abort(c, &Error{Status: http.StatusConflict, Code: "not_running", Message: err.Error()})
		return
	}
	newRev, err := cl.DeployFlows(c.Request.Context(), nodes, rev, typ)
	if err != nil {
		abort(c, err)
		return
	}
	if _, err := s.updateInstance(c.Request.Context(), inst.ID, func(i *catalog.Instance) *Error { i.FlowsVersion = newRev; return nil }); err != nil {
		s.log.Warn("record flows version", "instance", inst.ID, "error", err)
	}
	version := s.recordFlowsVersion(c, logical.ID, doc, store.FlowsSourcePut, "")
	s.audit(c, audit.FlowsDeployed, "instance", inst.ID, map[string]any{"name": inst.Name, "rev": newRev, "nodes": len(nodes), "type": typ, "flows_version": version})
	res := gin.H{"rev": newRev, "nodes": len(nodes)}
	if version > 0 {
		res["flows_version"] = version
	}
	c.JSON(http.StatusOK, res)
}

// splitFlowsBody accepts a bare flows array or {"flows":…, "rev":…}.
func splitFlowsBody(body []byte) ([]byte, string, *Error) {
	for _, b := range body {
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			var wrapped struct {
				Flows jsonRaw `json:"flows"`
				Rev   string  `json:"rev"`
			}
			if err := strictUnmarshal(body, &wrapped); err != nil {
				return nil, "", jsonError(err)
			}
			if len(wrapped.Flows) == 0 {
				return nil, "", Invalid("flows", "flows is required")
			}
			return wrapped.Flows, wrapped.Rev, nil
		}
		break
	}
	return body, "", nil
}

func (s *Server) instanceMetrics(c *gin.Context) {
	inst, ok := s.liveInstance(c)
	if !ok {
		return
	}
	q := store.MetricQuery{Source: inst.ID, Name: c.Query("name"), Limit: 1000}
	var e *Error
	if q.Start, e = queryTime(c, "start", time.Now().Add(-time.Hour)); e != nil {
		abort(c, e)
		return
	}
	if q.End, e = queryTime(c, "end", time.Now()); e != nil {
		abort(c, e)
		return
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			abort(c, Invalid("limit", "limit must be a whole number from 1 to 10000"))
			return
		}
		q.Limit = n
	}
	samples, err := s.cfg.Store.QueryMetricSamples(c.Request.Context(), q)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"instance_id": inst.ID, "samples": samples})
}

// queryTime parses an RFC 3339 query parameter, or returns def.
func queryTime(c *gin.Context, name string, def time.Time) (time.Time, *Error) {
	v := c.Query(name)
	if v == "" {
		return def.UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, Invalid(name, name+" must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	return t.UTC(), nil
}

// publish sends an event to WebSocket subscribers, when events are wired.
func (s *Server) publish(typ string, data any) {
	if s.cfg.Events != nil {
		s.cfg.Events.Publish(events.New(typ, data))
	}
}
