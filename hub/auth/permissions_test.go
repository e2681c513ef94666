package auth

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/redforge/controltower/hub/catalog"
)

// wantMatrix is the permission model as the governance issue states it,
// written out independently of the table in permissions.go: every cell
// of Can is compared with it.
const wantMatrix = `
resource      ADMIN OPERATOR VIEWER
instances     CRUD  CRU-     -R--
deployments   CRUD  CRU-     -R--
edges         CRUD  CRU-     -R--
regions       CRUD  -R--     -R--
models        CRUD  -R--     -R--
audit         CRUD  -R--     -R--
ai_decisions  CRUD  -R--     -R--
checkpoints   CRUD  -R--     -R--
node_policy   CRUD  -R--     -R--
reports       CRUD  CR--     -R--
metrics       CRUD  -R--     -R--
alerts        CRUD  CRU-     -R--
users         CRUD  ----     ----
tokens        CRUD  ----     ----
backups       CRUD  ----     ----
llm           CRUD  -R--     -R--
debug         CRUD  ----     ----
`

func renderMatrix() string {
	var b strings.Builder
	b.WriteString("\nresource      ADMIN OPERATOR VIEWER\n")
	for _, r := range Resources {
		fmt.Fprintf(&b, "%-13s", r)
		for _, role := range Roles {
			cell := ""
			for _, a := range Actions {
				if Can(role, r, a) {
					cell += strings.ToUpper(string(a[0]))
				} else {
					cell += "-"
				}
			}
			fmt.Fprintf(&b, " %-*s", len(role), cell)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// normalize collapses runs of spaces, so the comparison is cell by cell.
func normalize(grid string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(grid), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n")
}

func TestPermissionMatrix(t *testing.T) {
	got := renderMatrix()
	t.Log(got)
	if normalize(got) != normalize(wantMatrix) {
		t.Fatalf("permission matrix:\n%s\nwant:\n%s", got, wantMatrix)
	}
	// Spot checks of the sentences.
	for _, c := range []struct {
		role catalog.Role
		res  Resource
		act  Action
		want bool
	}{
		{catalog.RoleOperator, ResourceInstances, ActionDelete, false},  // cannot delete instances
		{catalog.RoleOperator, ResourceDeployments, ActionCreate, true}, // deploys
		{catalog.RoleOperator, ResourceInstances, ActionUpdate, true},   // scales, starts, stops
		{catalog.RoleOperator, ResourceUsers, ActionRead, false},        // no user management
		{catalog.RoleOperator, ResourceTokens, ActionCreate, false},
		{catalog.RoleViewer, ResourceInstances, ActionCreate, false},
		{catalog.RoleViewer, ResourceUsers, ActionRead, false},
		{catalog.RoleAdmin, ResourceUsers, ActionDelete, true},
		{"ROOT", ResourceInstances, ActionRead, false},
		{"", ResourceInstances, ActionRead, false},
		{catalog.RoleAdmin, "secrets", ActionRead, false},
		{catalog.RoleAdmin, ResourceInstances, "launch", false},
	} {
		if got := Can(c.role, c.res, c.act); got != c.want {
			t.Errorf("Can(%s, %s, %s) = %v, want %v", c.role, c.res, c.act, got, c.want)
		}
	}
	if len(PermissionsOf(catalog.RoleViewer)) != len(Resources)-4 { // not users, tokens, backups, debug
		t.Errorf("PermissionsOf(VIEWER) = %v", PermissionsOf(catalog.RoleViewer))
	}
}

func TestAuthorize(t *testing.T) {
	admin := Principal{UserID: "a", Role: catalog.RoleAdmin, Kind: KindSession, Scope: ScopeAll}
	op := Principal{UserID: "o", Role: catalog.RoleOperator, Kind: KindSession, Scope: ScopeAll}
	viewer := Principal{UserID: "v", Role: catalog.RoleViewer, Kind: KindSession, Scope: ScopeAll}
	opToken := Principal{UserID: "o", Role: catalog.RoleOperator, Kind: KindAPIToken, Scope: ScopeAll, TokenID: "t"}
	inst := Principal{UserID: "a", Role: catalog.RoleAdmin, Kind: KindAPIToken, Scope: ScopeInstance, InstanceID: "i-1", TokenID: "t2"}

	cases := []struct {
		name string
		p    Principal
		res  Resource
		act  Action
		tgt  Target
		ok   bool
	}{
		{"admin deletes an instance", admin, ResourceInstances, ActionDelete, Target{}, true},
		{"operator deletes an instance", op, ResourceInstances, ActionDelete, Target{}, false},
		{"operator reads own profile", op, ResourceUsers, ActionRead, Target{UserID: "o"}, true},
		{"operator updates own profile", op, ResourceUsers, ActionUpdate, Target{UserID: "o"}, true},
		{"operator reads another user", op, ResourceUsers, ActionRead, Target{UserID: "v"}, false},
		{"operator lists users", op, ResourceUsers, ActionRead, Target{}, false},
		{"operator deletes own user", op, ResourceUsers, ActionDelete, Target{UserID: "o"}, false},
		{"viewer reads own profile", viewer, ResourceUsers, ActionRead, Target{UserID: "v"}, true},
		{"viewer starts an instance", viewer, ResourceInstances, ActionUpdate, Target{}, false},
		{"operator token reads own profile", opToken, ResourceUsers, ActionRead, Target{UserID: "o"}, false},
		{"operator token updates an instance", opToken, ResourceInstances, ActionUpdate, Target{}, true},
		{"instance token posts AI decisions", inst, ResourceAIDecisions, ActionCreate, Target{}, true},
		{"instance token posts AI decisions for itself", inst, ResourceAIDecisions, ActionCreate, Target{InstanceID: "i-1"}, true},
		{"instance token posts a checkpoint", inst, ResourceCheckpoints, ActionCreate, Target{InstanceID: "i-1"}, true},
		{"instance token posts for another instance", inst, ResourceAIDecisions, ActionCreate, Target{InstanceID: "i-2"}, false},
		{"ADMIN instance token reads instances", inst, ResourceInstances, ActionRead, Target{InstanceID: "i-1"}, false},
		{"ADMIN instance token deletes its instance", inst, ResourceInstances, ActionDelete, Target{InstanceID: "i-1"}, false},
		{"ADMIN instance token reads AI decisions", inst, ResourceAIDecisions, ActionRead, Target{}, false},
		{"zero principal", Principal{}, ResourceInstances, ActionRead, Target{}, false},
	}
	for _, c := range cases {
		err := Authorize(c.p, c.res, c.act, c.tgt)
		if c.ok && err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if !c.ok && !errors.Is(err, ErrForbidden) {
			t.Errorf("%s: err = %v, want ErrForbidden", c.name, err)
		}
	}
	err := Authorize(op, ResourceInstances, ActionDelete, Target{})
	if err == nil || err.Error() != "forbidden: role OPERATOR may not delete instances" {
		t.Errorf("message = %v", err)
	}
}

// TestPermissionsOfPrincipalMatchAuthorize: what /api/auth/me lists for a
// principal is exactly what Authorize lets it do (on its own instance): an
// instance-scoped token lists its two permissions, not its role's.
func TestPermissionsOfPrincipalMatchAuthorize(t *testing.T) {
	principals := []Principal{
		{Kind: KindSession, Role: catalog.RoleAdmin, Scope: ScopeAll},
		{Kind: KindSession, Role: catalog.RoleViewer, Scope: ScopeAll},
		{Kind: KindAPIToken, Role: catalog.RoleOperator, Scope: ScopeAll},
		{Kind: KindAPIToken, Role: catalog.RoleOperator, Scope: ScopeInstance, InstanceID: "i1"},
		{Kind: KindAPIToken, Role: catalog.RoleAdmin, Scope: ScopeInstance, InstanceID: "i1"},
	}
	for _, p := range principals {
		listed := map[Permission]bool{}
		for _, perm := range PermissionsOfPrincipal(p) {
			listed[perm] = true
		}
		for _, r := range Resources {
			for _, a := range Actions {
				perm := Permission{r, a}
				allowed := Authorize(p, r, a, Target{InstanceID: p.InstanceID}) == nil
				if allowed != listed[perm] {
					t.Errorf("%s %s scope %s: %s listed %v, Authorize allows %v", p.Kind, p.Role, p.Scope, perm, listed[perm], allowed)
				}
			}
		}
	}
	inst := PermissionsOfPrincipal(principals[3])
	if len(inst) != 4 { // AI decisions, checkpoints, LLM gateway call and model list
		t.Errorf("an instance token lists %d permissions, want 4: %v", len(inst), inst)
	}
}
