package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/deploy"
	"github.com/redforge/controltower/hub/instances"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/nodered"
)

// The Node-RED editor through the hub. /editor/{name}/ on any hub serves
// the editor of the instance's live row, behind hub authentication: the
// editor session cookie POST /api/instances/:id/editor sets (what the
// console's "Open editor" uses) or an Authorization header (a session or
// an API token). The hub signs, per request, a short-lived editor token
// for the user and the row, which Node-RED's adminAuth.tokens checks
// (hub/fleet settings.js): ADMIN and OPERATOR edit ("*"), VIEWER reads
// ("read"), and Node-RED's own audit log names the hub user. One editor
// session edits one runtime (a sticky cookie names the replica); a deploy
// there is reported by the runtime plugin (POST
// /api/instances/:id/editor/deploys), recorded as the instance's next
// flows version and written as the row's flows, which the hubs then
// deploy to the other replicas.

// EditorProxy serves an instance's Node-RED editor (hub/proxy).
// EditorSessions are the editor's own credentials (hub/auth.Service): the
// session cookie of /editor/{name}/ and the token a runtime's editor
// deploy report carries.
type EditorSessions interface {
	IssueEditorSession(p auth.Principal, instanceID string) (string, time.Time, error)
	AuthenticateEditorSession(raw, instanceID string) (auth.Principal, error)
	SignEditorToken(c auth.EditorClaims) (string, error)
	VerifyEditorToken(tok string) (auth.EditorClaims, error)
}

type EditorProxy interface {
	EditorTarget(name, sticky string) (live catalog.Instance, a catalog.Allocation, ok bool, err error)
	ServeEditor(w http.ResponseWriter, r *http.Request, target catalog.Allocation, rest, token string)
}

// Editor cookies, scoped to one instance's /editor/{name}/.
const (
	EditorSessionCookie = "redforge_editor"
	EditorReplicaCookie = "redforge_editor_replica"
)

// editorMethods are the methods /editor/:name/*path forwards.
var editorMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete}

// EditorDeployRefused is what a flows change gets while the instance's
// live runtime is being replaced by a deployment.
const EditorDeployRefused = "This runtime is being replaced by a deployment in progress on the hub, so the deploy was refused and nothing changed. " +
	"Reload the editor once the deployment is over: it then opens the new runtime."

func (s *Server) editorRoutes() {
	if s.cfg.Proxy == nil || s.cfg.Users == nil {
		return
	}
	s.handle(http.MethodPost, "/api/instances/:id/editor", Perm(auth.ResourceInstances, auth.ActionRead).OnInstance(), s.openEditor)
	// A runtime's report: the handler checks the instance token and the
	// editor token it carries.
	s.handle(http.MethodPost, "/api/instances/:id/editor/deploys", Public, s.editorDeployed)
	for _, m := range editorMethods {
		// Hub authentication is checked by the handler: a cookie or an
		// Authorization header.
		s.handle(m, "/editor/:name/*path", Public, s.serveEditor)
	}
}

// editorPath is where an instance's editor is served.
func editorPath(name string) string { return "/editor/" + name + "/" }

// openEditor sets the editor session cookie for the instance and answers
// {"url","expires_at","permission"}.
func (s *Server) openEditor(c *gin.Context) {
	inst, ok := s.logicalInstance(c)
	if !ok {
		return
	}
	p := principal(c)
	perm := auth.EditorPermission(p, inst.ID)
	if perm == "" {
		abort(c, &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "forbidden: this credential may not open the instance's editor"})
		return
	}
	tok, exp, err := s.cfg.Users.IssueEditorSession(p, inst.ID)
	if err != nil {
		abort(c, err)
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: EditorSessionCookie, Value: tok, Path: editorPath(inst.Name),
		Expires: exp, MaxAge: int(time.Until(exp).Seconds()), HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: c.Request.TLS != nil})
	c.JSON(http.StatusOK, gin.H{"url": editorPath(inst.Name), "expires_at": exp, "permission": perm})
}

// editorPrincipal authenticates an editor request: its Authorization
// header when it has one, else the editor session cookie.
func (s *Server) editorPrincipal(c *gin.Context, instanceID string) (auth.Principal, error) {
	if b := bearer(c); b != "" {
		return s.cfg.Users.Authenticate(c.Request.Context(), b)
	}
	ck, err := c.Request.Cookie(EditorSessionCookie)
	if err != nil {
		return auth.Principal{}, &auth.AuthError{Reason: auth.ReasonMissing, Detail: "no editor session"}
	}
	return s.cfg.Users.AuthenticateEditorSession(ck.Value, instanceID)
}

// serveEditor proxies /editor/:name/*path to the instance's editor.
func (s *Server) serveEditor(c *gin.Context) {
	name := c.Param("name")
	inst, err := s.cfg.Catalog.InstanceByName(name)
	if err != nil || instances.IsColor(inst) {
		abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no instance %q", name)})
		return
	}
	p, err := s.editorPrincipal(c, inst.ID)
	if err != nil {
		s.editorSignIn(c, inst, err)
		return
	}
	c.Set(ctxPrincipal, p)
	perm := auth.EditorPermission(p, inst.ID)
	if perm == "" {
		abort(c, &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "forbidden: this credential may not open the instance's editor"})
		return
	}
	if changesFlows(c.Request, c.Param("path")) && s.beingReplaced(inst.ID) {
		c.Data(http.StatusLocked, "text/plain; charset=utf-8", []byte(EditorDeployRefused))
		c.Abort()
		return
	}
	sticky := ""
	if ck, err := c.Request.Cookie(EditorReplicaCookie); err == nil {
		sticky = ck.Value
	}
	live, target, ok, err := s.cfg.Proxy.EditorTarget(inst.Name, sticky)
	if err != nil || !ok {
		abort(c, &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: fmt.Sprintf("instance %q has no running replica to edit", name)})
		return
	}
	if target.ID != sticky {
		http.SetCookie(c.Writer, &http.Cookie{Name: EditorReplicaCookie, Value: target.ID, Path: editorPath(inst.Name),
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.Request.TLS != nil})
	}
	tok, err := s.cfg.Users.SignEditorToken(auth.EditorClaims{User: p.Username, Permission: perm, Row: live.ID, UserID: p.UserID})
	if err != nil {
		abort(c, err)
		return
	}
	s.cfg.Proxy.ServeEditor(c.Writer, c.Request, target, c.Param("path"), tok)
}

// editorSignIn answers an editor request without a hub session: a page
// saying how to open the editor for a browser, the API's 401 otherwise.
func (s *Server) editorSignIn(c *gin.Context, inst catalog.Instance, err error) {
	if c.Request.Method == http.MethodGet && strings.Contains(c.GetHeader("Accept"), "text/html") {
		c.Header("Cache-Control", "no-store")
		c.Data(http.StatusUnauthorized, "text/html; charset=utf-8", []byte(`<!doctype html><meta charset="utf-8"><title>Sign in</title>`+
			`<p>The editor of this instance opens from the RedForge console: sign in there and use <b>Open editor</b> on the instance's page.</p>`+
			`<p><a href="/">Open the console</a></p>`))
		c.Abort()
		return
	}
	abort(c, err)
}

// changesFlows reports whether an editor request changes the flows
// (a deploy, or one flow's update or removal).
func changesFlows(r *http.Request, rest string) bool {
	rest = "/" + strings.Trim(strings.ToLower(rest), "/")
	return (r.Method == http.MethodPost && rest == "/flows") ||
		(r.Method != http.MethodGet && r.Method != http.MethodHead && (rest == "/flow" || strings.HasPrefix(rest, "/flow/")))
}

// beingReplaced reports whether a deployment of the logical instance is
// under way and has not switched to green yet: the live runtime is the
// blue one it replaces.
func (s *Server) beingReplaced(instanceID string) bool {
	if s.cfg.Deploy == nil {
		return false
	}
	ds, err := s.cfg.Deploy.List(instanceID)
	if err != nil {
		return false
	}
	for _, d := range ds {
		if d.Status != catalog.DeploymentPending && d.Status != catalog.DeploymentRunning {
			continue
		}
		switch d.Phase {
		case "", catalog.PhaseDrain, catalog.PhaseDeploy, catalog.PhaseVerify, catalog.PhaseResume:
			return true
		}
	}
	return false
}

// EditorDeployReport is what the runtime plugin posts after an editor
// deploy (packaging/nodered/runtime/lib/deploys.js).
type EditorDeployReport struct {
	Allocation  string                    `json:"allocation"`
	Rev         string                    `json:"rev"`
	Type        string                    `json:"type"`
	EditorToken string                    `json:"editor_token"`
	Credentials instances.FlowCredentials `json:"credentials"`
}

// editorDeployed records an editor deploy a runtime reports. The runtime
// authenticates with its instance's token (REDFORGE_TOKEN); the editor
// token the deploy carried, which the hub signed, names who deployed. The
// hub reads the flows from that runtime itself, turns them back into the
// row's document (deploy.Unrender), seals the credentials, records the
// next flows version and the FLOWS_DEPLOYED audit entry by that user, and
// writes the row's flows (the other replicas then get them; this one
// already runs them).
func (s *Server) editorDeployed(c *gin.Context) {
	ctx := c.Request.Context()
	row, err := s.cfg.Catalog.Instance(c.Param("id"))
	if err != nil {
		abort(c, err)
		return
	}
	logical, err := s.cfg.Rows.Logical(row)
	if err != nil {
		abort(c, err)
		return
	}
	p, err := s.cfg.Users.Authenticate(ctx, bearer(c))
	if err != nil {
		abort(c, err)
		return
	}
	if p.Scope != auth.ScopeInstance || p.InstanceID != logical.ID {
		abort(c, &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "forbidden: only the instance's own runtime token reports its editor deploys"})
		return
	}
	var rep EditorDeployReport
	if !bindJSON(c, &rep, MaxFlowsBytes) {
		return
	}
	claims, err := s.cfg.Users.VerifyEditorToken(rep.EditorToken)
	if errors.Is(err, auth.ErrEditorToken) && claims.User != "" && time.Since(time.Unix(claims.Expires, 0)) < auth.EditorTokenTTL {
		err = nil // valid when the deploy was made, a moment ago
	}
	switch {
	case err != nil:
		abort(c, &Error{Status: http.StatusForbidden, Code: "forbidden", Field: "editor_token", Message: "forbidden: the editor token is not one the hub signed: " + err.Error()})
		return
	case claims.Row != row.ID || claims.Permission != auth.EditorPermAll:
		abort(c, &Error{Status: http.StatusForbidden, Code: "forbidden", Field: "editor_token", Message: "forbidden: the editor token is for another runtime or may not deploy"})
		return
	}
	if live := s.live(logical); live.ID != row.ID {
		abort(c, &Error{Status: http.StatusConflict, Code: "conflict", Message: "runtime " + row.Name + " no longer serves " + logical.Name + "; its deploy is not recorded"})
		return
	}
	a, ok := s.allocation(row.ID, rep.Allocation)
	if !ok {
		abort(c, Invalid("allocation", "allocation "+rep.Allocation+" is not a replica of "+row.Name))
		return
	}
	res, err := s.recordEditorDeploy(ctx, logical, row, a, rep, claims, c.ClientIP())
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}

func (s *Server) allocation(rowID, id string) (catalog.Allocation, bool) {
	for _, a := range s.cfg.Catalog.InstanceAllocations(rowID) {
		if a.ID == id {
			return a, true
		}
	}
	return catalog.Allocation{}, false
}

// recordEditorDeploy reads what the runtime of a runs and records it.
func (s *Server) recordEditorDeploy(ctx context.Context, logical, row catalog.Instance, a catalog.Allocation,
	rep EditorDeployReport, claims auth.EditorClaims, ip string) (gin.H, error) {
	cl, err := s.cfg.Fleet.Client(ctx, a)
	if err != nil {
		return nil, &Error{Status: http.StatusConflict, Code: "not_running", Message: err.Error()}
	}
	running, err := cl.GetFlows(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the flows of %s replica %d: %w", row.Name, a.Replica, err)
	}
	creds, err := s.cfg.Rows.RuntimeCredentials(ctx, row)
	if err != nil {
		return nil, err
	}
	cur, curErr := s.cfg.Catalog.InstanceFlows(row.ID)
	addr := ""
	if s.cfg.RuntimeBrokerAddr != nil {
		addr = s.cfg.RuntimeBrokerAddr()
	}
	nodes, err := deploy.Unrender(cur.Doc, row, creds, addr, running.Flows)
	if err != nil {
		return nil, err
	}
	doc, err := json.Marshal(nodes)
	if err != nil {
		return nil, err
	}
	if _, err := nodered.ValidateFlows(doc); err != nil {
		return nil, err
	}
	sealed, err := s.cfg.Rows.SealFlowCredentials(logical.ID, rep.Credentials)
	if err != nil {
		return nil, err
	}
	sha := catalog.FlowsSHA(doc)
	details := map[string]any{"name": logical.Name, "row": row.Name, "rev": sha, "nodes": len(nodes), "type": rep.Type,
		"source": "editor", "replica": a.Replica, "hub": a.Hub, "runtime_rev": running.Rev}
	var version int64
	if curErr != nil || cur.SHA != sha || cur.Credentials != sealed {
		v := store.FlowsVersion{InstanceID: logical.ID, Flows: doc, Source: store.FlowsSourcePut, UserID: claims.UserID, Username: claims.User}
		if err := s.cfg.Store.AppendFlowsVersion(ctx, &v); err != nil {
			s.log.Error("record flows version", "instance", logical.ID, logKeyError, err)
		}
		version = v.Version
		if s.cfg.Fleet.HubID() == a.Hub {
			s.cfg.Fleet.MarkFlows(a.ID, sha) // it runs them already
		}
		var opts []catalog.PutOption
		if curErr == nil {
			opts = append(opts, catalog.IfIndex(cur.ModifyIndex))
		}
		_, err := s.cfg.Cluster.Apply(ctx, catalog.PutFlows(catalog.Flows{InstanceID: row.ID, Doc: doc, SHA: sha,
			Version: version, By: claims.User, At: time.Now().UTC(), Credentials: sealed}, opts...))
		if errors.Is(err, catalog.ErrConflict) {
			return nil, &Error{Status: http.StatusConflict, Code: "conflict", Message: "the instance's flows changed meanwhile; deploy again from the editor"}
		}
		if err != nil {
			return nil, err
		}
		if _, err := s.updateInstance(ctx, row.ID, func(i *catalog.Instance) *Error { i.FlowsVersion = sha[:12]; return nil }); err != nil {
			s.log.Warn("record flows version", "instance", row.ID, logKeyError, err)
		}
		if version > 0 {
			details["flows_version"] = version
		}
	} else {
		details["unchanged"] = true
	}
	if s.cfg.Audit != nil {
		e := audit.Entry{UserID: claims.UserID, Username: claims.User, Action: audit.FlowsDeployed,
			ResourceType: "instance", ResourceID: row.ID, Details: details, IP: ip, UserAgent: "node-red editor"}
		if err := s.cfg.Audit.Record(context.WithoutCancel(ctx), e); err != nil {
			s.log.Error("audit record failed", "action", audit.FlowsDeployed, logKeyError, err)
		}
	}
	res := gin.H{"rev": sha, "nodes": len(nodes)}
	if version > 0 {
		res["flows_version"] = version
	}
	return res, nil
}
