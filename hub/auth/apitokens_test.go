package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

func TestAPITokens(t *testing.T) {
	e := MustEnv(t)
	ctx := ctxT(t)
	adminUser := e.MustUser(t, "admin", catalog.RoleAdmin, adminPW)
	e.MustApply(t, catalog.UpsertInstance(catalog.Instance{ID: "i-1", Name: "flow-1"}))
	_, admin := e.MustLogin(t, "admin", adminPW)

	secret, info, err := e.svc.CreateAPIToken(ctx, admin, NewAPIToken{Name: "ci", Role: catalog.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	if !wellFormed(secret, APITokenPrefix) || len(secret) != 4+43 || info.Scope != ScopeAll || info.CreatedBy != adminUser.ID {
		t.Fatalf("CreateAPIToken = %q, %+v", secret, info)
	}
	stored, _ := e.state.APIToken(info.ID)
	if stored.Hash != hashToken(secret) || strings.Contains(stored.Hash, secret) {
		t.Fatal("the catalog must hold the token's SHA-256 only")
	}
	p := e.MustAuth(t, secret)
	if p.Kind != KindAPIToken || p.Role != catalog.RoleOperator || p.TokenID != info.ID || p.UserID != adminUser.ID || p.Scope != ScopeAll {
		t.Fatalf("Authenticate(api token) = %+v", p)
	}
	if err := Authorize(p, ResourceInstances, ActionDelete, Target{}); !errors.Is(err, ErrForbidden) {
		t.Fatal("an OPERATOR token may not delete instances")
	}
	// The token's own rights: an OPERATOR token cannot mint tokens.
	if _, _, err := e.svc.CreateAPIToken(ctx, p, NewAPIToken{Role: catalog.RoleViewer}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("token minted by an OPERATOR token: %v", err)
	}

	// Instance scope.
	instSecret, inst, err := e.svc.CreateAPIToken(ctx, admin, NewAPIToken{Name: "flow-1", Role: catalog.RoleViewer, Scope: ScopeInstance, InstanceID: "i-1"})
	if err != nil {
		t.Fatal(err)
	}
	ip := e.MustAuth(t, instSecret)
	if ip.Scope != ScopeInstance || ip.InstanceID != "i-1" {
		t.Fatalf("instance token principal = %+v", ip)
	}
	if err := Authorize(ip, ResourceAIDecisions, ActionCreate, Target{InstanceID: "i-1"}); err != nil {
		t.Fatalf("instance token posting its AI decisions: %v", err)
	}
	for _, c := range []struct {
		res Resource
		act Action
		tgt Target
	}{
		{ResourceAIDecisions, ActionCreate, Target{InstanceID: "i-2"}},
		{ResourceInstances, ActionRead, Target{InstanceID: "i-1"}},
		{ResourceAudit, ActionRead, Target{}},
	} {
		if err := Authorize(ip, c.res, c.act, c.tgt); !errors.Is(err, ErrForbidden) {
			t.Errorf("instance token %s %s %+v: %v, want ErrForbidden", c.act, c.res, c.tgt, err)
		}
	}

	// Bad requests.
	for _, c := range []struct {
		req   NewAPIToken
		field string
	}{
		{NewAPIToken{Role: "ROOT"}, "role"},
		{NewAPIToken{Role: catalog.RoleViewer, Scope: "everything"}, "scope"},
		{NewAPIToken{Role: catalog.RoleViewer, Scope: ScopeInstance}, "instance_id"},
		{NewAPIToken{Role: catalog.RoleViewer, InstanceID: "i-1"}, "instance_id"},
		{NewAPIToken{Role: catalog.RoleViewer, Name: strings.Repeat("n", 200)}, "name"},
		{NewAPIToken{Role: catalog.RoleViewer, ExpiresAt: e.clock.Now().Add(-time.Hour)}, "expires_at"},
	} {
		_, _, err := e.svc.CreateAPIToken(ctx, admin, c.req)
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("CreateAPIToken(%+v) = %v, want invalid %s", c.req, err, c.field)
		}
	}
	if _, _, err := e.svc.CreateAPIToken(ctx, admin, NewAPIToken{Role: catalog.RoleViewer, Scope: ScopeInstance, InstanceID: "i-404"}); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("token for a missing instance: %v", err)
	}

	// Revocation, expiry, malformed and unknown tokens.
	if _, err := e.svc.RevokeAPIToken(ctx, admin, info.ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Authenticate(ctx, secret)
	wantReason(t, "revoked token", err, ReasonRevoked)
	if _, err := e.svc.RevokeAPIToken(ctx, admin, info.ID); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	if _, err := e.svc.RevokeAPIToken(ctx, ip, inst.ID); !errors.Is(err, ErrForbidden) {
		t.Fatalf("instance token revoking tokens: %v", err)
	}
	expSecret, _, err := e.svc.CreateAPIToken(ctx, admin, NewAPIToken{Role: catalog.RoleViewer, ExpiresAt: e.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	e.MustAuth(t, expSecret)
	e.clock.Advance(time.Hour + DefaultLeeway + time.Second)
	_, err = e.svc.Authenticate(ctx, expSecret)
	wantReason(t, "expired token", err, ReasonExpired)
	_, err = e.svc.Authenticate(ctx, APITokenPrefix+strings.Repeat("A", 43))
	wantReason(t, "unknown token", err, ReasonUnknownToken)
	_, err = e.svc.Authenticate(ctx, APITokenPrefix+"short")
	wantReason(t, "malformed token", err, ReasonMalformed)

	tokens, err := e.svc.ListAPITokens(admin)
	if err != nil || len(tokens) != 3 {
		t.Fatalf("ListAPITokens = %d, %v", len(tokens), err)
	}
}

// TestAPITokenActsWithCreatorsAuthority: a token is never stronger than its
// creator is now, and dies with a disabled creator.
func TestAPITokenActsWithCreatorsAuthority(t *testing.T) {
	e := MustEnv(t)
	ctx := ctxT(t)
	u := e.MustUser(t, "root2", catalog.RoleAdmin, adminPW)
	e.MustUser(t, "admin", catalog.RoleAdmin, adminPW) // keeps an admin around
	_, admin := e.MustLogin(t, "root2", adminPW)
	secret, _, err := e.svc.CreateAPIToken(ctx, admin, NewAPIToken{Role: catalog.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	u.Role = catalog.RoleViewer
	u = e.MustApply(t, catalog.PutUser(u)).(catalog.User)
	if p := e.MustAuth(t, secret); p.Role != catalog.RoleViewer {
		t.Fatalf("token role after its creator's demotion = %s, want VIEWER", p.Role)
	}
	u.Disabled = true
	e.MustApply(t, catalog.PutUser(u))
	_, err = e.svc.Authenticate(ctx, secret)
	wantReason(t, "token of a disabled creator", err, ReasonUserDisabled)
}
