package auth

import (
	"errors"
	"strings"
	"testing"

	"github.com/redforge/controltower/hub/catalog"
)

// TestEnsureInstanceToken: the hub-managed token of an instance is
// created once (idempotent), authenticates as that instance's scope with
// only its permissions, is refused when malformed, and stays revoked once
// an operator revokes it.
func TestEnsureInstanceToken(t *testing.T) {
	e := MustEnv(t)
	e.MustApply(t, catalog.UpsertInstance(catalog.Instance{ID: "i-7", Name: "seven"}))
	secret := APITokenPrefix + strings.Repeat("a", 43)
	for range 2 {
		if err := e.svc.EnsureInstanceToken(ctxT(t), "i-7", secret); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.state.APITokens()); n != 1 {
		t.Fatalf("%d tokens after two ensures, want 1", n)
	}
	p := e.MustAuth(t, secret)
	if p.Scope != ScopeInstance || p.InstanceID != "i-7" || p.TokenID != InstanceTokenID("i-7") {
		t.Fatalf("principal %+v", p)
	}
	if err := Authorize(p, ResourceCheckpoints, ActionCreate, Target{InstanceID: "i-7"}); err != nil {
		t.Errorf("own checkpoints: %v", err)
	}
	if err := Authorize(p, ResourceCheckpoints, ActionCreate, Target{InstanceID: "i-8"}); !errors.Is(err, ErrForbidden) {
		t.Errorf("another instance's checkpoints: %v, want forbidden", err)
	}
	if err := Authorize(p, ResourceInstances, ActionRead, Target{}); !errors.Is(err, ErrForbidden) {
		t.Errorf("read instances: %v, want forbidden", err)
	}
	var inv *InvalidError
	if err := e.svc.EnsureInstanceToken(ctxT(t), "i-7", "not-a-token"); !errors.As(err, &inv) || inv.Field != "token" {
		t.Errorf("malformed secret: %v, want an InvalidError for token", err)
	}
	e.MustApply(t, catalog.RevokeAPIToken(InstanceTokenID("i-7"), e.clock.Now()))
	if err := e.svc.EnsureInstanceToken(ctxT(t), "i-7", secret); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(ctxT(t), secret); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked instance token: %v, want unauthenticated", err)
	}
}
