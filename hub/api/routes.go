package api

import (
	"net/http"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/auth"
)

// Access says who may call a route.
type Access struct {
	// Public routes need no credential (health, login, the console's files).
	Public bool
	// Edge routes take an edge's own credential instead of a user's.
	Edge bool
	// Resource and Action are checked with auth.Authorize for everyone else.
	Resource auth.Resource
	Action   auth.Action
	// Target names the path parameter that identifies the object acted on:
	// "instance" (":id" is an instance id) or "user" (":id" is a user id).
	Target string
}

// Perm is the Access of a route that needs a permission.
func Perm(res auth.Resource, act auth.Action) Access { return Access{Resource: res, Action: act} }

// OnInstance narrows a to the instance named by the route's :id.
func (a Access) OnInstance() Access { a.Target = "instance"; return a }

// OnUser narrows a to the user named by the route's :id.
func (a Access) OnUser() Access { a.Target = "user"; return a }

// Public is the Access of routes anyone may call.
var Public = Access{Public: true}

// EdgeOnly is the Access of routes an enrolled edge calls.
var EdgeOnly = Access{Edge: true}

// RouteInfo is one registered route and who may call it; the route table
// test walks these so no route escapes the access rules.
type RouteInfo struct {
	Method, Path string
	Access       Access
}

// handle registers a route behind the access check it declares. Every
// route of the API is registered through here.
func (s *Server) handle(method, path string, access Access, h ...gin.HandlerFunc) {
	chain := make([]gin.HandlerFunc, 0, len(h)+1)
	switch {
	case access.Public:
	case access.Edge:
		chain = append(chain, s.requireEdge())
	default:
		chain = append(chain, s.requirePermission(access))
	}
	chain = append(chain, h...)
	s.engine.Handle(method, path, chain...)
	s.routeTable = append(s.routeTable, RouteInfo{Method: method, Path: path, Access: access})
}

// Routes lists every route registered through handle, sorted.
func (s *Server) Routes() []RouteInfo {
	out := append([]RouteInfo(nil), s.routeTable...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

const ctxPrincipal = "principal"

// principal returns the authenticated principal of the request.
func principal(c *gin.Context) auth.Principal {
	p, _ := c.Get(ctxPrincipal)
	pr, _ := p.(auth.Principal)
	return pr
}

// requirePermission authenticates the bearer token (401 without a valid
// one) and checks the role's permission (403 with the reason).
func (s *Server) requirePermission(a Access) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.cfg.Users == nil {
			abort(c, &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "authentication is not configured on this hub"})
			return
		}
		p, err := s.cfg.Users.Authenticate(c.Request.Context(), bearer(c))
		if err != nil {
			abort(c, err)
			return
		}
		c.Set(ctxPrincipal, p)
		if !s.rateLimit(c) {
			return
		}
		if a.Target == "self" {
			c.Next() // any authenticated principal, acting on itself
			return
		}
		var t auth.Target
		switch a.Target {
		case "instance":
			t.InstanceID = c.Param("id")
		case "user":
			t.UserID = c.Param("id")
		}
		if err := auth.Authorize(p, a.Resource, a.Action, t); err != nil {
			abort(c, err)
			return
		}
		c.Next()
	}
}

// requireEdge authenticates an enrolled edge's credential.
func (s *Server) requireEdge() gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.cfg.Sync == nil {
			abort(c, &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "edge sync is not configured on this hub"})
			return
		}
		edgeID, err := s.cfg.Sync.AuthenticateEdge(c.Request.Context(), bearer(c))
		if err != nil {
			abort(c, err)
			return
		}
		c.Set(ctxEdgeID, edgeID)
		c.Next()
	}
}

const ctxEdgeID = "edge_id"

// edgeID returns the authenticated edge of an EdgeOnly route.
func edgeID(c *gin.Context) string { return c.GetString(ctxEdgeID) }

func bearer(c *gin.Context) string {
	h := c.GetHeader("Authorization")
	if h == "" {
		if strings.EqualFold(c.GetHeader("Upgrade"), "websocket") {
			return c.Query("access_token")
		}
		return ""
	}
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return h
}
