package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/hub/instances"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/nodered"
)

// Fleet is what the instance routes need of this hub's fleet manager.
type Fleet interface {
	// Client is an admin client for a replica, wherever it runs.
	Client(ctx context.Context, a catalog.Allocation) (*nodered.Client, error)
	// Driver runs this hub's runtimes (logs of local replicas).
	Driver() fleet.Driver
	// HubID is this hub.
	HubID() string
	// MarkFlows records that a runtime of this hub already runs the flows
	// sha (an editor deploy made them there).
	MarkFlows(allocID, sha string)
}

// Rows is the instance service (hub/instances): the one writer of
// instance rows.
type Rows interface {
	Create(ctx context.Context, inst catalog.Instance) (catalog.Instance, error)
	Update(ctx context.Context, id string, change func(*catalog.Instance) error) (catalog.Instance, error)
	Scale(ctx context.Context, id string, n int) (catalog.Instance, error)
	// ScaleLive gives the live color row of a logical row just written the
	// logical row's replica count.
	ScaleLive(ctx context.Context, logical catalog.Instance) error
	Delete(ctx context.Context, id string) error
	Live(ref string) (catalog.Instance, error)
	// Logical is the logical instance a row serves.
	Logical(row catalog.Instance) (catalog.Instance, error)
	// RuntimeCredentials are a row's runtime secrets in clear.
	RuntimeCredentials(ctx context.Context, row catalog.Instance) (fleet.Creds, error)
	// SealFlowCredentials and OpenFlowCredentials seal a logical
	// instance's flows' node credentials for the catalog.
	SealFlowCredentials(logicalID string, creds instances.FlowCredentials) (string, error)
	OpenFlowCredentials(logicalID, sealed string) (instances.FlowCredentials, error)
}

// InstanceCatalog is what the instance, hub and deployment routes read
// of the control-plane state.
type InstanceCatalog interface {
	Instance(id string) (catalog.Instance, error)
	InstanceByName(name string) (catalog.Instance, error)
	Instances() []catalog.Instance
	SettingValue(key string, v any) error
	InstanceAllocations(rowID string) []catalog.Allocation
	InstanceFlows(rowID string) (catalog.Flows, error)
	Hubs() []catalog.Hub
	Hub(id string) (catalog.Hub, error)
	HubAllocations(hub string) []catalog.Allocation
}

// Applier writes commands to the control plane (part of ControlPlane).
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
	s.handle(http.MethodPost, "/api/instances/:id/scale", r(auth.ActionUpdate), s.scaleInstance)
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
	DesiredState   *string            `json:"desired_state"`
	Replicas       *int               `json:"replicas"`
	// SecretEnv sets (a value) or removes (null) secret environment
	// variables, leaving the others as they are: their values reach the
	// runtime but are never returned.
	SecretEnv *map[string]*string `json:"secret_env"`
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
	if r.Replicas != nil {
		if n := *r.Replicas; n < 1 || n > catalog.MaxReplicas {
			return Invalid("replicas", fmt.Sprintf("replicas must be between 1 and %d", catalog.MaxReplicas))
		}
		inst.Replicas = *r.Replicas
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
		Driver: s.cfg.Fleet.Driver().Name(), DesiredState: catalog.DesiredRunning, Replicas: 1,
		Resources: catalog.Resources{MemoryMB: DefaultMemoryMB}, CreatedAt: now, UpdatedAt: now,
	}
	if e := req.apply(&inst, true); e != nil {
		abort(c, e)
		return
	}
	inst, err := s.cfg.Rows.Create(c.Request.Context(), inst)
	if err != nil {
		if errors.Is(err, catalog.ErrConflict) {
			abort(c, &Error{Status: http.StatusConflict, Code: "already_exists", Field: "name", Message: fmt.Sprintf("an instance named %q already exists", inst.Name)})
			return
		}
		abort(c, err)
		return
	}
	s.audit(c, audit.InstanceCreated, "instance", inst.ID, map[string]any{"name": inst.Name, "resources": inst.Resources, "region": inst.Region,
		"replicas": inst.ReplicaCount(), "env_keys": slices.Sorted(maps.Keys(inst.Env)), "secret_env_keys": slices.Sorted(maps.Keys(inst.SecretEnv))})
	s.publish(events.InstanceCreated, maskedInstance(inst, true)) // every reader gets the event
	c.JSON(http.StatusCreated, s.view(c, inst))
}

func (s *Server) listInstances(c *gin.Context) {
	insts := s.cfg.Catalog.Instances()
	region, status := c.Query("region"), c.Query("status")
	colors := c.Query("colors") == "1"
	out := make([]InstanceView, 0, len(insts))
	for _, i := range insts {
		if instances.IsColor(i) && !colors {
			continue // a deployment's color row; its logical instance stands for it
		}
		v := s.view(c, i)
		if (region == "" || v.Region == region) && (status == "" || v.Observed.Status == status) {
			out = append(out, v)
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
		c.JSON(http.StatusOK, s.view(c, inst))
	}
}

// InstanceView is an instance as the API shows it: its row, with what its
// live row observes (status, flows), and where each replica runs. Secret
// env values never show (only their names, in secret_env_keys), and plain
// env values only to a caller who may manage (update) the instance;
// others get the names with empty values and env_masked true.
type InstanceView struct {
	catalog.Instance
	Env           map[string]string `json:"env,omitempty"`
	EnvMasked     bool              `json:"env_masked,omitempty"`
	SecretEnvKeys []string          `json:"secret_env_keys,omitempty"`
	// SecretEnv hides the catalog's secret_env: a field at this depth
	// wins over the embedded one, and nil is omitted.
	SecretEnv *struct{} `json:"secret_env,omitempty"`
	// LiveRow is the row serving the instance (its own id, or a color's).
	LiveRow string `json:"live_row,omitempty"`
	// Allocations are the live row's replicas.
	Allocations []ReplicaView `json:"allocations,omitempty"`
}

// ReplicaView is one replica of an instance: where it runs and how it is.
type ReplicaView struct {
	ID       string    `json:"id"`
	Replica  int       `json:"replica"`
	Hub      string    `json:"hub"`
	Region   string    `json:"region,omitempty"`
	Color    string    `json:"color"` // the row's name: the instance's own, or "{name}.{8 hex}"
	Status   string    `json:"status"`
	Address  string    `json:"address,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Message  string    `json:"message,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Stopping bool      `json:"stopping,omitempty"`
}

// view shows a row as the caller of c may see it: a logical instance with
// its live row's observed state and replicas.
func (s *Server) view(c *gin.Context, inst catalog.Instance) InstanceView {
	l := s.live(inst)
	mayManage := auth.Authorize(principal(c), auth.ResourceInstances, auth.ActionUpdate, auth.Target{InstanceID: inst.ID}) == nil
	v := maskedInstance(inst, !mayManage)
	v.LiveRow, v.Allocations = l.ID, []ReplicaView{}
	if l.ID != inst.ID {
		v.Observed, v.FlowsVersion = l.Observed, l.FlowsVersion
	}
	for _, a := range s.cfg.Catalog.InstanceAllocations(l.ID) {
		status := a.Observed.Status
		if status == "" {
			status = "pending"
		}
		v.Allocations = append(v.Allocations, ReplicaView{ID: a.ID, Replica: a.Replica, Hub: a.Hub, Region: a.Region,
			Color: l.Name, Status: status, Address: a.Address(), Since: a.Observed.Since, Message: a.Observed.Message,
			Reason: a.Reason, Stopping: a.Desired == catalog.AllocStop})
	}
	return v
}

// live returns the row serving a logical instance: the color a blue-green
// deployment switched to, or the instance's own row.
func (s *Server) live(inst catalog.Instance) catalog.Instance {
	if inst.Live == "" || inst.Live == inst.ID {
		return inst
	}
	if l, err := s.cfg.Catalog.Instance(inst.Live); err == nil {
		return l
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
	inst, err := s.updateInstance(c.Request.Context(), inst.ID, func(i *catalog.Instance) *Error {
		e := req.apply(i, false)
		if e == nil && req.DesiredState != nil && i.DesiredState == catalog.DesiredRunning {
			i.RestartGen++ // an explicit start clears the crash history
		}
		return e
	})
	if err != nil {
		abort(c, err)
		return
	}
	if req.Replicas != nil {
		// The update above set the logical row's count; only the live
		// color row is left (one Raft apply, not Scale's two).
		if err := s.cfg.Rows.ScaleLive(c.Request.Context(), inst); err != nil {
			abort(c, err)
			return
		}
	}
	s.audit(c, audit.InstanceUpdated, "instance", inst.ID, req.auditDetails())
	c.JSON(http.StatusOK, s.view(c, inst))
}

// updateInstance applies change to the latest stored version of an
// instance through the instance service, which retries a lost
// compare-and-set (the fleet records observed state concurrently).
func (s *Server) updateInstance(ctx context.Context, id string, change func(*catalog.Instance) *Error) (catalog.Instance, error) {
	inst, err := s.cfg.Rows.Update(ctx, id, func(i *catalog.Instance) error {
		if e := change(i); e != nil {
			return e
		}
		return nil
	})
	if errors.Is(err, catalog.ErrConflict) {
		return inst, &Error{Status: http.StatusConflict, Code: "conflict", Message: "the instance kept changing; retry"}
	}
	return inst, err
}

// ScaleRequest is the body of POST /api/instances/:id/scale.
type ScaleRequest struct {
	Replicas *int `json:"replicas"`
}

func (s *Server) scaleInstance(c *gin.Context) {
	inst, ok := s.instance(c)
	if !ok {
		return
	}
	var req ScaleRequest
	if !bindJSON(c, &req, 0) {
		return
	}
	if req.Replicas == nil {
		abort(c, Invalid("replicas", "replicas is required"))
		return
	}
	if n := *req.Replicas; n < 1 || n > catalog.MaxReplicas {
		abort(c, Invalid("replicas", fmt.Sprintf("replicas must be between 1 and %d", catalog.MaxReplicas)))
		return
	}
	if instances.IsColor(inst) {
		abort(c, Invalid("id", fmt.Sprintf("%s is a deployment color; scale %s", inst.Name, instances.LogicalName(inst.Name))))
		return
	}
	from := inst.ReplicaCount()
	inst, err := s.cfg.Rows.Scale(c.Request.Context(), inst.ID, *req.Replicas)
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, "INSTANCE_SCALED", "instance", inst.ID, map[string]any{"name": inst.Name, "from": from, "to": inst.ReplicaCount()})
	c.JSON(http.StatusAccepted, s.view(c, inst))
}

func (s *Server) deleteInstance(c *gin.Context) {
	inst, ok := s.instance(c)
	if !ok {
		return
	}
	if err := s.cfg.Rows.Delete(c.Request.Context(), inst.ID); err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.InstanceDestroyed, "instance", inst.ID, map[string]any{"name": inst.Name})
	s.publish(events.InstanceDeleted, gin.H{"instance_id": inst.ID, "name": inst.Name})
	c.JSON(http.StatusOK, gin.H{"deleted": inst.ID, "name": inst.Name})
}

func (s *Server) setDesired(want catalog.DesiredState, action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		inst, ok := s.liveInstance(c)
		if !ok {
			return
		}
		inst, err := s.updateInstance(c.Request.Context(), inst.ID, func(i *catalog.Instance) *Error {
			if want == catalog.DesiredRunning {
				i.RestartGen++ // an explicit start clears the crash history
			}
			i.DesiredState = want
			return nil
		})
		if err != nil {
			abort(c, err)
			return
		}
		s.audit(c, action, "instance", inst.ID, map[string]any{"name": inst.Name})
		c.JSON(http.StatusAccepted, s.view(c, inst))
	}
}

// restartInstance asks every hub running a replica of the live row to
// restart it (RestartGen).
func (s *Server) restartInstance(c *gin.Context) {
	inst, ok := s.liveInstance(c)
	if !ok {
		return
	}
	if inst.DesiredState != catalog.DesiredRunning {
		abort(c, &Error{Status: http.StatusConflict, Code: "not_running", Message: "the instance is stopped; start it instead"})
		return
	}
	inst, err := s.updateInstance(c.Request.Context(), inst.ID, func(i *catalog.Instance) *Error { i.RestartGen++; return nil })
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.InstanceRestarted, "instance", inst.ID, map[string]any{"name": inst.Name})
	c.JSON(http.StatusAccepted, s.view(c, inst))
}

// replica picks the allocation ?replica=N of a row (the first when not
// given); ok false after writing the error.
func (s *Server) replica(c *gin.Context, row catalog.Instance) (catalog.Allocation, bool) {
	as := s.cfg.Catalog.InstanceAllocations(row.ID)
	want := -1
	if v := c.Query("replica"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n >= catalog.MaxReplicas {
			abort(c, Invalid("replica", fmt.Sprintf("replica must be a whole number from 0 to %d", catalog.MaxReplicas-1)))
			return catalog.Allocation{}, false
		}
		want = n
	}
	for _, a := range as {
		if want < 0 || a.Replica == want {
			return a, true
		}
	}
	msg := "the instance has no replica placed yet (status " + row.Observed.Status + ")"
	if want >= 0 {
		msg = fmt.Sprintf("the instance has no replica %d", want)
	}
	abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Field: "replica", Message: msg})
	return catalog.Allocation{}, false
}

func (s *Server) instanceLogs(c *gin.Context) {
	inst, ok := s.liveInstance(c)
	if !ok {
		return
	}
	a, ok := s.replica(c, inst)
	if !ok {
		return
	}
	if a.Hub != s.cfg.Fleet.HubID() {
		s.forwardToHub(c, a.Hub, fmt.Sprintf("?replica=%d", a.Replica))
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
	rc, err := s.cfg.Fleet.Driver().Logs(c.Request.Context(), a.ID, tail, follow)
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

// getFlows serves the flows the live row runs: the document in the
// catalog (rev is its SHA-256), or, for a row never given flows through
// the hub, what a replica's runtime holds.
func (s *Server) getFlows(c *gin.Context) {
	inst, ok := s.liveInstance(c)
	if !ok {
		return
	}
	if f, err := s.cfg.Catalog.InstanceFlows(inst.ID); err == nil {
		var nodes []json.RawMessage
		if err := json.Unmarshal(f.Doc, &nodes); err == nil {
			c.JSON(http.StatusOK, nodered.Flows{Rev: f.SHA, Flows: nodes})
			return
		}
	}
	a, ok := s.replica(c, inst)
	if !ok {
		return
	}
	cl, err := s.cfg.Fleet.Client(c.Request.Context(), a)
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

// FlowsRolloutTimeout bounds how long PUT /api/instances/:id/flows waits
// for every replica to run the new flows before answering 202.
var FlowsRolloutTimeout = 60 * time.Second

// putFlows deploys a flows document to the live row: the body is the
// flows array, or {"flows": [...], "rev": "..."} to refuse the deploy
// (409) if the row's flows changed since rev (GET's rev). The document
// goes to the catalog; each hub running a replica deploys it. The answer
// comes once every replica runs it (200), or after FlowsRolloutTimeout
// (202, still rolling out). The document is recorded as the logical
// instance's next flows version.
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
	cur, curErr := s.cfg.Catalog.InstanceFlows(inst.ID)
	if rev != "" && (curErr != nil || cur.SHA != rev) {
		abort(c, &Error{Status: http.StatusConflict, Code: "conflict", Field: "rev", Message: "the instance's flows changed since rev " + rev + "; read them again"})
		return
	}
	canonical, err := json.Marshal(nodes)
	if err != nil {
		abort(c, err)
		return
	}
	sha := catalog.FlowsSHA(canonical)
	version := s.recordFlowsVersion(c, logical.ID, doc, store.FlowsSourcePut, "")
	p := principal(c)
	opt := []catalog.PutOption{}
	if curErr == nil {
		opt = append(opt, catalog.IfIndex(cur.ModifyIndex))
	}
	// The flows' node credentials (entered in the editor) stay.
	if _, err := s.cfg.Cluster.Apply(c.Request.Context(), catalog.PutFlows(catalog.Flows{InstanceID: inst.ID, Doc: canonical,
		SHA: sha, Version: version, By: p.Username, At: time.Now().UTC(), Credentials: cur.Credentials}, opt...)); err != nil {
		if errors.Is(err, catalog.ErrConflict) {
			abort(c, &Error{Status: http.StatusConflict, Code: "conflict", Message: "another deploy of this instance's flows got in first; retry"})
			return
		}
		abort(c, err)
		return
	}
	if _, err := s.updateInstance(c.Request.Context(), inst.ID, func(i *catalog.Instance) *Error { i.FlowsVersion = sha[:12]; return nil }); err != nil {
		s.log.Warn("record flows version", "instance", inst.ID, "error", err)
	}
	s.audit(c, audit.FlowsDeployed, "instance", inst.ID, map[string]any{"name": inst.Name, "rev": sha, "nodes": len(nodes), "type": typ, "flows_version": version})
	res := gin.H{"rev": sha, "nodes": len(nodes)}
	if version > 0 {
		res["flows_version"] = version
	}
	status, msg := s.awaitFlows(c.Request.Context(), inst.ID, sha)
	if msg != "" {
		res["message"] = msg
	}
	c.JSON(status, res)
}

// awaitFlows waits until every replica of the row runs the flows sha: 200;
// 202 when the wait ends first (replicas still starting, or a replica that
// cannot deploy them, named in the message).
func (s *Server) awaitFlows(ctx context.Context, rowID, sha string) (int, string) {
	deadline := time.Now().Add(FlowsRolloutTimeout)
	for {
		as := s.cfg.Catalog.InstanceAllocations(rowID)
		done, problem := 0, ""
		for _, a := range as {
			if a.Observed.FlowsSHA == sha {
				done++
			} else if strings.HasPrefix(a.Observed.Message, "deploy flows:") {
				problem = fmt.Sprintf("replica %d on %s: %s", a.Replica, a.Hub, a.Observed.Message)
			}
		}
		switch {
		case len(as) > 0 && done == len(as):
			return http.StatusOK, ""
		case time.Now().After(deadline) || ctx.Err() != nil:
			if problem == "" {
				problem = fmt.Sprintf("%d of %d replicas run the new flows so far; the others get them when they are running", done, len(as))
			}
			return http.StatusAccepted, problem
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
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
