package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/deploy"
	"github.com/redforge/controltower/hub/nodes"
)

// Node packages per instance. An instance's node set is part of its
// catalog row (a rescheduled, restored or green runtime gets the same
// nodes); installing or removing a package is a blue-green deployment
// whose green runs the new set with the live flows, so a package that
// does not install or load rolls back. Packages come from the npm registry
// the hubs reach, by exact version, or from a tarball uploaded to a hub
// (POST /api/nodes/tarballs) for sites without a registry. The cluster's
// allow- and deny-lists (ADMIN) decide what may be installed.

// NodePackages is this hub's package cache (hub/nodes).
type NodePackages interface {
	Store(r io.Reader) (nodes.Tarball, error)
	Has(sha string) bool
}

func (s *Server) nodeRoutes() {
	if s.cfg.Nodes == nil || s.cfg.Deploy == nil {
		return
	}
	r := func(a auth.Action) Access { return Perm(auth.ResourceInstances, a).OnInstance() }
	s.handle(http.MethodGet, "/api/instances/:id/nodes", r(auth.ActionRead), s.listNodes)
	s.handle(http.MethodPost, "/api/instances/:id/nodes", r(auth.ActionUpdate), s.installNode)
	s.handle(http.MethodDelete, "/api/instances/:id/nodes", r(auth.ActionUpdate), s.removeNode)
	s.handle(http.MethodPost, "/api/nodes/tarballs", Perm(auth.ResourceInstances, auth.ActionUpdate), s.uploadTarball)
	s.handle(http.MethodGet, "/api/nodes/policy", Perm(auth.ResourceNodePolicy, auth.ActionRead), s.getNodePolicy)
	s.handle(http.MethodPut, "/api/nodes/policy", Perm(auth.ResourceNodePolicy, auth.ActionUpdate), s.putNodePolicy)
}

// nodePolicy reads the cluster's policy (none set: everything allowed).
func (s *Server) nodePolicy() (nodes.Policy, error) {
	var p nodes.Policy
	err := s.cfg.Catalog.SettingValue(nodes.PolicySetting, &p)
	if errors.Is(err, catalog.ErrNotFound) {
		return nodes.Policy{Allow: []string{}, Deny: []string{}}, nil
	}
	if p.Allow == nil {
		p.Allow = []string{}
	}
	if p.Deny == nil {
		p.Deny = []string{}
	}
	return p, err
}

func (s *Server) listNodes(c *gin.Context) {
	inst, ok := s.logicalInstance(c)
	if !ok {
		return
	}
	p, err := s.nodePolicy()
	if err != nil {
		abort(c, err)
		return
	}
	set := s.live(inst).Nodes
	if set == nil {
		set = []catalog.NodePackage{}
	}
	c.JSON(http.StatusOK, gin.H{"instance": inst.Name, "nodes": set, "policy": p})
}

// NodeInstallRequest is the body of POST /api/instances/:id/nodes.
type NodeInstallRequest struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Tarball is the sha256 POST /api/nodes/tarballs answered; empty: from
	// the registry.
	Tarball        string `json:"tarball"`
	DrainTimeout   string `json:"drain_timeout"`
	RollbackWindow string `json:"rollback_window"`
}

// installNode adds (or replaces) a package in the instance's node set
// through a blue-green deployment and answers 202 with it.
func (s *Server) installNode(c *gin.Context) {
	inst, ok := s.logicalInstance(c)
	if !ok {
		return
	}
	var req NodeInstallRequest
	if !bindJSON(c, &req, 0) {
		return
	}
	if err := nodes.CheckName(req.Name); err != nil {
		abort(c, err)
		return
	}
	if err := nodes.CheckVersion(req.Version); err != nil {
		abort(c, err)
		return
	}
	policy, err := s.nodePolicy()
	if err != nil {
		abort(c, err)
		return
	}
	if err := policy.Check(req.Name); err != nil {
		abort(c, &Error{Status: http.StatusForbidden, Code: "denied", Field: "name", Message: err.Error()})
		return
	}
	pkg := catalog.NodePackage{Name: req.Name, Version: req.Version, Source: catalog.NodeSourceRegistry}
	if req.Tarball != "" {
		if !s.cfg.Nodes.Has(req.Tarball) {
			abort(c, Invalid("tarball", "no tarball "+req.Tarball+" was uploaded to this hub; POST it to /api/nodes/tarballs first (on this hub)"))
			return
		}
		pkg.Source, pkg.SHA256, pkg.Hub = catalog.NodeSourceUpload, req.Tarball, s.cfg.Fleet.HubID()
	}
	live := s.live(inst)
	set := slices.DeleteFunc(slices.Clone(live.Nodes), func(p catalog.NodePackage) bool { return p.Name == req.Name })
	set = append(set, pkg)
	slices.SortFunc(set, func(a, b catalog.NodePackage) int { return strings.Compare(a.Name, b.Name) })
	s.deployNodes(c, inst, live, set, req.DrainTimeout, req.RollbackWindow, "install "+req.Name+"@"+req.Version, audit.NodesInstalled,
		map[string]any{"name": inst.Name, "package": req.Name, "version": req.Version, "source": pkg.Source, "sha256": pkg.SHA256})
}

// removeNode takes ?name= out of the instance's node set, blue-green.
func (s *Server) removeNode(c *gin.Context) {
	inst, ok := s.logicalInstance(c)
	if !ok {
		return
	}
	name := c.Query("name")
	if err := nodes.CheckName(name); err != nil {
		abort(c, err)
		return
	}
	live := s.live(inst)
	set := slices.DeleteFunc(slices.Clone(live.Nodes), func(p catalog.NodePackage) bool { return p.Name == name })
	if len(set) == len(live.Nodes) {
		abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Field: "name", Message: fmt.Sprintf("%s has no node package %q", inst.Name, name)})
		return
	}
	s.deployNodes(c, inst, live, set, c.Query("drain_timeout"), c.Query("rollback_window"), "remove "+name, audit.NodesRemoved,
		map[string]any{"name": inst.Name, "package": name})
}

// deployNodes starts the blue-green deployment that gives the instance
// the node set set, with the flows it runs now.
func (s *Server) deployNodes(c *gin.Context, inst, live catalog.Instance, set []catalog.NodePackage, drainArg, windowArg, note, action string, details map[string]any) {
	drain, e := parseDuration("drain_timeout", drainArg, deploy.DefaultDrainTimeout, deploy.MaxDrainTimeout)
	if e != nil {
		abort(c, e)
		return
	}
	window, e := parseDuration("rollback_window", windowArg, deploy.DefaultRollbackWindow, deploy.MaxRollbackWindow)
	if e != nil {
		abort(c, e)
		return
	}
	if window == 0 && windowArg != "" {
		window = -1
	}
	flows := json.RawMessage(`[]`)
	if f, err := s.cfg.Catalog.InstanceFlows(live.ID); err == nil {
		flows = f.Doc
	}
	p := principal(c)
	d, err := s.cfg.Deploy.Start(c.Request.Context(), deploy.Request{Instance: inst.ID, Flows: flows, DrainTimeout: drain,
		RollbackWindow: window, UserID: p.UserID, Username: p.Username, Nodes: &set, Kind: deploy.KindNodes, Note: note})
	if err != nil {
		abort(c, err)
		return
	}
	details["deployment"] = d.ID
	s.audit(c, action, "instance", inst.ID, details)
	c.JSON(http.StatusAccepted, gin.H{"deployment": d, "nodes": set})
}

// uploadTarball keeps a package tarball (the request body, as npm pack
// makes it) on this hub and answers its name, version and sha256.
func (s *Server) uploadTarball(c *gin.Context) {
	switch ct := strings.ToLower(strings.TrimSpace(strings.Split(c.GetHeader("Content-Type"), ";")[0])); ct {
	case "application/gzip", "application/x-gzip", "application/octet-stream", "application/x-tar":
	default:
		abort(c, &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Field: "tarball",
			Message: "send the tarball npm pack made as the body, Content-Type application/gzip"})
		return
	}
	t, err := s.cfg.Nodes.Store(c.Request.Body)
	var fe *nodes.FieldError
	if errors.As(err, &fe) {
		abort(c, Invalid(fe.Field, fe.Message))
		return
	}
	if err != nil {
		abort(c, err)
		return
	}
	policy, err := s.nodePolicy()
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.NodesUploaded, "node_package", t.SHA256, t)
	res := gin.H{"name": t.Name, "version": t.Version, "sha256": t.SHA256, "size": t.Size, "hub": s.cfg.Fleet.HubID()}
	if err := policy.Check(t.Name); err != nil {
		res["warning"] = err.Error()
	}
	c.JSON(http.StatusCreated, res)
}

func (s *Server) getNodePolicy(c *gin.Context) {
	p, err := s.nodePolicy()
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

func (s *Server) putNodePolicy(c *gin.Context) {
	var p nodes.Policy
	if !bindJSON(c, &p, 0) {
		return
	}
	if p.Allow == nil {
		p.Allow = []string{}
	}
	if p.Deny == nil {
		p.Deny = []string{}
	}
	if err := p.Validate(); err != nil {
		var fe *nodes.FieldError
		if errors.As(err, &fe) {
			abort(c, Invalid(fe.Field, fe.Message))
			return
		}
		abort(c, err)
		return
	}
	if _, err := s.cfg.Cluster.Apply(c.Request.Context(), catalog.PutSetting(nodes.PolicySetting, p)); err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.NodePolicyChanged, "node_policy", nodes.PolicySetting, p)
	c.JSON(http.StatusOK, p)
}
