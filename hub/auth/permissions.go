package auth

import (
	"fmt"
	"strings"

	"github.com/redforge/controltower/hub/catalog"
)

// Resource is what a permission applies to.
type Resource string

// Resources.
const (
	ResourceInstances   Resource = "instances"
	ResourceDeployments Resource = "deployments"
	ResourceUsers       Resource = "users"
	ResourceAudit       Resource = "audit"
	ResourceEdges       Resource = "edges"
	ResourceRegions     Resource = "regions"
	ResourceModels      Resource = "models"
	ResourceTokens      Resource = "tokens"
	ResourceReports     Resource = "reports"
	// ResourceAIDecisions is the AI decision log: create is what an
	// instance posts (POST /api/audit/ai_decision), read is its query.
	ResourceAIDecisions Resource = "ai_decisions"
	// ResourceCheckpoints are workflow checkpoints posted by instances.
	ResourceCheckpoints Resource = "checkpoints"
	// ResourceMetrics is fleet analytics and Prometheus service discovery
	// (read only; a ScopeMetrics token may do nothing else).
	ResourceMetrics Resource = "metrics"
	// ResourceAlerts are alert rules, active alerts and their history.
	ResourceAlerts Resource = "alerts"
	// ResourceNodePolicy is the cluster's allow- and deny-lists of the
	// node packages instances may install (hub/nodes).
	ResourceNodePolicy Resource = "node_policy"
	// ResourceBackups are backups, restores' verification, configuration
	// export and import: ADMIN only (an archive holds every secret sealed
	// and every password hash).
	ResourceBackups Resource = "backups"
	// ResourceLLM is the LLM gateway (/v1/*): create is a call, read the
	// model list. The registry behind it is ResourceModels.
	ResourceLLM Resource = "llm"
	// ResourceDebug is the hub's Go profiles (GET /debug/pprof/*): ADMIN
	// only, as they show the code paths, goroutines and memory of the
	// process (hub/api/debug.go).
	ResourceDebug Resource = "debug"
)

// Action is what is done to a resource.
type Action string

// Actions.
const (
	ActionCreate Action = "create"
	ActionRead   Action = "read"
	ActionUpdate Action = "update"
	ActionDelete Action = "delete"
)

// Resources lists every resource, in matrix order.
var Resources = []Resource{
	ResourceInstances, ResourceDeployments, ResourceEdges, ResourceRegions, ResourceModels,
	ResourceAudit, ResourceAIDecisions, ResourceCheckpoints, ResourceNodePolicy, ResourceReports, ResourceMetrics, ResourceAlerts,
	ResourceUsers, ResourceTokens, ResourceBackups, ResourceLLM, ResourceDebug,
}

// Actions lists every action, in matrix order.
var Actions = []Action{ActionCreate, ActionRead, ActionUpdate, ActionDelete}

// Roles lists every role, strongest first.
var Roles = []catalog.Role{catalog.RoleAdmin, catalog.RoleOperator, catalog.RoleViewer}

// matrix is the permission model, the one place it is written down: per
// resource, the actions each role may take, as "CRUD" letters (create,
// read, update, delete; "-" = no). TestPermissionMatrix asserts every cell.
//
// ADMIN may do everything. OPERATOR deploys, scales, starts and stops and
// monitors: it creates, reads and updates instances, deployments and
// edges but deletes none, reads regions, models, audit and AI decisions,
// creates and reads reports, and has no access to users (except its own
// profile, see Authorize) or API tokens. VIEWER only reads, and not users
// or tokens. Backups and the debug profiles are ADMIN only. Nobody but
// ADMIN (and instance-scoped tokens, see InstanceScopePermissions) writes
// AI decisions or checkpoints.
var matrix = map[Resource][3]string{
	//                      ADMIN   OPERATOR VIEWER
	ResourceInstances:   {"CRUD", "CRU-", "-R--"},
	ResourceDeployments: {"CRUD", "CRU-", "-R--"},
	ResourceEdges:       {"CRUD", "CRU-", "-R--"},
	ResourceRegions:     {"CRUD", "-R--", "-R--"},
	ResourceModels:      {"CRUD", "-R--", "-R--"},
	ResourceAudit:       {"CRUD", "-R--", "-R--"},
	ResourceAIDecisions: {"CRUD", "-R--", "-R--"},
	ResourceCheckpoints: {"CRUD", "-R--", "-R--"},
	ResourceNodePolicy:  {"CRUD", "-R--", "-R--"},
	ResourceReports:     {"CRUD", "CR--", "-R--"},
	ResourceMetrics:     {"CRUD", "-R--", "-R--"},
	ResourceAlerts:      {"CRUD", "CRU-", "-R--"},
	ResourceUsers:       {"CRUD", "----", "----"},
	ResourceTokens:      {"CRUD", "----", "----"},
	ResourceBackups:     {"CRUD", "----", "----"},
	ResourceLLM:         {"CRUD", "-R--", "-R--"},
	ResourceDebug:       {"CRUD", "----", "----"},
}

// InstanceScopePermissions is everything an instance-scoped API token may
// do, whatever its role, and only for its own instance: post AI decisions
// and workflow checkpoints, and call the LLM gateway (as itself).
var InstanceScopePermissions = []Permission{
	{ResourceAIDecisions, ActionCreate},
	{ResourceCheckpoints, ActionCreate},
	{ResourceLLM, ActionCreate},
	{ResourceLLM, ActionRead},
}

// MetricsScopePermissions is everything a ScopeMetrics API token may do,
// whatever its role: read metrics (Prometheus service discovery, runtime
// metrics, fleet analytics), the credential a Prometheus server is given.
var MetricsScopePermissions = []Permission{
	{ResourceMetrics, ActionRead},
}

// Permission is one (resource, action) pair.
type Permission struct {
	Resource Resource `json:"resource"`
	Action   Action   `json:"action"`
}

func (p Permission) String() string { return string(p.Action) + " " + string(p.Resource) }

var actionLetters = map[Action]int{ActionCreate: 0, ActionRead: 1, ActionUpdate: 2, ActionDelete: 3}

// Can reports whether role may take action on resource according to the
// matrix. An unknown role, resource or action may do nothing.
func Can(role catalog.Role, res Resource, act Action) bool {
	i := roleIndex(role)
	row, ok := matrix[res]
	letter, okAct := actionLetters[act]
	if i < 0 || !ok || !okAct {
		return false
	}
	return row[i][letter] != '-'
}

// PermissionsOf lists what role may do, in matrix order (for the console,
// which hides what the user cannot do).
func PermissionsOf(role catalog.Role) []Permission {
	var out []Permission
	for _, r := range Resources {
		for _, a := range Actions {
			if Can(role, r, a) {
				out = append(out, Permission{r, a})
			}
		}
	}
	return out
}

// PermissionsOfPrincipal lists what p may do, in matrix order: its role's
// permissions (PermissionsOf), or for an instance-scoped API token only
// InstanceScopePermissions (on its own instance), whatever its role. A
// principal without a known role may do nothing.
func PermissionsOfPrincipal(p Principal) []Permission {
	if !KnownRole(p.Role) {
		return nil
	}
	switch p.Scope {
	case ScopeInstance:
		return append([]Permission(nil), InstanceScopePermissions...)
	case ScopeMetrics:
		return append([]Permission(nil), MetricsScopePermissions...)
	}
	return PermissionsOf(p.Role)
}

func roleIndex(r catalog.Role) int {
	for i, known := range Roles {
		if r == known {
			return i
		}
	}
	return -1
}

// KnownRole reports whether r is ADMIN, OPERATOR or VIEWER.
func KnownRole(r catalog.Role) bool { return roleIndex(r) >= 0 }

// RoleRank orders roles: ADMIN 3, OPERATOR 2, VIEWER 1, anything else 0.
func RoleRank(r catalog.Role) int {
	if i := roleIndex(r); i >= 0 {
		return len(Roles) - i
	}
	return 0
}

// ParseRole returns the role named s (case-insensitive), or an
// *InvalidError for field "role".
func ParseRole(s string) (catalog.Role, error) {
	r := catalog.Role(strings.ToUpper(strings.TrimSpace(s)))
	if !KnownRole(r) {
		return "", invalid("role", "must be one of ADMIN, OPERATOR, VIEWER")
	}
	return r, nil
}

// Target narrows an authorization check to one object, when the route
// names one.
type Target struct {
	// InstanceID is the instance the request acts on. For an
	// instance-scoped token it must be the token's instance; empty means
	// the handler takes the instance from the principal (p.InstanceID).
	InstanceID string
	// UserID is the user the request acts on (users routes): a session
	// may read and update its own user whatever its role.
	UserID string
}

// Authorize reports whether p may take action on resource (and target):
// nil, or an *ForbiddenError (errors.Is ErrForbidden) with a message safe
// to show. Rules, in order:
//   - an instance-scoped API token may do only InstanceScopePermissions,
//     and only on its own instance;
//   - a session may read and update its own user (the field rules, such
//     as not changing one's own role, are UpdateUser's);
//   - otherwise the role decides (Can).
func Authorize(p Principal, res Resource, act Action, t Target) error {
	if p.Kind == "" || !KnownRole(p.Role) {
		return &ForbiddenError{Role: p.Role, Resource: res, Action: act, Why: "no valid principal"}
	}
	if p.Scope == ScopeInstance {
		return authorizeInstanceScope(p, res, act, t)
	}
	if p.Scope == ScopeMetrics {
		if (Permission{res, act}) == MetricsScopePermissions[0] {
			return nil
		}
		return &ForbiddenError{Role: p.Role, Resource: res, Action: act,
			Why: "this token is scoped to metrics and may only read metrics"}
	}
	if Can(p.Role, res, act) {
		return nil
	}
	if res == ResourceUsers && (act == ActionRead || act == ActionUpdate) &&
		p.Kind == KindSession && t.UserID != "" && t.UserID == p.UserID {
		return nil
	}
	return &ForbiddenError{Role: p.Role, Resource: res, Action: act}
}

func authorizeInstanceScope(p Principal, res Resource, act Action, t Target) error {
	allowed := false
	for _, perm := range InstanceScopePermissions {
		allowed = allowed || perm == Permission{res, act}
	}
	switch {
	case !allowed:
		return &ForbiddenError{Role: p.Role, Resource: res, Action: act,
			Why: fmt.Sprintf("this token is scoped to instance %s and may only post AI decisions and checkpoints and call the LLM gateway", p.InstanceID)}
	case t.InstanceID != "" && t.InstanceID != p.InstanceID:
		return &ForbiddenError{Role: p.Role, Resource: res, Action: act,
			Why: fmt.Sprintf("this token is scoped to instance %s, not %s", p.InstanceID, t.InstanceID)}
	}
	return nil
}
