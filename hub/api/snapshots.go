package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/deploy"
	"github.com/redforge/controltower/nodered"
)

// Snapshots (FlowFuse's word for what users ask for): a named copy of what
// a logical instance runs — its flows, their node credentials (sealed with
// the instance's own key, never returned), its settings (image, resources,
// env; secret env stays as it is) and its node set. Users create, list
// and compare them (a readable diff: nodes added, changed and removed, by
// name and type; settings and node packages that differ), and roll back to
// one, blue-green.

// MaxSnapshots bounds an instance's snapshots.
const MaxSnapshots = 100

// SnapshotView is a snapshot as the API lists it: everything but its
// flows and credentials.
type SnapshotView struct {
	ID             string                `json:"id"`
	InstanceID     string                `json:"instance_id"`
	Name           string                `json:"name"`
	Description    string                `json:"description,omitempty"`
	FlowsSHA       string                `json:"flows_sha"`
	FlowNodes      int                   `json:"flow_nodes"`
	HasCredentials bool                  `json:"has_credentials"`
	Settings       *deploy.Settings      `json:"settings,omitempty"`
	Nodes          []catalog.NodePackage `json:"nodes"`
	CreatedBy      string                `json:"created_by,omitempty"`
	CreatedAt      time.Time             `json:"created_at"`
}

func snapshotView(s catalog.InstanceSnapshot) SnapshotView {
	var nodes []json.RawMessage
	_ = json.Unmarshal(s.Flows, &nodes)
	v := SnapshotView{ID: s.ID, InstanceID: s.InstanceID, Name: s.Name, Description: s.Description, FlowsSHA: s.FlowsSHA,
		FlowNodes: len(nodes), HasCredentials: s.Credentials != "", Nodes: s.Nodes, CreatedBy: s.CreatedBy, CreatedAt: s.CreatedAt}
	if v.Nodes == nil {
		v.Nodes = []catalog.NodePackage{}
	}
	var st deploy.Settings
	if len(s.Settings) > 0 && json.Unmarshal(s.Settings, &st) == nil {
		v.Settings = &st
	}
	return v
}

// SnapshotCatalog is what the snapshot routes read of the catalog.
type SnapshotCatalog interface {
	InstanceSnapshot(id string) (catalog.InstanceSnapshot, error)
	InstanceSnapshots(instanceID string) []catalog.InstanceSnapshot
}

func (s *Server) snapshotRoutes() {
	if s.cfg.Catalog == nil || s.cfg.Deploy == nil {
		return
	}
	r := func(a auth.Action) Access { return Perm(auth.ResourceInstances, a).OnInstance() }
	s.handle(http.MethodGet, "/api/instances/:id/snapshots", r(auth.ActionRead), s.listSnapshots)
	s.handle(http.MethodPost, "/api/instances/:id/snapshots", r(auth.ActionUpdate), s.createSnapshot)
	s.handle(http.MethodGet, "/api/instances/:id/snapshots/:sid", r(auth.ActionRead), s.getSnapshot)
	s.handle(http.MethodDelete, "/api/instances/:id/snapshots/:sid", r(auth.ActionUpdate), s.deleteSnapshot)
	s.handle(http.MethodGet, "/api/instances/:id/snapshots/:sid/compare", r(auth.ActionRead), s.compareSnapshot)
	s.handle(http.MethodPost, "/api/instances/:id/snapshots/:sid/rollback", r(auth.ActionUpdate), s.rollbackSnapshot)
}

func (s *Server) listSnapshots(c *gin.Context) {
	inst, ok := s.logicalInstance(c)
	if !ok {
		return
	}
	snaps := s.cfg.Catalog.InstanceSnapshots(inst.ID)
	out := make([]SnapshotView, 0, len(snaps))
	for i := len(snaps) - 1; i >= 0; i-- { // newest first
		out = append(out, snapshotView(snaps[i]))
	}
	c.JSON(http.StatusOK, gin.H{"instance": inst.Name, "snapshots": out, "count": len(out)})
}

// SnapshotRequest is the body of POST /api/instances/:id/snapshots.
type SnapshotRequest struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// currentSettings are the logical instance's settings as a snapshot keeps
// them.
func currentSettings(inst catalog.Instance) deploy.Settings {
	env := maps.Clone(inst.Env)
	delete(env, "REDFORGE_INSTANCE")
	delete(env, "REDFORGE_LOGICAL")
	return deploy.Settings{Image: inst.Image, Resources: inst.Resources, Env: env}
}

// createSnapshot copies what the instance runs now into a new snapshot.
func (s *Server) createSnapshot(c *gin.Context) {
	inst, ok := s.logicalInstance(c)
	if !ok {
		return
	}
	var req SnapshotRequest
	if !bindJSON(c, &req, 0) {
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	switch {
	case req.Name == "" || len(req.Name) > 100:
		abort(c, Invalid("name", "name is required, at most 100 characters"))
		return
	case len(req.Description) > 2000:
		abort(c, Invalid("description", "description is at most 2000 characters"))
		return
	}
	existing := s.cfg.Catalog.InstanceSnapshots(inst.ID)
	if len(existing) >= MaxSnapshots {
		abort(c, &Error{Status: http.StatusConflict, Code: "conflict", Message: fmt.Sprintf("%s has %d snapshots, the most it may keep; delete one first", inst.Name, MaxSnapshots)})
		return
	}
	live := s.live(inst)
	flows, err := s.cfg.Catalog.InstanceFlows(live.ID)
	if errors.Is(err, catalog.ErrNotFound) {
		abort(c, &Error{Status: http.StatusConflict, Code: "conflict", Message: inst.Name + " has no flows deployed through the hub yet; nothing to snapshot"})
		return
	}
	if err != nil {
		abort(c, err)
		return
	}
	settings, _ := json.Marshal(currentSettings(inst))
	p := principal(c)
	snap := catalog.InstanceSnapshot{ID: uuid.NewString(), InstanceID: inst.ID, Name: req.Name, Description: req.Description,
		Flows: flows.Doc, FlowsSHA: flows.SHA, Credentials: flows.Credentials, Settings: settings, Nodes: live.Nodes,
		CreatedBy: p.Username, CreatedAt: time.Now().UTC()}
	res, err := s.cfg.Cluster.Apply(c.Request.Context(), catalog.PutInstanceSnapshot(snap, catalog.IfIndex(0)))
	if err != nil {
		abort(c, err)
		return
	}
	if stored, ok := res.(catalog.InstanceSnapshot); ok {
		snap = stored
	}
	s.audit(c, audit.SnapshotCreated, "instance", inst.ID, map[string]any{"name": inst.Name, "snapshot": snap.ID, "snapshot_name": snap.Name})
	c.JSON(http.StatusCreated, snapshotView(snap))
}

// snapshot resolves :sid as a snapshot of the logical instance.
func (s *Server) snapshot(c *gin.Context) (catalog.Instance, catalog.InstanceSnapshot, bool) {
	inst, ok := s.logicalInstance(c)
	if !ok {
		return inst, catalog.InstanceSnapshot{}, false
	}
	snap, ok := s.snapshotOf(c, inst, c.Param("sid"), "sid")
	return inst, snap, ok
}

func (s *Server) snapshotOf(c *gin.Context, inst catalog.Instance, id, field string) (catalog.InstanceSnapshot, bool) {
	snap, err := s.cfg.Catalog.InstanceSnapshot(id)
	if err != nil || snap.InstanceID != inst.ID {
		abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Field: field, Message: fmt.Sprintf("%s has no snapshot %q", inst.Name, id)})
		return snap, false
	}
	return snap, true
}

// SnapshotDetail is a snapshot with its flows (never its credentials).
type SnapshotDetail struct {
	SnapshotView
	Flows json.RawMessage `json:"flows"`
}

func (s *Server) getSnapshot(c *gin.Context) {
	if _, snap, ok := s.snapshot(c); ok {
		c.JSON(http.StatusOK, SnapshotDetail{SnapshotView: snapshotView(snap), Flows: snap.Flows})
	}
}

func (s *Server) deleteSnapshot(c *gin.Context) {
	inst, snap, ok := s.snapshot(c)
	if !ok {
		return
	}
	if _, err := s.cfg.Cluster.Apply(c.Request.Context(), catalog.DeleteInstanceSnapshot(snap.ID)); err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.SnapshotDeleted, "instance", inst.ID, map[string]any{"name": inst.Name, "snapshot": snap.ID, "snapshot_name": snap.Name})
	c.Status(http.StatusNoContent)
}

// SnapshotComparison is what GET .../compare answers: from the snapshot
// to the other side (another snapshot, or what runs now).
type SnapshotComparison struct {
	From     string            `json:"from"`
	To       string            `json:"to"`
	Flows    nodered.FlowsDiff `json:"flows"`
	Settings []SettingChange   `json:"settings"`
	Nodes    PackageChanges    `json:"nodes"`
	Summary  string            `json:"summary"`
	ToView   *SnapshotView     `json:"to_snapshot,omitempty"`
	FromView SnapshotView      `json:"from_snapshot"`
}

// SettingChange is one setting that differs.
type SettingChange struct {
	Setting string `json:"setting"` // image, resources.cpu, resources.memory_mb, env.NAME
	From    string `json:"from"`
	To      string `json:"to"`
}

// PackageChanges are the node packages that differ.
type PackageChanges struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Changed []string `json:"changed"` // name: old version → new version
}

// compareSnapshot diffs the snapshot against ?with= (another snapshot's
// id, or "current", the default: what the instance runs now).
func (s *Server) compareSnapshot(c *gin.Context) {
	inst, from, ok := s.snapshot(c)
	if !ok {
		return
	}
	var fromSettings, toSettings deploy.Settings
	_ = json.Unmarshal(from.Settings, &fromSettings)
	with := c.DefaultQuery("with", "current")
	cmp := SnapshotComparison{From: from.ID, To: with, FromView: snapshotView(from)}
	var toFlows []byte
	var toNodes []catalog.NodePackage
	if with == "current" {
		live := s.live(inst)
		toFlows = []byte(`[]`)
		if f, err := s.cfg.Catalog.InstanceFlows(live.ID); err == nil {
			toFlows = f.Doc
		}
		toSettings, toNodes = currentSettings(inst), live.Nodes
	} else {
		to, ok := s.snapshotOf(c, inst, with, "with")
		if !ok {
			return
		}
		toFlows, toNodes = to.Flows, to.Nodes
		_ = json.Unmarshal(to.Settings, &toSettings)
		v := snapshotView(to)
		cmp.ToView = &v
	}
	d, err := nodered.DiffFlows(from.Flows, toFlows)
	if err != nil {
		abort(c, err)
		return
	}
	cmp.Flows = d
	cmp.Settings = diffSettings(fromSettings, toSettings)
	cmp.Nodes = diffPackages(from.Nodes, toNodes)
	cmp.Summary = fmt.Sprintf("%d nodes added, %d changed, %d removed; %d settings and %d node packages differ",
		len(d.Added), len(d.Changed), len(d.Removed), len(cmp.Settings),
		len(cmp.Nodes.Added)+len(cmp.Nodes.Removed)+len(cmp.Nodes.Changed))
	c.JSON(http.StatusOK, cmp)
}

func diffSettings(a, b deploy.Settings) []SettingChange {
	out := []SettingChange{}
	add := func(k, x, y string) {
		if x != y {
			out = append(out, SettingChange{Setting: k, From: x, To: y})
		}
	}
	add("image", a.Image, b.Image)
	add("resources.cpu", fmt.Sprint(a.Resources.CPU), fmt.Sprint(b.Resources.CPU))
	add("resources.memory_mb", fmt.Sprint(a.Resources.MemoryMB), fmt.Sprint(b.Resources.MemoryMB))
	keys := map[string]bool{}
	for k := range a.Env {
		keys[k] = true
	}
	for k := range b.Env {
		keys[k] = true
	}
	sorted := slices.Sorted(maps.Keys(keys))
	for _, k := range sorted {
		add("env."+k, a.Env[k], b.Env[k])
	}
	return out
}

func diffPackages(a, b []catalog.NodePackage) PackageChanges {
	out := PackageChanges{Added: []string{}, Removed: []string{}, Changed: []string{}}
	av := map[string]string{}
	for _, p := range a {
		av[p.Name] = p.Version
	}
	bv := map[string]string{}
	for _, p := range b {
		bv[p.Name] = p.Version
		switch old, ok := av[p.Name]; {
		case !ok:
			out.Added = append(out.Added, p.Name+"@"+p.Version)
		case old != p.Version:
			out.Changed = append(out.Changed, p.Name+": "+old+" → "+p.Version)
		}
	}
	for _, p := range a {
		if _, ok := bv[p.Name]; !ok {
			out.Removed = append(out.Removed, p.Name+"@"+p.Version)
		}
	}
	sort.Strings(out.Added)
	sort.Strings(out.Removed)
	sort.Strings(out.Changed)
	return out
}

// SnapshotRollbackRequest is the optional body of POST .../rollback.
type SnapshotRollbackRequest struct {
	DrainTimeout   string `json:"drain_timeout"`
	RollbackWindow string `json:"rollback_window"`
}

// rollbackSnapshot deploys the snapshot blue-green (its flows, node
// credentials, settings and node set) and answers 202 with the
// deployment.
func (s *Server) rollbackSnapshot(c *gin.Context) {
	inst, snap, ok := s.snapshot(c)
	if !ok {
		return
	}
	var req SnapshotRollbackRequest
	if c.Request.ContentLength != 0 {
		if !bindJSON(c, &req, 0) {
			return
		}
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
	if window == 0 && req.RollbackWindow != "" {
		window = -1
	}
	var settings deploy.Settings
	if err := json.Unmarshal(snap.Settings, &settings); err != nil {
		settings = currentSettings(inst)
	}
	nodes := slices.Clone(snap.Nodes)
	creds := snap.Credentials
	p := principal(c)
	d, err := s.cfg.Deploy.Start(c.Request.Context(), deploy.Request{Instance: inst.ID, Flows: snap.Flows, DrainTimeout: drain,
		RollbackWindow: window, UserID: p.UserID, Username: p.Username, Nodes: &nodes, Credentials: &creds, Settings: &settings,
		Kind: deploy.KindSnapshot, Note: "roll back to snapshot " + snap.Name})
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.SnapshotRolledBack, "instance", inst.ID, map[string]any{"name": inst.Name, "snapshot": snap.ID,
		"snapshot_name": snap.Name, "deployment": d.ID})
	c.JSON(http.StatusAccepted, gin.H{"deployment": d, "snapshot": snapshotView(snap)})
}
