package hub_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/redforge/controltower/hub/api"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/internal/hubtest"
)

// routeRule is who may call a route, written out by hand here so the test
// checks the server against the intended policy, not against itself.
type routeRule struct {
	method, path string
	kind         string // "public", "edge", "self", "any" (any principal, scoped tokens too), or "perm"
	res, act     string // for "perm"
}

// routeTable lists every route of the API. TestRouteAccess fails if the
// server has a route this table does not list, or the other way round.
var routeTable = []routeRule{
	{"GET", "/api/health", "public", "", ""},
	{"GET", "/", "public", "", ""}, // the console (hub/api/console.go)
	{"GET", "/assets/*filepath", "public", "", ""},
	{"GET", "/metrics", "public", "", ""},
	{"POST", "/api/auth/login", "public", "", ""},
	{"POST", "/api/auth/refresh", "public", "", ""},
	{"POST", "/api/auth/logout", "self", "", ""},
	{"GET", "/api/auth/me", "self", "", ""},
	{"GET", "/api/users", "perm", "users", "read"},
	{"POST", "/api/users", "perm", "users", "create"},
	{"GET", "/api/users/:id", "perm", "users", "read"},
	{"PATCH", "/api/users/:id", "perm", "users", "update"},
	{"DELETE", "/api/users/:id", "perm", "users", "delete"},
	{"GET", "/api/tokens", "perm", "tokens", "read"},
	{"POST", "/api/tokens", "perm", "tokens", "create"},
	{"DELETE", "/api/tokens/:id", "perm", "tokens", "delete"},
	{"GET", "/api/auth/keys", "perm", "tokens", "read"},
	{"POST", "/api/auth/keys/rotate", "perm", "tokens", "create"},
	{"GET", "/api/audit", "perm", "audit", "read"},
	{"GET", "/api/audit/verify", "perm", "audit", "read"},
	{"GET", "/api/audit/export", "perm", "audit", "read"},
	{"POST", "/api/audit/ai_decision", "perm", "ai_decisions", "create"},
	{"GET", "/api/audit/ai_decisions", "perm", "ai_decisions", "read"},
	{"POST", "/api/reports/generate", "perm", "reports", "create"},
	{"POST", "/api/instances", "perm", "instances", "create"},
	{"GET", "/api/instances", "perm", "instances", "read"},
	{"GET", "/api/instances/:id", "perm", "instances", "read"},
	{"PATCH", "/api/instances/:id", "perm", "instances", "update"},
	{"DELETE", "/api/instances/:id", "perm", "instances", "delete"},
	{"POST", "/api/instances/:id/start", "perm", "instances", "update"},
	{"POST", "/api/instances/:id/stop", "perm", "instances", "update"},
	{"POST", "/api/instances/:id/restart", "perm", "instances", "update"},
	{"POST", "/api/instances/:id/scale", "perm", "instances", "update"},
	{"GET", "/api/hubs", "perm", "regions", "read"},
	{"POST", "/api/hubs/:id/drain", "perm", "regions", "update"},
	{"POST", "/api/hubs/:id/undrain", "perm", "regions", "update"},
	{"GET", "/api/instances/:id/logs", "perm", "instances", "read"},
	{"GET", "/api/instances/:id/flows", "perm", "instances", "read"},
	{"PUT", "/api/instances/:id/flows", "perm", "instances", "update"},
	{"GET", "/api/instances/:id/metrics", "perm", "instances", "read"},
	{"GET", "/api/instances/:id/history", "perm", "instances", "read"},
	{"GET", "/api/instances/:id/flows/versions", "perm", "instances", "read"},
	{"GET", "/api/instances/:id/flows/versions/:version", "perm", "instances", "read"},
	{"GET", "/api/ws", "perm", "instances", "read"},
	{"POST", "/api/edges/tokens", "perm", "edges", "create"},
	{"POST", "/api/edges/enroll", "public", "", ""},
	{"GET", "/api/edges", "perm", "edges", "read"},
	{"GET", "/api/edges/:id", "perm", "edges", "read"},
	{"GET", "/api/edges/:id/config", "perm", "edges", "read"},
	{"PUT", "/api/edges/:id/config", "perm", "edges", "update"},
	{"POST", "/api/sync/batches", "edge", "", ""},
	{"POST", "/api/sync/vectors", "edge", "", ""},
	{"GET", "/api/sync/config/:edge_id", "edge", "", ""},
	{"POST", "/api/sync/heartbeat", "edge", "", ""},
	// Hub-to-hub calls check the cluster secret themselves (hub/cluster
	// TestHTTPForwarding, cmd/hub TestClusterSecretRefused): "public" here.
	{"POST", "/api/cluster/apply", "public", "", ""},
	{"POST", "/api/cluster/read-index", "public", "", ""},
	{"POST", "/api/cluster/join", "public", "", ""},
	{"POST", "/api/cluster/remove", "public", "", ""},
	{"GET", "/api/cluster", "perm", "regions", "read"},
	{"DELETE", "/api/cluster/servers/:id", "perm", "regions", "delete"},
	{"GET", "/api/regions", "perm", "regions", "read"},
	{"GET", "/api/route", "public", "", ""},
	{"POST", "/api/deployments", "perm", "deployments", "create"},
	{"GET", "/api/deployments", "perm", "deployments", "read"},
	{"GET", "/api/deployments/:id", "perm", "deployments", "read"},
	{"POST", "/api/deployments/:id/rollback", "perm", "deployments", "update"},
	{"GET", "/api/deployments/:id/logs", "perm", "instances", "read"},
	{"POST", "/api/checkpoints", "perm", "checkpoints", "create"},
	{"GET", "/api/checkpoints", "perm", "checkpoints", "read"},
	{"GET", "/api/metrics/prices", "any", "", ""},
	{"GET", "/api/metrics/dashboards", "perm", "metrics", "read"},
	{"GET", "/api/metrics/fleet", "perm", "metrics", "read"},
	{"GET", "/api/metrics/instances/:id", "perm", "instances", "read"},
	{"GET", "/api/prometheus/targets", "perm", "metrics", "read"},
	{"GET", "/api/prometheus/runtimes/:alloc/metrics", "perm", "metrics", "read"},
	{"GET", "/api/alerts/rules", "perm", "alerts", "read"},
	{"POST", "/api/alerts/rules", "perm", "alerts", "create"},
	{"GET", "/api/alerts/rules/:id", "perm", "alerts", "read"},
	{"PATCH", "/api/alerts/rules/:id", "perm", "alerts", "update"},
	{"DELETE", "/api/alerts/rules/:id", "perm", "alerts", "delete"},
	{"GET", "/api/alerts/metrics", "perm", "alerts", "read"},
	{"GET", "/api/alerts", "perm", "alerts", "read"},
	{"GET", "/api/alerts/history", "perm", "alerts", "read"},
	// The Node-RED editor through the hub: the handler authenticates (an
	// editor session cookie or an Authorization header; hub
	// TestEditorThroughHub), and a runtime's editor deploy report carries
	// its instance token and a hub-signed editor token.
	{"POST", "/api/instances/:id/editor", "perm", "instances", "read"},
	{"POST", "/api/instances/:id/editor/deploys", "public", "", ""},
	{"GET", "/editor/:name/*path", "public", "", ""},
	{"HEAD", "/editor/:name/*path", "public", "", ""},
	{"POST", "/editor/:name/*path", "public", "", ""},
	{"PUT", "/editor/:name/*path", "public", "", ""},
	{"DELETE", "/editor/:name/*path", "public", "", ""},
	// Node packages and snapshots of instances.
	{"GET", "/api/instances/:id/nodes", "perm", "instances", "read"},
	{"POST", "/api/instances/:id/nodes", "perm", "instances", "update"},
	{"DELETE", "/api/instances/:id/nodes", "perm", "instances", "update"},
	{"POST", "/api/nodes/tarballs", "perm", "instances", "update"},
	{"GET", "/api/nodes/policy", "perm", "node_policy", "read"},
	{"PUT", "/api/nodes/policy", "perm", "node_policy", "update"},
	{"GET", "/api/instances/:id/snapshots", "perm", "instances", "read"},
	{"POST", "/api/instances/:id/snapshots", "perm", "instances", "update"},
	{"GET", "/api/instances/:id/snapshots/:sid", "perm", "instances", "read"},
	{"DELETE", "/api/instances/:id/snapshots/:sid", "perm", "instances", "update"},
	{"GET", "/api/instances/:id/snapshots/:sid/compare", "perm", "instances", "read"},
	{"POST", "/api/instances/:id/snapshots/:sid/rollback", "perm", "instances", "update"},
	{"POST", "/api/backups", "perm", "backups", "create"},
	{"GET", "/api/backups", "perm", "backups", "read"},
	{"POST", "/api/backups/:name/verify", "perm", "backups", "update"},
	{"POST", "/api/backups/prune", "perm", "backups", "delete"},
	{"GET", "/api/config/export", "perm", "backups", "read"},
	{"POST", "/api/config/import", "perm", "backups", "create"},
	{"GET", "/api/flows/git", "perm", "backups", "read"},
	{"POST", "/api/flows/restore", "perm", "deployments", "create"},
	{"GET", "/api/models", "perm", "models", "read"},
	{"POST", "/api/models", "perm", "models", "create"},
	{"GET", "/api/models/:id", "perm", "models", "read"},
	{"PATCH", "/api/models/:id", "perm", "models", "update"},
	{"DELETE", "/api/models/:id", "perm", "models", "delete"},
	{"POST", "/api/models/:id/rollback", "perm", "models", "update"},
	{"GET", "/api/models/providers", "perm", "models", "read"},
	{"PUT", "/api/models/providers/:id", "perm", "models", "update"},
	{"DELETE", "/api/models/providers/:id", "perm", "models", "delete"},
	{"GET", "/api/models/budgets", "perm", "models", "read"},
	{"PUT", "/api/models/budgets/:id", "perm", "models", "update"},
	{"DELETE", "/api/models/budgets/:id", "perm", "models", "delete"},
	{"GET", "/api/models/usage", "perm", "models", "read"},
	{"GET", "/api/models/benchmarks", "perm", "models", "read"},
	{"POST", "/api/models/benchmarks", "perm", "models", "create"},
	{"GET", "/api/models/benchmarks/:id", "perm", "models", "read"},
	{"GET", "/api/routes/llm", "perm", "models", "read"},
	{"GET", "/api/routes/llm/:name", "perm", "models", "read"},
	{"PUT", "/api/routes/llm/:name", "perm", "models", "update"},
	{"DELETE", "/api/routes/llm/:name", "perm", "models", "delete"},
	{"POST", "/v1/chat/completions", "perm", "llm", "create"},
	{"POST", "/v1/embeddings", "perm", "llm", "create"},
	{"GET", "/v1/models", "perm", "llm", "read"},
	{"GET", "/i/:name/*path", "public", "", ""},
	{"HEAD", "/i/:name/*path", "public", "", ""},
	{"POST", "/i/:name/*path", "public", "", ""},
	{"PUT", "/i/:name/*path", "public", "", ""},
	{"PATCH", "/i/:name/*path", "public", "", ""},
	{"DELETE", "/i/:name/*path", "public", "", ""},
	{"OPTIONS", "/i/:name/*path", "public", "", ""},
	// Go profiles of the hub (hub/api/debug.go); /debug/pprof/ (the
	// index) is served by the same route.
	{"GET", "/debug/pprof/*name", "perm", "debug", "read"},
}

// allowed is the permission model of the governance issue: ADMIN does
// everything; OPERATOR creates, reads and updates the fleet (no deletes, no
// users or tokens) and reads the rest; VIEWER only reads, and not users or
// tokens. Backups and the Go profiles (debug) are ADMIN only.
func allowed(role, res, act string) bool {
	switch role {
	case "ADMIN":
		return true
	case "OPERATOR":
		switch res {
		case "users", "tokens", "backups", "debug":
			return false
		case "instances", "deployments", "edges", "alerts":
			return act != "delete"
		case "reports":
			return act == "create" || act == "read"
		}
		return act == "read"
	case "VIEWER":
		return act == "read" && res != "users" && res != "tokens" && res != "backups" && res != "debug"
	case "instance-token":
		return act == "create" && (res == "ai_decisions" || res == "checkpoints" || res == "llm") || act == "read" && res == "llm"
	case "metrics-token":
		return act == "read" && res == "metrics"
	}
	return false
}

func TestRouteAccess(t *testing.T) {
	// The walk makes one request per route and principal, more than a
	// VIEWER's per-minute limit now that there are over 100 routes: the
	// limit is raised before the hubs start and restored after they close.
	limit := api.RoleRequestsPerMinute[catalog.RoleViewer]
	api.RoleRequestsPerMinute[catalog.RoleViewer] = 10 * len(routeTable)
	t.Cleanup(func() { api.RoleRequestsPerMinute[catalog.RoleViewer] = limit })
	for _, backend := range hubtest.Backends {
		t.Run(backend, func(t *testing.T) { testRouteAccess(t, hubtest.Start(t, hubtest.WithBackend(t, backend))) })
	}
}

func testRouteAccess(t *testing.T, h *hubtest.Hub) {
	// Every route the server has is in the table, and nothing more.
	var have, want []string
	for _, r := range h.API.Routes() {
		have = append(have, r.Method+" "+r.Path)
	}
	for _, r := range routeTable {
		want = append(want, r.method+" "+r.path)
	}
	sort.Strings(have)
	sort.Strings(want)
	if strings.Join(have, "\n") != strings.Join(want, "\n") {
		t.Fatalf("route table out of date:\nserver has:\n%s\n\ntable lists:\n%s", strings.Join(have, "\n"), strings.Join(want, "\n"))
	}

	var inst struct {
		ID string `json:"id"`
	}
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "rbac", "desired_state": "stopped"}, 201, &inst)
	var tok struct {
		Token string `json:"token"`
	}
	h.JSON(t, "POST", "/api/tokens", map[string]any{"name": "rbac-inst", "role": "OPERATOR", "scope": "instance", "instance_id": inst.ID}, 201, &tok)
	var mtok struct {
		Token string `json:"token"`
	}
	h.JSON(t, "POST", "/api/tokens", map[string]any{"name": "prometheus", "role": "VIEWER", "scope": "metrics"}, 201, &mtok)
	tokens := map[string]string{
		"ADMIN":          h.AdminToken,
		"OPERATOR":       h.CreateUser(t, "oper", "OPERATOR"),
		"VIEWER":         h.CreateUser(t, "viewer", "VIEWER"),
		"instance-token": tok.Token,
		"metrics-token":  mtok.Token,
	}
	// /api/auth/me lists what each principal may really do: an instance
	// token only its two permissions, not its role's.
	for who, token := range tokens {
		var me struct {
			Permissions []struct{ Resource, Action string } `json:"permissions"`
		}
		code, body := h.Do(t, "GET", "/api/auth/me", token, nil)
		if code != 200 || json.Unmarshal(body, &me) != nil {
			t.Fatalf("GET /api/auth/me as %s = %d %s", who, code, body)
		}
		for _, p := range me.Permissions {
			if !allowed(who, p.Resource, p.Action) {
				t.Errorf("/api/auth/me as %s lists %s %s, which it may not do", who, p.Action, p.Resource)
			}
		}
		if who == "instance-token" && len(me.Permissions) != 4 {
			t.Errorf("/api/auth/me as the instance token lists %d permissions, want 4: %s", len(me.Permissions), body)
		}
		if who == "metrics-token" && len(me.Permissions) != 1 {
			t.Errorf("/api/auth/me as the metrics token lists %d permissions, want 1: %s", len(me.Permissions), body)
		}
	}
	for _, r := range routeTable {
		path := strings.NewReplacer(":id", "does-not-exist", ":edge_id", "does-not-exist").Replace(r.path)
		if code, body := h.Do(t, r.method, path, "", nil); r.kind != "public" && code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token = %d %s, want 401", r.method, r.path, code, body)
		}
		for who, token := range tokens {
			if r.path == "/api/auth/logout" {
				continue // checked below with sessions of their own
			}
			code, body := h.Do(t, r.method, path, token, nil)
			var ok bool
			switch r.kind {
			case "public":
				continue
			case "edge":
				if code != http.StatusUnauthorized {
					t.Errorf("%s %s with %s's token = %d, want 401: a user's token is not an edge credential", r.method, r.path, who, code)
				}
				continue
			case "self":
				ok = (who != "instance-token" && who != "metrics-token") || r.path == "/api/auth/me"
			case "any":
				ok = true
			default:
				ok = allowed(who, r.res, r.act)
			}
			switch {
			case ok && (code == http.StatusUnauthorized || code == http.StatusForbidden):
				t.Errorf("%s %s as %s = %d %s, want it allowed", r.method, r.path, who, code, body)
			case !ok && code != http.StatusForbidden:
				t.Errorf("%s %s as %s = %d %s, want 403", r.method, r.path, who, code, body)
			case !ok && !strings.Contains(string(body), "forbidden"):
				t.Errorf("%s %s as %s: 403 without a clear message: %s", r.method, r.path, who, body)
			}
		}
	}
	// Logout revokes the session: the token stops working everywhere.
	viewer := h.Login(t, "viewer", "password-of-viewer")
	if code, body := h.Do(t, "POST", "/api/auth/logout", viewer, nil); code != 200 {
		t.Fatalf("logout = %d %s", code, body)
	}
	if code, _ := h.Do(t, "GET", "/api/instances", viewer, nil); code != http.StatusUnauthorized {
		t.Fatalf("token after logout = %d, want 401", code)
	}
}

// TestLoginRateLimit: the eleventh login attempt from one address within a
// minute is refused with 429, even with the right password. (The attempts
// name different accounts, so the per-account delay, TestSecurityLoginLimits,
// does not come first.)
func TestLoginRateLimit(t *testing.T) {
	h := hubtest.Start(t) // Start itself logs in once
	for i := 0; i < 9; i++ {
		if code, body := h.Do(t, "POST", "/api/auth/login", "", map[string]string{"username": fmt.Sprint("someone-", i), "password": fmt.Sprint("wrong-", i)}); code != 401 {
			t.Fatalf("attempt %d = %d %s, want 401", i+2, code, body)
		}
	}
	code, body := h.Do(t, "POST", "/api/auth/login", "", map[string]string{"username": "admin", "password": hubtest.AdminPassword})
	if code != http.StatusTooManyRequests {
		t.Fatalf("11th attempt = %d %s, want 429", code, body)
	}
	var recs struct {
		Records []struct {
			Action string `json:"action"`
		} `json:"records"`
	}
	h.JSON(t, "GET", "/api/audit?action=LOGIN_FAILED&limit=100", nil, 200, &recs)
	if len(recs.Records) != 9 {
		t.Fatalf("audit has %d LOGIN_FAILED records, want 9", len(recs.Records))
	}
	injections := []string{"?limit=-1", "?limit=abc", "?offset=-5", "?start_date=yesterday", "?end_date=%27%3B--",
		"?action=drop%20table", "?user_id=%27%20OR%201%3D1--", "?resource_type=x%22%7D%7B", "?instance_id=%27%20OR%20%271%27%3D%271",
		"?model=%00", "?region=%27--", "?status=%3Cscript%3E"}
	for _, bad := range injections {
		for _, path := range []string{"/api/audit", "/api/audit/ai_decisions", "/api/instances"} {
			code, body := h.Do(t, "GET", path+bad, h.AdminToken, nil)
			if code >= 500 {
				t.Errorf("GET %s%s = %d %s", path, bad, code, body)
			}
			if code == 200 && path != "/api/audit" && !strings.Contains(string(body), `"count":0`) {
				t.Errorf("GET %s%s returned rows: %.200s", path, bad, body)
			}
		}
	}
	for _, bad := range []string{"?limit=-1", "?limit=abc", "?start_date=yesterday", "?action=drop%20table", "?user_id=%27%20OR%201%3D1--"} {
		code, body := h.Do(t, "GET", "/api/audit"+bad, h.AdminToken, nil)
		if code >= 500 {
			t.Errorf("GET /api/audit%s = %d %s", bad, code, body)
		}
		if code == 200 {
			var r struct {
				Records []json.RawMessage `json:"records"`
			}
			_ = json.Unmarshal(body, &r)
			if len(r.Records) != 0 {
				t.Errorf("GET /api/audit%s returned records", bad)
			}
		}
	}
}

// TestRoleRequestLimit: a VIEWER's requests beyond its role's limit in a
// minute are refused with 429 naming the limit; another user is not held
// back by it.
func TestRoleRequestLimit(t *testing.T) {
	h := hubtest.Start(t)
	viewer := h.CreateUser(t, "viewer", "VIEWER")
	other := h.CreateUser(t, "other", "VIEWER")
	limit := api.RoleRequestsPerMinute[catalog.RoleViewer]
	for i := 0; i < limit; i++ {
		if code, body := h.Do(t, "GET", "/api/instances", viewer, nil); code != 200 {
			t.Fatalf("request %d of %d = %d %s", i+1, limit, code, body)
		}
	}
	code, body := h.Do(t, "GET", "/api/instances", viewer, nil)
	if code != http.StatusTooManyRequests || !strings.Contains(string(body), "rate_limited") {
		t.Fatalf("request %d = %d %s, want 429 rate_limited", limit+1, code, body)
	}
	if code, body := h.Do(t, "GET", "/api/instances", other, nil); code != 200 {
		t.Fatalf("another VIEWER = %d %s, want 200", code, body)
	}
}
